"""``workbench run``: one tracked trial of an experiment, outside any study.

The point is the experiment's default point (first choice of each list, midpoint of each range)
with ``--set`` overrides. Like a search, it checks the point builds and the tracking store answers
before anything is written, and creates a new MLflow SQLite store whole or not at all (under a
lock on that file, so two commands starting in a new folder create it once).

Example:
    >>> run_id, result, point = run_single("experiments/quick.yaml", ["pattern=2:4"], None)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.experiment import effective_params, load_experiment
from workbench.experiment.overrides import apply_overrides
from workbench.infra.locks import store_lock
from workbench.infra.stores import sqlite_path
from workbench.study.objective import plugin_tags, run_tracked_trial, task_tags
from workbench.study.preflight import check_point_builds, check_tracking_uri, source_of
from workbench.tracking import Tracker, resolve_tracking_uri
from workbench.tracking.artifacts import config_label
from workbench.tracking.store_create import ensure_sqlite_store, hide_default_experiment
from workbench.trial import TrialResult

__all__ = ["run_single"]


def run_single(
    experiment_path: str, sets: list[str], tracking_uri: str | None, *, on_run: Callable[[str], None] | None = None
) -> tuple[str, TrialResult, dict[str, Any]]:
    """Run one tracked trial; returns its MLflow run id, its result and the point it ran.

    ``on_run(run_id)`` is called once the run exists. Interrupted (Ctrl-C, SIGTERM inside
    :func:`~workbench.infra.interrupts.interrupt_guard`), the run ends ``KILLED`` with the reason
    (``interrupted by SIGTERM``) and ``KeyboardInterrupt`` goes on; the same call runs the trial again.
    """
    experiment, point, seed = apply_overrides(load_experiment(experiment_path), sets)
    experiment = check_point_builds(experiment, point)  # the task's metric and direction known
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri, source=source_of(tracking_uri, "--tracking-uri", "MLFLOW_TRACKING_URI"))
    with store_lock([sqlite_path(uri)]):
        created = ensure_sqlite_store(uri)
        tracker = Tracker(tracking_uri)
        if created:  # the run's experiment alone, not MLflow's empty Default beside it
            hide_default_experiment(tracker.client, keep=experiment.name)
    run_id, result = run_tracked_trial(
        tracker,
        tracker.experiment_id(experiment.name, description=experiment.description or None),
        benchmark=experiment.benchmark,
        params=point,
        training=experiment.training,
        seed=seed,
        fixed=experiment.pruning,
        run_name=f"run {config_label(effective_params(point))}",
        tags={"workbench.source": "run", **plugin_tags(experiment), **task_tags(experiment)},
        benchmark_params=experiment.benchmark_params,
        metric=experiment.metric,
        on_run=on_run,
    )
    return run_id, result, point
