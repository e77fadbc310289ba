"""The block-mask pruner (INC 3.7.1's ``pruning_type: block_mask``): blocks scored by their mask's gradient."""

from __future__ import annotations

import logging

from ..config_types import PrunerConfig
from ..patterns.spec import BLOCKS
from . import register_pruner
from .basic import BasicPruner

logger = logging.getLogger(__name__)

LINEAR_ONLY = "block masks are for Linear layers only (as in INC 3.7.1)"


def linear_layers(modules: dict, pruner: str) -> tuple[dict, dict[str, str]]:
    """``(Linear layers, {other layer: reason})``: INC's block-mask pruners masked Linear layers only."""
    keep = {n: m for n, m in modules.items() if "Linear" in type(m).__name__}
    left = {
        n: f"{LINEAR_ONLY}: {pruner} does not prune {type(m).__name__}" for n, m in modules.items() if n not in keep
    }
    for name, reason in left.items():
        logger.warning("layer %s is not pruned: %s", name, reason)
    return keep, left


@register_pruner("block_mask")
class BlockMaskPruner(BasicPruner):
    """The basic pruner with the ``snip_momentum_block`` criterion, over Linear layers, block patterns.

    INC 3.7.1 gave every pruned Linear a 0/1 mask with one entry per block, multiplied into the
    weight in the forward pass, and pruned the blocks whose mask gradients, accumulated with
    momentum, were smallest (see :mod:`workbench.pruner.criteria`); the masks are "learned"
    in that sense, not trained by the optimizer. The gradient of a block's mask is computed here
    from the weights' own gradient, so the model's forward pass is left alone. Schedules, scope
    and per-op bounds are the basic pruner's. Layers of other types (Conv) are left unpruned and
    named by ``describe()``, as INC skipped them with a warning.

    Example:
        >>> import torch
        >>> from workbench.pruner import WeightPruningConfig, prepare_pruning
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
        >>> pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="block_mask", pattern="1xchannel"))
        >>> type(pruning.pruners[0].criterion).__name__
        'SnipMomentumBlockCriterion'
    """

    pruning_type_form = "block_mask"
    requires = frozenset({BLOCKS})

    def __init__(self, config: PrunerConfig, modules: dict) -> None:
        linear, left = linear_layers(modules, "block_mask")
        super().__init__(config.replace(criterion_type="snip_momentum_block"), linear)
        self.pattern.invalid_layers.update(left)
