"""Analysis of finished studies: tidy pandas frames from MLflow, statistics and figures.

Owns what the notebooks call: frames of trials and curves read from an MLflow store
(:mod:`.frames`, :mod:`.store`), which metric the trials optimise and which way is better
(:mod:`.goal`), configurations with their metric averaged over seeds (:mod:`.configs`), the
statistics over them (:mod:`.stats`: Pareto front, best per knob, seed spread, variance explained; :mod:`.matched`: one knob at matched sparsity, with its
figure; :mod:`.speed`: the metric against the measured speed-up) and their figures (:mod:`.figures`). May import every
layer below the CLI except the study layer (an import contract): the Pareto front, the matched
reached sparsity (one tolerance rule), importances and study figures it shares with the study's summary are
:mod:`workbench.results`. Nothing imports it but the CLI and notebooks.

Example:
    >>> from workbench import analysis
    >>> "trials_frame" in analysis.__all__
    True
"""

from workbench.analysis.configs import (
    configuration_columns,
    configurations_frame,
    matched_configurations,
    trial_columns,
)
from workbench.analysis.cost import cost_table, plot_cost
from workbench.analysis.figures import (
    plot_accuracy_vs_sparsity,
    plot_eval_curves,
    plot_global_curves,
    plot_layer_curves,
    plot_layer_heatmap,
    plot_metric_by_group,
)
from workbench.analysis.frames import (
    SUMMARY_COLUMNS,
    curves_frame,
    eval_frame,
    global_curves_frame,
    param_importances,
    trials_frame,
)
from workbench.analysis.goal import metric_of, summary_columns
from workbench.analysis.matched import compare_at_matched_sparsity, configuration_knobs, plot_at_matched_sparsity
from workbench.analysis.speed import SPEED_COLUMNS, has_speed, plot_speedup
from workbench.analysis.stats import (
    best_at_matched_sparsity,
    best_by,
    pareto_front,
    pick_trials,
    seed_spread,
    variance_explained,
)
from workbench.analysis.store import default_tracking_uri, latest_experiment, metric_history_frame
from workbench.results.figures import plot_importances

__all__ = [
    "SPEED_COLUMNS",
    "SUMMARY_COLUMNS",
    "best_at_matched_sparsity",
    "best_by",
    "compare_at_matched_sparsity",
    "configuration_columns",
    "configuration_knobs",
    "configurations_frame",
    "cost_table",
    "curves_frame",
    "default_tracking_uri",
    "eval_frame",
    "global_curves_frame",
    "has_speed",
    "latest_experiment",
    "matched_configurations",
    "metric_history_frame",
    "metric_of",
    "param_importances",
    "pareto_front",
    "pick_trials",
    "plot_accuracy_vs_sparsity",
    "plot_at_matched_sparsity",
    "plot_cost",
    "plot_eval_curves",
    "plot_global_curves",
    "plot_importances",
    "plot_layer_curves",
    "plot_layer_heatmap",
    "plot_metric_by_group",
    "plot_speedup",
    "seed_spread",
    "summary_columns",
    "trial_columns",
    "trials_frame",
    "variance_explained",
]
