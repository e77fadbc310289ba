"""One trial: (benchmark, pruning config, seed) -> :class:`TrialResult`, plain data.

Owns the search dimensions (:mod:`.space`, the one table every other layer reads), the mapping
from a point of the search space to an INC-style pruning config (:mod:`.config`), the trial's
types (:mod:`.types`), where a trial runs (:mod:`.devices`: ``training.device`` and
``precision``) and the fine-tuning loop that runs the pruner's hooks (:mod:`.runner`, :mod:`.loop`);
the post-training trial (:mod:`.posttraining`, its config :mod:`.posttraining_config`) and a
trial's peak memory (:mod:`.cost`).
May import :mod:`workbench.pruner`, :mod:`workbench.benchmarks` and :mod:`workbench.infra`; knows
nothing of Optuna or MLflow.
"""

from workbench._lazy import lazy_exports

__all__ = [
    "SPARSITY_KEYS",
    "TrainingConfig",
    "TrialDiverged",
    "TrialResult",
    "TrialStopped",
    "build_pruning_config",
    "resolve_device",
    "run_trial",
    "search_params",
    "worker_gpu",
]


def _load() -> dict:
    """The package's modules, imported on first use of an exported name (workbench._lazy)."""
    from workbench.trial.config import build_pruning_config, search_params
    from workbench.trial.devices import resolve_device, worker_gpu
    from workbench.trial.runner import run_trial
    from workbench.trial.types import SPARSITY_KEYS, TrainingConfig, TrialDiverged, TrialResult, TrialStopped

    return locals()


__getattr__, __dir__ = lazy_exports(__name__, _load)
