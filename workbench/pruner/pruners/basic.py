"""The basic pruner: criterion scores -> pattern masks on the scheduled pruning steps."""

from __future__ import annotations

import torch

from ..config_types import PrunerConfig
from ..criteria import get_criterion
from ..regs import get_reg
from . import register_pruner
from .base import BasePruner


@register_pruner("basic")
class BasicPruner(BasePruner):
    """Prunes the lowest-scoring pattern units to the scheduled sparsity on each pruning step.

    Scores that need gradients (gradient, snip, snip_momentum) are computed in
    ``on_before_optimizer_step`` of the steps that feed a mask update: the step before each
    pruning step (snip_momentum: every step up to ``end_step - 1``, as in INC; later updates
    would feed no mask update, so they are skipped).
    A pruning step with no gradient seen yet (``start_step == 0``) scores by magnitude and
    warns. Masks are recomputed from the current scores, so with the gradient criterion a
    pruned block can grow back if its gradient becomes large, as in INC.

    Example:
        >>> import torch
        >>> from workbench.pruner import WeightPruningConfig, prepare_pruning
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
        >>> cfg = WeightPruningConfig(pruning_type="magnitude", target_sparsity=0.5, start_step=0, end_step=0)
        >>> pruning = prepare_pruning(model, cfg)
        >>> pruning.on_train_begin(); pruning.on_step_begin(0)
        >>> float((model[0].weight == 0).float().mean())
        0.5
    """

    element_level_scores = False

    def __init__(self, config: PrunerConfig, modules: dict) -> None:
        super().__init__(config, modules)
        self.criterion = get_criterion(config, self.modules, self.pattern, element_level=self.element_level_scores)
        self.reg = get_reg(config, self.modules, self.pattern)

    def _feeds_update(self, step: int) -> bool:
        if getattr(self.criterion, "accumulates", False):
            return step <= self.end_step - 1
        return self.check_is_pruned_step(step + 1)

    def _in_window(self) -> bool:
        return self.start_step <= self.global_step <= self.end_step

    def update_masks(self) -> None:
        step = self.global_step
        if step == self._last_update or not self.check_is_pruned_step(step):
            return
        self._last_update = step
        self.criterion.on_step_begin()
        self.criterion.ensure_scores()
        ratio = self.scheduler.update_sparsity_ratio(
            self.target_sparsity_ratio,
            self.prune_step_index(step),
            self.total_prune_steps,
            init_ratio=self.init_sparsity_ratio,
        )
        self.set_pruned(self.pattern.select_pruned(self.criterion.scores, ratio, self.pruned), ratio)

    def set_pruned(self, pruned: dict[str, torch.Tensor], ratio: float) -> None:
        """Install new masks, apply them and record the update."""
        self.pruned = pruned
        self.current_sparsity_ratio = ratio
        self.mask_updates += 1
        self.mask_weights()

    def on_before_optimizer_step(self) -> None:
        if self._feeds_update(self.global_step):
            self.criterion.on_before_optimizer_step()
        if self.reg is not None and self._in_window():
            self.reg.on_before_optimizer_step()

    def on_after_optimizer_step(self) -> None:
        if self.reg is not None and self._in_window():
            self.reg.on_after_optimizer_step()
        self.criterion.on_after_optimizer_step()
        super().on_after_optimizer_step()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["scores"] = {n: s.clone() for n, s in self.criterion.scores.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.criterion.scores = {n: s.clone() for n, s in state.get("scores", {}).items()}
