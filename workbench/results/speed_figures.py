"""The study's metric against the measured speed-up of each trial's slimmed model.

Drawn on the parent run as ``<metric>_vs_speedup.png`` when trials measured speed
(``training.measure_speed``, :mod:`workbench.trial.speed`): the x axis is ``dense latency /
slimmed latency`` (1.0: no faster than dense), colour = pattern, marker = criterion, the dense
model a star at speed-up 1.0. Unstructured and block patterns do not slim, so their trials sit
near 1.0; CPU latency is noisy, so read small differences around 1.0 as noise.

Example:
    >>> rows = [{"trial": 0, "pattern": "channelx1", "criterion": "magnitude", "speedup": 2.0, "accuracy": 0.9}]
    >>> fig = plot_metric_vs_speedup(rows, dense=0.95)
    >>> fig.axes[0].get_xlabel()
    'measured speed-up of the slimmed model (dense latency / slimmed latency)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from workbench.results.figures import plot_metric_vs_sparsity
from workbench.results.front import has_speed

__all__ = ["plot_metric_vs_speedup"]


def plot_metric_vs_speedup(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str = "accuracy",
    dense: float | None = None,
    front: Sequence[Mapping[str, Any]] = (),
    color: str = "pattern",
    marker: str = "criterion",
) -> Figure:
    """Every trial at its measured ``speedup``: colour = ``color``, marker = ``marker``, ``front`` joined.

    ``rows`` hold ``speedup``, ``metric`` and the grouping keys; rows without a speed-up are left
    out. ``dense`` (the dense model's metric) is drawn as a star at speed-up 1.0.
    """
    moved = [{**r, "sparsity": r["speedup"]} for r in rows if has_speed([r])]
    fig = plot_metric_vs_sparsity(
        moved,
        metric=metric,
        dense=dense,
        front=[{**r, "sparsity": r["speedup"]} for r in front],
        color=color,
        marker=marker,
        title=f"{metric} vs measured speed-up: which pattern and criterion run faster",
    )
    ax = fig.axes[0]
    ax.axvline(1.0, color="grey", ls=":", lw=1.0, zorder=1)
    if dense is not None:
        ax.scatter([1.0], [dense], marker="*", s=260, color="black", zorder=4, label="dense")
    ax.set_xlabel("measured speed-up of the slimmed model (dense latency / slimmed latency)", fontsize=12)
    return fig
