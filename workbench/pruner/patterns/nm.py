"""N:M patterns ("2:4", "1:4", "5:8"): N of every M consecutive input weights are pruned.

Groups are M consecutive columns of the weight's 2-D view. A pruned group loses its N
lowest-scoring elements; a group's score is the sum of those N scores (what pruning it costs),
so the cheapest groups are pruned first. Target sparsity is at most N/M, reached when every
group is pruned; a ratio ``t`` prunes the fraction ``t * M / N`` of the groups.
Blockwise sparsity for N:M counts groups holding at least N zeros.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .. import kernels
from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..layout import Layout
from ..workspace import Workspace
from . import register_pattern
from .base import BasePattern
from .spec import PatternSpec

_FORM = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class NMSpec(PatternSpec):
    """An N:M pattern: ``n`` of every ``m`` consecutive weights pruned."""

    n: int
    m: int

    @property
    def max_sparsity(self) -> float:
        """N/M: every group pruned."""
        return self.n / self.m


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

    forms = "'N:M' (e.g. '2:4', '1:4', '5:8')"
    examples = ("2:4", "1:4", "5:8")
    spec: NMSpec

    def __init__(self, config: PrunerConfig, modules: dict, spec: NMSpec | None = None) -> None:
        super().__init__(config, modules, spec)
        self.n, self.m = self.spec.n, self.spec.m
        self._lowest: dict[str, torch.Tensor] = {}
        self._workspace: Workspace | None = None

    @classmethod
    def parse(cls, text: str) -> NMSpec | None:
        """``"2:4"`` -> ``NMSpec("2:4", n=2, m=4)``; ``None`` for other forms."""
        norm = text.strip().lower()
        match = _FORM.match(norm)
        if match is None:
            return None
        n, m = (int(g) for g in match.groups())
        if not 0 < n < m:
            raise ConfigError(f"pattern: {text!r} needs 0 < N < M for an N:M pattern")
        return NMSpec(norm, n, m)

    def check_layer(self, layout: Layout) -> str | None:
        m = self.spec.m
        if layout.cols % m:
            return f"2-D weight view {layout.rows}x{layout.cols} has {layout.cols} columns, not divisible by M={m}"
        return None

    def unit_ratio(self, ratio: float) -> float:
        return ratio * self.m / self.n

    def reduce(self, name: str, elem2d: torch.Tensor) -> torch.Tensor:
        return elem2d

    def get_masks(self, scores, ratio, pre_masks):
        self._workspace = Workspace()  # scratch shared by this update's layers, freed after it
        try:
            return super().get_masks(scores, ratio, pre_masks)
        finally:
            self._workspace = None

    def unit_scores(self, name: str, stored: torch.Tensor) -> torch.Tensor:
        score, lowest = _lowest_n(stored.float(), self.n, self.m, self._workspace)
        self._lowest[name] = lowest
        return score

    def mask_from_units(self, name: str, units: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
        lowest = self._lowest.pop(name, None)
        if lowest is None:
            _, lowest = _lowest_n(stored.float(), self.n, self.m, self._workspace)
        layout = self.layouts[name]
        return _and_per_group(lowest, units.reshape(-1)).view(layout.rows, layout.cols)

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


def _lowest_n(
    scores2d: torch.Tensor, n: int, m: int, workspace: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group of ``m`` columns: the sum of its ``n`` lowest scores and which they are.

    For ``m <= 8`` a sorting network over the ``m`` strided columns (a few dozen vector min/max
    operations, eight for 2:4) finds each group's n-th lowest score; that is
    far faster on CPU than sorting millions of tiny rows. One broadcast comparison then marks
    the scores at or below it. Ties at the n-th score go to the lower index. For 2:4 the
    compiled kernel (:func:`workbench.pruner.kernels.two_of_four`) does all of this in one pass
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


def _and_per_group(lowest: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
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
    ones = workspace.get("ones", tuple(groups.shape))
    return torch.le(groups, threshold.unsqueeze(1), out=ones).to(torch.bool)


def _stable_lowest(groups: torch.Tensor, n: int) -> torch.Tensor:
    """Bool ``[groups, m]``: each group's ``n`` lowest scores, ties to the lower index (argsort)."""
    order = groups.argsort(dim=1, stable=True)[:, :n]
    return torch.zeros(groups.shape, dtype=torch.bool).scatter_(1, order, True)


def _ties(nth: torch.Tensor, next_: torch.Tensor, workspace: Workspace) -> torch.Tensor | None:
    """Indices of the groups whose n-th and (n+1)-th lowest scores are equal, or ``None``."""
    equal = torch.eq(nth, next_, out=workspace.get("tied", tuple(nth.shape)))
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
    shape = tuple(x0.shape)
    low_a = torch.minimum(x0, x1, out=workspace.get("low_a", shape))
    low_b = torch.minimum(x2, x3, out=workspace.get("low_b", shape))
    high_a = torch.maximum(x0, x1, out=workspace.get("high_a", shape))
    high_b = torch.maximum(x2, x3, out=workspace.get("high_b", shape))
    mid = torch.maximum(low_a, low_b, out=workspace.get("mid", shape))
    low_high = torch.minimum(high_a, high_b, out=high_a)
    second = torch.minimum(mid, low_high, out=workspace.get("second", shape))
    return torch.minimum(low_a, low_b).add_(second), second, _ties(mid, low_high, workspace)


def _network(m: int) -> list[tuple[int, int]]:
    """Comparators of a sorting network for ``m`` inputs (optimal for 4, odd-even transposition else)."""
    if m == 4:
        return [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]
    return [(i, i + 1) for rnd in range(m) for i in range(rnd % 2, m - 1, 2)]
