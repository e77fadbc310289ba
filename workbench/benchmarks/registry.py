"""The benchmark registry and the ``package.module:function`` plug-in path.

A built-in benchmark is one module holding a factory decorated with :func:`register_benchmark`;
the factory takes the benchmark's parameters as keyword arguments (all with defaults) and returns
a :class:`~workbench.benchmarks.task.Task` (a :class:`~workbench.benchmarks.benchmark.Benchmark`
is one).

Plug-in contract (your own model, no workbench code edited): ``get_benchmark("pkg.mod:fn",
**params)`` imports ``pkg.mod`` and calls ``fn(**params)``, which returns either

* a :class:`~workbench.benchmarks.task.Task` (full control: any model, batches (a ``DataLoader``,
  dict batches), loss, metrics and their direction, a dense recipe or a pretrained model), or a
  :class:`~workbench.benchmarks.benchmark.Benchmark` (a Task over in-memory tensors), or
* a tuple ``(model, data)`` or ``(model, data, recipe)``: ``model`` a fresh ``torch.nn.Module``
  (classifier returning logits); ``data`` a dict with ``x_train, y_train, x_test, y_test``
  tensors (or a 4-tuple; labels are 1-D integer classes); ``recipe`` an optional
  :class:`~workbench.benchmarks.base.DenseRecipe` or dict of its fields (default:
  300 AdamW steps, lr 1e-3, batch 64). Loss is cross-entropy and the metric is accuracy.

For the tuple form the function is called again, under a seeded torch RNG, every time a model is
built, so the model's initial weights follow the trial seed; it must therefore be deterministic
and cheap, and its data must not depend on the torch RNG state. The source file of the plug-in's
module is part of the dense-cache key: editing it retrains the baseline. The module is imported
normally; the working directory is appended to ``sys.path`` first (as ``python -m`` would have
it), so ``mybench.py`` next to the experiment file works as ``benchmark: "mybench:make"``.

Example:
    >>> from workbench.benchmarks import get_benchmark, list_benchmarks
    >>> "mlp-digits" in list_benchmarks()
    True
    >>> get_benchmark("mlp-digits").name
    'mlp-digits'
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from workbench.infra.plugins import PluginError, call_plugin, import_module
from workbench.pruner.errors import ConfigError
from workbench.pruner.registry import Registry

from .base import BenchmarkData, DenseRecipe, seeded
from .benchmark import Benchmark
from .task import Task

__all__ = ["BENCHMARKS", "DEFAULT_PLUGIN_RECIPE", "get_benchmark", "list_benchmarks", "register_benchmark"]

logger = logging.getLogger(__name__)

BENCHMARKS: Registry[Callable[..., Task]] = Registry("benchmark")
"""Registered benchmark factories by name (the library's one registry class)."""

DEFAULT_PLUGIN_RECIPE = DenseRecipe(steps=300, batch_size=64, lr=1e-3, optimizer="adamw")
"""Dense recipe of a plug-in that returns ``(model, data)`` without a recipe."""


def register_benchmark(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    """Class/function decorator registering a benchmark factory under ``name``.

    Example:
        >>> from workbench.benchmarks import Benchmark
        >>> @register_benchmark("my-bench-doc")            # doctest: +SKIP
        ... def my_bench(width: int = 8) -> Benchmark: ...
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigError(f"name: expected a non-empty benchmark name without ':', got {name!r}")

    return BENCHMARKS.register(name)


def list_benchmarks() -> list[str]:
    """Registered benchmark names, sorted."""
    return sorted(BENCHMARKS)


def _registered() -> str:
    return ", ".join(list_benchmarks()) or "(none)"


def _source_digest(obj: Any) -> str:
    """SHA-256 (16 hex digits) of the source file defining ``obj``; '' when it has none."""
    try:
        path = inspect.getsourcefile(inspect.getmodule(obj) or obj)
        with open(path, "rb") as handle:  # type: ignore[arg-type]
            return hashlib.sha256(handle.read()).hexdigest()[:16]
    except (TypeError, OSError):
        return ""


def _call(factory: Callable[..., Any], params: dict[str, Any], spec: str) -> Any:
    try:
        inspect.signature(factory).bind(**params)
    except TypeError:
        allowed = [p for p in inspect.signature(factory).parameters]
        bad = [k for k in params if k not in allowed] or list(params)
        raise ConfigError(f"benchmark {spec!r}: unknown parameter(s) {bad}; allowed: {allowed}") from None
    except ValueError:  # builtins without a signature
        pass
    if getattr(factory, "__module__", "").startswith("workbench."):
        return factory(**params)  # a built-in benchmark: a failure is our bug and keeps its traceback
    return call_plugin(factory, f"benchmark {spec!r}", **params)


def get_benchmark(spec: str | Task, **params: Any) -> Task:
    """The task named ``spec`` (a registered name or ``"package.module:function"``).

    A :class:`~workbench.benchmarks.task.Task` given as ``spec`` is returned as it is.

    Args:
        spec: A name from :func:`list_benchmarks` or a plug-in ``"package.module:function"``.
        **params: Benchmark parameters (keyword arguments of the factory / plug-in function).

    Raises:
        ValueError: Unknown name, bad import path, missing function, unknown parameter or a
            plug-in returning the wrong thing; the message names ``spec`` and the registered names.
    """
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"benchmark: expected a name or 'package.module:function', got {spec!r}; registered: {_registered()}"
        )
    if spec in BENCHMARKS:
        bench = _call(BENCHMARKS[spec], params, spec)
        if not isinstance(bench, Task):
            raise ConfigError(f"benchmark {spec!r}: factory returned {type(bench).__name__}, expected a Task")
        bench.source_digest = bench.source_digest or _source_digest(BENCHMARKS[spec])
        return bench
    if ":" not in spec:
        raise ConfigError(
            f"benchmark: unknown benchmark {spec!r}; registered: {_registered()} "
            f"(or give a plug-in as 'package.module:function')"
        )
    return _load_plugin(spec, params)


def _load_plugin(spec: str, params: dict[str, Any]) -> Task:
    module_name, _, func_name = spec.partition(":")
    hint = f"registered: {_registered()}"
    if not module_name or not func_name:
        raise ConfigError(f"benchmark {spec!r}: expected 'package.module:function'; {hint}")
    try:
        module = import_module(module_name, what=f"benchmark {spec!r}")
    except PluginError:
        raise  # the plug-in's own failure: the hint about registered names would not help
    except ValueError as err:
        raise ConfigError(f"{err}; {hint}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"benchmark {spec!r}: module {module_name!r} has no callable {func_name!r}; {hint}")
    with seeded(0):
        first = _call(func, params, spec)
    digest = _source_digest(module)
    if isinstance(first, Task):
        first.source_digest = first.source_digest or digest
        first.params = first.params or dict(params)
        return first
    _, data, recipe = _unpack(first, spec, hint)

    def model_fn() -> Any:
        return _unpack(call_plugin(func, f"benchmark {spec!r}", **params), spec, hint)[0]

    return Benchmark(spec, model_fn=model_fn, data=data, recipe=recipe, params=dict(params), source_digest=digest)


def _unpack(value: Any, spec: str, hint: str) -> tuple[Any, BenchmarkData, DenseRecipe]:
    if not isinstance(value, tuple) or len(value) not in (2, 3):
        raise ConfigError(
            f"benchmark {spec!r}: the function returned {type(value).__name__}; expected a "
            f"Task, a Benchmark or a tuple (model, data[, recipe]); {hint}"
        )
    model, data = value[0], value[1]
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"benchmark {spec!r}: the model is {type(model).__name__}, expected a torch.nn.Module; {hint}"
        )
    try:
        data = BenchmarkData.coerce(data, where=f"benchmark {spec!r} data")
    except ValueError as err:
        raise ConfigError(f"{err}; {hint}") from None
    recipe = value[2] if len(value) == 3 else DEFAULT_PLUGIN_RECIPE
    if isinstance(recipe, dict):
        allowed = list(DEFAULT_PLUGIN_RECIPE.to_dict())
        unknown = [k for k in recipe if k not in allowed]
        if unknown:
            raise ConfigError(f"benchmark {spec!r}: unknown recipe key(s) {unknown}; allowed: {allowed}")
        recipe = DenseRecipe(**{**DEFAULT_PLUGIN_RECIPE.to_dict(), **recipe})
    if not isinstance(recipe, DenseRecipe):
        raise ConfigError(f"benchmark {spec!r}: recipe is {type(recipe).__name__}, expected DenseRecipe or dict")
    return model, data, recipe
