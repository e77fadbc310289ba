"""Post-training and training-aware trials side by side: hollow markers, the cost figure and tables."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.colors import to_rgba

from workbench import analysis
from workbench.results.figures import plot_cost, plot_metric_vs_sparsity
from workbench.study.report import COST_COLUMNS, cost_rows
from workbench.tracking.artifacts import cost_metrics, result_metrics
from workbench.trial import TrialResult

ROWS = [
    {"trial": 0, "criterion": "magnitude", "pattern": "1x1", "sparsity": 0.5, "perplexity": 20.0, "wall_s": 30.0,
     "peak_memory_mb": 900.0},
    {"trial": 1, "criterion": "wanda", "pattern": "1x1", "sparsity": 0.5, "perplexity": 22.0, "wall_s": 2.0,
     "peak_memory_mb": 700.0},
    {"trial": 2, "criterion": "sparsegpt", "pattern": "2:4", "sparsity": 0.5, "perplexity": 21.0, "wall_s": 5.0,
     "peak_memory_mb": math.nan},
]  # fmt: skip


def _hollow(collection) -> bool:
    return collection.get_facecolors().size == 0 or to_rgba(collection.get_facecolors()[0])[3] == 0


def test_post_training_points_are_hollow_and_labelled_in_the_legend():
    fig = plot_metric_vs_sparsity(ROWS, metric="perplexity")
    ax = fig.axes[0]
    hollow = [_hollow(c) for c in ax.collections]
    assert hollow == [False, True, True]  # in ROWS order: magnitude filled, wanda and sparsegpt hollow
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "criterion wanda (post-training)" in labels and "criterion magnitude" in labels


def test_cost_figure_puts_each_trial_at_its_wall_time_and_memory():
    fig = plot_cost(ROWS, metric="perplexity")
    time_ax, memory_ax = fig.axes[:2]
    assert time_ax.get_xscale() == "log"
    assert sorted(c.get_offsets()[0][0] for c in time_ax.collections) == [2.0, 5.0, 30.0]
    assert len(memory_ax.collections) == 2  # sparsegpt has no memory value: not drawn there


def test_wall_times_within_one_decade_get_a_linear_axis_with_labels():
    close = [dict(row, wall_s=w) for row, w in zip(ROWS, (7.0, 8.5, 10.8))]
    time_ax = plot_cost(close, metric="perplexity").axes[0]
    assert time_ax.get_xscale() == "linear" and time_ax.get_xlabel() == "wall time (s)"
    time_ax.figure.canvas.draw()
    labelled = [t for t, label in zip(time_ax.get_xticks(), time_ax.get_xticklabels()) if label.get_text()]
    lo, hi = time_ax.get_xlim()
    assert len([t for t in labelled if lo <= t <= hi]) >= 3  # the log axis labelled only "10" here


def test_cost_tables_per_criterion_agree_between_parent_run_and_notebook():
    rows = {r["criterion"]: r for r in cost_rows(ROWS, metric="perplexity", direction="minimize")}
    assert set(COST_COLUMNS) <= set(rows["wanda"])
    assert rows["wanda"]["posttraining"] and not rows["magnitude"]["posttraining"]
    assert rows["wanda"]["median_wall_s"] == 2.0 and math.isnan(rows["sparsegpt"]["median_peak_memory_mb"])
    table = analysis.cost_table(pd.DataFrame(ROWS), metric="perplexity", direction="minimize").set_index("criterion")
    for criterion, row in rows.items():
        (source,) = [r for r in ROWS if r["criterion"] == criterion]  # one trial each: best is its value
        assert table.loc[criterion, "best"] == source["perplexity"] == row["best"]
        assert table.loc[criterion, "posttraining"] == row["posttraining"]


def test_cost_metrics_leave_the_dense_baseline_out():
    result = TrialResult(
        benchmark="b", seed=0, params={}, pruning_config={}, training={}, value=0.9, dense_value=1.0,
        timings={"baseline": 4.0, "prune": 0.5, "total": 5.0}, memory={"peak_rss_mb": 600.0, "peak_rss_increase_mb": 12.0},
    )  # fmt: skip
    assert cost_metrics(result) == {
        "cost/wall_s": 1.0,
        "cost/prune_s": 0.5,
        "cost/peak_rss_mb": 600.0,
        "cost/peak_rss_increase_mb": 12.0,
    }
    assert {m.key for m in result_metrics(result, ts=1)} >= set(cost_metrics(result))
