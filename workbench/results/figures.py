"""Matplotlib figures of a whole study, logged on its parent MLflow run.

Every function takes plain data (sequences and dicts) and returns a ``matplotlib.figure.Figure``
built without pyplot (no global state, no backend switch), so the same picture is saved as a run
artifact or displayed inline in a notebook.

:func:`plot_metric_vs_speedup` draws ``<metric>_vs_speedup.png`` when trials measured speed
(``training.measure_speed``, :mod:`workbench.trial.speed`): the x axis is ``dense latency /
slimmed latency`` (1.0: no faster than dense), colour = pattern, marker = criterion, the dense
model a star at speed-up 1.0. Unstructured and block patterns do not slim, so their trials sit
near 1.0; CPU latency is noisy, so read small differences around 1.0 as noise.

Example:
    >>> from workbench.results.figures import plot_importances
    >>> fig = plot_importances({"pattern": 0.7, "target_sparsity": 0.3})
    >>> fig.axes[0].get_title()
    'Parameter importances'
    >>> rows = [{"trial": 0, "pattern": "channelx1", "criterion": "magnitude", "speedup": 2.0, "accuracy": 0.9}]
    >>> plot_metric_vs_speedup(rows, dense=0.95).axes[0].get_xlabel()
    'measured speed-up of the slimmed model (dense latency / slimmed latency)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from workbench.benchmarks.direction import best_of
from workbench.results.front import has_speed
from workbench.results.styles import color_map, marker_map
from workbench.trial.space import is_posttraining

__all__ = [
    "plot_best_so_far",
    "plot_cost",
    "plot_importances",
    "plot_metric_vs_sparsity",
    "plot_metric_vs_speedup",
    "plot_pareto_front",
]


def plot_best_so_far(
    numbers: Sequence[int], values: Sequence[float], *, label: str = "accuracy", direction: str = "maximize"
) -> Figure:
    """Each finished trial's objective value and the best value reached so far (the lowest when ``direction``
    is ``minimize``)."""
    fig = Figure(figsize=(6, 4), dpi=80)
    ax = fig.subplots()
    ax.scatter(numbers, values, s=16, label=label)
    best: list[float] = []
    for value in values:
        best.append(value if not best else best_of((best[-1], value), direction))
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
    (the Pareto-optimal rows) is joined by a line. A post-training criterion (``wanda``,
    ``sparsegpt``) is drawn hollow and labelled "(post-training)" in the legend. 1200 x 750 px.

    Configuration rows (:func:`workbench.results.configs.by_configuration`) are drawn at their
    means; one with ``n_seeds`` > 1 gets an error bar of ± its ``<metric>_std`` (one standard
    deviation over seeds) and a front label naming its trials (``t1,4,7``).
    """
    fig = Figure(figsize=(12, 7.5), dpi=100)
    ax = fig.subplots()
    valid = [r for r in rows if r.get("sparsity") == r.get("sparsity") and r.get(metric) == r.get(metric)]
    colors = color_map(color, (r.get(color) for r in valid))  # the same per value in every study
    markers = marker_map(marker, (r.get(marker) for r in valid))
    spread = f"{metric}_std"
    seeds = sorted({int(r["n_seeds"]) for r in valid if r.get("n_seeds", 1) > 1 and _finite(r.get(spread))})
    for r in valid:
        _point(ax, r["sparsity"], r[metric], colors[str(r.get(color))], markers[str(r.get(marker))], r.get(marker))
        if r.get("n_seeds", 1) > 1 and _finite(r.get(spread)):
            ax.errorbar(
                r["sparsity"],
                r[metric],
                yerr=r[spread],
                fmt="none",
                ecolor=colors[str(r.get(color))],
                capsize=5,
                lw=1.5,
            )
    handles = [Line2D([], [], color=v, marker="s", ls="", ms=10, label=f"{color} {k}") for k, v in colors.items()]
    handles += _marker_handles(markers, marker)
    if seeds:
        n = "/".join(str(k) for k in seeds)
        handles.append(Line2D([], [], color="dimgray", marker="|", ms=14, ls="", label=f"mean ± std over {n} seeds"))
    if dense is not None:
        ax.axhline(dense, color="black", ls="--", lw=1.2, zorder=1)
        handles.append(Line2D([], [], color="black", ls="--", label=f"dense model {dense:.4f}"))
    if front:
        ordered = sorted(front, key=lambda r: r["sparsity"])
        ax.plot([r["sparsity"] for r in ordered], [r[metric] for r in ordered], "-", color="black", lw=1.2, zorder=2)
        for r in ordered:
            if "trial" in r:
                label = ",".join(str(t) for t in r["trials"]) if len(r.get("trials", ())) > 1 else r["trial"]
                ax.annotate(
                    f"t{label}", (r["sparsity"], r[metric]), xytext=(5, 5), textcoords="offset points", fontsize=10
                )
        handles.append(Line2D([], [], color="black", label="Pareto front (tN = trial N)"))
    ax.legend(handles=handles, fontsize=11, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(title or f"{metric} vs sparsity reached: which pattern and criterion keep the most", fontsize=14)
    ax.set_xlabel("sparsity reached (elementwise over matmul/gemm/conv)", fontsize=12)
    ax.set_ylabel(metric, fontsize=12)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=11)
    fig.subplots_adjust(left=0.08, right=0.71, bottom=0.1, top=0.92)
    return fig


def _point(ax: Any, x: float, y: float, color: str, marker: str, group: Any) -> None:
    """One trial: filled, or hollow (edge in ``color``) when ``group`` is a post-training criterion."""
    hollow = is_posttraining(group)
    ax.scatter(
        x,
        y,
        facecolors="none" if hollow else color,
        edgecolors=color if hollow else "black",
        marker=marker,
        s=90,
        alpha=0.85,
        linewidth=1.8 if hollow else 0.5,
        zorder=3,
    )


def _finite(value: Any) -> bool:
    """A real number, not NaN nor infinite: an error bar can be drawn from it."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    """A number above zero (not NaN, not missing): what a cost axis can place."""
    return isinstance(value, (int, float)) and value == value and value > 0


def _marker_handles(markers: Mapping[str, str], name: str) -> list[Line2D]:
    """Legend entries of the marker groups; post-training criteria hollow and labelled as such."""
    return [
        Line2D(
            [],
            [],
            color="dimgray",
            marker=v,
            ls="",
            ms=9,
            markerfacecolor="none" if is_posttraining(k) else "dimgray",
            label=f"{name} {k}" + (" (post-training)" if is_posttraining(k) else ""),
        )
        for k, v in markers.items()
    ]


def plot_cost(rows: Sequence[Mapping[str, Any]], *, metric: str = "accuracy", marker: str = "criterion") -> Figure:
    """The task's ``metric`` against each trial's cost: wall time (left) and peak memory (right).

    ``rows`` hold ``metric``, ``wall_s`` (seconds without the dense baseline) and ``peak_memory_mb`` (NaN where not recorded) and
    ``marker`` (criterion): one colour and marker per criterion, post-training ones hollow.
    Wall time is on a log axis when it spans a decade or more (a one-shot prune and a fine-tuning
    run differ by orders), else linear.
    """
    fig = Figure(figsize=(12, 5), dpi=100)
    axes = fig.subplots(1, 2, sharey=True)
    valid = [r for r in rows if r.get(metric) == r.get(metric)]
    groups = sorted({str(r.get(marker)) for r in valid})
    colors, markers = color_map(marker, groups), marker_map(marker, groups)
    walls = [r["wall_s"] for r in valid if _positive(r.get("wall_s"))]
    log_wall = bool(walls) and max(walls) >= 10 * min(walls)  # within a decade, a log axis shows one label at most
    labels = ("wall time (s, log)" if log_wall else "wall time (s)", "peak memory (MiB, RSS)")
    for ax, x, label in zip(axes, ("wall_s", "peak_memory_mb"), labels):
        for r in valid:
            if _positive(r.get(x)):
                g = str(r.get(marker))
                _point(ax, r[x], r[metric], colors[g], markers[g], r.get(marker))
        ax.set_xlabel(label, fontsize=11)
        ax.grid(alpha=0.3)
    if log_wall:  # labelled at 1-2-5
        axes[0].set_xscale("log")
        axes[0].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes[0].xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel(metric, fontsize=11)
    handles = _marker_handles(markers, marker)
    for handle, g in zip(handles, markers):
        handle.set_color(colors[g])
        if not is_posttraining(g):
            handle.set_markerfacecolor(colors[g])
    axes[1].legend(handles=handles, fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle(f"{metric} vs cost per {marker}", fontsize=13)
    fig.subplots_adjust(left=0.07, right=0.76, bottom=0.12, top=0.9, wspace=0.08)
    return fig


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
