"""Block scores and block masking on the 2-D view of any weight, in one compiled pass.

Every pattern works on a weight's 2-D view (Linear ``[out, in]`` as is, Conv ``[out, in, kh,
kw]`` channels-last as ``[out, kh*kw*in]``). The kernels here read and write the weight in place
through a table of column offsets instead of copying it into that view, and cover every block
shape: NxM with N, M >= 1, ``channelx1`` (N = all rows), ``1xchannel`` (M = all columns), and
element level (1x1, what N:M patterns store). Weights and gradients may be float32, float16 or
bfloat16; scores are float32, each element's computed from the upcast values. The results are
those of :func:`.reference.block_scores` and :func:`.reference.zero_blocks`, bit for bit.

Each function returns ``None`` (or ``False``), doing nothing, where the kernels are unavailable
or the tensors do not fit (not contiguous CPU tensors of those dtypes, scores not a contiguous
float32 tensor of the block grid's shape); the caller then takes its PyTorch path.

Example:
    >>> import torch
    >>> s = block_scores(torch.tensor([[1.0, -2.0], [3.0, 4.0]]), None, "magnitude", (2, 2), "sum")
    >>> s is None or s.tolist() == [[10.0]]
    True
"""

from __future__ import annotations

from functools import lru_cache

import torch

from . import kernels

ELEMENTS = {"value": 0, "magnitude": 1, "gradient": 2, "snip": 3}
"""What an element scores: its value, ``|w|``, ``|g|`` or ``|w * g|``."""
REDUCTIONS = {"sum": 0, "mean": 1, "max": 2}
_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
COLUMN_SHARE = 1024
"""Where a weight has fewer block rows than threads (``channelx1``), the threads share its
columns, each at least this many (4 KB of float32 per row): with narrower slices of every row,
two threads read memory more slowly than one (2026-12-02: 14 against 18 GB/s on
``[3072, 768]``)."""


def view_shape(shape: tuple[int, ...] | torch.Size) -> tuple[int, int]:
    """``(rows, cols)`` of the 2-D view of a weight of ``shape``."""
    cols = 1
    for d in shape[1:]:
        cols *= d
    return shape[0], cols


@lru_cache(maxsize=64)
def column_offsets(shape: tuple[int, ...]) -> torch.Tensor | None:
    """Where column ``c`` of the channels-last 2-D view sits within a row of a contiguous
    ``[out, in, *kernel]`` weight (``None`` where the view is the weight: 2-D weights, 1x1 kernels).

    Example:
        >>> column_offsets((1, 2, 3)).tolist()  # view column k * in + i is weight [0, i, k]
        [0, 3, 1, 4, 2, 5]
    """
    inputs, kernel = shape[1], view_shape(shape[1:])[1]
    if len(shape) <= 2 or kernel == 1:
        return None
    return (torch.arange(inputs) * kernel + torch.arange(kernel).view(-1, 1)).reshape(-1).contiguous()


@lru_cache(maxsize=64)
def view_columns(shape: tuple[int, ...]) -> torch.Tensor | None:
    """The inverse of :func:`column_offsets`: the view column of each position in a weight row."""
    offsets = column_offsets(shape)
    return None if offsets is None else torch.argsort(offsets).contiguous()


def block_scores(
    weight: torch.Tensor,
    grad: torch.Tensor | None,
    element: str,
    block: tuple[int, int],
    how: str,
    *,
    out: torch.Tensor | None = None,
    accumulate: bool = False,
    alpha: float = 0.0,
    beta: float = 1.0,
) -> torch.Tensor | None:
    """Per ``block`` of the weight's 2-D view, its elements' ``element`` scores reduced by ``how``.

    Written into ``out`` (``[rows // N, cols // M]`` float32) when given, else into a new tensor;
    with ``accumulate``, ``out = alpha * out + beta * new`` (one fused multiply-add, as
    ``torch.add(new * beta, out, alpha=alpha)``). Returns the scores, or ``None`` where the
    kernels do not take the tensors.
    """
    if not kernels.available() or weight.dim() < 2 or not _fits(weight):
        return None
    code = ELEMENTS[element]
    if code >= 2 and (grad is None or grad.shape != weight.shape or grad.dtype != weight.dtype or not _fits(grad)):
        return None
    rows, cols = view_shape(weight.shape)
    bn, bm = block
    if rows % bn or cols % bm:
        return None
    grid = (rows // bn, cols // bm)
    if out is None:
        if accumulate:
            return None
        out = torch.empty(grid)
    elif tuple(out.shape) != grid or out.dtype != torch.float32 or out.device.type != "cpu" or not out.is_contiguous():
        return None
    offsets, columns = column_offsets(tuple(weight.shape)), view_columns(tuple(weight.shape))
    failed = kernels.call(
        "block_scores",
        out.data_ptr(),
        weight.data_ptr(),
        0 if code < 2 else grad.data_ptr(),
        _DTYPES[weight.dtype],
        code,
        REDUCTIONS[how],
        accumulate,
        alpha,
        beta,
        rows,
        cols,
        0 if offsets is None else offsets.data_ptr(),
        0 if columns is None else columns.data_ptr(),
        0 if offsets is None else weight.shape[1],
        bn,
        bm,
        kernels.threads(weight.numel(), max(grid[0], cols // COLUMN_SHARE)),
    )
    return None if failed else out


def zero_blocks(weight: torch.Tensor, pruned: torch.Tensor, block: tuple[int, int]) -> bool:
    """Zero ``weight`` in place (``weight * 0``: NaN stays NaN, a negative weight becomes -0.0)
    where its ``block`` of the 2-D view is set in ``pruned`` (bool, ``[rows // N, cols // M]``).
    Returns ``False``, doing nothing, where the kernels do not take the tensors."""
    if not kernels.available() or weight.dim() < 2 or not _fits(weight):
        return False
    rows, cols = view_shape(weight.shape)
    bn, bm = block
    if rows % bn or cols % bm or tuple(pruned.shape) != (rows // bn, cols // bm):
        return False
    if pruned.dtype != torch.bool or pruned.device.type != "cpu" or not pruned.is_contiguous():
        return False
    offsets = column_offsets(tuple(weight.shape))
    failed = kernels.call(  # out of memory midway: the caller's multiply zeroes the rest alike
        "zero_blocks",
        weight.data_ptr(),
        _DTYPES[weight.dtype],
        pruned.data_ptr(),
        rows,
        cols,
        0 if offsets is None else offsets.data_ptr(),
        bn,
        bm,
        0,
        kernels.threads(weight.numel(), rows),
    )
    return not failed


def weight_order_mask(pruned: torch.Tensor, shape: tuple[int, ...], block: tuple[int, int]) -> torch.Tensor | None:
    """The bool mask of a weight of ``shape`` (contiguous, in the weight's own order) that sets
    the elements of each ``block`` set in ``pruned`` (``[rows // N, cols // M]``): what
    ``layout.from_2d(expanded mask).contiguous()`` gives, in one pass. ``None`` where the kernels
    do not take it."""
    rows, cols = view_shape(shape)
    bn, bm = block
    if not kernels.available() or len(shape) < 2 or rows % bn or cols % bm or rows * cols == 0:
        return None
    if tuple(pruned.shape) != (rows // bn, cols // bm) or pruned.dtype != torch.bool or not pruned.is_contiguous():
        return None
    if pruned.device.type != "cpu":
        return None
    out = torch.empty(shape, dtype=torch.bool)
    offsets = column_offsets(tuple(shape))
    failed = kernels.call(
        "zero_blocks",
        0,
        0,
        pruned.data_ptr(),
        rows,
        cols,
        0 if offsets is None else offsets.data_ptr(),
        bn,
        bm,
        out.data_ptr(),
        kernels.threads(rows * cols, rows),
    )
    return None if failed else out


def _fits(t: torch.Tensor) -> bool:
    """A non-empty contiguous CPU tensor of a dtype the kernels read."""
    return t.dtype in _DTYPES and t.device.type == "cpu" and t.is_contiguous() and t.numel() > 0
