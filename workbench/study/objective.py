"""The Optuna objective: one tracked trial (:mod:`workbench.study.tracked`) per Optuna trial.

:class:`Objective` samples a point, runs it as a tracked trial and returns the task's metric (and
the sparsity reached or the measured speed-up, with two objectives) to Optuna, whose directions
follow the task's (``study.objectives``; sparsity and speed-up maximised). With one objective, every evaluation is reported to
Optuna's pruner (early stopping) under the task's direction. It also records the worker process
on the trial (user attribute ``worker``, see :mod:`workbench.study.recovery`) so that a trial
whose process was killed can be recognised later, and the task's metric on the trial
(``dense_value``: the dense baseline's value of it).

Example:
    >>> objective = Objective(experiment, tracking_uri="sqlite:///mlflow.db",   # doctest: +SKIP
    ...                       experiment_id="1", parent_run_id=parent)
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import optuna

from workbench.experiment import Experiment, effective_params
from workbench.infra import interrupts
from workbench.infra.diskfull import DiskFullError
from workbench.infra.outage import StoreOutage, as_stop
from workbench.infra.processes import worker_identity
from workbench.study.factories import suggest_params
from workbench.study.repeats import KEY_ATTR, REPEAT_ATTR, SEED_ATTR, enqueue_other_seeds, find_twin, seed_of
from workbench.study.sweep import enqueue_target_sweep
from workbench.study.tracked import TrialRunner, reason_of, run_tracked_trial
from workbench.tracking import Tracker
from workbench.tracking.artifacts import DIRECTION_TAG, METRIC_TAG, config_label
from workbench.tracking.spool import SpooledTracker
from workbench.trial import TrialStopped
from workbench.trial.space import point_key

__all__ = ["PLUGINS_TAG", "Objective", "TrialRunner", "plugin_tags", "run_tracked_trial", "task_tags"]

_log = logging.getLogger(__name__)


PLUGINS_TAG = "workbench.plugins"
"""Run tag listing the experiment's ``plugins:`` modules, comma-separated (``rerun`` imports them)."""


def plugin_tags(experiment: Experiment) -> dict[str, str]:
    """The run tag naming the experiment's plug-in modules (none without plug-ins)."""
    return {PLUGINS_TAG: ",".join(experiment.plugins)} if experiment.plugins else {}


def task_tags(experiment: Experiment) -> dict[str, str]:
    """The run tags naming the task's metric and its direction (``workbench.metric``, ``workbench.direction``)."""
    return {METRIC_TAG: experiment.metric, DIRECTION_TAG: experiment.direction}


class Objective:
    """The picklable Optuna objective: one tracked trial per call.

    ``on_start`` is called first thing in every trial (the worker loop releases its budget lock
    there, see :mod:`workbench.study.workers`). With ``spool`` (a folder), each trial's end-of-trial
    logging is written there for the study's log writer process instead of being sent to
    MLflow by the trial (:mod:`workbench.tracking.spool`).
    """

    def __init__(
        self,
        experiment: Experiment,
        *,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        threads: int = 0,
        on_start: Callable[[], None] | None = None,
        spool: str | None = None,
        runner: TrialRunner = TrialRunner(),
    ) -> None:
        self.experiment, self.tracking_uri = experiment, tracking_uri
        self.experiment_id, self.parent_run_id, self.threads = experiment_id, parent_run_id, threads
        self.on_start, self.spool, self.runner = on_start, spool, runner
        self._tracker: Tracker | None = None
        self.fatal: DiskFullError | StoreOutage | None = None
        """Set when a trial stopped on a full disk or a store outage: the trial loop raises it (the study stops)."""
        self.progress: dict[str, Any] = {}
        """The running trial: ``trial`` (number), ``step`` (last evaluated step), ``steps`` (read by the heartbeat)."""

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _tracker=None, on_start=None)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:  # everything inside: an interrupt in the first lines must still mark the trial
            with interrupts.deliverable():  # the trial loop defers interrupts; the trial takes them at once
                if self.on_start:
                    self.on_start()
                trial.set_user_attr("worker", worker_identity())
                return self._run(trial)
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, SystemExit) as err:
            interrupts.handled()
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("failure_reason", interrupts.interrupt_reason(err))
            raise
        except BaseException as err:
            full = as_stop(err, self.tracking_uri)
            if full is None:
                trial.set_user_attr("failure_reason", reason_of(err)[:2000])
                raise
            self.fatal = full  # not the configuration's failure: the trial is run again after a resume
            with contextlib.suppress(Exception):
                trial.set_user_attr("interrupted", True)
                trial.set_user_attr("failure_reason", f"interrupted ({full})")
            raise

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        exp = self.experiment
        if self._tracker is None:
            self._tracker = (
                SpooledTracker(self.tracking_uri, spool=self.spool) if self.spool else Tracker(self.tracking_uri)
            )
        params = suggest_params(trial, exp)
        seeds = exp.study.trial_seeds
        enqueued = SEED_ATTR in trial.user_attrs  # a seed repeat another trial queued
        seed = seed_of(trial.user_attrs, seeds)
        key = point_key(params, seed)
        trial.set_user_attr(SEED_ATTR, seed)
        trial.set_user_attr(KEY_ATTR, key)
        twin = find_twin(trial.study, key, trial.number)
        if twin is not None:
            return self._repeat(trial, twin, seed)
        if not enqueued:
            enqueue_other_seeds(trial.study, dict(trial.params), seeds, trial.number)
            if exp.study.sweep_target:  # every other target of the grid, for every seed
                enqueue_target_sweep(trial, exp.search_space["target_sparsity"], seeds)
        training = replace(exp.training, threads=self.threads or exp.training.threads)
        self.progress = {"trial": trial.number, "step": 0, "steps": training.steps}

        def on_eval(step: int, value: float) -> None:
            self.progress = {**self.progress, "step": step}
            if not exp.multi_objective:
                trial.report(value, step)  # Optuna's pruner compares under the study's (the task's) direction
                if trial.should_prune():
                    raise TrialStopped(step, value, exp.metric)

        tags = {"optuna.trial_number": trial.number, "optuna.study_name": exp.study_name, **plugin_tags(exp)}
        tags.update(task_tags(exp))
        try:
            _, result = run_tracked_trial(
                self._tracker,
                self.experiment_id,
                benchmark=exp.benchmark,
                params=params,
                training=training,
                seed=seed,
                fixed=exp.pruning,
                parent_run_id=self.parent_run_id,
                run_name=f"t{trial.number:02d} {config_label(effective_params(params))}",
                tags=tags,
                on_eval=on_eval,
                on_run=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id),
                runner=self.runner,
                benchmark_params=exp.benchmark_params,
                metric=exp.metric,
                log_model=exp.log_model != "none",
            )
        except TrialStopped as stop:
            raise optuna.TrialPruned(str(stop)) from None
        if result.metric != exp.metric:  # Optuna would optimise the wrong number, maybe the wrong way
            raise ValueError(f"metric: the trial reported {result.metric!r}; the study optimises {exp.metric!r}")
        sparsity = result.final_sparsity.get("elementwise_over_matmul_gemm_conv", 0.0)
        trial.set_user_attr("sparsity", sparsity)
        trial.set_user_attr("dense_value", result.dense_value)
        trial.set_user_attr("seconds", result.timings.get("total", 0.0))
        trial.set_user_attr("wall_s", result.timings.get("total", 0.0) - result.timings.get("baseline", 0.0))
        if "peak_rss_mb" in result.memory:  # the cost axis of the parent run's cost figure
            trial.set_user_attr("peak_memory_mb", result.memory["peak_rss_mb"])
        for key in ("speedup", "param_ratio"):  # measured speed (training.measure_speed)
            if key in result.speed:
                trial.set_user_attr(key, result.speed[key])
        second = result.speed.get("speedup", math.nan) if exp.study.objectives[-1] == "speedup" else sparsity
        values = (result.value, second) if exp.multi_objective else (result.value,)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"objective values are not finite: {values}")
        return values if exp.multi_objective else values[0]

    def _repeat(self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial, seed: int) -> float | tuple[float, float]:
        """An exact repeat of ``twin``: its stored result, not trained again (see :mod:`.repeats`)."""
        _log.info(
            "trial %d repeats trial %d (same configuration, seed %d): returned its stored result, not trained",
            trial.number,
            twin.number,
            seed,
        )
        trial.set_user_attr(REPEAT_ATTR, twin.number)
        for attr in (
            "mlflow_run_id",
            "sparsity",
            "dense_value",
            "dense_accuracy",  # a study written before 0.1.0; until 0.2.0 (summary.OLD_DENSE_REMOVED_IN)
            "seconds",
            "wall_s",
            "peak_memory_mb",
            "speedup",
            "param_ratio",
        ):
            if attr in twin.user_attrs:
                trial.set_user_attr(attr, twin.user_attrs[attr])
        values = tuple(twin.values)
        return values if self.experiment.multi_objective else values[0]
