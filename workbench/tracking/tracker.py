"""All MLflow calls: the experiment, the study's parent run and one nested child run per trial.

Layout (``docs/experiment-schema.md`` and ``docs/design.md``): the MLflow experiment is named by the
experiment YAML's ``name``; a study is a parent run tagged ``workbench.study``; every trial is a
child run created explicitly with :class:`~mlflow.tracking.MlflowClient` and linked by the
``mlflow.parentRunId`` tag. Runs are created through the client (never ``mlflow.start_run``) so
several worker processes can log to the same store without sharing a global active run.

The store is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the
working folder (:func:`resolve_tracking_uri`). Metric keys are sanitised by
:mod:`workbench.tracking.metric_keys`; metrics are sent with ``log_batch`` in chunks of at most 1000.

Example:
    >>> tracker = Tracker("sqlite:////tmp/mlflow-doc.db")       # doctest: +SKIP
    >>> exp_id = tracker.experiment_id("demo")                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline machines; no usage pings from trials
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # rerun's download must not draw a bar
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" line per trial on a server
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from workbench.infra.stores import DEFAULT_TRACKING_URI, absolute_sqlite, redact_url, sqlite_path
from workbench.tracking.artifacts import (
    DIRECTION_TAG,
    METRIC_TAG,
    benchmark_params_of,
    config_label,
    curve_metrics,
    metric_name,
    now_ms,
    result_metrics,
    run_description,
    timing_params,
    trial_params,
    write_csv,
    write_trial_artifacts,
)
from workbench.tracking.metric_keys import MAX_BATCH, sanitize_name
from workbench.tracking.provenance import run_tags
from workbench.trial.types import TrialResult

__all__ = [
    "DEFAULT_TRACKING_URI",
    "Tracker",
    "check_state",
    "log_batch_chunked",
    "redact_url",
    "resolve_tracking_uri",
    "result_metrics",
    "run_tags",
    "trial_params",
]

_log = logging.getLogger(__name__)

NOTE_TAG = "mlflow.note.content"
"""MLflow's description of an experiment or a run (shown in the UI as markdown)."""
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
"""MLflow 3's experiment kind: a model-training experiment opens on its runs, not the GenAI traces."""

_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}


PANE_PX = 900
"""The widest a figure logged to a study's parent run is: MLflow's artifact pane is about 800 px
wide on a laptop's screen, and a wider figure is shrunk there, its labels with it."""


def readable_width(fig: Any, max_px: int = PANE_PX) -> None:
    """Shrink ``fig`` in inches to at most ``max_px`` pixels wide, its text keeping its point size.

    A figure drawn 1200 px wide and shown in an 800 px pane reads as if its 11 pt labels were 7 pt;
    drawn 900 px wide, the same labels take a larger share of it. Layouts set in fractions of the
    figure (``subplots_adjust``) keep their proportions.
    """
    width, height = fig.get_size_inches()
    if width * fig.dpi > max_px:
        scale = max_px / (width * fig.dpi)
        fig.set_size_inches(width * scale, height * scale)


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking store: ``uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def log_batch_chunked(
    client: MlflowClient,
    run_id: str,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
    *,
    chunk: int = MAX_BATCH,
) -> int:
    """``log_batch`` within MLflow's limits: <= ``chunk`` (1000) entities, <= 100 params, <= 100 tags per call.

    Params and tags ride along with the first metric chunk, so a typical trial is one call.
    Returns the number of ``log_batch`` calls made.
    """
    params, tags, metrics = list(params), list(tags), list(metrics)
    calls = 0
    while params or tags or metrics or calls == 0:
        room = max(0, chunk - min(100, len(params)) - min(100, len(tags)))  # MLflow: <= 1000 entities per call
        client.log_batch(run_id, metrics=metrics[:room], params=params[:100], tags=tags[:100])
        metrics, params, tags = metrics[room:], params[100:], tags[100:]
        calls += 1
    return calls


def check_state(state: str) -> None:
    """ValueError unless ``state`` is a trial end state :meth:`Tracker.finish` knows."""
    if state not in _STATUS:
        raise ValueError(f"state: {state!r} is not allowed; allowed: {', '.join(_STATUS)}")


class Tracker:
    """Creates and fills the MLflow runs of one study; safe to build once per worker process."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        # MLflow caches one store per URI string: a relative SQLite URL opened from two folders in
        # one process would reach the first folder's database, so the client gets the absolute one
        self.client = MlflowClient(absolute_sqlite(self.tracking_uri))

    def experiment_id(self, name: str, *, artifact_location: str | None = None, description: str | None = None) -> str:
        """The id of the MLflow experiment ``name``, created when missing, tagged as model training.

        A new experiment on a SQLite store keeps its artifacts next to the database, in
        ``<db folder>/mlruns/<name>-<sha1(name)[:8]>`` (MLflow's own default is ``./mlruns`` of
        whatever folder the command runs in), unless ``artifact_location`` says otherwise. The
        experiment kind tag says "model training" (MLflow 3 would open a GenAI traces page), and
        ``description`` (the experiment YAML's) becomes the experiment's description.
        """
        found = self.client.get_experiment_by_name(name)
        if found is None:
            db_file = sqlite_path(self.tracking_uri)
            if artifact_location is None and db_file is not None:
                db = Path(db_file).resolve()
                digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
                artifact_location = (db.parent / "mlruns" / f"{sanitize_name(name)}-{digest}").as_uri()
            try:
                exp_id = self.client.create_experiment(name, artifact_location)
            except MlflowException:  # another process created it in the meantime
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
                exp_id = found.experiment_id
        else:
            exp_id = found.experiment_id
        have = found.tags if found is not None else {}
        wanted = {KIND_TAG: MODEL_TRAINING, **({NOTE_TAG: description} if description else {})}
        for key, value in wanted.items():
            if have.get(key) != value:
                self.client.set_experiment_tag(exp_id, key, value)
        return exp_id

    def study_run(
        self, experiment_id: str, study_name: str, *, params: dict[str, Any], config_text: str | None = None
    ) -> str:
        """The parent run of ``study_name`` (reused when the study resumes), marked RUNNING."""
        runs = self.client.search_runs(
            [experiment_id],
            f"tags.`workbench.study` = '{study_name}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if runs:
            run_id = runs[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        tags = {"workbench.study": study_name, "workbench.kind": "study", "optuna.study_name": study_name, **run_tags()}
        run_id = self.client.create_run(experiment_id, tags=tags, run_name=study_name).info.run_id
        log_batch_chunked(self.client, run_id, params=[Param(k, str(v)) for k, v in params.items()])
        if config_text is not None:
            self.client.log_text(run_id, config_text, "experiment.yaml")
        return run_id

    def trial_run(
        self, experiment_id: str, *, parent_run_id: str | None, run_name: str, tags: dict[str, Any] | None = None
    ) -> str:
        """A new child run (nested under ``parent_run_id`` when given)."""
        all_tags = {"workbench.kind": "trial", **run_tags(), **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        tags_str = {k: str(v) for k, v in all_tags.items()}  # a tracking server accepts strings only
        return self.client.create_run(experiment_id, tags=tags_str, run_name=run_name).info.run_id

    def log_result(self, run_id: str, result: TrialResult, params: dict[str, Any], *, ts: int | None = None) -> float:
        """Log params, every metric and series, timings, the description and the trial artifacts.

        Returns the seconds spent. ``ts`` (milliseconds since the epoch, default now) stamps the
        metrics: logging the same result again with the same ``ts`` adds no duplicates (MLflow's
        SQL stores skip a metric identical in key, value, step and timestamp), so a retried replay
        is harmless. The logging time itself differs on every attempt, so it is logged (param
        ``time.logging_s``) only if the run has none yet.
        """
        start = time.perf_counter()
        run = self.client.get_run(run_id)
        flat = dict(params, **{f"training.{k}": v for k, v in result.training.items()}, **timing_params(result))
        flat = {k: v for k, v in flat.items() if k not in run.data.params}  # a replay: params stay as logged
        described = {NOTE_TAG: run_description(result, params), METRIC_TAG: result.metric}
        tags = [RunTag(k, v) for k, v in {**described, DIRECTION_TAG: result.direction}.items()]
        log_batch_chunked(
            self.client,
            run_id,
            result_metrics(result, ts=ts),
            params=[Param(k, str(v)) for k, v in flat.items()],
            tags=tags,
        )
        with tempfile.TemporaryDirectory() as tmp:
            title = run.info.run_name or config_label(params)
            write_trial_artifacts(Path(tmp), result, title=title, benchmark_params=benchmark_params_of(params))
            self.client.log_artifacts(run_id, tmp)
        seconds = time.perf_counter() - start
        if "time.logging_s" in run.data.params:
            return seconds  # logged before by an attempt that failed later or was cut short
        total = result.timings.get("total") or 0.0
        extra = [Param("time.logging_s", f"{seconds:.3f}")]
        if total > 0:
            extra.append(Param("time.logging_fraction", f"{seconds / total:.4f}"))
        self.client.log_batch(run_id, params=extra)
        return seconds

    def log_partial(
        self,
        run_id: str,
        params: dict[str, Any],
        *,
        pruning_config: dict[str, Any] | None,
        eval_values: dict[int, float] | None = None,
        metric: str = "accuracy",
        ts: int | None = None,
    ) -> None:
        """What a stopped or failed trial still has: params, config and the evaluations of ``metric``
        (``eval/<metric>``; ``ts`` as in :meth:`log_result`)."""
        ts = ts or now_ms()
        evals = eval_values or {}
        log_batch_chunked(
            self.client,
            run_id,
            list(curve_metrics(f"eval/{metric_name(metric)}", evals, ts)),
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(METRIC_TAG, metric)],
        )
        if pruning_config is not None:
            self.client.log_text(run_id, yaml.safe_dump(pruning_config, sort_keys=False), "pruning_config.yaml")

    def finish(self, run_id: str, state: str, reason: str | None = None) -> None:
        """End a run: COMPLETE -> FINISHED, PRUNED -> KILLED, FAIL -> FAILED, INTERRUPTED -> KILLED.

        Tags ``workbench.trial_state`` (the Optuna state: an interrupted trial is ``FAIL``, with
        ``workbench.interrupted = true``) and ``workbench.reason`` when a reason is given.
        """
        check_state(state)
        tags = [RunTag("workbench.trial_state", "FAIL" if state == "INTERRUPTED" else state)]
        tags += [RunTag("workbench.reason", reason[:5000])] if reason else []
        tags += [RunTag("workbench.interrupted", "true")] if state == "INTERRUPTED" else []
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status=_STATUS[state])

    def log_study_summary(
        self,
        run_id: str,
        *,
        rows: Sequence[dict[str, Any]],
        figures: dict[str, Any],
        importances: dict[str, Any],
        metrics: dict[str, float],
        tables: dict[str, tuple[Sequence[dict[str, Any]], Sequence[str]]] | None = None,
    ) -> None:
        """Parent-run artifacts: trials.csv, figures (name -> Figure), param_importances.json, and
        ``tables`` (file name -> (rows, columns)) as CSV files."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            columns = list(dict.fromkeys(k for row in rows for k in row))
            write_csv(folder / "trials.csv", rows, columns or ["number"])
            (folder / "param_importances.json").write_text(json.dumps(importances, indent=2, sort_keys=True))
            write_csv(
                folder / "param_importances.csv",
                [{"param": k, "importance": v} for k, v in importances.get("importances", {}).items()],
                ("param", "importance"),
            )
            for name, (table, columns) in (tables or {}).items():
                write_csv(folder / name, table, columns)
            for name, fig in figures.items():
                readable_width(fig)
                fig.savefig(folder / name)
            self.client.log_artifacts(run_id, tmp)
        ts = now_ms()
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()])

    def end_study(self, run_id: str) -> None:
        self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FINISHED))

    def trial_spec(self, run_id: str) -> tuple[dict[str, Any], Any]:
        """What ``workbench rerun`` needs: the logged ``trial.yaml`` and the source run."""
        run = self.client.get_run(run_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, "trial.yaml", tmp)
            return yaml.safe_load(Path(path).read_text()), run
