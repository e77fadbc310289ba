"""The best trial of each group in each bin of reached sparsity: patterns compared at the same sparsity.

A higher target reaches a higher sparsity and usually a worse metric, so comparing patterns or
criteria over all their trials mixes sparsities. Here a trial competes only with those of its group
(``by``: pattern, criterion) in the same bin of reached sparsity (width :data:`BIN_WIDTH`). The
study's console summary, its ``best_at_matched_sparsity.csv`` and ``best_<metric>/sparsity_<bin>``
metrics and the notebooks' :func:`workbench.analysis.best_at_matched_sparsity` all ask this module.

Example:
    >>> rows = [{"trial": 0, "pattern": "4x1", "sparsity": 0.62, "accuracy": 0.9},
    ...         {"trial": 1, "pattern": "4x1", "sparsity": 0.68, "accuracy": 0.95}]
    >>> best_per_bin(rows, ("pattern",))[("4x1",)]["0.60-0.70"]["trial"]
    1
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workbench.benchmarks.direction import best_first, better

__all__ = ["BIN_WIDTH", "MATCHED_COLUMNS", "best_per_bin", "matched_columns", "matched_rows", "sparsity_bin"]

BIN_WIDTH = 0.1
"""Width of the reached-sparsity bins in which configurations are compared."""


def sparsity_bin(sparsity: float, width: float = BIN_WIDTH) -> str:
    """The label of the reached-sparsity bin holding ``sparsity`` (``"0.60-0.70"``; 3-decimal rounding first)."""
    low = math.floor(round(sparsity, 3) / width + 1e-9) * width
    return f"{low:.2f}-{low + width:.2f}"


def best_per_bin(
    rows: Sequence[dict[str, Any]],
    by: Sequence[str],
    *,
    width: float = BIN_WIDTH,
    metric: str = "accuracy",
    direction: str = "maximize",
) -> dict[tuple[Any, ...], dict[str, dict[str, Any]]]:
    """The best row (``metric`` under ``direction``) per group of ``by`` and per bin of reached sparsity.

    Returns ``{group: {bin label: row}}``; ties keep the earlier trial.
    """
    out: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["trial"]):
        if not math.isfinite(row["sparsity"]):
            continue
        cells = out.setdefault(tuple(row.get(k) for k in by), {})
        label = sparsity_bin(row["sparsity"], width)
        if label not in cells or better(row[metric], cells[label][metric], direction):
            cells[label] = row
    return out


MATCHED_COLUMNS = (
    "sparsity_bin",
    "pattern",
    "criterion",
    "trial",
    "scheduler",
    "target",
    "sparsity",
    "accuracy",
    "run_id",
)
"""Columns of :func:`matched_rows` (``best_at_matched_sparsity.csv``); other knobs follow when searched."""


def matched_columns(metric: str = "accuracy") -> tuple[str, ...]:
    """:data:`MATCHED_COLUMNS` with the task's ``metric`` in place of accuracy."""
    return tuple(metric if c == "accuracy" else c for c in MATCHED_COLUMNS)


def matched_rows(
    rows: Sequence[dict[str, Any]],
    by: Sequence[str] = ("pattern", "criterion"),
    *,
    width: float = BIN_WIDTH,
    metric: str = "accuracy",
    direction: str = "maximize",
) -> list[dict[str, Any]]:
    """The best trial of each ``by`` group in each bin of reached sparsity, as flat rows.

    Comparisons hold the reached sparsity within one bin; the other knobs (scheduler, decay,
    scope, ...) are whatever that group's best trial used there (shown in its row), not held fixed.
    Ordered by bin, then ``metric`` (best first).
    """
    out = []
    for group, cells in best_per_bin(rows, by, width=width, metric=metric, direction=direction).items():
        for label, row in cells.items():
            out.append({"sparsity_bin": label, **dict(zip(by, group)), **{k: v for k, v in row.items() if k not in by}})
    return sorted(out, key=lambda r: (r["sparsity_bin"], best_first(r, metric, direction), r["trial"]))
