"""Re-running a tracked trial from its logged ``trial.yaml``: reproducibility as a command.

Example:
    >>> new_id, before, after, metric = rerun_trial(run_id, "sqlite:///mlflow.db")  # doctest: +SKIP
    >>> before == after  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlflow.exceptions import MlflowException

from workbench.infra import interrupts
from workbench.infra.stores import sqlite_path
from workbench.pruner.errors import ConfigError
from workbench.study.models import task_of_spec
from workbench.study.objective import PLUGINS_TAG
from workbench.tracking import Tracker, resolve_tracking_uri
from workbench.tracking.artifacts import BENCHMARK_PARAM, metric_name
from workbench.trial import TrainingConfig, run_trial

__all__ = ["rerun_trial"]


def rerun_trial(
    run_id: str, tracking_uri: str | None, *, force: bool = False, on_run: Callable[[str], None] | None = None
) -> tuple[str, float | None, float, str]:
    """Run ``run_id``'s logged trial again as a new tracked run tagged ``workbench.rerun_of``.

    A deleted run is a :class:`ConfigError` (it says so) unless ``force``. The new run is created
    before the trial starts (``on_run(new_id)`` is called then): a trial that fails ends it
    ``FAILED`` and an interrupt (Ctrl-C, SIGTERM) ``KILLED``, with the reason.

    The task is built as the source trial's was (:func:`~workbench.study.models.task_of_spec`):
    the benchmark spec the study ran (the run's ``benchmark`` param, not ``trial.yaml``'s task
    name), the ``benchmark_params`` of its ``trial.yaml``, its plug-in modules imported. Returns the new run's id, the source run's value of the task's metric (``None``
    if it logged none), the new value and the metric's name (``accuracy``, ``perplexity``). A run without a loadable ``trial.yaml`` is a :class:`ConfigError` naming ``run_id``,
    and so is a SQLite store that does not exist (it is not created).
    """
    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not Path(db).is_file():  # opening it would create an empty store
        raise ConfigError(
            f"run_id: no run {run_id!r}: the tracking store {db!r} does not exist; "
            "allowed: a run id of an existing store (--tracking-uri or MLFLOW_TRACKING_URI names it)"
        )
    tracker = Tracker(uri)
    try:
        spec, source = tracker.trial_spec(run_id)
    except (MlflowException, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"run_id: cannot load trial.yaml of run {run_id!r} ({first})") from None
    if source.info.lifecycle_stage == "deleted" and not force:
        raise ConfigError(
            f"run_id: run {run_id!r} was deleted; restore it in the MLflow UI, or rerun it anyway with --force"
        )
    plugins = source.data.tags.get(PLUGINS_TAG, "")
    training = TrainingConfig(**spec["training"])
    bench_params = dict(spec.get("benchmark_params") or {})
    task = task_of_spec(spec, source)  # the spec the study ran, not trial.yaml's task name
    skip = ("training.", "time.", BENCHMARK_PARAM)
    params = {k: v for k, v in source.data.params.items() if not k.startswith(skip)}
    params.update({f"{BENCHMARK_PARAM}{k}": v for k, v in bench_params.items()})  # typed, for trial.yaml
    with interrupts.deferred():  # the run and its id given to on_run: both or neither
        new_id = tracker.trial_run(
            source.info.experiment_id,
            parent_run_id=None,
            run_name=f"rerun-{source.info.run_name}",
            tags={
                "workbench.rerun_of": run_id,
                "workbench.source": "rerun",
                **({PLUGINS_TAG: plugins} if plugins else {}),
            },
        )
        if on_run is not None:
            on_run(new_id)
    try:
        result = run_trial(task, spec["pruning_config"], training, int(spec["seed"]))
    except (KeyboardInterrupt, SystemExit) as err:
        interrupts.handled()
        tracker.finish(new_id, "INTERRUPTED", interrupts.interrupt_reason(err))
        raise
    except BaseException as err:
        tracker.finish(new_id, "FAIL", f"{type(err).__name__}: {err}"[:2000])
        raise
    tracker.log_result(new_id, result, params)
    tracker.finish(new_id, "COMPLETE")
    return new_id, source.data.metrics.get(metric_name(result.metric)), result.value, result.metric
