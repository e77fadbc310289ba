"""Tasks (model, batches, loss, metrics, dense baseline), the built-in benchmarks, the dense cache.

A trial runs on the :class:`Task` contract (:mod:`.task`); a :class:`Benchmark` is a Task over
in-memory tensors. Built-in benchmarks (one module each, registered by name): ``mlp-digits``,
``cnn-digits`` and ``tiny-transformer`` (nothing downloaded), and the task families on real models
and data of :mod:`workbench.benchmarks.families` (``hf-text-classification``, ``hf-causal-lm``,
``torchvision-classification``; optional extras, downloading on first use). Your own model plugs in
as ``"package.module:function"`` returning a Task or a tensor benchmark (see
:mod:`workbench.benchmarks.registry` for the contract).

Example:
    >>> from workbench.benchmarks import get_benchmark, list_benchmarks
    >>> list_benchmarks()  # doctest: +NORMALIZE_WHITESPACE
    ['cnn-digits', 'hf-causal-lm', 'hf-text-classification', 'mlp-digits', 'tiny-transformer',
     'torchvision-classification']
    >>> bench = get_benchmark("mlp-digits")
    >>> tuple(bench.data.x_train.shape), bench.recipe.steps
    ((1347, 64), 600)
"""

from __future__ import annotations

from workbench._lazy import lazy_exports

__all__ = [
    "BENCHMARKS",
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
    "DENSE_THREADS",
    "DIRECTIONS",
    "TRAINING_CODE_VERSION",
    "Benchmark",
    "BenchmarkData",
    "DenseRecipe",
    "OnDevice",
    "Task",
    "TensorBatches",
    "cache_path",
    "cycle_batches",
    "check_task",
    "default_evaluate",
    "default_loss",
    "get_benchmark",
    "iterate_batches",
    "list_benchmarks",
    "load_dense_baseline",
    "make_optimizer",
    "register_benchmark",
    "resolve_cache_dir",
    "seeded",
    "to_device",
    "torch_settings",
    "train_dense",
]


def _load() -> dict:
    """The package's modules, imported on first use of an exported name (workbench._lazy)."""
    from . import cnn_digits, families, mlp_digits, tiny_transformer  # noqa: F401 - registers the built-ins (extras lazily)
    from .base import BenchmarkData, DenseRecipe, iterate_batches, make_optimizer, seeded, torch_settings
    from .batches import OnDevice, TensorBatches, cycle_batches, to_device
    from .benchmark import Benchmark
    from .cache import (
        CACHE_ENV,
        DEFAULT_CACHE_DIR,
        DENSE_THREADS,
        TRAINING_CODE_VERSION,
        cache_path,
        load_dense_baseline,
        resolve_cache_dir,
        train_dense,
    )
    from .registry import BENCHMARKS, get_benchmark, list_benchmarks, register_benchmark
    from .task import DIRECTIONS, Task, check_task, default_evaluate, default_loss

    return locals()


__getattr__, __dir__ = lazy_exports(__name__, _load)
