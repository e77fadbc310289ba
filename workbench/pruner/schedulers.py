"""Schedulers: the sparsity to reach on each pruning step.

"oneshot" (``start_step == end_step``) reaches the target on its single pruning step.
"iterative" has ``P = (end_step - start_step) // pruning_frequency`` intervals; on the k-th
pruning step (k = 0..P), with ``x = k / P``, ``t`` the target and ``s0`` the sparsity pruning
started from, the ratio is::

    linear  s0 + (t - s0) * x
    cos     s0 + (t - s0) * (1 - cos(x * pi / 2))
    cube    s0 + (t - s0) * x ** 3
    exp     1 - (1 - s0) * ((1 - t) / (1 - s0)) ** x

so the first pruning step reaches ``s0`` and the last reaches ``t``; never above ``t``.
"""
from __future__ import annotations

import math
from typing import Callable

from .registry import Registry

SCHEDULERS = Registry("scheduler")

DECAYS: dict[str, Callable[[float, float, float], float]] = {
    "linear": lambda s0, t, x: s0 + (t - s0) * x,
    "cos": lambda s0, t, x: s0 + (t - s0) * (1.0 - math.cos(x * math.pi / 2.0)),
    "cube": lambda s0, t, x: s0 + (t - s0) * x**3,
    "exp": lambda s0, t, x: t if s0 >= 1.0 else 1.0 - (1.0 - s0) * ((1.0 - t) / (1.0 - s0)) ** x,
}


def register_scheduler(name: str):
    """Class decorator registering a scheduler under ``name``."""
    return SCHEDULERS.register(name)


def get_scheduler(config: dict) -> "Scheduler":
    """The scheduler a config implies: oneshot when ``start_step == end_step``, else iterative.

    Example:
        >>> s = get_scheduler({"start_step": 0, "end_step": 10, "pruning_frequency": 5,
        ...                    "sparsity_decay_type": "linear"})
        >>> [round(s.update_sparsity_ratio(0.8, k, 2, None), 2) for k in range(3)]
        [0.0, 0.4, 0.8]
    """
    name = "oneshot" if config["start_step"] == config["end_step"] else "iterative"
    return SCHEDULERS.lookup(name)(config)


class Scheduler:
    """Base scheduler: maps (target, pruning step index, total) to the ratio to reach."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def total_prune_steps(self) -> int:
        """Number of intervals P between the first and last pruning step."""
        return 0

    def update_sparsity_ratio(self, target_ratio, current_prune_step, total_prune_steps, masks, init_ratio=0.0):
        """The sparsity ratio to reach on pruning step ``current_prune_step`` (0-based)."""
        raise NotImplementedError


@register_scheduler("oneshot")
class OneshotScheduler(Scheduler):
    """Prune to the target in a single step."""

    def update_sparsity_ratio(self, target_ratio, current_prune_step, total_prune_steps, masks, init_ratio=0.0):
        return target_ratio


@register_scheduler("iterative")
class IterativeScheduler(Scheduler):
    """Prune from ``init_ratio`` to the target over the pruning steps along a decay curve."""

    def total_prune_steps(self) -> int:
        c = self.config
        return (c["end_step"] - c["start_step"]) // c["pruning_frequency"]

    def update_sparsity_ratio(self, target_ratio, current_prune_step, total_prune_steps, masks, init_ratio=0.0):
        if total_prune_steps <= 0:
            return target_ratio
        x = min(max(current_prune_step / total_prune_steps, 0.0), 1.0)
        decay = DECAYS[self.config.get("sparsity_decay_type", "exp")]
        s0 = min(init_ratio, target_ratio)
        return min(decay(s0, target_ratio, x), target_ratio)
