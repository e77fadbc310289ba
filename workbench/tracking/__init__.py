"""All MLflow: the tracker, metric keys, a trial's artifacts and figure, the spool, the local server.

Owns how a trial and a study appear in MLflow (:mod:`.tracker`: runs, params, metrics, tags;
:mod:`.metric_keys`: layer names as metric keys; :mod:`.figures`: the per-trial figure), the
deferred logging of finished trials through a log writer process (:mod:`.spool`), and the local
tracking server several workers share (:mod:`.server`). May import :mod:`workbench.trial`,
:mod:`workbench.pruner` and :mod:`workbench.infra`; knows nothing of Optuna.
"""

import importlib
from typing import Any

__all__ = ["DEFAULT_TRACKING_URI", "Tracker", "resolve_tracking_uri", "result_metrics", "trial_params"]


def __getattr__(name: str) -> Any:
    """The public names, imported from :mod:`.tracker` on first use.

    Start-up cost: :mod:`.tracker` loads MLflow and the pruner (torch), while ``workbench ui``
    needs only :mod:`.ui` (standard library) from this package.
    """
    if name in __all__:
        return getattr(importlib.import_module("workbench.tracking.tracker"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
