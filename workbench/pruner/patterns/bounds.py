"""Per-layer bounds of a global ranking: ``min_sparsity_ratio_per_op`` as unit counts.

Example:
    >>> unit_floors([2.0, 2.0], hi=[4, 4], k=2, sizes=[1, 1])  # floors of 2 + 2 shrink to fit k = 2
    [1, 1]
"""

from __future__ import annotations

import math

__all__ = ["unit_floors"]


def unit_floors(wanted: list[float], hi: list[int], k: int, sizes: list[int]) -> list[int]:
    """Per-layer minimum unit counts (``min_sparsity_ratio_per_op``) whose units (``sizes``
    weights each) never add up to more than ``k`` weights.

    While the schedule asks for less than the floors sum to (early pruning steps, or a
    target below the minimum), the floors shrink in proportion, so the total stays exact.
    """
    lo = [min(math.ceil(w - 1e-9), h) for w, h in zip(wanted, hi)]
    total = sum(l * s for l, s in zip(lo, sizes))
    if total > max(k, 0):
        lo = [math.floor(l * max(k, 0) / total) for l in lo]
    return lo
