"""Measured speed: median latency of forward passes and parameter counts, as plain data.

Each model is timed on its own device: ``warmup`` untimed forward passes, then ``repeats`` timed
ones under ``torch.no_grad()`` (CUDA synchronised before and after each on a GPU); the latency is
their median. Several models take turns (one pass of each per repetition), so a change in the
machine's load during the measurement reaches all of them alike. Nothing here compares or asserts: callers (``make bench``, a study) decide.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["SpeedRow", "measure", "measure_latency"]


@dataclass(frozen=True)
class SpeedRow:
    """One model's measurement.

    Attributes:
        name: The label given to the model.
        params: Parameter elements (shared ones once; semi-structured weights count their dense size).
        nonzero_params: Parameter elements that are not zero.
        latency_ms: Median forward latency in milliseconds.
        device: The device the model was timed on.
    """

    name: str
    params: int
    nonzero_params: int
    latency_ms: float
    device: str

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict."""
        return asdict(self)


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _counts(model: nn.Module) -> tuple[int, int]:
    total = nonzero = 0
    for p in model.parameters():
        data = p.detach()
        dense = data.to_dense() if type(data).__name__.startswith("SparseSemiStructured") else data
        total += dense.numel()
        nonzero += int(torch.count_nonzero(dense))
    return total, nonzero


def _check_counts(warmup: int, repeats: int) -> None:
    for key, value, least in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{key}={value!r} is not allowed; it must be an integer >= {least}")


def _timed(model: nn.Module, inputs: Any) -> float:
    device = _device(model)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    _call(model, inputs)
    if cuda:
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000.0


@torch.no_grad()
def _latencies(models: list[nn.Module], inputs: Any, warmup: int, repeats: int) -> list[float]:
    """Median milliseconds per model; the models take turns, so all see the same machine load."""
    _check_counts(warmup, repeats)
    for _ in range(warmup):
        for model in models:
            _call(model, inputs)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for i, model in enumerate(models):
            times[i].append(_timed(model, inputs))
    return [statistics.median(t) for t in times]


def measure_latency(model: nn.Module, inputs: Any, *, warmup: int = 3, repeats: int = 10) -> float:
    """Median latency in milliseconds of ``model(inputs)`` (a tensor, a tuple of them, or a dict)."""
    return _latencies([model], inputs, warmup, repeats)[0]


def measure(models: dict[str, nn.Module], inputs: Any, *, warmup: int = 3, repeats: int = 10) -> list[SpeedRow]:
    """Time each named model on ``inputs`` and count its parameters (models left in eval mode).

    Example:
        >>> import torch
        >>> rows = measure({"dense": torch.nn.Linear(4, 2)}, torch.ones(1, 4), warmup=0, repeats=2)
        >>> rows[0].name, rows[0].params, rows[0].latency_ms > 0
        ('dense', 10, True)
    """
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"models={models!r} is not allowed; it must be a non-empty dict of name -> nn.Module")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise ConfigError(f"models[{name!r}]={type(model).__name__} is not allowed; it must be an nn.Module")
        model.eval()
    latencies = _latencies(list(models.values()), inputs, warmup, repeats)
    return [
        SpeedRow(name, *_counts(model), latency, str(_device(model)))
        for (name, model), latency in zip(models.items(), latencies, strict=True)
    ]
