"""Plug-in benchmarks for the tests: ``get_benchmark("plugin_bench:<function>")``.

``blobs`` follows the plug-in contract (returns ``(model, data)``); the others break it.
"""

from __future__ import annotations

import torch
from torch import nn


def blobs(width: int = 8):
    """Two Gaussian blobs in 4-D, a 4-width-2 MLP; data from a fixed generator (not the torch RNG)."""
    gen = torch.Generator().manual_seed(123)
    y = torch.arange(160) % 2
    x = torch.randn(160, 4, generator=gen) + 1.5 * (2 * y[:, None] - 1)
    model = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))
    data = {"x_train": x[:120], "y_train": y[:120], "x_test": x[120:], "y_test": y[120:]}
    return model, data, {"steps": 60, "batch_size": 32, "lr": 0.01}


def not_a_tuple():
    return "a model"


def float_labels():
    x = torch.zeros(4, 2)
    return nn.Linear(2, 2), (x, torch.zeros(4), x, torch.zeros(4))


def not_a_module():
    x = torch.zeros(4, 2)
    return "model", (x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long))


NOT_CALLABLE = 3


def perplexity_blobs(width: int = 8):
    """``blobs`` as a task whose metric is minimised: ``perplexity`` (exp of the mean cross-entropy).

    Used where the metric and direction matter (validation of ``study.objectives`` against the
    task's metric, a study that minimises).
    """
    from torch.nn import functional as F

    from workbench.benchmarks import DenseRecipe, Task, TensorBatches

    model, data, recipe = blobs(width)

    @torch.no_grad()
    def evaluate(model, batches):
        losses = [F.cross_entropy(model(x), y, reduction="sum") for x, y in batches]
        loss = float(sum(losses)) / sum(int(y.numel()) for _, y in batches)
        return {"perplexity": float(torch.exp(torch.tensor(loss))), "loss": loss}

    return Task(
        "plugin_bench:perplexity_blobs",
        build_model=lambda: blobs(width)[0],
        train_batches=TensorBatches(data["x_train"], data["y_train"], batch_size=32),
        eval_batches=TensorBatches(data["x_test"], data["y_test"], batch_size=64, shuffle=False),
        evaluate=evaluate,
        metric="perplexity",
        direction="minimize",
        dense=DenseRecipe(**recipe),
        params={"width": width},
    )


def named_blobs(width: int = 8):
    """``blobs`` as a Task whose name (``two-blobs``) is not its spec: ``trial.yaml`` records the name,
    so a rerun that built the task from it would not find this task (or would find another)."""
    from workbench.benchmarks import DenseRecipe, Task, TensorBatches

    _, data, recipe = blobs(width)
    return Task(
        "two-blobs",
        build_model=lambda: blobs(width)[0],
        train_batches=TensorBatches(data["x_train"], data["y_train"], batch_size=32),
        eval_batches=TensorBatches(data["x_test"], data["y_test"], batch_size=64, shuffle=False),
        dense=DenseRecipe(**recipe),
        params={"width": width},
    )
