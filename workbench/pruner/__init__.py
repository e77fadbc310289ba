"""The workbench's pruning library: INC's PyTorch weight-pruning API, reimplemented.

Configs written for Intel Neural Compressor's pruner (``WeightPruningConfig``, its keys and
defaults) work unchanged; see ``PRUNING-SEMANTICS.md`` for what every knob means.

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

from .config import (
    WeightPruningConfig,
    check_config,
    check_key_validity,
    generate_pruner_config,
    process_and_check_config,
    process_config,
    process_weight_config,
    process_yaml_config,
    reset_none_to_default,
    update_params,
)
from .criteria import CRITERIA, get_criterion, register_criterion
from .patterns import PATTERNS, get_pattern, parse_pattern, register_pattern
from .pruners import PRUNERS, get_pruner, parse_valid_pruner_types, register_pruner
from .pruning import Pruning, prepare_pruning
from .schedulers import SCHEDULERS, get_scheduler, register_scheduler
from .sparsity import LayerInfo, get_sparsity_ratio, layer_sparsity, parse_last_linear, parse_to_prune

__all__ = [
    "CRITERIA", "PATTERNS", "PRUNERS", "SCHEDULERS", "LayerInfo", "Pruning", "WeightPruningConfig",
    "check_config", "check_key_validity", "generate_pruner_config", "get_criterion", "get_pattern",
    "get_pruner", "get_scheduler", "get_sparsity_ratio", "layer_sparsity", "parse_last_linear",
    "parse_pattern", "parse_to_prune", "parse_valid_pruner_types", "prepare_pruning",
    "process_and_check_config", "process_config", "process_weight_config", "process_yaml_config",
    "register_criterion", "register_pattern", "register_pruner", "register_scheduler",
    "reset_none_to_default", "update_params",
]
