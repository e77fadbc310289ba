"""Seeds and exact repeats: every configuration is trained once per seed, never twice per seed.

A study's trial seeds are ``study.seeds`` (else ``study.seed``). The first trial of a newly
sampled configuration runs with the first seed and enqueues the same configuration for the other
seeds (Optuna's ``enqueue_trial`` with the seed as a user attribute), so seed repeats are explicit
trials, each with its own MLflow run, and a seed-spread table counts seeds.

A sampler may propose a configuration the study has already trained with the same seed (TPE does
on small categorical spaces). Such a trial is not trained: :func:`find_twin` finds the complete
trial with the same :func:`~workbench.trial.space.point_key` and the objective returns its stored
values (user attribute ``repeat_of``), saying so in the log. Trials running at the same time in
other workers are not seen; they can still repeat each other.

A repeat does not spend the budget: it is not one of the trials that count toward ``n_trials``
(:func:`~workbench.study.recovery.counted_trials`), so the study samples again until ``n_trials``
trials are trained. When the space has no untrained point left the study stops early and says
why (:func:`space_exhausted`): every point of a grid sampler's grid has been run, or the last
:data:`REPEATS_IN_A_ROW` finished trials were all repeats.

Example:
    >>> seed_of({"seed": 2}, (0, 1, 2))
    2
    >>> seed_of({}, (0, 1, 2))
    0
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

__all__ = [
    "KEY_ATTR",
    "REPEATS_IN_A_ROW",
    "REPEAT_ATTR",
    "SEED_ATTR",
    "enqueue_other_seeds",
    "find_twin",
    "seed_of",
    "space_exhausted",
]

_log = logging.getLogger(__name__)

SEED_ATTR = "seed"
"""User attribute: the seed a trial trained with (set on enqueued seed repeats before they start)."""
KEY_ATTR = "point_key"
"""User attribute: :func:`~workbench.trial.space.point_key` of the trial's effective point and seed."""
REPEAT_ATTR = "repeat_of"
"""User attribute: the number of the complete trial whose stored result an exact repeat returned."""
REPEATS_IN_A_ROW = 25
"""Finished trials in a row that were all exact repeats: the study takes its space as exhausted."""


def seed_of(user_attrs: dict[str, Any], seeds: Sequence[int]) -> int:
    """The seed of a trial: the one it was enqueued with, else the first of ``seeds``."""
    return int(user_attrs.get(SEED_ATTR, seeds[0]))


def find_twin(study: optuna.Study, key: str, number: int) -> optuna.trial.FrozenTrial | None:
    """The first complete trial (other than ``number``) that trained the same point and seed."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.number != number and other.user_attrs.get(KEY_ATTR) == key and REPEAT_ATTR not in other.user_attrs:
            return other
    return None


def enqueue_other_seeds(study: optuna.Study, params: dict[str, Any], seeds: Sequence[int], number: int) -> None:
    """Enqueue ``params`` once for every seed after the first (the first seed's trial is ``number``)."""
    for seed in seeds[1:]:
        study.enqueue_trial(params, user_attrs={SEED_ATTR: seed, "seed_of_trial": number})
    if len(seeds) > 1:
        _log.info("trial %d: its configuration is queued for seeds %s", number, ", ".join(map(str, seeds[1:])))


def space_exhausted(study: optuna.Study) -> str | None:
    """Why ``study`` can train no new point (one line), or None while it still can.

    Never while trials are queued (the other seeds of a configuration, swept targets); else a
    grid sampler whose every grid point has been run, or :data:`REPEATS_IN_A_ROW` finished
    trials in a row (the newest) that were all exact repeats of trained ones.
    """
    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return None  # queued trials (another seed, a swept target) still train new points
    sampler = study.sampler
    if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study):
        return "every point of the grid has been run (exact repeats, e.g. N:M targets clipped to N/M, do not count)"
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    last = sorted(finished, key=lambda t: t.number)[-REPEATS_IN_A_ROW:]
    if len(last) == REPEATS_IN_A_ROW and all(REPEAT_ATTR in t.user_attrs for t in last):
        return (
            f"the last {REPEATS_IN_A_ROW} trials the sampler proposed were all exact repeats of trained "
            f"configurations: the search space looks exhausted"
        )
    return None
