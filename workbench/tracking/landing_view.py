"""The study's landing view in the MLflow UI: its trials with the metric, the sparsity and the knobs shown.

MLflow's UI (3.17) keeps the runs table's visible columns in the browser's ``localStorage``, not
in the address, so a link alone cannot show a metric column in a fresh browser profile. It does
honour one parameter for the whole view: ``#/experiments/<id>/runs?viewStateShareKey=<key>``
loads the experiment tag ``mlflow.sharedViewState.<key>`` (what its "Views" menu saves and
shares). That tag holds an envelope ``{"name", "createdAt", "updatedAt", "state"}`` whose
``state`` is the view as JSON: the search facets (``searchFilter``, ``orderByKey``,
``orderByAsc``) and the table's UI state (``selectedColumns``, ``columnWidths``). Column keys are
MLflow's canonical keys, ``metrics.`accuracy``` and ``params.`pattern```.

:func:`landing_view_tag` builds that tag for a study; the study writes it on its experiment
(:func:`workbench.study.run.run_study`) and ``workbench ui`` prints the address of
:func:`view_url`. The UI ignores the view when the address also carries a search facet, so the
address carries the key alone. The page shows MLflow's banner "You're viewing a shared view";
the view is also listed under "Views", named ``<study>: best <metric>``.
Standard library only (``workbench ui`` imports it without MLflow).

Example:
    >>> key, value = landing_view_tag("default", metric="accuracy", now_ms=0)
    >>> key
    'mlflow.sharedViewState.study-default-7505d64a'
    >>> view = json.loads(json.loads(value)["state"])
    >>> view["orderByKey"], view["selectedColumns"][:2]
    ('metrics.`accuracy`', ['metrics.`accuracy`', 'metrics.`sparsity/elementwise_over_matmul_gemm_conv`'])
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

__all__ = [
    "KNOB_COLUMNS",
    "SPARSITY_METRIC",
    "VIEW_TAG_PREFIX",
    "landing_view",
    "landing_view_tag",
    "view_key",
    "view_url",
]

VIEW_TAG_PREFIX = "mlflow.sharedViewState."
"""MLflow's experiment tag prefix of a saved (shared) runs-table view."""
SPARSITY_METRIC = "sparsity/elementwise_over_matmul_gemm_conv"
"""The reached sparsity a study compares at (the trials' ``sparsity`` objective)."""
KNOB_COLUMNS = ("pattern", "criterion", "scheduler", "target_sparsity")
"""The params shown beside the metric: what a configuration is."""
_WIDTHS = {"metric": 150, "sparsity": 140, "param": 125}
"""Column widths in pixels: a metric as MLflow prints it (up to 17 digits) and `snip_momentum` fit."""


def view_key(study: str) -> str:
    """The share key of ``study``'s view: a readable slug and a digest (``study-default-7505d64a``).

    The slug keeps letters, digits, ``_`` and ``-`` (URL- and tag-safe); the digest of the full
    name keeps two studies whose slugs agree apart.
    """
    if not isinstance(study, str) or not study:
        raise ValueError(f"study: {study!r} is not allowed; allowed: a non-empty study name")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", study).strip("-")[:40] or "study"
    return f"study-{slug}-{hashlib.sha1(study.encode('utf-8')).hexdigest()[:8]}"


def landing_view(
    study: str, *, metric: str = "accuracy", direction: str = "maximize", knobs: Sequence[str] = KNOB_COLUMNS
) -> dict[str, Any]:
    """The view: ``study``'s runs, best ``metric`` first (lowest when ``direction`` is
    ``"minimize"``), the metric, reached sparsity and ``knobs`` shown."""
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric: {metric!r} is not allowed; allowed: a metric key such as 'accuracy'")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction: {direction!r} is not allowed; allowed: maximize, minimize")
    if isinstance(knobs, str) or not all(isinstance(k, str) and k for k in knobs):
        raise ValueError(f"knobs: {knobs!r} is not allowed; allowed: a sequence of param names")
    metrics = [f"metrics.`{metric}`", f"metrics.`{SPARSITY_METRIC}`"] if metric != SPARSITY_METRIC else [metric]
    params = [f"params.`{k}`" for k in knobs]
    widths = {metrics[0]: _WIDTHS["metric"], **{m: _WIDTHS["sparsity"] for m in metrics[1:]}}
    return {
        "searchFilter": f"tags.`optuna.study_name` = '{study}'",
        "orderByKey": metrics[0],
        "orderByAsc": direction == "minimize",
        "selectedColumns": metrics + params,
        "columnOrder": metrics + params,
        "columnWidths": {**widths, **{p: _WIDTHS["param"] for p in params}},
    }


def landing_view_tag(
    study: str, *, metric: str = "accuracy", direction: str = "maximize", now_ms: int
) -> tuple[str, str]:
    """The experiment tag (key, value) that saves :func:`landing_view` as MLflow's UI reads it."""
    state = json.dumps(landing_view(study, metric=metric, direction=direction), separators=(",", ":"))
    envelope = {"name": f"{study}: best {metric}", "createdAt": now_ms, "updatedAt": now_ms, "state": state}
    return VIEW_TAG_PREFIX + view_key(study), json.dumps(envelope, separators=(",", ":"))


def view_url(base: str, experiment_id: str, study: str) -> str:
    """The runs table of ``experiment_id`` in ``study``'s saved view (nothing else in the query).

    >>> view_url("http://127.0.0.1:5000", "1", "default")
    'http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=study-default-7505d64a'
    """
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={quote(view_key(study))}"
