"""Measured speed of a trial: dense vs pruned vs slimmed model, on the trial's device.

With ``training.measure_speed``, :func:`measure_trial_speed` runs after the final evaluation. It
slims a deep copy of the pruned model (:func:`workbench.pruner.slim.slim_model`: dead FFN channels
and attention heads removed) and times the dense baseline, the pruned model and the slimmed copy
on one batch of the task's evaluation batches (a dict batch as ``model(**batch)``, a batch
``(inputs, labels)`` as ``model(inputs)``): :data:`WARMUP` untimed passes, then
``training.speed_repeats`` timed ones, the median kept (:func:`workbench.pruner.slim.measure`;
the models take turns so a change of machine load reaches all alike).

The result (:attr:`TrialResult.speed`, logged as ``speed/<key>``) holds, for ``<m>`` in
``dense``, ``pruned``, ``slim``: ``<m>_params``, ``<m>_nonzero_params`` and ``<m>_ms``; and
``speedup`` (``dense_ms / slim_ms``) and ``param_ratio`` (``slim_params / dense_params``).

Caveats: CPU latency is noisy (other processes, frequency scaling); compare speed-ups measured
on the same machine, and raise ``speed_repeats`` for steadier medians. Only structured channel
patterns (``channelx1`` on a down projection, ``1xchannel`` on an up projection) and head pruning
slim; unstructured or block sparsity leaves every channel alive, so the slimmed model is the
pruned one and its speed-up is about 1 (dense kernels do not skip zeros).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from workbench.benchmarks import to_device
from workbench.pruner.errors import ConfigError
from workbench.pruner.slim import measure, slim_model

__all__ = ["SPEED_KEYS", "WARMUP", "example_inputs", "measure_trial_speed"]

WARMUP = 3
"""Untimed forward passes of each model before the timed ones."""
SPEED_KEYS = (
    *(f"{m}_{k}" for m in ("dense", "pruned", "slim") for k in ("params", "nonzero_params", "ms")),
    "speedup",
    "param_ratio",
)
"""Keys of :attr:`TrialResult.speed` when speed was measured."""


def example_inputs(batches: Iterable[Any], device: torch.device) -> Any:
    """The model inputs of the first batch of ``batches``, on ``device``.

    A dict batch is returned whole (``model(**batch)``), a pair ``(inputs, labels)`` gives
    ``inputs``, anything else is returned as it is.

    Raises:
        ConfigError: ``batches`` yields nothing.
    """
    for batch in batches:
        batch = to_device(batch, device)
        if isinstance(batch, Mapping):
            return dict(batch)
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0]
        return batch
    raise ConfigError("training.measure_speed: the task's eval_batches yielded no batch to time")


def measure_trial_speed(dense: nn.Module, pruned: nn.Module, inputs: Any, *, repeats: int) -> dict[str, float]:
    """Parameter counts and median latencies of ``dense``, ``pruned`` and a slimmed copy of ``pruned``.

    ``pruned`` is not changed (its mode aside: the models are left in eval mode). See the
    module docstring for the keys.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> p = copy.deepcopy(m)
        >>> with torch.no_grad():
        ...     p[2].weight[:, :6] = 0
        >>> s = measure_trial_speed(m, p, torch.ones(1, 4), repeats=2)
        >>> s["dense_params"], s["slim_params"], s["speedup"] > 0
        (58.0, 16.0, True)
    """
    if not isinstance(dense, nn.Module) or not isinstance(pruned, nn.Module):
        raise ConfigError("measure_trial_speed: dense and pruned must be torch.nn.Module instances")
    slim = copy.deepcopy(pruned)
    slim_model(slim)
    rows = measure({"dense": dense, "pruned": pruned, "slim": slim}, inputs, warmup=WARMUP, repeats=repeats)
    out: dict[str, float] = {}
    for row in rows:
        out[f"{row.name}_params"] = float(row.params)
        out[f"{row.name}_nonzero_params"] = float(row.nonzero_params)
        out[f"{row.name}_ms"] = float(row.latency_ms)
    out["speedup"] = out["dense_ms"] / out["slim_ms"] if out["slim_ms"] > 0 else float("nan")
    out["param_ratio"] = out["slim_params"] / out["dense_params"] if out["dense_params"] > 0 else float("nan")
    return out
