"""``workbench export --slim``: the slimmed model as a ``torch.export`` program, with its measured speed.

:func:`write_slim` slims a copy of the pruned model (:func:`workbench.pruner.slim.slim_model`),
exports it with a dynamic batch dimension to ``model.pt2`` and times it against the unslimmed
model (:func:`workbench.trial.speed.measure_trial_speed`); :class:`Exported` wraps the loaded
program so a task's ``evaluate`` (which sets eval mode) can call it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from workbench.pruner.slim import slim_model
from workbench.tracking.mlflow_model import model_input, servable
from workbench.trial.speed import measure_trial_speed

__all__ = ["Exported", "write_slim"]


class Exported(torch.nn.Module):
    """An exported program's module behind ``train``/``eval`` that do nothing (it does not support them)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> Exported:  # noqa: ARG002, D102 - an exported graph has no modes
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.module(x)


def write_slim(model: torch.nn.Module, folder: Path, batch: Any) -> dict[str, float]:
    """``model.pt2``: the slimmed copy of ``model``, exported; returns its measured speed (slim vs unslimmed)."""
    x, fields = model_input(batch, rows=1 << 30)
    slim = copy.deepcopy(model)
    slim_model(slim)
    module = servable(slim, fields)
    with torch.no_grad():
        program = torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, str(folder / "model.pt2"))
    speed = measure_trial_speed(servable(model, fields), servable(copy.deepcopy(model), fields), x, repeats=20)
    keys = ("dense_params", "slim_params", "slim_nonzero_params", "dense_ms", "slim_ms", "speedup", "param_ratio")
    return {k: speed[k] for k in keys}
