"""Where a trial runs: ``training.device`` and ``training.precision`` resolved on this machine.

* :func:`resolve_device` turns ``auto | cpu | cuda | cuda:N`` into a ``torch.device``, or raises
  a one-line :class:`~workbench.pruner.ConfigError` when the machine lacks it (a study calls it
  in its preflight, so a missing GPU stops it before any training, never mid-study);
* :func:`check_precision` refuses bf16 on a GPU without bf16 support;
* :func:`autocast` is the context of the fine-tuning forward pass and loss (bf16 autocast, or
  nothing for fp32);
* :func:`worker_gpu` says which GPU a study worker gets: with several visible GPUs, ``--workers
  N`` spreads the workers round-robin over them.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> worker_gpu(3, "auto", ["0", "1"])
    '1'
    >>> worker_gpu(3, "cpu", ["0", "1"]) is None
    True
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from workbench.pruner.errors import ConfigError
from workbench.trial.types import DEVICE_FORMS, PRECISIONS

__all__ = ["autocast", "check_precision", "resolve_device", "visible_gpus", "worker_gpu"]

_FORM = re.compile(r"auto|cpu|cuda(?::([0-9]{1,4}))?")


def resolve_device(spec: str = "auto") -> torch.device:
    """The ``torch.device`` of ``training.device`` on this machine.

    ``auto`` is the (current) CUDA device when ``torch.cuda.is_available()``, else the CPU.

    Raises:
        ValueError: ``spec`` is not one of ``auto, cpu, cuda, cuda:N``, or it asks for CUDA on a
            machine without it (no GPU, or a CPU-only torch), or ``cuda:N`` with ``N`` at or past
            the number of visible devices. One line naming ``training.device``.
    """
    match = _FORM.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ConfigError(
            f"training.device: {spec!r} is not allowed; allowed: {', '.join(DEVICE_FORMS)} (N a GPU index)"
        )
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"training.device: {spec!r} is not available: this machine has no usable CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); allowed here: auto, cpu"
        )
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise ConfigError(
            f"training.device: {spec!r} is not available: {count} CUDA device(s) visible; "
            f"allowed: cuda:0 .. cuda:{count - 1}, cuda, auto, cpu"
        )
    return torch.device(spec)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a ``training.precision`` the ``device`` cannot run (bf16 on a pre-Ampere GPU).

    bf16 on the CPU is allowed: torch's CPU autocast supports it (slowly on most CPUs).

    Raises:
        ValueError: An unknown precision, or bf16 on a CUDA device without bf16 support.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"training.precision: {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"training.precision: 'bf16' is not supported on {device}; allowed here: fp32")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context of a training forward pass and loss: bf16 autocast on ``device``, or nothing."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def visible_gpus() -> list[str]:
    """The CUDA devices this process may hand to workers, as ``CUDA_VISIBLE_DEVICES`` entries.

    The entries of ``CUDA_VISIBLE_DEVICES`` when it is set (ids or UUIDs), else ``"0" .. "n-1"``;
    empty without CUDA. ``torch.cuda.device_count`` asks the driver without creating a context.
    """
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = [entry.strip() for entry in listed.split(",") if entry.strip()]
        return entries[:count]
    return [str(i) for i in range(count)]


def worker_gpu(index: int, device: str, gpus: Sequence[str]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value for study worker ``index``, or None to leave it alone.

    With ``device`` ``auto`` or ``cuda`` and two or more ``gpus``, worker ``i`` gets
    ``gpus[i % len(gpus)]`` (round-robin), and sees it as ``cuda:0``. An explicit ``cuda:N``,
    ``cpu``, or fewer than two GPUs leave every worker on the study's device (None).

    Raises:
        ValueError: ``index`` is not an integer >= 0.
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ConfigError(f"index: must be an integer >= 0, got {index!r}")
    if device not in ("auto", "cuda") or len(gpus) < 2:
        return None
    return str(gpus[index % len(gpus)])
