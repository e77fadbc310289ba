"""Which layers a pruner takes, and how sparse they are.

A module is a candidate if its class name contains one of ``pruning_op_types`` and it has a
``weight``; ``op_names`` / ``excluded_op_names`` are regexes matched with ``re.search`` on module
names. Output heads (the last Linear on the path to the model's output, and modules named as
heads: ``lm_head``, ``classifier``, ``fc``...; see :mod:`workbench.pruner.heads`) are excluded
unless an ``op_names`` regex matches their whole name. A module whose weight is tied to another
module's (GPT-2's ``lm_head`` and token embedding) is never pruned; naming it in ``op_names`` is
a :class:`ConfigError` naming both.

This module is the one owner of "which layers are targets": the training-aware pruners
(:class:`~workbench.pruner.Pruning`) and the post-training target finder
(:func:`workbench.pruner.posttraining.find_targets`) both ask :func:`classify_layers`, so the
two cannot disagree about heads, tied weights, ``op_names`` or ``pruning_op_types``. How a
selected weight is laid out (Hugging Face ``Conv1D``: ``[in, out]``) is
:func:`workbench.pruner.layout.is_transposed_linear`'s to say.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .config_types import PrunerConfig
from .errors import ConfigError
from .heads import find_heads, parse_last_linear, tied_weights
from .inputs import check_weights_have_data
from .layout import is_transposed_linear

__all__ = [
    "LayerInfo",
    "classify_layers",
    "get_sparsity_ratio",
    "layer_counts",
    "layer_sparsity",
    "nothing_selected_error",
    "parse_last_linear",
    "parse_to_prune",
]

logger = logging.getLogger(__name__)


@dataclass
class LayerInfo:
    """One candidate layer: whether it is pruned, and why (or why not).

    Attributes:
        name: Module name (dots kept).
        type: Module class name.
        shape: Weight shape.
        pruned: Whether a pruner prunes it.
        reason: Why, e.g. ``"pruned by pruner 0 (4x1, snip_momentum)"`` (with the orientation
            for Conv1D and convolutions), ``"classifier head (...)"``, ``"tied weights: ..."``,
            ``"excluded by excluded_op_names 'fc.*'"``, ``"not a prunable type"``.
        pruner: Index of the pruner that owns it (``None`` if not pruned).
    """

    name: str
    type: str
    shape: tuple[int, ...]
    pruned: bool
    reason: str
    pruner: int | None = None

    def to_dict(self) -> dict:
        """A plain dict (shape as a list) for CSV/JSON."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def _weighted_modules(model: nn.Module):
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if name and isinstance(weight, torch.Tensor):
            yield name, module


def classify_layers(
    configs: list[PrunerConfig | dict], model: nn.Module, *, include_heads: bool = False
) -> tuple[list[dict[str, nn.Module]], list[LayerInfo]]:
    """Assign every weighted module to at most one pruner config, with the reason for each.

    A layer matched by several pruner configs goes to the first one.
    Returns one ``{name: module}`` per config and a :class:`LayerInfo` per weighted module.
    ``include_heads=True`` treats output heads as ordinary layers (post-training's
    ``include_head``); tied weights stay excluded.

    Raises:
        ConfigError: an ``op_names`` regex names (matches the whole name of) a layer whose
            weight is tied to another module's, e.g. GPT-2's ``lm_head``.
    """
    configs = [PrunerConfig.from_mapping(c) for c in configs]
    context = _Context(model, include_heads)
    chosen: list[dict[str, nn.Module]] = [{} for _ in configs]
    infos: list[LayerInfo] = []
    for name, module in _weighted_modules(model):
        kind = type(module).__name__
        shape = tuple(module.weight.shape)
        reason, owner = None, None
        if module.weight.numel() == 0:  # Linear(0, 8): nothing to prune, and no unit to size
            infos.append(LayerInfo(name, kind, shape, False, f"no weights (empty weight of shape {list(shape)})"))
            continue
        for i, cfg in enumerate(configs):
            why = _why_not(name, kind, cfg, context)
            if why is None:
                owner = i
                break
            reason = reason or why
        if owner is None:
            infos.append(LayerInfo(name, kind, shape, False, reason or "no pruner config"))
            continue
        chosen[owner][name] = module
        infos.append(LayerInfo(name, kind, shape, True, _pruned_reason(owner, configs[owner], module), owner))
    return chosen, infos


class _Context:
    """What the decisions need to know of the model: its heads and its tied weights."""

    def __init__(self, model: nn.Module, include_heads: bool = False) -> None:
        self.heads = {} if include_heads else find_heads(model)
        modules = dict(model.named_modules())
        self.tied = {
            name: ", ".join(f"{o!r} ({type(modules[o]).__name__})" for o in others)
            for name, others in tied_weights(model).items()
        }


def _pruned_reason(owner: int, cfg: PrunerConfig, module: nn.Module) -> str:
    """``"pruned by pruner 0 (4x1, magnitude)"`` and how the pattern is laid on the weight."""
    how = f"pruned by pruner {owner} ({cfg.pattern}, {cfg.pruning_type})"
    if is_transposed_linear(module):
        return how + "; Conv1D weight stored [in, out]: the pattern applies in the Linear orientation [out, in]"
    if module.weight.dim() > 2:
        how += "; convolution viewed channels-last as [out, kernel * in]"
        groups = getattr(module, "groups", 1)
        if isinstance(groups, int) and groups > 1:
            how += f"; grouped (groups={groups}): every unit stays within one group's inputs"
    return how


def _why_not(name: str, kind: str, cfg: PrunerConfig, context: _Context) -> str | None:
    op_types = cfg.pruning_op_types
    if not any(t in kind for t in op_types):
        return f"not a prunable type ({kind} not in pruning_op_types {op_types})"
    op_names = cfg.op_names
    named = [p for p in op_names if re.fullmatch(p, name)]
    excluded = [p for p in cfg.excluded_op_names if re.search(p, name)]
    if name in context.tied:
        if named and not excluded:
            raise ConfigError(
                f"op_names: {named[0]!r} names {name!r} ({kind}), whose weight is tied to "
                f"{context.tied[name]}: pruning it would zero that module's weights too; allowed: leave "
                f"{name!r} out of op_names, or add it to excluded_op_names"
            )
        return f"tied weights: shares its weight with {context.tied[name]} (never pruned)"
    if name in context.heads and not named:
        return context.heads[name]
    if op_names and not any(re.search(p, name) for p in op_names):
        return f"not matched by op_names {op_names}"
    if excluded:
        return f"excluded by excluded_op_names {excluded[0]!r}"
    return None


def nothing_selected_error(
    index: int, config: PrunerConfig, model: nn.Module, layers: list[LayerInfo], invalid: dict[str, str]
) -> ConfigError:
    """The error for pruner ``index`` selecting no layer: it names the pruner, its ``op_names`` and
    ``excluded_op_names``, and every candidate layer with the reason it was left out.

    ``layers`` is what :func:`classify_layers` returned (a layer owned by another pruner says so);
    ``invalid`` maps layers this pruner's pattern refused to the reason.
    """
    context = _Context(model)
    why = []
    for info in layers:
        if info.name in invalid:
            reason = invalid[info.name]
        elif info.pruned and info.pruner != index:
            reason = f"taken by pruner {info.pruner} (the first matching pruner config owns a layer)"
        else:
            reason = _why_not(info.name, info.type, config, context) or info.reason
        why.append(f"{info.name!r} ({info.type} {list(info.shape)}): {reason}")
    candidates = "; ".join(why) if why else "none: the model has no module with a weight"
    return ConfigError(
        f"pruning_configs[{index}]: pruner {index} (pruning_type {config.pruning_type!r}, pattern "
        f"{config.pattern!r}) selects no layer to prune; op_names {list(config.op_names)}, "
        f"excluded_op_names {list(config.excluded_op_names)}, pruning_op_types {list(config.pruning_op_types)}; "
        f"candidate layers: {candidates}"
    )


def parse_to_prune(config: PrunerConfig | dict, model: nn.Module) -> dict[str, nn.Module]:
    """The layers one resolved pruner config selects: ``{name: module}``.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
        >>> list(parse_to_prune({"op_names": [], "excluded_op_names": [], "pattern": "4x1"}, model))
        ['0']
    """
    return classify_layers([config], model)[0][0]


def layer_counts(pruners: list) -> dict[str, tuple[int, int, int, int]]:
    """``{layer: (zero weights, weights, pruned units, units)}`` of every pruned layer, measured
    on the weights in one pass: what :func:`get_sparsity_ratio` and :func:`layer_sparsity` are
    computed from (pass it to both as ``counts=`` to read the weights once).

    Example:
        >>> layer_counts([])
        {}
    """
    out = {}
    for pruner in pruners:
        check_weights_have_data(pruner.modules)
        for name, module in pruner.modules.items():
            weight = module.weight.detach()
            units_zero, units = pruner.pattern.zero_units(name, weight)
            out[name] = (int(torch.count_nonzero(weight == 0)), weight.numel(), units_zero, units)
    return out


def get_sparsity_ratio(
    pruners: list, model: nn.Module, *, counts: dict[str, tuple[int, int, int, int]] | None = None
) -> tuple[float, float, float]:
    """``(elementwise_over_matmul_gemm_conv, elementwise_over_all, blockwise_over_matmul_gemm_conv)``.

    Zero weights over all weights of the pruned layers; zero weights of the pruned layers over
    all parameters of the model; pruned pattern units (blocks, or N:M groups holding N zeros)
    over all units of the pruned layers. Measured on the weights themselves, or taken from
    ``counts`` (:func:`layer_counts` of the same pruners, measured before).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> get_sparsity_ratio([], model)
        (0.0, 0.0, 0.0)
    """
    counts = layer_counts(pruners) if counts is None else counts
    zeros, numel, units_zero, units = (sum(c[i] for c in counts.values()) for i in range(4))
    total = sum(p.numel() for p in model.parameters())
    return (zeros / numel if numel else 0.0, zeros / total if total else 0.0, units_zero / units if units else 0.0)


def layer_sparsity(
    pruners: list, *, counts: dict[str, tuple[int, int, int, int]] | None = None
) -> dict[str, tuple[float, float]]:
    """``{layer: (elementwise, blockwise)}`` for every pruned layer, measured on the weights (or
    taken from ``counts``, :func:`layer_counts` of the same pruners)."""
    counts = layer_counts(pruners) if counts is None else counts
    return {
        name: (zeros / numel, units_zero / units if units else 0.0)
        for name, (zeros, numel, units_zero, units) in counts.items()
    }
