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

from .. import _backend
from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..layout import Layout
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

    @property
    def fixed_sparsity(self) -> float:
        """N/M: a group satisfies the pattern when N of its M weights are zero."""
        return self.n / self.m

    def posttraining_form(self) -> tuple[str, int, int]:
        """The N lowest of every M consecutive input weights of a row."""
        return ("nm", self.n, self.m)


@register_pattern("N:M")
class NMPattern(BasePattern):
    """N of every M consecutive weights along the input dimension are pruned.

    Scores and masks are element-level (the default 1 x 1 block); a unit is a group of M, scored
    by its N lowest elements, so the family overrides the scoring and counting of units.

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
        if layout.groups > 1 and layout.shape[1] % m:
            return (
                f"grouped convolution (groups={layout.groups}): M={m} does not divide its {layout.shape[1]} "
                "input channels per group, so a group of M would mix kernel positions"
            )
        if layout.cols % m:
            return f"2-D weight view {layout.rows}x{layout.cols} has {layout.cols} columns, not divisible by M={m}"
        return None

    def unit_ratio(self, ratio: float) -> float:
        return ratio * self.m / self.n

    def unit_scores(
        self, name: str, stored: torch.Tensor, workspace: _backend.Workspace
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each group's score and, as the detail, its ``n`` lowest elements ``[groups, m]``."""
        return _backend.lowest_n_per_group(stored.float(), self.n, self.m, workspace)

    def pruned_from_units(self, name: str, units: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        layout = self.layouts[name]
        return _backend.mask_groups(detail, units.reshape(-1)).view(layout.rows, layout.cols)

    def num_units(self, name: str) -> int:
        layout = self.layouts[name]
        return layout.rows * layout.cols // self.m

    def pruned_units(self, name: str, pruned: torch.Tensor) -> int:
        return int(torch.count_nonzero(pruned)) // self.n

    def zero_units(self, name: str, weight: torch.Tensor) -> tuple[int, int]:
        zeros = self.pruned_from_weight(name, weight).reshape(-1, self.m)  # a copy if the weight is a strided view
        full = torch.count_nonzero(torch.count_nonzero(zeros, dim=1) >= self.n)
        return int(full), self.num_units(name)
