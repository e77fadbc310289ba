"""The study summary logged on the parent MLflow run after every ``workbench search``.

* ``trials.csv``: one row per trial (number, state, objective values, effective params, reached
  sparsity, seed, repeat_of, MLflow run id, duration, failure reason, interrupted);
* ``<metric>_vs_sparsity.png`` (``accuracy_vs_sparsity.png``): every trained configuration
  (:func:`workbench.results.configs.by_configuration`: its trials over seeds; one trial each in a
  study of one seed) at the mean sparsity it reached (colour = pattern, marker = criterion), its
  mean metric with an error bar of ± one standard deviation over seeds where it has several, the
  dense model's value of the task's metric and the Pareto front of the means (under the task's
  direction); ``best_so_far.png`` too with a single objective (per trial);
* ``best_at_matched_sparsity.csv``: the best configuration of each pattern x criterion in each 0.1
  bin of reached sparsity (the other knobs are the best configuration's, shown, not held fixed;
  ``<metric>_std``, ``n_seeds`` and ``trials`` too when the study has several seeds);
* metrics ``best_<metric>/sparsity_<bin>``: the best (mean) value of the metric kept in each bin of
  reached sparsity (the lowest for a minimised metric);
* metrics ``config/<metric>_mean``, ``config/<metric>_std`` and ``config/n_seeds`` on every trial
  run of a study with several seeds: its configuration's mean and spread over seeds, which the
  study's landing view in the MLflow UI shows beside each trial (:mod:`workbench.tracking.landing_view`);
* ``<metric>_vs_cost.png`` and ``cost_by_criterion.csv``: the metric against each trial's wall time
  and peak memory, and per criterion the trials, best metric and median cost (post-training
  criteria marked), so cost is an axis beside sparsity;
* ``<metric>_vs_speedup.png`` when trials measured speed (``training.measure_speed``): the metric
  against each trial's measured speed-up of its slimmed model, dense at 1.0
  (:mod:`workbench.results.figures`); ``trials.csv`` then has a ``speedup`` column;
* ``param_importances.json`` / ``.csv`` / ``.png``: importances of the searched knobs for the metric
  at matched sparsity (:mod:`workbench.results.importance`), over configuration means: the seed is
  never a knob. With fewer than three complete configurations,
  or when no knob but the target varied, the JSON says ``{"skipped": "<why>"}`` and no PNG is written.

Example:
    >>> rows = trial_rows(study)        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import optuna
from mlflow.entities import Metric
from optuna.trial import TrialState

from workbench.benchmarks.direction import best_of
from workbench.results.configs import by_configuration, several_seeds, spread_column
from workbench.results.front import front, has_speed
from workbench.results.importance import residual_importances
from workbench.results.matched import best_per_bin, matched_columns, matched_rows, sparsity_bin
from workbench.study.repeats import REPEAT_ATTR, SEED_ATTR
from workbench.study.summary import result_rows, study_goal
from workbench.trial.space import effective_params, is_posttraining, sampled_params

if TYPE_CHECKING:
    from workbench.experiment import Experiment
    from workbench.tracking import Tracker

__all__ = ["COST_COLUMNS", "cost_rows", "param_importances", "summarize_study", "trial_rows"]

COST_COLUMNS = ("criterion", "posttraining", "trials", "best", "median_wall_s", "median_peak_memory_mb")
"""The columns of ``cost_by_criterion.csv`` (``best`` is the best value of the task's metric)."""

_log = logging.getLogger(__name__)


def trial_rows(study: optuna.Study, objectives: tuple[str, ...] = ("accuracy",)) -> list[dict[str, Any]]:
    """One plain dict per trial, ordered by trial number.

    Params are the effective ones, as MLflow records them: an N:M target above N/M shows N/M, the
    sampled value goes to ``requested_target_sparsity``. ``sparsity`` is the sparsity reached,
    ``seed`` the trial seed, ``repeat_of`` the trial whose stored result an exact repeat returned.
    """
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
        for name, value in zip(objectives, trial.values or []):
            row[name] = value
        sampled = sampled_params(trial.params, trial.distributions)
        eff = effective_params(sampled)
        row.update(eff)
        if eff.get("target_sparsity") != sampled.get("target_sparsity"):
            row["requested_target_sparsity"] = sampled["target_sparsity"]
        row["sparsity"] = trial.user_attrs.get("sparsity", "")
        if "speedup" in trial.user_attrs:
            row.setdefault("speedup", trial.user_attrs["speedup"])
        row["seed"] = trial.user_attrs.get(SEED_ATTR, "")
        row["repeat_of"] = trial.user_attrs.get(REPEAT_ATTR, "")
        row["mlflow_run_id"] = trial.user_attrs.get("mlflow_run_id", "")
        row["duration_s"] = round(trial.duration.total_seconds(), 3) if trial.duration else ""
        row["reason"] = trial.user_attrs.get("failure_reason", "")
        row["interrupted"] = bool(trial.user_attrs.get("interrupted", False))
        rows.append(row)
    return rows


def param_importances(study: optuna.Study) -> dict[str, Any]:
    """Importances of the searched knobs for the task's metric at matched sparsity, or ``{"skipped": reason}``.

    :func:`~workbench.results.importance.residual_importances` over the trained configurations
    (:func:`~workbench.results.configs.by_configuration`: each one's metric is its mean over seeds,
    so the seed is never a knob and a configuration trained with three seeds counts once): the
    reached sparsity's effect on the metric is removed first, so the target does not drown the
    other knobs, and a knob is scored only where it has an effect (deterministic: no seed).
    """
    metric, direction = study_goal(study)
    configs = by_configuration(result_rows(study, metric), metric=metric)
    knobs = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params} - {"seed"})
    rows = [dict(r, target_sparsity=r["target"]) for r in configs]
    return residual_importances(rows, knobs, metric=metric, direction=direction)


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if isinstance(v, (int, float)) and v == v)
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def cost_rows(results: list[dict[str, Any]], *, metric: str, direction: str) -> list[dict[str, Any]]:
    """Per criterion of ``results`` (:func:`~workbench.study.summary.result_rows`): trials, best metric, median cost."""
    out = []
    for criterion in sorted({str(r.get("criterion")) for r in results}):
        rows = [r for r in results if str(r.get("criterion")) == criterion]
        out.append(
            {
                "criterion": criterion,
                "posttraining": is_posttraining(criterion),
                "trials": len(rows),
                "best": best_of([r[metric] for r in rows], direction),
                "median_wall_s": _median([r.get("wall_s", math.nan) for r in rows]),
                "median_peak_memory_mb": _median([r.get("peak_memory_mb", math.nan) for r in rows]),
            }
        )
    return out


def summarize_study(study: optuna.Study, tracker: Tracker, parent_run_id: str, experiment: Experiment) -> None:
    """Compute the summary and log it on the parent run (see the module docstring)."""
    # start-up: matplotlib loads when the summary is made, not before the study's first trial
    from workbench.results.figures import (
        plot_best_so_far,
        plot_cost,
        plot_importances,
        plot_metric_vs_sparsity,
        plot_metric_vs_speedup,
    )

    objectives, metric, direction = experiment.study.objectives, experiment.metric, experiment.direction
    goal = {"metric": metric, "direction": direction}
    rows = trial_rows(study, objectives)
    results = result_rows(study, metric)
    configs = by_configuration(results, metric=metric)
    seeded = several_seeds(configs)
    if not seeded:  # one trial per configuration: the trial rows, their seed included, as ever
        configs = results
    figures: dict[str, Any] = {}
    dense = [r[f"dense_{metric}"] for r in results if r[f"dense_{metric}"] == r[f"dense_{metric}"]]
    figures[f"{metric.replace('/', '_')}_vs_sparsity.png"] = plot_metric_vs_sparsity(
        configs, metric=metric, dense=sum(dense) / len(dense) if dense else None, front=front(configs, **goal)
    )
    if results:
        figures[f"{metric.replace('/', '_')}_vs_cost.png"] = plot_cost(results, metric=metric)
    if has_speed(results):
        figures[f"{metric.replace('/', '_')}_vs_speedup.png"] = plot_metric_vs_speedup(
            configs,
            metric=metric,
            dense=sum(dense) / len(dense) if dense else None,
            front=front(configs, **goal, axis="speedup"),
        )
    if len(objectives) == 1:
        values = [r[metric] for r in results]
        figures["best_so_far.png"] = plot_best_so_far(
            [r["trial"] for r in results], values, label=metric, direction=direction
        )
    importances = param_importances(study)
    unit = "configurations (means over seeds)" if seeded else "trials"
    if "importances" in importances:
        counts = importances["n_trials"]
        figures["param_importances.png"] = plot_importances(
            {f"{k} (n={counts[k]})": v for k, v in importances["importances"].items()},
            title=f"Importance for {metric} at matched sparsity (share; n = {unit} where the knob acts)",
        )
    else:
        _log.info("parameter importances skipped: %s", importances["skipped"])
    counts = {state: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    metrics = {
        "trials/complete": counts[TrialState.COMPLETE],
        "trials/pruned": counts[TrialState.PRUNED],
        "trials/failed": counts[TrialState.FAIL],
    }
    for row in best_per_bin(configs, (), **goal).get((), {}).values():  # the best value kept at each sparsity
        metrics[f"best_{metric}/sparsity_{sparsity_bin(row['sparsity'])}"] = row[metric]
    searched = [
        k for k in ("pruner", "pruning_scope", "sparsity_decay_type", "lr", "seed") if any(k in r for r in configs)
    ]
    matched = matched_rows(configs, **goal)
    if seeded:
        _log_configuration_metrics(tracker, configs, metric)
        searched += [spread_column(metric), "n_seeds", "trials"]
        matched = [dict(r, trials=" ".join(str(t) for t in r["trials"])) for r in matched]
    tables = {
        "best_at_matched_sparsity.csv": (matched, list(dict.fromkeys([*matched_columns(metric), *searched]))),
        "cost_by_criterion.csv": (cost_rows(results, **goal), list(COST_COLUMNS)),
    }
    tracker.log_study_summary(
        parent_run_id, rows=rows, figures=figures, importances=importances, metrics=metrics, tables=tables
    )


def _log_configuration_metrics(tracker: Tracker, configs: list[dict[str, Any]], metric: str) -> None:
    """On every trial run, its configuration's mean, spread and ``n_seeds`` (``config/...`` metrics).

    What the landing view shows beside each trial of a study with several seeds. A run that
    cannot be written (deleted meanwhile) is skipped with a debug line.
    """
    now = int(time.time() * 1000)
    for config in configs:
        values = {
            f"config/{metric}_mean": config[metric],
            f"config/{metric}_std": config[spread_column(metric)],
            "config/n_seeds": float(config["n_seeds"]),
        }
        batch = [Metric(k, float(v), now, 0) for k, v in values.items() if v == v]
        for run_id in filter(None, config["run_ids"]):
            try:
                tracker.client.log_batch(run_id, metrics=batch)
            except Exception as err:  # noqa: BLE001 - a run gone from the store: the rest still get theirs
                _log.debug("configuration metrics not logged on run %s: %s", run_id, err)
