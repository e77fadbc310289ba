"""GPU tests (marker ``gpu``; ``make test-gpu``): skipped with a reason where there is no CUDA device.

A trial on ``device: cuda`` gives the CPU's metric up to float rounding; a 2-trial study on CUDA
completes and logs the device; bf16 fine-tuning runs and reaches the target sparsity; the
pruner's masks on CUDA equal those on the CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from workbench.benchmarks import get_benchmark
from workbench.pruner import prepare_pruning
from workbench.trial import TrainingConfig, build_pruning_config, run_trial

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"),
]

TRAINING = TrainingConfig(steps=60, eval_every=20, pruning_frequency=5, threads=1)
ITERATIVE = {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}


def _trial(device: str, cache, *, precision: str = "fp32", benchmark: str = "mlp-digits"):
    training = dataclasses.replace(TRAINING, device=device, precision=precision)
    return run_trial(benchmark, build_pruning_config(ITERATIVE, training=training), training, 0, cache_dir=cache)


def _target_reached(result) -> bool:
    units = sum(math.prod(row["shape"]) // 4 for row in result.layers if row["pruned"])
    return abs(result.final_sparsity["blockwise_over_matmul_gemm_conv"] - 0.8) <= 1 / units


def test_a_trial_on_cuda_gives_the_cpus_metric_up_to_rounding(tmp_path):
    cpu = _trial("cpu", tmp_path / "cpu")
    cuda = _trial("cuda", tmp_path / "cuda")  # its own cache: the dense baseline is trained on the GPU too
    n_test = get_benchmark("mlp-digits").data.y_test.numel()
    assert cuda.dense_value == pytest.approx(cpu.dense_value, abs=5 / n_test)
    assert cuda.value == pytest.approx(cpu.value, abs=0.03)
    assert _target_reached(cuda) and cuda.final_sparsity == pytest.approx(cpu.final_sparsity, abs=1e-3)
    for step, loss in cpu.train_loss.items():
        assert cuda.train_loss[step] == pytest.approx(loss, rel=0.05, abs=0.02), step


def test_a_cuda_trial_reuses_a_cpu_trained_baseline(tmp_path):
    cpu = _trial("cpu", tmp_path)
    cuda = _trial("cuda:0", tmp_path)  # the cache holds CPU tensors: any device reads them
    assert cuda.dense_value == pytest.approx(cpu.dense_value, abs=0.01)


def test_bf16_fine_tuning_runs_and_reaches_the_target(tmp_path):
    r = _trial("cuda", tmp_path, precision="bf16", benchmark="tiny-transformer")
    assert r.training["precision"] == "bf16" and all(math.isfinite(v) for v in r.train_loss.values())
    assert _target_reached(r) and 0.0 <= r.value <= 1.0 and math.isfinite(r.dense_value)


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(64, 128), nn.Linear(128, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


@pytest.mark.parametrize("pattern, target", [("1x1", 0.6), ("4x1", 0.6), ("2:4", 0.5)])
def test_pruner_masks_on_cuda_equal_those_on_the_cpu(pattern, target):
    """Magnitude pruning with a zero learning rate: the scores are the same weights on both devices."""
    torch.manual_seed(0)
    cpu_model = _MLP()
    cuda_model = copy.deepcopy(cpu_model).cuda()
    training = TrainingConfig(steps=20, pruning_frequency=2, start_fraction=0.1, end_fraction=0.6)
    params = {"pattern": pattern, "criterion": "magnitude", "scheduler": "iterative", "target_sparsity": target}
    config = build_pruning_config(params, training=training)
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 64, generator=gen), torch.randint(0, 10, (16,), generator=gen)) for _ in range(20)]
    zeros = {}
    for device, model in (("cpu", cpu_model), ("cuda", cuda_model)):
        pruning = prepare_pruning(model, config)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        pruning.on_train_begin()
        for step, (x, y) in enumerate(data):
            pruning.on_step_begin(step)
            nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
            pruning.on_before_optimizer_step()
            optimizer.step()
            pruning.on_after_optimizer_step()
            optimizer.zero_grad()
            pruning.on_step_end()
        pruning.on_train_end()
        zeros[device] = {
            name: (p.detach().cpu() == 0) for name, p in model.named_parameters() if name.endswith("weight")
        }
    assert zeros["cpu"].keys() == zeros["cuda"].keys()
    for name in zeros["cpu"]:
        assert torch.equal(zeros["cpu"][name], zeros["cuda"][name]), name
    pruned = torch.cat([zeros["cpu"][f"{name}.weight"].flatten() for name in ("fc1", "fc2")])
    assert pruned.float().mean() == pytest.approx(target, abs=0.02)  # the masks are not empty


def test_a_study_on_cuda_completes_and_its_runs_say_so(tmp_path, monkeypatch, device="cuda"):
    import mlflow
    import yaml

    from workbench.cli import main

    data = yaml.safe_load(open("experiments/quick.yaml").read())
    data["training"] = {**data.get("training", {}), "device": device}
    data["study"] = {**data.get("study", {}), "n_trials": 2}
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["search", str(path), "--tracking-uri", store, "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]) == 0
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name(data["name"]).experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert all(r.data.params["training.device"] == device for r in trials)
    assert all(0 < r.data.metrics["accuracy"] <= 1 for r in trials)
