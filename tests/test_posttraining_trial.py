"""The post-training trial path (criterion wanda / sparsegpt) on the built-in MLP, and its search space."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from workbench.experiment.schema import parse_experiment
from workbench.pruner import ConfigError, process_config
from workbench.tracking.artifacts import trial_params
from workbench.trial import SPARSITY_KEYS, TrainingConfig, build_pruning_config, run_trial, search_params
from workbench.trial.cost import PeakMemory
from workbench.trial.posttraining import calibration_batches, truncate_batch
from workbench.trial.space import effective_params, is_active, point_key

TRAINING = TrainingConfig(
    steps=20, batch_size=32, lr=0.01, eval_every=3, pruning_frequency=5, threads=1, calibration_samples=64
)


def _point(criterion="wanda", pattern="1x1", target=0.6, **more):
    return {"pattern": pattern, "criterion": criterion, "scheduler": "iterative", "target_sparsity": target, **more}


def _run(tmp_path, params, training=TRAINING, **kwargs):
    config = build_pruning_config(params, training=training)
    return run_trial("mlp-digits", config, training, 0, cache_dir=tmp_path / "cache", **kwargs)


# ---- config and search space ---------------------------------------------------------------


def test_post_training_config_is_a_pattern_lock_plus_the_method():
    cfg = build_pruning_config(_point("sparsegpt", "4x1", 0.7, pruner="progressive"), training=TRAINING)
    assert cfg["posttraining"] == {"method": "sparsegpt", "layers_per_pass": "block"}
    assert (cfg["pruning_type"], cfg["pattern"], cfg["target_sparsity"]) == ("pattern_lock", "4x1", 0.7)
    assert not {"start_step", "end_step", "scheduler", "pruning_frequency"} & set(cfg)
    params = search_params(cfg)
    assert (params["criterion"], params["scheduler"], params["pruner"]) == ("sparsegpt", "none", "none")


def test_an_nm_pattern_prunes_exactly_n_over_m_with_a_post_training_criterion():
    assert effective_params(_point("wanda", "2:4", 0.3))["target_sparsity"] == 0.5
    assert effective_params(_point("magnitude", "2:4", 0.3))["target_sparsity"] == 0.3  # training-aware: a ceiling
    assert build_pruning_config(_point("wanda", "2:4", 0.3), training=TRAINING)["target_sparsity"] == 0.5


def test_schedule_knobs_are_inactive_for_post_training_criteria_only():
    for knob in ("scheduler", "pruner", "pruning_scope", "sparsity_decay_type"):
        assert not is_active(knob, {"criterion": "wanda"})
        assert is_active(knob, {"criterion": "magnitude", "scheduler": "iterative"})
    # the scheduler does not make two post-training points different trainings
    assert point_key(_point(scheduler="oneshot"), 0) == point_key(_point(scheduler="iterative"), 0)


def test_fixed_schedule_keys_are_dropped_and_options_checked():
    fixed = {"start_step": 3, "pruning_frequency": 2, "posttraining": {"damp": 0.05}}
    cfg = build_pruning_config(_point(), training=TRAINING, fixed=fixed)
    assert "start_step" not in cfg
    assert cfg["posttraining"] == {"method": "wanda", "layers_per_pass": "block", "damp": 0.05}
    with pytest.raises(ConfigError, match="pruning.posttraining"):
        build_pruning_config(_point(), training=TRAINING, fixed={"posttraining": {"no_such": 1}})
    for bad in ({"layers_per_pass": "sequential"}, {"owl_groups": "row"}, {"owl_clamp": "yes"}, {"owl": 1}):
        key = next(iter(bad))
        with pytest.raises(ConfigError, match=rf"pruning\.posttraining\.{key}: .*allowed"):
            build_pruning_config(_point(), training=TRAINING, fixed={"posttraining": bad})
    named = build_pruning_config(
        _point(), training=TRAINING, fixed={"posttraining": {"layers_per_pass": "true-sequential"}}
    )
    assert named["posttraining"]["layers_per_pass"] == "true-sequential"
    with pytest.raises(ConfigError, match="pruning.pattern"):
        build_pruning_config(_point(), training=TRAINING, fixed={"pattern": "4x1"})
    # a training-aware trial ignores the post-training options
    aware = build_pruning_config(_point("magnitude"), training=TRAINING, fixed={"posttraining": {"damp": 0.05}})
    assert "posttraining" not in aware and process_config(aware)


def test_the_schema_takes_post_training_criteria_and_refuses_patterns_they_cannot_prune(monkeypatch):
    space = {"pattern": ["1x1", "2:4"], "criterion": ["magnitude", "wanda", "sparsegpt"], "scheduler": "iterative"}
    data = {"name": "x", "benchmark": "mlp-digits", "search_space": {**space, "target_sparsity": 0.5}}
    assert parse_experiment(data).search_space["criterion"] == ["magnitude", "wanda", "sparsegpt"]
    assert parse_experiment({**data, "training": {"finetune_steps": 5}}).training.finetune_steps == 5

    def refuse(text):
        raise ConfigError(f"pattern: {text!r} is not supported by post-training pruning")

    monkeypatch.setattr("workbench.pruner.posttraining.parse_shape", refuse)  # what check_posttraining_pattern asks
    with pytest.raises(ConfigError, match=r"search_space.pattern\[0\]: '1x1' cannot be used with post-training"):
        parse_experiment(data)
    parse_experiment({**data, "search_space": {**data["search_space"], "criterion": ["magnitude"]}})


@pytest.mark.parametrize("options", [{"layers_per_pass": "sequential"}, {"owl_groups": "row"}, {"nope": 1}])
def test_the_schema_refuses_bad_post_training_options_before_any_trial(options):
    space = {"pattern": "1x1", "criterion": ["magnitude", "wanda"], "scheduler": "oneshot", "target_sparsity": 0.5}
    data = {"name": "x", "benchmark": "mlp-digits", "search_space": space, "pruning": {"posttraining": options}}
    with pytest.raises(ConfigError, match=r"pruning\.posttraining"):
        parse_experiment(data)


def test_a_study_starting_with_a_post_training_criterion_passes_its_preflight():
    from workbench.study.preflight import check_point_builds

    space = {"pattern": "2:4", "criterion": ["sparsegpt", "magnitude"], "scheduler": "oneshot", "target_sparsity": 0.5}
    experiment = parse_experiment({"name": "x", "benchmark": "mlp-digits", "search_space": space})
    assert check_point_builds(experiment, experiment.default_point()).metric == "accuracy"


@pytest.mark.parametrize(
    "key, value", [("calibration_samples", 0), ("finetune_steps", -1), ("calibration_seq_len", -2)]
)
def test_training_refuses_bad_calibration_and_finetune_values(key, value):
    with pytest.raises(ConfigError, match=f"training.{key}"):
        dataclasses.replace(TRAINING, **{key: value})


# ---- calibration -----------------------------------------------------------------------------


def test_truncate_cuts_every_tensor_of_the_sequence_length_only():
    batch = {"input_ids": torch.ones(2, 8), "attention_mask": torch.ones(2, 8), "labels": torch.ones(2, 8), "w": 3}
    batch["other"] = torch.ones(2, 5)
    cut = truncate_batch(batch, 4)
    assert {k: tuple(v.shape) for k, v in cut.items() if torch.is_tensor(v)} == {
        "input_ids": (2, 4),
        "attention_mask": (2, 4),
        "labels": (2, 4),
        "other": (2, 5),
    }
    assert truncate_batch(batch, 0) is batch and truncate_batch((torch.ones(2, 8),), 4)[0].shape == (2, 8)


def test_calibration_takes_at_most_the_asked_samples_from_the_training_batches():
    from workbench.benchmarks import get_benchmark

    task = get_benchmark("mlp-digits")
    batches = calibration_batches(task, dataclasses.replace(TRAINING, calibration_samples=40), 0, torch.device("cpu"))
    sizes = [b[0].shape[0] for b in batches]
    assert sum(sizes[:-1]) < 40 <= sum(sizes)
    train_inputs = task.train_batches.tensors[0] if hasattr(task.train_batches, "tensors") else None
    if train_inputs is not None:  # every calibration sample is a training sample
        assert all(any(torch.equal(x, t) for t in train_inputs) for x in batches[0][0][:3])


# ---- the trial ------------------------------------------------------------------------------


@pytest.mark.parametrize("criterion, pattern, target", [("wanda", "1x1", 0.6), ("sparsegpt", "2:4", 0.5)])
def test_a_post_training_trial_reaches_its_target_and_records_what_a_trial_records(
    tmp_path, criterion, pattern, target
):
    result = _run(tmp_path, _point(criterion, pattern, target))
    assert abs(result.final_sparsity[SPARSITY_KEYS[0]] - target) < 0.01
    assert result.layer_sparsity and all(abs(c[0] - target) < 0.02 for c in result.layer_sparsity.values())
    assert sorted(result.eval_values) == [0] and result.value == result.metrics[result.metric]
    assert result.dense_value > 0.5 and result.value > 0.5  # a one-shot prune of the MLP keeps it useful
    assert result.params["criterion"] == criterion and result.params["scheduler"] == "none"
    logged = trial_params(result.params, result.pruning_config, seed=0, benchmark="mlp-digits")
    assert logged["posttraining.layers_per_pass"] == "block"  # the calibration mode, in every trial's params
    assert result.timings["prune"] > 0 and result.timings["total"] >= result.timings["prune"]
    assert result.memory["peak_rss_mb"] > 0 and result.memory["peak_rss_increase_mb"] >= 0


def test_finetune_steps_keep_the_one_shot_masks(tmp_path):
    training = dataclasses.replace(TRAINING, finetune_steps=7, lr=0.05)
    zeros_after = {}

    def remember(step, value):
        zeros_after[step] = value

    result = _run(tmp_path, _point("wanda", "4x1", 0.7), training=training, on_eval=remember)
    assert sorted(result.eval_values) == [0, 3, 6, 7] == sorted(zeros_after)  # step 0 pruned, then 3 evaluations
    assert sorted(result.train_loss) == list(range(1, 8))
    for curve in result.layer_sparsity.values():
        assert len(set(curve.values())) == 1  # the zeros of step 0 are those at the end
    assert abs(result.final_sparsity[SPARSITY_KEYS[0]] - 0.7) < 0.01
    assert result.timings["finetune"] > 0


def test_finetuning_changes_the_weights_but_not_the_pruned_ones(tmp_path, monkeypatch):
    from workbench.trial import posttraining

    seen = {}
    original = posttraining.finetune

    def spy(task, model, lock, tuned, *args):
        seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("weight")}
        out = original(task, model, lock, tuned, *args)
        seen["after"] = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("weight")}
        return out

    monkeypatch.setattr(posttraining, "finetune", spy)
    _run(tmp_path, _point("sparsegpt", "1x1", 0.5), training=dataclasses.replace(TRAINING, finetune_steps=5))
    before, after = seen["before"], seen["after"]
    pruned = [n for n in before if (before[n] == 0).float().mean() > 0.4]
    assert pruned
    for name in pruned:
        assert torch.equal(after[name][before[name] == 0], torch.zeros_like(after[name][before[name] == 0]))
        assert not torch.equal(after[name], before[name])  # the kept weights were trained


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as peak:
        block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
        del block
    values = peak.result()
    assert values["peak_rss_mb"] >= 64  # the high-water mark holds the 64 MiB block, freed since
    assert values["peak_rss_mb"] >= values["peak_rss_increase_mb"] >= 0
    with pytest.raises(TypeError):
        PeakMemory("cpu")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)")
def test_a_post_training_trial_on_cuda_records_its_gpu_peak_memory(tmp_path):
    training = dataclasses.replace(TRAINING, device="cuda", finetune_steps=3)
    result = _run(tmp_path, _point("sparsegpt", "2:4", 0.5), training=training)
    assert abs(result.final_sparsity[SPARSITY_KEYS[0]] - 0.5) < 0.01
    assert result.memory["peak_cuda_mb"] > 0  # the model and the Hessians lived on the GPU
