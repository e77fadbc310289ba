"""Plug-in tasks that break the Task contract, one way each (issue 29, point 2's preflight table).

``get_benchmark("contract_tasks:<function>")`` returns a Task whose ``build_model``, batches or
``evaluate`` is wrong; the preflight must stop the study before its first trial.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.benchmarks import Task, TensorBatches

_X, _Y = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 2


def _task(name: str, **changes) -> Task:
    kwargs = {
        "build_model": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)),
        "train_batches": TensorBatches(_X, _Y, batch_size=16),
        "eval_batches": TensorBatches(_X, _Y, batch_size=32, shuffle=False),
        **changes,
    }
    return Task(f"contract_tasks:{name}", **kwargs)


def good() -> Task:
    return _task("good")


def model_dict() -> Task:
    return _task("model_dict", build_model=lambda: {"model": nn.Linear(8, 2)})


def model_none() -> Task:
    return _task("model_none", build_model=lambda: None)


def empty_batches() -> Task:
    return _task("empty_batches", train_batches=[])


def metric_nan() -> Task:
    return _task("metric_nan", evaluate=lambda model, batches: {"accuracy": math.nan})


def metric_string() -> Task:
    return _task("metric_string", evaluate=lambda model, batches: {"accuracy": "high"})


def metric_none() -> Task:
    return _task("metric_none", evaluate=lambda model, batches: {"accuracy": None})


def evaluate_raises() -> Task:
    def evaluate(model, batches):
        raise KeyError("labels")

    return _task("evaluate_raises", evaluate=evaluate)


def metric_missing() -> Task:
    return _task("metric_missing", evaluate=lambda model, batches: {"loss": 0.3})


def returns_nan() -> Task:
    return _task("returns_nan", evaluate=lambda model, batches: math.nan)


def returns_string() -> Task:
    return _task("returns_string", evaluate=lambda model, batches: "0.9")


def returns_none() -> Task:
    return _task("returns_none", evaluate=lambda model, batches: None)
