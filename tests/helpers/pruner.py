"""Small models and a training loop shared by the pruner tests."""

from __future__ import annotations

import torch
from torch import nn

from workbench.pruner import prepare_pruning


class MLP(nn.Module):
    """Two hidden Linear layers (prunable) and a head (excluded automatically)."""

    def __init__(self, d_in: int = 16, hidden: int = 32, d_out: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class ConvNet(nn.Module):
    """Two Conv2d layers and a Linear head on 8x8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(torch.relu(self.fc(x.flatten(1))))


def batches(model: nn.Module, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (8, 4, 8, 8) if isinstance(model, ConvNet) else (8, 16)
    for _ in range(steps):
        yield torch.randn(shape, generator=g), torch.randint(0, 4, (8,), generator=g)


def train(model, config, steps: int, *, seed: int = 0, pruning=None, optimizer=None, start: int = 0, record=None):
    """Explicit-hook training loop; returns the Pruning object."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruning = pruning or prepare_pruning(model, config)
    if start == 0:
        pruning.on_train_begin()
    for step, (x, y) in enumerate(batches(model, steps, seed)):
        if step < start:
            continue
        pruning.on_step_begin(step)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        pruning.on_before_optimizer_step()
        optimizer.step()
        pruning.on_after_optimizer_step()
        optimizer.zero_grad()
        pruning.on_step_end()
        if record is not None:
            record(step, pruning)
    return pruning, optimizer


def seeded(cls, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return cls(**kwargs)
