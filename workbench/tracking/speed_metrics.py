"""Metrics of a trial's measured speed: ``speed/<key>`` for each value of :attr:`TrialResult.speed`.

``speed/dense_ms``, ``speed/pruned_ms``, ``speed/slim_ms`` (median forward latency, ms),
``speed/<model>_params`` and ``speed/<model>_nonzero_params``, ``speed/speedup`` (dense latency /
slimmed latency) and ``speed/param_ratio`` (slimmed params / dense params); nothing when the trial
did not measure speed (``training.measure_speed`` false). See :mod:`workbench.trial.speed`.
"""

from __future__ import annotations

from workbench.trial.types import TrialResult

__all__ = ["SPEED_PREFIX", "speed_metrics"]

SPEED_PREFIX = "speed/"
"""Prefix of the measured-speed metrics."""


def speed_metrics(result: TrialResult) -> dict[str, float]:
    """The trial's measured speed as final metrics (empty when not measured)."""
    return {f"{SPEED_PREFIX}{k}": float(v) for k, v in result.speed.items()}
