"""Run a study: create or resume it, recover what a dead process left, run its trials, summarise.

A study is named by ``study.study_name`` (else the experiment ``name``) and lives in an Optuna
storage; running the same command again loads it and runs trials until the requested *total*
of trials count (:func:`~workbench.study.recovery.counted_trials`: complete, pruned, and failed by
the trial itself; a trial failed by an interruption or a killed worker is run again). Every
trial is one tracked trial (:func:`~workbench.study.objective.run_tracked_trial`): a nested MLflow
child run under the study's parent run.

Storage: see :mod:`workbench.study.factories`.

Every start first recovers the study (:func:`~workbench.study.recovery.recover_study`): trials left
RUNNING by a killed process are failed and their MLflow runs KILLED. With ``workers > 1`` the
MLflow experiment, parent run and stores are created first; on a SQLite tracking store a local
tracking server becomes the single writer (:mod:`workbench.tracking.server`); then the workers
start (:mod:`workbench.study.workers`). Trials hand their end-of-trial logging to one log writer
process per study (:mod:`workbench.tracking.spool`), drained before the study ends. On Ctrl-C
the running trials are failed and their runs KILLED, the parent run is KILLED, and
``KeyboardInterrupt`` propagates. The study saves its landing view in the MLflow UI (its trials,
best metric first, with the metric, reached sparsity and knobs shown) on the experiment
(:mod:`workbench.tracking.landing_view`); ``workbench ui`` prints its address.

Example:
    >>> from workbench.experiment import load_experiment     # doctest: +SKIP
    >>> study = run_study(load_experiment("experiments/quick.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from typing import Any

import optuna
import yaml

from workbench.experiment import Experiment, FloatRange
from workbench.infra import interrupts
from workbench.infra.locks import store_lock
from workbench.infra.stores import local_path, redact_url, sqlite_path
from workbench.pruner.errors import ConfigError
from workbench.study.budget import progress_bar, run_trials
from workbench.study.description import describe_study
from workbench.study.factories import grid_space, make_pruner, make_sampler, make_storage, resolve_storage
from workbench.study.models import keep_front_models, register_front
from workbench.study.objective import Objective, TrialRunner
from workbench.study.preflight import check_device, check_stores, resolve_task, source_of
from workbench.study.recovery import counted_trials, recover_study, stale_trial_callback
from workbench.study.repeats import space_exhausted
from workbench.study.report import summarize_study
from workbench.study.store_health import check_store_health
from workbench.study.workers import WorkerError, run_workers
from workbench.tracking import Tracker, resolve_tracking_uri
from workbench.tracking.landing_view import landing_view_tag
from workbench.tracking.server import LocalTrackingServer, needs_local_server
from workbench.tracking.spool import SpoolWriter, replay, spool_dir
from workbench.tracking.store_create import ensure_sqlite_store, hide_default_experiment
from workbench.trial.space import ordered

__all__ = ["run_study"]

_log = logging.getLogger(__name__)


def run_study(
    experiment: Experiment,
    *,
    n_trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    tracking_uri: str | None = None,
    show_progress_bar: bool = False,
    runner: TrialRunner = TrialRunner(),
) -> optuna.Study:
    """Create or resume the study and run it until ``n_trials`` trials count (module docstring).

    Returns the study (loaded from its storage). The parent MLflow run is reused on resume and
    receives the study summary artifacts (trials table, best-so-far or Pareto plot, importances).

    Raises:
        KeyboardInterrupt: Ctrl-C / SIGTERM; the running trials are failed (not counted), their
            runs and the parent run KILLED. Running the same call again resumes.
        WorkerError: A worker process died before the total was reached (resumable too).
    """

    if workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    total = n_trials if n_trials is not None else experiment.study.n_trials
    if total < 1:
        raise ConfigError(f"n_trials: must be >= 1, got {total}")
    check_device(experiment)  # a device this machine lacks: exit 2 before any store or trial
    experiment = resolve_task(experiment, runner.goal)  # the task's metric and direction; bad objectives: exit 2
    if experiment.study.sampler == "grid":  # every grid point once per seed
        grid = math.prod(len(v) for v in grid_space(experiment).values()) or 1
        total = min(total, grid * len(experiment.study.trial_seeds))
    spec = resolve_storage(storage, experiment.study_name, workers)
    check_stores(  # both stores, before either is created or written
        spec,
        resolve_tracking_uri(tracking_uri),
        storage_source=source_of(storage, "--storage", "WORKBENCH_STORAGE"),
        tracking_source=source_of(tracking_uri, "--tracking-uri", "MLFLOW_TRACKING_URI"),
    )
    tracker, study, exp_id, parent = _open_stores(experiment, spec, resolve_tracking_uri(tracking_uri))
    spool = spool_dir(tracker.tracking_uri, experiment.study_name)
    replay(spool, tracker, reclaim=True)  # logging a dead writer left behind, before recovery judges runs
    recovered = recover_study(study, tracker, parent)
    done = counted_trials(study)
    _log.info(
        "study %r: %d trials done%s, target %d, storage %s, tracking %s",
        experiment.study_name,
        done,
        f" ({len(recovered)} left running by a dead worker, now failed)" if recovered else "",
        total,
        redact_url(spec),
        redact_url(tracker.tracking_uri),
    )
    if done >= total:
        _log.info(
            "study %r has %d of %d counted trials: nothing to resume (ask for more with --n-trials N > %d)",
            experiment.study_name,
            done,
            total,
            done,
        )
    try:
        if done < total and workers == 1:
            objective = Objective(
                experiment,
                tracking_uri=tracker.tracking_uri,
                experiment_id=exp_id,
                parent_run_id=parent,
                spool=str(spool),
                runner=runner,
            )
            with (
                SpoolWriter(spool, tracker.tracking_uri, plugins=experiment.plugins) as writer,
                progress_bar(show_progress_bar, total, done, experiment.study_name) as bar,
            ):
                run_trials(
                    study,
                    objective,
                    spec=spec,
                    total=total,
                    tracker=tracker,
                    parent_run_id=parent,
                    progress=bar,
                    check=writer.check,
                )
        elif done < total:
            server = LocalTrackingServer(tracker.tracking_uri) if needs_local_server(tracker.tracking_uri) else None
            with (
                server or contextlib.nullcontext(tracker.tracking_uri) as worker_uri,
                SpoolWriter(spool, worker_uri, plugins=experiment.plugins),
            ):
                run_workers(
                    experiment,
                    spec=spec,
                    total=total,
                    workers=workers,
                    tracking_uri=worker_uri,
                    experiment_id=exp_id,
                    parent_run_id=parent,
                    wait_for_server=server is not None,
                    show_progress_bar=show_progress_bar,
                    spool=str(spool),
                    runner=runner,
                )
    except BaseException as err:
        interrupts.handled()
        _close_interrupted(study, tracker, parent, interrupts.interrupt_reason(err))
        if not isinstance(err, WorkerError) or counted_trials(study) < total:
            raise
        _log.warning("%s; the other workers completed the study", err)
    _say_why_short(study, experiment.study_name, total)
    study = optuna.load_study(study_name=experiment.study_name, storage=make_storage(spec))
    summarize_study(study, tracker, parent, experiment)
    if experiment.log_model != "none":
        try:  # the models are extras: a model MLflow cannot save must not fail a finished study
            keep_front_models(study, tracker, experiment)
            register_front(study, tracker, experiment, parent)
        except Exception as err:  # noqa: BLE001 - reported, the study's results stand
            _log.warning("keeping or registering the front's models failed (%s: %s)", type(err).__name__, err)
    describe_study(study, tracker, parent, experiment)  # the answer on the parent run's page
    tracker.end_study(parent)
    return study


def _say_why_short(study: optuna.Study, name: str, total: int) -> None:
    """Log why a study ended with fewer than ``total`` trained trials (its space is exhausted)."""
    done = counted_trials(study)
    reason = space_exhausted(study) if done < total else None
    if reason:
        _log.warning("study %r stopped at %d of %d trained trials: %s", name, done, total, reason)


def _open_stores(experiment: Experiment, spec: str, tracking_uri: str) -> tuple[Tracker, optuna.Study, str, str]:
    """Check, create or load both stores, the study and its parent run: (tracker, study, exp id, parent).

    Under :func:`~workbench.infra.locks.store_lock` of both local store files: two searches started
    at once in a new folder create each store once (MLflow's migrations raced and broke
    ``mlflow.db``) and share one parent run.
    """
    with store_lock((local_path(spec), sqlite_path(tracking_uri))):
        check_store_health(spec, tracking_uri, experiment.study_name, experiment.name)
        created = ensure_sqlite_store(tracking_uri)
        tracker = Tracker(tracking_uri)
        if created:  # a new store shows the study's experiment, not MLflow's empty Default beside it
            hide_default_experiment(tracker.client, keep=experiment.name)
        study = optuna.create_study(
            storage=make_storage(spec, failed_trial_callback=stale_trial_callback(tracker)),
            study_name=experiment.study_name,
            load_if_exists=True,
            directions=[experiment.direction, "maximize"][: len(experiment.study.objectives)],
            pruner=make_pruner(experiment),
        )
        study.sampler = make_sampler(experiment)
        with warnings.catch_warnings():  # experimental in Optuna; optuna-dashboard names the objectives with it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(experiment.study.objectives))
        exp_id = tracker.experiment_id(experiment.name, description=experiment.description or None)
        _save_landing_view(tracker, exp_id, experiment)
        study_params = {
            "benchmark": experiment.benchmark,
            **{f"benchmark.{k}": v for k, v in experiment.benchmark_params.items()},
            "metric": experiment.metric,
            "direction": experiment.direction,
            "sampler": experiment.study.sampler,
            "objectives": ",".join(experiment.study.objectives),
            "study_pruner": experiment.study.pruner,
            "seed": experiment.study.seed,
            "storage": redact_url(spec),
            **{f"training.{k}": v for k, v in experiment.training.to_dict().items()},
        }
        parent = tracker.study_run(
            exp_id,
            experiment.study_name,
            params=study_params,
            config_text=yaml.safe_dump(_experiment_dict(experiment), sort_keys=False),
        )
        study.set_user_attr("mlflow_experiment_id", exp_id)
        study.set_user_attr("mlflow_parent_run_id", parent)
        study.set_user_attr("metric", experiment.metric)  # the console lines and summaries name it
        study.set_user_attr("direction", experiment.direction)
        study.set_user_attr("objectives", list(experiment.study.objectives))  # sparsity or speedup second
        study.set_user_attr("seeds", list(experiment.study.trial_seeds))  # trial lines show the seed when several
    return tracker, study, exp_id, parent


def view_knobs(experiment: Experiment) -> list[str]:
    """The params the landing view shows: every knob the study searches (more than one value), and the target.

    In the search space's order (pattern, criterion, scheduler, decay type, pruning scope, ...);
    a knob with one value in the whole study is left out, the target sparsity never is.
    """
    return ordered({*experiment.searched_dims(), "target_sparsity"})


def _save_landing_view(tracker: Tracker, exp_id: str, experiment: Experiment) -> None:
    """The study's landing view as a saved view of its experiment, unless one is saved (a user's edit stays)."""
    key, value = landing_view_tag(
        experiment.study_name,
        metric=experiment.metric,
        direction=experiment.direction,
        now_ms=int(time.time() * 1000),
        knobs=view_knobs(experiment),
        seeds=len(experiment.study.trial_seeds) > 1,
        models=experiment.log_model != "none",
    )
    if key not in tracker.client.get_experiment(exp_id).tags:
        tracker.client.set_experiment_tag(exp_id, key, value)


def _close_interrupted(study: optuna.Study, tracker: Tracker, parent: str, reason: str) -> None:
    """After an interrupt or a dead worker: fail our RUNNING trials, KILL their runs and the parent
    (its ``workbench.reason`` says why)."""
    with interrupts.ignoring_sigint():
        try:
            recover_study(study, tracker, parent, own=True)
        except Exception as err:  # noqa: BLE001 - the next start recovers what is left
            _log.debug("recovery after interrupt failed: %s", err)
        try:
            tracker.client.set_tag(parent, "workbench.reason", reason)
            tracker.client.set_terminated(parent, status="KILLED")
        except Exception as err:  # noqa: BLE001 - a full disk: the next start closes it
            _log.debug("closing the parent run failed: %s", err)


def _experiment_dict(experiment: Experiment) -> dict[str, Any]:
    space = {k: (vars(v) if isinstance(v, FloatRange) else v) for k, v in experiment.search_space.items()}
    study = dict(
        vars(experiment.study), objectives=list(experiment.study.objectives), seeds=list(experiment.study.seeds)
    )
    plugins = {"plugins": list(experiment.plugins)} if experiment.plugins else {}
    return {
        "name": experiment.name,
        **plugins,
        "benchmark": experiment.benchmark,
        **({"benchmark_params": dict(experiment.benchmark_params)} if experiment.benchmark_params else {}),
        "training": experiment.training.to_dict(),
        "pruning": experiment.pruning,
        "search_space": space,
        "study": study,
        "tracking": {"log_model": experiment.log_model},
    }
