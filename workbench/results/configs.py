"""Configurations, not trials: the trials of one configuration (every knob but the seed) as one row.

A study with ``study.seeds: [0, 1, 2]`` trains each configuration three times; ranking its trials
one by one shows the luckiest seed. :func:`by_configuration` is the one place that groups plain
result rows (:func:`workbench.study.summary.result_rows`) by configuration: the metric is the mean
over seeds (runs of one seed, such as repeats, averaged first), with its spread, ``n_seeds`` and
the trials it came from. Whatever compares configurations (the console's tables and front, the
parent run's description and figures, the importances, the landing view) ranks these rows; the
notebooks' :func:`workbench.analysis.seed_spread` is the same statistic over a DataFrame.

A configuration is the row's knobs: every searched dimension present in the rows
(:data:`~workbench.trial.space.SEARCH_DIMS`, the target as ``target``), never ``seed``.

Example:
    >>> rows = [{"trial": 0, "pattern": "2:4", "target": 0.5, "seed": 0, "sparsity": 0.5, "accuracy": 0.98},
    ...         {"trial": 1, "pattern": "2:4", "target": 0.5, "seed": 1, "sparsity": 0.5, "accuracy": 0.96},
    ...         {"trial": 2, "pattern": "4x1", "target": 0.5, "seed": 0, "sparsity": 0.5, "accuracy": 0.97}]
    >>> [(r["pattern"], r["accuracy"], r["n_seeds"], r["trials"]) for r in by_configuration(rows)]
    [('2:4', 0.97, 2, (0, 1)), ('4x1', 0.97, 1, (2,))]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.trial.space import SEARCH_DIMS

__all__ = [
    "by_configuration",
    "configuration_key",
    "configuration_knobs",
    "several_seeds",
    "spread_column",
    "varying_knobs",
]

_MEANS = ("sparsity", "speedup", "wall_s", "peak_memory_mb")
"""Per-trial measurements averaged over a configuration's trials (NaN ones left out)."""


def configuration_knobs(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The knobs that define a configuration in ``rows``: searched dimensions present, the target; never ``seed``.

    The target is ``target`` (the console's rows) or, in rows without one, ``target_sparsity``
    (the notebooks' trials frame, as MLflow logs it).
    """
    present = {k for r in rows for k in r}
    target = "target" if "target" in present else "target_sparsity"
    dims = [d if d != "target_sparsity" else target for d in SEARCH_DIMS]
    return [d for d in dict.fromkeys(dims) if d in present]


def varying_knobs(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The knobs of :func:`configuration_knobs` but the target that take more than one value in ``rows``.

    What a table must show so that two configurations never look like one (decay type, pruning
    scope, ...): a knob with one value everywhere is left out. In the dimensions' order.

    Example:
        >>> varying_knobs([{"pattern": "2:4", "criterion": "snip", "target": 0.5},
        ...                {"pattern": "4x1", "criterion": "snip", "target": 0.6}])
        ['pattern']
    """
    knobs = [k for k in configuration_knobs(rows) if k not in ("target", "target_sparsity")]
    return [k for k in knobs if len({repr(r.get(k)) for r in rows}) > 1]


def several_seeds(configs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether some configuration of ``configs`` (:func:`by_configuration` rows) was trained with several seeds.

    Only then do tables show the spread over seeds, ``n_seeds`` and the trial numbers: a study of
    one seed reads as it always did.
    """
    return any(c.get("n_seeds", 1) > 1 for c in configs)


def configuration_key(row: Mapping[str, Any], knobs: Sequence[str]) -> tuple[str, ...]:
    """A hashable key of ``row``'s configuration: the ``repr`` of each knob's value (floats to 10 decimals)."""
    values = (row.get(k) for k in knobs)
    return tuple(repr(round(v, 10) if isinstance(v, float) else v) for v in values)


def spread_column(metric: str) -> str:
    """The name of the column holding the spread (standard deviation over seeds) of ``metric``."""
    return f"{metric}_std"


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _mean(values: Sequence[Any]) -> float:
    finite = _finite(values)
    return statistics.fmean(finite) if finite else math.nan


def by_configuration(rows: Sequence[Mapping[str, Any]], *, metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per configuration of ``rows``, in the order each configuration first appears.

    Each row keeps the knobs (:func:`configuration_knobs`) and, from its first trial, ``trial``,
    ``run_id`` and every other field; it replaces ``metric`` with the mean over seeds (the runs of
    one seed averaged first, so a repeated seed does not weigh twice) and adds
    ``<metric>_std`` (standard deviation over seeds, ddof=1; NaN for one seed), ``<metric>_min``,
    ``<metric>_max``, ``n_seeds``, ``trials`` (the trial numbers) and ``run_ids``; reached
    ``sparsity``, ``speedup``, ``wall_s`` and ``peak_memory_mb`` are means over the trials, and
    ``sparsity_min`` / ``sparsity_max`` say how far apart its trials landed. Rows without a finite
    ``metric`` still form a configuration (its metric is NaN).

    Rows that already are configurations (every one holds ``n_seeds``, ``trials`` and the
    ``metric``'s spread: this function's output) come back as they are, copied: grouping twice
    changes nothing, so a rule that groups its input (the matched tables) may be given either.
    """
    if rows and all("n_seeds" in r and "trials" in r and spread_column(metric) in r for r in rows):
        return [dict(r) for r in rows]
    knobs = configuration_knobs(rows)
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(configuration_key(row, knobs), []).append(row)
    out = []
    for members in groups.values():
        per_seed: dict[Any, list[Any]] = {}
        for r in members:
            per_seed.setdefault(r.get("seed"), []).append(r.get(metric))
        seed_means = _finite([_mean(v) for v in per_seed.values()])
        sparsities = _finite([r.get("sparsity") for r in members])
        row = dict(members[0])
        row.update(
            {
                metric: statistics.fmean(seed_means) if seed_means else math.nan,
                spread_column(metric): statistics.stdev(seed_means) if len(seed_means) > 1 else math.nan,
                f"{metric}_min": min(seed_means, default=math.nan),
                f"{metric}_max": max(seed_means, default=math.nan),
                "n_seeds": len(seed_means),
                "trials": tuple(r.get("trial") for r in members),
                "run_ids": tuple(r.get("run_id", "") for r in members),
                "sparsity_min": min(sparsities, default=math.nan),
                "sparsity_max": max(sparsities, default=math.nan),
                **{k: _mean([r.get(k) for r in members]) for k in _MEANS if any(k in r for r in members)},
            }
        )
        row.pop("seed", None)
        out.append(row)
    return out
