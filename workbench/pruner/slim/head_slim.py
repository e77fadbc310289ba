"""Remove dead attention heads of one self-attention block (BERT-style or GPT-2-style).

Head ``h`` is *dead* when removing it leaves the block's output unchanged (heads are computed
independently and only meet in the output projection):

* the output projection's input columns of head ``h`` are all zero; or
* the value projection's rows of head ``h`` and their bias entries are all zero (the head's
  context is then zero, whatever its attention pattern).

Zero query/key rows alone do not make a head dead (its attention becomes uniform, not zero); such
heads are kept. Removed: the head's rows of the query, key and value projections (of each of the
three blocks of GPT-2's fused ``c_attn``) and its columns of the output projection; the module's
head count (``num_attention_heads``/``all_head_size``, or ``num_heads``/``split_size``) follows.
At least one head is kept. The model's ``config`` still states the original head count, so the
slimmed model is used as an object (forward, ``state_dict`` into the same slimmed structure),
not reloaded with ``from_pretrained``.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import keep_inputs, keep_outputs, weight_view
from .pattern_analyzer import AttentionGroup
from .report import SlimEntry

__all__ = ["dead_heads", "slim_heads"]


def _heads(module: nn.Module, style: str) -> tuple[int, int]:
    if style == "bert":
        return module.num_attention_heads, module.attention_head_size
    return module.num_heads, module.head_dim


def _value_rows(
    modules: dict, group: AttentionGroup, heads: int, size: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The value projection's ``[heads*size, in]`` rows and bias (GPT-2: the third block of ``c_attn``)."""
    value = modules[group.qkv[-1]]
    rows, bias = weight_view(value), value.bias
    if group.style == "gpt2":
        width = heads * size
        rows = rows[2 * width : 3 * width]
        bias = None if bias is None else bias[2 * width : 3 * width]
    return rows, bias


@torch.no_grad()
def dead_heads(model: nn.Module, group: AttentionGroup) -> torch.Tensor:
    """Boolean mask over ``group``'s heads: which can be removed without changing the output."""
    modules = dict(model.named_modules())
    heads, size = _heads(modules[group.name], group.style)
    out_cols = weight_view(modules[group.out]).reshape(-1, heads, size)
    dead_out = (out_cols == 0).all(dim=2).all(dim=0)
    rows, bias = _value_rows(modules, group, heads, size)
    dead_value = (rows.reshape(heads, size, -1) == 0).flatten(1).all(dim=1)
    if bias is not None:
        dead_value &= (bias.reshape(heads, size) == 0).all(dim=1)
    return dead_out | dead_value


def _row_index(keep: torch.Tensor, size: int, blocks: int) -> torch.Tensor:
    heads = keep.numel()
    per_block = (torch.nonzero(keep).flatten()[:, None] * size + torch.arange(size)).flatten()
    return torch.cat([per_block + b * heads * size for b in range(blocks)])


@torch.no_grad()
def slim_heads(model: nn.Module, group: AttentionGroup) -> SlimEntry:
    """Remove ``group``'s dead heads in place; the returned entry says what happened."""
    modules = dict(model.named_modules())
    module = modules[group.name]
    heads, size = _heads(module, group.style)
    layers = (*group.qkv, group.out)
    expected = heads * size * (3 if group.style == "gpt2" else 1)
    if (
        any(weight_view(modules[n]).shape[0] != expected for n in group.qkv)
        or weight_view(modules[group.out]).shape[1] != heads * size
    ):
        return SlimEntry("heads", layers, heads, heads, "projection shapes disagree with the head count")
    keep = ~dead_heads(model, group).cpu()
    if not keep.any():
        keep[0] = True
    if bool(keep.all()):
        return SlimEntry("heads", layers, heads, heads, "no dead head")
    rows = _row_index(keep, size, 3 if group.style == "gpt2" else 1)
    for name in group.qkv:
        keep_outputs(modules[name], rows)
    keep_inputs(modules[group.out], _row_index(keep, size, 1))
    kept = int(keep.sum())
    if group.style == "bert":
        module.num_attention_heads, module.all_head_size = kept, kept * size
    else:
        module.num_heads, module.split_size = kept, kept * size
    return SlimEntry("heads", layers, heads, kept)
