"""The device ``make bench`` times on, and a clock that waits for it.

``--device auto`` (the default) takes CUDA when this machine has it, else the CPU; the pruner and
model shapes of every section then run there. On CUDA, kernels run asynchronously: :func:`now`
synchronises before reading the clock, so a timed interval holds the work launched inside it.

Example:
    >>> use("cpu")
    device(type='cpu')
    >>> move(torch.zeros(2)).device.type
    'cpu'
"""

from __future__ import annotations

import time
from typing import TypeVar

import torch

__all__ = ["DEVICES", "current", "move", "now", "pick", "use"]

DEVICES = ("auto", "cpu", "cuda")
"""Values of ``--device``."""

_current = torch.device("cpu")
T = TypeVar("T", torch.Tensor, torch.nn.Module)


def pick(spec: str) -> torch.device:
    """The device ``spec`` names: ``auto`` is CUDA when available, else the CPU."""
    if spec not in DEVICES:
        raise ValueError(f"--device: {spec!r} is not allowed; allowed: {', '.join(DEVICES)}")
    if spec == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: 'cuda' is not available on this machine; allowed here: auto, cpu")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def use(spec: str) -> torch.device:
    """Make ``spec``'s device the one every section times on; returns it."""
    global _current
    _current = pick(spec)
    return _current


def current() -> torch.device:
    """The device the sections time on."""
    return _current


def move(obj: T) -> T:
    """``obj`` (a tensor or a module) on the current device."""
    return obj.to(_current)


def now() -> float:
    """``time.perf_counter()`` after the current device finished its queued work."""
    if _current.type == "cuda":
        torch.cuda.synchronize(_current)
    return time.perf_counter()
