"""Optional fused C kernels (``_kernels.c``) and the rules for using them.

Some pruning work is many small strided vector ops in PyTorch, which run far below memory
speed: the 2:4 ranking is eight strided min/max ops, a broadcast comparison and a tie check per
layer; a probe of the global selection compares into a float buffer and sums it. The C kernels
do the same arithmetic in one pass and give the same result (``tests/test_kernels.py`` checks
them against the PyTorch paths). Work that PyTorch already does
at memory speed stays in PyTorch: a fused snip_momentum update measured no faster than the
chunked PyTorch ops (both ~16 ms for 28M weights on the reference machine). They are built by ``pip install`` (``setup.py``) when a
C compiler is present; without one, or with ``WORKBENCH_NATIVE_KERNELS=0`` in the environment,
every function here returns ``None`` and callers take their PyTorch path.

Work is split over ``torch.get_num_threads()`` threads (the kernels release the GIL); functions
that take a list of layers hand each thread one contiguous share of all of them, so a probe
costs one thread hand-off rather than one per layer.

Example:
    >>> import torch
    >>> out = two_of_four(torch.tensor([[4.0, 1.0, 3.0, 2.0]]))
    >>> out is None or (out[0].tolist(), out[1].tolist()) == ([3.0], [[False, True, False, True]])
    True
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from .workspace import Workspace

try:
    from . import _kernels
except ImportError:  # installed without a C compiler: the PyTorch paths are used
    _kernels = None

ENV_SWITCH = "WORKBENCH_NATIVE_KERNELS"
_SPLIT = 1 << 18  # below this many elements one thread does all the work
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


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
    if not available() or not _fits([groups]) or groups.dim() != 2 or groups.shape[1] != 4:
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

    (results,) = _parallel([(g, 4, part)])
    if min(results) < 0:
        return None
    tied_idx = torch.nonzero(tied).view(-1) if sum(results) else None
    return score, picked, tied_idx


def count_rows(flat: list[torch.Tensor], value: float, row: int) -> list[torch.Tensor] | None:
    """Per layer, per run of ``row`` scores, how many are ``<= value``, as float32.

    What ``probes.row_sums`` gives for the 0/1 comparison, without writing the comparison out.
    ``flat`` holds 1-D float32 tensors; ``None`` when the kernels are unavailable or do not fit.
    """
    if not available() or not _fits(flat):
        return None
    counts = [torch.empty(-(-f.numel() // row)) for f in flat]

    def task(f: torch.Tensor, out: torch.Tensor):
        def part(lo: int, hi: int) -> int:  # rows lo..hi
            n = min(hi * row, f.numel()) - lo * row
            _kernels.count_rows(f[lo * row].data_ptr(), n, row, value, out[lo].data_ptr())
            return 0

        return out.numel(), row, part

    _parallel([task(f, out) for f, out in zip(flat, counts)])
    return counts


def at_or_below(flat: list[torch.Tensor], values: list[float]) -> list[torch.Tensor] | None:
    """Per layer, ``f <= value`` as a new bool tensor (1-D float32 ``flat``); ``None`` when the
    kernels are unavailable or do not fit."""
    if not available() or not _fits(flat):
        return None
    masks = [torch.empty(f.shape, dtype=torch.bool) for f in flat]

    def task(f: torch.Tensor, value: float, out: torch.Tensor):
        def part(lo: int, hi: int) -> int:
            _kernels.at_or_below(f[lo].data_ptr(), hi - lo, value, out[lo].data_ptr())
            return 0

        return f.numel(), 1, part

    _parallel([task(f, v, out) for f, v, out in zip(flat, values, masks)])
    return masks


def between_rows(
    flat: list[torch.Tensor], rows: list[torch.Tensor], low: float, high: float, row: int, counts: list[int]
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per layer, the scores in ``(low, high]`` inside the listed rows of ``row`` scores and their
    flat positions (what ``probes.inside_rows`` returns), given how many there are (``counts``,
    known from two probes). ``None`` when the kernels are unavailable, the inputs do not fit, or
    a count is wrong."""
    if not available() or not _fits(flat) or any(r.dtype != torch.int64 or not r.is_contiguous() for r in rows):
        return None
    found = [(torch.empty(c), torch.empty(c, dtype=torch.int64)) for c in counts]

    def task(f: torch.Tensor, r: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor]):
        def part(lo: int, hi: int) -> int:  # one part: the rows' order is the output's order
            values, positions = out
            return _kernels.between_rows(f.data_ptr(), f.numel(), r.data_ptr(), r.numel(), row, low, high,
                                         values.data_ptr(), positions.data_ptr(), values.numel())

        return 1, r.numel() * row, part

    results = _parallel([task(f, r, out) for f, r, out in zip(flat, rows, found)])
    if any(res != [c] for res, c in zip(results, counts)):
        return None
    return found


def zero_pruned(weight: torch.Tensor, pruned: torch.Tensor) -> bool:
    """Multiply the weights by 0 where ``pruned`` (a bool tensor of the weight's shape) in place,
    as ``weight.mul_(~pruned)`` would, without building the factor. ``False``, touching nothing,
    when the kernels are unavailable or the tensors are not contiguous float32/bool CPU tensors."""
    if not available() or not _fits([weight.view(-1)] if weight.is_contiguous() else [weight]):
        return False
    if pruned.dtype != torch.bool or pruned.shape != weight.shape or not pruned.is_contiguous():
        return False
    flat, mask = weight.view(-1), pruned.view(-1)

    def part(lo: int, hi: int) -> int:
        _kernels.zero_pruned(flat[lo].data_ptr(), mask[lo].data_ptr(), hi - lo)
        return 0

    _parallel([(flat.numel(), 1, part)])
    return True


def _fits(tensors: list[torch.Tensor]) -> bool:
    return all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() and t.numel() > 0
        and (t.dim() == 1 or t.dim() == 2)
        for t in tensors
    )


Task = tuple[int, int, Callable[[int, int], int]]


def _parallel(tasks: list[Task]) -> list[list[int]]:
    """Run every task ``(units, cost per unit, part)`` as ``part(lo, hi)`` calls over its units.

    All tasks' units, laid end to end, are cut into one contiguous share of about equal cost per
    thread; small jobs stay on the calling thread. Returns each task's ``part`` results.
    """
    total = sum(n * c for n, c, _ in tasks)
    threads = max(1, min(torch.get_num_threads(), total // _SPLIT))
    results: list[list[int]] = [[] for _ in tasks]
    if threads == 1:
        for i, (n, _, part) in enumerate(tasks):
            results[i].append(part(0, n))
        return results
    shares: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    share, done = -(-total // threads), 0
    for i, (n, cost, _) in enumerate(tasks):
        lo = 0
        while lo < n:
            t = min(done // share, threads - 1)
            if t == threads - 1 or cost == 0:
                take = n - lo
            else:
                take = max(1, min(n - lo, -(-((t + 1) * share - done) // cost)))
            shares[t].append((i, lo, lo + take))
            lo, done = lo + take, done + take * cost

    def run(pieces: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        return [(i, tasks[i][2](lo, hi)) for i, lo, hi in pieces]

    pool = _get_pool(threads)
    futures = [pool.submit(run, pieces) for pieces in shares[1:]]
    for i, r in run(shares[0]) + [x for f in futures for x in f.result()]:
        results[i].append(r)
    return results


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < threads - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="prune-kernel"), threads - 1
    return _pool


def _forget_pool() -> None:
    """A forked child has no pool threads: start a new pool there when one is needed."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool)
