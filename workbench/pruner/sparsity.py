"""Which layers a pruner takes, and how sparse they are.

A module is a candidate if its class name contains one of ``pruning_op_types`` and it has a
``weight``; ``op_names`` / ``excluded_op_names`` are regexes matched with ``re.search`` on module
names. The classifier head (the last Linear on the path to the model's output, see
:func:`parse_last_linear`) is excluded unless an ``op_names`` regex matches its whole name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .config_types import PrunerConfig
from .errors import ConfigError
from .inputs import check_weights_have_data

logger = logging.getLogger(__name__)


@dataclass
class LayerInfo:
    """One candidate layer: whether it is pruned, and why (or why not).

    Attributes:
        name: Module name (dots kept).
        type: Module class name.
        shape: Weight shape.
        pruned: Whether a pruner prunes it.
        reason: Why, e.g. ``"pruned by pruner 0 (4x1)"``, ``"classifier head"``,
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


def parse_last_linear(model: nn.Module) -> str | None:
    """Name of the classifier head: the last Linear on the path to the model's output.

    Traces the model with ``torch.fx`` and walks back from the output to the nearest Linear;
    if the model cannot be traced, falls back to the last Linear in registration order.

    Example:
        >>> import torch
        >>> parse_last_linear(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
        '2'
    """
    linears = [n for n, m in model.named_modules() if n and "Linear" in type(m).__name__]
    if not linears:
        return None
    try:
        import torch.fx  # start-up: torch.fx loads only when a classifier head is looked for

        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "use the fallback"
        return linears[-1]
    modules = dict(model.named_modules())
    frontier = [n for n in graph.nodes if n.op == "output"]
    seen = set()
    while frontier:
        nxt = []
        for node in frontier:
            for arg in node.all_input_nodes:
                if arg in seen:
                    continue
                seen.add(arg)
                if arg.op == "call_module" and "Linear" in type(modules.get(arg.target)).__name__:
                    return arg.target
                nxt.append(arg)
        frontier = nxt
    return linears[-1]


def classify_layers(
    configs: list[PrunerConfig | dict], model: nn.Module
) -> tuple[list[dict[str, nn.Module]], list[LayerInfo]]:
    """Assign every weighted module to at most one pruner config, with the reason for each.

    A layer matched by several pruner configs goes to the first one.
    Returns one ``{name: module}`` per config and a :class:`LayerInfo` per weighted module.
    """
    configs = [PrunerConfig.from_mapping(c) for c in configs]
    head = parse_last_linear(model)
    chosen: list[dict[str, nn.Module]] = [{} for _ in configs]
    infos: list[LayerInfo] = []
    for name, module in _weighted_modules(model):
        kind = type(module).__name__
        shape = tuple(module.weight.shape)
        reason, owner = None, None
        for i, cfg in enumerate(configs):
            why = _why_not(name, kind, cfg, head)
            if why is None:
                owner = i
                break
            reason = reason or why
        if owner is None:
            infos.append(LayerInfo(name, kind, shape, False, reason or "no pruner config"))
            continue
        chosen[owner][name] = module
        infos.append(LayerInfo(name, kind, shape, True, f"pruned by pruner {owner} ({configs[owner].pattern})", owner))
    return chosen, infos


def _why_not(name: str, kind: str, cfg: PrunerConfig, head: str | None) -> str | None:
    op_types = cfg.pruning_op_types
    if not any(t in kind for t in op_types):
        return f"not a prunable type ({kind} not in pruning_op_types {op_types})"
    op_names = cfg.op_names
    if name == head and not any(re.fullmatch(p, name) for p in op_names):
        return "classifier head (last Linear before the output)"
    if op_names and not any(re.search(p, name) for p in op_names):
        return f"not matched by op_names {op_names}"
    for pattern in cfg.excluded_op_names:
        if re.search(pattern, name):
            return f"excluded by excluded_op_names {pattern!r}"
    return None


def nothing_selected_error(
    index: int, config: PrunerConfig, model: nn.Module, layers: list[LayerInfo], invalid: dict[str, str]
) -> ConfigError:
    """The error for pruner ``index`` selecting no layer: it names the pruner, its ``op_names`` and
    ``excluded_op_names``, and every candidate layer with the reason it was left out.

    ``layers`` is what :func:`classify_layers` returned (a layer owned by another pruner says so);
    ``invalid`` maps layers this pruner's pattern refused to the reason.
    """
    head = parse_last_linear(model)
    why = []
    for info in layers:
        if info.name in invalid:
            reason = invalid[info.name]
        elif info.pruned and info.pruner != index:
            reason = f"taken by pruner {info.pruner} (the first matching pruner config owns a layer)"
        else:
            reason = _why_not(info.name, info.type, config, head) or info.reason
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


def get_sparsity_ratio(pruners: list, model: nn.Module) -> tuple[float, float, float]:
    """``(elementwise_over_matmul_gemm_conv, elementwise_over_all, blockwise_over_matmul_gemm_conv)``.

    Zero weights over all weights of the pruned layers; zero weights of the pruned layers over
    all parameters of the model; pruned pattern units (blocks, or N:M groups holding N zeros)
    over all units of the pruned layers. Measured on the weights themselves.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> get_sparsity_ratio([], model)
        (0.0, 0.0, 0.0)
    """
    zeros = numel = units_zero = units = 0
    for pruner in pruners:
        check_weights_have_data(pruner.modules)
        for name, module in pruner.modules.items():
            weight = module.weight.detach()
            zeros += int(torch.count_nonzero(weight == 0))
            numel += weight.numel()
            z, u = pruner.pattern.zero_units(name, weight)
            units_zero += z
            units += u
    total = sum(p.numel() for p in model.parameters())
    return (zeros / numel if numel else 0.0, zeros / total if total else 0.0, units_zero / units if units else 0.0)


def layer_sparsity(pruners: list) -> dict[str, tuple[float, float]]:
    """``{layer: (elementwise, blockwise)}`` for every pruned layer, measured on the weights."""
    out = {}
    for pruner in pruners:
        check_weights_have_data(pruner.modules)
        for name, module in pruner.modules.items():
            weight = module.weight.detach()
            z, u = pruner.pattern.zero_units(name, weight)
            out[name] = (int(torch.count_nonzero(weight == 0)) / weight.numel(), z / u if u else 0.0)
    return out
