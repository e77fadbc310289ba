"""``prune_posttraining``: one-shot Wanda or SparseGPT pruning of a model from calibration batches.

Layers are pruned in the order the model first calls them (probed on the first batch),
``layers_per_pass`` at a time: each pass runs all calibration batches through the model as it is
NOW (earlier layers already pruned), with hooks on the pass's layers only, so later layers are
calibrated on the pruned model's activations and memory holds only those layers' statistics.

* ``layers_per_pass=1`` (default): fully sequential, one pass over the calibration data per layer;
* ``"block"``: the layers of one numbered block (``transformer.h.3.*``) per pass, as the reference
  implementations do per transformer block: within a block, layers see their inputs as they were
  before the block was pruned;
* ``None``: every layer in one pass (not sequential; every statistic in memory at once).

When every target runs exactly once per forward pass, a pass stops right after its last layer
has run, so early layers' passes are cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .calibration import Hessian, SumSquares, batch_size, bound_batches, call_order, capture
from .masks import Shape, parse_shape
from .owl import outlier_ratio, owl_sparsities
from .report import LayerReport, PosttrainingReport
from .sparsegpt import reconstruction_error, sparsegpt_prune
from .targets import find_targets, get_weight_2d, in_features, set_weight_2d
from .wanda import wanda_mask, wanda_scores

__all__ = ["METHODS", "check_posttraining_options", "prune_posttraining"]

logger = logging.getLogger(__name__)

METHODS = ("wanda", "sparsegpt")
"""The post-training methods :func:`prune_posttraining` knows."""
_OPTIONS = ("layers_per_pass", "owl", "owl_m", "owl_lambda", "blocksize", "damp")


def check_posttraining_options(
    method: str,
    sparsity: float | None = None,
    pattern: str = "1x1",
    *,
    layers_per_pass: int | str | None = 1,
    owl: bool = False,
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    blocksize: int = 128,
    damp: float = 0.01,
) -> float:
    """Check :func:`prune_posttraining`'s options without a model; returns the per-layer sparsity.

    An experiment checks its ``pruning.posttraining`` options with this when the file is read.

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
    shape = parse_shape(pattern)
    sparsity = _check(method, sparsity, shape, layers_per_pass, owl)
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ConfigError(f"blocksize: {blocksize!r} is not allowed; allowed: an int >= 1")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 <= damp < 1:
        raise ConfigError(f"damp: {damp!r} is out of range; allowed: 0 <= damp < 1")
    if isinstance(owl_m, bool) or not isinstance(owl_m, (int, float)) or owl_m <= 0:
        raise ConfigError(f"owl_m: {owl_m!r} is out of range; allowed: a number > 0")
    if isinstance(owl_lambda, bool) or not isinstance(owl_lambda, (int, float)) or not 0 <= owl_lambda < 1:
        raise ConfigError(f"owl_lambda: {owl_lambda!r} is out of range; allowed: 0 <= owl_lambda < 1")
    return sparsity


def _check(method: str, sparsity: float | None, shape: Shape, layers_per_pass: int | str | None, owl: bool) -> float:
    if method not in METHODS:
        raise ConfigError(f"method: {method!r} is not a post-training method; allowed: {', '.join(METHODS)}")
    if layers_per_pass not in (None, "block") and (
        isinstance(layers_per_pass, bool) or not isinstance(layers_per_pass, int) or layers_per_pass < 1
    ):
        raise ConfigError(f"layers_per_pass: {layers_per_pass!r} is not allowed; allowed: an int >= 1, 'block' or None")
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


def _block_key(name: str) -> str:
    """The repeated block a layer belongs to: its name up to the first numeric part ("h.3.attn.c_attn" -> "h.3")."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return name


def _groups(order: list[str], layers_per_pass: int | str | None) -> list[list[str]]:
    """Consecutive layers (in call order) calibrated in one pass."""
    if layers_per_pass == "block":
        groups: list[list[str]] = []
        for name in order:
            if groups and _block_key(groups[-1][-1]) == _block_key(name):
                groups[-1].append(name)
            else:
                groups.append([name])
        return groups
    step = layers_per_pass or len(order)
    return [order[i : i + step] for i in range(0, len(order), step)]


def _owl_targets(model, batches, targets, sparsity, m, lam, stats_device) -> tuple[dict, dict]:
    """One pass of input norms for every layer -> outlier ratios -> per-layer sparsity."""
    norms = capture(
        model, batches, targets, lambda _n, mod: SumSquares(in_features(mod), stats_device or mod.weight.device)
    )
    ratios = {n: outlier_ratio(wanda_scores(get_weight_2d(mod), norms[n].norms()), m) for n, mod in targets.items()}
    return owl_sparsities(ratios, sparsity, lam), ratios


def _prune_one(module, stat, method, target, shape, blocksize, damp) -> float | None:
    weight = get_weight_2d(module)
    if method == "wanda":
        mask = wanda_mask(weight, stat.norms(), target, shape)
        set_weight_2d(module, weight.masked_fill(mask.to(weight.device), 0))
        return None
    hessian = stat.matrix()
    new, _mask = sparsegpt_prune(weight, hessian, target, shape, blocksize=blocksize, damp=damp)
    error = reconstruction_error(weight, new, hessian)
    set_weight_2d(module, new.to(weight.device))
    return error


def prune_posttraining(
    model: nn.Module,
    calibration_batches: Iterable,
    method: str,
    sparsity: float | None = None,
    pattern: str = "1x1",
    *,
    calibration_samples: int | None = 128,
    layers_per_pass: int | str | None = 1,
    owl: bool = False,
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    op_names: list[str] | None = None,
    skip: list[str] | None = None,
    include_head: bool = False,
    stats_device: torch.device | str | None = None,
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
        layers_per_pass: Layers calibrated per pass (see the module docstring): an int, ``"block"``
            (the layers of one numbered block, e.g. ``transformer.h.3.*``) or ``None`` (all in one).
        owl: Outlier-weighted per-layer sparsity (mean = ``sparsity``, within ``±owl_lambda``).
        owl_m: OWL's outlier threshold, as a multiple of a layer's mean Wanda score.
        owl_lambda: OWL's largest deviation from ``sparsity``.
        op_names: Regexes; only matching layers are pruned (default: all targets).
        skip: Regexes of layers to leave dense.
        include_head: Prune the classifier head too (skipped by default).
        stats_device: Where statistics are accumulated and SparseGPT runs (default: each
            layer's device; ``"cpu"`` offloads them from a GPU).
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
    options = dict(zip(_OPTIONS, (layers_per_pass, owl, owl_m, owl_lambda, blocksize, damp), strict=True))
    sparsity = check_posttraining_options(method, sparsity, pattern, **options)
    batches = bound_batches(calibration_batches, calibration_samples)
    targets = find_targets(model, op_names, skip, include_head)
    for name, module in targets.items():
        shape.check(*get_weight_2d(module).shape, name)
    was_training = model.training
    model.eval()
    try:
        order, once = call_order(model, batches[0], targets)
        per_layer, ratios = {n: sparsity for n in targets}, {}
        if owl:
            per_layer, ratios = _owl_targets(model, batches, targets, sparsity, owl_m, owl_lambda, stats_device)
        groups = _groups(order, layers_per_pass)
        stat_cls = SumSquares if method == "wanda" else Hessian
        report = PosttrainingReport(method, shape.text, sum(batch_size(b) for b in batches), len(groups))
        for group in groups:
            layers = {n: targets[n] for n in group}
            stats = capture(
                model,
                batches,
                layers,
                lambda _n, mod: stat_cls(in_features(mod), stats_device or mod.weight.device),
                stop_after=targets[group[-1]] if once else None,
            )
            for name in group:
                module = targets[name]
                if stats[name].tokens == 0:
                    report.skipped[name] = "never called during calibration"
                    logger.warning("%s: %s was never called during calibration; left dense", method, name)
                    continue
                error = _prune_one(module, stats.pop(name), method, per_layer[name], shape, blocksize, damp)
                weight = get_weight_2d(module)
                reached = float((weight == 0).sum()) / weight.numel()
                report.layers.append(
                    LayerReport(name, tuple(weight.shape), per_layer[name], reached, ratios.get(name), error)
                )
                logger.debug(  # one line per layer: the report holds them all
                    "%s %s: %s pruned to %.4f (target %.4f)", method, shape.text, name, reached, per_layer[name]
                )
    finally:
        model.train(was_training)
    return report
