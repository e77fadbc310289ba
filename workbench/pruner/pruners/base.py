"""The pruner base class: step counting, mask bookkeeping, hooks and state."""

from __future__ import annotations

import logging
from typing import ClassVar

import torch

from ..config_types import PrunerConfig
from ..inputs import check_pruner_state
from ..patterns import get_pattern
from ..schedulers import get_scheduler

logger = logging.getLogger(__name__)


class BasePruner:
    """Runs the pruning process of one pruner config over its layers.

    The pruner counts steps itself: ``global_step`` advances in :meth:`on_after_optimizer_step`.
    Step ``s`` is a pruning step iff ``start_step <= s <= end_step`` and
    ``(s - start_step) % pruning_frequency == 0``; masks change in :meth:`on_step_begin` of a
    pruning step and are applied to the weights at once and after every optimizer step.

    A subclass states how its ``pruning_type`` strings are formed (:attr:`pruning_type_form`),
    which pattern features it requires (:attr:`requires`) and whether it prunes to
    ``target_sparsity`` (:attr:`prunes_to_target`); validation reads these.

    Args:
        config: A resolved pruner config (see :func:`workbench.pruner.resolve_config`).
        modules: ``{name: module}`` of the layers this pruner owns.

    Attributes:
        modules: The layers actually pruned (those whose shape fits the pattern).
        pattern: The pattern object; ``pattern.invalid_layers`` says which layers were skipped.
        scheduler: Oneshot or iterative scheduler.
        global_step: Steps seen so far.
        current_sparsity_ratio: The ratio the last mask update aimed at.
        target_sparsity_ratio: The final target, clipped to ``max_sparsity_ratio_per_op``.
        mask_updates: How many times this pruner's masks changed.
        masks: ``{name: bool tensor of the weight's shape}``, ``True`` where the weight is kept
            (the public mask convention, INC's and ``torch.ao``'s).
        pruned: ``{name: bool tensor at the pattern's resolution}``, ``True`` where pruned.
    """

    pruning_type_form: ClassVar[str] = "{criterion}"
    """The ``pruning_type`` strings of this pruner: a format with ``{criterion}`` (one string per
    registered criterion, e.g. ``"{criterion}_progressive"``) or a fixed name (no criterion)."""
    requires: ClassVar[frozenset[str]] = frozenset()
    """Pattern features (``PatternSpec.features``) this pruner needs."""
    prunes_to_target: ClassVar[bool] = True
    """Whether ``target_sparsity`` is reached by pruning, so it must be reachable by the pattern."""

    @classmethod
    def needs_criterion(cls) -> bool:
        """Whether the pruner scores weights with a criterion (its form holds ``{criterion}``)."""
        return "{criterion}" in cls.pruning_type_form

    def __init__(self, config: PrunerConfig, modules: dict) -> None:
        self.config = config
        self.pattern = get_pattern(config, modules)
        self.modules = self.pattern.modules
        self.scheduler = get_scheduler(config)
        self.start_step = config.start_step
        self.end_step = config.end_step
        self.pruning_frequency = config.pruning_frequency
        self.max_sparsity_ratio_per_op = config.max_sparsity_ratio_per_op
        self.target_sparsity_ratio = min(config.target_sparsity, self.max_sparsity_ratio_per_op)
        self.total_prune_steps = self.scheduler.total_prune_steps()
        self.global_step = 0
        self.current_sparsity_ratio = 0.0
        self.init_sparsity_ratio = 0.0
        self.mask_updates = 0
        self._last_update = -1
        self._begun = False
        self._factors: dict[str, torch.Tensor] = {}
        self.pruned = {name: self.pattern.nothing_pruned(name) for name in self.modules}
        self._nothing_pruned = True  # until the first masks are set: mask_weights has nothing to do

    # ---- masks ---------------------------------------------------------------------------
    @property
    def pruned(self) -> dict[str, torch.Tensor]:
        """``{name: bool mask at the pattern's resolution}``, ``True`` where pruned.

        Change masks by assigning a new dict (``pruner.pruned = {...}``): the setter drops what
        :meth:`mask_weights` caches from the old masks; editing a mask in place does not.
        """
        return self._pruned

    @pruned.setter
    def pruned(self, value: dict[str, torch.Tensor]) -> None:
        self._pruned = value
        self._factors = {}
        self._nothing_pruned = False

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """``{name: bool tensor of the weight's shape}``, ``True`` where the weight is kept."""
        return {name: ~self.pattern.expand(name, p) for name, p in self.pruned.items()}

    def mask_weights(self) -> None:
        """Zero the pruned weights in place (the formal pruning; see ``BasePattern.apply_all``).

        Until the first masks are set (before ``start_step``) there is nothing to zero, and the
        hook returns without touching the weights. (Testing each mask for a pruned unit instead
        would cost more than the masking: ``Tensor.any`` reads bools at ~1.4 GB/s here.)
        """
        if self._nothing_pruned:
            return
        with torch.no_grad():
            weights = {name: self.modules[name].weight.data for name in self._pruned}
            self.pattern.apply_all(weights, self._pruned, self._factors)

    def follow_devices(self) -> None:
        """Move masks and scores to the device of each layer's weight (where the model was moved
        after the pruner was built, or a state was loaded from another device). A no-op, but for
        one device comparison per layer, when they are already there."""
        devices = {name: module.weight.device for name, module in self.modules.items()}
        if any(mask.device != devices[name] for name, mask in self._pruned.items()):
            nothing = self._nothing_pruned
            self.pruned = {name: mask.to(devices[name]) for name, mask in self._pruned.items()}
            self._nothing_pruned = nothing
        criterion = getattr(self, "criterion", None)
        if criterion is not None:
            criterion.scores = {n: s.to(devices[n]) for n, s in criterion.scores.items() if n in devices}

    def check_is_pruned_step(self, step: int) -> bool:
        """Whether masks may change on ``step``."""
        if step < self.start_step or step > self.end_step:
            return False
        return (step - self.start_step) % self.pruning_frequency == 0

    def prune_step_index(self, step: int) -> int:
        """k of the k-th pruning step (0-based)."""
        return (step - self.start_step) // self.pruning_frequency

    # ---- hooks ---------------------------------------------------------------------------
    def on_train_begin(self, dataloader=None) -> None:
        """Start of training: masks from existing zeros when resuming a pruned checkpoint."""
        if self._begun:
            return
        self._begun = True
        if self.config.resume_from_pruned_checkpoint or self.config.lock_init_sparsity:
            self.pruned = {n: self.pattern.pruned_from_weight(n, m.weight) for n, m in self.modules.items()}
            units = sum(self.pattern.num_units(n) for n in self.modules) or 1
            self.init_sparsity_ratio = sum(self.pattern.pruned_units(n, p) for n, p in self.pruned.items()) / units
            self.current_sparsity_ratio = self.init_sparsity_ratio

    def on_epoch_begin(self, epoch: int) -> None:
        """Start of an epoch (nothing to do)."""

    def on_step_begin(self, local_step: int = 0) -> None:
        """Start of a step: update masks if it is a pruning step (once per step). ``local_step``
        is accepted for INC compatibility; the pruner counts steps itself."""
        if not self._begun:
            self.on_train_begin()
        self.update_masks()

    def update_masks(self) -> None:
        """Recompute masks on a pruning step."""

    def on_before_optimizer_step(self) -> None:
        """Before ``optimizer.step()``."""

    def on_after_optimizer_step(self) -> None:
        """After ``optimizer.step()``: keep pruned weights at zero, advance the step counter."""
        self.mask_weights()
        self.global_step += 1

    def on_step_end(self) -> None:
        """End of a step (nothing to do)."""

    def on_epoch_end(self) -> None:
        """End of an epoch (nothing to do)."""

    def on_train_end(self) -> None:
        """End of training: make sure the final masks are applied."""
        self.mask_weights()

    def on_before_eval(self) -> None:
        """Before evaluation (nothing to do)."""

    def on_after_eval(self) -> None:
        """After evaluation (nothing to do)."""

    # ---- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Masks, frozen layers and counters: everything needed to resume exactly."""
        return {
            "global_step": self.global_step,
            "current_sparsity_ratio": self.current_sparsity_ratio,
            "init_sparsity_ratio": self.init_sparsity_ratio,
            "mask_updates": self.mask_updates,
            "last_update": self._last_update,
            "begun": self._begun,
            "pruned": {n: p.clone() for n, p in self.pruned.items()},
            "keep_mask_layers": dict(self.pattern.keep_mask_layers),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (a malformed one is a ConfigError naming the key)."""
        check_pruner_state(state, "state", self.pruned)
        self.global_step = int(state["global_step"])
        self.current_sparsity_ratio = float(state["current_sparsity_ratio"])
        self.init_sparsity_ratio = float(state["init_sparsity_ratio"])
        self.mask_updates = int(state["mask_updates"])
        self._last_update = int(state["last_update"])
        self._begun = bool(state["begun"])
        self.pruned = {n: state["pruned"][n].clone() for n in self.pruned}
        self.pattern.keep_mask_layers = dict(state["keep_mask_layers"])
