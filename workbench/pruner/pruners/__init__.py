"""Pruners: the objects that run the pruning process for one pruner config.

``PRUNERS`` maps a pruner name ("basic", "pattern_lock", "progressive") to its class;
:func:`get_pruner` picks the class from the config's ``pruning_type`` and
:func:`parse_valid_pruner_types` lists every accepted ``pruning_type`` string.
"""
from __future__ import annotations

from ..config_check import parse_pruning_type, parse_valid_pruner_types
from ..registry import Registry

PRUNERS = Registry("pruner")


def register_pruner(name: str):
    """Class decorator registering a pruner class under ``name``."""
    return PRUNERS.register(name)


def get_pruner(config: dict, modules: dict):
    """Build the pruner a resolved config asks for over ``modules`` (``{name: module}``).

    Example:
        >>> import torch
        >>> from workbench.pruner import process_config, WeightPruningConfig
        >>> cfg = process_config(WeightPruningConfig(pruning_type="magnitude"))[0]
        >>> type(get_pruner(cfg, {"fc": torch.nn.Linear(8, 8)})).__name__
        'BasicPruner'
    """
    name = parse_pruning_type(config["pruning_type"])[0]
    return PRUNERS.lookup(name)(config, modules)


from . import basic, pattern_lock, progressive  # noqa: E402,F401  (registers the built-in pruners)

__all__ = ["PRUNERS", "get_pruner", "parse_valid_pruner_types", "register_pruner"]
