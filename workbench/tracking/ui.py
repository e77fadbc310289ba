"""Addresses in the MLflow UI: a study's runs table sorted by the metric, a run's page.

MLflow's UI (3.x) is a single-page app whose state sits after ``#``: ``/experiments/<id>/runs``
is the runs table, and its query keeps ``searchFilter`` (an MLflow search expression),
``orderByKey`` (e.g. ``metrics.`accuracy```) and ``orderByAsc``. Which columns show is kept in
the browser, not in those parameters; a study therefore saves its landing view (columns
included) on its experiment, and :func:`study_landing` links to that view
(:mod:`.landing_view`), or to :func:`runs_url` where a store has none. Standard library only
(the server is asked over MLflow's REST API), so ``workbench ui`` starts without loading MLflow
or torch.

Example:
    >>> run_url("http://127.0.0.1:5000", "1", "abc")
    'http://127.0.0.1:5000/#/experiments/1/runs/abc'
    >>> runs_url("http://127.0.0.1:5000", "1", study="default")  # doctest: +ELLIPSIS
    'http://127.0.0.1:5000/#/experiments/1/runs?searchFilter=tags.%60optuna.study_name%60...orderByAsc=false'
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from workbench.infra.redaction import redact_url
from workbench.infra.stores import local_path, sqlite_path, store_kind, store_scheme
from workbench.tracking.landing_view import VIEW_TAG_PREFIX, view_key, view_url

__all__ = ["DEFAULT_UI", "run_url", "runs_url", "store_experiments", "study_landing", "ui_base"]

DEFAULT_UI = "http://127.0.0.1:5000"
"""Where ``make ui`` / ``workbench ui`` serves by default."""


def ui_base(tracking_uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI's address: the tracking server itself when the store is one, else ``workbench ui``'s.

    A server's credentials (userinfo, query) are left out: the address is printed and opened in a
    browser, which asks for them itself.

    >>> ui_base("http://alice:S3cret@10.0.0.5:5000/?token=t0k")
    'http://10.0.0.5:5000'
    """
    if store_kind(tracking_uri) == "server":
        parts = urlsplit(tracking_uri)
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"http://{host}:{port}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The page of one run (its params, metrics, artifacts)."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def runs_url(
    base: str, experiment_id: str, *, study: str | None = None, metric: str = "accuracy", direction: str = "maximize"
) -> str:
    """The experiment's runs table, only ``study``'s trials when given, best ``metric`` first."""
    ascending = "true" if direction == "minimize" else "false"
    query = {"orderByKey": f"metrics.`{metric}`", "orderByAsc": ascending}
    if study is not None:
        query = {"searchFilter": f"tags.`optuna.study_name` = '{study}'", **query}
    return f"{base}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"


def _post(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def study_landing(base: str, *, experiment: str | None = None) -> tuple[str, str | None]:
    """The address to open on a running UI at ``base``, and the study it shows (None: no study).

    Asks the server (MLflow's REST API, standard library only) for the most recent study parent
    run (tag ``workbench.study``), in ``experiment`` when given; the address is that study's saved
    landing view (:func:`~workbench.tracking.landing_view.view_url`: its trials, best metric
    first, with the metric, reached sparsity and knob columns shown in a fresh browser), or its
    runs table sorted by the study's metric (:func:`runs_url`, the parent run's ``metric`` and
    ``direction`` params) where the experiment has no saved view (a study from before the view). Without any study: the UI's front page.
    ``ValueError`` naming ``--experiment`` when it is not in the store.
    """
    found = _post(base, "experiments/search", {"max_results": 1000}).get("experiments", [])
    if experiment is not None:
        found = [e for e in found if e.get("name") == experiment]
        if not found:
            raise ValueError(f"--experiment: {experiment!r} is not in the tracking store at {base}")
    ids = [e["experiment_id"] for e in found]
    if not ids:
        return base, None
    runs = _post(
        base,
        "runs/search",
        {
            "experiment_ids": ids,
            "filter": "tags.`workbench.study` LIKE '%'",
            "order_by": ["attributes.start_time DESC"],
            "max_results": 1,
        },
    ).get("runs", [])
    if not runs:
        return (runs_url(base, ids[0]) if experiment is not None else base), None
    tags = {t["key"]: t["value"] for t in runs[0]["data"].get("tags", [])}
    study, exp_id = tags["workbench.study"], runs[0]["info"]["experiment_id"]
    exp_tags = next(({t["key"] for t in e.get("tags", [])} for e in found if e["experiment_id"] == exp_id), set())
    if VIEW_TAG_PREFIX + view_key(study) in exp_tags:
        return view_url(base, exp_id, study), study
    params = {p["key"]: p["value"] for p in runs[0]["data"].get("params", [])}
    metric, direction = params.get("metric", "accuracy"), params.get("direction", "maximize")
    return runs_url(base, exp_id, study=study, metric=metric, direction=direction), study


def store_experiments(tracking_uri: str) -> list[str]:
    """The names of the active experiments in the store ``tracking_uri``, read before any server starts.

    A database store (SQLite, PostgreSQL, ...) is read with SQLAlchemy (MLflow's ``experiments``
    table), a file store from its ``meta.yaml`` files; a SQLite file or folder that does not
    exist yet holds none. ``ValueError`` naming ``--tracking-uri`` when the store cannot be read.
    Neither MLflow nor torch is loaded (``workbench ui --experiment`` checks its input with it).
    """
    path = sqlite_path(tracking_uri)
    if path is not None and not Path(path).expanduser().is_file():
        return []
    kind, scheme = store_kind(tracking_uri), store_scheme(tracking_uri)
    if kind in ("sqlite", "database"):
        return _database_experiments(tracking_uri)
    folder = Path(unquote(urlsplit(tracking_uri).path) if scheme == "file" else local_path(tracking_uri) or "")
    names = []
    for meta in sorted(folder.glob("*/meta.yaml")):
        text = meta.read_text(errors="replace")
        name = re.search(r"^name: *(.*?) *$", text, re.MULTILINE)
        if name and not re.search(r"^lifecycle_stage: *deleted", text, re.MULTILINE):
            names.append(name.group(1).strip("'\""))
    return names


def _database_experiments(url: str) -> list[str]:
    # start-up: SQLAlchemy only when `ui --experiment` checks a database store
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT name FROM experiments WHERE lifecycle_stage = 'active'")
            ).fetchall()
    except Exception as err:  # noqa: BLE001 - any failure to read is the user's store
        first = str(getattr(err, "orig", None) or err).strip().splitlines()
        raise ValueError(
            f"--tracking-uri: cannot list the experiments of {redact_url(url)} "
            f"({first[0] if first else type(err).__name__})"
        ) from None
    finally:
        engine.dispose()
    return [row[0] for row in rows]
