"""Both stores checked before either is written: a bad URL is one line naming its flag or variable.

``workbench search`` opens two stores: Optuna's (``--storage`` / ``$WORKBENCH_STORAGE``) and
MLflow's (``--tracking-uri`` / ``$MLFLOW_TRACKING_URI``). Opening one creates it, so a mistake in
the other would leave a store behind and a traceback. :func:`check_stores` looks at both first
and raises :class:`~workbench.pruner.ConfigError` (exit 2) naming where the value came from:

* an unknown scheme, or a database driver that is not installed;
* a SQLite file or a journal file in a folder that does not exist;
* a database server (PostgreSQL, MySQL, ...) or tracking server that does not answer.

Example:
    >>> check_storage("/no/such/folder/optuna.journal", source="--storage")
    Traceback (most recent call last):
    ...
    workbench.pruner.errors.ConfigError: --storage: the folder of the journal file '/no/such/folder/optuna.journal' does not exist (/no/such/folder)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workbench.benchmarks import check_task, get_benchmark
from workbench.experiment import Experiment, effective_params, with_task
from workbench.infra.redaction import redact_text, redact_url
from workbench.infra.stores import sqlite_path
from workbench.pruner import ConfigError
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

CONNECT_TIMEOUT = 5.0
"""Seconds a database or tracking server gets to accept a connection before the check fails."""
_DATABASES = ("sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle")
_TRACKING = ("file", "http", "https", "databricks", *_DATABASES)


def source_of(value: str | None, flag: str, env: str) -> str:
    """How to name a store setting in a message: the flag when given, else ``$VAR`` when set."""
    return flag if value else f"${env}" if os.environ.get(env) else flag


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return redact_text(text[0] if text else type(err).__name__)


def _check_folder(path: str, what: str, source: str, shown: str) -> None:
    if path in (":memory:", ""):
        return
    folder = Path(path).expanduser().parent
    if not folder.is_dir():
        raise ConfigError(f"{source}: the folder of the {what} {shown!r} does not exist ({folder})")


def _check_database(url: str, source: str, allowed: tuple[str, ...]) -> None:
    # start-up: SQLAlchemy is loaded only when a store is checked
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = redact_url(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(
            f"{source}: {shown!r} has an unknown scheme; allowed: {', '.join(allowed)} (a driver may follow, "
            "as postgresql+psycopg://)"
        ) from None
    except ImportError as err:
        raise ConfigError(f"{source}: the database driver for {shown!r} is not installed ({err})") from None
    if parsed.get_backend_name() == "sqlite":
        _check_folder(parsed.database or "", "SQLite file", source, shown)
        return
    connect_args = {"connect_timeout": int(CONNECT_TIMEOUT)} if dialect.name in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except Exception as err:  # noqa: BLE001 - any failure to connect is the user's store
        raise ConfigError(f"{source}: cannot connect to {shown}: {_first_line(err)}") from None
    finally:
        engine.dispose()


def check_storage(spec: str, *, source: str = "--storage") -> None:
    """ConfigError unless the Optuna storage ``spec`` (URL or journal file) can be opened."""
    if "://" not in spec:
        _check_folder(spec, "journal file", source, spec)
        return
    _check_database(spec, source, _DATABASES)


def _check_server(uri: str, source: str) -> None:
    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
    except ValueError as err:
        raise ConfigError(f"{source}: {redact_url(uri)!r} is not a valid URL ({err})") from None
    if not host:
        raise ConfigError(f"{source}: {redact_url(uri)!r} names no host")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as err:
        raise ConfigError(
            f"{source}: the tracking server {redact_url(uri)} does not answer ({err.strerror or err})"
        ) from None


def check_tracking_uri(uri: str, *, source: str = "--tracking-uri") -> None:
    """ConfigError unless the MLflow tracking store ``uri`` can be opened (module docstring)."""
    path = sqlite_path(uri)
    if path is not None:
        _check_folder(path, "SQLite file", source, uri)
        return
    scheme = urlsplit(uri).scheme.partition("+")[0].lower() if "://" in uri else "file"
    if scheme not in _TRACKING:
        raise ConfigError(f"{source}: {redact_url(uri)!r} has an unknown scheme; allowed: {', '.join(_TRACKING)}")
    if scheme in ("http", "https"):
        _check_server(uri, source)
    elif scheme in _DATABASES:
        _check_database(uri, source, _TRACKING)


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
