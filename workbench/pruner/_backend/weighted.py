"""Selection of the lowest-scoring units across layers when units differ in size between layers.

Global pruning with a pattern whose unit size depends on the layer ("channelx1" prunes whole
columns, "1xchannel" whole rows) must count weights, not units: layer ``l``'s units each hold
``sizes[l]`` weights, and the selected units' sizes add up to ``k`` weights (to within half the
largest unit). Such patterns have one unit per row or column, so there are few units (thousands
per layer, not millions) and one stable sort over all of them is cheap; the counting machinery
of :mod:`.selection` is for the many equal-sized units of block and N:M patterns.

The walk is the reference walk of :func:`.reference.select_lowest_weighted`, vectorised; it runs
on the scores' own device (with units of size one it is also the selection off the CPU).
"""

from __future__ import annotations

import torch


def select_lowest_weighted(
    scores: list[torch.Tensor], sizes: list[int], k: int, *, lo: list[int] | None = None, hi: list[int] | None = None
) -> tuple[list[torch.Tensor], list[int], list[bool]]:
    """The lowest scores over all layers until their units hold ``k`` weights in total.

    Args:
        scores: One float tensor of unit scores per layer (any shape; NaN is not allowed).
        sizes: Weights per unit of each layer.
        k: How many weights to select in total.
        lo: Per-layer minimum unit counts (default 0).
        hi: Per-layer maximum unit counts (default the layer's size).

    Returns:
        ``(masks, counts, capped)`` as :func:`.selection.select_lowest` returns them; the
        selected weights, ``sum(counts[l] * sizes[l])``, are within half the largest unit of
        ``k`` (clamped to the bounds' totals).

    Example:
        >>> import torch
        >>> _, counts, _ = select_lowest_weighted([torch.tensor([1., 4.]), torch.tensor([2., 3.])], [10, 1], 12)
        >>> counts
        [1, 2]
    """
    if not scores:
        return [], [], []
    flat = [s.reshape(-1).float() for s in scores]
    n = [f.numel() for f in flat]
    lo = [0] * len(flat) if lo is None else list(lo)
    hi = list(n) if hi is None else list(hi)
    k = min(max(k, sum(l * w for l, w in zip(lo, sizes))), sum(h * w for h, w in zip(hi, sizes)))
    device = flat[0].device
    orders = [torch.argsort(f, stable=True) for f in flat]  # within a layer: value, then index
    values = torch.cat([f[o] for f, o in zip(flat, orders)])
    ids = torch.cat([torch.full((c,), i, dtype=torch.int64, device=device) for i, c in enumerate(n)])
    order = torch.sort(values, stable=True).indices  # across layers: value, then layer, then index
    ids = ids[order]
    starts = _table([sum(n[:i]) for i in range(len(n))], device)
    rank = order - starts[ids] + 1  # 1-based rank within its layer
    size_t, lo_t, hi_t = (_table(v, device) for v in (sizes, lo, hi))
    walked = _walk(ids, rank, size_t, k, torch.zeros_like(lo_t), hi_t, len(flat))
    if any(min(w, h) < l for w, h, l in zip(walked, hi, lo)):
        walked = _walk(ids, rank, size_t, k, lo_t, hi_t, len(flat))
    counts = [min(max(w, l), h) for w, l, h in zip(walked, lo, hi)]
    masks = []
    for f, o, c, s in zip(flat, orders, counts, scores):
        mask = torch.zeros(f.numel(), dtype=torch.bool, device=device)
        mask[o[:c]] = True
        masks.append(mask.view(s.shape))
    return masks, counts, [w > h for w, h in zip(walked, hi)]


def _walk(ids, rank, size_t, k: int, lo_t, hi_t, layers: int) -> list[int]:
    """How many units of each layer the walk passes: a unit adds its size while its layer is
    past its floor and within its cap; the walk stops at the first unit when ``k`` weights are
    reached or when taking that unit would leave the total further from ``k`` than not."""
    gain = torch.where((rank > lo_t[ids]) & (rank <= hi_t[ids]), size_t[ids], 0)
    before = torch.cumsum(gain, 0) - gain + int((lo_t * size_t).sum())
    stop = torch.nonzero(2 * (k - before) < gain.clamp(min=1))
    end = int(stop[0]) if stop.numel() else ids.numel()
    counts = torch.bincount(ids[:end], minlength=layers)
    return counts.tolist() if counts.device.type == "cpu" else [int(c) for c in counts]  # no CPU copy


def _table(values: list[int], device: torch.device) -> torch.Tensor:
    """One int64 per layer on ``device``, built there (no CPU tensor for a CUDA step)."""
    if device.type == "cpu":
        return torch.tensor(values, dtype=torch.int64)
    return torch.cat([torch.full((1,), v, dtype=torch.int64, device=device) for v in values])
