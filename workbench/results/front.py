"""The Pareto front of a task's metric against the sparsity reached or the measured speed-up.

:func:`pareto_indices` is the one implementation: the console summary and the parent run's figures
(:func:`front` over plain rows) and the notebooks' :func:`workbench.analysis.pareto_front` (over a
DataFrame) both call it. A point is dominated when another is at least as good on both axes and
better on one, each axis under its own ``direction``; exact duplicates of a front point are all
kept; a point with a missing or non-finite coordinate is never on the front. :func:`has_speed`
decides whether trials measured speed (a finite ``speedup`` in some row), for both layers too.

Example:
    >>> rows = [{"trial": 0, "sparsity": 0.5, "perplexity": 30.0}, {"trial": 1, "sparsity": 0.7, "perplexity": 28.0},
    ...         {"trial": 2, "sparsity": 0.9, "perplexity": 45.0}]
    >>> [r["trial"] for r in front(rows, metric="perplexity", direction="minimize")]
    [1, 2]
    >>> pareto_indices([0.5, 0.7, 0.9], [30.0, 28.0, 45.0], y_direction="minimize")
    [1, 2]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workbench.benchmarks.direction import best_first, sign

__all__ = ["front", "has_speed", "pareto_indices"]


def _number(value: Any) -> float:
    """``value`` as a float; NaN for anything that is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return math.nan
    return float(value) if math.isfinite(value) else math.nan


def pareto_indices(
    xs: Iterable[Any], ys: Iterable[Any], *, x_direction: str = "maximize", y_direction: str = "maximize"
) -> list[int]:
    """The indices (ascending) of the points ``(xs[i], ys[i])`` no other point dominates.

    One sweep over the points sorted best ``x`` first: a point is on the front when its ``y`` is
    the best of its ``x`` group and better than every ``y`` at a strictly better ``x``.
    """
    sx, sy = sign(x_direction), sign(y_direction)
    points = [(sx * _number(x), sy * _number(y), i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    points = sorted((p for p in points if not (math.isnan(p[0]) or math.isnan(p[1]))), key=lambda p: (-p[0], -p[1]))
    keep, best_before, start = [], -math.inf, 0  # best y among points with a strictly better x
    while start < len(points):
        stop = start
        while stop < len(points) and points[stop][0] == points[start][0]:
            stop += 1
        top = points[start][1]  # the group's best y (sorted best first)
        if top > best_before:
            keep += [p[2] for p in points[start:stop] if p[1] == top]
        best_before = max(best_before, top)
        start = stop
    return sorted(keep)


def front(
    rows: Sequence[Mapping[str, Any]], *, metric: str = "accuracy", direction: str = "maximize", axis: str = "sparsity"
) -> list[dict[str, Any]]:
    """The rows on the Pareto front of ``metric`` (under ``direction``) and ``axis`` (reached sparsity, or
    ``speedup``; maximised), by increasing ``axis``, then best ``metric``, then trial (:func:`pareto_indices`)."""
    picked = [
        dict(rows[i])
        for i in pareto_indices([r.get(axis) for r in rows], [r.get(metric) for r in rows], y_direction=direction)
    ]
    return sorted(picked, key=lambda r: (r[axis], best_first(r, metric, direction), r.get("trial", 0)))


def has_speed(rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any row holds a measured (finite) ``speedup``."""
    return any(not math.isnan(_number(r.get("speedup"))) for r in rows)
