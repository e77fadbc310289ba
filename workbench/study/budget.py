"""The trial loop of one process: claim a trial under the study lock, run it, log one line.

:class:`TrialBudget` takes the study lock, fails orphaned trials, and lets one more trial start
only while the trials that count (:func:`~workbench.study.recovery.counted_trials`) plus the
RUNNING ones stay below the total, and the space still has an untrained point
(:func:`~workbench.study.repeats.space_exhausted`); the lock is released as soon as the trial exists. So N
processes, on one machine or several, stop at exactly the requested total. :func:`run_trials`
is that loop, run by ``workbench search`` itself and by each worker process.

Example:
    >>> run_trials(study, objective, spec="optuna.db", total=12,   # doctest: +SKIP
    ...            tracker=tracker, parent_run_id=parent)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from workbench.infra import interrupts
from workbench.study import heartbeat as _heartbeat
from workbench.study.console import once_per_study
from workbench.study.objective import Objective
from workbench.study.recovery import counted_trials, recover_study, study_lock
from workbench.study.repeats import REPEAT_ATTR, SEED_ATTR, space_exhausted
from workbench.tracking import Tracker
from workbench.trial.space import effective_params, sampled_params

__all__ = ["TrialBudget", "log_trial", "progress_bar", "run_trials"]

_log = logging.getLogger("workbench.study.workers")  # one logger name for the trial lines, whichever process


def log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One labelled line per finished trial (an Optuna callback).

    ``trial 6 COMPLETE accuracy=0.9645 sparsity=0.600 [pattern=4x1 ... target_sparsity=0.5] 3.1s run=...``:
    the first value is the task's metric (``perplexity=35.2000`` for a language model; the study's
    user attribute ``metric``), the params the effective ones (an N:M target shows N/M), ``sparsity``
    the one reached; the second value is the study's second objective (``speedup=2.100`` with
    ``[<metric>, speedup]``), and a measured ``speedup`` is shown when recorded; ``seed=N`` ends the
    params when the study has several seeds (its user attribute ``seeds``).
    """
    objectives = study.user_attrs.get("objectives") or []
    names = (
        str(study.user_attrs.get("metric", "accuracy")),
        str(objectives[-1] if len(objectives) > 1 else "sparsity"),
    )
    values = " ".join(
        f"{n}={v:.4f}" if i == 0 else f"{n}={v:.3f}" for i, (n, v) in enumerate(zip(names, trial.values or []))
    )
    for extra in ("sparsity", "speedup"):  # the other axis, when recorded
        if trial.values and extra not in names[: len(trial.values)] and extra in trial.user_attrs:
            values += f" {extra}={trial.user_attrs[extra]:.3f}"
    params = " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in effective_params(sampled_params(trial.params, trial.distributions)).items()
    )
    if len(study.user_attrs.get("seeds") or ()) > 1 and SEED_ATTR in trial.user_attrs:
        params += f" seed={trial.user_attrs[SEED_ATTR]}"
    failure = trial.user_attrs.get("failure_reason")
    reason = f" ({failure})" if trial.state == TrialState.FAIL and failure else ""
    if REPEAT_ATTR in trial.user_attrs:
        reason += f" (repeat of trial {trial.user_attrs[REPEAT_ATTR]}: its stored result, not trained)"
    level = logging.WARNING if trial.state == TrialState.FAIL else logging.INFO
    _log.log(
        level,
        "trial %d %s %s [%s] %.1fs run=%s%s",
        trial.number,
        trial.state.name,
        values or "-",
        params,
        (trial.duration.total_seconds() if trial.duration else 0.0),
        trial.user_attrs.get("mlflow_run_id", "-"),
        reason,
    )


class TrialBudget:
    """Hands out trials under the study lock until ``total`` trials count (see the module docstring)."""

    def __init__(
        self,
        study: optuna.Study,
        *,
        spec: str,
        total: int,
        tracker: Tracker | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.study, self.total, self.tracker, self.parent_run_id = study, total, tracker, parent_run_id
        self._spec = spec
        self._lock: Any = None

    def claim(self) -> bool:
        """Take the lock; True (lock kept until :meth:`release`) when one more trial fits."""
        lock = study_lock(self._spec, self.study.study_name, self.study._storage)
        lock.__enter__()
        self._lock = lock
        try:
            recover_study(self.study, self.tracker, self.parent_run_id, close_runs=False)
            running = len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            room = counted_trials(self.study) + running < self.total and space_exhausted(self.study) is None
        except BaseException:
            self.release()
            raise
        if not room:
            self.release()
        return room

    def release(self) -> None:
        """Release the lock if held (called when the trial exists, or after a failed claim)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(None, None, None)


def run_trials(
    study: optuna.Study,
    objective: Objective,
    *,
    spec: str,
    total: int,
    tracker: Tracker | None,
    parent_run_id: str | None,
    progress: Any = None,
    check: Callable[[], None] | None = None,
    heartbeat_s: float | None = None,
) -> None:
    """Run trials one at a time until ``total`` count; ``progress`` is an optional tqdm bar.

    While a trial runs, a line every ``heartbeat_s`` seconds (default
    :data:`~workbench.study.heartbeat.HEARTBEAT_S`) says which trial, its step, ``n/N``
    trials done and an ETA (:class:`~workbench.study.heartbeat.Heartbeat`), on the bar too.

    ``check`` runs after every trial (the log writer's health); a trial stopped by a full disk
    stops the loop with its :class:`~workbench.infra.diskfull.DiskFullError` (or a store's
    :class:`~workbench.infra.outage.StoreOutage`).

    The loop runs with interrupts deferred and the objective's trial deliverable
    (:mod:`workbench.infra.interrupts`): a Ctrl-C that arrives while Optuna records a trial's
    end, or between two trials, is raised here once the trial is recorded.
    """
    budget = TrialBudget(study, spec=spec, total=total, tracker=tracker, parent_run_id=parent_run_id)
    objective.on_start = budget.release
    interval = heartbeat_s if heartbeat_s is not None else _heartbeat.HEARTBEAT_S
    heartbeat = _heartbeat.Heartbeat(lambda: objective.progress, total=total, progress=progress, interval=interval)
    with interrupts.deferred(), once_per_study(), heartbeat:
        while budget.claim():
            objective.progress = {}  # not the previous trial's step
            heartbeat.trial_started(**_pace(study))
            try:
                study.optimize(objective, n_trials=1, callbacks=[log_trial], catch=(Exception,))
            finally:
                budget.release()
                heartbeat.trial_ended()
            if objective.fatal is not None:
                raise objective.fatal
            if check is not None:
                check()
            interrupts.raise_deferred()
            if progress is not None:
                progress.update(counted_trials(study) - progress.n)


def _pace(study: optuna.Study) -> dict[str, Any]:
    """What the heartbeat's ETA needs: trials counted, durations of trained ones, trials running at once."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    durations = [
        t.duration.total_seconds()
        for t in trials
        if t.state == TrialState.COMPLETE and t.duration is not None and REPEAT_ATTR not in t.user_attrs
    ]
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return {"done": counted_trials(study), "durations": durations, "parallel": running + 1}


@contextlib.contextmanager
def progress_bar(show: bool, total: int, done: int, name: str) -> Iterator[Any]:
    """A tqdm bar of trials counted so far (``None`` when not shown), closed on exit."""
    if not show:
        yield None
        return
    bar = tqdm(total=total, initial=done, desc=name)
    try:
        yield bar
    finally:
        bar.close()
