"""The workbench's pruning library: INC's PyTorch weight-pruning API, reimplemented.

Configs written for Intel Neural Compressor's pruner (``WeightPruningConfig``, its keys and
defaults) work unchanged; see ``docs/semantics.md`` for what every knob means.

Extension points: a pattern family, criterion, scheduler, decay curve, pruner or regulariser
is one module with a ``register_*`` decorator; config parsing, validation and the ``list_*``
queries learn it from the registries. Invalid user input raises :class:`ConfigError`.

Example:
    >>> import torch
    >>> from workbench.pruner import WeightPruningConfig, prepare_pruning, get_sparsity_ratio
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> config = WeightPruningConfig(target_sparsity=0.5, pruning_type="magnitude", start_step=0, end_step=0)
    >>> pruning = prepare_pruning(model, config)
    >>> pruning.on_train_begin(); pruning.on_step_begin(0)
    >>> get_sparsity_ratio(pruning.pruners, model)[0]
    0.5
"""

from __future__ import annotations

from typing import Any

from workbench._lazy import lazy_exports

__all__ = [
    "CRITERIA",
    "SCOPES",
    "DECAYS",
    "DEFAULT_CONFIG",
    "PATTERNS",
    "PRUNERS",
    "REGS",
    "SCHEDULERS",
    "VALID_KEYS",
    "BasePattern",
    "BasePruner",
    "ConfigError",
    "LayerInfo",
    "PatternSpec",
    "PosttrainingReport",
    "PrunerConfig",
    "Pruning",
    "PruningCriterion",
    "Registry",
    "Scheduler",
    "WeightPruningConfig",
    "check_config",
    "check_key_validity",
    "did_you_mean",
    "find_heads",
    "format_pruning_type",
    "generate_pruner_config",
    "get_criterion",
    "get_pattern",
    "get_pruner",
    "get_reg",
    "get_scheduler",
    "get_sparsity_ratio",
    "layer_counts",
    "layer_sparsity",
    "list_criteria",
    "list_decays",
    "list_pattern_examples",
    "list_pattern_families",
    "list_pruner_types",
    "list_pruning_types",
    "list_regs",
    "list_schedulers",
    "parse_last_linear",
    "parse_pattern",
    "parse_pruning_type",
    "parse_to_prune",
    "parse_valid_pruner_types",
    "prepare_pruning",
    "prune_posttraining",
    "check_posttraining_options",
    "process_and_check_config",
    "process_config",
    "process_weight_config",
    "process_yaml_config",
    "read_yaml_file",
    "read_yaml_text",
    "register_criterion",
    "register_decay",
    "register_pattern",
    "register_pruner",
    "register_reg",
    "register_scheduler",
    "reset_none_to_default",
    "resolve_config",
    "tied_weights",
    "update_params",
]

_INC_SLIM = ("model_slim", "parse_auto_slim_config")


def _inc_slim(name: str) -> Any:
    """INC's slimming names, as ``neural_compressor.compression.pruner`` has them (imported on first use)."""
    if name in _INC_SLIM:
        from .slim import inc  # start-up: slimming loads only when INC's names are asked for

        return getattr(inc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _load() -> dict:
    """The package's modules, imported on first use of an exported name (workbench._lazy)."""
    from .catalog import (
        list_criteria,
        list_decays,
        list_pattern_examples,
        list_pattern_families,
        list_pruner_types,
        list_pruning_types,
        list_regs,
        list_schedulers,
    )
    from .config import (
        SCOPES,
        WeightPruningConfig,
        check_config,
        check_key_validity,
        generate_pruner_config,
        parse_pruning_type,
        process_and_check_config,
        process_config,
        process_weight_config,
        process_yaml_config,
        reset_none_to_default,
        resolve_config,
        update_params,
    )
    from .config_types import DEFAULT_CONFIG, VALID_KEYS, PrunerConfig
    from .criteria import CRITERIA, PruningCriterion, get_criterion, register_criterion
    from .errors import ConfigError
    from .heads import find_heads, tied_weights
    from .patterns import PATTERNS, BasePattern, PatternSpec, get_pattern, parse_pattern, register_pattern
    from .posttraining import PosttrainingReport, check_posttraining_options, prune_posttraining
    from .pruners import PRUNERS, BasePruner, format_pruning_type, get_pruner, parse_valid_pruner_types, register_pruner
    from .pruning import Pruning, prepare_pruning
    from .registry import Registry, did_you_mean
    from .regs import REGS, get_reg, register_reg
    from .schedulers import DECAYS, SCHEDULERS, Scheduler, get_scheduler, register_decay, register_scheduler
    from .sparsity import LayerInfo, get_sparsity_ratio, layer_counts, layer_sparsity, parse_last_linear, parse_to_prune
    from .yaml_read import read_yaml_file, read_yaml_text

    return locals()


__getattr__, __dir__ = lazy_exports(__name__, _load, fallback=_inc_slim)
