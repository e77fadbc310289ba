"""``slim_model``: physically remove the dead channels and heads of a pruned model, in place.

Run it after pruning has finished (the masks applied, a ``Pruning`` object detached): the
slimmed layers are smaller, so the pruner's masks no longer fit them. What is supported and what
is refused is described in :mod:`.pattern_analyzer`, :mod:`.linear_slim` and :mod:`.head_slim`;
every pair and block found is in the returned :class:`SlimReport`, with the reason when it was
left as it was.
"""

from __future__ import annotations

import logging

from torch import nn

from ..errors import ConfigError
from .head_slim import slim_heads
from .linear_slim import slim_pair
from .pattern_analyzer import find_attention_groups, find_ffn_pairs
from .report import SlimReport

__all__ = ["count_parameters", "slim_model"]

log = logging.getLogger(__name__)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements of ``model`` (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def slim_model(model: nn.Module, *, ffn: bool = True, heads: bool = True, round_to: int = 1) -> SlimReport:
    """Remove dead FFN hidden channels and dead attention heads from ``model`` in place.

    Args:
        model: A model whose pruned channels/heads are zero (masks applied).
        ffn: Slim FFN pairs (up -> activation -> down projections).
        heads: Slim attention heads (BERT-style and GPT-2-style self attention).
        round_to: Keep a multiple of this many hidden channels per FFN pair (>= 1).

    Returns:
        The :class:`SlimReport`: slimmed and skipped pairs/blocks, parameter counts.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> with torch.no_grad():
        ...     m[2].weight[:, :6] = 0
        >>> report = slim_model(m)
        >>> m[0].out_features, m[2].in_features, report.params_before - report.params_after
        (2, 2, 42)
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model={type(model).__name__!r} is not a torch.nn.Module; slim_model takes a module")
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ConfigError(f"round_to={round_to!r} is not allowed; it must be an integer >= 1")
    report = SlimReport(params_before=count_parameters(model))
    if ffn:
        report.entries += [slim_pair(model, pair, round_to=round_to) for pair in find_ffn_pairs(model)]
    if heads:
        report.entries += [slim_heads(model, group) for group in find_attention_groups(model)]
    report.params_after = count_parameters(model)
    for entry in report.entries:
        log.info("slim %s %s: %d -> %d %s", entry.kind, ",".join(entry.layers), entry.before, entry.after, entry.reason)
    return report
