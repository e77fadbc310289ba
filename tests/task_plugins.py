"""Plug-in tasks for the tests: ``get_benchmark("task_plugins:<function>")`` returns a Task.

``dict_task``: dict batches ``{"x", "labels"}`` from a ``DataLoader`` (its own batch size), a
model returning ``{"logits", "loss"}`` as a Hugging Face model does, and a minimised metric
(perplexity) among several. ``pretrained_task``: ``dense=None``, the built model is the dense
model (its weights come from a fixed generator, like a checkpoint read from disk).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from workbench.benchmarks import DenseRecipe, Task

EVALUATIONS: list[str] = []
"""Names of the tasks whose ``evaluate`` ran (tests count dense evaluations with it)."""
CHECKPOINT = {"shift": 0.0}
"""What the 'checkpoint' of ``pretrained_task`` holds; a test changes it to mimic a new checkpoint."""


class DictModel(nn.Module):
    """An MLP 8-32-32-4 called as ``model(x=..., labels=...)`` returning ``{"logits", "loss"}``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        logits = self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
        return {"logits": logits, "loss": None if labels is None else F.cross_entropy(logits, labels)}


def _samples(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=gen)
    centres = torch.randn(4, 8, generator=torch.Generator().manual_seed(99)) * 2
    x = centres[labels] + torch.randn(n, 8, generator=gen)
    return [{"x": x[i], "labels": labels[i]} for i in range(n)]


@torch.no_grad()
def perplexity_metrics(model: nn.Module, batches) -> dict[str, float]:
    """Mean cross-entropy, its exponential (perplexity) and accuracy over dict batches."""
    EVALUATIONS.append("evaluate")
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    for batch in batches:
        out = model(**batch)
        total += float(out["loss"]) * batch["labels"].numel()
        correct += int((out["logits"].argmax(-1) == batch["labels"]).sum())
        n += batch["labels"].numel()
    model.train(was_training)
    return {"loss": total / n, "perplexity": math.exp(total / n), "accuracy": correct / n}


def dict_task(batch_size: int = 16) -> Task:
    """Dict batches from DataLoaders, perplexity minimised, a short dense recipe."""
    train = DataLoader(_samples(256, 1), batch_size=batch_size, shuffle=True)
    test = DataLoader(_samples(128, 2), batch_size=64)
    return Task(
        "dict-task",
        build_model=DictModel,
        train_batches=train,
        eval_batches=test,
        evaluate=perplexity_metrics,
        metric="perplexity",
        direction="minimize",
        dense=DenseRecipe(steps=40, lr=0.01),
        params={"batch_size": batch_size},
    )


def _pretrained() -> nn.Module:
    model = DictModel()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + CHECKPOINT["shift"])
    return model


def pretrained_task() -> Task:
    """``dense=None``: the 'checkpoint' model is the dense model, never trained before the trial."""
    return Task(
        "pretrained-task",
        build_model=_pretrained,
        train_batches=[_samples(256, 1)[i : i + 32] for i in range(0, 256, 32)],
        eval_batches=lambda: DataLoader(_samples(128, 2), batch_size=64),
        loss=lambda model, batch: model(**_stack(batch))["loss"],
        evaluate=lambda model, batches: perplexity_metrics(
            model, (_stack(b) if isinstance(b, list) else b for b in batches)
        ),
        metric="loss",
        direction="minimize",
        dense=None,
    )


def _stack(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
