"""NxM block patterns: "4x1", "2x2", "1x1" (unstructured), "channelx1", "1xchannel".

A block is N rows (output channels) by M columns of the weight's 2-D view and is kept or
pruned whole. "channel" on a side means the block spans that whole dimension: "channelx1"
prunes whole columns (one input position for all outputs), "1xchannel" whole rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .. import _backend
from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..layout import Layout
from . import register_pattern
from .base import BasePattern, _as_uint8
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


@register_pattern("NxM")
class NxMPattern(BasePattern):
    """Blocks of N rows by M columns, scored by the reduction of their elements' scores.

    The block score reduction is ``criterion_reduce_type``: "mean" (default), "sum" or "max".

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

    def __init__(self, config: PrunerConfig, modules: dict, spec: NxMSpec | None = None) -> None:
        self.reduce_type = config.criterion_reduce_type
        super().__init__(config, modules, spec)

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

    def check_layer(self, layout: Layout) -> str | None:
        """Divisibility; for a grouped convolution, blocks must not span output channels of
        different groups (their columns would be different inputs): ``1xchannel`` and blocks of
        rows dividing the outputs per group apply, ``channelx1`` and taller blocks do not."""
        bn, bm = self.block(layout)
        if layout.rows % bn or layout.cols % bm:
            return f"2-D weight view {layout.rows}x{layout.cols} is not divisible by the {self.pattern} block {bn}x{bm}"
        per_group = layout.rows // layout.groups
        if layout.groups > 1 and per_group % bn:
            return (
                f"grouped convolution (groups={layout.groups}, {per_group} output channels per group): a "
                f"{self.pattern} block of {bn} rows would span groups, whose columns are different inputs"
            )
        return None

    def row_multiple(self, name: str) -> int:
        """Score row chunks hold whole blocks: a multiple of the block's rows."""
        return self.block(name)[0]

    def grid(self, name: str, rows: int) -> tuple[int, int, int, int]:
        """``(block rows, N, block columns, M)`` of ``rows`` rows of the layer's 2-D view."""
        bn, bm = self.block(name)
        return rows // bn, bn, self.layouts[name].cols // bm, bm

    def reduce(self, name: str, elem2d: torch.Tensor) -> torch.Tensor:
        return _backend.reduce_blocks(elem2d, *self.block(name), self.reduce_type)

    def row_sum_block(self, name: str) -> tuple[int, bool] | None:
        """Nx1 blocks summed in row order (``_backend.row_order_blocks``: 2 to 16 rows, "mean" or "sum")."""
        bn, bm = self.block(name)
        if not _backend.row_order_blocks(bn, bm, self.reduce_type):
            return None
        return bn, self.reduce_type == "mean"

    def score_block(self, name: str) -> tuple[tuple[int, int], str]:
        """The layer's blocks, reduced by ``criterion_reduce_type``."""
        return self.block(name), self.reduce_type

    def unit_scores(self, name: str, stored: torch.Tensor, workspace: _backend.Workspace) -> tuple[torch.Tensor, None]:
        r, _, c, _ = self.grid(name, self.layouts[name].rows)
        return (stored if stored.shape == (r, c) else self.reduce(name, stored)), None

    def mask_from_units(self, name: str, units: torch.Tensor, detail: None) -> torch.Tensor:
        return units

    def num_units(self, name: str) -> int:
        r, _, c, _ = self.grid(name, self.layouts[name].rows)
        return r * c

    def pruned_units(self, name: str, pruned: torch.Tensor) -> int:
        return int(torch.count_nonzero(pruned))

    def expand(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        layout = self.layouts[name]
        r, bn, c, bm = self.grid(name, layout.rows)
        full = pruned.view(r, 1, c, 1).expand(r, bn, c, bm).reshape(layout.rows, layout.cols)
        return layout.from_2d(full)

    def keep_factor(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        """Block-sized keep mask in the weight's dtype for multi-element blocks of 2-D weights, else uint8."""
        layout = self.layouts[name]
        r, bn, c, bm = self.grid(name, layout.rows)
        if not layout.is_2d:
            return _as_uint8(~self.expand(name, pruned))
        keep = ~pruned.view(r, 1, c, 1)
        return _as_uint8(keep) if bn * bm == 1 else keep.to(self.modules[name].weight.dtype)

    def apply_factor(self, name: str, weight: torch.Tensor, factor: torch.Tensor) -> None:
        layout = self.layouts[name]
        if layout.is_2d:
            r, bn, c, bm = self.grid(name, layout.rows)
            weight.view(r, bn, c, bm).mul_(factor)
        else:
            weight.mul_(factor)

    def zero_compiled(self, weights: dict[str, torch.Tensor], pruned: dict[str, torch.Tensor]) -> set[str]:
        """Every block shape on every layer the kernels take, straight from the block mask (no
        full-size factor is built or kept for those)."""
        zeroed = super().zero_compiled(weights, pruned)
        for name, mask in pruned.items():
            if name in zeroed or self.layouts[name].transposed:  # the kernels read [out, in] weights
                continue
            bn, bm = self.block(name)
            layout, weight = self.layouts[name], weights[name]
            flat = layout.memory_view(weight) if bm == 1 else None
            if flat is not None and _backend.zero_by_mask(flat, mask, block_rows=bn):
                zeroed.add(name)
            elif _backend.zero_blocks(weight, mask.reshape(self.grid(name, layout.rows)[::2]), (bn, bm)):
                zeroed.add(name)
        return zeroed

    def pruned_from_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        layout = self.layouts[name]
        r, bn, c, bm = self.grid(name, layout.rows)
        nonzero = (layout.to_2d(weight.detach()) != 0).reshape(r, bn, c, bm)
        return ~nonzero.any(dim=3).any(dim=1)

    def zero_units(self, name: str, weight: torch.Tensor) -> tuple[int, int]:
        return int(torch.count_nonzero(self.pruned_from_weight(name, weight))), self.num_units(name)
