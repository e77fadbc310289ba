"""Optional extras of the task families: imported when a family is built, never at import time.

:func:`require` imports a module of an optional extra and turns its absence (or a broken build,
such as a torchvision wheel compiled for another torch) into one line naming the extra to install.

Example:
    >>> require("math", extra="hf", family="doc").sqrt(4.0)
    2.0
"""

from __future__ import annotations

import importlib
from types import ModuleType

from workbench.pruner.errors import ConfigError

__all__ = ["EXTRAS", "require"]

EXTRAS = {"hf": "transformers and datasets", "vision": "torchvision (the build matching your torch)"}
"""The optional extras of ``pyproject.toml`` the families use, and what each brings."""


def require(module: str, *, extra: str, family: str) -> ModuleType:
    """Import ``module`` of the optional ``extra`` for ``family``, or raise a one-line ConfigError.

    Args:
        module: The module to import (``"transformers"``, ``"datasets"``, ``"torchvision"``).
        extra: The extra of ``pyproject.toml`` that installs it (a key of :data:`EXTRAS`).
        family: The benchmark that needs it (named in the message).

    Raises:
        ValueError: The module is missing or fails to import; the message names the extra and the
            install command.
    """
    if extra not in EXTRAS:
        raise ConfigError(f"extra: {extra!r} is not an extra of the workbench; allowed: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except Exception as err:  # a broken build fails with RuntimeError/OSError, not only ImportError
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            f"benchmark {family!r} needs the optional extra [{extra}] ({EXTRAS[extra]}): "
            f"{module} failed to import ({type(err).__name__}: {reason}); install it with: pip install -e '.[{extra}]'"
        ) from None
