"""N:M patterns ("2:4", "1:4", "5:8"): N of every M consecutive input weights are pruned.

Groups are M consecutive columns of the weight's 2-D view. A pruned group loses its N
lowest-scoring elements; a group's score is the sum of those N scores (what pruning it costs),
so the cheapest groups are pruned first. Target sparsity is at most N/M, reached when every
group is pruned; a ratio ``t`` prunes the fraction ``t * M / N`` of the groups.
Blockwise sparsity for N:M counts groups holding at least N zeros.
"""
from __future__ import annotations

import torch

from ..layout import Layout
from . import register_pattern
from .base import BasePattern


@register_pattern("N:M")
class NMPattern(BasePattern):
    """N of every M consecutive weights along the input dimension are pruned.

    Example:
        >>> import torch
        >>> from workbench.pruner.patterns import get_pattern
        >>> p = get_pattern({"pattern": "2:4", "target_sparsity": 0.5}, {"fc": torch.nn.Linear(8, 4)})
        >>> p.num_units("fc")
        8
    """

    def __init__(self, config: dict, modules: dict) -> None:
        super().__init__(config, modules)
        self.n, self.m = int(self.spec.n), int(self.spec.m)
        self._lowest: dict[str, torch.Tensor] = {}

    def check_layer(self, layout: Layout) -> str | None:
        m = int(self.spec.m)
        if layout.cols % m:
            return f"2-D weight view {layout.rows}x{layout.cols} has {layout.cols} columns, not divisible by M={m}"
        return None

    def unit_ratio(self, ratio: float) -> float:
        return ratio * self.m / self.n

    def reduce(self, name: str, elem2d: torch.Tensor) -> torch.Tensor:
        return elem2d

    def unit_scores(self, name: str, stored: torch.Tensor) -> torch.Tensor:
        score, lowest = _lowest_n(stored.float(), self.n, self.m)
        self._lowest[name] = lowest
        return score

    def mask_from_units(self, name: str, units: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
        lowest = self._lowest.pop(name, None)
        if lowest is None:
            _, lowest = _lowest_n(stored.float(), self.n, self.m)
        layout = self.layouts[name]
        flat_units = units.reshape(-1)
        return torch.stack([p & flat_units for p in lowest], dim=1).view(layout.rows, layout.cols)

    def num_units(self, name: str) -> int:
        layout = self.layouts[name]
        return layout.rows * layout.cols // self.m

    def pruned_units(self, name: str, pruned: torch.Tensor) -> int:
        return int(torch.count_nonzero(pruned)) // self.n

    def expand(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        return self.layouts[name].from_2d(pruned)

    def pruned_from_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        return self.layouts[name].to_2d(weight.detach()) == 0

    def zero_units(self, name: str, weight: torch.Tensor) -> tuple[int, int]:
        zeros = self.pruned_from_weight(name, weight).view(-1, self.m)
        full = torch.count_nonzero(torch.count_nonzero(zeros, dim=1) >= self.n)
        return int(full), self.num_units(name)


def _lowest_n(scores2d: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group of ``m`` columns: the sum of its ``n`` lowest scores and which they are.

    For ``m <= 8`` a sorting network over the ``m`` strided columns (5 comparators for m=4,
    odd-even transposition otherwise: a few dozen vector min/max operations) finds each group's
    n-th lowest score; that is far faster on CPU than sorting millions of tiny rows. Ties at
    the n-th score go to the lower index. Returns ``(group_scores [rows, cols/m], lowest [rows, cols/m, m])``.
    """
    rows = scores2d.shape[0]
    groups = scores2d.reshape(-1, m)
    if m > 8:
        order = groups.argsort(dim=1, stable=True)
        lowest = torch.zeros(groups.shape, dtype=torch.bool).scatter_(1, order[:, :n], True)
        score = torch.where(lowest, groups, 0.0).sum(dim=1)
        return score.view(rows, -1), list(lowest.unbind(dim=1))
    cols = [groups[:, i] for i in range(m)]
    score, threshold = _two_of_four(cols) if (n, m) == (2, 4) else _sorted_prefix(cols, n, m)
    picked = [c <= threshold for c in cols]
    # every group has >= n scores <= its n-th lowest, so the total is n per group exactly when no ties
    if sum(int(torch.count_nonzero(p)) for p in picked) != n * groups.shape[0]:
        picked = _break_ties(cols, threshold, n)  # several scores equal the n-th lowest: take them by index
    return score.view(rows, -1), picked


def _sorted_prefix(cols: list[torch.Tensor], n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the n lowest, n-th lowest) per group, through a sorting network over the columns."""
    ordered = list(cols)
    for i, j in _network(m):
        a, b = ordered[i], ordered[j]
        ordered[i], ordered[j] = torch.minimum(a, b), torch.maximum(a, b)
    score = ordered[0].clone()
    for extra in ordered[1:n]:
        score += extra
    return score, ordered[n - 1]


def _two_of_four(cols: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """2:4 with 8 vector ops instead of a full network's 10: the lowest is the lower of the two
    pair minima; the second lowest is the lower of (the higher pair minimum, the lower pair maximum)."""
    x0, x1, x2, x3 = cols
    low_a, low_b = torch.minimum(x0, x1), torch.minimum(x2, x3)
    high_a, high_b = torch.maximum(x0, x1), torch.maximum(x2, x3)
    second = torch.minimum(torch.maximum(low_a, low_b), torch.minimum(high_a, high_b))
    return torch.minimum(low_a, low_b).add_(second), second


def _network(m: int) -> list[tuple[int, int]]:
    """Comparators of a sorting network for ``m`` inputs (optimal for 4, odd-even transposition else)."""
    if m == 4:
        return [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]
    return [(i, i + 1) for rnd in range(m) for i in range(rnd % 2, m - 1, 2)]


def _break_ties(cols: list[torch.Tensor], threshold: torch.Tensor, n: int) -> list[torch.Tensor]:
    below = [c < threshold for c in cols]
    need = torch.full_like(threshold, n, dtype=torch.int8)
    for b in below:
        need -= b.to(torch.int8)
    picked = []
    for c, b in zip(cols, below):
        take = (c == threshold) & (need > 0)
        need -= take.to(torch.int8)
        picked.append(b | take)
    return picked
