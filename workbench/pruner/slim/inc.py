"""INC 3.7.1's slimming entry points, ``model_slim`` and ``parse_auto_slim_config``, over this package.

Code ported from ``neural_compressor.compression.pruner`` keeps its calls: both take INC's
arguments (``dataloader`` is accepted and not needed: the FFN pairs and attention blocks are
found from the modules, :mod:`.pattern_analyzer`). Unlike INC, which logs a warning and returns
the model unchanged when slimming fails, a bad argument is a :class:`ConfigError`; and a key of
``**kwargs`` that is not a pruning config key is an error naming it (INC would pass it on).

Example:
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> parse_auto_slim_config(m, ffn2_sparsity=0.5, pruning_type="snip_momentum")
    [{'op_names': ['^2$'], 'pattern': 'channelx1', 'target_sparsity': 0.5, 'pruning_type': 'snip_momentum'}]
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from ..config_types import VALID_KEYS
from ..errors import ConfigError
from ..registry import unknown_key_message
from .api import slim_model
from .configs import slim_pruning_configs

__all__ = ["model_slim", "parse_auto_slim_config"]

logger = logging.getLogger(__name__)


def model_slim(model: nn.Module, dataloader: Any = None, round_multiplier: int = 0) -> nn.Module:
    """INC's ``model_slim``: remove dead FFN channels and attention heads in place; returns ``model``.

    Args:
        model: A pruned model (masks applied).
        dataloader: INC's tracing data; accepted, not needed.
        round_multiplier: Keep a multiple of this many FFN hidden channels (0 or 1: no rounding).
    """
    if isinstance(round_multiplier, bool) or not isinstance(round_multiplier, int) or round_multiplier < 0:
        raise ConfigError(f"round_multiplier={round_multiplier!r} is not allowed; it must be an integer >= 0")
    report = slim_model(model, round_to=max(1, round_multiplier))
    logger.info("model_slim: %d -> %d parameters", report.params_before, report.params_after)
    return model


def parse_auto_slim_config(
    model: nn.Module, dataloader: Any = None, ffn2_sparsity: float = 0.0, mha_sparsity: float = 0.0, **kwargs: Any
) -> list[dict]:
    """INC's ``parse_auto_slim_config``: ``pruning_configs`` entries whose result :func:`model_slim` removes.

    ``ffn2_sparsity`` prunes the FFN down projections (``channelx1``), ``mha_sparsity`` whole heads
    (:func:`~workbench.pruner.slim.slim_pruning_configs`); ``**kwargs`` (pruning config keys such as
    ``pruning_type``, ``start_step``) go into every entry.
    """
    for key in kwargs:
        if key not in VALID_KEYS:
            raise ConfigError(unknown_key_message(key, VALID_KEYS))
    return slim_pruning_configs(model, ffn_sparsity=ffn2_sparsity, head_sparsity=mha_sparsity, **kwargs)
