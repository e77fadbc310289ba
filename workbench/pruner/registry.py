"""One registry class and one "did you mean" for every extension point of the library.

Patterns, criteria, schedulers, decay functions, pruners and regularisers each keep a
:class:`Registry`; registering a new one is a decorator in one new module, and config parsing,
validation and the ``list_*`` queries (:mod:`workbench.pruner.catalog`) learn it from there.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry", "did_you_mean"]


def did_you_mean(value: object, choices: Iterable[object], prefix: str = "; ") -> str:
    """``prefix + "did you mean 'x'?"`` for the choice closest to ``value``; ``""`` if none is close.

    Example:
        >>> did_you_mean("magnitud", ["magnitude", "snip"])
        "; did you mean 'magnitude'?"
        >>> did_you_mean("zzz", ["magnitude", "snip"])
        ''
    """
    near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f"{prefix}did you mean {near[0]!r}?" if near else ""


def unknown_key_message(key: object, valid: Iterable[object], what: str = "pruning config key") -> str:
    """The error text for an unknown config key: it always names the nearest valid key.

    Close misspellings read "did you mean 'x'?"; a key like nothing valid gets the valid key
    most similar to it and the full list. (INC warned about unknown keys and ignored them; here
    they are errors, so a typo cannot silently fall back to a default.)

    Example:
        >>> unknown_key_message("target_sparsty", ["target_sparsity", "pattern"])
        "unknown pruning config key 'target_sparsty'; did you mean 'target_sparsity'?"
        >>> unknown_key_message("zzz", ["pattern", "op_names"])
        "unknown pruning config key 'zzz'; nearest valid key: 'pattern'; valid keys: ['op_names', 'pattern']"
    """
    names = [str(c) for c in valid]
    close = did_you_mean(key, names)
    if close:
        return f"unknown {what} {key!r}{close}"
    nearest = max(names, key=lambda n: difflib.SequenceMatcher(None, str(key), n).ratio())
    return f"unknown {what} {key!r}; nearest valid key: {nearest!r}; valid keys: {sorted(names)}"


class Registry(dict, Generic[T]):
    """A dict of ``name -> entry`` (a class or a function) with a decorator and a lookup whose
    error names the config key, the bad value, the nearest name and every allowed name.

    Args:
        key: What the names are, as the config key that holds them (e.g. ``"criterion_type"``);
            it starts every error message.

    Example:
        >>> shapes = Registry("shape")
        >>> @shapes.register("square")
        ... class Square: ...
        >>> shapes.lookup("square") is Square
        True
        >>> shapes.lookup("sqare")
        Traceback (most recent call last):
        ...
        workbench.pruner.errors.ConfigError: shape: 'sqare' is not known; allowed: ['square']; did you mean 'square'?
    """

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key: expected a non-empty string, got {key!r}")
        super().__init__()
        self.key = key

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its argument under ``name``; re-registering the same entry is a no-op."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")

        def decorator(entry: T) -> T:
            if name in self and self[name] is not entry:
                raise ValueError(f"{self.key} {name!r} is already registered by {_label(self[name])}")
            self[name] = entry
            return entry

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and plug-ins that undo their registrations)."""
        self.pop(name, None)

    def lookup(self, name: object) -> T:
        """The entry registered as ``name``; :class:`ConfigError` naming the allowed names otherwise."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"{self.key}: {name!r} is not known; allowed: {list(self)}{did_you_mean(name, self)}"
            ) from None


def _label(entry: object) -> str:
    return getattr(entry, "__qualname__", repr(entry))
