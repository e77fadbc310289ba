"""A test-only plug-in: one toy extension of each kind, each registered in one place.

Importing this module registers them; nothing else in the library is edited. Used by
tests/test_pruner_extension.py, whose fixture removes them again (``conftest.py`` here keeps
pytest's doctest collection from importing it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from workbench.pruner import (
    DECAYS,
    PruningCriterion,
    Scheduler,
    register_criterion,
    register_decay,
    register_pattern,
    register_pruner,
    register_reg,
    register_scheduler,
)
from workbench.pruner.patterns.nxm import NxMPattern, NxMSpec
from workbench.pruner.pruners.basic import BasicPruner

STRIPE_MAX = 0.75


@dataclass(frozen=True)
class StripeSpec(NxMSpec):
    """``"stripeK"``: K x 1 blocks, of which at most three quarters may be pruned."""

    @property
    def max_sparsity(self) -> float:
        return STRIPE_MAX


@register_pattern("stripe")
class StripePattern(NxMPattern):
    """Pattern family "stripe": ``"stripeK"`` prunes K x 1 blocks (the NxM machinery does the rest)."""

    forms = "'stripeK' (K x 1 stripes, at most 75% pruned; e.g. 'stripe2')"
    examples = ("stripe2", "stripe4")

    @classmethod
    def parse(cls, text: str) -> StripeSpec | None:
        match = re.fullmatch(r"stripe(\d+)", text.strip().lower())
        return StripeSpec(match.group(0), n=int(match.group(1)), m=1) if match else None


@register_criterion("toy_square")
class SquareCriterion(PruningCriterion):
    """``W ** 2``: ranks like magnitude, computed at the start of a mask update."""

    def on_step_begin(self) -> None:
        for name in self.modules:
            self.scores[name] = self._compute(name, lambda w, g, out: torch.mul(w, w, out=out))


@register_decay("toy_sqrt")
def sqrt_decay(s0: float, t: float, x: float) -> float:
    """Fast at first: ``s0 + (t - s0) * sqrt(x)``."""
    return s0 + (t - s0) * math.sqrt(x)


@register_scheduler("toy_staircase")
class StaircaseScheduler(Scheduler):
    """Follows the configured decay, rounded down to steps of 0.1 (the last step reaches the target)."""

    def total_prune_steps(self) -> int:
        return (self.config.end_step - self.config.start_step) // self.config.pruning_frequency

    def update_sparsity_ratio(
        self, target_ratio: float, current_prune_step: int, total_prune_steps: int, init_ratio: float = 0.0
    ) -> float:
        if total_prune_steps <= 0 or current_prune_step >= total_prune_steps:
            return target_ratio
        x = current_prune_step / total_prune_steps
        ratio = DECAYS.lookup(self.config.sparsity_decay_type)(init_ratio, target_ratio, x)
        return min(math.floor(ratio * 10 + 1e-9) / 10, target_ratio)


@register_pruner("toy_counting")
class CountingPruner(BasicPruner):
    """pruning_type ``"<criterion>_counted"``: the basic pruner, counting its mask updates."""

    pruning_type_form = "{criterion}_counted"

    def set_pruned(self, pruned, ratio):
        self.counted = getattr(self, "counted", 0) + 1
        super().set_pruned(pruned, ratio)


@register_reg("toy_shrink")
class ShrinkReg:
    """Multiplies every weight by ``1 - reg_coeff`` after each optimizer step in the window."""

    requires = frozenset()

    def __init__(self, config, modules, pattern) -> None:
        self.modules, self.coeff, self.calls = modules, config.reg_coeff, 0

    def on_before_optimizer_step(self) -> None:
        pass

    def on_after_optimizer_step(self) -> None:
        self.calls += 1
        with torch.no_grad():
            for module in self.modules.values():
                module.weight.mul_(1.0 - self.coeff)
