"""``workbench export --slim``: the slimmed model as a ``torch.export`` program, with its measured speed.

:func:`write_slim` slims a copy of the pruned model (:func:`workbench.pruner.slim.slim_model`),
exports it with a dynamic batch dimension to ``model.pt2`` and times it against the unslimmed
model (:func:`workbench.trial.speed.measure_trial_speed`); :class:`Exported` wraps the loaded
program so a task's ``evaluate`` (which sets eval mode) can call it, and :class:`ExportedHF` so a
Hugging Face task's ``evaluate`` (``model(**batch).logits`` / ``.loss``) can.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from workbench.pruner.slim import slim_model
from workbench.tracking.mlflow_model import model_input, servable
from workbench.trial.speed import measure_trial_speed

__all__ = ["Exported", "ExportedHF", "hf_loss", "write_slim"]


class Exported(torch.nn.Module):
    """An exported program's module behind ``train``/``eval`` that do nothing (it does not support them)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> Exported:  # noqa: ARG002, D102 - an exported graph has no modes
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.module(x)


class ExportedHF(Exported):
    """An exported ``LogitsModel`` program called like the Hugging Face model: ``model(**batch)``.

    The batch's ``fields`` are stacked (as :func:`~workbench.tracking.mlflow_model.model_input`
    does) into the program's one input; the result has ``logits`` and, when the batch has
    ``labels`` and a ``loss`` function is given, ``loss`` (``loss(logits, labels)``).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        fields: tuple[str, ...],
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(module)
        self.fields, self.loss = tuple(fields), loss

    def forward(self, **batch: torch.Tensor) -> SimpleNamespace:  # type: ignore[override]  # noqa: D102
        logits = self.module(torch.stack([batch[f] for f in self.fields], dim=1))
        labels = batch.get("labels")
        loss = self.loss(logits, labels) if labels is not None and self.loss is not None else None
        return SimpleNamespace(logits=logits, loss=loss)


def hf_loss(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The loss a causal language model computes from its logits and ``labels`` (its own
    ``loss_function``), or None for other models (a classifier's evaluation uses the logits only)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES  # optional [hf] extra

    if type(model).__name__ not in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        return None
    vocab = model.config.vocab_size
    return lambda logits, labels: model.loss_function(logits, labels, vocab_size=vocab)


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
