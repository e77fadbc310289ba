"""``study.sweep_target``: every sampled configuration trained at every target of the grid.

A sampler left to itself puts each pattern where it likes (NSGA-II put 2:4 only at 0.35-0.45 in
one study), so patterns rarely share a sparsity and a comparison at matched sparsity has nothing
to compare. With ``study.sweep_target: true`` the first trial of a newly sampled configuration
(every knob but the target and the seed) enqueues the same configuration at every other target
of ``search_space.target_sparsity``'s grid, times every seed of ``study.seeds`` (Optuna's
``enqueue_trial``, as seeds are queued): every compared pattern then reaches the same targets. An
N:M pattern is swept only up to N/M (it cannot go beyond). A configuration is swept once: a later
trial the sampler proposes for it (at another target) enqueues nothing.

These trials count toward ``study.n_trials`` like seed repeats: a configuration costs (targets up
to its cap) x (seeds) trials.

Example:
    >>> from workbench.experiment.dims import FloatRange
    >>> swept_targets(FloatRange(0.3, 0.9, step=0.1), "2:4")
    [0.3, 0.4, 0.5]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import optuna

from workbench.experiment.dims import FloatRange
from workbench.study.repeats import SEED_ATTR
from workbench.trial.space import max_sparsity

__all__ = ["SWEEP_ATTR", "SWEEP_OF_ATTR", "enqueue_target_sweep", "sweep_key", "swept_targets"]

_log = logging.getLogger(__name__)

SWEEP_ATTR = "sweep_key"
"""User attribute: the configuration (params less the target) a swept trial belongs to."""
SWEEP_OF_ATTR = "sweep_of_trial"
"""User attribute of an enqueued swept trial: the trial whose configuration it sweeps."""


def swept_targets(space: FloatRange, pattern: str | None) -> list[float]:
    """The targets of ``space``'s grid a configuration with ``pattern`` is trained at (up to N/M for N:M)."""
    cap = max_sparsity(pattern) if pattern is not None else 1.0
    return [t for t in space.grid() if t <= cap + 1e-9]


def sweep_key(params: dict[str, Any]) -> str:
    """The configuration of ``params`` without its target: the same key for every target of one sweep."""
    return repr(sorted((k, v) for k, v in params.items() if k != "target_sparsity"))


def enqueue_target_sweep(trial: optuna.Trial, space: FloatRange, seeds: Sequence[int]) -> int:
    """Enqueue ``trial``'s params at every other swept target, once per seed; returns how many were queued.

    ``trial`` runs its params (its target, the first seed) and queues its other seeds itself. It is
    marked as its configuration's sweep (user attribute ``sweep_key``); nothing is queued when
    another trial of the study already swept this configuration.
    """
    params = dict(trial.params)
    key = sweep_key(params)
    for other in trial.study.get_trials(deepcopy=False):
        if other.number != trial.number and other.user_attrs.get(SWEEP_ATTR) == key:
            return 0
    trial.set_user_attr(SWEEP_ATTR, key)
    own = params.get("target_sparsity")
    targets = [t for t in swept_targets(space, params.get("pattern")) if own is None or abs(t - own) > 1e-9]
    for target in targets:
        for seed in seeds:
            trial.study.enqueue_trial(
                {**params, "target_sparsity": target},
                user_attrs={SEED_ATTR: seed, SWEEP_ATTR: key, SWEEP_OF_ATTR: trial.number},
            )
    if targets:
        _log.info(
            "trial %d: its configuration is queued at targets %s (study.sweep_target)",
            trial.number,
            ", ".join(f"{t:g}" for t in targets),
        )
    return len(targets) * len(seeds)
