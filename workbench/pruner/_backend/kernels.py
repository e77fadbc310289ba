"""Optional fused C kernels (``_kernels.c``) and the rules for using them.

Some pruning work is many small or strided vector ops in PyTorch, which run far below memory
speed on CPU: the 2:4 ranking is eight strided min/max ops, a broadcast comparison and a tie
check per layer; a probe of the global selection compares into a float buffer and sums it. The
C kernels do the same arithmetic in one pass and give the same result (``tests/test_kernels.py``
runs both paths). The snip_momentum score update and the masking after every step are
memory-bound PyTorch ops already, but as one C pass each on PyTorch's threads they read memory
faster than PyTorch's op-by-op chunks (on the reference model: ~12 vs ~17-20 ms for the update
of 28M scores, ~6 vs ~8-10 ms for the masking).

``pip install`` builds the kernels (``setup.py``) when a C compiler with OpenMP is present;
without one, or with ``WORKBENCH_NATIVE_KERNELS=0`` in the environment, every function here
returns ``None`` (or ``False``) and the caller takes its PyTorch path. Each call splits its
work into ``torch.get_num_threads()`` contiguous shares (one when it is smaller than
:data:`SPLIT`, or when the kernels were built without OpenMP), which run on PyTorch's own OpenMP
threads (see ``_kernels.c``). The passes of every step (:func:`snip_accumulate_many`,
:func:`zero_pruned_many`) and the selection's probes (:func:`count_rows`) take all layers in one
call instead: their tiles of :data:`TILE` weights go to whichever thread is free, so there is one
parallel region per hook, and a thread the OS preempts on a busy machine does not stall the other
at a barrier after every layer (docs/performance.md, 2026-12-07).

Example:
    >>> import torch
    >>> out = two_of_four(torch.tensor([[4.0, 1.0, 3.0, 2.0]]))
    >>> out is None or (out[0].tolist(), out[1].tolist()) == ([3.0], [[False, True, False, True]])
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from .workspace import Workspace

ENV_SWITCH = "WORKBENCH_NATIVE_KERNELS"
SOURCE = Path(__file__).with_name("_kernels.c")
SPLIT = 1 << 16
"""Below this many elements (or units of work) a kernel runs on the calling thread alone."""
TILE = 1 << 18
"""The ``*_many`` kernels hand out work in tiles of about this many weights (whole rows; 1 MiB of
float32), to whichever thread is free."""

_log = logging.getLogger(__name__)


def source_hash(path: Path = SOURCE) -> str | None:
    """The first 16 hex digits of the SHA-256 of the kernels' C source (what ``setup.py`` builds
    into the module as ``SOURCE_HASH``), or ``None`` where the source is not installed."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _load():
    """The compiled module, or ``None`` when it is missing or was built from another source."""
    try:
        from . import _kernels  # optional: compiled by pip install where a C compiler is present
    except ImportError:  # installed without a C compiler: the PyTorch paths are used
        return None
    built, expected = getattr(_kernels, "SOURCE_HASH", None), source_hash()
    if expected is not None and built != expected:  # no source beside it: a wheel built with it
        _log.warning(
            "the compiled pruner kernels are out of date (built from %s, source is %s); using the "
            "PyTorch paths until they are rebuilt (make install, or pip install -e .)",
            built,
            expected,
        )
        return None
    return _kernels


_kernels = _load()


def available() -> bool:
    """Whether the compiled kernels are loaded and not switched off by ``WORKBENCH_NATIVE_KERNELS=0``."""
    return _kernels is not None and os.environ.get(ENV_SWITCH, "1") != "0"


def two_of_four(
    groups: torch.Tensor, workspace: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """2:4 ranking of a contiguous float32 ``[G, 4]`` CPU tensor in one pass.

    Returns ``(score [G], picked [G, 4] bool, tied)`` as ``groups.lowest_n_per_group`` computes them: the sum
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

    ties = _kernels.two_of_four(
        groups.data_ptr(), score.data_ptr(), second.data_ptr(), picked.data_ptr(), tied.data_ptr(), g, threads(4 * g, g)
    )
    if ties < 0:
        return None
    tied_idx = torch.nonzero(tied).view(-1) if ties else None
    return score, picked, tied_idx


def count_rows(flat: list[torch.Tensor], value: float, row: int) -> list[torch.Tensor] | None:
    """Per layer, per run of ``row`` scores, how many are ``<= value``, as float32.

    What ``probes.row_sums`` gives for the 0/1 comparison, without writing the comparison out, in
    one call over all layers (tiles of whole runs go to whichever thread is free). ``flat`` holds
    1-D float32 tensors; ``None`` when the kernels are unavailable or do not fit.
    """
    if not available() or not _fits(flat, 1):
        return None
    counts = [torch.empty(-(-f.numel() // row)) for f in flat]
    fields = [[f.data_ptr(), out.numel(), row, f.numel(), out.data_ptr()] for f, out in zip(flat, counts)]
    if _run_many("count_rows_many", fields, sum(f.numel() for f in flat), value) < 0:
        return None
    return counts


def at_or_below(flat: list[torch.Tensor], values: list[float]) -> list[torch.Tensor] | None:
    """Per layer, ``f <= value`` as a new bool tensor (1-D float32 ``flat``); ``None`` when the
    kernels are unavailable or do not fit."""
    if not available() or not _fits(flat, 1):
        return None
    masks = [torch.empty(f.shape, dtype=torch.bool) for f in flat]
    for f, value, out in zip(flat, values, masks):
        _kernels.at_or_below(f.data_ptr(), f.numel(), value, out.data_ptr(), threads(f.numel()))
    return masks


def between_rows(
    flat: list[torch.Tensor], rows: list[torch.Tensor], low: float, high: float, row: int, counts: list[int]
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per layer, the scores in ``(low, high]`` inside the listed rows of ``row`` scores and their
    flat positions (what ``probes.inside_rows`` returns), given how many there are (``counts``,
    known from two probes). ``None`` when the kernels are unavailable, the inputs do not fit, or
    a count is wrong.

    Each thread gathers from its share of the rows into its own slice of ``count`` entries; the
    slices are then joined in row order (only when more than one thread ran).
    """
    if not available() or not _fits(flat, 1) or any(r.dtype != torch.int64 or not r.is_contiguous() for r in rows):
        return None
    result = []
    for f, r, count in zip(flat, rows, counts):
        shares = threads(r.numel() * row, r.numel())
        values = torch.empty(shares, count)
        positions = torch.empty(shares, count, dtype=torch.int64)
        found = torch.empty(shares, dtype=torch.int64)
        _kernels.between_rows(
            f.data_ptr(),
            f.numel(),
            r.data_ptr(),
            r.numel(),
            row,
            low,
            high,
            values.data_ptr(),
            positions.data_ptr(),
            count,
            found.data_ptr(),
            shares,
        )
        per_share = found.tolist()
        if sum(per_share) != count:
            return None
        if shares == 1:
            result.append((values[0], positions[0]))
        else:
            result.append(
                (
                    torch.cat([v[:k] for v, k in zip(values, per_share)]),
                    torch.cat([p[:k] for p, k in zip(positions, per_share)]),
                )
            )
    return result


def zero_pruned(weights: list[torch.Tensor], masks: list[torch.Tensor]) -> list[bool]:
    """Multiply each weight by 0 where its ``mask`` (bool, the weight's shape) is set, in place,
    as ``weight.mul_(~mask)`` would, without building the factor. Returns which weights were
    done: not those that are not contiguous float32 CPU tensors with a contiguous bool mask of
    their shape, and none without the kernels.
    """
    if not available():
        return [False] * len(weights)
    fits = [
        _fits([w], w.dim()) and m.shape == w.shape and m.dtype == torch.bool and m.is_contiguous()
        for w, m in zip(weights, masks)
    ]
    for w, m, ok in zip(weights, masks, fits):
        if ok:
            _kernels.zero_pruned(w.data_ptr(), m.data_ptr(), w.numel(), threads(w.numel()))
    return fits


def zero_pruned_rows(weight: torch.Tensor, pruned: torch.Tensor, block_rows: int) -> bool:
    """Zero a 2-D ``weight`` where its ``block_rows`` x 1 block is pruned, in place, as
    multiplying by the expanded keep mask would. ``pruned`` is the bool block mask
    ``[rows // block_rows, cols]``. Returns ``False``, doing nothing, where the kernels are
    unavailable or the tensors do not fit.
    """
    if not available() or not _fits([weight], 2) or _block_grid(weight, block_rows) != pruned.shape:
        return False
    if pruned.dtype != torch.bool or not pruned.is_contiguous():
        return False
    rows, cols = weight.shape
    _kernels.zero_pruned_rows(
        weight.data_ptr(), pruned.data_ptr(), rows, cols, block_rows, threads(weight.numel(), rows)
    )
    return True


def snip_accumulate(score: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, alpha: float, beta: float) -> bool:
    """``score = alpha * score + beta * |weight * grad|`` in place, in one pass; the same values
    as the criterion's PyTorch path (``torch.add(new, score, alpha=alpha)`` rounds with one
    fused multiply-add, and so does the kernel). Returns ``False``, doing nothing, when the
    kernels are unavailable or the three are not contiguous float32 CPU tensors of one shape.
    """
    if not available() or not (score.shape == weight.shape == grad.shape and _fits([score, weight, grad], score.dim())):
        return False
    _kernels.snip_accumulate(
        score.data_ptr(), weight.data_ptr(), grad.data_ptr(), score.numel(), alpha, beta, threads(score.numel())
    )
    return True


def snip_accumulate_blocks(
    score: torch.Tensor,
    weight: torch.Tensor,
    grad: torch.Tensor,
    block_rows: int,
    *,
    mean: bool,
    alpha: float,
    beta: float,
) -> bool:
    """:func:`snip_accumulate` for scores of ``block_rows`` x 1 blocks of a 2-D weight: each
    block's ``|weight * grad|`` summed in row order (as ``reduce_blocks`` sums Nx1 blocks),
    divided by ``block_rows`` if ``mean``. ``score`` is ``[rows // block_rows, cols]``. Returns
    ``False``, doing nothing, where the kernels are unavailable or the tensors do not fit.
    """
    if not available() or not _fits([score, weight, grad], 2) or grad.shape != weight.shape:
        return False
    if _block_grid(weight, block_rows) != score.shape:
        return False
    block_rows_total, cols = score.shape
    _kernels.snip_accumulate_blocks(
        score.data_ptr(),
        weight.data_ptr(),
        grad.data_ptr(),
        block_rows_total,
        cols,
        block_rows,
        mean,
        alpha,
        beta,
        threads(weight.numel(), block_rows_total),
    )
    return True


SnipJob = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, bool]
"""``(score, weight, grad, block_rows, mean)``: one layer's update for :func:`snip_accumulate_many`."""


def snip_accumulate_many(jobs: list[SnipJob], alpha: float, beta: float) -> list[bool]:
    """:func:`snip_accumulate` (``block_rows == 1``, scores of the weight's shape) or
    :func:`snip_accumulate_blocks` for every job, in one call whose threads take tiles of any
    layer as they come free (the same values: each score is computed as those compute it).
    Returns which jobs were done; the others (not fitting, or all without the kernels) are left
    to the caller."""
    done = [_snip_job_fits(*job) for job in jobs]
    fields = []
    for (score, weight, grad, block_rows, mean), ok in zip(jobs, done):
        if ok:
            rows, cols = (weight.numel(), 1) if block_rows == 1 else score.shape
            fields.append([score.data_ptr(), weight.data_ptr(), grad.data_ptr(), rows, cols, block_rows, int(mean)])
    weights = sum(job[1].numel() for job, ok in zip(jobs, done) if ok)
    if fields and _run_many("snip_accumulate_many", fields, weights, alpha, beta) < 0:
        return [False] * len(jobs)  # out of memory before any work: the caller's PyTorch path
    return done


def _snip_job_fits(score: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, block_rows: int, mean: bool) -> bool:
    if not available() or grad.shape != weight.shape:
        return False
    if block_rows == 1:
        return score.shape == weight.shape and _fits([score, weight, grad], score.dim())
    return _fits([score, weight, grad], 2) and _block_grid(weight, block_rows) == score.shape


def zero_pruned_many(jobs: list[tuple[torch.Tensor, torch.Tensor, int]]) -> list[bool]:
    """:func:`zero_pruned` (``block_rows == 1``: a mask of the weight's shape) or
    :func:`zero_pruned_rows` for every ``(weight, pruned, block_rows)``, in one call whose threads
    take tiles of any layer as they come free. Returns which were done."""
    done = [_zero_job_fits(*job) for job in jobs]
    fields = []
    for (weight, pruned, block_rows), ok in zip(jobs, done):
        if ok:
            rows, cols = (weight.numel(), 1) if block_rows == 1 else weight.shape
            fields.append([weight.data_ptr(), pruned.data_ptr(), rows, cols, block_rows])
    weights = sum(job[0].numel() for job, ok in zip(jobs, done) if ok)
    if fields and _run_many("zero_pruned_many", fields, weights) < 0:
        return [False] * len(jobs)
    return done


def _zero_job_fits(weight: torch.Tensor, pruned: torch.Tensor, block_rows: int) -> bool:
    if not available() or pruned.dtype != torch.bool or not pruned.is_contiguous() or pruned.device.type != "cpu":
        return False
    if block_rows == 1:
        return pruned.shape == weight.shape and _fits([weight], weight.dim())
    return _fits([weight], 2) and _block_grid(weight, block_rows) == pruned.shape


def _run_many(name: str, fields: list[list[int]], weights: int, *scalars: float) -> int:
    """Run the ``*_many`` kernel ``name`` over the jobs' int64 ``fields`` (``weights`` in all):
    tiles of :data:`TILE` weights, on all of PyTorch's threads where the work reaches :data:`SPLIT`."""
    table = torch.tensor(fields, dtype=torch.int64)
    return call(name, table.data_ptr(), len(fields), *scalars, TILE, threads(weights))


def _block_grid(weight: torch.Tensor, block_rows: int) -> tuple[int, int] | None:
    """The ``[rows // block_rows, cols]`` shape of a 2-D weight's Nx1 block masks or scores;
    ``None`` when ``block_rows`` does not divide the rows."""
    rows, cols = weight.shape
    if block_rows < 1 or rows % block_rows:
        return None
    return rows // block_rows, cols


def call(name: str, *args):
    """Run the compiled kernel ``name`` on raw arguments (the caller checked :func:`available`)."""
    return getattr(_kernels, name)(*args)


def threads(work: int, units: int | None = None) -> int:
    """Threads for ``work`` elements cut into at most ``units`` shares (default: ``work``)."""
    if work < SPLIT or not getattr(_kernels, "OPENMP", 0):
        return 1
    return max(1, min(torch.get_num_threads(), work if units is None else units))


def _fits(tensors: list[torch.Tensor], dim: int) -> bool:
    """Contiguous, non-empty float32 CPU tensors of ``dim`` dimensions (what the kernels read)."""
    return all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() and t.numel() > 0 and t.dim() == dim
        for t in tensors
    )
