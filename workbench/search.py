"""All Optuna calls: storage, sampler, pruner, search space, and the study (create, resume, run).

A study is named by ``study.study_name`` (else the experiment ``name``) and lives in an Optuna
storage; running the same command again loads it and runs trials until the requested *total*
of trials count (:func:`~workbench.recovery.counted_trials`: complete, pruned, and failed by
the trial itself; a trial failed by an interruption or a killed worker is run again). Every
trial is one tracked trial (:func:`~workbench.objective.run_tracked_trial`): a nested MLflow
child run under the study's parent run.

Storage: ``storage``, else ``$WORKBENCH_STORAGE``, else whichever of ``sqlite:///optuna.db`` and
the journal file ``optuna.journal`` (in the working folder) already holds the study; a new study
goes to SQLite with one worker and to the journal file with several (Optuna's JournalStorage is
safe across processes of one machine). Any Optuna URL works (``postgresql://...`` for several
machines); a value without ``://`` is a journal file. RDB storages get Optuna's heartbeat.

Every start first recovers the study (:func:`~workbench.recovery.recover_study`): trials left
RUNNING by a killed process are failed and their MLflow runs KILLED. With ``workers > 1`` the
MLflow experiment, parent run and stores are created first; on a SQLite tracking store a local
tracking server becomes the single writer (:mod:`workbench.tracking_server`); then the workers
start (:mod:`workbench.workers`). Trials hand their end-of-trial logging to one log writer
process per study (:mod:`workbench.tracking_spool`), drained before the study ends. On Ctrl-C
the running trials are failed and their runs KILLED, the parent run is KILLED, and
``KeyboardInterrupt`` propagates.

Example:
    >>> from workbench.experiment import load_experiment     # doctest: +SKIP
    >>> study = run_study(load_experiment("experiments/quick.yaml"))  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
import yaml

from workbench import interrupts
from workbench.experiment import Experiment, FloatRange
from workbench.objective import Objective, run_tracked_trial
from workbench.recovery import GRACE_PERIOD, HEARTBEAT_INTERVAL, counted_trials, recover_study, stale_trial_callback
from workbench.study_report import summarize_study
from workbench.tracking import Tracker, redact_url
from workbench.tracking_spool import SpoolWriter, replay, spool_dir
from workbench.workers import WorkerError

__all__ = ["WorkerError", "make_pruner", "make_sampler", "make_storage", "resolve_storage", "run_study", "run_tracked_trial",
           "suggest_params"]

_log = logging.getLogger(__name__)

SQLITE_DEFAULT, JOURNAL_DEFAULT = "sqlite:///optuna.db", "optuna.journal"


def make_storage(spec: str, *, failed_trial_callback: Callable[..., None] | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (``scheme://...``) or a journal file path.

    RDB URLs get a heartbeat (``WORKBENCH_HEARTBEAT_INTERVAL`` / ``WORKBENCH_HEARTBEAT_GRACE``
    seconds) so trials of a worker that died on any machine are failed; ``failed_trial_callback``
    runs for each of them.
    """
    if "://" not in spec:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(spec, lock_obj=JournalFileOpenLock(spec)))
    kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None
    callback_arg = ("heartbeat_stale_trial_callback"  # Optuna >= 4.9; failed_trial_callback before
                    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
                    else "failed_trial_callback")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(spec, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_INTERVAL,
                                          grace_period=GRACE_PERIOD, **{callback_arg: failed_trial_callback})


def resolve_storage(storage: str | None, study_name: str, workers: int) -> str:
    """The storage spec: ``storage``, else ``$WORKBENCH_STORAGE``, else :func:`default_storage`."""
    return storage or os.environ.get("WORKBENCH_STORAGE") or default_storage(study_name, workers)


def default_storage(study_name: str, workers: int) -> str:
    """The embedded storage spec for ``study_name`` (see the module docstring)."""
    for spec, path in ((JOURNAL_DEFAULT, Path(JOURNAL_DEFAULT)), (SQLITE_DEFAULT, Path("optuna.db"))):
        if path.exists() and study_name in optuna.get_all_study_names(make_storage(spec)):
            return spec
    return SQLITE_DEFAULT if workers == 1 else JOURNAL_DEFAULT


def _grid(experiment: Experiment) -> dict[str, list[Any]]:
    return {dim: v.grid() if isinstance(v, FloatRange) else list(v)
            for dim, v in experiment.search_space.items() if dim in experiment.searched_dims()}


def make_sampler(experiment: Experiment) -> optuna.samplers.BaseSampler:
    """The study's sampler; every trial draws from its own stream, seeded ``study.seed + trial.number``.

    So a resumed study draws new points, processes sharing one study (workers, machines) never
    draw the same random point for two trials, and the same study run again from scratch draws
    the same points.
    """
    seed, n = experiment.study.seed, experiment.study.n_trials
    if experiment.study.sampler == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif experiment.study.sampler == "grid":
        sampler = optuna.samplers.GridSampler(_grid(experiment), seed=seed)
    elif experiment.study.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(population_size=min(50, max(4, n // 3)), seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, n // 3)), seed=seed)
    return _seeded_per_trial(sampler, seed)


def _seeded_per_trial(sampler: optuna.samplers.BaseSampler, seed: int) -> optuna.samplers.BaseSampler:
    """Reseed the sampler's random states (its own and its startup sampler's) at every trial start."""
    before_trial = sampler.before_trial

    def reseeding_before_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        for owner in (sampler, getattr(sampler, "_random_sampler", None)):
            state = getattr(owner, "_rng", None)
            if hasattr(state, "rng"):  # Optuna's LazyRandomState
                state.rng.seed((seed + trial.number) % 2**32)
        before_trial(study, trial)

    sampler.before_trial = reseeding_before_trial  # type: ignore[method-assign]
    return sampler


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


def run_study(experiment: Experiment, *, n_trials: int | None = None, workers: int = 1,
              storage: str | None = None, tracking_uri: str | None = None,
              show_progress_bar: bool = False) -> optuna.Study:
    """Create or resume the study and run it until ``n_trials`` trials count (module docstring).

    Returns the study (loaded from its storage). The parent MLflow run is reused on resume and
    receives the study summary artifacts (trials table, best-so-far or Pareto plot, importances).

    Raises:
        KeyboardInterrupt: Ctrl-C / SIGTERM; the running trials are failed (not counted), their
            runs and the parent run KILLED. Running the same call again resumes.
        WorkerError: A worker process died before the total was reached (resumable too).
    """
    from workbench.tracking_server import LocalTrackingServer, needs_local_server
    from workbench.workers import progress_bar, run_trials, run_workers

    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    total = n_trials if n_trials is not None else experiment.study.n_trials
    if total < 1:
        raise ValueError(f"n_trials: must be >= 1, got {total}")
    if experiment.study.sampler == "grid":
        total = min(total, math.prod(len(v) for v in _grid(experiment).values()) or 1)
    spec = resolve_storage(storage, experiment.study_name, workers)
    tracker = Tracker(tracking_uri)
    directions = ["maximize"] * len(experiment.study.objectives)
    study = optuna.create_study(storage=make_storage(spec, failed_trial_callback=stale_trial_callback(tracker)),
                                study_name=experiment.study_name, load_if_exists=True, directions=directions,
                                pruner=make_pruner(experiment))
    study.sampler = make_sampler(experiment)
    exp_id = tracker.experiment_id(experiment.name)
    study_params = {"benchmark": experiment.benchmark, "sampler": experiment.study.sampler,
                    "objectives": ",".join(experiment.study.objectives), "study_pruner": experiment.study.pruner,
                    "seed": experiment.study.seed, "storage": redact_url(spec),
                    **{f"training.{k}": v for k, v in experiment.training.to_dict().items()}}
    parent = tracker.study_run(exp_id, experiment.study_name, params=study_params,
                               config_text=yaml.safe_dump(_experiment_dict(experiment), sort_keys=False))
    study.set_user_attr("mlflow_experiment_id", exp_id)
    study.set_user_attr("mlflow_parent_run_id", parent)
    spool = spool_dir(tracker.tracking_uri, experiment.study_name)
    replay(spool, tracker, reclaim=True)  # logging a dead writer left behind, before recovery judges runs
    recovered = recover_study(study, tracker, parent)
    done = counted_trials(study)
    _log.info("study %r: %d trials done%s, target %d, storage %s, tracking %s", experiment.study_name, done,
              f" ({len(recovered)} left running by a dead worker, now failed)" if recovered else "", total,
              redact_url(spec), redact_url(tracker.tracking_uri))
    try:
        if done < total and workers == 1:
            objective = Objective(experiment, tracking_uri=tracker.tracking_uri, experiment_id=exp_id,
                                  parent_run_id=parent, spool=str(spool))
            with SpoolWriter(spool, tracker.tracking_uri), \
                    progress_bar(show_progress_bar, total, done, experiment.study_name) as bar:
                run_trials(study, objective, spec=spec, total=total, tracker=tracker, parent_run_id=parent,
                           progress=bar)
        elif done < total:
            server = LocalTrackingServer(tracker.tracking_uri) if needs_local_server(tracker.tracking_uri) else None
            with server or contextlib.nullcontext(tracker.tracking_uri) as worker_uri, \
                    SpoolWriter(spool, worker_uri):
                run_workers(experiment, spec=spec, total=total, workers=workers, tracking_uri=worker_uri,
                            experiment_id=exp_id, parent_run_id=parent,
                            wait_for_server=server is not None, show_progress_bar=show_progress_bar,
                            spool=str(spool))
    except BaseException as err:
        interrupts.handled()
        _close_interrupted(study, tracker, parent)
        if not isinstance(err, WorkerError) or counted_trials(study) < total:
            raise
        _log.warning("%s; the other workers completed the study", err)
    study = optuna.load_study(study_name=experiment.study_name, storage=make_storage(spec))
    summarize_study(study, tracker, parent, experiment)
    tracker.end_study(parent)
    return study


def _close_interrupted(study: optuna.Study, tracker: Tracker, parent: str) -> None:
    """After an interrupt or a dead worker: fail our RUNNING trials, KILL their runs and the parent."""
    from workbench.interrupts import ignoring_sigint

    with ignoring_sigint():
        try:
            recover_study(study, tracker, parent, own=True)
        except Exception as err:  # noqa: BLE001 - the next start recovers what is left
            _log.debug("recovery after interrupt failed: %s", err)
        tracker.client.set_terminated(parent, status="KILLED")


def _experiment_dict(experiment: Experiment) -> dict[str, Any]:
    space = {k: (vars(v) if isinstance(v, FloatRange) else v) for k, v in experiment.search_space.items()}
    study = dict(vars(experiment.study), objectives=list(experiment.study.objectives))
    return {"name": experiment.name, "benchmark": experiment.benchmark, "training": experiment.training.to_dict(),
            "pruning": experiment.pruning, "search_space": space, "study": study}
