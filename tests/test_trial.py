"""The trial runner: config building, curves, reproducibility, stopping and divergence."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

from workbench.benchmarks import get_benchmark
from workbench.pruner import process_config
from workbench.trial import SPARSITY_KEYS, build_pruning_config, run_trial, search_params
from workbench.trial.types import TrainingConfig, TrialDiverged, TrialResult, TrialStopped

TRAINING = TrainingConfig(
    steps=40,
    batch_size=64,
    lr=0.01,
    eval_every=10,
    pruning_frequency=5,
    start_fraction=0.1,
    end_fraction=0.7,
    threads=1,
)
ITERATIVE = {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}
ONESHOT = {"pattern": "1x1", "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": 0.6}


def _run(params=ITERATIVE, training=TRAINING, benchmark="mlp-digits", fixed=None, **kwargs) -> TrialResult:
    return run_trial(benchmark, build_pruning_config(params, training=training, fixed=fixed), training, 0, **kwargs)


@pytest.fixture(scope="module")
def iterative_result() -> TrialResult:
    return _run()


# ---- build_pruning_config ------------------------------------------------------------------


def test_oneshot_config():
    cfg = build_pruning_config(ONESHOT, training=TrainingConfig(steps=100, start_fraction=0.25))
    assert cfg["pruning_configs"] == [{}]
    assert (cfg["pattern"], cfg["pruning_type"], cfg["target_sparsity"]) == ("1x1", "magnitude", 0.6)
    assert cfg["start_step"] == cfg["end_step"] == 25
    cfg = build_pruning_config(ONESHOT, training=TrainingConfig(steps=10, start_fraction=0.0))
    assert cfg["start_step"] == cfg["end_step"] == 1  # gradient criteria need one backward pass first


@pytest.mark.parametrize(
    "pruner, pruning_type, frequency",
    [
        ("basic", "snip_momentum", 10),
        ("progressive", "snip_momentum_progressive", 12),
        ("pattern_lock", "pattern_lock", 10),
    ],
)
def test_iterative_config(pruner, pruning_type, frequency):
    training = TrainingConfig(steps=200, pruning_frequency=10, start_fraction=0.1, end_fraction=0.7)
    cfg = build_pruning_config({**ITERATIVE, "pruner": pruner}, training=training)
    assert (cfg["pruning_type"], cfg["start_step"], cfg["end_step"], cfg["pruning_frequency"]) == (
        pruning_type,
        20,
        140,
        frequency,
    )
    process_config(cfg)  # the pruner library accepts it


def test_progressive_frequency_follows_fixed_progressive_steps():
    training = TrainingConfig(steps=200, pruning_frequency=10)
    cfg = build_pruning_config(
        {**ITERATIVE, "pruner": "progressive"}, training=training, fixed={"progressive_steps": 3}
    )
    assert cfg["pruning_frequency"] == 12 and cfg["progressive_steps"] == 3


def test_optional_dims_and_fixed_keys_are_passed_through():
    cfg = build_pruning_config(
        {**ITERATIVE, "pruning_scope": "local", "sparsity_decay_type": "cos"},
        training=TRAINING,
        fixed={"op_names": ["0"], "pruning_frequency": 2, "max_sparsity_ratio_per_op": 0.9},
    )
    assert (cfg["pruning_scope"], cfg["sparsity_decay_type"]) == ("local", "cos")
    assert cfg["op_names"] == ["0"] and cfg["pruning_frequency"] == 2  # fixed wins over training
    assert cfg["max_sparsity_ratio_per_op"] == 0.9


def test_fixed_pruning_configs_inherit_the_search_dims():
    cfg = build_pruning_config(
        ITERATIVE, training=TRAINING, fixed={"pruning_configs": [{"op_names": ["0"]}, {"op_names": ["2"]}]}
    )
    resolved = process_config(cfg)
    assert [c["op_names"] for c in resolved] == [["0"], ["2"]]
    assert all(c["pattern"] == "4x1" and c["target_sparsity"] == 0.8 for c in resolved)


@pytest.mark.parametrize(
    "fixed, key",
    [
        ({"pattern": "2x2"}, "pruning.pattern"),
        ({"target_sparsity": 0.5}, "pruning.target_sparsity"),
        ({"pruning_type": "magnitude"}, "pruning.pruning_type"),
        ({"start_step": 5, "end_step": 5}, "pruning.end_step"),
        ({"start_step": 30, "end_step": 10}, "pruning.end_step"),
        ({"pruning_configs": [{"pattern": "1x1"}]}, "pruning.pruning_configs[0].pattern"),
    ],
)
def test_fixed_cannot_contradict_the_search_dims(fixed, key):
    with pytest.raises(ValueError, match="^" + re.escape(key) + ":"):
        build_pruning_config(ITERATIVE, training=TRAINING, fixed=fixed)


def test_fixed_may_repeat_a_search_value_and_set_consistent_steps():
    cfg = build_pruning_config(ITERATIVE, training=TRAINING, fixed={"pattern": "4x1", "start_step": 2, "end_step": 30})
    assert (cfg["start_step"], cfg["end_step"]) == (2, 30)


@pytest.mark.parametrize(
    "params, key",
    [
        ({**ITERATIVE, "patern": "4x1"}, "patern"),
        ({k: v for k, v in ITERATIVE.items() if k != "criterion"}, "criterion"),
        ({**ITERATIVE, "criterion": "random"}, "criterion"),
        ({**ITERATIVE, "scheduler": "cyclic"}, "scheduler"),
        ({**ITERATIVE, "pruner": "lottery"}, "pruner"),
        ({**ITERATIVE, "target_sparsity": 1.0}, "target_sparsity"),
        ({**ITERATIVE, "pattern": "2:4", "target_sparsity": 0.8}, "target_sparsity"),
        ({**ITERATIVE, "pattern": "3y1"}, "pattern"),
    ],
)
def test_bad_params_name_the_key(params, key):
    with pytest.raises(ValueError, match=key):
        build_pruning_config(params, training=TRAINING)


def test_too_short_schedules_are_rejected():
    with pytest.raises(ValueError, match="training.steps"):
        build_pruning_config(ONESHOT, training=TrainingConfig(steps=1))
    with pytest.raises(ValueError, match="training.end_fraction"):
        build_pruning_config(ITERATIVE, training=TrainingConfig(steps=20, pruning_frequency=50))


@pytest.mark.parametrize(
    "params",
    [
        ITERATIVE,
        ONESHOT,
        {**ITERATIVE, "pruner": "progressive", "pruning_scope": "local"},
        {**ONESHOT, "pattern": "2:4", "target_sparsity": 0.5, "sparsity_decay_type": "cube"},
    ],
)
def test_search_params_inverts_build(params):
    recovered = search_params(build_pruning_config(params, training=TRAINING))
    assert {k: recovered[k] for k in params} == params


# ---- run_trial -----------------------------------------------------------------------------


def test_result_is_complete_plain_data(iterative_result):
    r = iterative_result
    assert r.benchmark == "mlp-digits" and r.seed == 0 and r.training == TRAINING.to_dict()
    assert r.params["scheduler"] == "iterative" and r.params["target_sparsity"] == 0.8
    assert set(r.sparsity) == set(SPARSITY_KEYS)
    assert sorted(r.train_loss) == list(range(TRAINING.steps))
    assert sorted(r.eval_values) == [9, 19, 29, 39]
    assert r.value == r.eval_values[39] and 0 < r.dense_value <= 1
    assert (r.metric, r.direction) == ("accuracy", "maximize")
    assert r.metrics == {"accuracy": r.value} and r.dense_metrics == {"accuracy": r.dense_value}
    assert r.eval_metrics == {"accuracy": r.eval_values} and r.drop == r.dense_value - r.value
    assert set(r.timings) == {"baseline", "finetune", "eval", "total"}
    assert all(v >= 0 for v in r.timings.values()) and r.timings["total"] >= r.timings["finetune"]
    pruned = {row["name"] for row in r.layers if row["pruned"]}
    assert pruned == {"0", "2"} and set(r.layer_sparsity) == pruned == set(r.layer_blockwise_sparsity)
    assert any(not row["pruned"] and "head" in row["reason"] for row in r.layers)


def test_curves_are_recorded_at_mask_changes_and_evaluations(iterative_result):
    r = iterative_result
    cfg = r.pruning_config
    pruning_steps = set(range(cfg["start_step"], cfg["end_step"] + 1, cfg["pruning_frequency"]))
    expected = pruning_steps | set(r.eval_values)
    for curves in (r.sparsity, r.layer_sparsity, r.layer_blockwise_sparsity):
        assert all(set(curve) == expected for curve in curves.values())


def test_carried_curve_points_are_what_measuring_the_weights_gives(iterative_result, monkeypatch):
    """Differential: the evaluations between mask changes carry the latest measurement; measuring
    the weights there instead (the readable reference) gives the same curves, bit for bit."""
    from workbench.trial.loop import Recorder

    cfg = iterative_result.pruning_config
    pruning_steps = set(range(cfg["start_step"], cfg["end_step"] + 1, cfg["pruning_frequency"]))
    carried = set(iterative_result.eval_values) - pruning_steps - {TRAINING.steps - 1}
    assert carried  # the fixture's schedule has evaluations between mask changes
    monkeypatch.setattr(Recorder, "carry", Recorder.snapshot)
    measured = _run()
    assert measured.sparsity == iterative_result.sparsity
    assert measured.layer_sparsity == iterative_result.layer_sparsity
    assert measured.layer_blockwise_sparsity == iterative_result.layer_blockwise_sparsity


def test_iterative_sparsity_is_monotone_and_reaches_the_target(iterative_result):
    r = iterative_result
    for curve in [*r.sparsity.values(), *r.layer_sparsity.values()]:
        values = [curve[s] for s in sorted(curve)]
        assert values == sorted(values)
    blockwise = r.sparsity["blockwise_over_matmul_gemm_conv"]
    assert blockwise[min(blockwise)] == 0.0  # the first pruning step of a schedule reaches s0 = 0
    total_blocks = sum(math.prod(row["shape"]) // 4 for row in r.layers if row["pruned"])
    assert abs(r.final_sparsity["blockwise_over_matmul_gemm_conv"] - 0.8) <= 1 / total_blocks
    assert r.final_sparsity["elementwise_over_matmul_gemm_conv"] >= 0.8 - 1 / total_blocks


@pytest.mark.parametrize(
    "benchmark, params, block",
    [
        ("mlp-digits", ONESHOT, 1),
        ("mlp-digits", {**ONESHOT, "pattern": "2:4", "target_sparsity": 0.5}, 1),
        ("cnn-digits", {**ITERATIVE, "pattern": "channelx1", "target_sparsity": 0.5}, None),
        ("plugin_bench:blobs", {**ITERATIVE, "pattern": "2x2", "target_sparsity": 0.5}, 4),
        ("tiny-transformer", {**ITERATIVE, "pattern": "1x4", "criterion": "gradient", "pruner": "progressive"}, 4),
    ],
)
def test_final_sparsity_matches_the_target(benchmark, params, block):
    r = _run(params, benchmark=benchmark)
    rows = [row for row in r.layers if row["pruned"]]
    if block is None:  # channelx1: a block is one column, its size differs by layer: weights are counted
        weights = sum(math.prod(row["shape"]) for row in rows)
        key, tolerance = "elementwise_over_matmul_gemm_conv", max(row["shape"][0] for row in rows) / weights
    else:
        units = sum(math.prod(row["shape"]) // block for row in rows)
        key = "elementwise_over_matmul_gemm_conv" if ":" in params["pattern"] else "blockwise_over_matmul_gemm_conv"
        tolerance = 1 / units
    assert abs(r.final_sparsity[key] - params["target_sparsity"]) <= tolerance + 1e-9
    oneshot_step = r.pruning_config["start_step"]
    if params["scheduler"] == "oneshot":
        assert min(r.sparsity[key]) == oneshot_step and r.sparsity[key][oneshot_step] == r.final_sparsity[key]


def test_two_runs_are_bit_identical(iterative_result):
    again = _run()
    for field in dataclasses.fields(TrialResult):
        if field.name not in ("timings", "memory"):  # measured, not computed
            assert getattr(again, field.name) == getattr(iterative_result, field.name), field.name


def test_seed_changes_the_result():
    config = build_pruning_config(ONESHOT, training=TRAINING)
    a = run_trial("plugin_bench:blobs", config, TRAINING, 0)
    b = run_trial("plugin_bench:blobs", config, TRAINING, 1)
    assert a.train_loss != b.train_loss


def test_torch_settings_are_restored():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    _run(ONESHOT, benchmark="plugin_bench:blobs", training=dataclasses.replace(TRAINING, threads=2))
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_on_eval_can_stop_the_trial():
    seen = []

    def on_eval(step, value):
        seen.append(step)
        if len(seen) == 2:
            raise TrialStopped(step, value)

    with pytest.raises(TrialStopped) as info:
        _run(benchmark="plugin_bench:blobs", on_eval=on_eval)
    assert seen == [9, 19] and info.value.step == 19
    partial = info.value.result
    assert sorted(partial.eval_values) == [9, 19] and max(partial.train_loss) == 19
    assert partial.value == info.value.value == partial.eval_values[19]
    assert partial.metrics == {"accuracy": partial.value} and sorted(partial.eval_metrics["accuracy"]) == [9, 19]


def test_nan_loss_raises_trial_diverged():
    huge = dataclasses.replace(TRAINING, lr=1e30, momentum=0.0)
    with pytest.raises(TrialDiverged) as info:
        _run(ONESHOT, benchmark="plugin_bench:blobs", training=huge)
    assert 0 < info.value.step < TRAINING.steps and not math.isfinite(info.value.loss)
    assert max(info.value.result.train_loss) == info.value.step - 1


def test_benchmark_object_and_bad_inputs():
    bench = get_benchmark("plugin_bench:blobs")
    config = build_pruning_config(ONESHOT, training=TRAINING)
    assert run_trial(bench, config, TRAINING, 0).benchmark == "plugin_bench:blobs"
    with pytest.raises(ValueError, match="no-such-bench"):
        run_trial("no-such-bench", config, TRAINING, 0)
    with pytest.raises(ValueError, match="training.eval_every"):
        run_trial(bench, config, dataclasses.replace(TRAINING, eval_every=0), 0)
    with pytest.raises(ValueError, match="target_sparsity"):
        run_trial(bench, {**config, "target_sparsity": 2.0}, TRAINING, 0)
