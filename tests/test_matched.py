"""One knob at matched sparsity (notebook 03): comparisons inside cells of fixed knobs and reached sparsity."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.analysis import compare_at_matched_sparsity, configuration_knobs, plot_at_matched_sparsity
from workbench.pruner import ConfigError


def _trials(rows: list[tuple]) -> pd.DataFrame:
    columns = ["pattern", "scheduler", "sparsity_decay_type", "criterion", "target_sparsity", "sparsity", "accuracy"]
    return pd.DataFrame(rows, columns=columns).assign(seed=0, trial=range(len(rows)), dense_accuracy=0.98)


# Averaged over patterns, snip wins (it was mostly tried on the easy pattern); inside each pattern
# at the same reached sparsity, magnitude wins: the comparison that holds the pattern fixed must say so.
SIMPSON = _trials(
    [
        ("1x1", "oneshot", "none", "snip", 0.6, 0.61, 0.95),
        ("1x1", "oneshot", "none", "snip", 0.6, 0.62, 0.95),
        ("1x1", "oneshot", "none", "magnitude", 0.6, 0.63, 0.96),
        ("channelx1", "oneshot", "none", "snip", 0.6, 0.64, 0.50),
        ("channelx1", "oneshot", "none", "magnitude", 0.6, 0.65, 0.60),
        ("channelx1", "oneshot", "none", "magnitude", 0.6, 0.66, 0.60),
        ("1x1", "iterative", "exp", "magnitude", 0.9, 0.91, 0.90),  # alone in its cell: no comparison
    ]
)


def test_a_comparison_holds_pattern_scheduler_and_reached_sparsity_fixed():
    pooled = SIMPSON.groupby("criterion")["accuracy"].mean()
    assert pooled["snip"] > pooled["magnitude"]  # what averaging over patterns would claim
    table = compare_at_matched_sparsity(SIMPSON, "criterion")
    assert list(table.index.names) == ["pattern", "scheduler", "sparsity_bin"]
    assert table.index.tolist() == [("1x1", "oneshot", "0.60-0.70"), ("channelx1", "oneshot", "0.60-0.70")]
    assert table["best"].tolist() == ["magnitude", "magnitude"]
    assert table.loc[("1x1", "oneshot", "0.60-0.70"), "snip"] == pytest.approx(0.95)  # two trials averaged
    assert table["n_trials"].tolist() == [3, 3]
    assert table.attrs["held"] == ["pattern", "scheduler"] and table.attrs["not_held"] == []


def test_a_knob_varying_inside_a_cell_is_named_and_one_following_the_compared_knob_is_not():
    by_scheduler = compare_at_matched_sparsity(SIMPSON, "scheduler", within=["pattern", "criterion"])
    assert by_scheduler.attrs["not_held"] == []  # the decay changes with the scheduler: part of it
    mixed = pd.concat([SIMPSON, SIMPSON.iloc[[2]].assign(sparsity_decay_type="cos", scheduler="oneshot")])
    table = compare_at_matched_sparsity(mixed, "criterion")
    assert table.attrs["not_held"] == ["sparsity_decay_type"]
    assert "NOT held fixed (averaged over within a cell): sparsity_decay_type." in table.attrs["note"]


def test_with_every_knob_held_only_one_knob_pairs_remain_and_an_empty_table_says_so():
    strict = compare_at_matched_sparsity(SIMPSON, "criterion", within="all")
    assert list(strict.index.names) == [*configuration_knobs(SIMPSON, exclude=("criterion",)), "sparsity_bin"]
    assert len(strict) == 2
    lonely = SIMPSON.iloc[[0, 6]]
    empty = compare_at_matched_sparsity(lonely, "criterion", within="all")
    assert empty.empty and "nothing to compare at matched sparsity" in empty.attrs["note"]


def test_the_figure_has_one_panel_per_pattern_and_scheduler_and_one_legend_entry_per_criterion():
    fig = plot_at_matched_sparsity(SIMPSON, "criterion", rows="pattern", cols="scheduler")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"pattern {p} · scheduler {s}" for p in ("1x1", "channelx1") for s in ("iterative", "oneshot")]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["magnitude", "snip", "dense"]
    assert "pattern and scheduler fixed per panel" in fig.get_suptitle()
    assert "no other knob varies" in fig.get_suptitle()
    assert fig.axes[3].get_children()  # channelx1 · oneshot holds trials
    assert "no trials" in [t.get_text() for t in fig.axes[2].texts]  # channelx1 · iterative: none


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: compare_at_matched_sparsity(SIMPSON, "nope"), "column 'nope' is not in the frame"),
        (lambda: compare_at_matched_sparsity(SIMPSON, width=0), "^width: 0 is not allowed"),
        (lambda: compare_at_matched_sparsity(SIMPSON, within="pattern"), "^within: 'pattern' is not allowed"),
        (lambda: plot_at_matched_sparsity(SIMPSON, rows="nope"), "column 'nope' is not in the frame"),
    ],
)
def test_bad_arguments_name_the_key(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
