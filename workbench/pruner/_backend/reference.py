"""Plain PyTorch definitions of what each function of the ``_backend`` interface computes.

Each function here is written to be read, not to be fast: it sorts, loops and allocates freely.
The fast paths (C kernels, counting probes, sorting networks) must give the same results, and
the tests check them against these on random inputs with ties, bounds and odd shapes. These
functions return new tensors; the fast ones of the same name work in place where they say so.

Example:
    >>> import torch
    >>> select_lowest([torch.tensor([3., 1.]), torch.tensor([2., 0.])], 3, hi=[2, 1])[1:]
    ([2, 1], [False, True])
"""

from __future__ import annotations

import torch


def select_lowest(
    scores: list[torch.Tensor], k: int, *, lo: list[int] | None = None, hi: list[int] | None = None
) -> tuple[list[torch.Tensor], list[int], list[bool]]:
    """The ``k`` lowest scores over all layers, each layer taking at least ``lo`` and at most ``hi``.

    All scores are walked in (value, layer, flat index) order, each taken unless its layer
    already holds ``hi``, until ``k`` (clamped to the bounds' totals) are taken. Where that
    leaves a layer below ``lo``, the walk is done again with every layer holding its ``lo``
    lowest from the start (a score then adds only past its layer's ``lo``). A layer is *capped*
    when the walk passed more of its scores than ``hi``. Within a layer the selected scores are
    its lowest, ties by flat index. (With floors set, the fast path's ``capped`` may follow the
    second walk although the first met the floors: when it falls back from counting.)
    """
    flat = [s.reshape(-1).float() for s in scores]
    lo = [0] * len(flat) if lo is None else list(lo)
    hi = [f.numel() for f in flat] if hi is None else list(hi)
    k = min(max(k, sum(lo)), sum(hi))
    walk = sorted((float(v), layer, i) for layer, f in enumerate(flat) for i, v in enumerate(f.tolist()))
    walked = _walk(walk, k, [0] * len(flat), hi)
    if any(min(w, h) < low for w, h, low in zip(walked, hi, lo)):
        walked = _walk(walk, k, lo, hi)
    counts = [min(max(w, low), h) for w, low, h in zip(walked, lo, hi)]
    masks = [lowest_mask(s, c) for s, c in zip(scores, counts)]
    return masks, counts, [w > h for w, h in zip(walked, hi)]


def _walk(walk: list[tuple[float, int, int]], k: int, lo: list[int], hi: list[int]) -> list[int]:
    """How many scores of each layer the walk passes before ``k`` are taken."""
    walked, taken = [0] * len(lo), sum(lo)
    for _, layer, _ in walk:
        if taken >= k:
            break
        walked[layer] += 1
        if lo[layer] < walked[layer] <= hi[layer]:
            taken += 1
    return walked


def select_lowest_weighted(
    scores: list[torch.Tensor], sizes: list[int], k: int, *, lo: list[int] | None = None, hi: list[int] | None = None
) -> tuple[list[torch.Tensor], list[int], list[bool]]:
    """The lowest scores over all layers until their units (``sizes[l]`` weights each in layer
    ``l``) hold ``k`` weights, each layer taking at least ``lo`` and at most ``hi`` units.

    As :func:`select_lowest`, walking in (value, layer, flat index) order, with two changes: a
    unit adds its layer's size, and the walk stops before the first unit that would leave the
    total further from ``k`` than it is (``2 * (k - taken) < size``), or once ``k`` is reached.
    """
    flat = [s.reshape(-1).float() for s in scores]
    lo = [0] * len(flat) if lo is None else list(lo)
    hi = [f.numel() for f in flat] if hi is None else list(hi)
    k = min(max(k, sum(l * w for l, w in zip(lo, sizes))), sum(h * w for h, w in zip(hi, sizes)))
    walk = sorted((float(v), layer, i) for layer, f in enumerate(flat) for i, v in enumerate(f.tolist()))

    def run(floors: list[int]) -> list[int]:
        walked, taken = [0] * len(flat), sum(f * w for f, w in zip(floors, sizes))
        for _, layer, _ in walk:
            adds = floors[layer] < walked[layer] + 1 <= hi[layer]
            if taken >= k or (adds and 2 * (k - taken) < sizes[layer]):
                break
            walked[layer] += 1
            taken += sizes[layer] if adds else 0
        return walked

    walked = run([0] * len(flat))
    if any(min(w, h) < low for w, h, low in zip(walked, hi, lo)):
        walked = run(lo)
    counts = [min(max(w, low), h) for w, low, h in zip(walked, lo, hi)]
    masks = [lowest_mask(s, c) for s, c in zip(scores, counts)]
    return masks, counts, [w > h for w, h in zip(walked, hi)]


def lowest_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (``score``'s shape) of its ``k`` lowest entries, ties by flat index."""
    flat = score.reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[torch.argsort(flat, stable=True)[: max(k, 0)]] = True
    return mask.view(score.shape)


def lowest_n_per_group(scores2d: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group of ``m`` consecutive scores in a row: the sum of its ``n`` lowest (added from
    the lowest up) and which they are, ties to the lower index.

    Returns ``(group_scores [rows, cols // m], picked [rows * cols // m, m] bool)``.
    """
    groups = scores2d.reshape(-1, m)
    order = torch.argsort(groups, dim=1, stable=True)[:, :n]
    picked = torch.zeros(groups.shape, dtype=torch.bool).scatter_(1, order, True)
    lowest = groups.gather(1, order)
    total = lowest[:, 0].clone()
    for i in range(1, n):
        total += lowest[:, i]
    return total.view(scores2d.shape[0], -1), picked


def mask_groups(picked: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """``picked [groups, m]`` where the group is ``chosen [groups]``, else nothing."""
    return picked & chosen.reshape(-1, 1)


def reduce_blocks(elem2d: torch.Tensor, block_rows: int, block_cols: int, how: str) -> torch.Tensor:
    """Per ``block_rows`` x ``block_cols`` block, its "max", "sum" or "mean", the sum taken over
    the block's elements row by row, left to right."""
    rows, cols = elem2d.shape
    view = elem2d.reshape(rows // block_rows, block_rows, cols // block_cols, block_cols)
    parts = [view[:, i, :, j] for i in range(block_rows) for j in range(block_cols)]
    out = parts[0].clone()
    for part in parts[1:]:
        out = torch.maximum(out, part) if how == "max" else out + part
    return out / (block_rows * block_cols) if how == "mean" else out


def accumulate_snip(
    score: torch.Tensor,
    weight: torch.Tensor,
    grad: torch.Tensor,
    alpha: float,
    beta: float,
    *,
    block_rows: int = 1,
    mean: bool = False,
) -> torch.Tensor:
    """``alpha * score + beta * |weight * grad|``, the snip scores reduced to ``block_rows`` x 1
    blocks first (row by row; divided by ``block_rows`` if ``mean``). ``alpha * score`` is added
    with one rounding (a fused multiply-add), as ``torch.add(x, score, alpha=alpha)`` does."""
    new = (weight * grad).abs()
    if block_rows > 1:
        new = reduce_blocks(new, block_rows, 1, "mean" if mean else "sum")
    return torch.add(new * beta, score, alpha=alpha)


def zero_by_mask(weight: torch.Tensor, pruned: torch.Tensor, *, block_rows: int = 1) -> torch.Tensor:
    """``weight`` times 0 where ``pruned`` (the weight's shape, or one flag per ``block_rows``
    x 1 block of a 2-D weight) is set, times 1 elsewhere (so NaN stays NaN, and -0.0 appears)."""
    if block_rows > 1:
        pruned = pruned.repeat_interleave(block_rows, dim=0)
    return weight * ~pruned


def element_scores(weight2d: torch.Tensor, grad2d: torch.Tensor | None, element: str) -> torch.Tensor:
    """Per element of a 2-D view, in float32 from the upcast weight and gradient: its "value",
    "magnitude" ``|w|``, "gradient" ``|g|`` or "snip" ``|w * g|``."""
    w = weight2d.float()
    if element == "value":
        return w.clone()
    if element == "magnitude":
        return w.abs()
    g = grad2d.float()
    return g.abs() if element == "gradient" else (w * g).abs()


def block_scores(
    weight2d: torch.Tensor,
    grad2d: torch.Tensor | None,
    element: str,
    block: tuple[int, int],
    how: str,
    *,
    score: torch.Tensor | None = None,
    alpha: float = 0.0,
    beta: float = 1.0,
) -> torch.Tensor:
    """:func:`element_scores` reduced per ``block`` by :func:`reduce_blocks`; with ``score``,
    accumulated as ``torch.add(new * beta, score, alpha=alpha)`` (one fused multiply-add)."""
    new = reduce_blocks(element_scores(weight2d, grad2d, element), *block, how)
    return new if score is None else torch.add(new * beta, score, alpha=alpha)


def zero_blocks(weight2d: torch.Tensor, pruned: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """``weight2d`` times 0 where its ``block`` is set in ``pruned`` (``[rows // N, cols // M]``),
    times 1 elsewhere, in the weight's dtype."""
    full = pruned.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)
    return weight2d * ~full
