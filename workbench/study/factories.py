"""Optuna factories: the storage, sampler, early-stopping pruner and search-space sampling of a study.

Storage: ``storage``, else ``$WORKBENCH_STORAGE``, else whichever of ``sqlite:///optuna.db`` and
the journal file ``optuna.journal`` (in the working folder) already holds the study; a new study
goes to SQLite with one worker and to the journal file with several (Optuna's JournalStorage is
safe across processes of one machine). Any Optuna URL works (``postgresql://...`` for several
machines); a value without ``://`` is a journal file. RDB storages get Optuna's heartbeat.
Every call into a storage runs with interrupts deferred (:func:`workbench.infra.interrupts.deferred`):
a Ctrl-C never cuts a store write in half (which left SQLite locked for minutes).

Example:
    >>> storage = make_storage("/tmp/doc-example.journal")
    >>> isinstance(storage, JournalStorage), type(storage).__name__
    (True, 'DeferringJournalStorage')
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from workbench.experiment import Experiment, FloatRange
from workbench.infra import interrupts
from workbench.infra.durable import create_durably
from workbench.infra.stores import JOURNAL_DEFAULT, SQLITE_DEFAULT, local_path, store_kind
from workbench.study.recovery import GRACE_PERIOD, HEARTBEAT_INTERVAL
from workbench.trial.space import is_active, max_sparsity, ordered

__all__ = [
    "default_storage",
    "grid_space",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "resolve_storage",
    "suggest_params",
]


def _deferring(base: type) -> type:
    """A subclass of the storage class ``base`` whose public methods run with interrupts deferred."""

    def wrap(name: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            with interrupts.deferred():
                return getattr(base, name)(self, *args, **kwargs)

        method.__name__ = name
        return method

    names = [n for n, v in vars(BaseStorage).items() if callable(v) and not n.startswith("_")]
    names += ["record_heartbeat"] if hasattr(base, "record_heartbeat") else []
    name = f"Deferring{base.__name__}"
    methods = {n: wrap(n) for n in names if hasattr(base, n)}
    return type(name, (base,), {"__module__": __name__, "__qualname__": name, **methods})  # picklable by name


DeferringRDBStorage = _deferring(RDBStorage)
DeferringJournalStorage = _deferring(JournalStorage)


def make_storage(spec: str, *, failed_trial_callback: Callable[..., None] | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (``scheme://...``) or a journal file path.

    RDB URLs get a heartbeat (``WORKBENCH_HEARTBEAT_INTERVAL`` / ``WORKBENCH_HEARTBEAT_GRACE``
    seconds) so trials of a worker that died on any machine are failed; ``failed_trial_callback``
    runs for each of them.
    """
    kind = store_kind(spec)
    if kind == "path":
        create_durably(spec)  # Optuna syncs every append, not the folder entry of a new journal file
        return DeferringJournalStorage(JournalFileBackend(spec, lock_obj=JournalFileOpenLock(spec)))
    kwargs = {"connect_args": {"timeout": 60}} if kind == "sqlite" else None
    callback_arg = (
        "heartbeat_stale_trial_callback"  # Optuna >= 4.9; failed_trial_callback before
        if "heartbeat_stale_trial_callback" in inspect.signature(RDBStorage).parameters
        else "failed_trial_callback"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return DeferringRDBStorage(
            spec,
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            **{callback_arg: failed_trial_callback},
        )


def resolve_storage(storage: str | None, study_name: str, workers: int) -> str:
    """The storage spec: ``storage``, else ``$WORKBENCH_STORAGE``, else :func:`default_storage`."""
    return storage or os.environ.get("WORKBENCH_STORAGE") or default_storage(study_name, workers)


def _sqlite_study_names(path: Path) -> list[str] | None:
    """The study names in the SQLite file ``path``, read-only; None when it cannot be read."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return [row[0] for row in conn.execute("SELECT study_name FROM studies")]
    except sqlite3.Error:
        return None


def default_storage(study_name: str, workers: int) -> str:
    """The embedded storage spec for ``study_name`` (see the module docstring).

    Nothing is written: the SQLite file is read directly, and one that cannot be read is chosen
    (the store check at start then names it, instead of a new study starting beside it).
    """
    journal, sqlite = Path(JOURNAL_DEFAULT), Path(local_path(SQLITE_DEFAULT))
    if journal.exists():
        with contextlib.suppress(Exception):  # an unreadable journal: not this study's store
            if study_name in optuna.get_all_study_names(make_storage(JOURNAL_DEFAULT)):
                return JOURNAL_DEFAULT
    if sqlite.exists():
        names = _sqlite_study_names(sqlite)
        if names is None or study_name in names:
            return SQLITE_DEFAULT
    return SQLITE_DEFAULT if workers == 1 else JOURNAL_DEFAULT


def grid_space(experiment: Experiment) -> dict[str, list[Any]]:
    """The searched dimensions as lists of values: what a grid sampler walks."""
    return {
        dim: v.grid() if isinstance(v, FloatRange) else list(v)
        for dim, v in experiment.search_space.items()
        if dim in experiment.searched_dims()
    }


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
        sampler = optuna.samplers.GridSampler(grid_space(experiment), seed=seed)
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
    """Early stopping on the task's metric at each evaluation (in the study's direction): median, hyperband or none."""
    steps, every = experiment.training.steps, experiment.training.eval_every
    if experiment.study.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=min(steps - 1, 2 * every))
    if experiment.study.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=steps, reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest_params(trial: optuna.Trial, experiment: Experiment) -> dict[str, Any]:
    """Sample one point of the conditional search space: searched dims through ``trial.suggest_*``.

    Dimensions are visited in :data:`~workbench.trial.space.SEARCH_DIMS` order. A dimension that
    has no effect at the point so far (:func:`~workbench.trial.space.is_active`: the decay of a
    one-step schedule) is neither sampled nor part of the point. ``target_sparsity`` of an N:M
    pattern is sampled only up to N/M (its range's grid kept); the grid sampler walks one fixed
    grid instead, and the trial clips (:func:`~workbench.trial.space.effective_params`).
    """
    searched, params = experiment.searched_dims(), {}
    for dim in ordered(experiment.search_space):
        space = experiment.search_space[dim]
        if not is_active(dim, params):
            continue
        if dim not in searched:
            params[dim] = space.low if isinstance(space, FloatRange) else space[0]
        elif isinstance(space, FloatRange):
            low, high = space.low, space.high
            if dim == "target_sparsity" and experiment.study.sampler != "grid" and "pattern" in params:
                low, high = _capped(space, max_sparsity(params["pattern"]))
            params[dim] = space.snap(trial.suggest_float(dim, low, high, step=space.step, log=space.log))
        else:
            params[dim] = trial.suggest_categorical(dim, space)
    return params


def _capped(space: FloatRange, cap: float) -> tuple[float, float]:
    """``space``'s (low, high) with high at most ``cap``, kept on the range's step grid."""
    if space.high <= cap:
        return space.low, space.high
    if space.low >= cap:
        return cap, cap
    if space.step is None:
        return space.low, cap
    steps = math.floor((cap - space.low) / space.step + 1e-9)
    return space.low, space.snap(space.low + steps * space.step)
