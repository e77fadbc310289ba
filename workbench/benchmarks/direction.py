"""Which way a task's metric is better: the one vocabulary (``direction``) of every layer.

A task states its ``direction``, ``"maximize"`` (accuracy) or ``"minimize"`` (perplexity, loss);
the experiment, the trial's drop from dense, the study's summary and the notebooks' API all take
that string (never a ``maximize`` flag) and ask this module how to compare, sort or pick the best.

Example:
    >>> better(28.0, 30.0, "minimize"), best_of([0.9, 0.95], "maximize"), sign("minimize")
    (True, 0.95, -1.0)
    >>> check_direction("max")
    Traceback (most recent call last):
    ...
    workbench.pruner.errors.ConfigError: direction: 'max' is not allowed; allowed: maximize, minimize
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workbench.pruner.errors import ConfigError

__all__ = ["DIRECTIONS", "best_first", "best_of", "better", "check_direction", "sign"]

DIRECTIONS = ("maximize", "minimize")
"""Allowed values of a direction (:attr:`workbench.benchmarks.Task.direction`, ``Experiment.direction``)."""


def check_direction(direction: Any, key: str = "direction") -> str:
    """``direction`` when it is one of :data:`DIRECTIONS`; else ConfigError naming ``key``, the value and what is allowed."""
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ConfigError(f"{key}: {direction!r} is not allowed; allowed: {', '.join(DIRECTIONS)}")
    return direction


def sign(direction: str) -> float:
    """``+1.0`` for ``"maximize"``, ``-1.0`` for ``"minimize"``: ``sign * value`` is larger when better."""
    return -1.0 if check_direction(direction) == "minimize" else 1.0


def better(a: float, b: float, direction: str = "maximize") -> bool:
    """Whether metric value ``a`` is strictly better than ``b`` under ``direction``."""
    return sign(direction) * a > sign(direction) * b


def best_first(row: Mapping[str, Any], metric: str, direction: str = "maximize") -> float:
    """A sort key putting the row with the best value of ``metric`` first."""
    return -sign(direction) * row[metric]


def best_of(values: Iterable[float], direction: str = "maximize") -> float:
    """The best of ``values`` under ``direction`` (the lowest when minimised); ValueError when empty."""
    return (min if sign(direction) < 0 else max)(values)
