"""The figure logged with every trial: every layer's sparsity over steps, and the global curve.

One picture per trial, readable where MLflow shows it: the artifact pane of a run page is about
800 px wide on a laptop's screen, so the figure is 900 px wide (:data:`WIDTH_PX`; a 1600 px one
was shrunk to half, its labels to 5 px). Left, a layer x step heatmap
of elementwise sparsity (one row per layer, labelled, so hundreds of layers still fit); right, the
global sparsity reached and the task's metric over the same steps. The title names the
configuration and the metric's final value. Built with ``Figure`` directly (no pyplot state, no backend
switch), so the log writer can draw it in any thread and a notebook can show the same picture.

Example:
    >>> from workbench.trial import TrialResult
    >>> r = TrialResult(benchmark="b", seed=0, params={}, pruning_config={}, training={}, value=1.0,
    ...                 dense_value=1.0, sparsity={"elementwise_over_matmul_gemm_conv": {0: 0.0, 5: 0.5}},
    ...                 layer_sparsity={"fc": {0: 0.0, 5: 0.5}})
    >>> fig = plot_trial_overview(r, title="t00 4x1 magnitude oneshot 0.50")
    >>> fig.axes[0].get_title(), round(fig.get_figwidth() * fig.dpi)
    ('Per-layer sparsity (elementwise)', 900)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from workbench.trial import TrialResult

__all__ = ["WIDTH_PX", "plot_trial_overview"]

WIDTH_PX, _DPI = 900, 90
"""The figure's width in pixels: shown whole, not shrunk, in the artifact pane of MLflow's run page."""

_MAX_LABELS = 80  # layer names shown on the heatmap's axis; more layers show every k-th name


def _step_grid(curves: Mapping[str, Mapping[int, float]], steps: list[int]) -> np.ndarray:
    """Each curve held constant from one recorded step to the next (NaN before its first)."""
    grid = np.full((len(curves), len(steps)), np.nan)
    for row, curve in enumerate(curves.values()):
        recorded = sorted(curve)
        if not recorded:
            continue
        index = np.searchsorted(recorded, steps, side="right") - 1
        values = np.array([curve[s] for s in recorded])
        grid[row] = np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)
    return grid


def plot_trial_overview(result: TrialResult, *, title: str = "") -> Figure:
    """Layer x step heatmap of elementwise sparsity (left) and global sparsity + the task's metric (right).

    The title is ``title`` (the configuration) with the final value of the task's metric, the
    dense one and the sparsity reached; a metric outside [0, 1] (perplexity) gets its own axis. :data:`WIDTH_PX` wide; the height grows with the number of layers.
    """
    layers = dict(result.layer_sparsity)  # the model's order, as the runner recorded them
    steps = sorted({s for c in layers.values() for s in c} | {s for c in result.sparsity.values() for s in c})
    height = min(4.0 + 0.16 * len(layers), 24.0)
    fig = Figure(figsize=(WIDTH_PX / _DPI, height), dpi=_DPI)
    grid = fig.add_gridspec(1, 3, width_ratios=(1.7, 0.06, 1.2), wspace=0.35)
    heat, bar, curve = fig.add_subplot(grid[0]), fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
    if layers and steps:
        edges = np.array([*steps, steps[-1] + max(1, (steps[-1] - steps[0]) // 50)], dtype=float)
        mesh = heat.pcolormesh(
            edges, np.arange(len(layers) + 1), _step_grid(layers, steps), cmap="viridis", vmin=0, vmax=1
        )
        fig.colorbar(mesh, cax=bar, label="sparsity")
        every = max(1, -(-len(layers) // _MAX_LABELS))
        heat.set_yticks(np.arange(0, len(layers), every) + 0.5, list(layers)[::every], fontsize=9)
        if len(layers) <= _MAX_LABELS // 2:  # each layer's final sparsity, written on its last cell
            for row, values in enumerate(layers.values()):
                if values:
                    last = values[max(values)]
                    heat.text(
                        edges[-1],
                        row + 0.5,
                        f"{last:.2f} ",
                        ha="right",
                        va="center",
                        fontsize=9,
                        color="black" if last > 0.6 else "white",
                    )
        heat.invert_yaxis()
    else:
        bar.set_visible(False)
    heat.set(title="Per-layer sparsity (elementwise)", xlabel="step")
    heat.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    global_curve = result.sparsity.get("elementwise_over_matmul_gemm_conv", {})
    if global_curve:
        xs = sorted(global_curve)
        final = global_curve[xs[-1]]
        curve.plot(
            xs,
            [global_curve[s] for s in xs],
            drawstyle="steps-post",
            color="tab:blue",
            lw=2.5,
            label=f"global sparsity (reached {final:.3f})",
        )
    evals, metric = result.eval_values, result.metric
    shown = [*evals.values(), result.dense_value]
    unit = all(v != v or -0.02 <= v <= 1.1 for v in shown)  # a metric in [0, 1] shares the sparsity axis
    axis = curve if unit else curve.twinx()
    if evals:
        xs = sorted(evals)
        axis.plot(
            xs,
            [evals[s] for s in xs],
            "o-",
            color="tab:red",
            lw=1.5,
            ms=4,
            label=f"test {metric} (final {result.value:.4f})",
        )
        axis.axhline(
            result.dense_value, color="tab:red", ls=":", lw=1.5, label=f"dense {metric} {result.dense_value:.4f}"
        )
    curve.set(title=f"Global sparsity and test {metric}", xlabel="step", ylim=(-0.02, 1.1))
    if unit:
        curve.yaxis.tick_right()
    else:
        axis.set_ylabel(metric)
        curve.set_ylabel("sparsity")
    if global_curve or evals:
        handles = curve.get_legend_handles_labels()[0] + (axis.get_legend_handles_labels()[0] if not unit else [])
        curve.legend(handles=handles, loc="center left", fontsize=8, framealpha=0.9)  # early: curve low, metric high
    curve.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    reached = global_curve[max(global_curve)] if global_curve else float("nan")
    headline = f"{metric} {result.value:.4f} (dense {result.dense_value:.4f}), sparsity reached {reached:.3f}"
    fig.suptitle(f"{title}\n{headline}" if title else headline, fontsize=12, y=1 - 0.15 / height)
    left = min(0.3, (5.5 * max([len(n) for n in layers] or [4]) + 40) / WIDTH_PX)  # room for the layer names
    fig.subplots_adjust(left=left, right=0.93, bottom=0.8 / height, top=1 - 0.95 / height)
    return fig
