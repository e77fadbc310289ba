"""Every experiment key and the task's contract checked before the first trial (issue 29, point 2).

Each bad case exits 2 with one line naming the key (or the task and what is wrong) before any
store is written; the library's Task names a module instance, NaN and a non-number metric.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from workbench.benchmarks import Task, check_task, get_benchmark
from workbench.cli import main
from workbench.pruner import ConfigError
from workbench.trial import TrainingConfig, build_pruning_config, run_trial

from helpers.experiments import with_changes

STORES = ("mlflow.db", "optuna.db", "optuna.journal", "mlruns")


def _experiment(benchmark: str = "mlp-digits", **changes) -> dict:
    data = {
        "name": "early",
        "benchmark": benchmark,
        "training": {"steps": 4, "batch_size": 32, "eval_every": 2, "pruning_frequency": 2, "threads": 1},
        "search_space": {
            "pattern": ["4x1", "2:4"],
            "criterion": ["wanda", "magnitude"],
            "scheduler": "oneshot",
            "target_sparsity": 0.5,
        },
        "study": {"n_trials": 1, "sampler": "random", "seed": 0},
    }
    return with_changes(data, **changes)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty working folder; the stores default to it (no store variable set)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WORKBENCH_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _refused(folder: Path, capsys, command: str, data: dict, *words: str) -> None:
    (folder / "exp.yaml").write_text(yaml.safe_dump(data))
    code = main([command, "exp.yaml"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    for word in words:
        assert word in err[0], err
    assert not [s for s in STORES if (folder / s).exists()], list(folder.iterdir())


EARLY = [
    ({"study.seeds": [-1]}, ["study.seeds[0]:", "-1 is out of range", "2**32 - 1"]),
    ({"study.seeds": [0, 4294967296]}, ["study.seeds[1]:", "4294967296", "4294967295"]),
    ({"pruning.posttraining": {"layers_per_pass": 0}}, ["pruning.posttraining.layers_per_pass:", "0", "int >= 1"]),
    ({"pruning.posttraining": {"owl": True}}, ["pruning.posttraining.owl:", "'2:4'", "unstructured or NxM"]),
    ({"pruning.posttraining": {"damp": 2}}, ["pruning.posttraining.damp:", "0 <= damp < 1"]),
    ({"pruning.posttraining": {"blocksize": 0}}, ["pruning.posttraining.blocksize:", "int >= 1"]),
    ({"pruning.posttraining": {"owl_m": -1}}, ["pruning.posttraining.owl_m:", "> 0"]),
    ({"pruning.posttraining": {"nosuch": 1}}, ["pruning.posttraining:", "layers_per_pass"]),
]


@pytest.mark.parametrize("command", ["search", "run"])
@pytest.mark.parametrize(("changes", "words"), EARLY, ids=[next(iter(c)) + str(i) for i, (c, _) in enumerate(EARLY)])
def test_bad_keys_exit_2_before_any_store(folder, capsys, command, changes, words):
    _refused(folder, capsys, command, _experiment(**changes), *words)


def test_good_posttraining_options_pass_validation():
    from workbench.experiment import parse_experiment

    exp = parse_experiment(_experiment(**{"pruning.posttraining": {"layers_per_pass": 2, "damp": 0.05}}))
    assert exp.pruning["posttraining"] == {"layers_per_pass": 2, "damp": 0.05}
    owl = _experiment(**{"pruning.posttraining": {"owl": True}, "search_space.pattern": ["4x1", "1x1"]})
    assert parse_experiment(owl).pruning["posttraining"] == {"owl": True}


CONTRACT = [
    ("model_dict", ["build_model returned dict", "expected nn.Module"]),
    ("model_none", ["build_model returned NoneType"]),
    ("empty_batches", ["train_batches yielded no batch"]),
    ("metric_nan", ["NaN for metric 'accuracy'"]),
    ("metric_string", ["str 'high' for metric 'accuracy'", "expected a number"]),
    ("metric_none", ["NoneType None for metric 'accuracy'"]),
    ("evaluate_raises", ["evaluate raised KeyError", "labels"]),
    ("metric_missing", ["metric 'accuracy' is not among evaluate's keys ['loss']"]),
    ("returns_nan", ["evaluate returned float, expected a dict"]),
    ("returns_string", ["evaluate returned str, expected a dict"]),
    ("returns_none", ["evaluate returned NoneType, expected a dict"]),
]


@pytest.mark.parametrize("command", ["search", "run"])
@pytest.mark.parametrize(("task", "words"), CONTRACT, ids=[c[0] for c in CONTRACT])
def test_a_task_breaking_its_contract_stops_before_the_first_trial(folder, capsys, command, task, words):
    data = _experiment(f"contract_tasks:{task}", **{"search_space.criterion": "magnitude"})
    _refused(folder, capsys, command, data, f"task 'contract_tasks:{task}'", *words)


def test_a_task_keeping_its_contract_passes_the_preflight():
    metrics = check_task(get_benchmark("contract_tasks:good"))
    assert set(metrics) == {"accuracy"} and 0 <= metrics["accuracy"] <= 1


# ---- the library's Task ---------------------------------------------------------------------------
def _toy(**changes) -> Task:
    x, y = torch.randn(16, 4), torch.arange(16) % 2
    kwargs = {"build_model": lambda: nn.Linear(4, 2), "train_batches": [(x, y)], "eval_batches": [(x, y)]}
    return Task("toy", **{**kwargs, **changes})


def test_a_module_instance_as_build_model_is_refused_at_construction():
    with pytest.raises(ConfigError, match=r"build_model: got a Linear instance; expected a zero-argument callable"):
        _toy(build_model=nn.Linear(4, 2))


@pytest.mark.parametrize(
    ("value", "words"), [("high", "str 'high' for metric 'accuracy'"), (None, "NoneType None for metric 'accuracy'")]
)
def test_a_metric_that_is_not_a_number_names_the_metric(value, words):
    task = _toy(evaluate=lambda m, b: {"accuracy": value})
    with pytest.raises(ConfigError, match=words):
        task.evaluate(task.build_model())


def test_numbers_of_any_kind_are_metric_values():
    task = _toy(evaluate=lambda m, b: {"accuracy": torch.tensor(0.25), "loss": 1})
    assert task.evaluate(task.build_model()) == {"accuracy": 0.25, "loss": 1.0}


def test_check_task_reports_nan_by_name():
    with pytest.raises(ConfigError, match="task 'toy': evaluate returned NaN for metric 'accuracy'"):
        check_task(_toy(evaluate=lambda m, b: {"accuracy": math.nan}))


# ---- cnn-digits: both trial kinds report reached sparsity over the same weights -------------------
def test_post_training_trials_report_sparsity_over_every_layer_the_training_aware_ones_prune(caplog):
    training, task = TrainingConfig(steps=4, eval_every=2, pruning_frequency=2, threads=1), get_benchmark("cnn-digits")
    results = {}
    for criterion in ("wanda", "magnitude"):
        point = {"pattern": "4x1", "criterion": criterion, "scheduler": "oneshot", "target_sparsity": 0.5}
        with caplog.at_level(logging.WARNING, logger="workbench.trial.posttraining"):
            results[criterion] = run_trial(
                task, build_pruning_config(point, training=training), training=training, seed=0
            )
    wanda, magnitude = results["wanda"], results["magnitude"]
    assert set(wanda.layer_sparsity) == set(magnitude.layer_sparsity) == {"conv1", "conv2", "fc1"}
    assert [v for _, v in sorted(wanda.layer_sparsity["conv1"].items())][-1] == 0.0  # left dense, and counted
    assert wanda.final_sparsity["elementwise_over_matmul_gemm_conv"] < 0.45  # not 0.5 over the Linear layers only
    assert magnitude.final_sparsity["elementwise_over_matmul_gemm_conv"] == pytest.approx(0.5, abs=0.01)
    assert "wanda prunes Linear/Conv1D layers only: conv1, conv2 left dense" in caplog.text
