"""Pruning criteria: how important each weight is (a low score is pruned first).

- ``magnitude``: ``|W|``, computed when masks are about to change.
- ``gradient``: ``|dL/dW|``, computed before the optimizer step that precedes a mask update.
- ``snip``: ``|W * dL/dW|``, likewise.
- ``snip_momentum``: ``score = alpha * score + beta * |W * dL/dW|`` on every step from the first
  up to ``end_step - 1`` (alpha 0.9, beta 1.0).
- ``snip_momentum_block``: the same momentum over each block's mask gradient ``|sum over the
  block of W * dL/dW|`` (INC 3.7.1's block-mask criterion).

Scores are kept at the pattern's resolution (one value per NxM block for "mean"/"sum"
reductions, which is exact because the reduction is linear) and computed in row chunks through
one small scratch buffer, so no full-size temporary is allocated per step. Element-level scores
are kept where they are needed: N:M patterns, "max" reduction with momentum, and progressive
pruning. Where the kernels are built (``workbench.pruner._backend``, same values) every float32
score of every pattern's blocks, on Linear and Conv weights of float32, float16 or bfloat16, is
computed (or accumulated) in one compiled pass instead. Half-precision weights are scored in
float32 on both paths (the PyTorch path upcasts one chunk at a time, so no full-size copy), so
their ranking is as fine as the weights allow. ``low_memory_usage=True`` keeps scores in
bfloat16 (on the PyTorch path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar

import torch

from . import _backend
from .config_types import PrunerConfig
from .layout import Layout, layout_of
from .patterns.spec import BLOCKS
from .registry import Registry

logger = logging.getLogger(__name__)

CRITERIA: Registry[type[PruningCriterion]] = Registry("criterion_type")
_CHUNK = 1 << 20  # elements per chunk: a 4 MiB float32 scratch buffer, half per core's L2 with 2 threads


def register_criterion(name: str):
    """Class decorator registering a criterion (a :class:`PruningCriterion` subclass) as ``name``.

    It becomes valid as ``pruning_type`` in every form a registered pruner builds from a
    criterion (``name``, ``name + "_progressive"``, ...)."""
    return CRITERIA.register(name)


def get_criterion(config: PrunerConfig | dict, modules: dict, pattern=None, *, element_level: bool = False):
    """Build the criterion named by ``config.criterion_type`` for ``modules`` (a dict takes the defaults).

    Example:
        >>> import torch
        >>> c = get_criterion({"criterion_type": "magnitude"}, {"fc": torch.nn.Linear(4, 4)})
        >>> c.on_step_begin(); c.scores["fc"].shape
        torch.Size([4, 4])
    """
    config = PrunerConfig.from_mapping(config)
    return CRITERIA.lookup(config.criterion_type)(modules, config, pattern, element_level=element_level)


class PruningCriterion:
    """Base criterion: holds ``scores`` ``{name: tensor}`` for the pruner's layers.

    Args:
        modules: ``{name: module}`` of the layers to score.
        config: The resolved pruner config (a :class:`~workbench.pruner.PrunerConfig`).
        pattern: The pruner's pattern; scores are stored at its resolution. Without one,
            element-level scores in the 2-D view are kept.
        element_level: Keep element-level scores even where block scores would do.
    """

    needs_grad = False
    requires: ClassVar[frozenset[str]] = frozenset()
    """Pattern features (``PatternSpec.features``) the criterion needs."""
    pruner_types: ClassVar[frozenset[str] | None] = None
    """The pruner types that take this criterion (``None``: every one whose form takes a criterion)."""

    def __init__(self, modules: dict, config: PrunerConfig, pattern=None, *, element_level: bool = False) -> None:
        self.modules = modules
        self.config = config
        self.pattern = pattern
        self.element_level = element_level or pattern is None
        self.dtype = torch.bfloat16 if config.low_memory_usage else torch.float32
        self.scores: dict[str, torch.Tensor] = {}
        self._scratch = torch.empty(0)

    def on_step_begin(self) -> None:
        """Hook at the start of a step whose masks are about to change."""

    def on_before_optimizer_step(self) -> None:
        """Hook before ``optimizer.step()`` on a step that feeds a mask update."""

    def on_after_optimizer_step(self) -> None:
        """Hook after ``optimizer.step()``."""

    def ensure_scores(self) -> None:
        """Fill missing scores with magnitudes (a gradient criterion before any backward pass)."""
        missing = [n for n in self.modules if n not in self.scores]
        if missing:
            logger.warning("no gradient scores yet for %d layers; using magnitude for this step", len(missing))
            for name in missing:
                self.scores[name] = self._compute(name, _magnitude, element="magnitude")

    # ---- helpers ---------------------------------------------------------------------------
    def _storage(self, name: str, shape: tuple[int, int], *, transposed: bool = False) -> torch.Tensor:
        """The layer's score tensor of ``shape`` to overwrite: its scores if they fit, else a new
        one on the weight's device (``transposed``: the transpose of a contiguous tensor)."""
        old = self.scores.get(name)
        device = self.modules[name].weight.device
        if old is not None and tuple(old.shape) == shape and old.dtype == self.dtype and old.device == device:
            return old
        if transposed:
            return torch.empty(shape[::-1], dtype=self.dtype, device=device).t()
        return torch.empty(shape, dtype=self.dtype, device=device)

    def _store_level(self, name: str, elem2d: torch.Tensor) -> torch.Tensor:
        if self.element_level or self.pattern is None:
            return elem2d
        return self.pattern.reduce(name, elem2d)

    def _layout(self, name: str) -> Layout:
        if self.pattern is not None and name in self.pattern.layouts:
            return self.pattern.layouts[name]
        return layout_of(self.modules[name])

    def _row_step(self, name: str, cols: int, rows: int) -> int:
        bn = 1
        if self.pattern is not None and not self.element_level:
            bn = self.pattern.block(name)[0]  # row chunks hold whole blocks
        step = max(bn, (_CHUNK // max(cols, 1)) // bn * bn)
        return min(step, rows)

    def _compiled(
        self, name: str, element: str, into: torch.Tensor | None, alpha: float, beta: float
    ) -> torch.Tensor | None:
        """The layer's scores from one compiled pass (:func:`_backend.block_scores`: the
        pattern's blocks reduced as :meth:`BasePattern.reduce` does), or ``None`` where it does
        not apply (bfloat16 scores, no kernels).

        A transposed (Conv1D) weight is scored as stored, ``[in, out]``, with the transposed block,
        into the transposed score grid: its scores are the transpose of a contiguous tensor."""
        if self.dtype != torch.float32:
            return None
        whole = self.element_level or self.pattern is None
        bn, bm = (1, 1) if whole else self.pattern.block(name)
        how = "sum" if bn == bm == 1 else self.pattern.reduce_type
        layout = self._layout(name)
        grid = (layout.rows // bn, layout.cols // bm)
        out = into if into is not None else self._storage(name, grid, transposed=layout.transposed)
        weight = self.modules[name].weight
        stored = (bm, bn) if layout.transposed else (bn, bm)
        scores = _backend.block_scores(
            weight.detach(),
            weight.grad,
            element,
            stored,
            how,
            out=out.t() if layout.transposed else out,
            accumulate=into is not None,
            alpha=alpha,
            beta=beta,
        )
        return None if scores is None else scores.t() if layout.transposed else scores

    def _compute(
        self,
        name: str,
        elem_fn: Callable,
        *,
        element: str | None = None,
        into: torch.Tensor | None = None,
        alpha: float = 0.0,
        beta: float = 1.0,
    ) -> torch.Tensor:
        """Score one layer in one compiled pass where ``element`` names what ``elem_fn`` computes
        (an element kind of :func:`_backend.block_scores`), else chunk by chunk through
        ``elem_fn``; accumulate ``alpha * into + beta * new`` if given.

        Without ``into``, the layer's previous scores are overwritten in place when they have
        the same shape (a fresh multi-megabyte tensor per layer and step costs page faults).
        """
        fast = None if element is None else self._compiled(name, element, into, alpha, beta)
        if fast is not None:
            return fast
        weight = self.modules[name].weight.detach()
        grad = self.modules[name].weight.grad
        layout = self._layout(name)
        with torch.no_grad():
            if not layout.is_2d:  # a Conv or a transposed (Conv1D) weight: whole, in float32
                weight, grad = _fp32(weight), None if grad is None else _fp32(grad)
                elem = elem_fn(weight, grad, torch.empty_like(weight))
                new = self._store_level(name, layout.to_2d(elem)).to(self.dtype).contiguous()
                return new if into is None else _accumulate(into, new, alpha, beta)
            rows, cols = weight.shape
            step = self._row_step(name, cols, rows)
            if self._scratch.numel() < step * cols or self._scratch.device != weight.device:
                self._scratch = torch.empty(step * cols, device=weight.device)
            out = into
            for r0 in range(0, rows, step):
                r1 = min(r0 + step, rows)
                buf = self._scratch[: (r1 - r0) * cols].view(r1 - r0, cols)
                w, g = _fp32(weight[r0:r1]), None if grad is None else _fp32(grad[r0:r1])
                part = self._store_level(name, elem_fn(w, g, buf))
                if out is None:
                    out = self._storage(name, (part.shape[0] * rows // (r1 - r0), part.shape[1]))
                lo, hi = r0 * out.shape[0] // rows, r1 * out.shape[0] // rows
                if into is None:
                    out[lo:hi].copy_(part)
                else:
                    _accumulate(out[lo:hi], part, alpha, beta)
            return out


@register_criterion("magnitude")
class MagnitudeCriterion(PruningCriterion):
    """``|W|``, computed at the start of a step whose masks change."""

    def on_step_begin(self) -> None:
        for name in self.modules:
            self.scores[name] = self._compute(name, _magnitude, element="magnitude")


class _GradientScoreCriterion(PruningCriterion):
    """A criterion recomputed from the current gradient before the step preceding a mask update."""

    needs_grad = True
    element = "snip"
    """What :func:`_backend.block_scores` computes per element, as :meth:`element_score` does."""

    @staticmethod
    def element_score(w: torch.Tensor, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Element scores of a row chunk, written into ``out``."""
        raise NotImplementedError

    def on_before_optimizer_step(self) -> None:
        for name, module in self.modules.items():
            if module.weight.grad is not None:
                self.scores[name] = self._compute(name, self.element_score, element=self.element)


@register_criterion("gradient")
class GradientCriterion(_GradientScoreCriterion):
    """``|dL/dW|``, computed before the optimizer step preceding a mask update."""

    element = "gradient"

    @staticmethod
    def element_score(w: torch.Tensor, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.abs(g, out=out)


@register_criterion("snip")
class SnipCriterion(_GradientScoreCriterion):
    """``|W * dL/dW|`` (SNIP, arXiv:1810.02340), computed before the preceding optimizer step."""

    @staticmethod
    def element_score(w: torch.Tensor, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return _snip(w, g, out)


# ---- snip_momentum: snip scores accumulated with momentum on every step ----------------------
# score = alpha * score + beta * |W * dL/dW| from the first step up to end_step - 1 (alpha 0.9,
# beta 1.0), at the pattern's resolution; where the kernels are built the update of element
# scores and of Nx1 row sums is one compiled pass (same values).


@register_criterion("snip_momentum")
class SnipMomentumCriterion(PruningCriterion):
    """``score = alpha * score + beta * |W * dL/dW|`` accumulated on every step that feeds a mask update.

    Attributes:
        alpha: How much of the previous score is kept (0.9).
        beta: Weight of the current step's snip score (1.0).
    """

    needs_grad = True
    accumulates = True

    def __init__(self, modules: dict, config: PrunerConfig, pattern=None, *, element_level: bool = False) -> None:
        if pattern is not None and getattr(pattern, "reduce_type", "mean") == "max":
            element_level = True  # max is not linear: the momentum must be kept per element
        super().__init__(modules, config, pattern, element_level=element_level)
        self.alpha = 0.9
        self.beta = 1.0

    def on_before_optimizer_step(self) -> None:
        pending = []
        for name, module in self.modules.items():
            if module.weight.grad is None:
                continue
            if name not in self.scores:
                self.scores[name] = self._compute(name, _snip, element="snip").mul_(self.beta)
            else:
                pending.append(name)
        updates = {name: self._compiled_update(name, self.modules[name]) for name in pending}
        compiled = [name for name in pending if updates[name] is not None]
        jobs = [updates[name] for name in compiled]
        done = _backend.accumulate_snip_many(jobs, self.alpha, self.beta) if jobs else []
        finished = {name for name, ok in zip(compiled, done) if ok}
        for name in pending:
            if name not in finished:
                self._compute(name, _snip, element="snip", into=self.scores[name], alpha=self.alpha, beta=self.beta)

    def _compiled_update(self, name: str, module: torch.nn.Module) -> tuple | None:
        """What the compiled update takes (``(score, weight, grad, block_rows, mean)`` for
        :func:`_backend.accumulate_snip_many`): element-level scores, and the in-order row sums
        of the pattern's Nx1 blocks (``_backend.row_order_blocks``: what ``BasePattern.reduce``
        sums in row order) of weights that are their own 2-D view (Linear, 1x1 convolutions);
        ``None`` where it does not apply."""
        layout = self._layout(name)
        weight, grad = layout.memory_view(module.weight.detach()), layout.memory_view(module.weight.grad)
        if weight is None or grad is None:
            return None
        score = self.scores[name]
        if score.shape == weight.shape:
            return score, weight, grad, 1, False
        if self.pattern is None:
            return None
        (rows, cols), how = self.pattern.block(name), self.pattern.reduce_type
        if not _backend.row_order_blocks(rows, cols, how):
            return None
        return score, weight, grad, rows, how == "mean"


# ---- snip_momentum_block: momentum over the gradient of each block's mask -------------------
# INC's ``block_mask`` pruner multiplied every Linear weight by a 0/1 mask with one entry per
# block in the forward pass and scored each block by the gradient of the loss with respect to its
# mask entry, with momentum: ``score = 0.9 * score + |dL/dm|``. Since the masked weight is
# ``W * m``, ``dL/dm`` of a block is ``sum over the block of W * dL/d(W * m)``: the gradient of the
# weights the model uses, times those weights, summed with its sign. Pruned weights are zero
# here, so this is ``sum(W * W.grad)`` over the block, computed from the ordinary gradient without
# rewriting any forward pass. Unlike ``snip_momentum``, which sums ``|W * G|`` (every element's
# magnitude), the signs cancel: a block whose elements pull in opposite directions scores low.
# The sum is the block's own (``criterion_reduce_type`` does not apply), so blocks of different
# sizes compare as INC compared them.


@register_criterion("snip_momentum_block")
class SnipMomentumBlockCriterion(PruningCriterion):
    """``score = alpha * score + beta * |sum over the block of W * dL/dW|`` per block, on every step
    from the first up to ``end_step - 1`` (alpha 0.9, beta 1.0, as INC).

    Block patterns only; taken by the basic pruner (``pruning_type: snip_momentum_block``) and by
    the ``block_mask`` pruner. Scores are always per block (progressive pruning, which needs
    element scores, does not take it).

    Example:
        >>> import torch
        >>> from workbench.pruner.patterns import get_pattern
        >>> fc = torch.nn.Linear(2, 4, bias=False)
        >>> with torch.no_grad(): _ = fc.weight.copy_(torch.tensor([[1., 1.], [1., 1.], [2., 0.], [0., 0.]]))
        >>> fc.weight.grad = torch.tensor([[1., 1.], [-1., 1.], [1., 1.], [1., 1.]])
        >>> c = SnipMomentumBlockCriterion({"fc": fc}, PrunerConfig(), get_pattern({"pattern": "2x1"}, {"fc": fc}))
        >>> c.on_before_optimizer_step(); c.scores["fc"].tolist()
        [[0.0, 2.0], [2.0, 0.0]]
    """

    needs_grad = True
    accumulates = True
    requires = frozenset({BLOCKS})
    pruner_types = frozenset({"basic"})

    def __init__(self, modules: dict, config: PrunerConfig, pattern=None, *, element_level: bool = False) -> None:
        super().__init__(modules, config, pattern, element_level=False)
        self.alpha = 0.9
        self.beta = 1.0
        self._stand_ins: set[str] = set()  # layers whose scores are magnitudes standing in for gradients

    def ensure_scores(self) -> None:
        """Magnitudes for layers without a gradient yet; the first gradient replaces them (they do
        not enter the momentum)."""
        self._stand_ins.update(n for n in self.modules if n not in self.scores)
        super().ensure_scores()

    def mask_gradient(self, name: str) -> torch.Tensor:
        """``dL/dm`` of every block of the layer: ``sum over the block of W * W.grad`` (signed)."""
        module = self.modules[name]
        layout = self._layout(name)
        with torch.no_grad():
            product = layout.to_2d(module.weight.detach().float() * module.weight.grad.float())  # fp32 for half weights
            return _backend.reduce_blocks(product, *self.pattern.block(name), "sum").to(self.dtype)

    def on_before_optimizer_step(self) -> None:
        for name, module in self.modules.items():
            if module.weight.grad is None:
                continue
            new = self.mask_gradient(name).abs_().mul_(self.beta)
            old = None if name in self._stand_ins else self.scores.get(name)
            self._stand_ins.discard(name)
            self.scores[name] = new if old is None else torch.add(new, old, alpha=self.alpha, out=old)


def _accumulate(target: torch.Tensor, new: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``target = alpha * target + beta * new`` in one pass over ``target`` (``new`` is scratch)."""
    if beta != 1.0:
        new.mul_(beta)
    return torch.add(new, target, alpha=alpha, out=target)


def _fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 (half and bfloat16 weights are scored in float32; a copy of one chunk)."""
    return t if t.dtype == torch.float32 else t.float()


def _magnitude(w: torch.Tensor, g: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    return torch.abs(w, out=out)


def _snip(w: torch.Tensor, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.mul(w, g, out=out).abs_()
