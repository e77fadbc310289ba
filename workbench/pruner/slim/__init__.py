"""Slimming: turn channel- and head-pruned layers into smaller dense layers, and measure the gain.

After ``channelx1`` (on a down projection) or ``1xchannel`` (on an up projection) pruning of FFN
pairs, and after head pruning of self attention, :func:`slim_model` removes the dead channels and
heads so the model is smaller and faster with the same outputs (INC 3.7.1's ``model_slim``).
:func:`measure` times dense, masked and slimmed models; :func:`to_semi_structured` puts 2:4-pruned
Linear weights into PyTorch's semi-structured sparse format on CUDA.
"""

from __future__ import annotations

from .api import count_parameters, slim_model
from .configs import slim_pruning_configs
from .head_slim import dead_heads, slim_heads
from .inc import model_slim, parse_auto_slim_config
from .linear_slim import dead_channels, slim_pair
from .pattern_analyzer import AttentionGroup, FfnPair, find_attention_groups, find_ffn_pairs
from .report import SlimEntry, SlimReport
from .semi_structured import is_two_four, to_semi_structured
from .speed import SpeedRow, measure, measure_latency

__all__ = [
    "AttentionGroup",
    "FfnPair",
    "SlimEntry",
    "SlimReport",
    "SpeedRow",
    "count_parameters",
    "dead_channels",
    "dead_heads",
    "find_attention_groups",
    "find_ffn_pairs",
    "is_two_four",
    "measure",
    "measure_latency",
    "model_slim",
    "parse_auto_slim_config",
    "slim_heads",
    "slim_model",
    "slim_pair",
    "slim_pruning_configs",
    "to_semi_structured",
]
