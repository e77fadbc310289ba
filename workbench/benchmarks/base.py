"""Building blocks of tasks and benchmarks: the dense recipe, tensor data, seeding, optimizers.

:class:`DenseRecipe` says how a dense baseline is trained; :class:`BenchmarkData` holds the
train/test tensors of a classification benchmark; :class:`seeded` runs a block under a seeded
global RNG; :func:`make_optimizer` and :func:`torch_settings` are shared by dense training and
the trial runner. The :class:`~workbench.benchmarks.task.Task` contract and the tensor
:class:`~workbench.benchmarks.benchmark.Benchmark` build on them.

Example:
    >>> DenseRecipe(steps=10, schedule="cosine").lr_factor(0)
    1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from workbench.pruner.errors import ConfigError

__all__ = ["BenchmarkData", "DenseRecipe", "iterate_batches", "make_optimizer", "seeded", "torch_settings"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class DenseRecipe:
    """How the dense baseline is trained (once per benchmark, params and seed; then cached).

    Attributes:
        steps: Optimizer steps of dense training.
        batch_size: Mini-batch size.
        lr: Learning rate.
        optimizer: ``"adamw"`` or ``"sgd"`` (SGD uses ``momentum``).
        weight_decay: Weight decay.
        momentum: SGD momentum (ignored by AdamW).
        schedule: ``"constant"`` learning rate, or ``"cosine"``: linear warm-up over the first
            10 % of the steps, then cosine decay to zero.
    """

    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}: must be an integer >= 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr: must be a finite number > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: {self.optimizer!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: {self.schedule!r} is not allowed; allowed: {', '.join(SCHEDULES)}")

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at optimizer step ``step`` (0-based) under :attr:`schedule`."""
        if self.schedule == "constant":
            return 1.0
        warmup = max(1, self.steps // 10)
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, self.steps - warmup)))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (part of the dense cache key)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BenchmarkData:
    """Train and test tensors of a classification benchmark.

    ``x_*`` have the sample dimension first; ``y_*`` are 1-D integer class labels.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def __post_init__(self) -> None:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if not isinstance(getattr(self, key), torch.Tensor):
                raise ConfigError(f"{key}: expected a torch.Tensor, got {type(getattr(self, key)).__name__}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
                raise ConfigError(
                    f"y_{split}: expected 1-D integer class labels, got dtype {y.dtype} shape {tuple(y.shape)}"
                )
            if x.dim() < 1 or x.shape[0] != y.shape[0] or y.shape[0] == 0:
                raise ConfigError(
                    f"x_{split}: expected {y.shape[0]} samples (as y_{split}, at least 1), got shape {tuple(x.shape)}"
                )

    @classmethod
    def coerce(cls, value: Any, *, where: str = "data") -> BenchmarkData:
        """Accept a :class:`BenchmarkData`, a mapping with the four keys, or a 4-tuple."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in value]
            if missing:
                raise ConfigError(f"{where}: missing keys {missing}; expected x_train, y_train, x_test, y_test")
            return cls(value["x_train"], value["y_train"], value["x_test"], value["y_test"])
        if isinstance(value, (tuple, list)) and len(value) == 4:
            return cls(*value)
        raise ConfigError(
            f"{where}: expected BenchmarkData, a dict with x_train, y_train, x_test, y_test "
            f"or a 4-tuple, got {type(value).__name__}"
        )


class seeded:
    """Context manager: the global torch RNG seeded with ``seed`` inside, restored outside.

    Model construction (weight init) and anything else drawing from the global generator is then
    a pure function of ``seed`` and does not disturb the caller's random state.
    """

    def __init__(self, seed: int) -> None:
        self._seed = int(seed)
        self._fork = torch.random.fork_rng(devices=[])

    def __enter__(self) -> None:
        self._fork.__enter__()
        torch.manual_seed(self._seed)

    def __exit__(self, *exc: Any) -> None:
        self._fork.__exit__(*exc)


def iterate_batches(
    n: int, batch_size: int, steps: int, generator: torch.Generator
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(epoch, step_in_epoch, indices)`` for ``steps`` mini-batches.

    Each epoch is a fresh permutation of ``range(n)`` drawn from ``generator`` (so the batch order
    is a pure function of its seed); the last batch of an epoch may be smaller.
    """
    step, epoch = 0, 0
    while step < steps:
        order = torch.randperm(n, generator=generator)
        for local, start in enumerate(range(0, n, batch_size)):
            if step >= steps:
                return
            yield epoch, local, order[start : start + batch_size]
            step += 1
        epoch += 1


def make_optimizer(
    params, *, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """``"sgd"`` (with momentum) or ``"adamw"``; anything else is a ValueError."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"optimizer: {name!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}")


@contextlib.contextmanager
def torch_settings(
    *, threads: int = 0, deterministic: bool = True, device: torch.device | str = "cpu"
) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (0 = unchanged) and deterministic algorithms.

    Both settings are process-global in torch; the previous values are restored on exit, so a
    trial bounded to one thread does not change its caller's setting. On a CUDA ``device``
    deterministic algorithms are ``warn_only`` (a few CUDA kernels, e.g. some scatter and
    index backward passes, have no deterministic version: they warn instead of failing the
    trial) and ``CUBLAS_WORKSPACE_CONFIG`` defaults to ``:4096:8`` (what cuBLAS needs to be
    deterministic; a value already set is kept). Results on CUDA are then reproducible on the
    same GPU and software, up to the kernels that warned; they match the CPU up to float rounding.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads: must be an integer >= 0, got {threads!r}")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads > 0:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=cuda)
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        if threads > 0:
            torch.set_num_threads(old_threads)
