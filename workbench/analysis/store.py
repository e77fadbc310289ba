"""Low-level reads of the MLflow store for :mod:`workbench.analysis`: which store, which experiment, which runs.

Runs come from one paginated ``search_runs`` call per experiment; metric series from one query per
metric *key* for all runs at once when the store offers it (SQL stores), else one call per run and key.

Example:
    >>> from workbench.analysis.store import default_tracking_uri, latest_experiment
    >>> latest_experiment(default_tracking_uri())   # doctest: +SKIP
    'default'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from workbench.infra.stores import DEFAULT_TRACKING_URI, sqlite_path, sqlite_url
from workbench.pruner.errors import ConfigError

__all__ = [
    "ClientLike",
    "all_experiments",
    "default_tracking_uri",
    "experiment_id",
    "get_client",
    "latest_experiment",
    "metric_history_frame",
    "search_all",
    "trial_runs",
]

ClientLike = MlflowClient | str | None
"""An ``MlflowClient``, a tracking URI, or None for :func:`default_tracking_uri`."""


def default_tracking_uri(start: str | os.PathLike[str] | None = None) -> str:
    """The store to analyse: ``MLFLOW_TRACKING_URI`` when set, else the SQLite file ``make search`` writes.

    ``make search`` writes ``mlflow.db`` in the folder it runs in (the repository root), while Jupyter
    runs notebooks in ``notebooks/``; so the first ``mlflow.db`` found in ``start`` (default: the current
    folder) or one of its parents is used, as an absolute URI. With none found, ``mlflow.db`` in ``start``.

    Example:
        >>> default_tracking_uri("/tmp").startswith(("sqlite:////", os.environ.get("MLFLOW_TRACKING_URI", "-")))
        True
    """
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    name = sqlite_path(DEFAULT_TRACKING_URI)
    folder = Path(start or Path.cwd()).resolve()
    found = next((d / name for d in (folder, *folder.parents) if (d / name).is_file()), folder / name)
    return sqlite_url(found)


def get_client(client: ClientLike) -> MlflowClient:
    if isinstance(client, MlflowClient):
        return client
    return MlflowClient(client or default_tracking_uri())


def search_all(
    client: MlflowClient,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int | None = None,
) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string,
            max_results=min(max_results or 1000, 1000),
            order_by=order_by,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token or (max_results and len(runs) >= max_results):
            return runs


def all_experiments(client: MlflowClient) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def latest_experiment(client: ClientLike = None) -> str:
    """The experiment to analyse: ``WORKBENCH_EXPERIMENT`` when set, else the one of the most recent study.

    "Most recent" is the latest-started study parent run (tag ``workbench.study``); a store holding
    only single tracked runs (``workbench run``) falls back to the experiment of the latest run.
    Raises ``ValueError`` when the store holds no run (or not the requested experiment).

    Example:
        >>> latest_experiment("sqlite:////tmp/empty-store.db")  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: experiment: no study in sqlite:////tmp/empty-store.db; run `make search` first
    """
    client = get_client(client)
    experiments = all_experiments(client)
    wanted = os.environ.get("WORKBENCH_EXPERIMENT")
    if wanted:
        names = sorted(e.name for e in experiments)
        if wanted not in names:
            raise ConfigError(
                f"WORKBENCH_EXPERIMENT: {wanted!r} is not in {client.tracking_uri}; "
                f"allowed: {', '.join(names) or '(none)'}"
            )
        return wanted
    ids = [e.experiment_id for e in experiments]
    by_id = {e.experiment_id: e.name for e in experiments}
    for where in ("tags.`workbench.study` LIKE '%'", ""):
        runs = search_all(client, ids, where, order_by=["attributes.start_time DESC"], max_results=1) if ids else []
        if runs:
            return by_id[runs[0].info.experiment_id]
    raise ConfigError(f"experiment: no study in {client.tracking_uri}; run `make search` first")


def experiment_id(client: MlflowClient, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in all_experiments(client))
        raise ConfigError(
            f"experiment: {experiment!r} is not in {client.tracking_uri}; allowed: {', '.join(names) or '(none)'}"
        )
    return found.experiment_id


def trial_runs(
    client: MlflowClient, experiment: str, *, study: str | None = None, run_ids: Iterable[str] | None = None
) -> list[Run]:
    """Every trial run (study children, ``workbench run`` and ``rerun`` runs), study parents excluded."""
    runs = search_all(client, [experiment_id(client, experiment)])
    wanted = None if run_ids is None else set(run_ids)
    out = []
    for run in runs:
        tags = run.data.tags
        if "workbench.study" in tags or not ("mlflow.parentRunId" in tags or tags.get("workbench.kind") == "trial"):
            continue
        if study is not None and tags.get("optuna.study_name") != study:
            continue
        if wanted is None or run.info.run_id in wanted:
            out.append(run)
    return out


def metric_history_frame(client: ClientLike, run_ids: Sequence[str], keys: Iterable[str]) -> pd.DataFrame:
    """Every logged value of ``keys`` for ``run_ids``: columns run_id, key, step, value.

    One query per key for all runs on SQL stores (else one call per run and key). A step logged
    twice keeps its latest value.
    """
    client = get_client(client)
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    bulk = getattr(store, "get_metric_history_bulk", None)
    rows = []
    for key in sorted(set(keys)):
        if bulk is not None and run_ids:
            found = bulk(list(run_ids), key, max_results=10_000_000)
            rows.extend((m.run_id, key, m.step, m.timestamp, m.value) for m in found)
        else:
            for run_id in run_ids:
                rows.extend((run_id, key, m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "timestamp", "value"])
    frame = frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable")
    frame = frame.drop_duplicates(["run_id", "key", "step"], keep="last").drop(columns="timestamp")
    return frame.astype({"step": "int64", "value": "float64"}).reset_index(drop=True)
