"""NxM block patterns: "4x1", "2x2", "1x1" (unstructured), "channelx1", "1xchannel".

A block is N rows (output channels) by M columns of the weight's 2-D view and is kept or
pruned whole. "channel" on a side means the block spans that whole dimension: "channelx1"
prunes whole columns (one input position for all outputs), "1xchannel" whole rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from ..layout import Layout
from . import register_pattern
from .base import BasePattern
from .spec import BLOCKS, CHANNELS, PatternSpec

_FORM = re.compile(r"^(\d+|channel)x(\d+|channel)$")


@dataclass(frozen=True)
class NxMSpec(PatternSpec):
    """An NxM block pattern: ``n`` rows by ``m`` columns (``"channel"`` = the whole dimension)."""

    n: int | str
    m: int | str

    @property
    def features(self) -> frozenset[str]:  # type: ignore[override]
        """Blocks; whole channels as well when one side is ``"channel"``."""
        return frozenset({BLOCKS, CHANNELS}) if "channel" in (self.n, self.m) else frozenset({BLOCKS})

    def posttraining_form(self) -> tuple[str, int, int]:
        """Unstructured for ``1x1``, else whole blocks (``0`` for a ``"channel"`` side)."""
        n, m = (0 if v == "channel" else int(v) for v in (self.n, self.m))
        return ("unstructured" if (n, m) == (1, 1) else "block", n, m)


@register_pattern("NxM")
class NxMPattern(BasePattern):
    """Blocks of N rows by M columns, scored by the reduction of their elements' scores.

    The block score reduction is ``criterion_reduce_type``: "mean" (default), "sum" or "max".
    Every block is a unit: the family is :meth:`parse` and :meth:`block`; the base class derives
    the rest (layer check, scores, masks, counts) from the block.

    Example:
        >>> import torch
        >>> from workbench.pruner.patterns import get_pattern
        >>> p = get_pattern({"pattern": "4x1"}, {"fc": torch.nn.Linear(8, 8)})
        >>> p.num_units("fc")
        16
    """

    forms = "'NxM' (e.g. '4x1', '1x1', '2x2', 'channelx1', '1xchannel')"
    examples = ("4x1", "1x1", "2x2", "channelx1", "1xchannel")
    spec: NxMSpec

    @classmethod
    def parse(cls, text: str) -> NxMSpec | None:
        """``"4x1"`` -> ``NxMSpec("4x1", n=4, m=1)``; ``None`` for other forms."""
        norm = text.strip().lower()
        match = _FORM.match(norm)
        if match is None:
            return None
        n, m = (g if g == "channel" else int(g) for g in match.groups())
        if n == "channel" and m == "channel":
            raise ConfigError(f"pattern: {text!r} is not allowed; at most one side may be 'channel'")
        if 0 in (n, m):
            raise ConfigError(f"pattern: {text!r} has a zero-sized block; N and M must be >= 1")
        return NxMSpec(norm, n, m)

    def block(self, name_or_layout: str | Layout) -> tuple[int, int]:
        """``(rows, cols)`` of one block of the layer."""
        layout = self.layouts[name_or_layout] if isinstance(name_or_layout, str) else name_or_layout
        n, m = self.spec.n, self.spec.m
        return (layout.rows if n == "channel" else n, layout.cols if m == "channel" else m)
