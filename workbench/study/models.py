"""The study's winners kept: which trials' pruned models stay, and their registered versions.

Every completed trial logs its pruned model sparse (``tracking.log_model`` ``front`` or ``all``;
:func:`~workbench.study.tracked.run_tracked_trial`). When the study ends:

* :func:`front_rows`: the trials whose models matter: every seed's trial of the configurations
  (ranked on their mean over seeds) on the Pareto front of the task's metric against the study's
  second objective (the front of :func:`workbench.results.front.front`, the
  workbench's one front implementation), or the best trial of a single-objective study;
* :func:`keep_front_models`: with ``log_model: front``, the models of the other trials are
  deleted (one log line says how many and how much disk that freed); ``all`` keeps them;
* :func:`register_front`: the front's models become MLflow Models and versions of the
  registered model named after the study (MLflow Model Registry).

Example:
    >>> rows = [{"trial": 0, "accuracy": 0.9, "sparsity": 0.5, "run_id": "a"},
    ...         {"trial": 1, "accuracy": 0.8, "sparsity": 0.4, "run_id": "b"}]
    >>> [r["run_id"] for r in front_of(rows, metric="accuracy", direction="maximize", axis="sparsity", multi=True)]
    ['a']
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from mlflow.exceptions import MlflowException

from workbench.benchmarks import get_benchmark
from workbench.benchmarks.direction import best_first
from workbench.infra.plugins import import_plugins
from workbench.results.configs import by_configuration
from workbench.results.front import front
from workbench.study.objective import PLUGINS_TAG
from workbench.study.summary import result_rows
from workbench.tracking import model_store
from workbench.tracking.artifacts import write_csv
from workbench.tracking.mlflow_model import save_mlflow_model
from workbench.trial.model_file import build_trial_model, load_sparse_state

if TYPE_CHECKING:
    from workbench.experiment import Experiment
    from workbench.tracking import Tracker

__all__ = [
    "MLFLOW_MODEL_DIR",
    "REGISTERED_TAG",
    "front_of",
    "front_rows",
    "keep_front_models",
    "load_trial_model",
    "register_front",
    "task_of_run",
    "task_of_spec",
]

_log = logging.getLogger(__name__)


def front_of(
    rows: Sequence[dict[str, Any]], *, metric: str, direction: str, axis: str, multi: bool
) -> list[dict[str, Any]]:
    """The front of ``rows`` (multi-objective: :func:`~workbench.results.front.front`) or the best row."""
    if multi:
        return front(rows, metric=metric, direction=direction, axis=axis)
    return sorted(rows, key=lambda r: (best_first(r, metric, direction), r["trial"]))[:1]


def front_rows(study: optuna.Study, experiment: Experiment) -> list[dict[str, Any]]:
    """The completed trials of ``study`` on its final front (see the module docstring), with run ids.

    The front is of configurations (:func:`~workbench.results.configs.by_configuration`: ranked on
    the mean over seeds, as the console and the parent run rank them); every trial of a front
    configuration is returned, one per seed, since each seed's model is a model of it.
    """
    rows = [r for r in result_rows(study, experiment.metric) if r.get("run_id")]
    axis = str(experiment.study.objectives[-1]) if experiment.multi_objective else "sparsity"
    configs = by_configuration(rows, metric=experiment.metric)
    picked = front_of(
        configs, metric=experiment.metric, direction=experiment.direction, axis=axis, multi=experiment.multi_objective
    )
    trials = {t for config in picked for t in config["trials"]}
    return [r for r in rows if r["trial"] in trials]


def keep_front_models(study: optuna.Study, tracker: Tracker, experiment: Experiment) -> list[dict[str, Any]]:
    """Drop the models of trials off the front (``log_model: front``); returns the front rows."""
    kept = front_rows(study, experiment)
    if experiment.log_model != "front":
        return kept
    on_front = {r["run_id"] for r in kept}
    dropped, freed = 0, 0
    for row in result_rows(study, experiment.metric):
        run_id = row.get("run_id")
        if not run_id or run_id in on_front or not model_store.has_model(tracker.client, run_id):
            continue
        size = model_store.model_bytes(tracker.client, run_id)
        if model_store.drop_model(tracker.client, run_id, "off the study's front"):
            dropped, freed = dropped + 1, freed + size
    if dropped:
        _log.info(
            "tracking.log_model front: dropped the pruned models of %d trial(s) off the front (%.1f KiB); "
            "kept %d on the front",
            dropped,
            freed / 1024,
            len(on_front),
        )
    return kept


def task_of_spec(spec: dict[str, Any], run: Any) -> Any:
    """The task ``run`` trained on, built exactly as the study built it.

    The benchmark is the spec the study ran, the run's ``benchmark`` param (``mlp-digits``,
    ``pkg.mod:fn``): ``trial.yaml``'s ``benchmark`` is the built task's *name*, which for a plug-in
    or a family is not its spec (``family_plugins:tiny_text`` builds ``hf-text-classification``);
    only a run logged without that param falls back to it. ``trial.yaml``'s ``benchmark_params``
    are passed, and the run's plug-in modules (tag ``workbench.plugins``) imported first.
    """
    import_plugins(filter(None, run.data.tags.get(PLUGINS_TAG, "").split(",")))
    bench = run.data.params.get("benchmark", spec["benchmark"])
    return get_benchmark(bench, **dict(spec.get("benchmark_params") or {}))


def task_of_run(tracker: Tracker, run_id: str) -> tuple[Any, dict[str, Any], Any]:
    """The task a trial ran on (:func:`task_of_spec`), its ``trial.yaml`` and the run."""
    spec, run = tracker.trial_spec(run_id)
    return task_of_spec(spec, run), spec, run


def load_trial_model(tracker: Tracker, run_id: str) -> tuple[Any, Any, dict[str, Any]]:
    """The pruned model ``run_id`` logged (``model/sparse_model.safetensors``), rebuilt on its task.

    Returns ``(model, task, spec)``: the model in eval mode on the CPU, the trial's task and its
    ``trial.yaml``. Raises FileNotFoundError when the run has no logged model.
    """
    task, spec, _ = task_of_run(tracker, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        state, _meta = load_sparse_state(model_store.download_model_file(tracker.client, run_id, tmp))
    return build_trial_model(task, state), task, spec


MLFLOW_MODEL_DIR = "mlflow_model"
"""The artifact folder of a front trial's MLflow Model (``runs:/<run_id>/mlflow_model``)."""
REGISTERED_TAG = "workbench.registered_model"
"""Parent-run tag: the registered model holding the study's front (``<name> v1,2,...``); on each
registered trial's run, its own version (``<name> v2``), which the study's landing view shows
(:data:`workbench.tracking.landing_view.REGISTERED_COLUMN`)."""


def register_front(
    study: optuna.Study, tracker: Tracker, experiment: Experiment, parent_run_id: str
) -> list[dict[str, Any]]:
    """Register the front's models as versions of the registered model named after the study.

    Each front trial with a logged sparse model gets its MLflow Model (``mlflow_model/`` in its
    run: :func:`~workbench.tracking.mlflow_model.save_mlflow_model`) and one version tagged with
    its pattern, criterion, scheduler, target, reached sparsity, the metric, its value and the run.
    A run registered before (a resumed study) is not registered again. The parent run is tagged
    :data:`REGISTERED_TAG` and gets ``front_models.csv``; each registered trial's run is tagged
    :data:`REGISTERED_TAG` with its version, so the landing view points at it. Returns one row per version.
    """
    client, name = tracker.client, experiment.study_name
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"The front of study {name!r} (workbench).")
    known = {v.tags.get("run_id"): v for v in client.search_model_versions(f"name = '{name}'")}
    out = []
    for row in front_rows(study, experiment):
        run_id = row["run_id"]
        if run_id not in known and not model_store.has_model(tracker.client, run_id):
            continue
        version = known.get(run_id)
        if version is None:
            model, task, _ = load_trial_model(tracker, run_id)
            with tempfile.TemporaryDirectory() as tmp:
                save_mlflow_model(model, next(iter(task.eval_batches)), f"{tmp}/{MLFLOW_MODEL_DIR}")
                client.log_artifacts(run_id, f"{tmp}/{MLFLOW_MODEL_DIR}", MLFLOW_MODEL_DIR)
            params = client.get_run(run_id).data.params  # every knob, searched or fixed
            tags = {
                **{k: params.get(k, str(row.get(k))) for k in ("pattern", "criterion", "scheduler")},
                "target": params.get("target_sparsity", str(row.get("target"))),
                "sparsity": f"{row['sparsity']:.6f}",
                "metric": experiment.metric,
                experiment.metric: repr(row[experiment.metric]),
                "run_id": run_id,
                "trial": str(row["trial"]),
            }
            source = f"{client.get_run(run_id).info.artifact_uri}/{MLFLOW_MODEL_DIR}"
            version = client.create_model_version(name, source, run_id=run_id, tags=tags)
        client.set_tag(run_id, REGISTERED_TAG, f"{name} v{version.version}")  # the landing view's column
        out.append({"version": version.version, "uri": f"models:/{name}/{version.version}", **row})
    if out:
        client.set_tag(parent_run_id, REGISTERED_TAG, f"{name} v{','.join(str(r['version']) for r in out)}")
        with tempfile.TemporaryDirectory() as tmp:
            columns = ["version", "uri", "run_id", "trial", "pattern", "criterion", "scheduler", "target", "sparsity"]
            write_csv(Path(tmp) / "front_models.csv", out, [*columns, experiment.metric])
            client.log_artifact(parent_run_id, f"{tmp}/front_models.csv")
        study.set_user_attr("registered_model", name)
        _log.info("registered %d front model(s) as %r versions %s", len(out), name, [r["version"] for r in out])
    return out
