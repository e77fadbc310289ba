"""Matplotlib figures of a whole study, logged on its parent MLflow run.

Every function takes plain data (sequences and dicts) and returns a ``matplotlib.figure.Figure`` built without pyplot (no global state, no backend switch), so the
same picture is saved as a run artifact or displayed inline in a notebook.

Example:
    >>> from workbench.study.figures import plot_importances
    >>> fig = plot_importances({"pattern": 0.7, "target_sparsity": 0.3})
    >>> fig.axes[0].get_title()
    'Parameter importances'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

__all__ = ["plot_best_so_far", "plot_importances", "plot_pareto_front"]


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
