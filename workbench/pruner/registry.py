"""A tiny name -> class registry shared by patterns, criteria, schedulers and pruners.

Each concept keeps its own :class:`Registry`, so adding a new pattern (or criterion, ...)
is one new file with a ``@register_*("name")`` decorator and nothing else edited.
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T", bound=type)


class Registry(dict):
    """A dict of ``name -> class`` with a decorator and a lookup that explains misses.

    Example:
        >>> shapes = Registry("shape")
        >>> @shapes.register("square")
        ... class Square: ...
        >>> shapes.lookup("square") is Square
        True
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator registering ``cls`` under ``name``."""

        def decorator(cls: T) -> T:
            if name in self and self[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self[name].__name__}")
            self[name] = cls
            return cls

        return decorator

    def lookup(self, name: str) -> type:
        """The class registered as ``name``; ``ValueError`` naming the allowed names otherwise."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; allowed: {sorted(self)}") from None
