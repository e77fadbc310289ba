"""Matplotlib figures shared by the MLflow artifacts and the analysis notebooks.

Every function takes plain data (a :class:`~workbench.trial_types.TrialResult`, dicts, a pandas
DataFrame) and returns a ``matplotlib.figure.Figure`` built without pyplot (no global state, no backend switch), so the
same picture is saved as a run artifact or displayed inline in a notebook.

Example:
    >>> from workbench.plots import plot_importances
    >>> fig = plot_importances({"pattern": 0.7, "target_sparsity": 0.3})
    >>> fig.axes[0].get_title()
    'Parameter importances'
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator

if TYPE_CHECKING:
    from workbench.trial_types import TrialResult

__all__ = ["plot_best_so_far", "plot_importances", "plot_pareto_front", "plot_sparsity_curves"]

_MAX_LEGEND = 12


def _series(curve: Mapping[int, float]) -> tuple[list[int], list[float]]:
    steps = sorted(curve)
    return steps, [curve[s] for s in steps]


def plot_sparsity_curves(result: "TrialResult") -> Figure:
    """Global sparsity curves (left) and each layer's elementwise sparsity (right) over steps.

    Built with ``Figure`` directly (no pyplot state), so it is thread-safe; shared y axis and
    five ticks per axis keep drawing it to ~0.1 s (the log writer draws one per trial).
    """
    fig = Figure(figsize=(10, 3.6), dpi=72)
    left, right = fig.subplots(1, 2, sharey=True)
    for key, curve in sorted(result.sparsity.items()):
        left.plot(*_series(curve), label=key, drawstyle="steps-post")
    left.set(title="Global sparsity", xlabel="step", ylabel="sparsity", ylim=(-0.02, 1.02))
    if result.sparsity:
        left.legend(fontsize=7, loc="lower right")
    for name, curve in sorted(result.layer_sparsity.items()):
        right.plot(*_series(curve), label=name, drawstyle="steps-post", linewidth=1)
    right.set(title="Per-layer sparsity (elementwise)", xlabel="step")
    if 0 < len(result.layer_sparsity) <= _MAX_LEGEND:
        right.legend(fontsize=7, loc="lower right")
    for ax in (left, right):  # few fixed ticks: tick creation is most of the drawing time
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.yaxis.set_major_locator(FixedLocator([0.0, 0.25, 0.5, 0.75, 1.0]))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.15)  # tight_layout costs 0.15 s
    return fig


def plot_best_so_far(numbers: Sequence[int], values: Sequence[float], *, label: str = "accuracy") -> Figure:
    """Each finished trial's objective value and the best value reached so far (maximised)."""
    fig = Figure(figsize=(6, 4), dpi=80)
    ax = fig.subplots()
    ax.scatter(numbers, values, s=16, label=label)
    best: list[float] = []
    for value in values:
        best.append(value if not best else max(best[-1], value))
    ax.plot(numbers, best, color="tab:red", drawstyle="steps-post", label="best so far")
    ax.set(title="Optimization history", xlabel="trial", ylabel=label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pareto_front(points: Sequence[tuple[float, float]], front: Sequence[tuple[float, float]]) -> Figure:
    """All trials as (sparsity, accuracy) points, the Pareto-optimal ones highlighted."""
    fig = Figure(figsize=(6, 4), dpi=80)
    ax = fig.subplots()
    if points:
        ax.scatter(*zip(*points), s=16, color="tab:gray", label="trials")
    if front:
        ordered = sorted(front)
        ax.plot(*zip(*ordered), "o-", color="tab:red", label="Pareto front")
    ax.set(title="Accuracy vs sparsity", xlabel="sparsity", ylabel="accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_importances(importances: Mapping[str, float], *, title: str = "Parameter importances") -> Figure:
    """Horizontal bars of Optuna parameter importances (largest on top)."""
    fig = Figure(figsize=(6, 0.5 + 0.45 * max(1, len(importances))), dpi=80)
    ax = fig.subplots()
    items: list[tuple[str, Any]] = sorted(importances.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set(title=title, xlabel="importance")
    fig.tight_layout()
    return fig
