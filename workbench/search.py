"""All Optuna calls: storage, sampler, pruner, search space, objective, workers and resume.

A study is named by ``study.study_name`` (else the experiment ``name``) and lives in an Optuna
storage; running the same command again loads it and runs trials until the study holds the
requested *total* of finished (complete, pruned or failed) trials. Every trial is one tracked
trial (:func:`run_tracked_trial`): a nested MLflow child run under the study's parent run.

Default storage (both in the working folder): whichever of ``sqlite:///optuna.db`` and the
journal file ``optuna.journal`` already holds the study; a new study goes to SQLite with one
worker and to the journal file with several (Optuna's JournalStorage is safe across processes).
``--storage`` takes any Optuna URL (``sqlite:///...``, ``postgresql://...``) or a path to a
journal file. With ``workers > 1`` the MLflow experiment and parent run are created first, then
``workers`` spawned processes each run trials with ``max(1, cores // workers)`` torch threads.

Example:
    >>> from workbench.experiment import load_experiment     # doctest: +SKIP
    >>> study = run_study(load_experiment("experiments/quick.yaml"))  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import optuna
import yaml
from optuna.trial import TrialState

from workbench.experiment import Experiment, FloatRange, effective_params
from workbench.study_report import summarize_study
from workbench.tracking import Tracker, trial_params
from workbench.trial_types import TrainingConfig, TrialResult, TrialStopped

__all__ = ["FINISHED", "make_sampler", "make_storage", "run_study", "run_tracked_trial", "suggest_params"]

_log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SQLITE_DEFAULT, JOURNAL_DEFAULT = "sqlite:///optuna.db", "optuna.journal"


def make_storage(spec: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (``scheme://...``) or a journal file path."""
    if "://" not in spec:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(spec, lock_obj=JournalFileOpenLock(spec)))
    kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None
    return optuna.storages.RDBStorage(spec, engine_kwargs=kwargs)


def default_storage(study_name: str, workers: int) -> str:
    """The embedded storage spec for ``study_name`` (see the module docstring)."""
    for spec, path in ((JOURNAL_DEFAULT, Path(JOURNAL_DEFAULT)), (SQLITE_DEFAULT, Path("optuna.db"))):
        if path.exists() and study_name in optuna.get_all_study_names(make_storage(spec)):
            return spec
    return SQLITE_DEFAULT if workers == 1 else JOURNAL_DEFAULT


def _grid(experiment: Experiment) -> dict[str, list[Any]]:
    return {dim: v.grid() if isinstance(v, FloatRange) else list(v)
            for dim, v in experiment.search_space.items() if dim in experiment.searched_dims()}


def make_sampler(experiment: Experiment, *, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``study.seed + seed_offset`` (one offset per worker)."""
    seed, n = experiment.study.seed + seed_offset, experiment.study.n_trials
    if experiment.study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if experiment.study.sampler == "grid":
        return optuna.samplers.GridSampler(_grid(experiment), seed=seed)
    if experiment.study.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=min(50, max(4, n // 3)), seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, n // 3)), seed=seed)


def make_pruner(experiment: Experiment) -> optuna.pruners.BasePruner:
    """Early stopping on intermediate accuracy: median, hyperband or none."""
    steps, every = experiment.training.steps, experiment.training.eval_every
    if experiment.study.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=min(steps - 1, 2 * every))
    if experiment.study.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=steps, reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest_params(trial: optuna.Trial, experiment: Experiment) -> dict[str, Any]:
    """Sample one point: searched dims through ``trial.suggest_*``, fixed dims as given."""
    searched, params = experiment.searched_dims(), {}
    for dim, space in experiment.search_space.items():
        if dim not in searched:
            params[dim] = space.low if isinstance(space, FloatRange) else space[0]
        elif isinstance(space, FloatRange):
            params[dim] = trial.suggest_float(dim, space.low, space.high, step=space.step, log=space.log)
        else:
            params[dim] = trial.suggest_categorical(dim, space)
    return params


def run_tracked_trial(tracker: Tracker, experiment_id: str, *, benchmark: str, params: dict[str, Any],
                      training: TrainingConfig, seed: int, fixed: dict[str, Any] | None = None,
                      parent_run_id: str | None = None, run_name: str, tags: dict[str, Any] | None = None,
                      on_eval: Callable[[int, float], None] | None = None,
                      on_run: Callable[[str], None] | None = None) -> tuple[str, TrialResult]:
    """Build the pruning config for ``params``, run the trial and log it as one MLflow run.

    ``params`` are search-space values; ``lr`` goes to the training config and an N:M target is
    clipped (:func:`~workbench.experiment.effective_params`). Stopped and failed trials end their
    run KILLED / FAILED with a ``workbench.reason`` tag, then re-raise.
    """
    from workbench.trial import build_pruning_config, run_trial

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
    try:
        config = build_pruning_config(pruning_keys, training=training, fixed=fixed)
        logged = trial_params(eff, config, seed=seed, benchmark=benchmark)
        result = run_trial(benchmark, config, training, seed, _on_eval)
    except TrialStopped as stop:
        partial = getattr(stop, "result", None)
        if isinstance(partial, TrialResult):
            tracker.log_result(run_id, partial, logged)
        else:
            tracker.log_partial(run_id, logged, pruning_config=config, eval_accuracy=evals)
        tracker.finish(run_id, "PRUNED", f"early-stopped at step {stop.step} (accuracy {stop.accuracy:.4f})")
        raise
    except BaseException as err:
        partial = getattr(err, "result", None)  # TrialDiverged carries what the trial recorded
        if isinstance(partial, TrialResult):
            tracker.log_result(run_id, partial, logged)
        else:
            tracker.log_partial(run_id, logged, pruning_config=config, eval_accuracy=evals)
        tracker.finish(run_id, "FAIL", f"{type(err).__name__}: {err}")
        raise
    tracker.log_result(run_id, result, logged)
    tracker.finish(run_id, "COMPLETE")
    return run_id, result


class Objective:
    """The picklable Optuna objective: one tracked trial per call."""

    def __init__(self, experiment: Experiment, *, tracking_uri: str, experiment_id: str,
                 parent_run_id: str, threads: int = 0) -> None:
        self.experiment, self.tracking_uri = experiment, tracking_uri
        self.experiment_id, self.parent_run_id, self.threads = experiment_id, parent_run_id, threads
        self._tracker: Tracker | None = None

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        exp = self.experiment
        self._tracker = self._tracker or Tracker(self.tracking_uri)
        params = suggest_params(trial, exp)
        training = replace(exp.training, threads=self.threads or exp.training.threads)

        def on_eval(step: int, accuracy: float) -> None:
            if not exp.multi_objective:
                trial.report(accuracy, step)
                if trial.should_prune():
                    raise TrialStopped(step, accuracy)

        tags = {"optuna.trial_number": trial.number, "optuna.study_name": exp.study_name}
        try:
            _, result = run_tracked_trial(
                self._tracker, self.experiment_id, benchmark=exp.benchmark, params=params, training=training,
                seed=exp.study.seed, fixed=exp.pruning, parent_run_id=self.parent_run_id,
                run_name=f"trial-{trial.number}", tags=tags, on_eval=on_eval,
                on_run=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id))
        except TrialStopped as stop:
            raise optuna.TrialPruned(str(stop)) from None
        trial.set_user_attr("sparsity", result.final_sparsity.get("elementwise_over_matmul_gemm_conv", 0.0))
        trial.set_user_attr("seconds", result.timings.get("total", 0.0))
        if exp.multi_objective:
            return result.accuracy, trial.user_attrs["sparsity"]
        return result.accuracy


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    values = "/".join(f"{v:.4f}" for v in trial.values or [])
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    _log.info("trial %d %s %s [%s] %.1fs run=%s", trial.number, trial.state.name, values or "-", params,
              (trial.duration.total_seconds() if trial.duration else 0.0), trial.user_attrs.get("mlflow_run_id", "-"))


def _count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _worker(job: dict[str, Any]) -> None:
    """One spawned worker process: run trials until the study holds the total."""
    import torch

    logging.basicConfig(level=logging.INFO, format="[worker %(process)d] %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(job["threads"])
    exp: Experiment = job["experiment"]
    study = optuna.load_study(study_name=exp.study_name, storage=make_storage(job["storage"]),
                              sampler=make_sampler(exp, seed_offset=job["index"]), pruner=make_pruner(exp))
    objective = Objective(exp, tracking_uri=job["tracking_uri"], experiment_id=job["experiment_id"],
                          parent_run_id=job["parent_run_id"], threads=job["threads"])
    while _count(study, FINISHED + (TrialState.RUNNING,)) < job["total"]:
        study.optimize(objective, n_trials=1, callbacks=[_log_trial], catch=(Exception,))


def run_study(experiment: Experiment, *, n_trials: int | None = None, workers: int = 1,
              storage: str | None = None, tracking_uri: str | None = None,
              show_progress_bar: bool = False) -> optuna.Study:
    """Create or resume the study and run it until it holds ``n_trials`` finished trials.

    Returns the study (loaded from its storage). The parent MLflow run is reused on resume and
    receives the study summary artifacts (trials table, best-so-far or Pareto plot, importances).
    """
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    total = n_trials if n_trials is not None else experiment.study.n_trials
    if total < 1:
        raise ValueError(f"n_trials: must be >= 1, got {total}")
    if experiment.study.sampler == "grid":
        total = min(total, math.prod(len(v) for v in _grid(experiment).values()) or 1)
    spec = storage or default_storage(experiment.study_name, workers)
    directions = ["maximize"] * len(experiment.study.objectives)
    study = optuna.create_study(storage=make_storage(spec), study_name=experiment.study_name, load_if_exists=True,
                                directions=directions, sampler=make_sampler(experiment), pruner=make_pruner(experiment))
    tracker = Tracker(tracking_uri)
    exp_id = tracker.experiment_id(experiment.name)
    study_params = {"benchmark": experiment.benchmark, "sampler": experiment.study.sampler,
                    "objectives": ",".join(experiment.study.objectives), "study_pruner": experiment.study.pruner,
                    "seed": experiment.study.seed, "storage": spec,
                    **{f"training.{k}": v for k, v in experiment.training.to_dict().items()}}
    parent = tracker.study_run(exp_id, experiment.study_name, params=study_params,
                               config_text=yaml.safe_dump(_experiment_dict(experiment), sort_keys=False))
    study.set_user_attr("mlflow_experiment_id", exp_id)
    study.set_user_attr("mlflow_parent_run_id", parent)
    done = _count(study, FINISHED)
    _log.info("study %r: %d finished trials, target %d, storage %s, tracking %s",
              experiment.study_name, done, total, spec, tracker.tracking_uri)
    remaining = total - done
    try:
        if remaining > 0 and workers == 1:
            objective = Objective(experiment, tracking_uri=tracker.tracking_uri, experiment_id=exp_id,
                                  parent_run_id=parent)
            study.optimize(objective, n_trials=remaining, callbacks=[_log_trial], catch=(Exception,),
                           show_progress_bar=show_progress_bar)
        elif remaining > 0:
            _run_workers(experiment, spec=spec, total=total, workers=workers, tracking_uri=tracker.tracking_uri,
                         experiment_id=exp_id, parent_run_id=parent, show_progress_bar=show_progress_bar)
    except BaseException:  # interrupted or a worker died: the parent run must not stay RUNNING
        tracker.client.set_terminated(parent, status="KILLED")
        raise
    study = optuna.load_study(study_name=experiment.study_name, storage=make_storage(spec))
    summarize_study(study, tracker, parent, experiment)
    tracker.end_study(parent)
    return study


def _run_workers(experiment: Experiment, *, spec: str, total: int, workers: int, show_progress_bar: bool,
                 **job: Any) -> None:
    threads = experiment.training.threads or max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(dict(job, experiment=experiment, storage=spec, total=total,
                                                     threads=threads, index=i),), daemon=False)
             for i in range(workers)]
    for proc in procs:
        proc.start()
    study = optuna.load_study(study_name=experiment.study_name, storage=make_storage(spec))
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=_count(study, FINISHED), desc=experiment.study_name)
    while any(p.is_alive() for p in procs):
        time.sleep(1.0)
        if bar is not None:
            bar.update(_count(study, FINISHED) - bar.n)
    if bar is not None:
        bar.close()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"{len(failed)} of {workers} workers exited with an error (exit codes {failed})")


def _experiment_dict(experiment: Experiment) -> dict[str, Any]:
    space = {k: (vars(v) if isinstance(v, FloatRange) else v) for k, v in experiment.search_space.items()}
    study = dict(vars(experiment.study), objectives=list(experiment.study.objectives))
    return {"name": experiment.name, "benchmark": experiment.benchmark, "training": experiment.training.to_dict(),
            "pruning": experiment.pruning, "search_space": space, "study": study}
