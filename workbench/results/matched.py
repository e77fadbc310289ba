"""Patterns compared at the same reached sparsity: the one rule that says which results are "matched".

A higher target reaches a higher sparsity and usually a worse metric, so comparing patterns or
criteria over all their trials mixes sparsities. Here configurations (every knob but the seed;
:func:`workbench.results.configs.by_configuration`: the metric is the mean over seeds) compete
only when the sparsities they **reached** lie within :data:`MATCH_TOLERANCE` of each other.

The rule (:func:`matched_levels`): sort the distinct reached sparsities; a level starts at the
lowest one not yet placed and holds every sparsity at most ``tolerance`` above it. Two results in
one level are never more than ``tolerance`` apart; two results reached at the same sparsity are
always in one level. A level is labelled by the range it holds (``"0.593-0.600"``, or ``"0.600"``
when every result reached the same value), so a table shows what was compared, not a bin edge.

Why 0.01: a trial reaches its target to within the rounding of each layer's kept weights (the
built-in benchmarks land within 0.008 of the target: 0.6 reaches 0.5926 on the tiny transformer),
while targets step by 0.05 (``default.yaml``) or more. So one target's trials are one level and two
targets never are. The tolerance the data supports (:func:`supported_tolerance`, used when none is
given) is 0.01, or less than half the smallest step between two targets the rows hold, so two
targets are never one level even on a finer grid.

The study's console summary, its ``best_at_matched_sparsity.csv`` and ``best_<metric>/sparsity_<x>``
metrics, and the notebooks' :func:`workbench.analysis.best_at_matched_sparsity` and
:func:`workbench.analysis.compare_at_matched_sparsity` all ask this module.

Example:
    >>> rows = [{"trial": 0, "pattern": "4x1", "target": 0.6, "sparsity": 0.5926, "accuracy": 0.9},
    ...         {"trial": 1, "pattern": "2:4", "target": 0.6, "sparsity": 0.6, "accuracy": 0.95},
    ...         {"trial": 2, "pattern": "2:4", "target": 0.65, "sparsity": 0.65, "accuracy": 0.93}]
    >>> matched_levels([r["sparsity"] for r in rows])
    {0.5926: '0.593-0.600', 0.6: '0.593-0.600', 0.65: '0.650'}
    >>> sorted((g, sorted(cells)) for g, cells in best_per_level(rows, ("pattern",)).items())
    [(('2:4',), ['0.593-0.600', '0.650']), (('4x1',), ['0.593-0.600'])]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from workbench.benchmarks.direction import best_first, better
from workbench.pruner.errors import ConfigError
from workbench.results.configs import by_configuration

__all__ = [
    "MATCHED_COLUMNS",
    "MATCH_TOLERANCE",
    "best_per_bin",
    "best_per_level",
    "check_tolerance",
    "matched_columns",
    "matched_levels",
    "matched_note",
    "matched_rows",
    "resolve_tolerance",
    "sparsity_bin",
    "supported_tolerance",
]

MATCH_TOLERANCE = 0.01
"""Largest difference of reached sparsity between two results compared as "at the same sparsity"."""
_MAX_TOLERANCE = 0.05
"""Above this a level could join two targets of ``default.yaml``'s 0.05 grid: refused."""


def check_tolerance(tolerance: Any, key: str = "tolerance") -> float:
    """``tolerance`` as a float, or ``ConfigError`` naming ``key``, the value and the allowed range."""
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not 0 <= tolerance < _MAX_TOLERANCE
        or not math.isfinite(tolerance)
    ):
        raise ConfigError(
            f"{key}: {tolerance!r} is not allowed; allowed: a reached-sparsity difference in [0, {_MAX_TOLERANCE:g})"
        )
    return float(tolerance)


def supported_tolerance(targets: Iterable[Any], default: float = MATCH_TOLERANCE) -> float:
    """``default``, or less where two distinct ``targets`` lie closer than twice it (0.4 of their gap).

    None, NaN and non-numbers among ``targets`` are ignored (rows without a target keep ``default``).
    """
    values = sorted(
        {
            round(float(t), 6)
            for t in targets
            if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
        }
    )
    gaps = [b - a for a, b in zip(values, values[1:])]
    return min(default, 0.4 * min(gaps)) if gaps else default


def resolve_tolerance(tolerance: float | None, targets: Iterable[Any]) -> float:
    """``tolerance`` checked (:func:`check_tolerance`), or when None what ``targets`` support."""
    return supported_tolerance(targets) if tolerance is None else check_tolerance(tolerance)


def _label(low: float, high: float, taken: set[str]) -> str:
    """``"low-high"`` (or one value when both print alike) with 3 decimals, more where 3 would repeat a label."""
    for digits in range(3, 18):
        lo, hi = f"{low:.{digits}f}", f"{high:.{digits}f}"
        label = lo if lo == hi else f"{lo}-{hi}"
        if label not in taken:
            return label
    return repr(low)


def matched_levels(sparsities: Iterable[float], tolerance: float = MATCH_TOLERANCE) -> dict[float, str]:
    """Each finite reached sparsity mapped to the label of its level (see the module's rule).

    Labels are ``"<lowest>-<highest>"`` reached in the level (3 decimals; more only where two
    levels would print alike), or one value when both ends print alike. NaN is left out.
    """
    tolerance = check_tolerance(tolerance)
    values = sorted({float(s) for s in sparsities if isinstance(s, (int, float)) and math.isfinite(s)})
    out: dict[float, str] = {}
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[end + 1] - values[start] <= tolerance + 1e-12:
            end += 1
        label = _label(values[start], values[end], set(out.values()))
        out.update(dict.fromkeys(values[start : end + 1], label))
        start = end + 1
    return out


def sparsity_bin(sparsity: float) -> str:
    """The name of a reached sparsity in metric keys (``best_accuracy/sparsity_0.60``): 2 decimals.

    A name only: which results are compared is :func:`matched_levels`' rule.
    """
    return f"{round(float(sparsity), 2):.2f}"


def matched_note(tolerance: float = MATCH_TOLERANCE) -> str:
    """The sentence every table or figure that compares at matched sparsity shows: the tolerance."""
    return f"matched: reached sparsity within {tolerance:g}, a column the range reached"


def best_per_level(
    rows: Sequence[dict[str, Any]],
    by: Sequence[str],
    *,
    tolerance: float | None = None,
    metric: str = "accuracy",
    direction: str = "maximize",
) -> dict[tuple[Any, ...], dict[str, dict[str, Any]]]:
    """The best configuration (mean ``metric`` over seeds, under ``direction``) per ``by`` group and level.

    ``rows`` are trials (plain dicts with their knobs, ``seed``, ``sparsity`` and ``metric``); they
    are first grouped by configuration (:func:`~workbench.results.configs.by_configuration`), whose
    mean reached sparsity is matched. Returns ``{group: {level label: configuration row}}``; each
    row also holds ``matched_sparsity`` (its level) and ``tolerance``; ties keep the earlier trial.
    ``tolerance`` None: :func:`supported_tolerance` of the rows' targets.
    """
    tolerance = resolve_tolerance(tolerance, (r.get("target") for r in rows))
    configs = [
        c
        for c in by_configuration(rows, metric=metric)
        if isinstance(c.get("sparsity"), (int, float))
        and math.isfinite(c["sparsity"])
        and isinstance(c.get(metric), (int, float))
        and math.isfinite(c[metric])
    ]
    levels = matched_levels([c["sparsity"] for c in configs], tolerance)
    out: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for config in sorted(configs, key=lambda r: r["trial"]):
        label = levels[float(config["sparsity"])]
        cells = out.setdefault(tuple(config.get(k) for k in by), {})
        if label not in cells or better(config[metric], cells[label][metric], direction):
            cells[label] = {**config, "matched_sparsity": label, "tolerance": tolerance}
    return out


best_per_bin = best_per_level
"""The former name of :func:`best_per_level` (kept for callers written before the tolerance rule)."""


MATCHED_COLUMNS = (
    "matched_sparsity",
    "tolerance",
    "pattern",
    "criterion",
    "trial",
    "scheduler",
    "target",
    "sparsity",
    "accuracy",
    "accuracy_std",
    "n_seeds",
    "run_id",
)
"""Columns of :func:`matched_rows` (``best_at_matched_sparsity.csv``); other knobs follow when searched."""


def matched_columns(metric: str = "accuracy") -> tuple[str, ...]:
    """:data:`MATCHED_COLUMNS` with the task's ``metric`` in place of accuracy."""
    return tuple(c.replace("accuracy", metric) if c.startswith("accuracy") else c for c in MATCHED_COLUMNS)


def matched_rows(
    rows: Sequence[dict[str, Any]],
    by: Sequence[str] = ("pattern", "criterion"),
    *,
    tolerance: float | None = None,
    metric: str = "accuracy",
    direction: str = "maximize",
) -> list[dict[str, Any]]:
    """The best configuration of each ``by`` group at each matched reached sparsity, as flat rows.

    Comparisons hold the reached sparsity within ``tolerance`` (None: what the rows' targets
    support, :func:`supported_tolerance`; column ``matched_sparsity``: the
    range reached there; ``tolerance``); the other knobs (scheduler, decay, scope, ...) are whatever
    that group's best configuration used there (shown in its row), not held fixed. ``metric`` is
    the configuration's mean over seeds, ``<metric>_std`` its spread, ``n_seeds`` how many.
    Ordered by reached sparsity, then ``metric`` (best first).
    """
    out = []
    for group, cells in best_per_level(rows, by, tolerance=tolerance, metric=metric, direction=direction).items():
        for row in cells.values():
            out.append({**dict(zip(by, group)), **{k: v for k, v in row.items() if k not in by}})
    return sorted(out, key=lambda r: (r["matched_sparsity"], best_first(r, metric, direction), r["trial"]))
