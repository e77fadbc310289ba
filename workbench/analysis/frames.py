"""Tidy pandas DataFrames of a study, read back from MLflow, for the analysis notebooks.

Everything a notebook shows is computed here, as tested code, so notebooks stay a few short
cells. The MLflow layout is the one :mod:`workbench.tracking` writes (docs/design.md, "MLflow
layout"): one experiment per experiment YAML, a parent run per study (tag ``workbench.study``)
and one child run per trial. Store access (which store, which experiment, batched reads) lives in
:mod:`workbench.analysis.store`, pure pandas helpers in :mod:`workbench.analysis.stats`; both are
re-exported here.

Layer labels are the layer part of the metric key (``layer_sparsity/<layer>``):
:mod:`workbench.tracking.metric_keys` keeps ordinary layer names (dots included) unchanged, and has no
inverse for the rare mapped ones, which therefore appear under their sanitised name.

Example:
    >>> from workbench import analysis
    >>> uri = analysis.default_tracking_uri()                      # doctest: +SKIP
    >>> name = analysis.latest_experiment(uri)                     # doctest: +SKIP
    >>> trials = analysis.trials_frame(name, client=uri)           # doctest: +SKIP
    >>> analysis.pareto_front(trials[trials.state == "COMPLETE"])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
from mlflow.entities import Run

from workbench.analysis.configs import configurations_frame
from workbench.analysis.goal import final_columns, metric_of, run_goal, summary_columns
from workbench.analysis.speed import SPEED_COLUMNS
from workbench.analysis.stats import best_by, pareto_front, pick_trials, seed_spread, variance_explained
from workbench.analysis.store import (
    ClientLike,
    default_tracking_uri,
    get_client,
    latest_experiment,
    metric_history_frame,
    trial_runs,
)
from workbench.results.importance import residual_importances
from workbench.trial.space import SEARCH_DIMS, is_posttraining

__all__ = [
    "SUMMARY_COLUMNS",
    "best_by",
    "curves_frame",
    "default_tracking_uri",
    "eval_frame",
    "global_curves_frame",
    "latest_experiment",
    "metric_history_frame",
    "param_importances",
    "pareto_front",
    "pick_trials",
    "seed_spread",
    "trials_frame",
    "variance_explained",
]

_log = logging.getLogger(__name__)

KNOBS = (*SEARCH_DIMS, "seed")
"""Trial params that can differ between trials (candidates for importances)."""
SUMMARY_COLUMNS = summary_columns("accuracy")
"""The columns of :func:`trials_frame` a summary table shows (an accuracy task; :func:`summary_columns` for others)."""
_FINALS = {
    "sparsity/elementwise_over_matmul_gemm_conv": "sparsity",
    "sparsity/elementwise_over_all": "sparsity_all",
    "sparsity/blockwise_over_matmul_gemm_conv": "blockwise_sparsity",
    "sparsity/nm_groups_satisfied": "nm_groups_satisfied",
    "time/total_seconds": "seconds",
    "cost/wall_s": "wall_s",
    "cost/peak_rss_mb": "peak_memory_mb",
    "cost/peak_rss_increase_mb": "peak_memory_increase_mb",
    "cost/peak_cuda_mb": "peak_cuda_mb",
    **SPEED_COLUMNS,  # speed/speedup, ... (NaN where speed was not measured)
}
_STATE = {"FINISHED": "COMPLETE", "KILLED": "PRUNED", "FAILED": "FAIL"}


def _trial_number(run: Run) -> Any:
    value = run.data.tags.get("optuna.trial_number")
    return int(value) if value not in (None, "") else pd.NA


def _coerce(column: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError):
        return column


def trials_frame(
    experiment: str,
    *,
    client: ClientLike = None,
    study: str | None = None,
    include_training: bool = False,
    include_runs: bool = False,
) -> pd.DataFrame:
    """One row per trial run of ``experiment``: identity, state, params and final metrics.

    Columns: ``run_id``, ``trial`` (Optuna trial number; missing for ``workbench run`` runs),
    ``study``, ``state`` (COMPLETE / PRUNED / FAIL / RUNNING), ``status`` (MLflow's), ``source``
    (study / run / rerun), ``run_name``, every logged param (numbers converted; ``training.*`` only
    with ``include_training``), then the task's final metrics (``accuracy``, ``dense_accuracy``,
    ``accuracy_drop`` for the built-in benchmarks; ``perplexity``, ``dense_perplexity``,
    ``perplexity_drop``, ... for a language model: every ``<name>``, ``dense_<name>``, ``<metric>_drop``
    logged), the achieved sparsity (last value of each ``sparsity/*`` series: ``sparsity`` = elementwise over
    matmul/gemm/conv, ``sparsity_all``, ``blockwise_sparsity``), ``seconds``, the cost (``wall_s``: seconds without the dense baseline; peak memory
    (``peak_memory_mb``, ``peak_memory_increase_mb``, ``peak_cuda_mb``: the ``cost/*`` metrics,
    NaN where not logged; :mod:`workbench.trial.cost` says what they measure), ``posttraining``
    (whether the criterion is a post-training method), ``metric`` and
    ``direction`` (the task's: :func:`workbench.analysis.metric_of`), ``parent_run_id`` and ``start_time``. Study trials come first (by study and trial number), then runs outside a study
    (by start time), only with ``include_runs``: single runs (``workbench run`` / ``rerun``, tag
    ``workbench.source``) are not trials of a study and stay out of its tables by default.
    ``study`` keeps one study's trials.

    Example:
        >>> df = trials_frame("quick", client="sqlite:///mlflow.db")        # doctest: +SKIP
        >>> df[["trial", "pattern", "accuracy", "sparsity"]]                 # doctest: +SKIP
    """
    client = get_client(client)
    rows, metrics, final_keys = [], [], set()
    for run in trial_runs(client, experiment, study=study):
        tags, info = run.data.tags, run.info
        source = tags.get("workbench.source") or ("study" if "mlflow.parentRunId" in tags else "run")
        if source != "study" and not include_runs:
            continue
        row: dict[str, Any] = {
            "run_id": info.run_id,
            "trial": _trial_number(run),
            "study": tags.get("optuna.study_name", ""),
            "state": tags.get("workbench.trial_state") or _STATE.get(info.status, info.status),
            "status": info.status,
            "source": source,
            "run_name": info.run_name,
        }
        row.update(
            {
                k: v
                for k, v in sorted(run.data.params.items())
                if (include_training or not k.startswith("training.")) and not k.startswith("time.")
            }
        )
        metric, direction = run_goal(tags)
        metrics.append(metric)
        finals = {k: v for k, v in run.data.metrics.items() if "/" not in k}  # the task's final metrics
        finals = {k: finals.get(k, float("nan")) for k in final_columns(finals, [metric])}
        final_keys.update(finals)
        row.update(finals)
        row.update({column: run.data.metrics.get(key, float("nan")) for key, column in _FINALS.items()})
        if "time.total_s" in run.data.params:  # timings are params since they left the charts
            row["seconds"] = float(run.data.params["time.total_s"])
        if math.isnan(row["blockwise_sparsity"]) and math.isnan(row["nm_groups_satisfied"]):
            row["blockwise_sparsity"] = row["sparsity"]  # a block pattern logs it only where it differs
        row["posttraining"] = is_posttraining(row.get("criterion"))
        row["metric"], row["direction"] = metric, direction
        row["parent_run_id"] = tags.get("mlflow.parentRunId", "")
        row["start_time"] = pd.Timestamp(info.start_time, unit="ms")
        rows.append(row)
    head = ["run_id", "trial", "study", "state", "status", "source", "run_name"]
    finals = final_columns(final_keys, metrics or ["accuracy"])
    tail = [*finals, *_FINALS.values(), "posttraining", "metric", "direction", "parent_run_id", "start_time"]
    if not rows:
        return pd.DataFrame(columns=head + tail)
    frame = pd.DataFrame(rows)
    params = sorted(set(frame.columns) - set(head) - set(tail), key=lambda k: (k not in KNOBS, k))
    frame = frame[head + params + tail]
    for column in params:
        frame[column] = _coerce(frame[column])
    frame["trial"] = frame["trial"].astype("Int64")
    order = frame.assign(_alone=frame["study"] == "").sort_values(
        ["_alone", "study", "trial", "start_time"], na_position="last", kind="stable"
    )
    return frame.loc[order.index].reset_index(drop=True)


def _series(
    experiment: str, prefixes: tuple[str, ...], *, client: ClientLike, run_ids: Iterable[str] | None, study: str | None
) -> pd.DataFrame:
    """History of every key starting with one of ``prefixes``, plus the run's trial number."""
    client = get_client(client)
    runs = trial_runs(client, experiment, study=study, run_ids=run_ids)
    keys = {k for run in runs for k in run.data.metrics if k.startswith(prefixes)}
    frame = metric_history_frame(client, [r.info.run_id for r in runs], keys)
    trial = {r.info.run_id: _trial_number(r) for r in runs}
    frame.insert(0, "trial", pd.array([trial[r] for r in frame["run_id"]], dtype="Int64"))
    return frame


def curves_frame(
    experiment: str, run_ids: Iterable[str] | None = None, *, client: ClientLike = None, study: str | None = None
) -> pd.DataFrame:
    """Per-layer sparsity curves in long format: trial, run_id, layer, step, elementwise, blockwise, nm_groups_satisfied.

    ``elementwise`` comes from ``layer_sparsity/<layer>``; ``blockwise`` from
    ``layer_blockwise_sparsity/<layer>``, which a block pattern logs only where it differs from
    the elementwise curve (elsewhere it is that curve); ``nm_groups_satisfied`` (N:M patterns only,
    ``layer_nm_satisfied/<layer>``) is the fraction of N:M groups holding at least N zeros, not a
    sparsity, and ``blockwise`` is NaN there. A step logged for one and not another is NaN there.

    Example:
        >>> curves = curves_frame("quick", trials.run_id[:2], client=uri)        # doctest: +SKIP
        >>> curves.pivot_table(index="layer", columns="step", values="elementwise")  # doctest: +SKIP
    """
    kinds = {
        "layer_sparsity": "elementwise",
        "layer_blockwise_sparsity": "blockwise",
        "layer_nm_satisfied": "nm_groups_satisfied",
    }
    frame = _series(experiment, tuple(f"{k}/" for k in kinds), client=client, run_ids=run_ids, study=study)
    columns = ["trial", "run_id", "layer", "step", *kinds.values()]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c in columns[4:] else "object") for c in columns})
    parts = frame["key"].str.partition("/")
    frame = frame.assign(kind=parts[0].map(kinds), layer=parts[2])
    wide = frame.set_index(["trial", "run_id", "layer", "step", "kind"])["value"].unstack("kind").reset_index()
    for column in kinds.values():
        if column not in wide:
            wide[column] = float("nan")
    nm_runs = set(wide.loc[wide["nm_groups_satisfied"].notna(), "run_id"])
    same = wide["blockwise"].isna() & ~wide["run_id"].isin(nm_runs)
    # a layer without its own blockwise curve in a block-pattern run: blockwise equals elementwise
    wide.loc[same, "blockwise"] = wide.loc[same, "elementwise"]
    wide.columns.name = None
    return wide[columns].sort_values(columns[:4]).reset_index(drop=True)


def global_curves_frame(
    experiment: str, run_ids: Iterable[str] | None = None, *, client: ClientLike = None, study: str | None = None
) -> pd.DataFrame:
    """Global sparsity curves in long format: trial, run_id, step, metric, value.

    ``metric`` is the series name without its ``sparsity/`` prefix
    (``elementwise_over_matmul_gemm_conv``, ``elementwise_over_all``, ``blockwise_over_matmul_gemm_conv``).
    """
    frame = _series(experiment, ("sparsity/",), client=client, run_ids=run_ids, study=study)
    frame = frame.assign(metric=frame["key"].str.removeprefix("sparsity/"))
    columns = ["trial", "run_id", "step", "metric", "value"]
    return frame[columns].sort_values(columns[:4]).reset_index(drop=True)


def eval_frame(
    experiment: str,
    run_ids: Iterable[str] | None = None,
    *,
    client: ClientLike = None,
    study: str | None = None,
    metric: str = "accuracy",
) -> pd.DataFrame:
    """The task's ``metric`` measured during fine-tuning (``eval/<metric>``): trial, run_id, step, ``metric``."""
    key = f"eval/{metric}"
    frame = _series(experiment, (key,), client=client, run_ids=run_ids, study=study)
    frame = frame[frame["key"] == key].rename(columns={"value": metric})
    columns = ["trial", "run_id", "step", metric]
    return frame[columns].sort_values(columns[:3]).reset_index(drop=True)


def param_importances(
    experiment: str, *, client: ClientLike = None, study: str | None = None, target: str | None = None
) -> pd.Series:
    """Importance of each varied knob for ``target`` (default: the task's metric) at matched sparsity, largest first.

    The same numbers as the study's ``param_importances.json``
    (:func:`workbench.results.importance.residual_importances` over configurations: each one's
    ``target`` averaged over its seeds, :func:`~workbench.analysis.configurations_frame`; the
    seed is never a knob): ``target`` is fitted against the
    reached sparsity and each knob scored on the residual, so the target sparsity's obvious
    effect does not drown the rest; a knob counts only where it has an effect. Only study trials
    count (not ``workbench run`` / ``rerun`` runs). Values are shares
    summing to 1; ``.attrs["explained"]`` holds each knob's share of the residual variance
    (eta squared) and ``.attrs["method"]`` says how. Empty when fewer than 3 trials completed
    (``.attrs["skipped"]`` says why).

    Example:
        >>> param_importances("quick", client=uri)        # doctest: +SKIP
        pattern      0.71
        criterion    0.29
        Name: importance, dtype: float64
    """
    trials = trials_frame(experiment, client=client, study=study)
    complete = trials[(trials["state"] == "COMPLETE") & (trials["source"] == "study")]  # a study's trials only
    metric, direction = metric_of(complete)
    target = target or metric  # default: the task's metric, under its direction
    measured = target in complete and "sparsity" in complete  # else no trial completed: skipped below
    configs = configurations_frame(complete, metric=target) if measured else complete  # mean over seeds, no seed knob
    knobs = [k for k in SEARCH_DIMS if k in configs and configs[k].nunique() > 1]
    rows = [
        {k: v for k, v in row.items() if not (isinstance(v, float) and k in knobs and pd.isna(v))}
        for row in configs.to_dict("records")
    ]
    result = residual_importances(rows, knobs, metric=target, direction=direction if target == metric else "maximize")
    series = pd.Series(result.get("importances", {}), name="importance", dtype="float64")
    series.index.name = "param"
    series.attrs.update(method=result.get("method", ""), explained=result.get("explained", {}))
    if "skipped" in result:
        series.attrs["skipped"] = result["skipped"]
    return series
