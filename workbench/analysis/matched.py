"""One knob compared with the reached sparsity and other knobs held fixed (notebook 03).

Averaging a metric over every trial at a target sparsity mixes patterns and schedules in whatever
proportions the sampler tried them, so such curves zig-zag. Here a comparison of ``knob``'s
values happens only *within* a cell: the same values of the ``within`` knobs (by default pattern
and scheduler; ``"all"``: every other searched knob) and the same bin of reached sparsity (width
0.1, as in the study's matched table). Each cell's value is the mean metric of its trials (so
seeds and repeats are averaged); the knobs neither compared nor held are named in the result's
``attrs["note"]``, never silently averaged over.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"pattern": ["4x1"] * 4, "scheduler": ["oneshot"] * 4,
    ...                    "criterion": ["snip", "magnitude", "snip", "magnitude"],
    ...                    "sparsity": [0.61, 0.63, 0.82, 0.71], "accuracy": [0.9, 0.8, 0.7, 0.75]})
    >>> table = compare_at_matched_sparsity(df, "criterion")
    >>> table.reset_index()[["sparsity_bin", "magnitude", "snip", "best"]].values.tolist()
    [['0.60-0.70', 0.8, 0.9, 'snip']]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.analysis.frames import KNOBS
from workbench.pruner.errors import ConfigError
from workbench.results.matched import BIN_WIDTH, sparsity_bin

__all__ = ["compare_at_matched_sparsity", "configuration_knobs", "plot_at_matched_sparsity"]

_IGNORED = ("target_sparsity", "seed")
"""Not held as knobs: the target is replaced by the reached-sparsity bin; seeds are averaged."""
_LEGEND_IN = 2.2
"""Inches on the figure's right kept for the legend (``snip_momentum`` fits)."""


def configuration_knobs(df: pd.DataFrame, *, exclude: Sequence[str] = ()) -> list[str]:
    """The searched knobs (``KNOBS`` less target and seed) that take more than one value in ``df``."""
    return [k for k in KNOBS if k in df and k not in (*_IGNORED, *exclude) and df[k].nunique(dropna=False) > 1]


def _varying_within(df: pd.DataFrame, keys: list[str], candidates: list[str]) -> list[str]:
    """The ``candidates`` taking two values inside one group of ``keys`` (a decay the scheduler sets does not)."""
    if df.empty or not candidates:
        return []
    spread = df.groupby(keys, dropna=False)[candidates].nunique(dropna=False).max()
    return [k for k in candidates if spread[k] > 1]


def _held(df: pd.DataFrame, knob: str, within: Sequence[str] | str) -> tuple[list[str], list[str]]:
    """(held knobs, knobs neither compared nor held) for comparing ``knob``."""
    varying = configuration_knobs(df, exclude=(knob,))
    if within == "all":
        return varying, []
    if isinstance(within, str) or not all(isinstance(w, str) for w in within):
        raise ConfigError(f"within: {within!r} is not allowed; allowed: 'all' or a list of knob columns")
    held = [w for w in within if w in df]
    return held, [k for k in varying if k not in held]


def compare_at_matched_sparsity(
    df: pd.DataFrame,
    knob: str = "criterion",
    *,
    within: Sequence[str] | str = ("pattern", "scheduler"),
    metric: str = "accuracy",
    width: float = BIN_WIDTH,
) -> pd.DataFrame:
    """``metric`` per value of ``knob`` (columns) in each cell of held knobs and reached-sparsity bin (rows).

    Rows: the ``within`` knobs and ``sparsity_bin``, only where at least two values of ``knob``
    were tried (a comparison); columns: the values of ``knob`` (mean ``metric`` of the cell's
    trials, NaN where not tried), ``best`` (the value with the highest mean) and ``n_trials``.
    ``attrs``: ``held``, ``not_held`` (knobs taking two values inside one cell, averaged over
    there; a decay that only follows the scheduler is not one; empty with ``within="all"``) and ``note``, a sentence saying both. ``ConfigError`` naming a missing column.
    """
    if not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ConfigError(f"width: {width!r} is not allowed; allowed: a bin width in (0, 1]")
    for column in (knob, metric, "sparsity"):
        if column not in df:
            raise ConfigError(f"compare_at_matched_sparsity: column {column!r} is not in the frame")
    valid = df.dropna(subset=[metric, "sparsity"])
    held, not_held = _held(valid, knob, within)
    keys = [*held, "sparsity_bin"]
    cells = valid.assign(sparsity_bin=[sparsity_bin(float(s), width) for s in valid["sparsity"]])
    not_held = _varying_within(cells, [*keys, knob], not_held)  # a decay that follows the scheduler is its part
    means = cells.pivot_table(index=keys, columns=knob, values=metric, aggfunc="mean", dropna=False)
    means = means.dropna(how="all")
    means = means[means.notna().sum(axis=1) >= 2]
    counts = cells.groupby(keys, dropna=False).size()
    out = means.copy()
    out.columns = [str(c) for c in out.columns]
    out.columns.name = None
    if len(out):
        out["best"] = means.idxmax(axis=1).astype(str).to_numpy()
        out["n_trials"] = counts.reindex(out.index).to_numpy()
    else:
        out = out.assign(best=pd.Series(dtype=str), n_trials=pd.Series(dtype=int))
    out.attrs.update(held=held, not_held=not_held, note=_note(knob, held, not_held, width, len(out)))
    return out


def _note(knob: str, held: list[str], not_held: list[str], width: float, rows: int) -> str:
    held_text = ", ".join([*held, f"reached sparsity (bins of {width:g})"])
    text = f"{knob} compared with {held_text} held fixed; each cell averages its trials (seeds, repeats)."
    if not_held:
        text += f" NOT held fixed (averaged over within a cell): {', '.join(not_held)}."
    if rows == 0:
        text += f" No cell of this study holds two values of {knob}: nothing to compare at matched sparsity."
    return text


def plot_at_matched_sparsity(
    df: pd.DataFrame,
    knob: str = "criterion",
    *,
    rows: str = "pattern",
    cols: str = "scheduler",
    metric: str = "accuracy",
    width: float = BIN_WIDTH,
) -> Figure:
    """``metric`` against reached sparsity, one panel per (``rows``, ``cols``) value, one line per ``knob`` value.

    Within a panel the ``rows`` and ``cols`` knobs are fixed; each trial is a faint dot at the
    sparsity it reached, and each line joins the mean of a ``knob`` value's trials per bin of
    reached sparsity (at their mean reached sparsity), so lines are compared at matched sparsity,
    never across patterns or schedules. Colours are the same in every panel; each panel has its
    own metric scale (a collapsed configuration does not flatten the others); the dense model's
    mean metric (column ``dense_<metric>``) is a dashed line. The title names the knobs that
    take two values inside a panel (not held fixed).
    """
    for column in (knob, rows, cols, metric, "sparsity"):
        if column not in df:
            raise ConfigError(f"plot_at_matched_sparsity: column {column!r} is not in the frame")
    valid = df.dropna(subset=[metric, "sparsity"])
    row_values = sorted(valid[rows].astype(str).unique()) or ["-"]
    col_values = sorted(valid[cols].astype(str).unique()) or ["-"]
    colours = {v: f"C{i % 10}" for i, v in enumerate(sorted(valid[knob].astype(str).unique()))}
    fig = Figure(figsize=(4.4 * len(col_values) + _LEGEND_IN, 3.0 * len(row_values) + 0.9), dpi=100)
    axes = np.atleast_2d(fig.subplots(len(row_values), len(col_values), sharex=True, squeeze=False))
    dense_column = f"dense_{metric}"
    dense = float(valid[dense_column].mean()) if dense_column in valid else math.nan
    for (i, r), (j, c) in ((a, b) for a in enumerate(row_values) for b in enumerate(col_values)):
        ax = axes[i, j]
        panel = valid[(valid[rows].astype(str) == r) & (valid[cols].astype(str) == c)]
        _draw_panel(ax, panel, knob, metric, width, colours)
        if not math.isnan(dense):
            ax.axhline(dense, color="0.4", linestyle="--", linewidth=1)
        ax.set_title(f"{rows} {r} · {cols} {c}", fontsize=11)
        ax.grid(alpha=0.3)
        if i == len(row_values) - 1:
            ax.set_xlabel("sparsity reached", fontsize=10)
        if j == 0:
            ax.set_ylabel(metric, fontsize=10)
    handles = [axes[0, 0].plot([], [], "o-", color=colour, label=v)[0] for v, colour in colours.items()]
    if not math.isnan(dense):
        handles.append(axes[0, 0].plot([], [], "--", color="0.4", label="dense")[0])
    fig.legend(handles=handles, title=knob, loc="center right", fontsize=10, title_fontsize=10, frameon=False)
    not_held = _varying_within(valid, [rows, cols, knob], configuration_knobs(valid, exclude=(knob, rows, cols)))
    title = f"{metric} per {knob} at matched sparsity: {rows} and {cols} fixed per panel"
    subtitle = f"not held fixed: {', '.join(not_held)}" if not_held else "no other knob varies"
    fig.suptitle(f"{title}\n({subtitle}; lines: mean per {width:g}-wide bin of reached sparsity)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - _LEGEND_IN / fig.get_figwidth(), 1))
    return fig


def _draw_panel(ax: Any, panel: pd.DataFrame, knob: str, metric: str, width: float, colours: dict[str, str]) -> None:
    if panel.empty:
        ax.text(0.5, 0.5, "no trials", ha="center", va="center", transform=ax.transAxes, color="0.5")
        return
    for value, trials in panel.groupby(panel[knob].astype(str), sort=True):
        colour = colours[value]
        ax.scatter(trials["sparsity"], trials[metric], color=colour, s=14, alpha=0.35)
        bins = trials.assign(bin=[sparsity_bin(float(s), width) for s in trials["sparsity"]])
        line = bins.groupby("bin")[["sparsity", metric]].mean().sort_values("sparsity")
        ax.plot(line["sparsity"], line[metric], "o-", color=colour, markersize=5, linewidth=1.6)
