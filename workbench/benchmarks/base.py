"""The :class:`Benchmark` object: a model builder, its data, a dense recipe, a loss and a metric.

A benchmark is everything a trial needs that is not pruning: how to build the (seeded) model,
the train/test tensors, how the dense baseline is trained (:class:`DenseRecipe`), the training
loss and ``evaluate(model) -> accuracy``. Built-in benchmarks are registered by name (see
:mod:`workbench.benchmarks.registry`); a plug-in function may return a :class:`Benchmark` too.

Example:
    >>> import torch
    >>> data = BenchmarkData(torch.randn(32, 4), torch.arange(32) % 2, torch.randn(8, 4), torch.arange(8) % 2)
    >>> bench = Benchmark("toy", model_fn=lambda: torch.nn.Linear(4, 2), data=data,
    ...                   recipe=DenseRecipe(steps=10))
    >>> model = bench.build_model(seed=0)
    >>> 0.0 <= bench.evaluate(model) <= 1.0
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from workbench.pruner import ConfigError

__all__ = ["Benchmark", "BenchmarkData", "DenseRecipe", "iterate_batches", "make_optimizer", "seeded", "torch_settings"]

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


class Benchmark:
    """A classification benchmark: seeded model builder, data, dense recipe, loss and accuracy.

    Args:
        name: Registry name or plug-in spec (part of the cache key).
        model_fn: Builds a fresh model; called under :class:`seeded` so its init is seeded.
        data: A :class:`BenchmarkData` (or a zero-argument callable returning one, built lazily).
        recipe: How the dense baseline is trained.
        params: The benchmark's parameters (JSON-able; part of the cache key).
        version: Bump when the model, data or recipe changes in a way the params do not show.
        source_digest: Digest of the code that defines the benchmark (set by the registry).
        min_dense_accuracy: The dense accuracy the benchmark is documented to reach (tests check it).
        eval_batch_size: Batch size of :meth:`evaluate`.
    """

    metric = "accuracy"
    """The metric :meth:`evaluate` reports and the study optimises."""
    direction = "maximize"
    """Accuracy is maximised."""

    def __init__(
        self,
        name: str,
        *,
        model_fn: Callable[[], nn.Module],
        data: BenchmarkData | Callable[[], BenchmarkData],
        recipe: DenseRecipe,
        params: dict[str, Any] | None = None,
        version: str = "1",
        source_digest: str = "",
        min_dense_accuracy: float | None = None,
        eval_batch_size: int = 1024,
    ) -> None:
        if not isinstance(recipe, DenseRecipe):
            raise ConfigError(f"recipe: expected a DenseRecipe, got {type(recipe).__name__}")
        self.name = name
        self.model_fn = model_fn
        self._data = data
        self.recipe = recipe
        self.params = dict(params or {})
        self.version = str(version)
        self.source_digest = source_digest
        self.min_dense_accuracy = min_dense_accuracy
        self.eval_batch_size = eval_batch_size

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, params={self.params!r})"

    @property
    def data(self) -> BenchmarkData:
        """The train/test tensors (built on first access, then kept)."""
        if not isinstance(self._data, BenchmarkData):
            self._data = BenchmarkData.coerce(self._data(), where=f"benchmark {self.name!r} data")
        return self._data

    def build_model(self, seed: int) -> nn.Module:
        """A fresh model whose initial weights depend only on ``seed``."""
        with seeded(seed):
            model = self.model_fn()
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"benchmark {self.name!r}: model_fn returned {type(model).__name__}, expected a torch.nn.Module"
            )
        return model

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss: cross-entropy on the logits."""
        return F.cross_entropy(outputs, targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """Test accuracy (fraction of correct argmax predictions); the model's mode is restored."""
        was_training = model.training
        model.eval()
        try:
            data = self.data
            correct = 0
            for start in range(0, data.x_test.shape[0], self.eval_batch_size):
                logits = model(data.x_test[start : start + self.eval_batch_size])
                correct += int((logits.argmax(dim=-1) == data.y_test[start : start + self.eval_batch_size]).sum())
            return correct / data.x_test.shape[0]
        finally:
            model.train(was_training)

    def cache_material(self, seed: int) -> dict[str, Any]:
        """What identifies a dense baseline: name, params, seed, recipe and code version."""
        return {
            "benchmark": self.name,
            "params": self.params,
            "seed": int(seed),
            "version": self.version,
            "source": self.source_digest,
            "recipe": self.recipe.to_dict(),
            "torch": torch.__version__,
        }


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
def torch_settings(*, threads: int = 0, deterministic: bool = True) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (0 = unchanged) and deterministic algorithms.

    Both settings are process-global in torch; the previous values are restored on exit, so a
    trial bounded to one thread does not change its caller's setting.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads: must be an integer >= 0, got {threads!r}")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads > 0:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        if threads > 0:
            torch.set_num_threads(old_threads)
