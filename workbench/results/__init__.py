"""A study's results as plain data: the Pareto front, the best trial per bin of reached sparsity,
importances at matched sparsity, and the figures drawn from them.

Owns the rules that the study's end-of-search summary and parent-run artifacts
(:mod:`workbench.study`) and the notebooks' read-only API (:mod:`workbench.analysis`) both apply,
so the two never disagree: trials grouped by configuration with the metric averaged over seeds
(:mod:`.configs`), the Pareto front and whether trials measured speed (:mod:`.front`), the
best per bin of reached sparsity (:mod:`.matched`), importances on residuals
(:mod:`.importance`) and the study figures (:mod:`.figures`). Rows are plain
dicts, one per trial; which way the task's metric is better is its ``direction`` (``"maximize"`` /
``"minimize"``, :mod:`workbench.benchmarks.direction`); sparsity and speed-up are
maximised. May import experiment, trial, pruner and infra; never MLflow or Optuna, never the study
or analysis layers (import contracts in pyproject.toml).
"""

from workbench.results.configs import by_configuration, configuration_knobs
from workbench.results.front import front, has_speed, pareto_indices
from workbench.results.matched import BIN_WIDTH, best_per_bin, matched_rows, sparsity_bin

__all__ = [
    "BIN_WIDTH",
    "best_per_bin",
    "by_configuration",
    "configuration_knobs",
    "front",
    "has_speed",
    "matched_rows",
    "pareto_indices",
    "sparsity_bin",
]
