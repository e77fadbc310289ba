"""Matplotlib figures of the analysis notebooks, drawn from the frames of :mod:`workbench.analysis`.

Every function returns a ``matplotlib.figure.Figure`` built without
pyplot (no global state), so a notebook shows it with ``display(fig)`` and a script can
``fig.savefig(...)`` it. Figures shared with the run artifacts (importances, Pareto front of the
parent run) live in :mod:`workbench.results.figures`.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sparsity": [0.5, 0.8], "accuracy": [0.9, 0.8], "pattern": ["4x1", "2:4"],
    ...                    "criterion": ["snip", "magnitude"]})
    >>> fig = plot_accuracy_vs_sparsity(df)
    >>> fig.axes[0].get_xlabel()
    'sparsity reached (elementwise over matmul/gemm/conv)'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from workbench.analysis.stats import seed_spread
from workbench.pruner.errors import ConfigError
from workbench.results.figures import plot_metric_vs_sparsity
from workbench.results.styles import color_of

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
_LINESTYLES = ("-", "--", "-.", ":")


def line_styles(n: int) -> list[tuple[str, str]]:
    """``n`` distinguishable (colour, linestyle) pairs, one per line, no two alike.

    Up to 10: the tab10 colours, solid; up to 20: the tab20 colours (pairs of light and dark hues),
    solid; beyond: tab20 again with a dashed, dash-dot, then dotted line for each further 20, and
    past 80 evenly spaced colours of a cyclic map under the four styles.
    """
    if n <= 10:
        return [(to_hex(colormaps["tab10"](i)), "-") for i in range(n)]
    if n <= 20 * len(_LINESTYLES):
        tab20 = colormaps["tab20"]
        return [(to_hex(tab20(i % 20)), _LINESTYLES[i // 20]) for i in range(n)]
    per_style = -(-n // len(_LINESTYLES))
    hsv = colormaps["hsv"]
    return [(to_hex(hsv((i % per_style) / per_style)), _LINESTYLES[i // per_style]) for i in range(n)]


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
    dense: float | None = None,
) -> Figure:
    """Each trial at the sparsity it reached: colour = ``color`` (pattern), marker = ``marker`` (criterion).

    The same figure as the study's ``accuracy_vs_sparsity.png``
    (:func:`workbench.results.figures.plot_metric_vs_sparsity`): given configurations
    (:func:`~workbench.analysis.configurations_frame`), each is drawn at its mean with an error bar
    of ± ``<y>_std`` where it has several seeds. ``front`` (e.g.
    :func:`workbench.analysis.pareto_front` of ``df``) is joined by a line; ``dense`` (default: the
    mean ``dense_<y>`` of ``df`` when it has one: ``dense_perplexity`` for ``y="perplexity"``) is drawn
    as a dashed line.
    """
    if dense is None and f"dense_{y}" in df and df[f"dense_{y}"].notna().any():
        dense = float(df[f"dense_{y}"].mean())
    keep = [c for c in dict.fromkeys((color, marker, "trial", "trials", "n_seeds")) if c not in (x, y)]

    def points(frame: pd.DataFrame) -> list[dict[str, Any]]:  # x as "sparsity", y as "_value" (its spread too)
        rows = frame.to_dict("records")
        spread = {"_value_std": f"{y}_std"} if f"{y}_std" in frame else {}
        return [
            dict(
                {c: r.get(c) for c in keep if c in r},
                sparsity=r[x],
                _value=r[y],
                **{k: r[v] for k, v in spread.items()},
            )
            for r in rows
        ]

    fig = plot_metric_vs_sparsity(
        points(df),
        metric="_value",
        dense=dense,
        front=[] if front is None else points(front),
        color=color,
        marker=marker,
        title=f"{y} vs {'sparsity reached' if x == 'sparsity' else x}",
    )
    fig.axes[0].set_ylabel(y, fontsize=12)
    if x != "sparsity":
        fig.axes[0].set_xlabel(x, fontsize=12)
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
    layers = sorted(rows["layer"].unique())
    styles = dict(zip(layers, line_styles(len(layers))))  # as many distinct lines as layers, both panels alike
    for ax, value in zip(axes, ("elementwise", second)):
        for layer, layer_rows in rows.groupby("layer", sort=True):
            points = layer_rows.dropna(subset=[value])
            colour, style = styles[layer]
            ax.plot(
                points["step"],
                points[value],
                drawstyle="steps-post",
                linewidth=1.2,
                color=colour,
                linestyle=style,
                label=layer,
            )
        what = "fraction of N:M groups satisfied" if value == "nm_groups_satisfied" else f"{value} sparsity"
        ax.set(title=f"{title}: {what}", xlabel="step", ylim=(-0.02, 1.02))
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
    styles = line_styles(len(runs))
    for ax, name in zip(axes, names):
        for (trial, run_id), (colour, style) in zip(runs, styles):
            rows = frame[(frame["run_id"] == run_id) & (frame["metric"] == name)]
            ax.plot(
                rows["step"],
                rows["value"],
                drawstyle="steps-post",
                color=colour,
                linestyle=style,
                label=_label(trial, run_id),
            )
        ax.set(title=name, xlabel="step", ylim=(-0.02, 1.02))
    axes[0].set_ylabel("sparsity")
    if 0 < len(runs) <= _MAX_LEGEND:
        axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_eval_curves(frame: pd.DataFrame, *, dense: pd.Series | None = None, metric: str = "accuracy") -> Figure:
    """The task's ``metric`` during fine-tuning, one line per run (``eval_frame(..., metric=metric)``).

    ``dense`` (run_id -> dense value, e.g. ``trials.set_index("run_id")["dense_accuracy"]``) adds
    each run's dense baseline as a dotted line.
    """
    fig = Figure(figsize=(6.5, 4), dpi=80)
    ax = fig.subplots()
    runs = list(dict.fromkeys(zip(frame["trial"], frame["run_id"])))
    for (trial, run_id), (colour, style) in zip(runs, line_styles(len(runs))):
        rows = frame[frame["run_id"] == run_id]
        ax.plot(
            rows["step"],
            rows[metric],
            marker="o",
            linestyle=style,
            markersize=3,
            color=colour,
            label=_label(trial, run_id),
        )
        if dense is not None and run_id in dense.index and not pd.isna(dense[run_id]):
            ax.axhline(float(dense[run_id]), color=colour, linestyle=":", linewidth=1)
    ax.set(
        title=f"{metric} during fine-tuning" + (" (dotted: dense)" if dense is not None else ""),
        xlabel="step",
        ylabel=metric,
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
        for value, rows in spread.groupby(group, sort=True):
            rows = rows.sort_values(x)
            color = color_of(group, value)  # the same per pattern / criterion in every figure
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
