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
from matplotlib.lines import Line2D

__all__ = ["plot_best_so_far", "plot_importances", "plot_metric_vs_sparsity", "plot_pareto_front"]

_MARKERS = "osD^vP*Xph<>"


def plot_best_so_far(
    numbers: Sequence[int], values: Sequence[float], *, label: str = "accuracy", direction: str = "maximize"
) -> Figure:
    """Each finished trial's objective value and the best value reached so far (the lowest when ``direction``
    is ``minimize``)."""
    pick = min if direction == "minimize" else max
    fig = Figure(figsize=(6, 4), dpi=80)
    ax = fig.subplots()
    ax.scatter(numbers, values, s=16, label=label)
    best: list[float] = []
    for value in values:
        best.append(value if not best else pick(best[-1], value))
    ax.plot(numbers, best, color="tab:red", drawstyle="steps-post", label="best so far")
    ax.set(title="Optimization history", xlabel="trial", ylabel=label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pareto_front(
    points: Sequence[tuple[float, float]], front: Sequence[tuple[float, float]], *, metric: str = "accuracy"
) -> Figure:
    """All trials as (sparsity, ``metric``) points, the Pareto-optimal ones highlighted."""
    fig = Figure(figsize=(6, 4), dpi=80)
    ax = fig.subplots()
    if points:
        ax.scatter(*zip(*points), s=16, color="tab:gray", label="trials")
    if front:
        ordered = sorted(front)
        ax.plot(*zip(*ordered), "o-", color="tab:red", label="Pareto front")
    ax.set(title=f"{metric} vs sparsity", xlabel="sparsity", ylabel=metric)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_importances(importances: Mapping[str, float], *, title: str = "Parameter importances") -> Figure:
    """Horizontal bars of Optuna parameter importances (largest on top)."""
    fig = Figure(figsize=(10, 1.2 + 0.5 * max(1, len(importances))), dpi=100)
    ax = fig.subplots()
    items: list[tuple[str, Any]] = sorted(importances.items(), key=lambda kv: kv[1])
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=10)
    ax.set_title(title, fontsize=12)
    ax.set_xlabel("importance", fontsize=11)
    ax.tick_params(labelsize=11)
    ax.set_xlim(0, max([v for _, v in items] or [1]) * 1.15 or 1)
    fig.tight_layout()
    return fig


def plot_metric_vs_sparsity(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str = "accuracy",
    dense: float | None = None,
    front: Sequence[Mapping[str, Any]] = (),
    color: str = "pattern",
    marker: str = "criterion",
    title: str | None = None,
) -> Figure:
    """Every trial at the sparsity it reached: colour = ``color`` (pattern), marker = ``marker`` (criterion).

    ``rows`` hold ``sparsity`` (reached), ``metric`` and the two grouping keys (``trial`` labels
    the ``front`` points). ``dense`` draws the dense model's metric as a dashed line; ``front``
    (the Pareto-optimal rows) is joined by a line. 1200 x 750 px.
    """
    fig = Figure(figsize=(12, 7.5), dpi=100)
    ax = fig.subplots()
    valid = [r for r in rows if r.get("sparsity") == r.get("sparsity") and r.get(metric) == r.get(metric)]
    colors = {v: f"C{i % 10}" for i, v in enumerate(sorted({str(r.get(color)) for r in valid}))}
    markers = {v: _MARKERS[i % len(_MARKERS)] for i, v in enumerate(sorted({str(r.get(marker)) for r in valid}))}
    for r in valid:
        ax.scatter(
            r["sparsity"],
            r[metric],
            color=colors[str(r.get(color))],
            marker=markers[str(r.get(marker))],
            s=90,
            alpha=0.85,
            edgecolor="black",
            linewidth=0.5,
            zorder=3,
        )
    handles = [Line2D([], [], color=v, marker="s", ls="", ms=10, label=f"{color} {k}") for k, v in colors.items()]
    handles += [
        Line2D([], [], color="dimgray", marker=v, ls="", ms=9, label=f"{marker} {k}") for k, v in markers.items()
    ]
    if dense is not None:
        ax.axhline(dense, color="black", ls="--", lw=1.2, zorder=1)
        handles.append(Line2D([], [], color="black", ls="--", label=f"dense model {dense:.4f}"))
    if front:
        ordered = sorted(front, key=lambda r: r["sparsity"])
        ax.plot([r["sparsity"] for r in ordered], [r[metric] for r in ordered], "-", color="black", lw=1.2, zorder=2)
        for r in ordered:
            if "trial" in r:
                ax.annotate(
                    f"t{r['trial']}", (r["sparsity"], r[metric]), xytext=(5, 5), textcoords="offset points", fontsize=10
                )
        handles.append(Line2D([], [], color="black", label="Pareto front (tN = trial N)"))
    ax.legend(handles=handles, fontsize=11, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(title or f"{metric} vs sparsity reached: which pattern and criterion keep the most", fontsize=14)
    ax.set_xlabel("sparsity reached (elementwise over matmul/gemm/conv)", fontsize=12)
    ax.set_ylabel(metric, fontsize=12)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=11)
    fig.subplots_adjust(left=0.08, right=0.78, bottom=0.1, top=0.92)
    return fig
