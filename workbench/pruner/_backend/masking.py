"""Zeroing pruned weights every step: which kernel takes a layer, and which mask copy is cached.

A pattern's pruned mask has one entry per ``block`` (``(rows, cols)``) of the layer's 2-D weight
view (``(1, 1)``: element-level). :func:`zero_masked` zeroes the pruned weights of every layer
in place by the fastest route the layer allows, and keeps in ``factors`` (the pruner's cache,
emptied when its masks change) whatever copy of the mask that route needs:

* float32 Conv layers with kernels larger than 1x1 (whose 2-D view maps columns around) and
  transposed (Conv1D) weights: a compiled pass over a weight-ordered bool copy of the mask, built
  once per mask change (several times faster than mapping each view column every step);
* element-level masks, and every block shape the kernels take, straight from the mask;
* elsewhere (no kernels, another device): a multiplication by a keep factor, block-sized for
  multi-element blocks of 2-D weights (multiplying by a mask is several times faster on CPU
  than ``masked_fill_``; by uint8 about 2x faster than by bool).

The layer's layout is any object with the attributes of ``workbench.pruner.layout.Layout`` that
are used here (``rows``, ``cols``, ``transposed``, ``is_2d``, ``memory_view``): this package
imports nothing of the workbench. Every route gives the weights ``weight * ~expand(mask)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from . import kernels
from .blocks import weight_order_mask, zero_blocks
from .workspace import on_cpu

__all__ = ["keep_factor", "zero_by_mask", "zero_by_mask_many", "zero_masked"]

_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

Expand = Callable[[str, torch.Tensor], torch.Tensor]


def zero_masked(
    weights: Mapping[str, torch.Tensor],
    pruned: Mapping[str, torch.Tensor],
    factors: dict[str, torch.Tensor],
    layouts: Mapping[str, object],
    block: Callable[[str], tuple[int, int]],
    expand: Expand,
) -> None:
    """Zero the pruned weights of every layer in ``pruned``, in place (see the module docstring).

    Args:
        weights: ``{name: weight}`` (as stored).
        pruned: ``{name: pruned mask}`` at the pattern's resolution (``True`` = zeroed).
        factors: The cache of mask copies between mask changes; filled here.
        layouts: ``{name: layout}`` of the layers.
        block: The layer's block ``(rows, cols)`` of its 2-D view (one mask entry each).
        expand: ``expand(name, mask)``: the weight-shaped bool view of a mask.
    """
    cached = _zero_cached(weights, pruned, factors, layouts, expand)
    rest = {name: mask for name, mask in pruned.items() if name not in cached}
    zeroed = _zero_compiled(weights, rest, layouts, block, expand)
    for name, mask in rest.items():
        if name in zeroed:
            continue
        factor = factors.get(name)
        if factor is None or factor.dtype == torch.bool:  # not the kernels' cached mask
            layout = layouts[name]
            whole = None if layout.is_2d else expand(name, mask)
            factor = factors[name] = keep_factor(weights[name], mask, layout, block(name), whole)
        _apply_factor(weights[name], factor, layouts[name], block(name))


def keep_factor(
    weight: torch.Tensor, pruned: torch.Tensor, layout, block: tuple[int, int], expanded: torch.Tensor | None
) -> torch.Tensor:
    """What the weight is multiplied by: a block-sized keep mask in the weight's dtype for
    multi-element blocks of 2-D weights, else uint8 (of the block grid, or of ``expanded``, the
    weight-shaped pruned mask, needed where the 2-D view is not the weight itself)."""
    if not layout.is_2d:
        return _as_uint8(~expanded)
    bn, bm = block
    keep = ~pruned.view(layout.rows // bn, 1, layout.cols // bm, 1)
    return _as_uint8(keep) if bn * bm == 1 else keep.to(weight.dtype)


def _apply_factor(weight: torch.Tensor, factor: torch.Tensor, layout, block: tuple[int, int]) -> None:
    if layout.is_2d:
        bn, bm = block
        weight.view(layout.rows // bn, bn, layout.cols // bm, bm).mul_(factor)
    else:
        weight.mul_(factor)


def _zero_cached(
    weights: Mapping[str, torch.Tensor],
    pruned: Mapping[str, torch.Tensor],
    factors: dict[str, torch.Tensor],
    layouts: Mapping[str, object],
    expand: Expand,
) -> set[str]:
    """Float32 Conv layers with kernels larger than 1x1 and transposed (Conv1D) weights, zeroed by
    a compiled pass over a weight-ordered bool copy of the pruned mask kept in ``factors``."""
    done: set[str] = set()
    if not kernels.available():
        return done
    for name, mask in pruned.items():
        weight, layout = weights[name], layouts[name]
        flip = layout.transposed and mask.dim() == 2 and weight.is_contiguous() and weight.dtype in _KERNEL_DTYPES
        conv = weight.dim() > 2 and layout.cols != weight.shape[1] and weight.dtype == torch.float32
        if not (flip or conv) or not on_cpu(weight):
            continue
        block = (layout.rows // mask.shape[0], layout.cols // mask.shape[-1]) if mask.dim() == 2 else None
        cached = factors.get(name)
        if cached is None or cached.dtype != torch.bool:
            fast = None if block is None or flip else weight_order_mask(mask, tuple(weight.shape), block)
            fast = mask.t().contiguous() if flip else fast
            cached = factors[name] = expand(name, mask).contiguous() if fast is None else fast
        if zero_blocks(weight, cached, block[::-1]) if flip else zero_by_mask(weight, cached):
            done.add(name)
    return done


def _zero_compiled(
    weights: Mapping[str, torch.Tensor],
    pruned: Mapping[str, torch.Tensor],
    layouts: Mapping[str, object],
    block: Callable[[str], tuple[int, int]],
    expand: Expand,
) -> set[str]:
    """Zero what a compiled kernel can straight from the mask, in place; returns those layers:
    element-level masks of the weight's shape or of its 2-D view, then every block shape on
    every ``[out, in]`` layer the kernels take (no full-size factor is built or kept for those).
    Element masks and Nx1 block masks of all layers go to one compiled call
    (:func:`zero_by_mask_many`); what it declines, and other blocks, go layer by layer."""
    batch: list[tuple[str, tuple[torch.Tensor, torch.Tensor, int]]] = []
    for name, mask in pruned.items():
        weight, layout = weights[name], layouts[name]
        if layout.transposed:  # the kernels read [out, in] weights
            continue
        bn, bm = block(name)
        if mask.numel() == weight.numel():
            batch.append((name, (weight, expand(name, mask), 1)))
        elif bm == 1 and (flat := layout.memory_view(weight)) is not None:
            batch.append((name, (flat, mask, bn)))
    done = zero_by_mask_many([job for _, job in batch]) if batch else []
    zeroed = {name for (name, _), ok in zip(batch, done) if ok}
    for name, mask in pruned.items():
        weight, layout = weights[name], layouts[name]
        if name in zeroed or layout.transposed:
            continue
        bn, bm = block(name)
        if mask.numel() == weight.numel():
            bn = bm = 1
        if zero_blocks(weight, mask.reshape(layout.rows // bn, layout.cols // bm), (bn, bm)):
            zeroed.add(name)
    return zeroed


def zero_by_mask(weight: torch.Tensor, pruned: torch.Tensor, *, block_rows: int = 1) -> bool:
    """Zero ``weight`` in place where ``pruned`` is set, as ``weight.mul_(~mask)`` would, in one
    compiled pass without building a factor.

    ``pruned`` is a bool mask of the weight's shape, or with ``block_rows > 1`` the
    ``[rows // block_rows, cols]`` mask of a 2-D weight's ``block_rows`` x 1 blocks. Returns
    ``False``, doing nothing, where no compiled kernel takes the tensors; the caller then
    multiplies by its keep factor.
    """
    return zero_by_mask_many([(weight, pruned, block_rows)])[0]


def zero_by_mask_many(jobs: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> list[bool]:
    """:func:`zero_by_mask` for every ``(weight, pruned, block_rows)``, in one compiled call over
    all of them (its threads take tiles of any layer as they come free). Returns which were
    zeroed; the others are left as they were."""
    if not jobs:
        return []
    return kernels.zero_pruned_many(list(jobs))


def _as_uint8(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask as uint8 without a copy: ``mul_`` by uint8 is about 2x faster than by bool."""
    return mask.contiguous().view(torch.uint8)
