"""One knob compared with the reached sparsity matched and other knobs held fixed (notebook 03).

Averaging a metric over every trial at a target sparsity mixes patterns and schedules in whatever
proportions the sampler tried them, so such curves zig-zag. Here a comparison of ``knob``'s
values happens only *within* a cell: the same values of the ``within`` knobs (by default pattern
and scheduler; ``"all"``: every other searched knob) and the same matched reached sparsity (the
study's rule, :func:`workbench.results.matched.matched_levels`: within
:data:`~workbench.results.matched.MATCH_TOLERANCE`, 0.01, less when the targets step finer). Trials are first grouped by
configuration (:func:`workbench.results.configs.by_configuration`: the mean over seeds), so a
configuration trained with three seeds weighs as one; each cell's value is the mean of its
configurations. The knobs neither compared nor held are named in the result's
``attrs["note"]``, never silently averaged over, and never called "held fixed".

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"trial": range(4), "pattern": ["4x1"] * 4, "scheduler": ["oneshot"] * 4,
    ...                    "criterion": ["snip", "magnitude", "snip", "magnitude"], "seed": 0,
    ...                    "target_sparsity": [0.6, 0.6, 0.8, 0.7],
    ...                    "sparsity": [0.6, 0.5926, 0.8, 0.7], "accuracy": [0.9, 0.8, 0.7, 0.75]})
    >>> table = compare_at_matched_sparsity(df, "criterion")
    >>> table.reset_index()[["matched_sparsity", "magnitude", "snip", "best"]].values.tolist()
    [['0.593-0.600', 0.8, 0.9, 'snip']]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench.analysis.configs import configurations_frame
from workbench.analysis.frames import KNOBS
from workbench.benchmarks.direction import sign
from workbench.pruner.errors import ConfigError
from workbench.results.matched import matched_levels, matched_note, resolve_tolerance
from workbench.results.styles import color_map

__all__ = ["compare_at_matched_sparsity", "configuration_knobs", "plot_at_matched_sparsity"]

_IGNORED = ("target_sparsity", "seed")
"""Not held as knobs: the target is replaced by the matched reached sparsity; seeds are averaged."""
_LEGEND_IN = 2.2
"""Inches on the figure's right kept for the legend (``snip_momentum`` fits)."""
_TITLE_IN = 0.75
"""Inches on the figure's top kept for its two-line title (so it never overprints a panel's title)."""
_MAX_COLS = 3
"""Panels per figure row when only the panels with trials are drawn."""


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


def _tolerance(df: pd.DataFrame, tolerance: float | None) -> float:
    """``tolerance`` checked, or when None what the frame's targets support (the study's rule)."""
    return resolve_tolerance(tolerance, df["target_sparsity"] if "target_sparsity" in df else ())


def _configurations_at_levels(df: pd.DataFrame, metric: str, tolerance: float | None) -> pd.DataFrame:
    """:func:`workbench.analysis.configurations_frame` of ``df``'s trials with a finite ``metric``
    and ``sparsity``, plus ``n_trials`` and ``matched_sparsity``, the label of the configuration's
    level under the study's rule (:func:`workbench.results.matched.matched_levels`)."""
    tolerance = _tolerance(df, tolerance)
    valid = df.dropna(subset=[metric, "sparsity"])
    configs = configurations_frame(valid, metric=metric)
    if configs.empty:
        return pd.DataFrame(columns=[*valid.columns, "n_trials", "matched_sparsity"])
    configs = configs.rename(columns={"target": "target_sparsity"})
    configs["n_trials"] = configs["trials"].map(len)
    levels = matched_levels(configs["sparsity"].astype(float), tolerance)
    configs["matched_sparsity"] = [levels[float(s)] for s in configs["sparsity"]]
    return configs


def compare_at_matched_sparsity(
    df: pd.DataFrame,
    knob: str = "criterion",
    *,
    within: Sequence[str] | str = ("pattern", "scheduler"),
    metric: str = "accuracy",
    tolerance: float | None = None,
    direction: str = "maximize",
) -> pd.DataFrame:
    """``metric`` per value of ``knob`` (columns) in each cell of held knobs and matched reached sparsity (rows).

    Rows: the ``within`` knobs and ``matched_sparsity`` (the range of reached sparsity the cell
    holds, never wider than ``tolerance``), only where at least two values of ``knob`` were tried
    (a comparison); columns: the values of ``knob`` (mean ``metric`` of the cell's configurations,
    each a mean over its seeds; NaN where not tried), ``best`` (the value with the best mean: the
    highest, the lowest when ``direction`` is ``minimize``) and ``n_trials``.
    ``attrs``: ``held``, ``not_held`` (knobs taking two values inside one cell, averaged over
    there; a decay that only follows the scheduler is not one; empty with ``within="all"``),
    ``tolerance`` and ``note``, a sentence saying all three. ``ConfigError`` naming a missing
    column or a bad ``tolerance``.
    """
    tolerance = _tolerance(df, tolerance)
    for column in (knob, metric, "sparsity"):
        if column not in df:
            raise ConfigError(f"compare_at_matched_sparsity: column {column!r} is not in the frame")
    valid = df.dropna(subset=[metric, "sparsity"])
    held, not_held = _held(valid, knob, within)
    keys = [*held, "matched_sparsity"]
    cells = _configurations_at_levels(valid, metric, tolerance)
    not_held = _varying_within(cells, [*keys, knob], not_held)  # a decay that follows the scheduler is its part
    if cells.empty:
        means = pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys))
    else:
        means = cells.pivot_table(index=keys, columns=knob, values=metric, aggfunc="mean", dropna=False)
        means = means.dropna(how="all")
        means = means[means.notna().sum(axis=1) >= 2]
    out = means.copy()
    out.columns = [str(c) for c in out.columns]
    out.columns.name = None
    if len(out):
        counts = cells.groupby(keys, dropna=False)["n_trials"].sum()
        best = means.idxmin(axis=1) if sign(direction) < 0 else means.idxmax(axis=1)
        out["best"] = best.astype(str).to_numpy()
        out["n_trials"] = counts.reindex(out.index).to_numpy()
    else:
        out = out.assign(best=pd.Series(dtype=str), n_trials=pd.Series(dtype=int))
    out.attrs.update(
        held=held, not_held=not_held, tolerance=tolerance, note=_note(knob, held, not_held, tolerance, len(out))
    )
    return out


def _note(knob: str, held: list[str], not_held: list[str], tolerance: float, rows: int) -> str:
    text = f"{knob} compared with {', '.join(held)} held fixed; " if held else f"{knob} compared; "
    text += f"{matched_note(tolerance)}; each cell averages its configurations."
    if not_held:
        text += f" NOT held fixed (varied and averaged over within a cell): {', '.join(not_held)}."
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
    tolerance: float | None = None,
) -> Figure:
    """``metric`` against reached sparsity, one panel per (``rows``, ``cols``) pair with trials, one line per ``knob`` value.

    Within a panel the ``rows`` and ``cols`` knobs are fixed; only pairs that hold trials get a
    panel (at most three per figure row, in order of ``rows`` then ``cols``). Each trial is a faint
    dot at the sparsity it reached, and each line joins, per matched reached sparsity (the study's
    rule, within ``tolerance``), the mean of a ``knob`` value's configurations (each a mean over
    seeds) at their mean reached sparsity, so lines are compared at matched sparsity, never across
    patterns or schedules. Colours are the same in every panel; each panel has its own metric
    scale; the dense model's mean metric (column ``dense_<metric>``) is a dashed line. The title,
    kept above the panels, says the tolerance and names the knobs that take two values inside a
    panel (not held fixed).
    """
    tolerance = _tolerance(df, tolerance)
    for column in (knob, rows, cols, metric, "sparsity"):
        if column not in df:
            raise ConfigError(f"plot_at_matched_sparsity: column {column!r} is not in the frame")
    valid = df.dropna(subset=[metric, "sparsity"])
    pairs = sorted({(str(r), str(c)) for r, c in zip(valid[rows], valid[cols])}) or [("-", "-")]
    colours = color_map(knob, valid[knob].astype(str))  # the same per pattern / criterion in every figure
    n_cols = min(_MAX_COLS, len(pairs))
    n_rows = math.ceil(len(pairs) / n_cols)
    fig = Figure(figsize=(4.4 * n_cols + _LEGEND_IN, 3.0 * n_rows + _TITLE_IN + 0.4), dpi=100)
    grid = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    dense_column = f"dense_{metric}"
    dense = float(valid[dense_column].mean()) if dense_column in valid else math.nan
    configs = _configurations_at_levels(valid, metric, tolerance)
    axes = list(grid.flat)
    for ax in axes[len(pairs) :]:
        fig.delaxes(ax)
    for index, (r, c) in enumerate(pairs):
        ax = axes[index]
        in_panel = (valid[rows].astype(str) == r) & (valid[cols].astype(str) == c)
        panel_configs = (
            configs[(configs[rows].astype(str) == r) & (configs[cols].astype(str) == c)] if len(configs) else configs
        )
        _draw_panel(ax, valid[in_panel], panel_configs, knob, metric, colours)
        if not math.isnan(dense):
            ax.axhline(dense, color="0.4", linestyle="--", linewidth=1)
        ax.set_title(f"{rows} {r} · {cols} {c}", fontsize=11)
        ax.grid(alpha=0.3)
        ax.set_xlabel("sparsity reached", fontsize=10)
        if index % n_cols == 0:
            ax.set_ylabel(metric, fontsize=10)
    handles = [axes[0].plot([], [], "o-", color=colour, label=v)[0] for v, colour in colours.items()]
    if not math.isnan(dense):
        handles.append(axes[0].plot([], [], "--", color="0.4", label="dense")[0])
    fig.legend(handles=handles, title=knob, loc="center right", fontsize=10, title_fontsize=10, frameon=False)
    not_held = _varying_within(valid, [rows, cols, knob], configuration_knobs(valid, exclude=(knob, rows, cols)))
    title = f"{metric} per {knob} at matched sparsity: {rows} and {cols} fixed per panel"
    subtitle = f"not held fixed: {', '.join(not_held)}" if not_held else "no other knob varies"
    fig.suptitle(
        f"{title}\n({subtitle}; lines: mean per reached sparsity matched within {tolerance:g})",
        fontsize=11,
        y=1 - 0.1 / fig.get_figheight(),
        va="top",
    )
    top = 1 - _TITLE_IN / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1 - _LEGEND_IN / fig.get_figwidth(), top))
    return fig


def _draw_panel(
    ax: Any, trials: pd.DataFrame, configs: pd.DataFrame, knob: str, metric: str, colours: dict[str, str]
) -> None:
    for value, points in trials.groupby(trials[knob].astype(str), sort=True):
        ax.scatter(points["sparsity"], points[metric], color=colours[value], s=14, alpha=0.35)
    if configs.empty:
        return
    for value, group in configs.groupby(configs[knob].astype(str), sort=True):
        line = group.groupby("matched_sparsity")[["sparsity", metric]].mean().sort_values("sparsity")
        ax.plot(line["sparsity"], line[metric], "o-", color=colours[value], markersize=5, linewidth=1.6)
