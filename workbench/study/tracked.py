"""One tracked trial: a point of the search space, trained and logged as one MLflow run.

:func:`run_tracked_trial` runs a trial and logs it as one MLflow run, whatever happens:

* it completes: run ``FINISHED``;
* the Optuna pruner stops it early: run ``KILLED``, tag ``workbench.trial_state = PRUNED``, reason
  ``early-stopped at step N (<metric> <value>)``;
* it diverges (NaN/inf loss) or raises: run ``FAILED`` with the reason in ``workbench.reason``
  and the curves recorded up to the failure; the exception goes on to Optuna (trial ``FAIL``,
  user attribute ``failure_reason``), which records it and goes on with the study;
* it is interrupted (Ctrl-C, SIGTERM): run ``KILLED`` with ``workbench.interrupted = true``;
  the trial is ``FAIL`` with ``interrupted = True`` and does not count toward the total.

The benchmark is a spec (``mlp-digits``, ``pkg.mod:fn``); with ``benchmark_params`` it is built
here, ``get_benchmark(spec, **benchmark_params)``, and the runner gets the built task. The params
are logged as ``benchmark.<key>`` and written to ``trial.yaml`` (``rerun`` builds the same task).

Example:
    >>> run_id, result = run_tracked_trial(tracker, exp_id, benchmark="mlp-digits",  # doctest: +SKIP
    ...     params={"pattern": "4x1", "criterion": "magnitude", "scheduler": "oneshot",
    ...             "target_sparsity": 0.8}, training=TrainingConfig(steps=30), seed=0, run_name="x")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from workbench.benchmarks import get_benchmark
from workbench.experiment import effective_params
from workbench.infra import interrupts
from workbench.study.preflight import task_goal
from workbench.tracking import Tracker, trial_params
from workbench.tracking.artifacts import BENCHMARK_PARAM
from workbench.tracking.model_store import log_trial_model
from workbench.trial import TrainingConfig, TrialResult, TrialStopped, build_pruning_config, run_trial

__all__ = ["TrialRunner", "reason_of", "run_tracked_trial"]


@dataclass(frozen=True)
class TrialRunner:
    """What a tracked trial calls to turn a point into a config and the config into a result.

    The defaults are the workbench's own (:func:`~workbench.trial.build_pruning_config`,
    :func:`~workbench.trial.run_trial`, :func:`~workbench.study.preflight.task_goal`: the task's
    metric and direction); tests and tools pass other functions with the same signatures.
    Module-level functions keep it picklable for worker processes.
    """

    build_config: Callable[..., dict[str, Any]] = build_pruning_config
    run: Callable[..., TrialResult] = run_trial
    goal: Callable[..., tuple[str, str]] = task_goal


def _takes_on_model(run: Callable[..., Any]) -> bool:
    """Whether ``run`` (a :class:`TrialRunner`'s trial function) accepts ``on_model=``."""
    try:
        params = inspect.signature(run).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "on_model" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def reason_of(err: BaseException) -> str:
    """``Type: message`` of an exception (the run's and the trial's failure reason)."""
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
    benchmark_params: dict[str, Any] | None = None,
    metric: str = "accuracy",
    log_model: bool = False,
) -> tuple[str, TrialResult]:
    """Build the pruning config for ``params``, run the trial and log it as one MLflow run.

    ``params`` are search-space values; ``lr`` goes to the training config and an N:M target is
    clipped (:func:`~workbench.experiment.effective_params`). Stopped, failed and interrupted
    trials end their run KILLED / FAILED / KILLED with a ``workbench.reason`` tag (see the
    module docstring), then re-raise. ``runner`` supplies the config builder and the trial;
    ``metric`` names what ``on_eval`` receives (the evaluations a failed trial still logs).
    With ``log_model``, a completed trial's pruned model is written sparse
    (:func:`~workbench.trial.model_file.save_sparse_model`) and logged with its run
    (``log_trial_model``: through the spool when the tracker spools).
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

    def _on_eval(step: int, value: float) -> None:
        evals[step] = value
        if on_eval:
            on_eval(step, value)

    bench_params = dict(benchmark_params or {})
    config = None
    logged = dict(eff, seed=seed, benchmark=benchmark, **{f"{BENCHMARK_PARAM}{k}": v for k, v in bench_params.items()})

    def log_partial(err: BaseException) -> None:
        partial = getattr(err, "result", None)  # TrialStopped / TrialDiverged carry what was recorded
        if isinstance(partial, TrialResult):
            tracker.log_result(run_id, partial, logged)
        else:
            tracker.log_partial(run_id, logged, pruning_config=config, eval_values=evals, metric=metric)

    try:
        config = runner.build_config(pruning_keys, training=training, fixed=fixed)
        logged = trial_params(eff, config, seed=seed, benchmark=benchmark, benchmark_params=bench_params)
        task = get_benchmark(benchmark, **bench_params) if bench_params else benchmark
        models: list[Any] = []
        keep = log_model and _takes_on_model(runner.run)  # a runner of tests or tools may hand out no model
        result = runner.run(task, config, training, seed, _on_eval, **({"on_model": models.append} if keep else {}))
    except TrialStopped as stop:
        log_partial(stop)
        tracker.finish(run_id, "PRUNED", f"early-stopped at step {stop.step} ({stop.metric} {stop.value:.4f})")
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        interrupts.handled()
        try:
            log_partial(err)
        finally:
            tracker.finish(run_id, "INTERRUPTED", interrupts.interrupt_reason(err))
        raise
    except BaseException as err:
        try:
            log_partial(err)
        finally:
            tracker.finish(run_id, "FAIL", reason_of(err))
        raise
    tracker.log_result(run_id, result, logged)
    if models:
        meta = {"run_id": run_id, "benchmark": benchmark, "metric": result.metric, "value": result.value}
        log_trial_model(tracker, run_id, models[-1], meta=meta)
    tracker.finish(run_id, "COMPLETE")
    return run_id, result
