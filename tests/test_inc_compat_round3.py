"""INC 3.7.1 configs and code as INC accepts them (issue 29, point 7).

``pruning_op_types`` as a bare string, a progressive pruner's ``progressive_configs`` (a live
view of its resolved settings), INC's slimming names with INC's signatures; unknown keys stay
errors.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import workbench.pruner as pruner_api
from workbench.pruner import ConfigError, WeightPruningConfig, prepare_pruning


def _conv_and_linear() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.parametrize(
    "config",
    [
        WeightPruningConfig(pruning_op_types="Linear", target_sparsity=0.5, pattern="4x1"),
        {"pruning_configs": [{"pruning_op_types": "Linear"}], "target_sparsity": 0.5, "pattern": "4x1"},
        {"pruning_configs": [{}], "pruning_op_types": "Linear", "target_sparsity": 0.5, "pattern": "4x1"},
    ],
    ids=["WeightPruningConfig", "local", "global"],
)
def test_pruning_op_types_as_one_string_is_one_type(config):
    pruning = prepare_pruning(_conv_and_linear(), config)
    assert pruning.pruners[0].config.pruning_op_types == ["Linear"]
    pruned = {i.name: i.pruned for i in pruning.describe()}
    assert pruned == {"0": False, "2": True, "4": False}  # the Conv2d is not a Linear; 4 is the head


@pytest.mark.parametrize("value", [3, ["Linear", 3], {"Linear": 1}])
def test_pruning_op_types_that_are_neither_a_string_nor_strings_stay_errors(value):
    with pytest.raises(ConfigError, match="pruning_op_types"):
        prepare_pruning(_conv_and_linear(), {"pruning_configs": [{}], "pruning_op_types": value})


def _progressive(**changes):
    config = {
        "pruning_configs": [{}],
        "pruning_type": "snip_momentum_progressive",
        "pattern": "4x1",
        "target_sparsity": 0.5,
        "start_step": 0,
        "end_step": 16,
        "pruning_frequency": 8,
        **changes,
    }
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.Linear(16, 2))
    return prepare_pruning(model, config).pruners[0]


def test_progressive_configs_is_incs_view_of_the_resolved_config():
    pruner = _progressive(progressive_steps=2, use_global=False)
    assert dict(pruner.progressive_configs) == {
        "progressive_steps": 2,
        "progressive_type": "scores",
        "use_global": False,
    }
    pruner.progressive_configs["progressive_type"] = "linear"  # INC code does this
    pruner.progressive_configs["progressive_steps"] = 4
    pruner.progressive_configs.update(use_global=True)
    assert (pruner.progressive_type, pruner.progressive_steps, pruner.use_global) == ("linear", 4, True)
    assert pruner.interval == 2  # pruning_frequency 8 // 4 sub-steps: the write takes effect
    assert pruner.progressive_configs["progressive_type"] == "linear"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("progressive_logger", True, "'progressive_logger' is not a key; allowed: progressive_steps"),
        ("progressive_type", "cubic", "progressive_type: 'cubic' is not allowed; allowed: scores, linear"),
        ("progressive_steps", 0, "progressive_steps: 0 is not allowed; allowed: an integer >= 1"),
        ("use_global", "yes", "use_global: 'yes' is not allowed; allowed: True or False"),
    ],
)
def test_progressive_configs_refuses_unknown_keys_and_bad_values(key, value, words):
    pruner = _progressive()
    before = dict(pruner.progressive_configs)
    with pytest.raises(ConfigError, match=words):
        pruner.progressive_configs[key] = value
    assert dict(pruner.progressive_configs) == before
    with pytest.raises(ConfigError, match="cannot be deleted"):
        del pruner.progressive_configs["use_global"]


def test_linear_progressive_type_needs_a_block_pattern():
    pruner = _progressive(pattern="2:4", target_sparsity=0.5)
    with pytest.raises(ConfigError, match="'linear' needs a block pattern"):
        pruner.progressive_configs["progressive_type"] = "linear"


def test_incs_slimming_names_have_incs_signatures():
    assert list(inspect.signature(pruner_api.model_slim).parameters) == ["model", "dataloader", "round_multiplier"]
    assert list(inspect.signature(pruner_api.parse_auto_slim_config).parameters) == [
        "model",
        "dataloader",
        "ffn2_sparsity",
        "mha_sparsity",
        "kwargs",
    ]
    assert inspect.signature(pruner_api.model_slim).parameters["round_multiplier"].default == 0
    with pytest.raises(AttributeError):
        pruner_api.no_such_name  # noqa: B018


def test_parse_auto_slim_config_then_model_slim_removes_the_pruned_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    configs = pruner_api.parse_auto_slim_config(model, None, ffn2_sparsity=0.5, pruning_type="magnitude")
    assert configs == [
        {"op_names": ["^2$"], "pattern": "channelx1", "target_sparsity": 0.5, "pruning_type": "magnitude"}
    ]
    pruning = prepare_pruning(model, WeightPruningConfig(configs, start_step=0, end_step=0))
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    pruning.on_after_optimizer_step()
    pruning.on_train_end()
    x = torch.randn(5, 8)
    before = model(x)
    assert pruner_api.model_slim(model, None, round_multiplier=0) is model
    assert (model[0].out_features, model[2].in_features) == (16, 16)
    torch.testing.assert_close(model(x), before)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda m: pruner_api.parse_auto_slim_config(m, ffn2_sparsity=0.5, no_such_key=1), "no_such_key"),
        (lambda m: pruner_api.parse_auto_slim_config(m, ffn2_sparsity=1.5), "ffn_sparsity=1.5"),
        (lambda m: pruner_api.model_slim(m, round_multiplier=-1), "round_multiplier=-1"),
    ],
)
def test_incs_slimming_names_refuse_bad_arguments(call, words):
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    with pytest.raises(ConfigError, match=words):
        call(model)
