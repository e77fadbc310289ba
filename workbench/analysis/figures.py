"""Matplotlib figures of the analysis notebooks, drawn from the frames of :mod:`workbench.analysis`.

Like :mod:`workbench.plots`, every function returns a ``matplotlib.figure.Figure`` built without
pyplot (no global state), so a notebook shows it with ``display(fig)`` and a script can
``fig.savefig(...)`` it. Figures shared with the run artifacts (importances, Pareto front of the
parent run, a trial's own sparsity curves) live in :mod:`workbench.plots`.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sparsity": [0.5, 0.8], "accuracy": [0.9, 0.8], "pattern": ["4x1", "2:4"],
    ...                    "criterion": ["snip", "magnitude"]})
    >>> fig = plot_accuracy_vs_sparsity(df)
    >>> fig.axes[0].get_xlabel()
    'achieved sparsity'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from workbench.analysis.stats import seed_spread
from workbench.pruner import ConfigError

__all__ = [
    "plot_accuracy_vs_sparsity",
    "plot_eval_curves",
    "plot_global_curves",
    "plot_layer_curves",
    "plot_layer_heatmap",
    "plot_metric_by_group",
]

_MARKERS = "osD^vP*Xph<>"
_MAX_LEGEND = 12


def _label(trial: Any, run_id: str) -> str:
    return f"trial {trial}" if not pd.isna(trial) else f"run {run_id[:8]}"


def _one_run(curves: pd.DataFrame, run_id: str | None) -> tuple[pd.DataFrame, str]:
    runs = list(dict.fromkeys(curves["run_id"]))
    if run_id is None:
        if len(runs) != 1:
            raise ConfigError(f"run_id: the frame holds {len(runs)} runs, pick one; allowed: {', '.join(runs)}")
        run_id = runs[0]
    elif run_id not in runs:
        raise ConfigError(f"run_id: {run_id!r} is not in the frame; allowed: {', '.join(runs)}")
    rows = curves[curves["run_id"] == run_id]
    return rows, _label(rows["trial"].iloc[0], run_id)


def plot_accuracy_vs_sparsity(
    df: pd.DataFrame,
    *,
    x: str = "sparsity",
    y: str = "accuracy",
    color: str = "pattern",
    marker: str = "criterion",
    front: pd.DataFrame | None = None,
) -> Figure:
    """Each trial as a point: colour by ``color`` (pattern), marker by ``marker`` (criterion).

    ``front`` (e.g. :func:`workbench.analysis.pareto_front` of ``df``) is drawn as a line on top.
    """
    fig = Figure(figsize=(7.5, 4.5), dpi=80)
    ax = fig.subplots()
    valid = df.dropna(subset=[x, y])
    colors = {v: f"C{i % 10}" for i, v in enumerate(sorted(valid[color].astype(str).unique()))}
    markers = {v: _MARKERS[i % len(_MARKERS)] for i, v in enumerate(sorted(valid[marker].astype(str).unique()))}
    for (c, m), rows in valid.groupby([valid[color].astype(str), valid[marker].astype(str)]):
        ax.scatter(
            rows[x], rows[y], color=colors[c], marker=markers[m], s=40, alpha=0.85, edgecolor="black", linewidth=0.4
        )
    if front is not None and len(front):
        ordered = front.sort_values(x)
        ax.plot(ordered[x], ordered[y], "-", color="black", linewidth=1, label="Pareto front", zorder=0)
    handles = [Line2D([], [], color=v, marker="s", linestyle="", label=f"{color}={k}") for k, v in colors.items()]
    handles += [Line2D([], [], color="gray", marker=v, linestyle="", label=f"{marker}={k}") for k, v in markers.items()]
    handles += [h for h in ax.get_legend_handles_labels()[0]]  # the Pareto front line, when drawn
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set(
        title=f"{y} vs {'achieved sparsity' if x == 'sparsity' else x}",
        xlabel="achieved sparsity" if x == "sparsity" else x,
        ylabel=y,
    )
    fig.subplots_adjust(left=0.1, right=0.7, bottom=0.12, top=0.9)
    return fig


def plot_layer_curves(curves: pd.DataFrame, *, run_id: str | None = None) -> Figure:
    """One run's per-layer elementwise (left) and blockwise (right) sparsity against step.

    For an N:M run the right panel is the fraction of N:M groups satisfied (``nm_groups_satisfied``),
    which reads 1.0 once every group holds N zeros: not a sparsity.
    """
    rows, title = _one_run(curves, run_id)
    nm = "nm_groups_satisfied" in rows and rows["nm_groups_satisfied"].notna().any()
    second = "nm_groups_satisfied" if nm else "blockwise"
    fig = Figure(figsize=(10, 3.8), dpi=80)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, value in zip(axes, ("elementwise", second)):
        for layer, layer_rows in rows.groupby("layer", sort=True):
            points = layer_rows.dropna(subset=[value])
            ax.plot(points["step"], points[value], drawstyle="steps-post", linewidth=1, label=layer)
        what = "fraction of N:M groups satisfied" if value == "nm_groups_satisfied" else f"{value} sparsity"
        ax.set(title=f"{title}: {what} per layer", xlabel="step", ylim=(-0.02, 1.02))
    axes[0].set_ylabel("sparsity")
    if 0 < rows["layer"].nunique() <= _MAX_LEGEND:
        axes[1].legend(fontsize=7, loc="lower right")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.08)
    return fig


def plot_layer_heatmap(curves: pd.DataFrame, *, run_id: str | None = None, value: str = "elementwise") -> Figure:
    """One run's sparsity as a layer x step heatmap (a value holds until the next logged step)."""
    if value not in ("elementwise", "blockwise", "nm_groups_satisfied"):
        raise ConfigError(f"value: {value!r} is not allowed; allowed: elementwise, blockwise, nm_groups_satisfied")
    rows, title = _one_run(curves, run_id)
    grid = rows.pivot_table(index="layer", columns="step", values=value, aggfunc="last").sort_index()
    grid = grid.sort_index(axis=1).ffill(axis=1)
    steps = np.asarray(grid.columns, dtype=float)
    edges = np.append(steps, steps[-1] + (np.diff(steps).min() if len(steps) > 1 else 1.0)) if len(steps) else [0, 1]
    fig = Figure(figsize=(8, 1.2 + 0.35 * max(1, len(grid))), dpi=80)
    ax = fig.subplots()
    mesh = ax.pcolormesh(
        edges, np.arange(len(grid) + 1), grid.to_numpy(dtype=float), vmin=0.0, vmax=1.0, cmap="viridis"
    )
    ax.set_yticks(np.arange(len(grid)) + 0.5, [str(i) for i in grid.index], fontsize=7)
    ax.invert_yaxis()
    ax.set(title=f"{title}: {value} sparsity (layer x step)", xlabel="step")
    fig.colorbar(mesh, ax=ax, label="sparsity")
    fig.tight_layout()
    return fig


def plot_global_curves(frame: pd.DataFrame, *, metrics: Sequence[str] | None = None) -> Figure:
    """Global sparsity curves of several runs overlaid, one panel per metric (``global_curves_frame``)."""
    names = list(metrics) if metrics is not None else sorted(frame["metric"].unique())
    fig = Figure(figsize=(4.2 * max(1, len(names)), 3.6), dpi=80)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(names)), sharey=True))
    runs = list(dict.fromkeys(zip(frame["trial"], frame["run_id"])))
    for ax, name in zip(axes, names):
        for i, (trial, run_id) in enumerate(runs):
            rows = frame[(frame["run_id"] == run_id) & (frame["metric"] == name)]
            ax.plot(
                rows["step"], rows["value"], drawstyle="steps-post", color=f"C{i % 10}", label=_label(trial, run_id)
            )
        ax.set(title=name, xlabel="step", ylim=(-0.02, 1.02))
    axes[0].set_ylabel("sparsity")
    if 0 < len(runs) <= _MAX_LEGEND:
        axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_eval_curves(frame: pd.DataFrame, *, dense: pd.Series | None = None) -> Figure:
    """Test accuracy during fine-tuning, one line per run (``eval_frame``).

    ``dense`` (run_id -> dense accuracy, e.g. ``trials.set_index("run_id").dense_accuracy``) adds
    each run's dense baseline as a dotted line.
    """
    fig = Figure(figsize=(6.5, 4), dpi=80)
    ax = fig.subplots()
    runs = list(dict.fromkeys(zip(frame["trial"], frame["run_id"])))
    for i, (trial, run_id) in enumerate(runs):
        rows = frame[frame["run_id"] == run_id]
        ax.plot(rows["step"], rows["accuracy"], "o-", markersize=3, color=f"C{i % 10}", label=_label(trial, run_id))
        if dense is not None and run_id in dense.index and not pd.isna(dense[run_id]):
            ax.axhline(float(dense[run_id]), color=f"C{i % 10}", linestyle=":", linewidth=1)
    ax.set(
        title="Accuracy during fine-tuning" + (" (dotted: dense)" if dense is not None else ""),
        xlabel="step",
        ylabel="accuracy",
    )
    if 0 < len(runs) <= _MAX_LEGEND:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_metric_by_group(
    df: pd.DataFrame,
    *,
    x: str = "target_sparsity",
    groups: Sequence[str] = ("criterion",),
    metric: str = "accuracy",
    seed: str = "seed",
) -> Figure:
    """``metric`` against ``x``, one panel per column of ``groups``, one line per group value.

    Lines join the mean over seeds (:func:`workbench.analysis.seed_spread`); where a point has
    several seeds an error bar shows one standard deviation; every run is drawn as a faint dot.
    """
    fig = Figure(figsize=(5.2 * max(1, len(groups)), 4), dpi=80)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(groups)), sharey=True))
    valid = df.dropna(subset=[x, metric])
    for ax, group in zip(axes, groups):
        spread = seed_spread(valid, [group, x], metric=metric, seed=seed)
        for i, (value, rows) in enumerate(spread.groupby(group, sort=True)):
            rows = rows.sort_values(x)
            color = f"C{i % 10}"
            runs = valid[valid[group] == value]
            ax.scatter(runs[x], runs[metric], color=color, s=12, alpha=0.35)
            ax.plot(rows[x], rows[f"{metric}_mean"], "o-", color=color, markersize=4, label=str(value))
            several = rows[rows["n_seeds"] > 1]
            if len(several):
                ax.errorbar(
                    several[x],
                    several[f"{metric}_mean"],
                    yerr=several[f"{metric}_std"],
                    fmt="none",
                    ecolor=color,
                    capsize=3,
                    linewidth=1,
                )
        ax.set(title=f"{metric} vs {x} per {group}", xlabel=x)
        if len(ax.get_legend_handles_labels()[0]):
            ax.legend(fontsize=7, title=group, title_fontsize=7)
    axes[0].set_ylabel(metric)
    fig.tight_layout()
    return fig
