"""The ``snip_momentum`` criterion: snip scores accumulated with momentum on every step.

``score = alpha * score + beta * |W * dL/dW|`` from the first step up to ``end_step - 1`` (alpha
0.9, beta 1.0), at the pattern's resolution; where the kernels are built the update of element
scores and of Nx1 row sums is one compiled pass (``workbench.pruner._backend``, same values).
"""

from __future__ import annotations

import torch

from . import _backend
from .config_types import PrunerConfig
from .criteria import PruningCriterion, _snip, register_criterion

__all__ = ["SnipMomentumCriterion"]


@register_criterion("snip_momentum")
class SnipMomentumCriterion(PruningCriterion):
    """``score = alpha * score + beta * |W * dL/dW|`` accumulated on every step that feeds a mask update.

    Attributes:
        alpha: How much of the previous score is kept (0.9).
        beta: Weight of the current step's snip score (1.0).
    """

    needs_grad = True
    accumulates = True

    def __init__(self, modules: dict, config: PrunerConfig, pattern=None, *, element_level: bool = False) -> None:
        if pattern is not None and getattr(pattern, "reduce_type", "mean") == "max":
            element_level = True  # max is not linear: the momentum must be kept per element
        super().__init__(modules, config, pattern, element_level=element_level)
        self.alpha = 0.9
        self.beta = 1.0

    def on_before_optimizer_step(self) -> None:
        for name, module in self.modules.items():
            if module.weight.grad is None:
                continue
            if name not in self.scores:
                self.scores[name] = self._compute(name, _snip, element="snip").mul_(self.beta)
            elif not self._accumulate_compiled(name, module):
                self._compute(name, _snip, element="snip", into=self.scores[name], alpha=self.alpha, beta=self.beta)

    def _accumulate_compiled(self, name: str, module: torch.nn.Module) -> bool:
        """The update in one compiled pass, for element-level scores and for the in-order row sums
        of Nx1 blocks (``BasePattern.row_sum_block``) of weights that are their own 2-D view
        (Linear, 1x1 convolutions); ``False`` where it does not apply."""
        layout = self._layout(name)
        weight, grad = layout.memory_view(module.weight.detach()), layout.memory_view(module.weight.grad)
        if weight is None or grad is None:
            return False
        score = self.scores[name]
        if score.shape == weight.shape:
            return _backend.accumulate_snip(score, weight, grad, self.alpha, self.beta)
        block = self.pattern.row_sum_block(name) if self.pattern is not None else None
        if block is None:
            return False
        rows, mean = block
        return _backend.accumulate_snip(score, weight, grad, self.alpha, self.beta, block_rows=rows, mean=mean)
