"""Pruning configs whose result :func:`~workbench.pruner.slim.slim_model` can remove (INC's ``parse_auto_slim_config``).

For the FFN pairs found in the model, ``channelx1`` on every down projection (its input columns
are the hidden channels); for the attention blocks, ``channelx<head size>`` on every output
projection (each pruned block is one head's columns, aligned to heads since blocks start at
column 0). Layer names are exact (``^name$``), so the configs select nothing else. Any other
keys (``pruning_type``, ``start_step``, ``pruning_scope`` ...) are passed through to each config.
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import ConfigError
from .pattern_analyzer import find_attention_groups, find_ffn_pairs

__all__ = ["slim_pruning_configs"]


def _exact(names: list[str]) -> list[str]:
    return [f"^{re.escape(n)}$" for n in names]


def _check_sparsity(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r} is not allowed; it must be a number in [0, 1)")


def slim_pruning_configs(
    model: nn.Module, ffn_sparsity: float = 0.0, head_sparsity: float = 0.0, **kwargs
) -> list[dict]:
    """``pruning_configs`` entries that prune FFN channels and whole heads, for ``WeightPruningConfig``.

    Args:
        model: The model to prune (FFN pairs and attention blocks as :mod:`.pattern_analyzer` finds them).
        ffn_sparsity: Target sparsity of the FFN down projections (0: no FFN config).
        head_sparsity: Target sparsity of the attention output projections (0: no head config).
        **kwargs: Further keys for every entry.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> slim_pruning_configs(m, ffn_sparsity=0.5)
        [{'op_names': ['^2$'], 'pattern': 'channelx1', 'target_sparsity': 0.5}]
    """
    _check_sparsity("ffn_sparsity", ffn_sparsity)
    _check_sparsity("head_sparsity", head_sparsity)
    configs = []
    downs = [p.down for p in find_ffn_pairs(model)]
    if ffn_sparsity > 0 and downs:
        configs.append({"op_names": _exact(downs), "pattern": "channelx1", "target_sparsity": ffn_sparsity, **kwargs})
    if head_sparsity > 0:
        modules = dict(model.named_modules())
        by_size: dict[int, list[str]] = {}
        for group in find_attention_groups(model):
            module = modules[group.name]
            size = module.attention_head_size if group.style == "bert" else module.head_dim
            by_size.setdefault(size, []).append(group.out)
        for size, outs in sorted(by_size.items()):
            configs.append(
                {"op_names": _exact(outs), "pattern": f"channelx{size}", "target_sparsity": head_sparsity, **kwargs}
            )
    return configs
