"""The study's landing view in the MLflow UI: its trials with the metric, the sparsity and the knobs shown.

The knobs shown are every one the study searches (decay type, pruning scope, pruner type, ...
when they vary), never one that takes a single value, so two trials never look like one
configuration with two results. A study with several seeds (``study.seeds``) also shows each
trial's seed and its configuration's mean, spread and number of seeds over seeds (the
``config/<metric>_mean``, ``config/<metric>_std`` and ``config/n_seeds`` metrics the study logs
on every trial when it ends: :mod:`workbench.study.report`), best mean first, so a
configuration's seeds sit together and the luckiest one does not lead. A study that keeps its
models (``tracking.log_model``) shows the tag :data:`REGISTERED_COLUMN`: on a trial whose model
was registered at the end of the study (its front), the registered model and version
(``<study> v2``), i.e. where the view points at the study's registered models.

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
    "CONFIG_METRICS",
    "KNOB_COLUMNS",
    "REGISTERED_COLUMN",
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
"""The params shown beside the metric by default: what a configuration is (a study passes the knobs it searches)."""
CONFIG_METRICS = ("config/{metric}_mean", "config/{metric}_std", "config/n_seeds")
"""A study of several seeds: each trial's configuration's mean and spread of the metric and its number of seeds."""
REGISTERED_COLUMN = "workbench.registered_model"
"""The trial-run tag naming its registered model version (``<study> v<N>``), set when the study registers its front."""
_WIDTHS = {"metric": 150, "sparsity": 140, "param": 125, "tag": 170}
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
    study: str,
    *,
    metric: str = "accuracy",
    direction: str = "maximize",
    knobs: Sequence[str] = KNOB_COLUMNS,
    seeds: bool = False,
    models: bool = False,
) -> dict[str, Any]:
    """The view: ``study``'s runs, best ``metric`` first (lowest when ``direction`` is
    ``"minimize"``), the metric, reached sparsity and ``knobs`` shown.

    ``seeds`` (the study trains each configuration with several seeds): the configuration's mean,
    spread and ``n_seeds`` (:data:`CONFIG_METRICS`) after the metric and the ``seed`` param after
    the knobs, ordered by the configuration's mean. ``models`` (the study keeps its trials'
    models): the :data:`REGISTERED_COLUMN` tag last, naming each registered front trial's version.
    """
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric: {metric!r} is not allowed; allowed: a metric key such as 'accuracy'")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction: {direction!r} is not allowed; allowed: maximize, minimize")
    if isinstance(knobs, str) or not all(isinstance(k, str) and k for k in knobs):
        raise ValueError(f"knobs: {knobs!r} is not allowed; allowed: a sequence of param names")
    metrics = [f"metrics.`{metric}`", f"metrics.`{SPARSITY_METRIC}`"] if metric != SPARSITY_METRIC else [metric]
    config = [f"metrics.`{m.format(metric=metric)}`" for m in CONFIG_METRICS] if seeds else []
    metrics = [metrics[0], *config, *metrics[1:]]
    params = [f"params.`{k}`" for k in dict.fromkeys([*knobs, *(["seed"] if seeds else [])])]
    tags = [f"tags.`{REGISTERED_COLUMN}`"] if models else []
    widths = {metrics[0]: _WIDTHS["metric"], **{m: _WIDTHS["sparsity"] for m in metrics[1:]}}
    columns = metrics + params + tags
    return {
        "searchFilter": f"tags.`optuna.study_name` = '{study}'",
        "orderByKey": config[0] if config else metrics[0],
        "orderByAsc": direction == "minimize",
        "selectedColumns": columns,
        "columnOrder": columns,
        "columnWidths": {**widths, **{p: _WIDTHS["param"] for p in params}, **{t: _WIDTHS["tag"] for t in tags}},
    }


def landing_view_tag(
    study: str,
    *,
    metric: str = "accuracy",
    direction: str = "maximize",
    now_ms: int,
    knobs: Sequence[str] = KNOB_COLUMNS,
    seeds: bool = False,
    models: bool = False,
) -> tuple[str, str]:
    """The experiment tag (key, value) that saves :func:`landing_view` as MLflow's UI reads it."""
    view = landing_view(study, metric=metric, direction=direction, knobs=knobs, seeds=seeds, models=models)
    state = json.dumps(view, separators=(",", ":"))
    envelope = {"name": f"{study}: best {metric}", "createdAt": now_ms, "updatedAt": now_ms, "state": state}
    return VIEW_TAG_PREFIX + view_key(study), json.dumps(envelope, separators=(",", ":"))


def view_url(base: str, experiment_id: str, study: str) -> str:
    """The runs table of ``experiment_id`` in ``study``'s saved view (nothing else in the query).

    >>> view_url("http://127.0.0.1:5000", "1", "default")
    'http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=study-default-7505d64a'
    """
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={quote(view_key(study))}"
