"""Re-running a tracked trial from its logged ``trial.yaml``: reproducibility as a command.

Example:
    >>> new_id, before, after = rerun_trial(run_id, "sqlite:///mlflow.db")  # doctest: +SKIP
    >>> before == after  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException

from workbench.infra.plugins import import_plugins
from workbench.infra.stores import sqlite_path
from workbench.pruner import ConfigError
from workbench.study.objective import PLUGINS_TAG
from workbench.tracking import Tracker, resolve_tracking_uri
from workbench.trial import TrainingConfig, run_trial

__all__ = ["rerun_trial"]


def rerun_trial(run_id: str, tracking_uri: str | None) -> tuple[str, float | None, float]:
    """Run ``run_id``'s logged trial again as a new tracked run tagged ``workbench.rerun_of``.

    Returns the new run's id, the source run's accuracy (``None`` if it logged none) and the new
    accuracy. A run without a loadable ``trial.yaml`` is a :class:`ConfigError` naming ``run_id``,
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
    plugins = source.data.tags.get(PLUGINS_TAG, "")
    import_plugins(filter(None, plugins.split(",")))
    training = TrainingConfig(**spec["training"])
    result = run_trial(spec["benchmark"], spec["pruning_config"], training, int(spec["seed"]))
    params = {k: v for k, v in source.data.params.items() if not k.startswith(("training.", "time."))}
    new_id = tracker.trial_run(
        source.info.experiment_id,
        parent_run_id=None,
        run_name=f"rerun-{source.info.run_name}",
        tags={"workbench.rerun_of": run_id, "workbench.source": "rerun", **({PLUGINS_TAG: plugins} if plugins else {})},
    )
    tracker.log_result(new_id, result, params)
    tracker.finish(new_id, "COMPLETE")
    return new_id, source.data.metrics.get("accuracy"), result.accuracy
