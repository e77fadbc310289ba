"""Measured speed-up (notebook 01): the task's metric against each trial's slimmed-model speed-up.

Trials that ran with ``training.measure_speed`` (or a ``[<metric>, speedup]`` study) log
``speed/*`` metrics (:mod:`workbench.trial.speed`); :func:`workbench.analysis.trials_frame` reads
them into the columns of :data:`SPEED_COLUMNS` (NaN where not measured). :func:`has_speed` says
whether a frame holds any; :func:`plot_speedup` draws the parent run's ``<metric>_vs_speedup.png``.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"pattern": ["channelx1", "1x1"], "criterion": ["magnitude"] * 2,
    ...                    "accuracy": [0.9, 0.95], "speedup": [2.0, 1.0]})
    >>> has_speed(df), has_speed(df.drop(columns="speedup"))
    (True, False)
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from workbench.results.figures import plot_metric_vs_speedup
from workbench.results.front import front
from workbench.results.front import has_speed as rows_have_speed

__all__ = ["SPEED_COLUMNS", "has_speed", "plot_speedup"]

SPEED_COLUMNS = {
    "speed/speedup": "speedup",
    "speed/param_ratio": "param_ratio",
    "speed/dense_ms": "dense_ms",
    "speed/slim_ms": "slim_ms",
}
"""The ``speed/*`` metrics :func:`~workbench.analysis.trials_frame` reads, and their column names."""


def has_speed(df: pd.DataFrame) -> bool:
    """Whether ``df`` has a measured ``speedup`` in any row (:func:`workbench.results.front.has_speed`)."""
    return "speedup" in df and rows_have_speed(df[["speedup"]].to_dict("records"))


def plot_speedup(
    df: pd.DataFrame,
    *,
    metric: str = "accuracy",
    direction: str = "maximize",
    color: str = "pattern",
    marker: str = "criterion",
) -> Figure:
    """``metric`` against the measured speed-up, colour = ``color``, marker = ``marker``, dense at 1.0.

    The Pareto front (best ``metric`` under ``direction``, highest speed-up) is joined; the dense
    value is the mean of ``dense_<metric>`` where logged. The same figure as the study's
    ``<metric>_vs_speedup.png``.
    """
    keep = [c for c in ("trial", metric, "speedup", color, marker) if c in df]
    rows = df[keep].to_dict("records")
    dense_col = f"dense_{metric}"
    dense = float(df[dense_col].mean()) if dense_col in df and df[dense_col].notna().any() else None
    shown = front(rows, metric=metric, direction=direction, axis="speedup") if "trial" in df else []
    return plot_metric_vs_speedup(rows, metric=metric, dense=dense, front=shown, color=color, marker=marker)
