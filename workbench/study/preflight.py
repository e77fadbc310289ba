"""Checks before a study or a trial opens anything: the stores, the device, the task and its config.

``workbench search`` opens two stores: Optuna's (``--storage`` / ``$WORKBENCH_STORAGE``) and
MLflow's (``--tracking-uri`` / ``$MLFLOW_TRACKING_URI``). Opening one creates it, so a mistake in
the other would leave a store behind and a traceback. :func:`check_stores` looks at both first
(:mod:`workbench.infra.store_checks` does the checking) and raises
:class:`~workbench.pruner.ConfigError` (exit 2) naming where the value came from.

Example:
    >>> try:
    ...     check_tracking_uri("ftp://x/y", source="$MLFLOW_TRACKING_URI")
    ... except ConfigError as err:
    ...     print(str(err).split(";")[0])
    $MLFLOW_TRACKING_URI: 'ftp://x/y' has an unknown scheme
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.benchmarks import check_task, get_benchmark
from workbench.experiment import Experiment, effective_params, with_task
from workbench.infra import store_checks
from workbench.infra.store_checks import CONNECT_TIMEOUT, StoreError, source_of
from workbench.pruner.errors import ConfigError
from workbench.trial import build_pruning_config, resolve_device
from workbench.trial.devices import check_precision

__all__ = [
    "CONNECT_TIMEOUT",
    "check_point_builds",
    "check_storage",
    "check_task_contract",
    "check_stores",
    "check_tracking_uri",
    "resolve_task",
    "source_of",
    "task_goal",
]


def check_storage(spec: str, *, source: str = "--storage") -> None:
    """ConfigError unless the Optuna storage ``spec`` (URL or journal file) can be opened."""
    try:
        store_checks.check_storage(spec, source=source)
    except StoreError as err:
        raise ConfigError(str(err)) from None


def check_tracking_uri(uri: str, *, source: str = "--tracking-uri") -> None:
    """ConfigError unless the MLflow tracking store ``uri`` can be opened."""
    try:
        store_checks.check_tracking_uri(uri, source=source)
    except StoreError as err:
        raise ConfigError(str(err)) from None


def check_stores(storage: str, tracking_uri: str, *, storage_source: str, tracking_source: str) -> None:
    """Check the Optuna storage and the MLflow store (in that order) before either is opened."""
    check_storage(storage, source=storage_source)
    check_tracking_uri(tracking_uri, source=tracking_source)


def task_goal(spec: str, params: dict[str, Any] | None = None) -> tuple[str, str]:
    """The metric and direction of the task ``get_benchmark(spec, **params)`` (built to find out)."""
    task = get_benchmark(spec, **(params or {}))
    return str(getattr(task, "metric", "accuracy")), str(getattr(task, "direction", "maximize"))


def resolve_task(experiment: Experiment, goal: Callable[..., tuple[str, str]] = task_goal) -> Experiment:
    """``experiment`` with the task's metric and direction (ConfigError when ``study.objectives`` names another).

    ``goal(spec, params)`` gives the task's (metric, direction): :func:`task_goal` builds the task.
    """
    metric, direction = goal(experiment.benchmark, dict(experiment.benchmark_params))
    return with_task(experiment, metric, direction)


def check_device(experiment: Experiment) -> None:
    """Fail fast (ConfigError, exit 2) on a ``training.device`` this machine lacks (``cuda`` without
    CUDA, ``cuda:N`` past the visible devices) or a ``training.precision`` the device cannot run."""
    check_precision(experiment.training.precision, resolve_device(experiment.training.device))


def check_task_contract(experiment: Experiment) -> tuple[str, str]:
    """The task's (metric, direction), after checking its contract once (:func:`workbench.benchmarks.check_task`).

    Builds the task, its model and first training batch, and evaluates the model once on the
    experiment's device: a ``build_model`` returning a dict or None, empty training batches, an
    ``evaluate`` raising, returning NaN, a string or None, or omitting the metric stop the study
    before its first trial (ConfigError naming the task and what is wrong; exit 2).
    """
    task = get_benchmark(experiment.benchmark, **dict(experiment.benchmark_params))
    check_task(task, seed=experiment.study.trial_seeds[0], device=resolve_device(experiment.training.device))
    return str(task.metric), str(task.direction)


def check_point_builds(experiment: Experiment, point: dict) -> Experiment:
    """Fail fast (ConfigError, exit 2) on a device this machine lacks, an unknown benchmark, bad
    ``benchmark_params``, a task breaking its contract (:func:`check_task_contract`), objectives
    naming another metric than the task's, or a pruning config that cannot build.

    Returns ``experiment`` with the task's metric and direction (:func:`resolve_task`).
    """
    check_device(experiment)
    metric, direction = check_task_contract(experiment)
    resolved = with_task(experiment, metric, direction)
    pruning = {k: v for k, v in effective_params(point).items() if k != "lr"}
    build_pruning_config(pruning, training=experiment.training, fixed=experiment.pruning)  # validates what it builds
    return resolved
