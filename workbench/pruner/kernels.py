"""Optional fused C kernels (``_kernels.c``) and the rules for using them.

Some pruning work is many small or strided vector ops in PyTorch, which run far below memory
speed on CPU: the 2:4 ranking is eight strided min/max ops, a broadcast comparison and a tie
check per layer; a probe of the global selection compares into a float buffer and sums it. The
C kernels do the same arithmetic in one pass and give the same result (``tests/test_kernels.py``
runs both paths). Work that PyTorch already does at memory speed stays in PyTorch: a fused
snip_momentum update measured no faster than the chunked PyTorch ops (both ~16 ms for 28M
weights on the reference machine).

``pip install`` builds the kernels (``setup.py``) when a C compiler is present; without one, or
with ``WORKBENCH_NATIVE_KERNELS=0`` in the environment, every function here returns ``None`` (or
``False``) and the caller takes its PyTorch path. Work is split over threads by
:mod:`workbench.pruner.parallel` (the kernels release the GIL).

Example:
    >>> import torch
    >>> out = two_of_four(torch.tensor([[4.0, 1.0, 3.0, 2.0]]))
    >>> out is None or (out[0].tolist(), out[1].tolist()) == ([3.0], [[False, True, False, True]])
    True
"""
from __future__ import annotations

import logging
import os

import torch

from .parallel import run_split
from .workspace import Workspace

ENV_SWITCH = "WORKBENCH_NATIVE_KERNELS"
ABI = 1  # must equal KERNELS_ABI in _kernels.c

_log = logging.getLogger(__name__)

try:
    from . import _kernels
except ImportError:  # installed without a C compiler: the PyTorch paths are used
    _kernels = None
if _kernels is not None and getattr(_kernels, "ABI", None) != ABI:
    _log.warning("the compiled pruner kernels are out of date (ABI %s, expected %s); using the PyTorch "
                 "paths until they are rebuilt (make install, or pip install -e .)",
                 getattr(_kernels, "ABI", None), ABI)
    _kernels = None


def available() -> bool:
    """Whether the compiled kernels are loaded and not switched off by ``WORKBENCH_NATIVE_KERNELS=0``."""
    return _kernels is not None and os.environ.get(ENV_SWITCH, "1") != "0"


def two_of_four(
    groups: torch.Tensor, workspace: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """2:4 ranking of a contiguous float32 ``[G, 4]`` CPU tensor in one pass.

    Returns ``(score [G], picked [G, 4] bool, tied)`` as ``nm._lowest_n`` computes them: the sum
    of each group's two lowest scores, the scores at or below its second lowest, and the indices
    of the groups whose second and third lowest are equal (``None`` if there are none), which the
    caller re-ranks by index. Returns ``None`` when the kernels are unavailable, the tensor is not
    a contiguous float32 CPU ``[G, 4]`` tensor, or a score is NaN.
    """
    if not available() or not _fits([groups], 2) or groups.shape[1] != 4:
        return None
    workspace = workspace or Workspace()
    g = groups.shape[0]
    score = torch.empty(g)
    picked = torch.empty((g, 4), dtype=torch.bool)
    second = workspace.get("kernel_second", (g,))
    tied = workspace.get("kernel_tied", (g,), torch.uint8)

    def part(lo: int, hi: int) -> int:
        return _kernels.two_of_four(
            groups[lo].data_ptr(), score[lo].data_ptr(), second[lo].data_ptr(),
            picked[lo].data_ptr(), tied[lo].data_ptr(), hi - lo,
        )

    (results,) = run_split([(g, 4, part)])
    if min(results) < 0:
        return None
    tied_idx = torch.nonzero(tied).view(-1) if sum(results) else None
    return score, picked, tied_idx


def count_rows(flat: list[torch.Tensor], value: float, row: int) -> list[torch.Tensor] | None:
    """Per layer, per run of ``row`` scores, how many are ``<= value``, as float32.

    What ``probes.row_sums`` gives for the 0/1 comparison, without writing the comparison out.
    ``flat`` holds 1-D float32 tensors; ``None`` when the kernels are unavailable or do not fit.
    """
    if not available() or not _fits(flat, 1):
        return None
    counts = [torch.empty(-(-f.numel() // row)) for f in flat]

    def task(f: torch.Tensor, out: torch.Tensor):
        def part(lo: int, hi: int) -> int:  # rows lo..hi
            n = min(hi * row, f.numel()) - lo * row
            _kernels.count_rows(f[lo * row].data_ptr(), n, row, value, out[lo].data_ptr())
            return 0

        return out.numel(), row, part

    run_split([task(f, out) for f, out in zip(flat, counts)])
    return counts


def at_or_below(flat: list[torch.Tensor], values: list[float]) -> list[torch.Tensor] | None:
    """Per layer, ``f <= value`` as a new bool tensor (1-D float32 ``flat``); ``None`` when the
    kernels are unavailable or do not fit."""
    if not available() or not _fits(flat, 1):
        return None
    masks = [torch.empty(f.shape, dtype=torch.bool) for f in flat]

    def task(f: torch.Tensor, value: float, out: torch.Tensor):
        def part(lo: int, hi: int) -> int:
            _kernels.at_or_below(f[lo].data_ptr(), hi - lo, value, out[lo].data_ptr())
            return 0

        return f.numel(), 1, part

    run_split([task(f, v, out) for f, v, out in zip(flat, values, masks)])
    return masks


def between_rows(
    flat: list[torch.Tensor], rows: list[torch.Tensor], low: float, high: float, row: int, counts: list[int]
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per layer, the scores in ``(low, high]`` inside the listed rows of ``row`` scores and their
    flat positions (what ``probes.inside_rows`` returns), given how many there are (``counts``,
    known from two probes). ``None`` when the kernels are unavailable, the inputs do not fit, or
    a count is wrong."""
    if not available() or not _fits(flat, 1) or any(r.dtype != torch.int64 or not r.is_contiguous() for r in rows):
        return None
    found = [(torch.empty(c), torch.empty(c, dtype=torch.int64)) for c in counts]

    def task(f: torch.Tensor, r: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor]):
        def part(lo: int, hi: int) -> int:  # one part: the rows' order is the output's order
            values, positions = out
            return _kernels.between_rows(f.data_ptr(), f.numel(), r.data_ptr(), r.numel(), row, low, high,
                                         values.data_ptr(), positions.data_ptr(), values.numel())

        return 1, r.numel() * row, part

    results = run_split([task(f, r, out) for f, r, out in zip(flat, rows, found)])
    if any(res != [c] for res, c in zip(results, counts)):
        return None
    return found


def zero_pruned(weights: list[torch.Tensor], masks: list[torch.Tensor]) -> list[bool]:
    """Multiply each weight by 0 where its ``mask`` (bool, the weight's shape) is set, in place,
    as ``weight.mul_(~mask)`` would, without building the factor; all layers in one split over
    the threads. Returns which weights were done: not those that are not contiguous float32 CPU
    tensors with a contiguous bool mask of their shape, and none without the kernels.
    """
    if not available():
        return [False] * len(weights)
    fits = [
        _fits([w], w.dim()) and m.shape == w.shape and m.dtype == torch.bool and m.is_contiguous()
        for w, m in zip(weights, masks)
    ]

    def task(weight: torch.Tensor, mask: torch.Tensor):
        flat, bools = weight.view(-1), mask.view(-1)

        def part(lo: int, hi: int) -> int:
            _kernels.zero_pruned(flat[lo].data_ptr(), bools[lo].data_ptr(), hi - lo)
            return 0

        return flat.numel(), 1, part

    run_split([task(w, m) for w, m, ok in zip(weights, masks, fits) if ok])
    return fits


def _fits(tensors: list[torch.Tensor], dim: int) -> bool:
    """Contiguous, non-empty float32 CPU tensors of ``dim`` dimensions (what the kernels read)."""
    return all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() and t.numel() > 0
        and t.dim() == dim
        for t in tensors
    )
