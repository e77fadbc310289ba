"""``snip_momentum_block``: momentum over the gradient of each block's mask (INC 3.7.1's block_mask criterion).

INC's ``block_mask`` pruner multiplied every Linear weight by a 0/1 mask with one entry per
block in the forward pass and scored each block by the gradient of the loss with respect to its
mask entry, with momentum: ``score = 0.9 * score + |dL/dm|``. Since the masked weight is
``W * m``, ``dL/dm`` of a block is ``sum over the block of W * dL/d(W * m)``: the gradient of the
weights the model uses, times those weights, summed with its sign. Pruned weights are zero
here, so this is ``sum(W * W.grad)`` over the block, computed from the ordinary gradient without
rewriting any forward pass. Unlike ``snip_momentum``, which sums ``|W * G|`` (every element's
magnitude), the signs cancel: a block whose elements pull in opposite directions scores low.
The sum is the block's own (``criterion_reduce_type`` does not apply), so blocks of different
sizes compare as INC compared them.
"""

from __future__ import annotations

import torch

from . import (
    _backend,
    criteria_momentum,  # noqa: F401  (INC's snip_momentum registers before this criterion)
)
from .config_types import PrunerConfig
from .criteria import PruningCriterion, register_criterion
from .patterns.spec import BLOCKS


@register_criterion("snip_momentum_block")
class SnipMomentumBlockCriterion(PruningCriterion):
    """``score = alpha * score + beta * |sum over the block of W * dL/dW|`` per block, on every step
    from the first up to ``end_step - 1`` (alpha 0.9, beta 1.0, as INC).

    Block patterns only; taken by the basic pruner (``pruning_type: snip_momentum_block``) and by
    the ``block_mask`` pruner. Scores are always per block (progressive pruning, which needs
    element scores, does not take it).

    Example:
        >>> import torch
        >>> from workbench.pruner.patterns import get_pattern
        >>> fc = torch.nn.Linear(2, 4, bias=False)
        >>> with torch.no_grad(): _ = fc.weight.copy_(torch.tensor([[1., 1.], [1., 1.], [2., 0.], [0., 0.]]))
        >>> fc.weight.grad = torch.tensor([[1., 1.], [-1., 1.], [1., 1.], [1., 1.]])
        >>> c = SnipMomentumBlockCriterion({"fc": fc}, PrunerConfig(), get_pattern({"pattern": "2x1"}, {"fc": fc}))
        >>> c.on_before_optimizer_step(); c.scores["fc"].tolist()
        [[0.0, 2.0], [2.0, 0.0]]
    """

    needs_grad = True
    accumulates = True
    requires = frozenset({BLOCKS})
    pruner_types = frozenset({"basic"})

    def __init__(self, modules: dict, config: PrunerConfig, pattern=None, *, element_level: bool = False) -> None:
        super().__init__(modules, config, pattern, element_level=False)
        self.alpha = 0.9
        self.beta = 1.0
        self._stand_ins: set[str] = set()  # layers whose scores are magnitudes standing in for gradients

    def ensure_scores(self) -> None:
        """Magnitudes for layers without a gradient yet; the first gradient replaces them (they do
        not enter the momentum)."""
        self._stand_ins.update(n for n in self.modules if n not in self.scores)
        super().ensure_scores()

    def mask_gradient(self, name: str) -> torch.Tensor:
        """``dL/dm`` of every block of the layer: ``sum over the block of W * W.grad`` (signed)."""
        module = self.modules[name]
        layout = self._layout(name)
        with torch.no_grad():
            product = layout.to_2d(module.weight.detach().float() * module.weight.grad.float())  # fp32 for half weights
            return _backend.reduce_blocks(product, *self.pattern.block(name), "sum").to(self.dtype)

    def on_before_optimizer_step(self) -> None:
        for name, module in self.modules.items():
            if module.weight.grad is None:
                continue
            new = self.mask_gradient(name).abs_().mul_(self.beta)
            old = None if name in self._stand_ins else self.scores.get(name)
            self._stand_ins.discard(name)
            self.scores[name] = new if old is None else torch.add(new, old, alpha=self.alpha, out=old)
