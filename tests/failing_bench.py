"""Plug-in benchmarks that misbehave on purpose once pruning has zeroed weights.

``get_benchmark("failing_bench:<function>")``: two Gaussian blobs and a 4-16-16-2 MLP, like
``plugin_bench.blobs``. The dense baseline trains normally (random weights are never exactly
zero); once the pruner has zeroed more than ``threshold`` of the hidden layers' weights:

* ``nan_when_pruned`` returns NaN logits (the training loss diverges);
* ``raise_when_pruned`` raises ``RuntimeError("boom: ...")``;
* ``slow_when_pruned`` sleeps ``delay`` seconds per training forward pass (a slow trial that
  costs no CPU, for the interruption tests).
"""

from __future__ import annotations

import time

import torch
from torch import nn


def _data() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    y = torch.arange(200) % 2
    x = torch.randn(200, 4, generator=gen) + 1.5 * (2 * y[:, None] - 1)
    return {"x_train": x[:160], "y_train": y[:160], "x_test": x[160:], "y_test": y[160:]}


class Misbehaving(nn.Module):
    """An MLP whose forward misbehaves (``mode``) once enough hidden weights are exactly zero."""

    def __init__(self, mode: str, threshold: float, delay: float) -> None:
        super().__init__()
        self.mode, self.threshold, self.delay = mode, threshold, delay
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))

    def zero_fraction(self) -> float:
        weights = torch.cat([self.net[0].weight.flatten(), self.net[2].weight.flatten()])
        return float((weights == 0).float().mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.zero_fraction() <= self.threshold:
            return out
        if self.mode == "nan":
            return out * float("nan")
        if self.mode == "raise":
            raise RuntimeError(f"boom: {self.zero_fraction():.2f} of the weights are zero")
        if self.training:
            time.sleep(self.delay)
        return out


def _bench(mode: str, threshold: float, delay: float = 0.0):
    return Misbehaving(mode, threshold, delay), _data(), {"steps": 60, "batch_size": 32, "lr": 0.05}


def nan_when_pruned(threshold: float = 0.7):
    """Training loss becomes NaN once more than ``threshold`` of the hidden weights are pruned."""
    return _bench("nan", threshold)


def raise_when_pruned(threshold: float = 0.7):
    """The forward pass raises once more than ``threshold`` of the hidden weights are pruned."""
    return _bench("raise", threshold)


def slow_when_pruned(threshold: float = 0.0, delay: float = 0.05):
    """Each training step sleeps ``delay`` seconds once any hidden weight is pruned."""
    return _bench("slow", threshold, delay)
