"""The pruner's speed machinery, behind a handful of functions (private to ``workbench.pruner``).

This package owns how pruning work is made fast: the optional C kernels (``_kernels.c``,
:mod:`.kernels`), the exact k-lowest selection by counting (:mod:`.probes`, :mod:`.counting`,
:mod:`.threshold_search`, :mod:`.selection`), the N:M sorting networks (:mod:`.groups`), the
scratch buffers reused across layers (:mod:`.workspace`), the block scores and block masking
of any pattern on any layer's 2-D view (:mod:`.blocks`), and the zeroing of pruned weights every
step with its mask-cache policy (:mod:`.masking`: which kernel takes a layer, which mask copy is
kept between mask changes). All of that is for the CPU: tensors on
another device (CUDA) take plain PyTorch paths on their own device, chosen by one device check
(:func:`on_cpu`) per call, with the same results up to float rounding. The semantic classes (patterns,
criteria, pruners) say *what* is pruned and call only the functions below; each has a short,
plain-PyTorch counterpart in :mod:`.reference` that defines its result, and the tests check
the fast path against it. Nothing outside ``workbench.pruner`` may import this package, and
it imports nothing of the workbench but itself.

Example:
    >>> import torch
    >>> masks, counts, capped = select_lowest([torch.tensor([3., 1.]), torch.tensor([2., 0.])], 3, hi=[2, 1])
    >>> counts, capped
    ([2, 1], [False, True])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import kernels
from .blocks import block_scores, weight_order_mask, zero_blocks
from .groups import lowest_n_per_group, mask_groups
from .masking import zero_by_mask, zero_by_mask_many, zero_masked
from .selection import lowest_mask, select_lowest
from .weighted import select_lowest_weighted
from .workspace import Workspace, on_cpu

ROW_ORDER_MAX = 16
"""Nx1 blocks up to this N are summed in row order by :func:`reduce_blocks` (``torch.sum``'s
order depends on the shape), so that the compiled block update gives the same values."""

__all__ = [
    "ROW_ORDER_MAX",
    "Workspace",
    "accumulate_snip",
    "accumulate_snip_many",
    "block_scores",
    "kernels_available",
    "lowest_mask",
    "lowest_n_per_group",
    "mask_groups",
    "on_cpu",
    "reduce_blocks",
    "row_order_blocks",
    "select_lowest",
    "select_lowest_weighted",
    "weight_order_mask",
    "zero_blocks",
    "zero_by_mask",
    "zero_by_mask_many",
    "zero_masked",
]


def kernels_available() -> bool:
    """Whether the compiled kernels are loaded and switched on (else every path is PyTorch's)."""
    return kernels.available()


def row_order_blocks(block_rows: int, block_cols: int, how: str) -> bool:
    """Whether :func:`reduce_blocks` sums ``block_rows`` x ``block_cols`` blocks in row order
    (Nx1 blocks of 2 to :data:`ROW_ORDER_MAX` rows, "mean" or "sum"): the reductions that
    :func:`accumulate_snip` can also do in one compiled pass."""
    return block_cols == 1 and 1 < block_rows <= ROW_ORDER_MAX and how in ("mean", "sum")


def reduce_blocks(elem2d: torch.Tensor, block_rows: int, block_cols: int, how: str) -> torch.Tensor:
    """One value per ``block_rows`` x ``block_cols`` block of a 2-D tensor: its "mean", "sum"
    or "max". Returns ``elem2d`` itself for 1x1 blocks.

    Example:
        >>> reduce_blocks(torch.arange(8.).view(4, 2), 2, 1, "sum").tolist()
        [[2.0, 4.0], [10.0, 12.0]]
    """
    if block_rows == block_cols == 1:
        return elem2d
    if elem2d.dtype == torch.float32:  # one compiled pass, summing in the reference's order
        fast = block_scores(elem2d, None, "value", (block_rows, block_cols), how)
        if fast is not None:
            return fast
    rows, cols = elem2d.shape
    view = elem2d.reshape(rows // block_rows, block_rows, cols // block_cols, block_cols)
    if how == "max":
        return view.amax(dim=(1, 3))
    if row_order_blocks(block_rows, block_cols, how):
        out = view[:, 0, :, 0] + view[:, 1, :, 0]  # in row order, as the compiled kernel sums
        for i in range(2, block_rows):
            out += view[:, i, :, 0]
    else:
        out = view.sum(dim=(1, 3))
    return out.div_(block_rows * block_cols) if how == "mean" else out


def accumulate_snip(
    score: torch.Tensor,
    weight: torch.Tensor,
    grad: torch.Tensor,
    alpha: float,
    beta: float,
    *,
    block_rows: int = 1,
    mean: bool = False,
) -> bool:
    """``score = alpha * score + beta * |weight * grad|`` in place, in one compiled pass.

    With ``block_rows > 1`` the scores are those of ``block_rows`` x 1 blocks of a 2-D weight
    (``[rows // block_rows, cols]``), each block's ``|weight * grad|`` summed in row order and
    divided by ``block_rows`` if ``mean``. Returns ``False``, doing nothing, where no compiled
    kernel takes the tensors; the caller then updates the scores with PyTorch ops.
    """
    if block_rows == 1 and score.shape == weight.shape:
        return kernels.snip_accumulate(score, weight, grad, alpha, beta)
    return kernels.snip_accumulate_blocks(score, weight, grad, block_rows, mean=mean, alpha=alpha, beta=beta)


def accumulate_snip_many(
    updates: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, bool]], alpha: float, beta: float
) -> list[bool]:
    """:func:`accumulate_snip` for every ``(score, weight, grad, block_rows, mean)``, in one
    compiled call over all the layers (its threads take tiles of any layer as they come free: one
    parallel region per hook instead of one per layer). ``block_rows == 1`` takes element scores
    of the weight's shape. Returns which updates were done; the caller updates the others.

    Example:
        >>> w, g = torch.ones(4, 2), torch.full((4, 2), 2.0)
        >>> scores = [torch.zeros(4, 2), torch.zeros(1, 2)]
        >>> done = accumulate_snip_many([(scores[0], w, g, 1, False), (scores[1], w, g, 4, True)], 0.9, 1.0)
        >>> done == [kernels_available()] * 2 and (not all(done) or scores[1].tolist() == [[2.0, 2.0]])
        True
    """
    return kernels.snip_accumulate_many(list(updates), alpha, beta)
