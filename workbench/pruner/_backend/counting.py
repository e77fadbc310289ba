"""The ``k`` lowest scores over several tensors, found by counting below candidate values.

Sorting or ``kthvalue`` over millions of scores costs several dense training steps on CPU, and
so do bool comparisons and boolean indexing over all of them. Here the threshold is found by
probes (:mod:`workbench.pruner._backend.probes`, each about one vectorised read of the scores) that a
search aims (:mod:`workbench.pruner._backend.threshold_search`); only the few scores left inside the
final bracket are gathered and ranked. The masks are exact: ties are taken in layer order, then
in flat index order (as in :mod:`workbench.pruner._backend.selection`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .probes import Counter, Point
from .threshold_search import ThresholdSearch


class Counted:
    """A counting selection: the count per layer now, the bool masks when asked for.

    Building the masks is one more pass over every score; a caller that needs only the counts
    (a round of capping in :mod:`workbench.pruner._backend.selection`) never pays for it.

    Attributes:
        counts: How many scores are selected in each layer.
    """

    __slots__ = ("_build", "counts")

    def __init__(self, counts: list[int], build: Callable[[], list[torch.Tensor]]) -> None:
        self.counts, self._build = counts, build

    def masks(self) -> list[torch.Tensor]:
        """Per layer, a new bool tensor: ``True`` where selected."""
        return self._build()


def select_by_counting(flat: list[torch.Tensor], k: int) -> tuple[list[torch.Tensor], list[int]] | None:
    """Bool masks of the ``k`` lowest scores over 1-D float tensors, and the count per layer.

    Returns ``None`` when this method does not apply (see :func:`count_lowest`).

    Example:
        >>> import torch
        >>> masks, counts = select_by_counting([torch.tensor([3., 1.]), torch.tensor([2., 0.])], 2)
        >>> counts, masks[1].tolist()
        ([1, 1], [False, True])
    """
    counted = count_lowest(flat, k)
    return None if counted is None else (counted.masks(), counted.counts)


def count_lowest(flat: list[torch.Tensor], k: int) -> Counted | None:
    """How many of the ``k`` lowest scores over 1-D float tensors each layer holds.

    Returns ``None`` when this method does not apply: float64 scores, a non-finite score where
    the search needs the lowest or highest score, or a distribution so lumpy that the probe
    budget runs out. The caller then ranks the scores another way.

    Example:
        >>> import torch
        >>> count_lowest([torch.tensor([3., 1.]), torch.tensor([2., 0.])], 3).counts
        [1, 2]
    """
    if any(f.dtype not in (torch.float32, torch.float16, torch.bfloat16) for f in flat):
        return None
    flat = [f if f.dtype == torch.float32 else f.float() for f in flat]
    total = sum(f.numel() for f in flat)
    if k <= 0 or k >= total:
        return Counted([f.numel() if k > 0 else 0 for f in flat], lambda: [torch.full(f.shape, k > 0) for f in flat])
    counter = Counter(flat)
    bracket = ThresholdSearch(counter, k).run()
    if bracket is None:
        return None
    low, high = bracket
    if high.total == k:
        return Counted(list(high.counts), lambda: counter.masks([high.value] * len(flat)))
    if high.key - low.key <= 1:
        return _split_ties(counter, k, low, high)
    return _rank_few(counter, k, low, high)


def _rank_few(counter: Counter, k: int, low: Point, high: Point) -> Counted:
    """Rank the few scores in ``(low, high]``, gathered from the rows whose counts differ."""
    values, positions, layers = [], [], []
    for i, (value, position) in enumerate(counter.between(low, high)):
        values.append(value)
        positions.append(position)
        layers.append(torch.full((value.numel(),), i))
    taken_layers, taken_positions = _first(torch.cat(values), torch.cat(layers), torch.cat(positions), k - low.total)
    mine = [taken_positions[taken_layers == i] for i in range(len(counter.flat))]

    def build() -> list[torch.Tensor]:
        masks = counter.masks([low.value] * len(counter.flat))
        for mask, positions in zip(masks, mine):
            mask[positions] = True
        return masks

    return Counted([below + m.numel() for below, m in zip(low.counts, mine)], build)


def _first(values: torch.Tensor, layers: torch.Tensor, positions: torch.Tensor, need: int):
    """Layers and positions of the ``need`` lowest values, ties in the given (layer, index) order.

    ``kthvalue`` and two comparisons instead of a stable sort (several times faster here).
    """
    threshold = torch.kthvalue(values, need).values
    less = values < threshold
    ties = torch.nonzero(values == threshold).view(-1)[: need - int(less.sum())]
    taken = torch.cat([torch.nonzero(less).view(-1), ties])
    return layers[taken], positions[taken]


def _split_ties(counter: Counter, k: int, low: Point, high: Point) -> Counted:
    """Every score in ``(low, high]`` equals ``high.value``: take the ties by layer, then index."""
    left, takes = k - low.total, []
    for below, upto in zip(low.counts, high.counts):
        takes.append(min(upto - below, left))
        left -= takes[-1]
    inside = [upto - below for below, upto in zip(low.counts, high.counts)]

    def build() -> list[torch.Tensor]:
        masks = counter.masks([high.value if t == n else low.value for t, n in zip(takes, inside)])
        for f, mask, take, n in zip(counter.flat, masks, takes, inside):
            if 0 < take < n:
                take_ties(mask, f, high.value, take)
        return masks

    return Counted([below + take for below, take in zip(low.counts, takes)], build)


def take_ties(mask: torch.Tensor, f: torch.Tensor, value: float, take: int) -> None:
    """Select, in ``mask``, the first ``take`` entries of ``f`` (by flat index) equal to ``value``."""
    mask[torch.nonzero(f == value).view(-1)[:take]] = True
