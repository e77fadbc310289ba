"""Exact selection of the k lowest-scoring units across layers, with per-layer bounds.

Global pruning asks: over all layers of a pruner, which ``k`` blocks have the lowest scores,
given that layer ``l`` may prune no fewer than ``lo[l]`` and no more than ``hi[l]`` of its own?
Sorting (or ``kthvalue``) over the concatenated scores of a large model costs several dense
training steps. The common cases, where no bound binds or only maxima do, are answered by
counting below candidate thresholds (:mod:`workbench.pruner._backend.counting`, a few vectorised passes
over the scores; once more per round of capped layers, and masks built only for the last round).
When a minimum binds, this module brackets the threshold with a deterministic sample, counts
exactly on either side of the bracket, and ranks only the few scores inside it. Both answers are
exact; the sample only decides how much work it takes.

Ties are broken deterministically: equal scores are taken in layer order, then in flat index
order, so the same scores always give the same masks.
"""

from __future__ import annotations

import math

import torch

from .counting import Counted, count_lowest, take_ties
from .weighted import select_lowest_weighted
from .workspace import on_cpu

_SAMPLE = 1 << 17
_SIGMAS = 2.5  # bracket half-width in units of 1/sqrt(sample): ~5 standard deviations


def select_lowest(
    scores: list[torch.Tensor], k: int, *, lo: list[int] | None = None, hi: list[int] | None = None
) -> tuple[list[torch.Tensor], list[int], list[bool]]:
    """Choose exactly ``k`` lowest scores over ``scores`` (clamped to the bounds' total).

    Args:
        scores: One float tensor per layer (any shape; NaN is not allowed).
        k: How many units to select in total.
        lo: Per-layer minimum counts (default 0).
        hi: Per-layer maximum counts (default the layer's size).

    Returns:
        ``(masks, counts, capped)``: a bool tensor per layer (``True`` = selected, same shape as
        its scores), the number selected per layer, and whether the layer's own ranking wanted
        more than ``hi`` (it was capped).

    Example:
        >>> import torch
        >>> masks, counts, _ = select_lowest([torch.tensor([3., 1.]), torch.tensor([2., 0.])], 2)
        >>> counts
        [1, 1]
    """
    if not scores:
        return [], [], []
    if not on_cpu(scores[0]):
        return select_lowest_sorted(scores, k, lo=lo, hi=hi)
    flat = [s.reshape(-1) for s in scores]
    sizes = [f.numel() for f in flat]
    lo = [0] * len(flat) if lo is None else list(lo)
    hi = list(sizes) if hi is None else list(hi)
    k = min(max(k, sum(lo)), sum(hi))
    counted = _count_with_caps(flat, k, lo, hi)
    if counted is not None:
        masks, counts, capped = counted
        return [m.view(s.shape) for m, s in zip(masks, scores)], counts, capped
    lo_t, hi_t, below, upto, inside = _bracket(flat, sizes, k, lo, hi)
    if all(l <= a and b <= h for a, b, l, h in zip(below, upto, lo, hi)):
        # no bound binds inside the bracket: every candidate adds one, so the need-th lowest
        # candidate is the threshold (kthvalue, no sort)
        masks, counts = _threshold_select(flat, k - sum(below), lo_t, below, inside)
        return [m.view(s.shape) for m, s in zip(masks, scores)], counts, [False] * len(flat)
    inside = [torch.sort(v).values for v in inside]
    counts, raw = _resolve(inside, k, lo, hi, below)
    masks = [
        _lowest_mask(f, c, lo_t, hi_t, a, b, v).view(s.shape)
        for f, c, a, b, v, s in zip(flat, counts, below, upto, inside, scores)
    ]
    return masks, counts, [r > h for r, h in zip(raw, hi)]


def select_lowest_sorted(
    scores: list[torch.Tensor], k: int, *, lo: list[int] | None = None, hi: list[int] | None = None
) -> tuple[list[torch.Tensor], list[int], list[bool]]:
    """:func:`select_lowest` by two stable sorts on the scores' own device: the path for tensors
    off the CPU (a sort is fast on a GPU; the counting machinery is tuned for CPU caches).

    It is the weighted walk (:func:`.weighted.select_lowest_weighted`) with every unit of size
    one, which is the reference walk of :func:`.reference.select_lowest`: the same masks and
    counts, ties by (layer, flat index).
    """
    return select_lowest_weighted(scores, [1] * len(scores), k, lo=lo, hi=hi)


def _count_with_caps(flat: list[torch.Tensor], k: int, lo: list[int], hi: list[int]):
    """The selection by counting when no minimum binds: ``(masks, counts, capped)`` or ``None``.

    A layer whose share of the ``k`` lowest exceeds its maximum keeps exactly its maximum (its
    own lowest scores) and the others are ranked again for what is left; that can only raise
    the threshold, so it repeats until no layer exceeds (usually once: global pruning pushing
    a few layers to ``max_sparsity_ratio_per_op``). The result is the reference walk's: scores in
    (value, layer, index) order, a capped layer's further scores skipped. ``None`` when a
    minimum binds at the end or counting does not apply (the bracket walk handles those).
    """
    free, capped, left = list(range(len(flat))), [False] * len(flat), k
    while True:
        counted = count_lowest([flat[i] for i in free], left) if free else Counted([], list)
        if counted is None:
            return None
        over = [i for i, c in zip(free, counted.counts) if c > hi[i]]
        if not over:
            break
        for i in over:
            capped[i] = True
            left -= hi[i]
        free = [i for i in free if not capped[i]]
    counts = [0] * len(flat)
    for i, count in zip(free, counted.counts):
        counts[i] = count
    own: dict[int, Counted] = {}
    for i in (i for i, c in enumerate(capped) if c):
        alone = count_lowest([flat[i]], hi[i])
        if alone is None:
            return None
        own[i], counts[i] = alone, alone.counts[0]
    if any(c < l for c, l in zip(counts, lo)):
        return None
    masks: list[torch.Tensor | None] = [None] * len(flat)
    for i, mask in zip(free, counted.masks()):  # the only masks built: the last round's
        masks[i] = mask
    for i, alone in own.items():
        masks[i] = alone.masks()[0]
    return masks, counts, capped


def lowest_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` lowest entries of one tensor (ties by flat index)."""
    return select_lowest([score], k)[0][0]


def _clamp(x: int, low: int, high: int) -> int:
    return min(max(x, low), high)


def _split(f: torch.Tensor, lo_t: float, hi_t: float) -> tuple[int, int, torch.Tensor]:
    """``(#f < lo_t, #f <= hi_t, the values in [lo_t, hi_t])`` (unsorted)."""
    if lo_t == -math.inf and hi_t == math.inf:
        return 0, f.numel(), f
    below_mask = f < lo_t if lo_t != -math.inf else None
    below = 0 if below_mask is None else int(torch.count_nonzero(below_mask))
    if hi_t == math.inf:
        inside = f[~below_mask]
    else:
        upto_mask = f <= hi_t
        inside = f[upto_mask if below_mask is None else upto_mask ^ below_mask]
    return below, below + inside.numel(), inside


def _bracket(flat, sizes, k, lo, hi):
    """Thresholds with clamped total(lo_t) <= k <= total(hi_t), and what lies between."""
    total = sum(sizes)
    step = max(1, total // _SAMPLE)
    sample = torch.cat([f[::step] for f in flat]).float()
    n = sample.numel()
    q = k / max(total, 1)
    width = _SIGMAS / math.sqrt(n) + 2.0 / n
    while True:
        i_lo, i_hi = math.floor((q - width) * n), math.ceil((q + width) * n)
        lo_t = -math.inf if i_lo < 0 else float(torch.kthvalue(sample, i_lo + 1).values)
        hi_t = math.inf if i_hi >= n else float(torch.kthvalue(sample, i_hi + 1).values)
        below, upto, inside = (list(x) for x in zip(*[_split(f, lo_t, hi_t) for f in flat]))
        ok_lo = sum(_clamp(a, l, h) for a, l, h in zip(below, lo, hi)) <= k
        ok_hi = sum(_clamp(b, l, h) for b, l, h in zip(upto, lo, hi)) >= k
        if ok_lo and ok_hi:
            return lo_t, hi_t, below, upto, inside
        width *= 4.0


def _threshold_select(flat, need, lo_t, below, inside):
    """Masks and counts when the ``need`` lowest in-bracket values can be taken freely."""
    if need <= 0:
        return [f < lo_t if lo_t != -math.inf else torch.zeros_like(f, dtype=torch.bool) for f in flat], list(below)
    threshold = torch.kthvalue(torch.cat(inside).float(), need).values
    less = [int(torch.count_nonzero(v < threshold)) for v in inside]
    left = need - sum(less)  # ties at the threshold still to take, in layer order
    masks, counts = [], []
    for f, v, a, c in zip(flat, inside, below, less):
        ties = int(torch.count_nonzero(v == threshold)) if left > 0 else 0
        take = min(ties, left)
        left -= take
        if take == ties:
            masks.append(f <= threshold if take else f < threshold)
        else:
            mask = f < threshold
            take_ties(mask, f, threshold, take)
            masks.append(mask)
        counts.append(a + c + take)
    return masks, counts


def _resolve(inside, k, lo, hi, below):
    """Final and unclamped per-layer counts: walk in-bracket scores until the total is ``k``."""
    need = k - sum(_clamp(a, l, h) for a, l, h in zip(below, lo, hi))
    if need <= 0:
        return [_clamp(a, l, h) for a, l, h in zip(below, lo, hi)], list(below)
    values = torch.cat(inside)
    ids = torch.cat([torch.full((v.numel(),), i, dtype=torch.int64) for i, v in enumerate(inside)])
    order = torch.sort(values, stable=True).indices  # ties: layer order, then index order
    ids = ids[order]
    start = torch.tensor([0] + [v.numel() for v in inside]).cumsum(0)
    rank = order - start[ids]  # position of each candidate within its layer's sorted scores
    new_raw = torch.tensor(below)[ids] + rank + 1
    gains = ((new_raw > torch.tensor(lo)[ids]) & (new_raw <= torch.tensor(hi)[ids])).cumsum(0)
    stop = int(torch.searchsorted(gains, torch.tensor([need]))[0])
    taken = torch.bincount(ids[: stop + 1], minlength=len(inside)).tolist()
    raw = [a + t for a, t in zip(below, taken)]
    return [_clamp(r, l, h) for r, l, h in zip(raw, lo, hi)], raw


def _lowest_mask(f, count, lo_t, hi_t, below, upto, inside_sorted) -> torch.Tensor:
    """Mask of the ``count`` lowest entries of ``f`` (flat), ties broken by index."""
    if count <= 0:
        return torch.zeros_like(f, dtype=torch.bool)
    if count >= f.numel():
        return torch.ones_like(f, dtype=torch.bool)
    if count == below:
        return f < lo_t
    if count == upto:
        return f <= hi_t
    if below < count <= upto:
        threshold = inside_sorted[count - below - 1]
        selected = below + int(torch.searchsorted(inside_sorted, threshold, right=True))
    else:  # clamped outside the bracket: rank the layer alone
        threshold = torch.kthvalue(f.float(), count).values
        selected = None
    mask = f <= threshold
    if selected is None:
        selected = int(torch.count_nonzero(mask))
    extra = selected - count
    if extra > 0:  # ties at the threshold: keep the first ones (by index), drop the rest
        ties = torch.nonzero(f == threshold).view(-1)
        mask[ties[ties.numel() - extra :]] = False
    return mask
