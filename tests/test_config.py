"""Tests for pruning configs: resolution, validation, unknown keys, YAML, INC layouts."""

from __future__ import annotations

import copy
import logging

import pytest
import yaml

from workbench.pruner import ConfigError, list_criteria
from workbench.pruner.config import (
    DEFAULT_CONFIG,
    VALID_KEYS,
    WeightPruningConfig,
    check_config,
    check_key_validity,
    generate_pruner_config,
    parse_valid_pruner_types,
    process_and_check_config,
    process_config,
    process_weight_config,
    process_yaml_config,
    reset_none_to_default,
    update_params,
)


def test_defaults_resolve_to_every_key():
    (cfg,) = process_config(WeightPruningConfig())
    assert set(cfg) == set(VALID_KEYS)
    for key, default in DEFAULT_CONFIG.items():
        if key != "scheduler":  # None (not given) resolves to INC's choice
            assert cfg[key] == default, key
    assert (cfg["reg_coeff"], cfg["criterion_type"], cfg["pruner_type"]) == (0.0, "snip_momentum", "basic")
    assert cfg["scheduler"] == "oneshot"


def test_per_pruner_value_beats_global_beats_default():
    config = WeightPruningConfig(
        [{"op_names": ["fc1"], "target_sparsity": 0.3, "pattern": "1x1"}, {"op_names": ["fc2"]}],
        target_sparsity=0.7,
        pruning_type="magnitude",
        criterion_reduce_type="max",
    )
    first, second = process_config(config)
    assert (first["target_sparsity"], first["pattern"], first["op_names"]) == (0.3, "1x1", ["fc1"])
    assert (second["target_sparsity"], second["pattern"], second["op_names"]) == (0.7, "4x1", ["fc2"])
    for cfg in (first, second):  # global kwarg reaches every pruner; untouched keys take the default
        assert cfg["pruning_type"] == "magnitude" and cfg["criterion_reduce_type"] == "max"
        assert cfg["sparsity_decay_type"] == DEFAULT_CONFIG["sparsity_decay_type"]


def test_none_means_not_given():
    (cfg,) = process_config({"pruning_configs": [{"target_sparsity": None}], "target_sparsity": 0.4})
    assert cfg["target_sparsity"] == 0.4
    assert reset_none_to_default({"a": None}, "a", 3) == 3
    assert reset_none_to_default({"a": 1}, "a", 3) == 1
    assert reset_none_to_default(None, "a", 3) is None


def test_empty_pruning_configs_means_one_pruner_from_globals():
    configs = process_config(WeightPruningConfig([], target_sparsity=0.6))
    assert len(configs) == 1 and configs[0]["target_sparsity"] == 0.6


@pytest.mark.parametrize("pruning_type", parse_valid_pruner_types())
def test_pruning_type_parsing(pruning_type):
    end = 0 if pruning_type == "pattern_lock" else 8
    pattern = "1xchannel" if pruning_type == "retrain_free" else "4x1"
    (cfg,) = process_config({"pruning_type": pruning_type, "end_step": end, "pruning_frequency": 4, "pattern": pattern})
    if pruning_type in ("pattern_lock", "block_mask", "retrain_free"):  # fixed names: no criterion
        assert (cfg["pruner_type"], cfg["criterion_type"]) == (pruning_type, None)
    elif pruning_type.endswith("_progressive"):
        assert cfg["pruner_type"] == "progressive"
        assert cfg["criterion_type"] + "_progressive" == pruning_type
    else:
        assert (cfg["pruner_type"], cfg["criterion_type"]) == ("basic", pruning_type)
    assert cfg["criterion_type"] in (*list_criteria(), None)


def test_valid_pruner_types_cover_every_criterion():
    from workbench.pruner import CRITERIA

    types = parse_valid_pruner_types()
    assert len(types) == len(set(types))
    for name, criterion in CRITERIA.items():
        allowed = criterion.pruner_types
        assert name in types  # every criterion works with the basic pruner
        assert (f"{name}_progressive" in types) == (allowed is None or "progressive" in allowed)
    assert {f"{c}_progressive" for c in ("magnitude", "gradient", "snip", "snip_momentum")} <= set(types)
    assert types[-3:] == ["pattern_lock", "block_mask", "retrain_free"]


BAD = [  # (keys added to a valid config, key the message must name, bad value it must show)
    ({"target_sparsity": 1.0}, "target_sparsity", 1.0),
    ({"target_sparsity": -0.1}, "target_sparsity", -0.1),
    ({"target_sparsity": "0.5"}, "target_sparsity", "0.5"),
    ({"target_sparsity": True}, "target_sparsity", True),
    ({"min_sparsity_ratio_per_op": -0.1}, "min_sparsity_ratio_per_op", -0.1),
    ({"max_sparsity_ratio_per_op": 1.2}, "max_sparsity_ratio_per_op", 1.2),
    ({"max_sparsity_ratio_per_op": "x"}, "max_sparsity_ratio_per_op", "x"),
    ({"min_sparsity_ratio_per_op": 0.6, "max_sparsity_ratio_per_op": 0.5}, "min_sparsity_ratio_per_op", 0.6),
    ({"start_step": -1}, "start_step", -1),
    ({"start_step": True}, "start_step", True),
    ({"end_step": 1.5}, "end_step", 1.5),
    ({"start_step": 5, "end_step": 3}, "end_step", 3),
    ({"pruning_frequency": 0}, "pruning_frequency", 0),
    ({"pruning_frequency": 2.0}, "pruning_frequency", 2.0),
    ({"pattern": "4y1"}, "pattern", "4y1"),
    ({"pattern": "0x1"}, "pattern", "0x1"),
    ({"pattern": "2:4", "target_sparsity": 0.6}, "target_sparsity", 0.6),
    ({"pattern": "2:4", "target_sparsity": 0.5, "min_sparsity_ratio_per_op": 0.6}, "min_sparsity_ratio_per_op", 0.6),
    ({"pruning_type": "magnitudes"}, "pruning_type", "magnitudes"),
    ({"pruning_type": 3}, "pruning_type", 3),
    ({"sparsity_decay_type": "quadratic"}, "sparsity_decay_type", "quadratic"),
    ({"pruning_scope": "layer"}, "pruning_scope", "layer"),
    ({"criterion_reduce_type": "median"}, "criterion_reduce_type", "median"),
    ({"reg_type": "l1"}, "reg_type", "l1"),
    ({"reg_type": "group_lasso", "pattern": "2:4", "target_sparsity": 0.5}, "reg_type", "group_lasso"),
    ({"parameters": {"reg_coeff": -1.0}}, "reg_coeff", -1.0),
    ({"parameters": {"reg_coeff": "1e-4x"}}, "reg_coeff", "1e-4x"),
    ({"parameters": "strong"}, "parameters", "strong"),
    ({"progressive_type": "cubic"}, "progressive_type", "cubic"),
    ({"progressive_steps": 0}, "progressive_steps", 0),
    ({"progressive_interval": 0}, "progressive_interval", 0),
    ({"op_names": "fc1"}, "op_names", "fc1"),
    ({"op_names": ["fc(1"]}, "op_names", "fc(1"),
    ({"excluded_op_names": ["[head"]}, "excluded_op_names", "[head"),
    ({"pruning_op_types": ["Linear", 1]}, "pruning_op_types", ["Linear", 1]),
    ({"low_memory_usage": "yes"}, "low_memory_usage", "yes"),
    ({"use_global": 1}, "use_global", 1),
    ({"lock_init_sparsity": "no"}, "lock_init_sparsity", "no"),
    ({"resume_from_pruned_checkpoint": 0}, "resume_from_pruned_checkpoint", 0),
]


@pytest.mark.parametrize(("overrides", "key", "value"), BAD, ids=[f"{k}={v!r}" for _, k, v in BAD])
def test_each_rule_raises_naming_key_and_value(overrides, key, value):
    for config in ({"pruning_configs": [overrides]}, {**overrides}):  # per pruner and global
        with pytest.raises(ConfigError) as info:
            process_config(config)
        assert key in str(info.value) and repr(value) in str(info.value)
    with pytest.raises(ValueError, match=key):
        check_config(overrides)


def test_progressive_accepts_any_frequency_like_inc():
    # INC accepted these and degraded to plain pruning; the pruner does the same (with a warning)
    (cfg,) = process_config({"pruning_type": "snip_progressive", "end_step": 10, "pruning_frequency": 3})
    assert cfg["pruner_type"] == "progressive" and cfg["pruning_frequency"] == 3


def test_pattern_lock_may_exceed_nm_ratio_and_nm_caps_max_ratio():
    (locked,) = process_config({"pruning_type": "pattern_lock", "pattern": "2:4", "target_sparsity": 0.9})
    assert locked["target_sparsity"] == 0.9
    (nm,) = process_config({"pattern": "1:4", "target_sparsity": 0.2, "max_sparsity_ratio_per_op": 0.98})
    assert nm["max_sparsity_ratio_per_op"] == 0.25


@pytest.mark.parametrize("where", ["pruner", "kwarg", "dict_global"])
def test_unknown_key_suggests_nearest(where):
    expected = "unknown pruning config key 'target_sparsty'; did you mean 'target_sparsity'?"
    with pytest.raises(ValueError) as info:
        if where == "pruner":
            WeightPruningConfig([{"target_sparsty": 0.5}])
        elif where == "kwarg":
            WeightPruningConfig(target_sparsty=0.5)
        else:
            process_config({"pruning_configs": [{}], "target_sparsty": 0.5})
    assert str(info.value) == expected


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ValueError, match="'zzz'.*valid keys.*target_sparsity"):
        check_key_validity(VALID_KEYS, [{"zzz": 1}])


@pytest.mark.parametrize(
    "key, nearest",
    [("target_sparsty", "target_sparsity"), ("sparsity", "target_sparsity"), ("prune_freq", "pruning_frequency")],
)
@pytest.mark.parametrize("where", ["pruner", "kwarg", "yaml"])
def test_every_key_inc_ignored_is_an_error_naming_the_nearest_valid_key(tmp_path, key, nearest, where):
    # INC 3.7.1 logged "<key> is not supported for config" and ran on; a typo then silently took
    # the default, so here it is an error, and the message names the nearest valid key
    with pytest.raises(ValueError) as info:
        if where == "pruner":
            process_config(WeightPruningConfig([{key: 1}]))
        elif where == "kwarg":
            process_config(WeightPruningConfig(**{key: 1}))
        else:
            path = tmp_path / "prune.yaml"
            path.write_text(f"pruning:\n  approach:\n    weight_compression_v2:\n      {key}: 1\n      pruners: []\n")
            process_config(str(path))
    message = str(info.value)
    assert message.startswith(f"unknown pruning config key {key!r}")
    assert f"'{nearest}'" in message.split(";")[1]


def test_a_key_like_no_valid_key_still_names_the_most_similar_one():
    with pytest.raises(ValueError) as info:
        check_key_validity(VALID_KEYS, [{"qqq_zz": 1}])
    assert "; nearest valid key: '" in str(info.value)
    nearest = str(info.value).split("nearest valid key: '")[1].split("'")[0]
    assert nearest in VALID_KEYS


def test_yaml_round_trip(tmp_path):
    config = WeightPruningConfig(
        [
            {"op_names": ["layer1.*"], "pattern": "2:4", "target_sparsity": 0.5, "pruning_type": "snip"},
            {"excluded_op_names": ["head"], "reg_type": "group_lasso"},
        ],
        target_sparsity=0.75,
        pruning_type="snip_momentum_progressive",
        start_step=2,
        end_step=14,
        pruning_frequency=4,
        parameters={"reg_coeff": 1e-4},
        sparsity_decay_type="cos",
    )
    path = tmp_path / "sub" / "prune.yaml"
    config.to_yaml(path)
    loaded = WeightPruningConfig.from_yaml(path)
    assert loaded == config and loaded.to_dict() == config.to_dict()
    assert process_config(path) == process_config(str(path)) == process_config(config) == process_config(loaded)
    resolved_path = tmp_path / "resolved.yaml"  # resolved dicts are YAML-safe and resolve to themselves
    resolved = process_config(config)
    resolved_path.write_text(yaml.safe_dump({"pruning_configs": resolved}))
    assert process_config(resolved_path) == resolved


INC_YAML = """
version: 1.0
model: {name: bert, framework: pytorch}
pruning:
  approach:
    weight_compression_v2:
      target_sparsity: 0.8
      pruning_type: magnitude
      start_step: 1
      end_step: 9
      pruning_frequency: 2
      parameters: {reg_coeff: 1e-4}
      pruners:
        - !Pruner
            op_names: ['encoder.*']
            pattern: 1x1
        - pruner_config: {pattern: "2:4", target_sparsity: 0.5}
        - {excluded_op_names: ['classifier'], reg_type: group_lasso}
"""


def test_inc_yaml_layout_is_accepted(tmp_path):
    path = tmp_path / "inc.yaml"
    path.write_text(INC_YAML)
    configs = process_config(path)
    assert [c["pattern"] for c in configs] == ["1x1", "2:4", "4x1"]
    assert [c["target_sparsity"] for c in configs] == [0.8, 0.5, 0.8]
    assert all(c["pruning_type"] == "magnitude" and c["end_step"] == 9 for c in configs)
    assert all(c["reg_coeff"] == pytest.approx(1e-4) for c in configs)
    assert configs[2]["reg_type"] == "group_lasso" and configs[0]["op_names"] == ["encoder.*"]
    assert WeightPruningConfig.from_yaml(path).pruning_configs[1] == {"pattern": "2:4", "target_sparsity": 0.5}
    (only,) = process_and_check_config({"pruning": {"approach": {"weight_compression_v2": {"pruners": []}}}})
    assert only["target_sparsity"] == DEFAULT_CONFIG["target_sparsity"]


def test_inc_layout_without_known_approach_is_rejected():
    with pytest.raises(ValueError, match="weight_compression_v2"):
        process_config({"pruning": {"approach": {"post_training": {}}}})


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="config path"):
        process_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        process_config(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="int is not supported"):
        process_config(3)
    with pytest.raises(ValueError, match="pruning_configs"):
        WeightPruningConfig({"pattern": "4x1"})


def test_reg_coeff_comes_from_parameters_nearest_level_wins():
    first, second, third = process_config(
        {
            "pruning_configs": [{"parameters": {"reg_coeff": 0.3}}, {"reg_coeff": 0.2}, {}],
            "parameters": {"reg_coeff": 0.1},
        }
    )
    assert [c["reg_coeff"] for c in (first, second, third)] == [0.3, 0.2, 0.1]
    assert [c["parameters"]["reg_coeff"] for c in (first, second, third)] == [0.3, 0.2, 0.1]
    info = {"parameters": {"reg_coeff": 0.5}}
    assert update_params(info) is info and info["reg_coeff"] == 0.5


def test_no_aliasing_of_mutable_defaults_or_inputs():
    one, two = WeightPruningConfig(), WeightPruningConfig()
    one.pruning_configs[0]["target_sparsity"] = 0.1
    one.weight_compression["op_names"].append("fc")
    assert two.pruning_configs == [{}] and two.weight_compression["op_names"] == []
    (resolved,) = process_config(one)
    resolved["parameters"]["reg_coeff"] = 9.0
    resolved["excluded_op_names"].append("head")
    assert DEFAULT_CONFIG["op_names"] == [] and DEFAULT_CONFIG["parameters"] == {"reg_coeff": 0.0}

    names = ["fc.*"]
    user = {"pruning_configs": [{"pattern": "1x1"}, {}], "op_names": names}
    snapshot = copy.deepcopy(user)
    first, second = process_config(user)
    assert user == snapshot  # inputs are not filled in place (INC does that)
    assert first["op_names"] is not names and first["op_names"] is not second["op_names"]
    first["pruning_op_types"].append("Embedding")
    assert process_config(user)[0]["pruning_op_types"] == ["Conv", "Linear"]


def test_given_criterion_type_is_overridden_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.pruner.config"):
        (cfg,) = process_config({"pruning_type": "magnitude", "criterion_type": "snip"})
    assert cfg["criterion_type"] == "magnitude" and "criterion_type" in caplog.text
    with pytest.raises(ValueError, match="criterion_type: 'snip' contradicts"):
        check_config({"pruning_type": "magnitude", "criterion_type": "snip"})


def test_generate_pruner_config_is_an_attribute_copy():
    (cfg,) = process_config(WeightPruningConfig(target_sparsity=0.5))
    pruner_cfg = generate_pruner_config(cfg)
    assert pruner_cfg.target_sparsity == 0.5 and pruner_cfg["pattern"] == "4x1"
    pruner_cfg.op_names.append("x")
    assert cfg["op_names"] == []
    with pytest.raises(AttributeError):
        _ = pruner_cfg.not_a_key


def test_process_weight_and_yaml_config_helpers():
    class LegacyPruner:  # INC's YAML pruner objects carry their dict as .pruner_config
        pruner_config = {"pattern": "2x2"}

    weight = process_weight_config({"target_sparsity": 0.6}, [{"pattern": "2x2"}], DEFAULT_CONFIG)
    legacy = process_yaml_config(
        {"target_sparsity": 0.6, "pruners": [LegacyPruner()]}, [LegacyPruner()], DEFAULT_CONFIG
    )
    assert weight == legacy and weight[0]["target_sparsity"] == 0.6 and weight[0]["pattern"] == "2x2"
