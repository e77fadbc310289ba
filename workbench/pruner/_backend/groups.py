"""N:M ranking: each group's N lowest scores, by sorting networks and a compiled 2:4 kernel.

Sorting millions of tiny rows is slow on CPU; a sorting network over the M strided columns (a
few dozen vector min/max operations, eight for 2:4) finds each group's N-th lowest score, and
one broadcast comparison marks the scores at or below it. Only groups whose N-th and (N+1)-th
lowest tie are re-ranked by ``argsort``. The semantics (ties to the lower index) are those of
:func:`workbench.pruner._backend.reference.lowest_n_per_group`.
"""

from __future__ import annotations

import torch

from . import kernels
from .workspace import Workspace


def lowest_n_per_group(
    scores2d: torch.Tensor, n: int, m: int, workspace: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group of ``m`` columns: the sum of its ``n`` lowest scores and which they are.

    For ``m <= 8`` a sorting network over the ``m`` strided columns (a few dozen vector min/max
    operations, eight for 2:4) finds each group's n-th lowest score; that is
    far faster on CPU than sorting millions of tiny rows. One broadcast comparison then marks
    the scores at or below it. Ties at the n-th score go to the lower index. For 2:4 the
    compiled kernel (:func:`workbench.pruner._backend.kernels.two_of_four`) does all of this in one pass
    when it is available.
    Returns ``(group_scores [rows, cols/m], lowest [rows * cols/m, m] bool)``.
    """
    rows = scores2d.shape[0]
    groups = scores2d.reshape(-1, m)
    if m > 8:
        lowest = _stable_lowest(groups, n)
        score = torch.where(lowest, groups, 0.0).sum(dim=1)
        return score.view(rows, -1), lowest
    workspace = workspace or Workspace()
    fused = kernels.two_of_four(groups, workspace) if (n, m) == (2, 4) else None
    if fused is not None:
        score, picked, tied = fused
    else:
        cols = [groups[:, i] for i in range(m)]
        if (n, m) == (2, 4):
            score, threshold, tied = _two_of_four(cols, workspace)
        else:
            score, threshold, tied = _sorted_prefix(cols, n, m, workspace)
        picked = _at_or_below(groups, threshold, workspace)
    if tied is not None:  # these groups' (n+1)-th lowest equals their n-th: rank them exactly
        picked[tied] = _stable_lowest(groups[tied], n)
    return score.view(rows, -1), picked


_PACKED = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def mask_groups(lowest: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``lowest & units[:, None]``, in place where it can be.

    For M of 2, 4 or 8 a group's M bools are one 16/32/64-bit integer, multiplied by its 0/1
    unit flag: about ten times faster on CPU than a broadcast ``&`` over M columns.
    """
    packed = _PACKED.get(lowest.shape[1])
    if packed is None or not lowest.is_contiguous():
        return lowest & units.view(-1, 1)
    return lowest.view(packed).view(-1).mul_(units).view(torch.bool).view(lowest.shape)


def _at_or_below(groups: torch.Tensor, threshold: torch.Tensor, workspace: Workspace) -> torch.Tensor:
    """``groups <= threshold[:, None]`` as bool, compared into a reused float buffer first
    (faster on CPU than a comparison straight into a fresh bool tensor)."""
    ones = workspace.get("ones", tuple(groups.shape), device=groups.device)
    return torch.le(groups, threshold.unsqueeze(1), out=ones).to(torch.bool)


def _stable_lowest(groups: torch.Tensor, n: int) -> torch.Tensor:
    """Bool ``[groups, m]``: each group's ``n`` lowest scores, ties to the lower index (argsort)."""
    order = groups.argsort(dim=1, stable=True)[:, :n]
    return torch.zeros(groups.shape, dtype=torch.bool, device=groups.device).scatter_(1, order, True)


def _ties(nth: torch.Tensor, next_: torch.Tensor, workspace: Workspace) -> torch.Tensor | None:
    """Indices of the groups whose n-th and (n+1)-th lowest scores are equal, or ``None``."""
    equal = torch.eq(nth, next_, out=workspace.get("tied", tuple(nth.shape), device=nth.device))
    # a float sum is about twice as fast as any() here, which converts to bool first
    return torch.nonzero(equal).view(-1) if bool(equal.sum()) else None


def _sorted_prefix(
    cols: list[torch.Tensor], n: int, m: int, workspace: Workspace
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(sum of the n lowest, n-th lowest, groups where the (n+1)-th ties with it) per group,
    through a sorting network over the columns."""
    ordered = list(cols)
    for i, j in _network(m):
        a, b = ordered[i], ordered[j]
        ordered[i], ordered[j] = torch.minimum(a, b), torch.maximum(a, b)
    score = ordered[0].clone()
    for extra in ordered[1:n]:
        score += extra
    tied = _ties(ordered[n - 1], ordered[n], workspace) if n < m else None
    return score, ordered[n - 1], tied


def _two_of_four(
    cols: list[torch.Tensor], workspace: Workspace
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """2:4 with 8 vector ops instead of a full network's 10: the lowest is the lower of the two
    pair minima; the second and third lowest are the lower and the higher of (the higher pair
    minimum, the lower pair maximum), so they tie exactly where those two are equal.
    Returns ``(sum of the two lowest, second lowest, tied groups or None)``; the second lives in
    the workspace."""
    x0, x1, x2, x3 = cols
    shape, on = tuple(x0.shape), x0.device
    low_a = torch.minimum(x0, x1, out=workspace.get("low_a", shape, device=on))
    low_b = torch.minimum(x2, x3, out=workspace.get("low_b", shape, device=on))
    high_a = torch.maximum(x0, x1, out=workspace.get("high_a", shape, device=on))
    high_b = torch.maximum(x2, x3, out=workspace.get("high_b", shape, device=on))
    mid = torch.maximum(low_a, low_b, out=workspace.get("mid", shape, device=on))
    low_high = torch.minimum(high_a, high_b, out=high_a)
    second = torch.minimum(mid, low_high, out=workspace.get("second", shape, device=on))
    return torch.minimum(low_a, low_b).add_(second), second, _ties(mid, low_high, workspace)


def _network(m: int) -> list[tuple[int, int]]:
    """Comparators of a sorting network for ``m`` inputs (optimal for 4, odd-even transposition else)."""
    if m == 4:
        return [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]
    return [(i, i + 1) for rnd in range(m) for i in range(rnd % 2, m - 1, 2)]
