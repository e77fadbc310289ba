"""Regularisation applied while pruning (``reg_type``): group lasso on NxM blocks.

A regulariser is a class registered with ``@register_reg("name")``, built as
``cls(config, modules, pattern)`` with hooks ``on_before_optimizer_step`` and
``on_after_optimizer_step`` (called on steps between ``start_step`` and ``end_step``). Its class
attribute ``requires`` lists the pattern features it needs (see
:mod:`workbench.pruner.patterns.spec`); validation rejects a pattern without them.

In ``on_before_optimizer_step`` every block gets ``r = reg_coeff / (||grad of the block||_2 + 1e-12)``
(infinities set to 0); in ``on_after_optimizer_step``, on steps between start and end, the weights
shrink decoupled from the gradient step: ``W <- W - r * W`` with ``r`` broadcast over its block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from .config_types import PrunerConfig
from .patterns.spec import BLOCKS
from .registry import Registry

__all__ = ["REGS", "GroupLasso", "get_reg", "register_reg"]

REGS: Registry[type] = Registry("reg_type")


def register_reg(name: str):
    """Class decorator registering a regulariser class as ``reg_type`` ``name``."""
    return REGS.register(name)


def get_reg(config: PrunerConfig | Mapping[str, Any], modules: dict, pattern):
    """The regulariser named by ``config.reg_type``, or ``None`` when it is ``None``.

    Example:
        >>> get_reg({"reg_type": None}, {}, None) is None
        True
    """
    config = PrunerConfig.from_mapping(config)
    if config.reg_type is None:
        return None
    return REGS.lookup(config.reg_type)(config, modules, pattern)


@register_reg("group_lasso")
class GroupLasso:
    """Group-lasso shrinkage of NxM blocks (``parameters={"reg_coeff": c}``)."""

    requires: ClassVar[frozenset[str]] = frozenset({BLOCKS})

    def __init__(self, config: PrunerConfig, modules: dict, pattern) -> None:
        self.modules = modules
        self.pattern = pattern
        self.coeff = float(config.reg_coeff)
        self.reg_terms: dict[str, torch.Tensor] = {}

    def on_before_optimizer_step(self) -> None:
        """Compute each block's shrink factor from its gradient norm."""
        with torch.no_grad():
            for name, module in self.modules.items():
                grad = module.weight.grad
                if grad is None:
                    continue
                layout = self.pattern.layouts[name]
                r, bn, c, bm = self.pattern.grid(name, layout.rows)
                g2 = layout.to_2d(grad).float().reshape(r, bn, c, bm).pow(2).sum(dim=(1, 3)).sqrt_()
                term = self.coeff / (g2 + 1e-12)
                term[torch.isinf(term)] = 0.0
                self.reg_terms[name] = term

    def on_after_optimizer_step(self) -> None:
        """Shrink the weights: ``W <- W - r * W`` per block."""
        with torch.no_grad():
            for name, term in self.reg_terms.items():
                weight = self.modules[name].weight.data
                layout = self.pattern.layouts[name]
                r, bn, c, bm = self.pattern.grid(name, layout.rows)
                factor = (1.0 - term).view(r, 1, c, 1).expand(r, bn, c, bm).reshape(layout.rows, layout.cols)
                weight.mul_(layout.from_2d(factor.to(weight.dtype)))
