"""Which layers post-training pruning takes, and their weights in Linear orientation.

Targets are ``nn.Linear`` modules and Hugging Face's ``Conv1D`` (GPT-2; its weight is stored
``[in, out]`` and is handled here as its transpose ``[out, in]``). Output heads
(:func:`workbench.pruner.find_heads`) are skipped unless ``include_head``; layers whose weight is
tied to another module's (:func:`workbench.pruner.tied_weights`, GPT-2's ``lm_head``) are always
skipped, since zeroing them would zero the other module too. ``op_names`` and ``skip`` are regexes
matched with ``re.search`` on module names.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import ConfigError
from ..heads import find_heads, tied_weights

__all__ = ["find_targets", "get_weight_2d", "in_features", "set_weight_2d"]


def _is_conv1d(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.dim() == 2


def _is_target(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _compile(key: str, patterns: list[str] | None) -> list[re.Pattern]:
    try:
        return [re.compile(p) for p in (patterns or [])]
    except (re.error, TypeError) as err:
        raise ConfigError(f"{key}: {patterns!r} is not a list of regular expressions ({err})") from None


def find_targets(
    model: nn.Module, op_names: list[str] | None = None, skip: list[str] | None = None, include_head: bool = False
) -> dict[str, nn.Module]:
    """The target layers of ``model`` by name, in registration order.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> list(find_targets(m))
        ['0']
    """
    keep, drop = _compile("op_names", op_names), _compile("skip", skip)
    heads = {} if include_head else find_heads(model)
    tied = tied_weights(model)
    found = {}
    for name, module in model.named_modules():
        if not name or not _is_target(module) or name in heads or name in tied:
            continue
        if keep and not any(p.search(name) for p in keep):
            continue
        if any(p.search(name) for p in drop):
            continue
        found[name] = module
    if not found:
        raise ConfigError(
            f"op_names: {op_names!r} with skip {skip!r} selects no Linear/Conv1D layer of the model"
            f" (heads {sorted(heads)} are skipped unless include_head=True; tied weights {sorted(tied)} always)"
        )
    return found


def get_weight_2d(module: nn.Module) -> torch.Tensor:
    """The weight as ``[out, in]`` (a view; ``Conv1D``'s is transposed)."""
    return module.weight.data.t() if _is_conv1d(module) else module.weight.data


def set_weight_2d(module: nn.Module, weight: torch.Tensor) -> None:
    """Write an ``[out, in]`` weight back in place, in the module's dtype and orientation."""
    get_weight_2d(module).copy_(weight.to(module.weight.dtype))


def in_features(module: nn.Module) -> int:
    """Input features of a target layer."""
    return get_weight_2d(module).shape[1]
