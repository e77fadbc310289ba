"""The progressive pruner: newly pruned blocks fade out over several sub-steps."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, MutableMapping
from typing import Any

import torch

from .._backend import select_lowest
from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..patterns.spec import BLOCKS
from . import register_pruner
from .basic import BasicPruner

logger = logging.getLogger(__name__)


class ProgressiveConfigs(MutableMapping):
    """INC's ``progressive_configs`` of a progressive pruner: a live view of its resolved settings.

    Keys are INC's, ``progressive_steps``, ``progressive_type`` and ``use_global``; reading gives
    the value the pruner uses, writing sets it on the pruner (checked; ``progressive_steps``
    re-derives the sub-step interval). Any other key, and deleting a key, is an error.

    Example:
        >>> pruner.progressive_configs["progressive_type"] = "linear"  # doctest: +SKIP
    """

    KEYS = ("progressive_steps", "progressive_type", "use_global")

    def __init__(self, pruner: ProgressivePruner) -> None:
        self._pruner = pruner

    def _key(self, key: Any) -> str:
        if key not in self.KEYS:
            raise ConfigError(f"progressive_configs: {key!r} is not a key; allowed: {', '.join(self.KEYS)}")
        return key

    def __getitem__(self, key: str) -> Any:
        return getattr(self._pruner, self._key(key))

    def __setitem__(self, key: str, value: Any) -> None:
        self._pruner.set_progressive(self._key(key), value)

    def __delitem__(self, key: str) -> None:
        raise ConfigError(f"progressive_configs: {key!r} cannot be deleted; set it instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))


@register_pruner("progressive")
class ProgressivePruner(BasicPruner):
    """Pruning whose newly pruned units (NxM blocks, N:M groups) are zeroed gradually between pruning steps.

    On each pruning step the target masks are computed as by :class:`BasicPruner`; the
    elements that are newly pruned are then zeroed over ``progressive_steps`` sub-steps spaced
    ``pruning_frequency // progressive_steps`` steps apart, the first on the pruning step
    itself, so that before the next pruning step those blocks are entirely zero.
    ``progressive_type="scores"`` zeroes the lowest-scoring elements first (one ranking over
    all layers when ``use_global`` is true, per layer otherwise); ``"linear"`` zeroes each
    block row by row (element by element in row-major order when a block has fewer rows than
    sub-steps). N:M patterns have no blocks to walk: they zero by ``"scores"`` (INC 3.7.1 did
    the same: its progressive type was fixed to "scores"); ``"linear"`` there warns and uses
    ``"scores"``. The last pruning step (``end_step``) applies its masks at once, since masks
    may not change after ``end_step``. With ``pruning_frequency < progressive_steps`` there is no
    room between pruning steps, so it prunes like the basic pruner and warns (INC did the same).
    """

    pruning_type_form = "{criterion}_progressive"
    element_level_scores = True

    def __init__(self, config: PrunerConfig, modules: dict) -> None:
        super().__init__(config, modules)
        self.progressive_steps = config.progressive_steps
        self.progressive_type = config.progressive_type
        self.use_global = config.use_global
        if self.progressive_type == "linear" and self.pattern.spec.missing({BLOCKS}):
            logger.warning(
                "progressive_type 'linear' needs a block pattern; pattern %r zeroes its new elements by 'scores'",
                self.pattern.pattern,
            )
            self.progressive_type = "scores"
        if self.start_step != self.end_step and self.pruning_frequency < self.progressive_steps:
            logger.warning(
                "progressive pruning needs pruning_frequency >= progressive_steps (%d < %d); "
                "masks change without interpolation",
                self.pruning_frequency,
                self.progressive_steps,
            )
            self.progressive_steps = 1
        self.interval = max(1, self.pruning_frequency // self.progressive_steps)
        self.progressive_configs = ProgressiveConfigs(self)
        """INC's attribute: a live view of ``progressive_steps``, ``progressive_type``, ``use_global``."""
        self._stage: dict[str, torch.Tensor] = {}  # element-level: sub-step (1..P) that zeroes it
        self._target: dict[str, torch.Tensor] = {}
        self._origin = -1
        self._partial_step = 0
        self._partial_keep: tuple[tuple[int, int], dict[str, torch.Tensor]] = ((-1, 0), {})

    def set_progressive(self, key: str, value: Any) -> None:
        """Set one of INC's ``progressive_configs`` keys (checked as the config checks it)."""
        if key == "progressive_type":
            if value not in ("scores", "linear"):
                raise ConfigError(f"progressive_type: {value!r} is not allowed; allowed: scores, linear")
            if value == "linear" and self.pattern.spec.missing({BLOCKS}):
                raise ConfigError(f"progressive_type: 'linear' needs a block pattern; pattern {self.pattern.pattern!r}")
        elif key == "progressive_steps":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"progressive_steps: {value!r} is not allowed; allowed: an integer >= 1")
            self.interval = max(1, self.pruning_frequency // value)
        elif not isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not allowed; allowed: True or False")
        setattr(self, key, value)

    def update_masks(self) -> None:
        step = self.global_step
        if step == self._last_update:
            return
        if self.check_is_pruned_step(step):
            super().update_masks()
            return
        if self._target and (step - self._origin) % self.interval == 0:
            self._last_update = step
            self._advance((step - self._origin) // self.interval + 1)

    def set_pruned(self, pruned: dict[str, torch.Tensor], ratio: float) -> None:
        if self._target:  # a transition still running: finish it first
            self._finish()
        if self.progressive_steps <= 1 or self.global_step >= self.end_step:
            super().set_pruned(pruned, ratio)
            return
        self.current_sparsity_ratio = ratio
        self._target = pruned
        self._origin = self.global_step
        self._stage = self._stages(pruned)
        self._advance(1)

    def _stages(self, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """For each element of a newly pruned block, the sub-step (1..P) that zeroes it."""
        steps = self.progressive_steps
        new = {n: self.pattern.expand(n, target[n] & ~self.pruned[n]) for n in target}
        new2d = {n: self.pattern.layouts[n].to_2d(m) for n, m in new.items()}
        stage = {n: torch.zeros(m.shape, dtype=torch.uint8, device=m.device) for n, m in new2d.items()}
        if self.progressive_type == "linear":
            for n, m in new2d.items():
                r, bn, c, bm = self.pattern.grid(n, m.shape[0])
                pos = torch.arange(bn * bm, device=m.device).view(1, bn, 1, bm).expand(r, bn, c, bm).reshape(m.shape)
                when = (pos * steps) // (bn * bm) + 1
                stage[n] = torch.where(m, when, 0).to(torch.uint8)
            return stage
        scores = {n: torch.where(new2d[n], self.criterion.scores[n].float(), math.inf) for n in new2d}
        groups = [list(scores)] if self.use_global else [[n] for n in scores]
        for names in groups:
            total = sum(int(torch.count_nonzero(new2d[n])) for n in names)
            for j in range(steps, 0, -1):
                chosen, _, _ = select_lowest([scores[n] for n in names], round(total * j / steps))
                for n, c in zip(names, chosen):
                    stage[n][c & new2d[n]] = j
        return stage

    def _advance(self, j: int) -> None:
        if j >= self.progressive_steps:
            self._finish()
            return
        self._partial_step = j
        self.mask_updates += 1
        self.mask_weights()

    def _finish(self) -> None:
        target = self._target
        self._target, self._stage, self._origin, self._partial_step = {}, {}, -1, 0
        super().set_pruned(target, self.current_sparsity_ratio)

    def mask_weights(self) -> None:
        super().mask_weights()
        if not self._partial_step:
            return
        key = (self._origin, self._partial_step)
        if self._partial_keep[0] != key:
            self._partial_keep = (
                key,
                {
                    n: self.pattern.layouts[n].from_2d((s == 0) | (s > self._partial_step))
                    for n, s in self._stage.items()
                },
            )
        with torch.no_grad():
            for name, keep in self._partial_keep[1].items():
                self.modules[name].weight.data.mul_(keep)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["progressive"] = {
            "stage": {n: s.clone() for n, s in self._stage.items()},
            "target": {n: t.clone() for n, t in self._target.items()},
            "origin": self._origin,
            "partial_step": self._partial_step,
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        prog = state.get("progressive", {})
        self._stage = {n: s.clone() for n, s in prog.get("stage", {}).items()}
        self._target = {n: t.clone() for n, t in prog.get("target", {}).items()}
        self._origin = int(prog.get("origin", -1))
        self._partial_step = int(prog.get("partial_step", 0))
