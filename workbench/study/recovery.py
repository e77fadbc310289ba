"""Crash safety for studies: who runs a trial, which RUNNING trials are orphans, the budget lock.

Every trial records the process that runs it (user attribute ``worker``: host, boot id, pid and
the process start time). Optuna's JournalStorage has no heartbeat, so on the next start of the
study (and before every trial a worker starts) :func:`recover_study` fails the RUNNING trials
whose process is gone from this host (pid not running, or running but started at another time,
or the host rebooted). RDB storages (SQLite, PostgreSQL) also get Optuna's heartbeat
(:data:`HEARTBEAT_INTERVAL`, :data:`GRACE_PERIOD`), which catches dead workers on other machines.
A recovered trial is ``FAIL`` in Optuna (``interrupted = True`` where the storage allows) and
its MLflow run is ``KILLED``; interrupted trials do not count toward the study's total
(:func:`counted_trials`).

:func:`study_lock` serialises "is there room for one more trial? then create it" across every
process of a study, so N workers stop at exactly the requested number of trials.

Example:
    >>> recovered = recover_study(study, tracker, parent_run_id)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text

from workbench.infra.locks import file_lock
from workbench.infra.processes import owner_is_dead, worker_identity
from workbench.infra.stores import local_path, store_scheme
from workbench.study.repeats import REPEAT_ATTR

if TYPE_CHECKING:
    from workbench.tracking import Tracker

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "counted_trials",
    "recover_study",
    "stale_trial_callback",
    "study_lock",
]

_log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = int(os.environ.get("WORKBENCH_HEARTBEAT_INTERVAL", "10"))
"""Seconds between two heartbeats of a running trial on an RDB storage."""
ORPHAN_AGE = 120.0
"""Seconds after which a RUNNING trial that never recorded its worker counts as orphaned."""
GRACE_PERIOD = int(os.environ.get("WORKBENCH_HEARTBEAT_GRACE", "60"))
"""Seconds without heartbeat after which an RDB trial counts as stale (its worker died)."""


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward the study's total: COMPLETE, PRUNED, and FAIL by the trial itself.

    An exact repeat (user attribute ``repeat_of``, :mod:`workbench.study.repeats`) is not trained
    and does not count.

    A trial that failed by itself (diverged, raised; it carries a ``failure_reason``) is a
    result of the search and counts, as in Optuna's ``n_trials``, so a study of failing
    configurations still ends. A trial failed by an interruption (Ctrl-C, a killed worker, a
    stale heartbeat) says nothing about its parameters and is run again.
    """
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        if REPEAT_ATTR not in t.user_attrs
        and (t.state != TrialState.FAIL or ("failure_reason" in t.user_attrs and not t.user_attrs.get("interrupted")))
    )


def _mark_interrupted(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """FAIL a RUNNING trial as interrupted; False when another process finished it first."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_user_attr(trial._trial_id, "failure_reason", reason)
        return bool(storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def stale_trial_callback(tracker: Tracker) -> Any:
    """A ``failed_trial_callback`` for RDB heartbeats: mark the trial interrupted, its run KILLED."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        _log.warning(_left_by_dead(trial.number, trial.user_attrs.get("worker"), "no heartbeat"))
        run_id = trial.user_attrs.get("mlflow_run_id")  # the trial is FAIL already: no attrs to add
        if run_id:
            _kill_run(tracker, run_id, "worker stopped sending heartbeats (killed or lost)")

    return callback


def _kill_run(tracker: Tracker, run_id: str, reason: str) -> None:
    try:
        if tracker.client.get_run(run_id).info.status == "RUNNING":
            tracker.finish(run_id, "INTERRUPTED", reason)
    except Exception as err:  # noqa: BLE001 - recovery must go on for the other trials
        _log.warning("could not mark MLflow run %s KILLED: %s", run_id, err)


def recover_study(
    study: optuna.Study,
    tracker: Tracker | None,
    parent_run_id: str | None,
    *,
    own: bool = False,
    close_runs: bool = True,
) -> list[int]:
    """Fail orphaned RUNNING trials and close their MLflow runs; returns the trial numbers failed.

    A RUNNING trial is orphaned when its owner process is dead on this host
    (:func:`owner_is_dead`), when ``own`` is set and this process owns it (after an interrupt),
    or when its RDB heartbeat is stale. Then every child run of ``parent_run_id`` still RUNNING
    whose Optuna trial was failed from outside (interrupted, dead worker) is marked KILLED (this
    also catches a run created just before its worker died, before the trial learned the run
    id); with ``close_runs`` false, only when this call failed a trial (the cheap check done
    before every trial).
    """
    me, failed = worker_identity(), []
    if tracker is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # RDB heartbeat; a no-op for other storages
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        if owner is None:  # the owner is recorded milliseconds after creation: its process died in between
            start = trial.datetime_start
            age = (datetime.datetime.now(start.tzinfo) - start).total_seconds() if start else 0.0
            mine, dead = own, age > ORPHAN_AGE
        else:
            mine = own and isinstance(owner, dict) and all(owner.get(k) == me[k] for k in ("host", "pid", "start"))
            dead = not mine and owner_is_dead(owner)
        if not (mine or dead):
            continue
        who = f"{owner.get('host')}:{owner.get('pid')}" if isinstance(owner, dict) else "?"
        if _mark_interrupted(study, trial, "interrupted" if mine else f"worker {who} died"):
            failed.append(trial.number)
            if mine:
                _log.debug("trial %d: interrupted in this process, marked failed", trial.number)
            else:
                how = "its process is gone" if owner is not None else f"no worker recorded in {ORPHAN_AGE:.0f} s"
                _log.warning(_left_by_dead(trial.number, owner, how))
    if tracker is not None and parent_run_id and (close_runs or failed):
        _close_orphan_runs(study, tracker, parent_run_id)
    return failed


def _left_by_dead(number: int, owner: Any, how: str) -> str:
    """The one line recovery logs for a trial a dead process left RUNNING: trial, worker, host, what happens."""
    if isinstance(owner, dict):
        worker = f"worker pid {owner.get('pid')} on host {owner.get('host')}"
    else:
        worker = "a worker that died before recording itself"
    return (
        f"recovered trial {number}: left running by {worker} ({how}); marked failed and interrupted: "
        "it does not count toward n_trials and the study runs another trial in its place"
    )


def _interrupted(trial: FrozenTrial) -> bool:
    """A trial failed from outside (interrupt, dead worker): nobody else will close its run.

    Completed, pruned and self-failed trials close their own runs, possibly a little later
    (their logging may still wait in the log writer's spool), so those runs are left alone.
    """
    return trial.state == TrialState.FAIL and (
        bool(trial.user_attrs.get("interrupted")) or "failure_reason" not in trial.user_attrs
    )


def _close_orphan_runs(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> None:
    exp_id = tracker.client.get_run(parent_run_id).info.experiment_id
    runs = tracker.client.search_runs(
        [exp_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'", max_results=1000
    )
    if not runs:
        return
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for run in runs:
        trial = by_number.get(int(run.data.tags.get("optuna.trial_number", -1)))
        if trial is not None and _interrupted(trial):
            _kill_run(tracker, run.info.run_id, str(trial.user_attrs.get("failure_reason", "interrupted")))


@contextlib.contextmanager
def _postgres_lock(storage: optuna.storages.RDBStorage, key: int) -> Iterator[None]:
    with storage.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def _rdb_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.RDBStorage | None:
    """The RDBStorage behind ``storage``: a study's ``_storage`` is Optuna's cache around it."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def study_lock(spec: str, study_name: str, storage: optuna.storages.BaseStorage) -> contextlib.AbstractContextManager:
    """An exclusive lock over ``study_name`` shared by every process using storage ``spec``.

    Journal files and SQLite databases use a file lock (processes of one machine); PostgreSQL
    uses an advisory lock (any machine). Other storages get no lock: several processes may then
    overshoot the total by a trial or so.
    """
    rdb = _rdb_storage(storage)
    if store_scheme(spec) == "postgresql" and rdb is not None:
        # advisory locks are per database, so the study name alone is the key: machines that
        # spell the host differently (localhost / dbhost) still share the lock
        digest = hashlib.sha1(study_name.encode()).digest()
        return _postgres_lock(rdb, int.from_bytes(digest[:8], "big", signed=True))
    path = local_path(spec)
    if path is None:
        return contextlib.nullcontext()
    real = os.path.realpath(path)
    name = hashlib.sha1(f"{real}\0{study_name}".encode()).hexdigest()[:16]
    return file_lock(Path(tempfile.gettempdir()) / f"workbench-{os.getuid()}" / f"study-{name}.lock")
