"""Remove dead hidden channels of one FFN pair (up projection -> activation -> down projection).

Hidden channel ``i`` is *dead* when removing it leaves the pair's output unchanged:

* the down projection's input column ``i`` is all zero (``channelx1`` on the down projection):
  whatever the channel holds, it contributes nothing; or
* the up projection's output row ``i`` is all zero (``1xchannel`` on the up projection): the
  channel then holds the constant ``act(bias[i])`` (``act(0)`` without a bias), so its
  contribution ``down[:, i] * act(bias[i])`` is folded into the down projection's bias. This
  needs the activation (elementwise) and, where the constant is not zero, a down bias; else the
  channel is kept.

Removed: the up projection's rows (and bias entries) and the down projection's columns. With
``round_to`` > 1 the kept count is rounded up to a multiple of it by keeping some dead channels
(INC's ``round_multiplier``), which is still exact.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import keep_inputs, keep_outputs, weight_view
from .pattern_analyzer import FfnPair
from .report import SlimEntry

__all__ = ["dead_channels", "slim_pair"]


@torch.no_grad()
def dead_channels(up: nn.Module, down: nn.Module, pair: FfnPair) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Boolean masks over the hidden channels: removable, and among them those to fold; and a reason.

    The reason (empty when all zero channels are removable) says why some zero rows stay.
    """
    w_up, w_down = weight_view(up), weight_view(down)
    dead_down = (w_down == 0).all(dim=0)
    dead_up = (w_up == 0).all(dim=1) & ~dead_down
    reason = ""
    if not dead_up.any():
        return dead_down, dead_up, reason
    if pair.act is None:
        return dead_down, torch.zeros_like(dead_up), "zero up rows kept: activation unknown, cannot fold act(bias)"
    bias = up.bias if up.bias is not None else torch.zeros(w_up.shape[0], device=w_up.device, dtype=w_up.dtype)
    constant = pair.act(bias.detach().float().clone()).to(w_up.dtype)
    nonzero = dead_up & (constant != 0)
    if nonzero.any() and down.bias is None:
        reason = "zero up rows with act(bias) != 0 kept: the down projection has no bias to fold into"
        dead_up = dead_up & ~nonzero
    return dead_down | dead_up, dead_up, reason


@torch.no_grad()
def slim_pair(model: nn.Module, pair: FfnPair, *, round_to: int = 1) -> SlimEntry:
    """Remove ``pair``'s dead hidden channels in place; the returned entry says what happened."""
    modules = dict(model.named_modules())
    up, down = modules[pair.up], modules[pair.down]
    layers = (pair.up, pair.down)
    hidden = weight_view(up).shape[0]
    if weight_view(down).shape[1] != hidden:
        return SlimEntry(
            "ffn", layers, hidden, hidden, f"shapes disagree: {hidden} outputs -> {weight_view(down).shape[1]} inputs"
        )
    if up.weight is down.weight or any(p is q for p in up.parameters() for q in down.parameters()):
        return SlimEntry("ffn", layers, hidden, hidden, "the two layers share parameters")
    removable, fold, reason = dead_channels(up, down, pair)
    keep = ~removable
    if not keep.any():
        keep[0] = True  # keep one channel: a zero-width layer is not worth the surprises
    extra = (-int(keep.sum())) % max(1, round_to)
    if extra:
        keep[torch.nonzero(~keep).flatten()[:extra]] = True
    if bool(keep.all()):
        return SlimEntry("ffn", layers, hidden, hidden, reason or "no dead channel")
    fold = fold & ~keep
    if fold.any():
        bias = up.bias if up.bias is not None else torch.zeros(hidden, device=up.weight.device, dtype=up.weight.dtype)
        constant = pair.act(bias.detach().float().clone()).to(up.weight.dtype) * fold
        down.bias.add_(weight_view(down) @ constant)
    index = torch.nonzero(keep).flatten()
    keep_outputs(up, index)
    keep_inputs(down, index)
    return SlimEntry("ffn", layers, hidden, int(index.numel()), reason)
