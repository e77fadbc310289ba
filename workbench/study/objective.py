"""One tracked trial and the Optuna objective built on it.

:func:`run_tracked_trial` runs a trial and logs it as one MLflow run, whatever happens:

* it completes: run ``FINISHED``;
* the Optuna pruner stops it early: run ``KILLED``, tag ``workbench.trial_state = PRUNED``;
* it diverges (NaN/inf loss) or raises: run ``FAILED`` with the reason in ``workbench.reason``
  and the curves recorded up to the failure; the exception goes on to Optuna (trial ``FAIL``,
  user attribute ``failure_reason``), which records it and goes on with the study;
* it is interrupted (Ctrl-C, SIGTERM): run ``KILLED`` with ``workbench.interrupted = true``;
  the trial is ``FAIL`` with ``interrupted = True`` and does not count toward the total.

:class:`Objective` also records the worker process on the trial (user attribute ``worker``, see
:mod:`workbench.study.recovery`) so that a trial whose process was killed can be recognised later.

Example:
    >>> run_id, result = run_tracked_trial(tracker, exp_id, benchmark="mlp-digits",  # doctest: +SKIP
    ...     params={"pattern": "4x1", "criterion": "magnitude", "scheduler": "oneshot",
    ...             "target_sparsity": 0.8}, training=TrainingConfig(steps=30), seed=0, run_name="x")
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import optuna

from workbench.experiment import Experiment, effective_params
from workbench.infra import interrupts
from workbench.infra.diskfull import DiskFullError
from workbench.infra.outage import StoreOutage, as_stop
from workbench.infra.processes import worker_identity
from workbench.study.factories import suggest_params
from workbench.study.repeats import KEY_ATTR, REPEAT_ATTR, SEED_ATTR, enqueue_other_seeds, find_twin, seed_of
from workbench.tracking import Tracker, trial_params
from workbench.tracking.artifacts import config_label
from workbench.tracking.spool import SpooledTracker
from workbench.trial import TrainingConfig, TrialResult, TrialStopped, build_pruning_config, run_trial
from workbench.trial.space import point_key

__all__ = ["PLUGINS_TAG", "Objective", "TrialRunner", "plugin_tags", "run_tracked_trial"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialRunner:
    """What a tracked trial calls to turn a point into a config and the config into a result.

    The defaults are the workbench's own (:func:`~workbench.trial.build_pruning_config`,
    :func:`~workbench.trial.run_trial`); tests and tools pass other functions with the same
    signatures. Module-level functions keep it picklable for worker processes.
    """

    build_config: Callable[..., dict[str, Any]] = build_pruning_config
    run: Callable[..., TrialResult] = run_trial


PLUGINS_TAG = "workbench.plugins"
"""Run tag listing the experiment's ``plugins:`` modules, comma-separated (``rerun`` imports them)."""


def plugin_tags(experiment: Experiment) -> dict[str, str]:
    """The run tag naming the experiment's plug-in modules (none without plug-ins)."""
    return {PLUGINS_TAG: ",".join(experiment.plugins)} if experiment.plugins else {}


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def run_tracked_trial(
    tracker: Tracker,
    experiment_id: str,
    *,
    benchmark: str,
    params: dict[str, Any],
    training: TrainingConfig,
    seed: int,
    fixed: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    run_name: str,
    tags: dict[str, Any] | None = None,
    on_eval: Callable[[int, float], None] | None = None,
    on_run: Callable[[str], None] | None = None,
    runner: TrialRunner = TrialRunner(),
) -> tuple[str, TrialResult]:
    """Build the pruning config for ``params``, run the trial and log it as one MLflow run.

    ``params`` are search-space values; ``lr`` goes to the training config and an N:M target is
    clipped (:func:`~workbench.experiment.effective_params`). Stopped, failed and interrupted
    trials end their run KILLED / FAILED / KILLED with a ``workbench.reason`` tag (see the
    module docstring), then re-raise. ``runner`` supplies the config builder and the trial.
    """
    with interrupts.deferred():  # the run and the trial's record of it: both or, interrupted before, neither
        run_id = tracker.trial_run(experiment_id, parent_run_id=parent_run_id, run_name=run_name, tags=tags)
        if on_run:
            on_run(run_id)
    eff = effective_params(params)
    if eff.get("target_sparsity") != params.get("target_sparsity"):
        eff["requested_target_sparsity"] = params["target_sparsity"]
    if "lr" in eff:
        training = replace(training, lr=float(eff["lr"]))
    pruning_keys = {k: v for k, v in eff.items() if k not in ("lr", "requested_target_sparsity")}
    evals: dict[int, float] = {}

    def _on_eval(step: int, accuracy: float) -> None:
        evals[step] = accuracy
        if on_eval:
            on_eval(step, accuracy)

    config, logged = None, dict(eff, seed=seed, benchmark=benchmark)

    def log_partial(err: BaseException) -> None:
        partial = getattr(err, "result", None)  # TrialStopped / TrialDiverged carry what was recorded
        if isinstance(partial, TrialResult):
            tracker.log_result(run_id, partial, logged)
        else:
            tracker.log_partial(run_id, logged, pruning_config=config, eval_accuracy=evals)

    try:
        config = runner.build_config(pruning_keys, training=training, fixed=fixed)
        logged = trial_params(eff, config, seed=seed, benchmark=benchmark)
        result = runner.run(benchmark, config, training, seed, _on_eval)
    except TrialStopped as stop:
        log_partial(stop)
        tracker.finish(run_id, "PRUNED", f"early-stopped at step {stop.step} (accuracy {stop.accuracy:.4f})")
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        interrupts.handled()
        try:
            log_partial(err)
        finally:
            tracker.finish(run_id, "INTERRUPTED", f"interrupted ({type(err).__name__})")
        raise
    except BaseException as err:
        try:
            log_partial(err)
        finally:
            tracker.finish(run_id, "FAIL", _reason(err))
        raise
    tracker.log_result(run_id, result, logged)
    tracker.finish(run_id, "COMPLETE")
    return run_id, result


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
            trial.set_user_attr("failure_reason", f"interrupted ({type(err).__name__})")
            raise
        except BaseException as err:
            full = as_stop(err, self.tracking_uri)
            if full is None:
                trial.set_user_attr("failure_reason", _reason(err)[:2000])
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
        training = replace(exp.training, threads=self.threads or exp.training.threads)

        def on_eval(step: int, accuracy: float) -> None:
            if not exp.multi_objective:
                trial.report(accuracy, step)
                if trial.should_prune():
                    raise TrialStopped(step, accuracy)

        tags = {"optuna.trial_number": trial.number, "optuna.study_name": exp.study_name, **plugin_tags(exp)}
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
            )
        except TrialStopped as stop:
            raise optuna.TrialPruned(str(stop)) from None
        sparsity = result.final_sparsity.get("elementwise_over_matmul_gemm_conv", 0.0)
        trial.set_user_attr("sparsity", sparsity)
        trial.set_user_attr("dense_accuracy", result.dense_accuracy)
        trial.set_user_attr("seconds", result.timings.get("total", 0.0))
        values = (result.accuracy, sparsity) if exp.multi_objective else (result.accuracy,)
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
        for attr in ("mlflow_run_id", "sparsity", "dense_accuracy", "seconds"):
            if attr in twin.user_attrs:
                trial.set_user_attr(attr, twin.user_attrs[attr])
        values = tuple(twin.values)
        return values if self.experiment.multi_objective else values[0]
