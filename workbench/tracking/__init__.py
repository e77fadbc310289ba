"""All MLflow: the tracker, metric keys, a trial's artifacts and figure, the spool, the local server.

Owns how a trial and a study appear in MLflow (:mod:`.tracker`: runs, params, metrics, tags;
:mod:`.metric_keys`: layer names as metric keys; :mod:`.figures`: the per-trial figure), the
deferred logging of finished trials through a log writer process (:mod:`.spool`), and the local
tracking server several workers share (:mod:`.server`). May import :mod:`workbench.trial`,
:mod:`workbench.pruner` and :mod:`workbench.infra`; knows nothing of Optuna.
"""

from workbench.tracking.tracker import DEFAULT_TRACKING_URI, Tracker, resolve_tracking_uri, result_metrics, trial_params

__all__ = ["DEFAULT_TRACKING_URI", "Tracker", "resolve_tracking_uri", "result_metrics", "trial_params"]
