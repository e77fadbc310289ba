"""Close in on the ``k``-th lowest score with as few probes as possible.

A probe (:mod:`workbench.pruner._backend.probes`) costs about one read of all scores, so the search aims
every probe with the best guess available:

- A pseudo-random sample of the scores (fixed seed), sorted, maps counts to values. The first probe
  goes to the sample's ``k/N`` quantile.
- Each later probe aims a little past the ``k``-th score, by about twice its expected miss,
  towards the side of the bracket that is still far, so the bracket closes from both sides.
  The aim interpolates in the sample's rank space, calibrated by the exact counts at the
  bracket's ends, so it follows the shape of the score distribution.
- When fewer than :data:`_LOCAL_MIN` sample points lie inside the bracket, a *local sample* is
  gathered from rows the per-row counts show to hold scores inside it. Tied scores are then in
  the sample and get probed exactly.
- A step that leaves more than three quarters of the bracket is followed by a split: the middle
  sample point inside, else the float just below the bracket's top (which settles a tie there
  in one probe), else the middle of the bracket's float32 keys.

The search stops when the top of the bracket holds exactly ``k`` scores, when at most
:data:`_FEW` scores lie inside the bracket and their rows hold at most a quarter of all scores
(they are then ranked directly), or when the bracket's keys are adjacent (every score inside ties).
"""

from __future__ import annotations

import math

import torch

from . import probes
from .probes import Counter, Point, from_key, key

_SAMPLE = 1 << 14  # points in the pseudo-random sample
_LOCAL_MIN = 32  # fewer sample points than this inside the bracket: gather a local sample
_LOCAL_ROWS = 256  # rows gathered for a local sample
_FEW = 1 << 15  # at most this many scores inside the bracket: stop and rank them directly
_GATHER_SHARE = 4  # ... and at most 1/4 of all scores in the rows that hold them
_MAX_PROBES = 16  # give up after this many probes (the caller then ranks another way)


class ThresholdSearch:
    """The bracket ``(low, high)`` around the ``k``-th lowest score of ``counter``'s tensors.

    Example:
        >>> import torch
        >>> from workbench.pruner._backend.probes import Counter
        >>> low, high = ThresholdSearch(Counter([torch.arange(10.)]), 4).run()
        >>> high.total
        4
    """

    def __init__(self, counter: Counter, k: int) -> None:
        self.counter, self.k = counter, k
        self.total = sum(f.numel() for f in counter.flat)
        # each in-bracket score can bring a whole row of ROW scores into the final ranking
        self.few = min(_FEW, max(64, self.total // (_GATHER_SHARE * probes.ROW)))
        self.sample = _sample(counter.flat, self.total)
        self.step = self.total / self.sample.numel()  # scores per sample point
        self.low: Point | None = None
        self.high: Point | None = None
        self.split_next = False
        self.local_for: tuple[int, int] | None = None  # the bracket keys the sample was gathered in
        self.tried_below_high = False  # the float just below ``high`` was probed for this sample
        self.one_sided_misses = 0

    def run(self) -> tuple[Point | None, Point] | None:
        """``(low, high)`` with ``low.total < k <= high.total``, or ``None`` past the probe budget.

        ``low`` is ``None`` only when ``high`` holds exactly ``k`` scores.
        """
        k = self.k
        self._add(self.counter.probe(self._value_at(k / self.step)))
        while True:
            low, high = self.low, self.high
            if high is not None and high.total == k:
                return low, high
            bracketed = low is not None and high is not None
            if bracketed and (high.total - low.total <= self.few or high.key - low.key <= 1):
                return low, high
            if self.counter.probes >= _MAX_PROBES:
                return None
            point = self._one_sided() if low is None or high is None else self._two_sided()
            if point is None:
                return None
            self._add(point)
            if low is not None and high is not None:
                self.split_next = not self.split_next and 4 * self._content() > 3 * (high.total - low.total)

    def _add(self, point: Point) -> None:
        if point.total < self.k:
            self.low = point
        else:
            self.high = point

    def _content(self) -> int:
        return self.high.total - self.low.total

    def _one_sided(self) -> Point | None:
        """Aim across ``k`` from the one known side (or take the virtual floor or top)."""
        k, low, high = self.k, self.low, self.high
        known = low if high is None else high
        reach = _margin(abs(known.total - k), self.step, 2.5 * 2**self.one_sided_misses, 1)
        self.one_sided_misses += 1
        target = k + reach if high is None else k - reach
        rank = self._rank(known.value) + (target - known.total) / self.step
        if high is None:
            if rank >= self.sample.numel() - 0.5:
                return self.counter.top()
            return self.counter.probe(max(self._value_at(rank), from_key(low.key + 1)))
        if rank < 0.5:
            return self.counter.floor()
        return self.counter.probe(min(self._value_at(rank), from_key(high.key - 1)))

    def _two_sided(self) -> Point:
        k, low, high = self.k, self.low, self.high
        if self._inside() < _LOCAL_MIN and self.local_for != (low.key, high.key):
            self._localize()
        inside = self._inside()
        if inside == 0 or self.split_next:
            return self.counter.probe(self._split(inside))
        below, above = k - low.total, high.total - k
        r_low, r_high = self._rank(low.value), self._rank(high.value)
        near, far = min(below, above), max(below, above)
        step = self._content() / max(r_high - r_low, 1)
        margin = min(_margin(near, step, 2.0, 0), far // 2)
        target = k + margin if above > below else k - margin
        share = (target + 0.5 - low.total) / self._content()
        value = self._value_at(r_low + share * (r_high - r_low))
        return self.counter.probe(from_key(min(max(key(value), low.key + 1), high.key - 1)))

    def _split(self, inside: int) -> float:
        low, high = self.low, self.high
        if inside > 0:
            return float(self.sample[self._rank(low.value) + (inside - 1) // 2])
        if not self.tried_below_high:
            self.tried_below_high = True
            return from_key(high.key - 1)
        return from_key((low.key + high.key) // 2)

    def _inside(self) -> int:
        """Sample points strictly between the bracket's ends."""
        return self._rank(self.high.value, right=False) - self._rank(self.low.value)

    def _localize(self) -> None:
        """Replace the sample by the scores inside the bracket found in evenly spaced rows."""
        low, high = self.low, self.high
        self.local_for = (low.key, high.key)
        candidates = [torch.nonzero(h != l).view(-1) for h, l in zip(high.rows, low.rows)]
        count = sum(c.numel() for c in candidates)
        every = max(1, count // _LOCAL_ROWS)
        values, seen = [], 0
        for f, rows in zip(self.counter.flat, candidates):
            chosen = rows[(-seen) % every :: every]
            seen += rows.numel()
            if chosen.numel():
                values.append(probes.inside_rows(f, chosen, low.value, high.value)[0])
        local = torch.sort(torch.cat(values)).values if values else self.sample[:0]
        if local.numel():
            self.sample = local
            self.tried_below_high = False

    def _rank(self, value: float, *, right: bool = True) -> int:
        """How many sample points are at or below ``value`` (below it, with ``right=False``)."""
        return int(torch.searchsorted(self.sample, torch.tensor([value]), right=right)[0])

    def _value_at(self, rank: float) -> float:
        """The value below which about ``rank`` sample points lie (linear between points)."""
        n = self.sample.numel()
        x = min(max(rank - 0.5, 0.0), n - 1.0)
        i = min(int(x), n - 2) if n > 1 else 0
        a = float(self.sample[i])
        b = float(self.sample[i + 1]) if n > 1 else a
        t = x - i
        if a == b or t <= 0.0:
            return a
        if not (math.isfinite(a) and math.isfinite(b)):  # -inf + (0 - -inf) * t would be NaN
            return a if t < 0.5 else b
        return a + (b - a) * t


def _sample(flat: list[torch.Tensor], total: int) -> torch.Tensor:
    """A sorted pseudo-random sample of about :data:`_SAMPLE` scores, in proportion per layer.

    Random rather than strided: scores have row and column structure (gradients of a batch are
    low-rank), which a regular stride aliases with. A fixed seed keeps the work deterministic.
    """
    if total <= _SAMPLE:
        return torch.sort(torch.cat(flat)).values
    generator = torch.Generator().manual_seed(0)
    parts = [f[torch.randint(f.numel(), (max(1, _SAMPLE * f.numel() // total),), generator=generator)] for f in flat]
    return torch.sort(torch.cat(parts)).values


def _margin(distance: int, scale: float, times: float, least: int) -> int:
    """How far past ``k`` to aim: ``times`` the expected miss of an aim ``distance`` away."""
    return max(int(times * math.sqrt(max(distance, 1) * scale)), least)
