"""Matched sparsity means matched: one tolerance rule (results.matched), asked by the console and notebooks."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg

from workbench.analysis import (
    best_at_matched_sparsity,
    compare_at_matched_sparsity,
    configuration_knobs,
    plot_at_matched_sparsity,
)
from workbench.pruner import ConfigError
from workbench.results.matched import MATCH_TOLERANCE, best_per_level, matched_levels, matched_rows, supported_tolerance


def _trials(rows: list[tuple]) -> pd.DataFrame:
    columns = ["pattern", "scheduler", "sparsity_decay_type", "criterion", "target_sparsity", "sparsity", "accuracy"]
    return pd.DataFrame(rows, columns=columns).assign(seed=0, trial=range(len(rows)), dense_accuracy=0.98)


# Averaged over patterns, snip wins (it was mostly tried on the easy pattern); inside each pattern
# at the same reached sparsity, magnitude wins: the comparison that holds the pattern fixed must say so.
SIMPSON = _trials(
    [
        ("1x1", "oneshot", "none", "snip", 0.6, 0.600, 0.95),
        ("1x1", "oneshot", "none", "snip", 0.6, 0.601, 0.95),  # seed 1 of the row above
        ("1x1", "oneshot", "none", "magnitude", 0.6, 0.602, 0.96),
        ("channelx1", "oneshot", "none", "snip", 0.6, 0.5926, 0.50),
        ("channelx1", "oneshot", "none", "magnitude", 0.6, 0.595, 0.60),
        ("channelx1", "oneshot", "none", "magnitude", 0.6, 0.596, 0.60),  # seed 1 of the row above
        ("1x1", "iterative", "exp", "magnitude", 0.9, 0.9, 0.90),  # alone in its cell: no comparison
    ]
)
SIMPSON.loc[[1, 5], "seed"] = 1


def test_a_comparison_holds_pattern_scheduler_and_reached_sparsity_fixed():
    pooled = SIMPSON.groupby("criterion")["accuracy"].mean()
    assert pooled["snip"] > pooled["magnitude"]  # what averaging over patterns would claim
    table = compare_at_matched_sparsity(SIMPSON, "criterion")
    assert list(table.index.names) == ["pattern", "scheduler", "matched_sparsity"]
    assert table.index.tolist() == [("1x1", "oneshot", "0.593-0.602"), ("channelx1", "oneshot", "0.593-0.602")]
    assert table["best"].tolist() == ["magnitude", "magnitude"]
    assert table.loc[("1x1", "oneshot", "0.593-0.602"), "snip"] == pytest.approx(0.95)  # two seeds, one mean
    assert table["n_trials"].tolist() == [3, 3]
    assert table.attrs["held"] == ["pattern", "scheduler"] and table.attrs["not_held"] == []


def test_a_knob_varying_inside_a_cell_is_named_and_one_following_the_compared_knob_is_not():
    by_scheduler = compare_at_matched_sparsity(SIMPSON, "scheduler", within=["pattern", "criterion"])
    assert by_scheduler.attrs["not_held"] == []  # the decay changes with the scheduler: part of it
    mixed = pd.concat([SIMPSON, SIMPSON.iloc[[2]].assign(sparsity_decay_type="cos", scheduler="oneshot")])
    table = compare_at_matched_sparsity(mixed, "criterion")
    assert table.attrs["not_held"] == ["sparsity_decay_type"]
    assert "NOT held fixed (varied and averaged over within a cell): sparsity_decay_type." in table.attrs["note"]


def test_with_every_knob_held_only_one_knob_pairs_remain_and_an_empty_table_says_so():
    strict = compare_at_matched_sparsity(SIMPSON, "criterion", within="all")
    assert list(strict.index.names) == [*configuration_knobs(SIMPSON, exclude=("criterion",)), "matched_sparsity"]
    assert len(strict) == 2
    lonely = SIMPSON.iloc[[0, 6]]
    empty = compare_at_matched_sparsity(lonely, "criterion", within="all")
    assert empty.empty and "nothing to compare at matched sparsity" in empty.attrs["note"]


def test_the_figure_draws_only_panels_with_trials_and_its_title_stays_above_them():
    fig = plot_at_matched_sparsity(SIMPSON, "criterion", rows="pattern", cols="scheduler")
    titles = [ax.get_title() for ax in fig.axes]
    # channelx1 · iterative has no trial: no panel for it, no "no trials" placeholder
    assert titles == [
        "pattern 1x1 · scheduler iterative",
        "pattern 1x1 · scheduler oneshot",
        "pattern channelx1 · scheduler oneshot",
    ]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["magnitude", "snip", "dense"]
    assert "pattern and scheduler fixed per panel" in fig.get_suptitle()
    assert "no other knob varies" in fig.get_suptitle() and f"matched within {MATCH_TOLERANCE:g}" in fig.get_suptitle()
    renderer = FigureCanvasAgg(fig).get_renderer()
    title_box = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:  # the figure's title never overprints a panel's title
        assert ax.title.get_window_extent(renderer).y1 <= title_box.y0
    many = pd.concat([SIMPSON.assign(pattern=p) for p in ("1x1", "2x2", "4x1", "1x4")])
    assert len(plot_at_matched_sparsity(many, "criterion").axes) == 8  # every pair holds trials


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: compare_at_matched_sparsity(SIMPSON, "nope"), "column 'nope' is not in the frame"),
        (
            lambda: compare_at_matched_sparsity(SIMPSON, tolerance=-0.1),
            r"^tolerance: -0.1 is not allowed; allowed: .*\[0, 0.05\)",
        ),
        (lambda: best_at_matched_sparsity(SIMPSON, tolerance=0.1), "^tolerance: 0.1 is not allowed"),
        (lambda: compare_at_matched_sparsity(SIMPSON, within="pattern"), "^within: 'pattern' is not allowed"),
        (lambda: plot_at_matched_sparsity(SIMPSON, rows="nope"), "column 'nope' is not in the frame"),
    ],
)
def test_bad_arguments_name_the_key(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def _row(trial: int, pattern: str, target: float, reached: float, accuracy: float, seed: int = 0) -> dict:
    return {
        "trial": trial,
        "pattern": pattern,
        "criterion": "magnitude",
        "target": target,
        "seed": seed,
        "sparsity": reached,
        "accuracy": accuracy,
        "run_id": f"r{trial}",
    }


def test_trials_0_05_apart_are_never_compared_as_matched():
    # the bug: oneshot at 0.70 beside iterative at 0.75 in one "0.70-0.80" bin, called matched
    rows = [_row(0, "4x1", 0.70, 0.70, 0.90), _row(1, "2:4", 0.75, 0.75, 0.95)]
    assert matched_levels([0.70, 0.75]) == {0.70: "0.700", 0.75: "0.750"}
    assert {label for cells in best_per_level(rows, ("pattern",)).values() for label in cells} == {"0.700", "0.750"}
    flat = matched_rows(rows, ("pattern",))
    assert [{r["pattern"] for r in flat if r["matched_sparsity"] == level} for level in ("0.700", "0.750")] == [
        {"4x1"},
        {"2:4"},
    ]
    df = pd.DataFrame(rows).rename(columns={"target": "target_sparsity"}).assign(scheduler="oneshot")
    table = best_at_matched_sparsity(df, ("pattern",))
    assert table.notna().sum(axis=0)[["0.700", "0.750"]].tolist() == [1, 1]  # no column holds both patterns
    by_pattern = compare_at_matched_sparsity(df, "pattern", within=["scheduler"])
    assert by_pattern.empty and "nothing to compare" in by_pattern.attrs["note"]
    assert (
        "reached sparsity within 0.01" in by_pattern.attrs["note"]
        and "sparsity held fixed" not in by_pattern.attrs["note"]
    )


def test_trials_at_the_same_sparsity_are_compared_on_their_seed_means():
    rows = [
        _row(0, "4x1", 0.5, 0.5, 0.99, seed=0),
        _row(1, "4x1", 0.5, 0.5, 0.91, seed=1),
        _row(2, "2:4", 0.5, 0.497, 0.96),
        _row(3, "2:4", 0.5, 0.497, 0.96, seed=1),
    ]
    (level,) = {r["matched_sparsity"] for r in matched_rows(rows, ("pattern",))}
    assert level == "0.497-0.500"
    best = matched_rows(rows, ())  # the lucky seed (0.99) does not win: 4x1's mean is 0.95
    assert len(best) == 1 and best[0]["pattern"] == "2:4" and best[0]["accuracy"] == pytest.approx(0.96)
    by_pattern = {r["pattern"]: r for r in matched_rows(rows, ("pattern",))}
    assert by_pattern["4x1"]["accuracy"] == pytest.approx(0.95) and by_pattern["4x1"]["n_seeds"] == 2
    df = pd.DataFrame(rows).rename(columns={"target": "target_sparsity"}).assign(scheduler="oneshot")
    table = compare_at_matched_sparsity(df, "pattern", within=["scheduler"])
    assert table.loc[("oneshot", "0.497-0.500"), ["2:4", "4x1"]].tolist() == pytest.approx([0.96, 0.95])
    assert table["n_trials"].tolist() == [4]


@given(
    st.lists(st.floats(0.0, 0.99, allow_nan=False), min_size=1, max_size=30), st.sampled_from([0.0, 0.005, 0.01, 0.02])
)
def test_a_level_never_spans_more_than_the_tolerance_and_equal_values_share_one(values, tolerance):
    levels = matched_levels(values, tolerance)
    assert set(levels) == set(values)
    for a, b in itertools.combinations(set(values), 2):
        if levels[a] == levels[b]:
            assert abs(a - b) <= tolerance + 1e-9
        if abs(a - b) > tolerance + 1e-9:
            assert levels[a] != levels[b]
    lows = {label: min(v for v in values if levels[v] == label) for label in levels.values()}
    assert all(
        float(label.split("-")[0]) == pytest.approx(low, abs=5e-4 + 1e-9) for label, low in lows.items()
    )  # 3 decimals


def test_best_follows_the_task_direction():
    perplexity = SIMPSON.rename(columns={"accuracy": "perplexity"})
    low = compare_at_matched_sparsity(perplexity, "criterion", metric="perplexity", direction="minimize")
    high = compare_at_matched_sparsity(perplexity, "criterion", metric="perplexity")
    assert low["best"].tolist() == ["snip", "snip"] and high["best"].tolist() == ["magnitude", "magnitude"]


def test_a_finer_grid_of_targets_narrows_the_tolerance_so_two_targets_never_match():
    assert supported_tolerance([0.5, 0.55, 0.6]) == MATCH_TOLERANCE  # default.yaml's 0.05 steps
    assert supported_tolerance([0.6, 0.61, None, float("nan")]) == pytest.approx(0.004)
    assert supported_tolerance([0.6]) == MATCH_TOLERANCE
    rows = [_row(0, "4x1", 0.60, 0.600, 0.9), _row(1, "2:4", 0.61, 0.609, 0.95)]  # 0.009 apart, two targets
    flat = matched_rows(rows, ("pattern",))
    assert sorted(r["matched_sparsity"] for r in flat) == ["0.600", "0.609"]
    assert [r["tolerance"] for r in flat] == pytest.approx([0.004, 0.004])
    df = pd.DataFrame(rows).rename(columns={"target": "target_sparsity"}).assign(scheduler="oneshot")
    table = compare_at_matched_sparsity(df, "pattern", within=["scheduler"])
    assert table.empty and "within 0.004" in table.attrs["note"]
    assert "within 0.004" in best_at_matched_sparsity(df, ("pattern",)).attrs["note"]
