"""The :class:`Benchmark`: a :class:`~workbench.benchmarks.task.Task` over in-memory tensors.

A benchmark is a classification task whose data is four tensors (:class:`BenchmarkData`): its
train batches are :class:`~workbench.benchmarks.batches.TensorBatches` (re-batched and seeded by
the trial and the dense training), its loss is cross-entropy, its metric accuracy (maximised) and
its dense baseline is trained by a :class:`DenseRecipe`. The built-ins and plug-ins returning
``(model, data[, recipe])`` are benchmarks; a plug-in may return one too.

Example:
    >>> import torch
    >>> data = BenchmarkData(torch.randn(32, 4), torch.arange(32) % 2, torch.randn(8, 4), torch.arange(8) % 2)
    >>> bench = Benchmark("toy", model_fn=lambda: torch.nn.Linear(4, 2), data=data,
    ...                   recipe=DenseRecipe(steps=10))
    >>> model = bench.build_model(seed=0)
    >>> 0.0 <= bench.evaluate(model)["accuracy"] <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from workbench.pruner.errors import ConfigError

from .base import BenchmarkData, DenseRecipe
from .batches import TensorBatches
from .task import Task

__all__ = ["Benchmark"]


class Benchmark(Task):
    """A classification benchmark on tensors: seeded model builder, data, dense recipe, accuracy.

    Args:
        name: Registry name or plug-in spec (part of the cache key).
        model_fn: Builds a fresh model; called under a seeded RNG so its init follows the seed.
        data: A :class:`BenchmarkData` (or a zero-argument callable returning one, built lazily).
        recipe: How the dense baseline is trained (the task's :attr:`dense`).
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
        if not callable(model_fn):
            raise ConfigError(f"model_fn: expected a callable, got {type(model_fn).__name__}")
        if not isinstance(data, BenchmarkData) and not callable(data):
            raise ConfigError(f"data: expected BenchmarkData or a callable returning it, got {type(data).__name__}")
        if isinstance(eval_batch_size, bool) or not isinstance(eval_batch_size, int) or eval_batch_size < 1:
            raise ConfigError(f"eval_batch_size: must be an integer >= 1, got {eval_batch_size!r}")
        super().__init__(
            name,
            build_model=model_fn,
            train_batches=self._train_tensors,
            eval_batches=self._test_tensors,
            metric="accuracy",
            direction="maximize",
            dense=recipe,
            params=params,
            version=version,
        )
        self.model_fn = model_fn
        self._data = data
        self.source_digest = source_digest
        self.min_dense_accuracy = min_dense_accuracy
        self.eval_batch_size = eval_batch_size

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, params={self.params!r})"

    @property
    def recipe(self) -> DenseRecipe:
        """How the dense baseline is trained (the task's :attr:`dense`)."""
        assert self.dense is not None  # a Benchmark always has a recipe (checked in __init__)
        return self.dense

    @property
    def data(self) -> BenchmarkData:
        """The train/test tensors (built on first access, then kept)."""
        if not isinstance(self._data, BenchmarkData):
            self._data = BenchmarkData.coerce(self._data(), where=f"benchmark {self.name!r} data")
        return self._data

    def _train_tensors(self) -> TensorBatches:
        return TensorBatches(self.data.x_train, self.data.y_train, batch_size=self.recipe.batch_size)

    def _test_tensors(self) -> TensorBatches:
        return TensorBatches(self.data.x_test, self.data.y_test, batch_size=self.eval_batch_size, shuffle=False)
