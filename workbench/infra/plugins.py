"""Importing a user's own modules: benchmark plug-ins and registrations named under ``plugins:``.

A user module is imported by its dotted name, with the working folder on ``sys.path`` (as
``python -m`` would have it: console scripts leave it off), so ``mybench.py`` next to where
``workbench`` runs is found. An import that fails is the user's error, reported as a
``ValueError`` naming the module and the error (the CLI prints it as one line).

Example:
    >>> import_module("json").__name__
    'json'
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from types import ModuleType

from workbench.pruner import ConfigError

__all__ = ["import_module", "import_plugins"]


def import_module(name: str, *, what: str = "plugins") -> ModuleType:
    """Import the user module ``name``; ``ValueError`` naming ``what`` and the module when it fails."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what}: expected a module name such as 'my_registrations', got {name!r}")
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(name.strip())
    except ImportError as err:
        raise ConfigError(f"{what}: cannot import module {name!r} ({err})") from None


def import_plugins(names: Iterable[str]) -> list[ModuleType]:
    """Import every module of ``names`` in order (their registrations run on import)."""
    return [import_module(name, what=f"plugins[{i}]") for i, name in enumerate(names)]
