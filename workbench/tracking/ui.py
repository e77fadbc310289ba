"""Addresses in the MLflow UI: a study's runs table sorted by the metric, a run's page.

MLflow's UI (3.x) is a single-page app whose state sits after ``#``: ``/experiments/<id>/runs``
is the runs table, and its query keeps ``searchFilter`` (an MLflow search expression),
``orderByKey`` (e.g. ``metrics.`accuracy```) and ``orderByAsc``. Which columns show is kept in
the browser, not in the URL, so a link can choose the runs and their order, not the columns.

Example:
    >>> run_url("http://127.0.0.1:5000", "1", "abc")
    'http://127.0.0.1:5000/#/experiments/1/runs/abc'
    >>> runs_url("http://127.0.0.1:5000", "1", study="default")  # doctest: +ELLIPSIS
    'http://127.0.0.1:5000/#/experiments/1/runs?searchFilter=tags.%60optuna.study_name%60...orderByAsc=false'
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

__all__ = ["DEFAULT_UI", "run_url", "runs_url", "ui_base"]

DEFAULT_UI = "http://127.0.0.1:5000"
"""Where ``make ui`` / ``workbench ui`` serves by default."""


def ui_base(tracking_uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI's address: the tracking server itself when the store is one, else ``workbench ui``'s."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return f"http://{host}:{port}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The page of one run (its params, metrics, artifacts)."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def runs_url(base: str, experiment_id: str, *, study: str | None = None, metric: str = "accuracy") -> str:
    """The experiment's runs table, only ``study``'s trials when given, best ``metric`` first."""
    query = {"orderByKey": f"metrics.`{metric}`", "orderByAsc": "false"}
    if study is not None:
        query = {"searchFilter": f"tags.`optuna.study_name` = '{study}'", **query}
    return f"{base}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"
