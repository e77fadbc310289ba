"""The pattern base class: which layers fit, and how scores become masks (global or local).

A pattern splits every layer's 2-D weight view into *units*: blocks for NxM, groups of M
for N:M. Criteria give scores, the pattern turns them into one score per unit, and
:meth:`BasePattern.select_pruned` prunes the lowest-scoring units so the pruner's layers reach the
scheduled sparsity, either with one ranking over all layers (global scope) or per layer.

Masks are stored as *pruned* bool tensors at the pattern's own resolution (block-sized for NxM,
element-sized for N:M); :meth:`expand` gives the weight-shaped view.
"""

from __future__ import annotations

import abc
import logging
import math
import warnings
from typing import ClassVar

import torch
from torch import nn

from .. import _backend
from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..layout import Layout, layout_of
from .bounds import unit_floors
from .spec import PatternSpec

logger = logging.getLogger(__name__)


OLD_NAMES_REMOVED_IN = "0.2.0"
"""The release that removes the method names before 0.1.0 (``get_masks``, ``empty_mask``,
``mask_from_units``): their masks were *pruned* masks under a name that reads as kept."""


class BasePattern(abc.ABC):
    """Base class of pruning patterns (the unit of pruning, e.g. a 4x1 block or an N:M group).

    The contract of a family is its semantics, and only :meth:`parse` is required:

    * :meth:`parse` (its own pattern strings -> a :class:`PatternSpec`, which states the maximum
      sparsity and the features), :attr:`forms` and :attr:`examples` (for messages and the
      ``list_*`` queries);
    * :meth:`block`: the ``(rows, cols)`` of the 2-D weight view that one stored score and one
      mask entry cover (``(1, 1)``, element level, unless the family says otherwise);
    * :meth:`check_layer` (which layers fit), :meth:`unit_scores` (one score per unit, lower is
      pruned first) and :meth:`pruned_from_units` (the chosen units -> the pruned mask), with
      :meth:`num_units`, :meth:`pruned_units`, :meth:`unit_ratio` and :meth:`zero_units` to count
      units.

    Each of those has a generic default derived from the block: every block is a unit, the block
    divides the layer. A family whose units are blocks defines :meth:`parse` and :meth:`block`;
    one whose units are something else (N:M groups) overrides the scoring and counting methods.
    Scores and masks at the block's resolution, :meth:`expand`, :meth:`pruned_from_weight`, the
    selection in :meth:`select_pruned` and the zeroing in :meth:`apply_all` (with the private
    backend's kernel dispatch and mask-cache policy) are the base's and derive from the block.
    Nothing computed for one call of :meth:`select_pruned` is kept on the object for the next.

    Args:
        config: A resolved pruner config (see :func:`workbench.pruner.resolve_config`).
        modules: ``{name: module}`` of the candidate layers; layers whose shape does not fit
            the pattern are moved to :attr:`invalid_layers` with the reason.
        spec: The parsed ``config.pattern``; parsed by :meth:`parse` when not given.

    Attributes:
        pattern: The pattern string, e.g. ``"4x1"``.
        reduce_type: How a block's element scores become its score (``criterion_reduce_type``).
        is_global: Whether one ranking covers all layers (``pruning_scope == "global"``).
        keep_mask_layers: Layers whose mask is frozen (they hit ``max_sparsity_ratio_per_op``).
        invalid_layers: ``{name: reason}`` of layers skipped because of their shape.
        modules: The valid layers.
    """

    forms: ClassVar[str] = ""
    """The accepted forms, for error messages, e.g. ``"'N:M' (e.g. '2:4')"``."""
    examples: ClassVar[tuple[str, ...]] = ()
    """A few valid pattern strings of the family."""
    spec: PatternSpec

    def __init__(self, config: PrunerConfig, modules: dict[str, nn.Module], spec: PatternSpec | None = None) -> None:
        self.config = config
        parsed = spec if spec is not None else self.parse(config.pattern)
        if parsed is None:
            raise ConfigError(
                f"pattern: {config.pattern!r} is not a {type(self).__name__}; allowed forms: {self.forms}"
            )
        self.spec = parsed
        self.pattern = self.spec.text
        self.reduce_type = config.criterion_reduce_type
        self.is_global = config.pruning_scope == "global"
        self.target_sparsity = config.target_sparsity
        self.max_sparsity_ratio_per_op = config.max_sparsity_ratio_per_op
        self.min_sparsity_ratio_per_op = config.min_sparsity_ratio_per_op
        self.keep_mask_layers: dict[str, bool] = {}
        self.invalid_layers: dict[str, str] = {}
        self.layouts: dict[str, Layout] = {}
        self.modules: dict[str, nn.Module] = {}
        for name, module in modules.items():
            layout = layout_of(module)
            reason = self.check_layer(layout)
            if reason:
                self.invalid_layers[name] = reason
                logger.warning("layer %s is not pruned: %s", name, reason)
                continue
            self.layouts[name] = layout
            self.modules[name] = module

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Accept a family written against the names before 0.1.0 (``mask_from_units``), with a
        FutureWarning naming the release that removes them (:data:`OLD_NAMES_REMOVED_IN`)."""
        super().__init_subclass__(**kwargs)
        if "mask_from_units" in cls.__dict__ and "pruned_from_units" not in cls.__dict__:
            warnings.warn(
                f"{cls.__name__}.mask_from_units is deprecated since 0.1.0 and will be removed in "
                f"{OLD_NAMES_REMOVED_IN}; rename it pruned_from_units (it returns the pruned units' mask)",
                FutureWarning,
                stacklevel=2,
            )
            cls.pruned_from_units = cls.__dict__["mask_from_units"]  # type: ignore[method-assign]

    # ---- the contract: what a family defines (everything but parse has a default) ---------
    @classmethod
    @abc.abstractmethod
    def parse(cls, text: str) -> PatternSpec | None:
        """The spec of ``text`` if it is this family's form, else ``None``; a string of the
        family's form with bad values raises :class:`~workbench.pruner.ConfigError`."""

    def block(self, name_or_layout: str | Layout) -> tuple[int, int]:
        """``(rows, cols)`` of the 2-D view covered by one stored score and one mask entry of the
        layer (a name of a valid layer, or a layout being checked). ``(1, 1)`` here."""
        return (1, 1)

    def check_layer(self, layout: Layout) -> str | None:
        """Why a layer of this layout cannot take the pattern, or ``None`` if it can. Here: the
        block must divide the 2-D view, and for a grouped convolution must not span output
        channels of different groups (their columns would be different inputs)."""
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

    def unit_scores(
        self, name: str, stored: torch.Tensor, workspace: _backend.Workspace
    ) -> tuple[torch.Tensor, object]:
        """Stored scores -> ``(one score per unit (lower is pruned first), detail)``; ``detail``
        is what :meth:`pruned_from_units` needs besides the chosen units (``None`` if nothing).
        ``workspace`` holds scratch memory shared by the layers of one :meth:`select_pruned` call.
        Here: every block is a unit, scored by its stored score."""
        r, _, c, _ = self.grid(name, self.layouts[name].rows)
        return (stored if stored.shape == (r, c) else self.reduce(name, stored)), None

    def pruned_from_units(self, name: str, units: torch.Tensor, detail: object) -> torch.Tensor:
        """Pruned units (and :meth:`unit_scores`'s ``detail``) -> the pruned mask at the
        pattern's resolution (one entry per block). Here: the units are the blocks."""
        return units

    def num_units(self, name: str) -> int:
        """How many units the layer has (here: its blocks)."""
        r, _, c, _ = self.grid(name, self.layouts[name].rows)
        return r * c

    def pruned_units(self, name: str, pruned: torch.Tensor) -> int:
        """How many units a pruned mask prunes (here: its set entries)."""
        return int(torch.count_nonzero(pruned))

    def unit_ratio(self, ratio: float) -> float:
        """Element sparsity ratio -> fraction of units to prune (here: the same)."""
        return ratio

    def zero_units(self, name: str, weight: torch.Tensor) -> tuple[int, int]:
        """``(pruned units, all units)`` measured on the weight (for blockwise reporting)."""
        return int(torch.count_nonzero(self.pruned_from_weight(name, weight))), self.num_units(name)

    # ---- derived from the block ------------------------------------------------------------
    def grid(self, name: str, rows: int) -> tuple[int, int, int, int]:
        """``(block rows, N, block columns, M)`` of ``rows`` rows of the layer's 2-D view."""
        bn, bm = self.block(name)
        return rows // bn, bn, self.layouts[name].cols // bm, bm

    def reduce(self, name: str, elem2d: torch.Tensor) -> torch.Tensor:
        """Element scores of (a row range of) the 2-D view -> one score per block, by
        :attr:`reduce_type` (the element scores themselves for 1x1 blocks)."""
        return _backend.reduce_blocks(elem2d, *self.block(name), self.reduce_type)

    def unit_size(self, name: str) -> int:
        """Weights per unit of the layer. Global scope counts weights, not units, when this
        differs between layers (channel patterns), so pruned units add up to the target."""
        layout = self.layouts[name]
        return layout.rows * layout.cols // self.num_units(name)

    def expand(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        """A weight-shaped bool view of the pruned mask (``True`` = zeroed)."""
        layout = self.layouts[name]
        bn, bm = self.block(name)
        if bn == bm == 1:
            return layout.from_2d(pruned)
        r, c = layout.rows // bn, layout.cols // bm
        return layout.from_2d(pruned.view(r, 1, c, 1).expand(r, bn, c, bm).reshape(layout.rows, layout.cols))

    def pruned_from_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """The pruned mask implied by the weights' current zeros (a block is pruned when all its
        weights are zero; for pattern lock and resume)."""
        layout = self.layouts[name]
        bn, bm = self.block(name)
        if bn == bm == 1:
            return layout.to_2d(weight.detach()) == 0
        r, c = layout.rows // bn, layout.cols // bm
        nonzero = (layout.to_2d(weight.detach()) != 0).reshape(r, bn, c, bm)
        return ~nonzero.any(dim=3).any(dim=1)

    def apply(self, name: str, weight: torch.Tensor, pruned: torch.Tensor) -> None:
        """Zero the pruned weights in place."""
        self.apply_all({name: weight}, {name: pruned}, {})

    def apply_all(
        self, weights: dict[str, torch.Tensor], pruned: dict[str, torch.Tensor], factors: dict[str, torch.Tensor]
    ) -> None:
        """Zero the pruned weights of every layer in ``pruned``, in place, by the fastest route
        the backend has for the layer (:func:`_backend.zero_masked`); ``factors`` is the
        pruner's cache of mask copies, kept until its masks change."""
        _backend.zero_masked(weights, pruned, factors, self.layouts, self.block, self.expand)

    # ---- shared machinery ------------------------------------------------------------------
    def nothing_pruned(self, name: str) -> torch.Tensor:
        """A pruned mask that prunes nothing, on the weight's device (the CPU for a meta weight;
        :meth:`BasePruner.follow_devices` moves masks to the weights' devices before a hook)."""
        weight = self.modules[name].weight
        device = torch.device("cpu") if weight.is_meta else weight.device
        return self.pruned_from_weight(name, torch.ones(self.layouts[name].shape, device=device))

    def get_masks(
        self, scores: dict[str, torch.Tensor], ratio: float, pre_masks: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Deprecated since 0.1.0 (removed in :data:`OLD_NAMES_REMOVED_IN`): :meth:`select_pruned`."""
        _renamed("get_masks", "select_pruned")
        return self.select_pruned(scores, ratio, pre_masks)

    def empty_mask(self, name: str) -> torch.Tensor:
        """Deprecated since 0.1.0 (removed in :data:`OLD_NAMES_REMOVED_IN`): :meth:`nothing_pruned`."""
        _renamed("empty_mask", "nothing_pruned")
        return self.nothing_pruned(name)

    def select_pruned(
        self, scores: dict[str, torch.Tensor], ratio: float, pre_masks: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """New pruned masks so the layers reach ``ratio`` (element sparsity) in total.

        Global scope ranks every unit of every non-frozen layer together and honours the
        per-layer bounds; where unit sizes differ between layers it counts weights (the pruned
        units' sizes add up to the target to within half a unit); a layer the ranking would push above ``max_sparsity_ratio_per_op``
        is capped at exactly that ratio and frozen, and a layer below
        ``min_sparsity_ratio_per_op`` is raised to it (floors shrink in proportion while the
        scheduled total is smaller than they add up to). Local scope ranks each layer alone to
        the scheduled ratio (capped at the max).
        """
        names = list(self.modules)
        free = [n for n in names if not self.keep_mask_layers.get(n)]
        masks = {n: pre_masks[n] for n in names if n not in free}
        if not free:
            return masks
        workspace = _backend.Workspace()  # scratch for this call's layers, freed after it
        ranked = [self.unit_scores(n, scores[n], workspace) for n in free]
        units = [score for score, _ in ranked]
        sizes = [self.num_units(n) for n in free]
        target = min(self.unit_ratio(ratio), 1.0)
        hi = [min(math.floor(self.unit_ratio(self.max_sparsity_ratio_per_op) * s + 1e-9), s) for s in sizes]
        if self.is_global:
            # count weights, not units, where a unit's size depends on the layer (channel
            # patterns): the pruned units' sizes add up to the target, to within half a unit
            sized = {n: self.unit_size(n) for n in names}
            weighted = len(set(sized.values())) > 1
            w = sized if weighted else dict.fromkeys(names, 1)
            total = sum(self.num_units(n) * w[n] for n in names)
            k = round(target * total) - sum(self.pruned_units(n, masks[n]) * w[n] for n in masks)
            each = [w[n] for n in free]
            lo = unit_floors([self.unit_ratio(self.min_sparsity_ratio_per_op) * s for s in sizes], hi, k, each)
            if weighted:
                chosen, _, capped = _backend.select_lowest_weighted(units, each, k, lo=lo, hi=hi)
            else:
                chosen, _, capped = _backend.select_lowest(units, k, lo=lo, hi=hi)
            for name, was_capped in zip(free, capped):
                if was_capped:
                    self.keep_mask_layers[name] = True
                    logger.debug("layer %s capped at max_sparsity_ratio_per_op and frozen", name)
        else:
            chosen = [_backend.lowest_mask(u, min(round(target * s), h)) for u, s, h in zip(units, sizes, hi)]
        for name, unit_mask, (_, detail) in zip(free, chosen, ranked):
            masks[name] = self.pruned_from_units(name, unit_mask, detail)
        return masks


def _renamed(old: str, new: str) -> None:
    warnings.warn(
        f"BasePattern.{old} is deprecated since 0.1.0 and will be removed in {OLD_NAMES_REMOVED_IN}; use "
        f"{new} (same arguments; its masks are True where a unit is pruned)",
        FutureWarning,
        stacklevel=3,
    )
