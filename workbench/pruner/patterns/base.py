"""The pattern base class: which layers fit, and how scores become masks (global or local).

A pattern splits every layer's 2-D weight view into *units*: blocks for NxM, groups of M
for N:M. Criteria give scores, the pattern turns them into one score per unit, and
:meth:`BasePattern.get_masks` prunes the lowest-scoring units so the pruner's layers reach the
scheduled sparsity, either with one ranking over all layers (global scope) or per layer.

Masks are stored as *pruned* bool tensors at the pattern's own resolution (block-sized for NxM,
element-sized for N:M); :meth:`expand` gives the weight-shaped view.
"""

from __future__ import annotations

import abc
import logging
import math
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


class BasePattern(abc.ABC):
    """Base class of pruning patterns (the unit of pruning, e.g. a 4x1 block or an N:M group).

    A family defines :meth:`parse` (its own pattern strings), :attr:`forms` and :attr:`examples`
    (for error messages and the ``list_*`` queries), and implements the abstract methods; nothing
    it computes for one call of :meth:`get_masks` is kept on the object for the next (scratch
    memory is passed in).

    Args:
        config: A resolved pruner config (see :func:`workbench.pruner.resolve_config`).
        modules: ``{name: module}`` of the candidate layers; layers whose shape does not fit
            the pattern are moved to :attr:`invalid_layers` with the reason.
        spec: The parsed ``config.pattern``; parsed by :meth:`parse` when not given.

    Attributes:
        pattern: The pattern string, e.g. ``"4x1"``.
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

    # ---- what a concrete pattern defines -------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def parse(cls, text: str) -> PatternSpec | None:
        """The spec of ``text`` if it is this family's form, else ``None``; a string of the
        family's form with bad values raises :class:`~workbench.pruner.ConfigError`."""

    @abc.abstractmethod
    def check_layer(self, layout: Layout) -> str | None:
        """Why a layer of this layout cannot take the pattern, or ``None`` if it can."""

    @abc.abstractmethod
    def reduce(self, name: str, elem2d: torch.Tensor) -> torch.Tensor:
        """Element scores of (a row range of) the 2-D view -> the stored score resolution."""

    def row_multiple(self, name: str) -> int:
        """Row ranges given to :meth:`reduce` start and end on multiples of this (1 here)."""
        return 1

    def row_sum_block(self, name: str) -> tuple[int, bool] | None:
        """``(N, mean)`` when :meth:`reduce` stores, per N x 1 block of the 2-D view, the sum of
        its N element scores added in row order (divided by N if ``mean``): what a compiled
        kernel can compute alike. ``None`` here: no such reduction."""
        return None

    def score_block(self, name: str) -> tuple[tuple[int, int], str] | None:
        """``((N, M), how)`` when :meth:`reduce` stores one score per N x M block of the 2-D view,
        its elements' scores reduced by ``how`` as ``_backend.reduce_blocks`` does (1 x 1: the
        element scores): what the compiled block scores compute alike. ``None`` here."""
        return None

    @abc.abstractmethod
    def unit_scores(
        self, name: str, stored: torch.Tensor, workspace: _backend.Workspace
    ) -> tuple[torch.Tensor, object]:
        """Stored scores -> ``(one score per unit (lower is pruned first), detail)``; ``detail``
        is what :meth:`mask_from_units` needs besides the chosen units (``None`` if nothing).
        ``workspace`` holds scratch memory shared by the layers of one :meth:`get_masks` call."""

    @abc.abstractmethod
    def mask_from_units(self, name: str, units: torch.Tensor, detail: object) -> torch.Tensor:
        """Pruned units (and :meth:`unit_scores`'s ``detail``) -> the pruned mask at the
        pattern's resolution."""

    @abc.abstractmethod
    def num_units(self, name: str) -> int:
        """How many units the layer has."""

    @abc.abstractmethod
    def pruned_units(self, name: str, pruned: torch.Tensor) -> int:
        """How many units a pruned mask prunes."""

    def unit_ratio(self, ratio: float) -> float:
        """Element sparsity ratio -> fraction of units to prune."""
        return ratio

    def unit_size(self, name: str) -> int:
        """Weights per unit of the layer. Global scope counts weights, not units, when this
        differs between layers (channel patterns), so pruned units add up to the target."""
        layout = self.layouts[name]
        return layout.rows * layout.cols // self.num_units(name)

    @abc.abstractmethod
    def expand(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        """A weight-shaped bool view of the pruned mask (``True`` = zeroed)."""

    def keep_factor(self, name: str, pruned: torch.Tensor) -> torch.Tensor:
        """What :meth:`apply_factor` multiplies the weight by; pruners cache it between steps.

        Multiplying by a mask is several times faster on CPU than ``masked_fill_``.
        """
        return _as_uint8(~self.expand(name, pruned))

    def apply_factor(self, name: str, weight: torch.Tensor, factor: torch.Tensor) -> None:
        """Zero pruned weights in place given :meth:`keep_factor`'s tensor."""
        weight.mul_(factor)

    def apply(self, name: str, weight: torch.Tensor, pruned: torch.Tensor) -> None:
        """Zero the pruned weights in place."""
        self.apply_all({name: weight}, {name: pruned}, {})

    def apply_all(
        self, weights: dict[str, torch.Tensor], pruned: dict[str, torch.Tensor], factors: dict[str, torch.Tensor]
    ) -> None:
        """Zero the pruned weights of every layer in ``pruned``, in place.

        Layers :meth:`zero_compiled` takes are zeroed by a compiled kernel (Conv layers from a
        weight-ordered mask cached in ``factors``); the others are multiplied by their
        :meth:`keep_factor`, taken from ``factors`` or built and put there (pruners keep that
        cache until their masks change).
        """
        cached = self._zero_cached(weights, pruned, factors)
        rest = {name: mask for name, mask in pruned.items() if name not in cached}
        zeroed = self.zero_compiled(weights, rest)
        for name, mask in rest.items():
            if name in zeroed:
                continue
            factor = factors.get(name)
            if factor is None or factor.dtype == torch.bool:  # not the kernels' cached mask
                factor = factors[name] = self.keep_factor(name, mask)
            self.apply_factor(name, weights[name], factor)

    def _zero_cached(
        self, weights: dict[str, torch.Tensor], pruned: dict[str, torch.Tensor], factors: dict[str, torch.Tensor]
    ) -> set[str]:
        """Float32 Conv layers with kernels larger than 1x1 (whose 2-D view maps columns around):
        zeroed by a compiled pass over a weight-ordered bool copy of the pruned mask, built once per
        mask change and kept in ``factors`` (several times faster than mapping each view column
        every step); transposed (Conv1D) weights as stored, by the transposed mask kept alike."""
        done: set[str] = set()
        if not _backend.kernels_available():
            return done
        for name, mask in pruned.items():
            weight, layout = weights[name], self.layouts[name]
            flip = layout.transposed and mask.dim() == 2 and weight.is_contiguous() and weight.dtype in _KERNEL_DTYPES
            conv = weight.dim() > 2 and layout.cols != weight.shape[1] and weight.dtype == torch.float32
            if not (flip or conv) or not _backend.on_cpu(weight):
                continue
            block = (layout.rows // mask.shape[0], layout.cols // mask.shape[-1]) if mask.dim() == 2 else None
            cached = factors.get(name)
            if cached is None or cached.dtype != torch.bool:
                fast = None if block is None or flip else _backend.weight_order_mask(mask, tuple(weight.shape), block)
                fast = mask.t().contiguous() if flip else fast
                cached = factors[name] = self.expand(name, mask).contiguous() if fast is None else fast
            if _backend.zero_blocks(weight, cached, block[::-1]) if flip else _backend.zero_by_mask(weight, cached):
                done.add(name)
        return done

    def zero_compiled(self, weights: dict[str, torch.Tensor], pruned: dict[str, torch.Tensor]) -> set[str]:
        """Zero what a compiled kernel can, in place; returns those layers' names. Here: layers
        with element-level masks of the weight's shape or of its 2-D view (patterns with other
        kernels extend this)."""
        zeroed = set()
        for name, mask in pruned.items():
            weight, layout = weights[name], self.layouts[name]
            if mask.numel() != weight.numel() or layout.transposed:
                continue
            if _backend.zero_by_mask(weight, self.expand(name, mask)) or _backend.zero_blocks(
                weight, mask.reshape(layout.rows, layout.cols), (1, 1)
            ):
                zeroed.add(name)
        return zeroed

    @abc.abstractmethod
    def pruned_from_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """The pruned mask implied by the weights' current zeros (for pattern lock and resume)."""

    @abc.abstractmethod
    def zero_units(self, name: str, weight: torch.Tensor) -> tuple[int, int]:
        """``(pruned units, all units)`` measured on the weight (for blockwise reporting)."""

    # ---- shared machinery ------------------------------------------------------------------
    def empty_mask(self, name: str) -> torch.Tensor:
        """A pruned mask that prunes nothing, on the weight's device (the CPU for a meta weight;
        :meth:`BasePruner.follow_devices` moves masks to the weights' devices before a hook)."""
        weight = self.modules[name].weight
        device = torch.device("cpu") if weight.is_meta else weight.device
        return self.pruned_from_weight(name, torch.ones(self.layouts[name].shape, device=device))

    def get_masks(
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
            masks[name] = self.mask_from_units(name, unit_mask, detail)
        return masks


_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _as_uint8(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask as uint8 without a copy: ``mul_`` by uint8 is about 2x faster than by bool."""
    return mask.contiguous().view(torch.uint8)
