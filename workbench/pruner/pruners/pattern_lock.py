"""The pattern-lock pruner: fine-tune an already sparse model without changing its zeros."""

from __future__ import annotations

import warnings

import torch

from ..config_types import PrunerConfig
from . import register_pruner
from .base import BasePruner


@register_pruner("pattern_lock")
class PatternLockPruner(BasePruner):
    """Keeps the zeros the weights have at ``on_train_begin`` and never prunes more.

    The lock is element-wise (``W == 0``), whatever the pattern; the pattern is only used to
    report blockwise sparsity. Zeros are re-applied after every optimizer step.

    Attributes:
        locked_zeros: ``{name: bool tensor of the weight's shape}``, ``True`` where the weight
            was zero at ``on_train_begin`` and stays zero (``masks`` is its complement, ``True`` =
            kept). Saved under the state key ``"locked"``.

    Example:
        >>> import torch
        >>> from workbench.pruner import WeightPruningConfig, prepare_pruning
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> with torch.no_grad(): model[0].weight[0] = 0
        >>> pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="pattern_lock"))
        >>> pruning.on_train_begin(); int(pruning.pruners[0].locked_zeros["0"].sum())
        4
    """

    pruning_type_form = "pattern_lock"
    prunes_to_target = False

    def __init__(self, config: PrunerConfig, modules: dict) -> None:
        super().__init__(config, modules)
        self.locked_zeros: dict[str, torch.Tensor] = {}
        self._keep: dict[str, torch.Tensor] = {}

    def on_train_begin(self, dataloader=None) -> None:
        if self._begun:
            return
        self._begun = True
        self.locked_zeros = {n: m.weight.detach() == 0 for n, m in self.modules.items()}
        self._keep = {n: ~z for n, z in self.locked_zeros.items()}
        self.pruned = {n: self.pattern.pruned_from_weight(n, m.weight) for n, m in self.modules.items()}

    def mask_weights(self) -> None:
        with torch.no_grad():
            for name, keep in self._keep.items():
                self.modules[name].weight.data.mul_(keep)

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """``{name: bool tensor of the weight's shape}``, ``True`` where the weight is kept."""
        return {n: ~z for n, z in self.locked_zeros.items()}

    @property
    def locked(self) -> dict[str, torch.Tensor]:
        """Deprecated since 0.1.0, removed in 0.2.0: :attr:`locked_zeros` (``True`` = locked at zero)."""
        warnings.warn(
            "PatternLockPruner.locked is deprecated since 0.1.0 and will be removed in 0.2.0; use "
            "locked_zeros (the same tensors: True where the weight is locked at zero)",
            FutureWarning,
            stacklevel=2,
        )
        return self.locked_zeros

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["locked"] = {n: z.clone() for n, z in self.locked_zeros.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.locked_zeros = {n: z.clone() for n, z in state["locked"].items()}
        self._keep = {n: ~z for n, z in self.locked_zeros.items()}
