"""Which layers post-training pruning takes, and their weights in Linear orientation.

This module decides nothing itself: it asks the pruner's owners.

* *Which layers*: :func:`workbench.pruner.sparsity.classify_layers`, the rule the training-aware
  pruners use, with ``op_names`` as ``op_names``, ``skip`` as ``excluded_op_names`` and
  ``op_types`` as ``pruning_op_types`` (default ``["Conv", "Linear"]``, as INC's). So output heads
  (:func:`workbench.pruner.find_heads`) are left out unless an ``op_names`` regex matches their
  whole name (or ``include_head=True``); layers whose weight is tied to another module's
  (:func:`workbench.pruner.tied_weights`, GPT-2's ``lm_head``) are never pruned, and naming one
  in ``op_names`` is a :class:`ConfigError` naming both. ``op_names`` and ``skip`` are regexes
  matched with ``re.search`` on module names.
* *Which of them post-training can prune*: those with a 2-D weight (``nn.Linear``, Hugging Face's
  ``Conv1D``); convolutions are left out.
* *Their orientation*: :func:`workbench.pruner.layout.layout_of`; Hugging Face's ``Conv1D`` stores
  its weight ``[in, out]`` and is handled as its transpose ``[out, in]``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..layout import layout_of
from ..sparsity import classify_layers

__all__ = ["find_targets", "get_weight_2d", "in_features", "set_weight_2d"]

NOT_2D = "not a 2-D weight (post-training prunes Linear and Conv1D weights only)"


def _compile(key: str, patterns: list[str] | None) -> list[str]:
    try:
        for p in patterns or []:
            re.compile(p)
    except (re.error, TypeError) as err:
        raise ConfigError(f"{key}: {patterns!r} is not a list of regular expressions ({err})") from None
    return list(patterns or [])


def find_targets(
    model: nn.Module,
    op_names: list[str] | None = None,
    skip: list[str] | None = None,
    include_head: bool = False,
    op_types: list[str] | None = None,
) -> dict[str, nn.Module]:
    """The target layers of ``model`` by name, in registration order.

    The same layers as a training-aware pruner config with these ``op_names``,
    ``excluded_op_names=skip`` and ``pruning_op_types=op_types`` selects, restricted to 2-D weights.

    Raises:
        ConfigError: nothing is selected (the message gives each candidate's reason), a regex
            is invalid, or ``op_names`` names a layer with tied weights.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> list(find_targets(m))
        ['0']
    """
    fields = {"op_names": _compile("op_names", op_names), "excluded_op_names": _compile("skip", skip)}
    if op_types is not None:
        fields["pruning_op_types"] = list(op_types)
    chosen, infos = classify_layers([PrunerConfig(**fields)], model, include_heads=include_head)
    found = {name: module for name, module in chosen[0].items() if module.weight.dim() == 2}
    if not found:
        why = {info.name: NOT_2D if info.pruned else info.reason for info in infos}
        candidates = "; ".join(f"{n!r}: {r}" for n, r in why.items()) or "none: the model has no module with a weight"
        raise ConfigError(
            f"op_names: {op_names!r} with skip {skip!r} selects no Linear/Conv1D layer of the model"
            f" (heads are skipped unless include_head=True; tied weights always); candidate layers: {candidates}"
        )
    return found


def get_weight_2d(module: nn.Module) -> torch.Tensor:
    """The weight as ``[out, in]`` (a view; ``Conv1D``'s is transposed)."""
    return layout_of(module).to_2d(module.weight.data)


def set_weight_2d(module: nn.Module, weight: torch.Tensor) -> None:
    """Write an ``[out, in]`` weight back in place, in the module's dtype and orientation."""
    get_weight_2d(module).copy_(weight.to(module.weight.dtype))


def in_features(module: nn.Module) -> int:
    """Input features of a target layer."""
    return get_weight_2d(module).shape[1]
