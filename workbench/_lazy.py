"""Package namespaces that import their modules on first use (so a command loads what it uses).

A package whose ``__init__`` re-exports names from torch-heavy modules makes every import of any
of its modules pay for torch: Python runs the package's ``__init__`` first. :func:`lazy_exports`
gives such a package a module ``__getattr__`` (PEP 562): the first access to any exported name
runs ``load`` once (the imports the ``__init__`` used to run, in the same order, so registries
fill exactly as before) and every later access is a plain attribute. Its light modules
(``workbench.pruner.errors``, ``workbench.trial.space``, ...) import without it, which is how
``workbench search`` reads and checks an experiment file before torch loads.

Example:
    >>> import sys, types
    >>> pkg = types.ModuleType("demo_pkg"); pkg.__all__ = ["answer"]; sys.modules["demo_pkg"] = pkg
    >>> pkg.__getattr__, pkg.__dir__ = lazy_exports("demo_pkg", lambda: {"answer": 42})
    >>> "answer" in vars(pkg), pkg.answer, "answer" in vars(pkg)
    (False, 42, True)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    name: str, load: Callable[[], dict[str, Any]], fallback: Callable[[str], Any] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for package ``name`` that run ``load`` on first use.

    ``load`` returns the names to bind (its ``locals()`` after its imports); ``fallback(attr)``
    answers names ``load`` does not bind (raise ``AttributeError`` for unknown ones). A submodule
    not re-exported is imported on its own, without ``load``.
    """
    module = sys.modules[name]

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        namespace = vars(module)
        if attr not in namespace.get("__all__", ()) and importlib.util.find_spec(f"{name}.{attr}") is not None:
            # a submodule (``from . import _backend`` asks the package first): import just it, since
            # running ``load`` here, half-way through importing one of the package's modules, is a cycle
            return importlib.import_module(f"{name}.{attr}")
        if not namespace.get("_lazy_loaded"):
            namespace["_lazy_loaded"] = True
            namespace.update({k: v for k, v in load().items() if not k.startswith("__")})
            if attr in namespace:
                return namespace[attr]
        if fallback is not None:
            return fallback(attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(getattr(module, "__all__", ())))

    return __getattr__, __dir__
