"""``prune_posttraining``: one-shot Wanda or SparseGPT pruning of a model from calibration batches.

Layers are pruned in the order the model first calls them (probed on the first batch),
``layers_per_pass`` at a time: each pass runs all calibration batches through the model as it is
NOW (earlier layers already pruned), with hooks on the pass's layers only, so later layers are
calibrated on the pruned model's activations and memory holds only those layers' statistics.

* ``layers_per_pass="block"`` (default; the authors' drivers of SparseGPT, Wanda and OWL): the
  layers of one numbered block (``transformer.h.3.*``) per pass: within a block, layers see their
  inputs as they were before the block was pruned;
* ``"true-sequential"`` (the same as ``1``; SparseGPT's ``--true-sequential``): one layer per pass,
  re-calibrating after every pruned layer; an int ``k``: ``k`` layers per pass;
* ``None``: every layer in one pass (not sequential; every statistic in memory at once).

When every target runs exactly once per forward pass, a pass stops right after its last layer
has run, so early layers' passes are cheap. With ``execution_device`` the model is onloaded one
block at a time (:mod:`.onload`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .calibration import Hessian, SumSquares, batch_size, bound_batches, call_order, capture
from .masks import Shape, parse_shape
from .onload import Record, block_key, blocks_of, call_block, run_blocks
from .options import LAYERS_PER_PASS, METHODS, OWL_GROUPS
from .owl import outlier_ratio, owl_sparsities
from .report import LayerReport, PosttrainingReport
from .sparsegpt import reconstruction_error, sparsegpt_prune
from .targets import find_targets, get_weight_2d, in_features, set_weight_2d
from .wanda import wanda_pruned, wanda_scores

__all__ = ["LAYERS_PER_PASS", "METHODS", "check_posttraining_options", "prune_posttraining"]

logger = logging.getLogger(__name__)


Capture = Callable[[dict, Callable, "nn.Module | None"], dict]
"""``capture(layers, make_stat, stop_after) -> stats``: one calibration pass over some layers."""


def check_posttraining_options(
    method: str,
    sparsity: float | None = None,
    pattern: str = "1x1",
    *,
    layers_per_pass: int | str | None = "block",
    owl: bool = False,
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    owl_groups: str = "block",
    owl_clamp: bool = False,
    blocksize: int = 128,
    damp: float = 0.01,
    execution_device: Any = None,
) -> float:
    """Check :func:`prune_posttraining`'s options without a model; returns the per-layer sparsity.

    The one place these options are judged: :func:`prune_posttraining` asks it, and an
    experiment checks its ``pruning.posttraining`` options with it when the file is read.

    Raises:
        ConfigError: The first bad option, named with its value and what is allowed.

    Example:
        >>> check_posttraining_options("wanda", None, "2:4")
        0.5
        >>> check_posttraining_options("wanda", None, "2:4", owl=True)
        Traceback (most recent call last):
        ...
        workbench.pruner.errors.ConfigError: owl: True with pattern '2:4'; allowed: OWL needs an unstructured or NxM pattern
    """
    sparsity = _check(method, sparsity, parse_shape(pattern), layers_per_pass, owl)
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ConfigError(f"blocksize: {blocksize!r} is not allowed; allowed: an int >= 1")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 <= damp < 1:
        raise ConfigError(f"damp: {damp!r} is out of range; allowed: 0 <= damp < 1")
    _check_owl(owl_m, owl_lambda, owl_groups, owl_clamp)
    if execution_device is not None and layers_per_pass is None:
        raise ConfigError(
            "layers_per_pass: None with an execution_device; allowed: 'block', 'true-sequential' or an int"
        )
    return sparsity


def _check(method: str, sparsity: float | None, shape: Shape, layers_per_pass: int | str | None, owl: bool) -> float:
    if method not in METHODS:
        raise ConfigError(f"method: {method!r} is not a post-training method; allowed: {', '.join(METHODS)}")
    if layers_per_pass not in (None, *LAYERS_PER_PASS) and (
        isinstance(layers_per_pass, bool) or not isinstance(layers_per_pass, int) or layers_per_pass < 1
    ):
        raise ConfigError(
            f"layers_per_pass: {layers_per_pass!r} is not allowed; allowed: 'block', 'true-sequential', an int >= 1 or None"
        )
    if sparsity is not None and (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float))):
        raise ConfigError(f"sparsity: {sparsity!r} is not a number; allowed: 0 <= sparsity < 1")
    if not isinstance(owl, bool):
        raise ConfigError(f"owl: {owl!r} is not allowed; allowed: True or False")
    if shape.kind == "nm":
        if owl:
            raise ConfigError(
                f"owl: True with pattern {shape.text!r}; allowed: OWL needs an unstructured or NxM pattern"
            )
        if sparsity is not None and abs(sparsity - shape.n / shape.m) > 1e-9:
            raise ConfigError(
                f"sparsity: {sparsity!r} with pattern {shape.text!r}; allowed: None or {shape.n / shape.m} (N/M)"
            )
        return shape.n / shape.m
    if sparsity is None or not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity: {sparsity!r} is out of range; allowed: 0 <= sparsity < 1")
    return float(sparsity)


def _check_owl(owl_m, owl_lambda, owl_groups, owl_clamp) -> None:
    if isinstance(owl_m, bool) or not isinstance(owl_m, (int, float)) or owl_m <= 0:
        raise ConfigError(f"owl_m: {owl_m!r} is out of range; allowed: a number > 0")
    if isinstance(owl_lambda, bool) or not isinstance(owl_lambda, (int, float)) or not 0 <= owl_lambda < 1:
        raise ConfigError(f"owl_lambda: {owl_lambda!r} is out of range; allowed: 0 <= owl_lambda < 1")
    if owl_groups not in OWL_GROUPS:
        raise ConfigError(f"owl_groups: {owl_groups!r} is not allowed; allowed: {', '.join(OWL_GROUPS)}")
    if not isinstance(owl_clamp, bool):
        raise ConfigError(f"owl_clamp: {owl_clamp!r} is not allowed; allowed: True or False")


def _groups(order: list[str], layers_per_pass: int | str | None) -> list[list[str]]:
    """Consecutive layers (in call order) calibrated in one pass."""
    if layers_per_pass == "block":
        groups: list[list[str]] = []
        for name in order:
            if groups and block_key(groups[-1][-1]) == block_key(name):
                groups[-1].append(name)
            else:
                groups.append([name])
        return groups
    step = 1 if layers_per_pass == "true-sequential" else layers_per_pass or len(order)
    return [order[i : i + step] for i in range(0, len(order), step)]


def _stat_maker(cls, stats_device):
    return lambda _n, mod: cls(in_features(mod), stats_device or mod.weight.device)


def _owl_ratios(targets: dict, norms: dict, m: float, groups: str) -> dict[str, float]:
    """Each target's outlier ratio: that of its block (all its targets' Wanda scores together) or its own."""
    members: dict[str, list[str]] = {}
    for name in targets:
        members.setdefault(block_key(name) if groups == "block" else name, []).append(name)
    ratios = {}
    for names in members.values():
        scores = [wanda_scores(get_weight_2d(targets[n]), norms[n].norms()) for n in names if norms[n].tokens]
        ratio = outlier_ratio(scores, m)
        ratios.update(dict.fromkeys(names, ratio))
    return ratios


def _owl_targets(ratios: dict[str, float], targets: dict, sparsity: float, lam: float, groups: str, clamp: bool):
    """Per-layer sparsity from per-layer (group) ratios; a group's size is all its layers' weights."""
    key = block_key if groups == "block" else (lambda n: n)
    group_ratio, sizes = {}, {}
    for name, module in targets.items():
        group_ratio[key(name)] = ratios[name]
        sizes[key(name)] = sizes.get(key(name), 0) + get_weight_2d(module).numel()
    per_group = owl_sparsities(group_ratio, sparsity, lam, sizes=sizes, clamp=clamp)
    return {name: per_group[key(name)] for name in targets}


def _prune_one(module, stat, method, target, shape, blocksize, damp) -> float | None:
    weight = get_weight_2d(module)
    if method == "wanda":
        pruned = wanda_pruned(weight, stat.norms(), target, shape)
        set_weight_2d(module, weight.masked_fill(pruned.to(weight.device), 0))
        return None
    hessian = stat.matrix()
    new, _pruned = sparsegpt_prune(weight, hessian, target, shape, blocksize=blocksize, damp=damp)
    error = reconstruction_error(weight, new, hessian)
    set_weight_2d(module, new.to(weight.device))
    return error


def _prune_and_report(report, name, module, stat, target, ratios, shape, blocksize, damp) -> None:
    method = report.method
    if stat.tokens == 0:
        report.skipped[name] = "never called during calibration"
        logger.warning("%s: %s was never called during calibration; left dense", method, name)
        return
    error = _prune_one(module, stat, method, target, shape, blocksize, damp)
    weight = get_weight_2d(module)
    reached = float((weight == 0).sum()) / weight.numel()
    report.layers.append(LayerReport(name, tuple(weight.shape), target, reached, ratios.get(name), error))
    logger.debug(
        "%s %s: %s pruned to %.4f (target %.4f)", method, shape.text, name, reached, target
    )  # one line per layer


def _keep(record: Record):
    return record.keep


def prune_posttraining(
    model: nn.Module,
    calibration_batches: Iterable,
    method: str,
    sparsity: float | None = None,
    pattern: str = "1x1",
    *,
    calibration_samples: int | None = 128,
    layers_per_pass: int | str | None = "block",
    owl: bool = False,
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    owl_groups: str = "block",
    owl_clamp: bool = False,
    op_names: list[str] | None = None,
    skip: list[str] | None = None,
    include_head: bool = False,
    stats_device: torch.device | str | None = None,
    execution_device: torch.device | str | None = None,
    blocksize: int = 128,
    damp: float = 0.01,
) -> PosttrainingReport:
    """Prune ``model``'s Linear/Conv1D layers in place, once, from calibration data.

    Args:
        model: The model; it is put in eval mode for calibration and its mode restored after.
        calibration_batches: Batches as the task yields them: dicts (``model(**batch)``),
            ``(inputs, labels)`` tuples (``model(inputs)``) or tensors.
        method: ``"wanda"`` or ``"sparsegpt"``.
        sparsity: Target fraction of zeros per layer (``0 <= s < 1``); ``None`` or N/M for N:M.
        pattern: ``"1x1"`` (unstructured), ``"N:M"`` or an NxM block (see the method modules).
        calibration_samples: At most this many samples (first dimension) are used; ``None``: all.
        layers_per_pass: Layers calibrated per pass (see the module docstring): ``"block"``
            (default, the authors' drivers), ``"true-sequential"`` (one layer per pass), an int
            or ``None`` (all in one pass).
        owl: Outlier-weighted layer-wise sparsity (OWL; the targets' overall sparsity stays ``sparsity``).
        owl_m: OWL's outlier threshold, as a multiple of a group's mean Wanda score.
        owl_lambda: OWL's lambda: ratios are mapped to ``[0, 2*lambda]`` before centring.
        owl_groups: ``"block"`` (default, the authors' code: one ratio and one sparsity per
            numbered block) or ``"layer"`` (per Linear/Conv1D).
        owl_clamp: Shrink every deviation into ``±owl_lambda`` (the paper's text); default
            ``False`` (the authors' code).
        op_names: Regexes; only matching layers are pruned (default: all targets).
        skip: Regexes of layers to leave dense.
        include_head: Prune the classifier head too (skipped by default).
        stats_device: Where statistics are accumulated and SparseGPT runs (default: each
            layer's device; ``"cpu"`` offloads them from a GPU).
        execution_device: Onload the model one numbered block at a time to this device
            (:mod:`~workbench.pruner.posttraining.onload`); the model stays where it is.
            Default ``None``: the model runs where it is.
        blocksize: SparseGPT's lazy column block.
        damp: SparseGPT's dampening, a fraction of the Hessian's mean diagonal.

    Returns:
        A :class:`PosttrainingReport` with each pruned layer's target and reached sparsity.

    Example:
        >>> torch.manual_seed(0) and None
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        >>> report = prune_posttraining(model, [torch.randn(32, 8)], "wanda", 0.5)
        >>> [(r.name, r.sparsity) for r in report.layers]
        [('0', 0.5)]
    """
    shape = parse_shape(pattern)
    sparsity = check_posttraining_options(
        method,
        sparsity,
        pattern,
        layers_per_pass=layers_per_pass,
        owl=owl,
        owl_m=owl_m,
        owl_lambda=owl_lambda,
        owl_groups=owl_groups,
        owl_clamp=owl_clamp,
        blocksize=blocksize,
        damp=damp,
        execution_device=execution_device,
    )
    batches = bound_batches(calibration_batches, calibration_samples)
    targets = find_targets(model, op_names, skip, include_head)
    for name, module in targets.items():
        shape.check(*get_weight_2d(module).shape, name)
    blocks = None if execution_device is None else blocks_of(model, targets)
    samples = sum(batch_size(b) for b in batches)
    report = PosttrainingReport(method, shape.text, samples, 0, layers_per_pass, blocks is not None)
    stat_cls = SumSquares if method == "wanda" else Hessian
    was_training = model.training
    model.eval()
    try:
        per_layer, ratios = {n: sparsity for n in targets}, {}
        if owl:
            maker = _stat_maker(SumSquares, stats_device)
            if blocks is None:
                ratios = _owl_ratios(targets, capture(model, batches, targets, maker), owl_m, owl_groups)
            else:

                def visit_norms(name, block, records):  # ratios while the block's weights are onloaded
                    layers = {n: targets[n] for n in blocks[name]}
                    norms = capture(block, records, layers, maker, forward=call_block, mask_of=_keep)
                    ratios.update(_owl_ratios(layers, norms, owl_m, owl_groups))

                run_blocks(model, blocks, batches, execution_device, visit_norms)
            per_layer = _owl_targets(ratios, targets, sparsity, owl_lambda, owl_groups, owl_clamp)

        def prune_groups(groups: list[list[str]], run: Capture, once: bool) -> None:
            for group in groups:
                layers = {n: targets[n] for n in group}
                stats = run(layers, _stat_maker(stat_cls, stats_device), targets[group[-1]] if once else None)
                report.passes += 1
                for name in group:
                    _prune_and_report(
                        report, name, targets[name], stats.pop(name), per_layer[name], ratios, shape, blocksize, damp
                    )

        if blocks is None:
            order, once = call_order(model, batches[0], targets)
            prune_groups(
                _groups(order, layers_per_pass), lambda ly, mk, stop: capture(model, batches, ly, mk, stop), once
            )
        else:

            def visit(name, block, records):
                mine = {n: targets[n] for n in blocks[name]}
                order, once = call_order(block, records[0], mine, forward=call_block)

                def run(ly, mk, stop):
                    return capture(block, records, ly, mk, stop, forward=call_block, mask_of=_keep)

                prune_groups(_groups(order, layers_per_pass), run, once)

            run_blocks(model, blocks, batches, execution_device, visit)
    finally:
        model.train(was_training)
    return report
