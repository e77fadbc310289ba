"""A test-only plug-in: one toy extension of each kind, each registered in one place.

Importing this module registers them; nothing else in the library is edited. The two pattern
families subclass only :class:`~workbench.pruner.BasePattern`: ``stripe`` states a block shape and
takes every generic default, ``NofM`` (N of every M output rows, a fixed sparsity N/M in a syntax
without ``":"``) defines its own units, and declares no post-training form. Used by
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
    BasePattern,
    ConfigError,
    PatternSpec,
    PruningCriterion,
    Scheduler,
    register_criterion,
    register_decay,
    register_pattern,
    register_pruner,
    register_reg,
    register_scheduler,
)
from workbench.pruner.pruners.basic import BasicPruner

STRIPE_MAX = 0.75


@dataclass(frozen=True)
class StripeSpec(PatternSpec):
    """``"stripeK"``: K x 1 blocks, of which at most three quarters may be pruned."""

    n: int

    @property
    def max_sparsity(self) -> float:
        return STRIPE_MAX


@register_pattern("stripe")
class StripePattern(BasePattern):
    """Pattern family "stripe": ``"stripeK"`` prunes K x 1 blocks. It states its block; the base
    class derives the rest (layer check, block scores, masks, counts, zeroing) from it."""

    forms = "'stripeK' (K x 1 stripes, at most 75% pruned; e.g. 'stripe2')"
    examples = ("stripe2", "stripe4")

    @classmethod
    def parse(cls, text: str) -> StripeSpec | None:
        match = re.fullmatch(r"stripe(\d+)", text.strip().lower())
        return StripeSpec(match.group(0), n=int(match.group(1))) if match else None

    def block(self, name_or_layout) -> tuple[int, int]:
        return (self.spec.n, 1)


@dataclass(frozen=True)
class ColumnGroupSpec(PatternSpec):
    """``"NofM"``: N of every M consecutive output rows of each input column are pruned."""

    n: int
    m: int

    def _share(self) -> float:
        return self.n / self.m

    # every group pruned is the most it can reach; a satisfied group has N of its M weights zero
    max_sparsity = property(_share)  # type: ignore[assignment]
    fixed_sparsity = property(_share)  # type: ignore[assignment]
    # posttraining_form() stays the default None: post-training pruning refuses the family


@register_pattern("NofM")
class ColumnGroupPattern(BasePattern):
    """Pattern family "NofM" (``"2of4"``): the N:M idea along the output dimension, in a syntax
    without ``":"``. A unit is a group of M consecutive rows of one column of the 2-D view, scored
    by its N lowest element scores; pruning a unit zeroes those N. Not a subclass of a built-in
    family: it defines the semantics (parse, layer check, unit scores, units to mask, counts)."""

    forms = "'NofM' (N of every M consecutive output rows of each column; e.g. '2of4')"
    examples = ("2of4", "1of2")
    spec: ColumnGroupSpec

    @classmethod
    def parse(cls, text: str) -> ColumnGroupSpec | None:
        match = re.fullmatch(r"(\d+)of(\d+)", text.strip().lower())
        if match is None:
            return None
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise ConfigError(f"pattern: {text!r} needs 0 < N < M for an NofM pattern")
        return ColumnGroupSpec(match.group(0), n, m)

    def check_layer(self, layout) -> str | None:
        per_group = layout.rows // layout.groups
        if per_group % self.spec.m:
            return f"{per_group} output rows per group are not divisible by M={self.spec.m}"
        return None

    def unit_ratio(self, ratio: float) -> float:
        return ratio * self.spec.m / self.spec.n

    def _groups(self, name: str, t: torch.Tensor) -> torch.Tensor:
        layout = self.layouts[name]
        return t.reshape(layout.rows // self.spec.m, self.spec.m, layout.cols)

    def unit_scores(self, name, stored, workspace):
        lowest = self._groups(name, stored.float()).topk(self.spec.n, dim=1, largest=False)
        return lowest.values.sum(dim=1), lowest.indices

    def pruned_from_units(self, name, units, detail):
        layout = self.layouts[name]
        chosen = units.reshape(detail.shape[0], 1, detail.shape[2]).expand(detail.shape)
        mask = torch.zeros(detail.shape[0], self.spec.m, detail.shape[2], dtype=torch.bool, device=units.device)
        return mask.scatter_(1, detail, chosen).reshape(layout.rows, layout.cols)

    def num_units(self, name: str) -> int:
        layout = self.layouts[name]
        return layout.rows * layout.cols // self.spec.m

    def pruned_units(self, name: str, pruned: torch.Tensor) -> int:
        return int(torch.count_nonzero(pruned)) // self.spec.n

    def zero_units(self, name: str, weight: torch.Tensor) -> tuple[int, int]:
        zeros = self._groups(name, self.pruned_from_weight(name, weight))
        return int(torch.count_nonzero(zeros.sum(dim=1) >= self.spec.n)), self.num_units(name)


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
