"""Schedulers: the sparsity to reach on each pruning step, and the decay curves they follow.

A config names its scheduler with ``scheduler``; when it does not, INC's rule picks "oneshot"
for ``start_step == end_step`` and "iterative" otherwise
(:func:`workbench.pruner.config_types.default_scheduler`).

"oneshot" reaches the target on every pruning step. "iterative" has
``P = (end_step - start_step) // pruning_frequency`` intervals; on the k-th pruning step
(k = 0..P), with ``x = k / P``, ``t`` the target and ``s0`` the sparsity pruning started from,
the ratio is ``DECAYS[sparsity_decay_type](s0, t, x)``, capped at ``t``::

    linear  s0 + (t - s0) * x
    cos     s0 + (t - s0) * (1 - cos(x * pi / 2))
    cube    s0 + (t - s0) * x ** 3
    exp     1 - (1 - s0) * ((1 - t) / (1 - s0)) ** x

so the first pruning step reaches ``s0`` and the last reaches ``t``. A new curve is a function
decorated with ``@register_decay("name")``; a new scheduler a :class:`Scheduler` subclass
decorated with ``@register_scheduler("name")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .config_types import PrunerConfig
from .registry import Registry

__all__ = [
    "DECAYS",
    "SCHEDULERS",
    "Decay",
    "IterativeScheduler",
    "OneshotScheduler",
    "Scheduler",
    "get_scheduler",
    "register_decay",
    "register_scheduler",
]

Decay = Callable[[float, float, float], float]
"""``decay(s0, t, x)``: the ratio at progress ``x`` in [0, 1] from ``s0`` (x = 0) to ``t`` (x = 1)."""

SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler")
DECAYS: Registry[Decay] = Registry("sparsity_decay_type")


def register_scheduler(name: str):
    """Class decorator registering a :class:`Scheduler` subclass as ``name`` (the config's ``scheduler``)."""
    return SCHEDULERS.register(name)


def register_decay(name: str):
    """Function decorator registering a decay curve ``f(s0, t, x)`` as ``sparsity_decay_type`` ``name``.

    Example:
        >>> @register_decay("halfway")
        ... def halfway(s0, t, x):
        ...     return s0 + (t - s0) * min(1.0, 2 * x)
        >>> DECAYS.lookup("halfway")(0.0, 0.8, 0.25)
        0.4
        >>> DECAYS.unregister("halfway")
    """
    return DECAYS.register(name)


register_decay("linear")(lambda s0, t, x: s0 + (t - s0) * x)
register_decay("cos")(lambda s0, t, x: s0 + (t - s0) * (1.0 - math.cos(x * math.pi / 2.0)))
register_decay("cube")(lambda s0, t, x: s0 + (t - s0) * x**3)
register_decay("exp")(lambda s0, t, x: t if s0 >= 1.0 else 1.0 - (1.0 - s0) * ((1.0 - t) / (1.0 - s0)) ** x)


def get_scheduler(config: PrunerConfig | Mapping[str, Any]) -> Scheduler:
    """The scheduler a config names (a dict takes the defaults, so INC's oneshot/iterative rule).

    Example:
        >>> s = get_scheduler({"start_step": 0, "end_step": 10, "pruning_frequency": 5,
        ...                    "sparsity_decay_type": "linear"})
        >>> [round(s.update_sparsity_ratio(0.8, k, 2), 2) for k in range(3)]
        [0.0, 0.4, 0.8]
    """
    config = PrunerConfig.from_mapping(config)
    return SCHEDULERS.lookup(config.scheduler)(config)


class Scheduler:
    """Base scheduler: maps (target, pruning step index, total) to the ratio to reach.

    Args:
        config: The pruner's resolved config.
    """

    single_step: ClassVar[bool] = False
    """Whether the schedule is one pruning step (``start_step == end_step``) rather than a window."""

    def __init__(self, config: PrunerConfig) -> None:
        self.config = config

    def total_prune_steps(self) -> int:
        """Number of intervals P between the first and last pruning step."""
        return 0

    def update_sparsity_ratio(
        self, target_ratio: float, current_prune_step: int, total_prune_steps: int, init_ratio: float = 0.0
    ) -> float:
        """The sparsity ratio to reach on pruning step ``current_prune_step`` (0-based)."""
        raise NotImplementedError


@register_scheduler("oneshot")
class OneshotScheduler(Scheduler):
    """Prune to the target in a single step."""

    single_step = True

    def update_sparsity_ratio(
        self, target_ratio: float, current_prune_step: int, total_prune_steps: int, init_ratio: float = 0.0
    ) -> float:
        return target_ratio


@register_scheduler("iterative")
class IterativeScheduler(Scheduler):
    """Prune from ``init_ratio`` to the target over the pruning steps along a decay curve."""

    def total_prune_steps(self) -> int:
        c = self.config
        return (c.end_step - c.start_step) // c.pruning_frequency

    def update_sparsity_ratio(
        self, target_ratio: float, current_prune_step: int, total_prune_steps: int, init_ratio: float = 0.0
    ) -> float:
        if total_prune_steps <= 0:
            return target_ratio
        x = min(max(current_prune_step / total_prune_steps, 0.0), 1.0)
        decay = DECAYS.lookup(self.config.sparsity_decay_type)
        s0 = min(init_ratio, target_ratio)
        return min(decay(s0, target_ratio, x), target_ratio)
