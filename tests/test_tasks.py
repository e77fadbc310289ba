"""Trials on the Task contract: dict batches, minimised metrics, pretrained models, devices."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch

from workbench.benchmarks import (
    OnDevice,
    Task,
    TensorBatches,
    cache_path,
    cycle_batches,
    get_benchmark,
    load_dense_baseline,
)
from workbench.benchmarks import cache as dense_cache
from workbench.pruner import ConfigError
from workbench.trial import TrainingConfig, build_pruning_config, devices, loop, resolve_device, run_trial, worker_gpu
from workbench.trial.devices import check_precision, visible_gpus

import task_plugins

TRAINING = TrainingConfig(steps=40, eval_every=10, pruning_frequency=5, threads=1, lr=0.02)
ITERATIVE = {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the test is about one without")


def _trial(task, training=TRAINING, params=ITERATIVE, **kwargs):
    return run_trial(task, build_pruning_config(params, training=training), training, 0, **kwargs)


def _blockwise_target_reached(result, block: int = 4) -> bool:
    units = sum(math.prod(row["shape"]) // block for row in result.layers if row["pruned"])
    target = result.params["target_sparsity"]
    return abs(result.final_sparsity["blockwise_over_matmul_gemm_conv"] - target) <= 1 / units


# ---- training.device and training.precision ------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [("device", "gpu"), ("device", "cuda:"), ("device", "CUDA"), ("device", "cuda:-1"), ("precision", "fp16")],
)
def test_bad_device_or_precision_is_a_config_error_naming_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        TrainingConfig(**{key: value})
    message = str(info.value)
    assert message.startswith(f"training.{key}: {value!r}") and "allowed" in message and "\n" not in message


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_forms_are_accepted_by_the_config(value):
    assert TrainingConfig(device=value).device == value


@no_cuda
def test_auto_resolves_to_the_cpu_here_and_cuda_is_refused_in_one_line():
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError) as info:
            resolve_device(spec)
        assert str(info.value).startswith(f"training.device: {spec!r} is not available") and "\n" not in str(info.value)


def test_a_cuda_index_past_the_visible_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1") and resolve_device("auto").type == "cuda"
    with pytest.raises(ConfigError, match=r"training.device: 'cuda:2' is not available: 2 CUDA device\(s\)"):
        resolve_device("cuda:2")
    with pytest.raises(ConfigError, match="training.device"):
        resolve_device("tpu")


def test_bf16_is_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ConfigError, match="training.precision: 'bf16' is not supported on cuda"):
        check_precision("bf16", torch.device("cuda"))
    check_precision("bf16", torch.device("cpu"))
    check_precision("fp32", torch.device("cuda"))


@no_cuda
def test_a_cuda_trial_without_cuda_fails_before_any_training(tmp_path):
    with pytest.raises(ConfigError, match="training.device: 'cuda' is not available"):
        _trial("plugin_bench:blobs", dataclasses.replace(TRAINING, device="cuda"), cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # no dense baseline was trained


def test_workers_get_gpus_round_robin():
    gpus = ["0", "1", "2"]
    assert [worker_gpu(i, "auto", gpus) for i in range(5)] == ["0", "1", "2", "0", "1"]
    assert [worker_gpu(i, "cuda", ["GPU-a", "GPU-b"]) for i in range(3)] == ["GPU-a", "GPU-b", "GPU-a"]
    assert {worker_gpu(i, d, gpus) for i in range(3) for d in ("cpu", "cuda:1")} == {None}
    assert worker_gpu(0, "auto", ["0"]) is None and worker_gpu(1, "auto", []) is None
    with pytest.raises(ConfigError, match="index"):
        worker_gpu(-1, "auto", gpus)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpus() == []


def test_bf16_autocast_fine_tunes_on_the_cpu_and_reaches_the_target():
    r = _trial("plugin_bench:blobs", dataclasses.replace(TRAINING, precision="bf16", device="cpu"))
    assert r.training["precision"] == "bf16" and all(math.isfinite(v) for v in r.train_loss.values())
    assert _blockwise_target_reached(r, block=4)
    assert devices.autocast(torch.device("cpu"), "fp32").__class__.__name__ == "nullcontext"


# ---- batches -------------------------------------------------------------------------------


def test_cycle_batches_walks_epochs_and_refuses_an_empty_loader():
    got = [(epoch, local, batch) for epoch, local, batch in cycle_batches(["a", "b"], 5)]
    assert got == [(0, 0, "a"), (0, 1, "b"), (1, 0, "a"), (1, 1, "b"), (2, 0, "a")]
    with pytest.raises(ConfigError, match="train_batches: epoch 0 yielded no batches"):
        list(cycle_batches([], 3))


def test_rebatched_tensor_batches_follow_their_generator():
    batches = TensorBatches(torch.arange(10.0)[:, None], torch.arange(10), batch_size=4)
    a = batches.rebatched(batch_size=3, generator=torch.Generator().manual_seed(5))
    b = batches.rebatched(batch_size=3, generator=torch.Generator().manual_seed(5))
    first = [y.tolist() for _, y in a]
    assert first == [y.tolist() for _, y in b] and [len(y) for y in first] == [3, 3, 3, 1]
    assert sorted(sum(first, [])) == list(range(10)) and first != [y.tolist() for _, y in a]  # a new epoch order


def test_on_device_moves_nested_batches():
    moved = list(OnDevice([{"x": torch.ones(2), "pair": (torch.zeros(1), 3)}], "cpu"))
    assert moved[0]["pair"][1] == 3 and moved[0]["x"].device.type == "cpu" and len(OnDevice([1, 2], "cpu")) == 2


# ---- a plug-in Task: dict batches, a minimised metric --------------------------------------


def test_a_plugin_task_with_dict_batches_and_a_minimised_metric_runs_end_to_end(caplog):
    task = get_benchmark("task_plugins:dict_task")
    assert isinstance(task, Task) and task.source_digest and task.params == {"batch_size": 16}
    loop._ANNOUNCED.discard(task.name)
    with caplog.at_level(logging.INFO, logger="workbench.trial"):
        r = _trial("task_plugins:dict_task")
        again = _trial("task_plugins:dict_task")
    assert caplog.text.count("training.batch_size (64) does not apply") == 1  # logged once
    assert (r.metric, r.direction) == ("perplexity", "minimize")
    assert set(r.metrics) == set(r.dense_metrics) == set(r.eval_metrics) == {"loss", "perplexity", "accuracy"}
    assert r.value == r.metrics["perplexity"] == r.eval_values[39] and r.dense_value == r.dense_metrics["perplexity"]
    assert r.metrics["perplexity"] == pytest.approx(math.exp(r.metrics["loss"]))
    assert r.eval_metrics["perplexity"] == r.eval_values and sorted(r.eval_values) == [9, 19, 29, 39]
    assert r.drop == r.value - r.dense_value and (r.drop > 0) == (r.value > r.dense_value)  # minimised: worse is up
    assert _blockwise_target_reached(r) and {row["name"] for row in r.layers if row["pruned"]} == {"fc1", "fc2"}
    assert again.train_loss == r.train_loss and again.eval_metrics == r.eval_metrics  # a shuffling loader, seeded


def test_on_eval_receives_the_tasks_metric():
    seen = []
    r = _trial("task_plugins:dict_task", on_eval=lambda step, value: seen.append((step, value)))
    assert seen == sorted(r.eval_values.items())


def test_dense_training_of_a_dict_task_is_cached_with_every_metric(tmp_path):
    task = task_plugins.dict_task()
    model, metrics = load_dense_baseline(task, 0, cache_dir=tmp_path)
    entry = torch.load(cache_path(task, 0, cache_dir=tmp_path), weights_only=True)
    assert entry["metrics"] == metrics and set(metrics) == {"loss", "perplexity", "accuracy"}
    assert all(t.device.type == "cpu" for t in entry["state_dict"].values())
    again, metrics_again = load_dense_baseline(task_plugins.dict_task(), 0, cache_dir=tmp_path)
    assert metrics_again == metrics and all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_the_metric_is_part_of_the_cache_key():
    task = task_plugins.dict_task()
    other = Task(task.name, task._build_model, task._train, task._eval, metric="loss", dense=task.dense)
    other.params, other.source_digest = task.params, task.source_digest
    assert cache_path(task, 0) != cache_path(other, 0)


# ---- dense=None: the built model is the dense model ----------------------------------------


def test_a_pretrained_task_uses_the_built_model_as_is_and_evaluates_it_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(dense_cache, "train_dense", lambda *a, **k: pytest.fail("a pretrained model is not trained"))
    monkeypatch.setattr(task_plugins, "CHECKPOINT", {"shift": 0.0})
    task = task_plugins.pretrained_task()
    built = task.build_model(0)
    expected = task.evaluate(built)
    task_plugins.EVALUATIONS.clear()
    model, metrics = load_dense_baseline(task, 0, cache_dir=tmp_path)
    assert metrics == expected and task_plugins.EVALUATIONS == ["evaluate"]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), built.parameters()))
    entry = torch.load(cache_path(task, 0, cache_dir=tmp_path), weights_only=True)
    assert entry["state_dict"] is None and entry["metrics"] == expected  # only the metrics are cached
    assert load_dense_baseline(task, 0, cache_dir=tmp_path)[1] == expected and len(task_plugins.EVALUATIONS) == 1
    task_plugins.CHECKPOINT["shift"] = 0.01  # a new checkpoint under the same name: evaluated again
    with caplog.at_level(logging.WARNING, logger="workbench.benchmarks.cache"):
        _, changed = load_dense_baseline(task, 0, cache_dir=tmp_path)
    assert "checksum mismatch" in caplog.text and len(task_plugins.EVALUATIONS) == 2 and changed != expected
    task_plugins.CHECKPOINT["shift"] = 0.0
    r = _trial(task, cache_dir=tmp_path)
    assert r.dense_metrics == expected and r.dense_value == expected["loss"] and r.metric == "loss"
    assert _blockwise_target_reached(r)
