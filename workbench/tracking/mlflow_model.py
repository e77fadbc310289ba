"""A trial's pruned model as an MLflow Model (``pytorch`` flavour) with a signature and an input example.

MLflow's ``pytorch`` pyfunc takes one array and wants one tensor back. A plain model (the tensor
benchmarks) is saved as it is: ``predict(x)`` is ``model(x)``. A Hugging Face model takes named
tensors and returns a ``ModelOutput``, so it is saved inside :class:`LogitsModel`: its input is one
integer array ``(batch, fields, seq)`` stacking the batch's fields (``input_ids``,
``attention_mask``, ... in :attr:`LogitsModel.fields` order) and its output the logits. (The
``transformers`` flavour wants a pipeline with a tokenizer the tasks do not always carry; the
``pytorch`` flavour with this documented input is what is logged.)

Example:
    >>> import torch
    >>> x, fields = model_input((torch.ones(8, 4), torch.zeros(8)))
    >>> tuple(x.shape), fields
    ((4, 4), ())
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import mlflow.pytorch
import torch
from mlflow.models import infer_signature
from torch import nn

__all__ = ["EXAMPLE_ROWS", "LogitsModel", "model_input", "save_mlflow_model", "servable"]

EXAMPLE_ROWS = 4
"""Samples of the first evaluation batch kept as the model's input example."""


class LogitsModel(nn.Module):
    """``model(**{field: x[:, i]})``'s logits: a Hugging Face model behind one stacked integer input."""

    def __init__(self, model: nn.Module, fields: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.fields = model, tuple(fields)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits for the stacked fields ``x`` of shape ``(batch, len(fields), seq)``."""
        output = self.model(**{f: x[:, i] for i, f in enumerate(self.fields)})
        return output["logits"] if isinstance(output, Mapping) else output.logits


def model_input(batch: Any, rows: int = EXAMPLE_ROWS) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The model input of an evaluation ``batch`` (its first ``rows`` samples) and its field names.

    ``(inputs, labels)`` gives ``inputs`` and no fields; a dict batch gives its tensors other than
    ``labels``, stacked on dim 1, and their names.
    """
    if isinstance(batch, Mapping):
        fields = tuple(k for k, v in batch.items() if k != "labels" and isinstance(v, torch.Tensor))
        return torch.stack([batch[f][:rows] for f in fields], dim=1), fields
    if isinstance(batch, (tuple, list)):
        return batch[0][:rows], ()
    return batch[:rows], ()


def servable(model: nn.Module, fields: tuple[str, ...]) -> nn.Module:
    """The module an MLflow pyfunc can call with one array: ``model``, or :class:`LogitsModel` around it."""
    return LogitsModel(model, fields).eval() if fields else model.eval()


def save_mlflow_model(
    model: nn.Module, batch: Any, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None
) -> Any:
    """Save ``model`` as an MLflow Model at ``path`` with the signature and input example of ``batch``.

    Returns the example input (a NumPy array) so a caller can compare ``predict`` with the model.
    """
    x, fields = model_input(batch)
    module = servable(model, fields)
    with torch.no_grad():
        y = module(x)
    example = x.numpy()
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    if fields:
        import transformers  # the optional [hf] extra: only a Hugging Face model needs it

        requirements.append(f"transformers=={transformers.__version__}")
    mlflow.pytorch.save_model(
        module,
        str(path),
        signature=infer_signature(example, y.numpy()),
        input_example=example,
        pip_requirements=requirements,
        metadata=metadata,
    )
    return example
