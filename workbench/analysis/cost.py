"""What each method cost: the task's metric against wall time and peak memory (notebook 01).

Reads the columns :func:`workbench.analysis.trials_frame` gives every trial: ``wall_s`` (seconds
without the dense baseline), ``peak_memory_mb`` (the process's peak resident memory, :mod:`workbench.trial.cost`) and
``posttraining`` (whether the criterion prunes once from calibration data).

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"criterion": ["wanda", "magnitude", "magnitude"], "accuracy": [0.9, 0.8, 0.85],
    ...                    "wall_s": [1.0, 10.0, 12.0], "peak_memory_mb": [500.0, 600.0, 640.0]})
    >>> cost_table(df)[["criterion", "trials", "best", "median_wall_s"]].to_dict("records")[0]
    {'criterion': 'magnitude', 'trials': 2, 'best': 0.85, 'median_wall_s': 11.0}
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from workbench.benchmarks.direction import best_of, check_direction
from workbench.results.figures import plot_cost as _plot_cost
from workbench.trial.space import is_posttraining

__all__ = ["cost_table", "plot_cost"]


def cost_table(
    df: pd.DataFrame, *, metric: str = "accuracy", direction: str = "maximize", by: str = "criterion"
) -> pd.DataFrame:
    """Per ``by`` value (criterion): ``posttraining``, ``trials``, ``best`` ``metric`` (under ``direction``), median ``wall_s``
    and ``peak_memory_mb`` (NaN where not logged), one row each, sorted by ``by``."""
    check_direction(direction)
    rows = []
    for value, group in df.groupby(by, sort=True):
        best = best_of(group[metric].dropna(), direction) if group[metric].notna().any() else float("nan")
        rows.append(
            {
                by: value,
                "posttraining": is_posttraining(value),
                "trials": len(group),
                "best": float(best),
                "median_wall_s": float(group["wall_s"].median()) if "wall_s" in group else float("nan"),
                "median_peak_memory_mb": float(group["peak_memory_mb"].median())
                if "peak_memory_mb" in group
                else float("nan"),
            }
        )
    columns = [by, "posttraining", "trials", "best", "median_wall_s", "median_peak_memory_mb"]
    return pd.DataFrame(rows, columns=columns)


def plot_cost(df: pd.DataFrame, *, metric: str = "accuracy", marker: str = "criterion") -> Figure:
    """``metric`` against wall time (log) and peak memory, one marker per ``marker`` value, post-training hollow.

    The same figure as the study's ``<metric>_vs_cost.png``.
    """
    keep = [c for c in (metric, "wall_s", "peak_memory_mb", marker) if c in df]
    return _plot_cost(df[keep].to_dict("records"), metric=metric, marker=marker)
