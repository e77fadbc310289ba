"""The study summary logged on the parent MLflow run after every ``workbench search``.

* ``trials.csv``: one row per trial (number, state, objective values, params, MLflow run id,
  duration, failure reason, interrupted);
* ``best_so_far.png`` (single objective) or ``pareto_front.png`` (accuracy vs sparsity);
* ``param_importances.json`` / ``.csv`` / ``.png``: Optuna's fANOVA importances of the searched
  parameters for accuracy. With fewer than two complete trials, or when no searched parameter
  varied, the JSON says ``{"skipped": "<why>"}`` and no PNG is written.

Example:
    >>> rows = trial_rows(study)        # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from workbench.study.figures import plot_best_so_far, plot_importances, plot_pareto_front

if TYPE_CHECKING:
    from workbench.experiment import Experiment
    from workbench.tracking import Tracker

__all__ = ["param_importances", "summarize_study", "trial_rows"]

_log = logging.getLogger(__name__)


def trial_rows(study: optuna.Study, objectives: tuple[str, ...] = ("accuracy",)) -> list[dict[str, Any]]:
    """One plain dict per trial, ordered by trial number."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
        for name, value in zip(objectives, trial.values or []):
            row[name] = value
        row.update(trial.params)
        row["mlflow_run_id"] = trial.user_attrs.get("mlflow_run_id", "")
        row["duration_s"] = round(trial.duration.total_seconds(), 3) if trial.duration else ""
        row["reason"] = trial.user_attrs.get("failure_reason", "")
        row["interrupted"] = bool(trial.user_attrs.get("interrupted", False))
        rows.append(row)
    return rows


def param_importances(study: optuna.Study, *, seed: int = 0) -> dict[str, Any]:
    """fANOVA importances for accuracy (objective 0), or ``{"skipped": reason}``."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {"skipped": f"needs at least 2 complete trials, have {len(complete)}"}
    varied = [p for p in {k for t in complete for k in t.params} if len({repr(t.params.get(p)) for t in complete}) > 1]
    if not varied:
        return {"skipped": "no searched parameter took more than one value"}
    try:
        values = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed),
            params=sorted(varied),
            target=lambda t: t.values[0],
        )
    except (RuntimeError, ValueError) as err:  # Optuna refuses degenerate inputs
        return {"skipped": f"{type(err).__name__}: {err}"}
    return {"target": "accuracy", "n_complete_trials": len(complete), "importances": dict(values)}


def summarize_study(study: optuna.Study, tracker: Tracker, parent_run_id: str, experiment: Experiment) -> None:
    """Compute the summary and log it on the parent run."""
    objectives = experiment.study.objectives
    rows = trial_rows(study, objectives)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    figures: dict[str, Any] = {}
    if len(objectives) > 1:
        front = {t.number for t in study.best_trials}
        points = [(t.values[1], t.values[0]) for t in complete]
        best = [(t.values[1], t.values[0]) for t in complete if t.number in front]
        figures["pareto_front.png"] = plot_pareto_front(points, best)
    else:
        figures["best_so_far.png"] = plot_best_so_far([t.number for t in complete], [t.values[0] for t in complete])
    importances = param_importances(study, seed=experiment.study.seed)
    if "importances" in importances:
        figures["param_importances.png"] = plot_importances(importances["importances"])
    else:
        _log.info("parameter importances skipped: %s", importances["skipped"])
    counts = {state: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    metrics = {
        "trials/complete": counts[TrialState.COMPLETE],
        "trials/pruned": counts[TrialState.PRUNED],
        "trials/failed": counts[TrialState.FAIL],
    }
    if complete:
        metrics["best_accuracy"] = max(t.values[0] for t in complete)
    tracker.log_study_summary(parent_run_id, rows=rows, figures=figures, importances=importances, metrics=metrics)
