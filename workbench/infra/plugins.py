"""Importing and calling a user's own code: benchmark plug-ins and modules named under ``plugins:``.

A user module is imported by its dotted name, with the working folder on ``sys.path`` (as
``python -m`` would have it: console scripts leave it off), so ``mybench.py`` next to where
``workbench`` runs is found. A module that does not exist is the user's error, reported as a
:class:`~workbench.pruner.ConfigError` naming the module. A plug-in that fails while it is
imported or called (a syntax error, any exception, or ``sys.exit``: a plug-in must return or
raise, never end the process) is a :class:`PluginError`: one line naming the plug-in and the
error, plus the plug-in's own traceback (its frames only, none of the workbench's), which the
CLI prints below that line.

Example:
    >>> import_module("json").__name__
    'json'
    >>> call_plugin(lambda: 1 / 0, "benchmark 'doc:zero'")
    Traceback (most recent call last):
        ...
    workbench.infra.plugins.PluginError: benchmark 'doc:zero': the plug-in raised ZeroDivisionError: division by zero
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from workbench.pruner.errors import ConfigError

__all__ = ["PluginError", "call_plugin", "import_module", "import_plugins"]

_WORKBENCH = str(Path(__file__).resolve().parents[1])


class PluginError(ConfigError):
    """A user's plug-in failed; ``plugin_traceback`` holds its own frames (may be empty)."""

    def __init__(self, message: str, plugin_traceback: str = "") -> None:
        super().__init__(message)
        self.plugin_traceback = plugin_traceback


def _is_ours(filename: str) -> bool:
    """Frames of the workbench and of the import machinery (not the plug-in's)."""
    return (
        filename.startswith("<frozen ")
        or os.path.abspath(filename).startswith(_WORKBENCH + os.sep)
        or filename.endswith(os.path.join("importlib", "__init__.py"))
    )


def _own_traceback(err: BaseException) -> str:
    """The traceback of ``err`` from the first frame outside the workbench, and the error line."""
    tb: TracebackType | None = err.__traceback__
    while tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    lines = []
    if tb is not None:
        lines.append("Traceback of the plug-in (most recent call last):\n")
        lines.extend(traceback.format_list(traceback.extract_tb(tb)))
    lines.extend(traceback.format_exception_only(type(err), err))
    return "".join(lines).rstrip("\n")


def _failure(what: str, err: BaseException) -> PluginError:
    if isinstance(err, SystemExit):
        summary = f"the plug-in called sys.exit({err.code!r}); a plug-in must return or raise, not end the process"
    elif isinstance(err, SyntaxError):
        summary = f"the plug-in has a syntax error: {err.msg} ({Path(err.filename or '?').name}, line {err.lineno})"
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        summary = f"the plug-in raised {type(err).__name__}" + (f": {first}" if first else "")
    return PluginError(f"{what}: {summary}", _own_traceback(err))


def call_plugin(func: Callable[..., Any], what: str, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` for a user's function; a failure is a :class:`PluginError` naming ``what``.

    A :class:`ConfigError` it raises passes through unchanged (it already names the problem);
    Ctrl-C too.
    """
    try:
        return func(*args, **kwargs)
    except ConfigError:
        raise
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any failure of the user's code is reported as theirs
        raise _failure(what, err) from err


def import_module(name: str, *, what: str = "plugins") -> ModuleType:
    """Import the user module ``name``; a :class:`ConfigError` naming ``what`` and the module when it
    does not exist, a :class:`PluginError` when importing it fails."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what}: expected a module name such as 'my_registrations', got {name!r}")
    name = name.strip()
    if not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(
            f"{what}: {name!r} is not a module name; allowed: a dotted Python module name such as "
            "'my_registrations' or 'pkg.mod' (no paths, no relative names: the working folder is on sys.path)"
        )
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise _failure(f"{what}: module {name!r}", err) from err  # a module the plug-in itself imports
        raise ConfigError(f"{what}: cannot import module {name!r} ({err})") from None
    except ConfigError:
        raise
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the user's module failed while importing
        raise _failure(f"{what}: module {name!r}", err) from err


def import_plugins(names: Iterable[str]) -> list[ModuleType]:
    """Import every module of ``names`` in order (their registrations run on import)."""
    return [import_module(name, what=f"plugins[{i}]") for i, name in enumerate(names)]
