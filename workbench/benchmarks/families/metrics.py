"""Classification metrics computed in torch: accuracy, F1 and Matthews correlation.

All start from the confusion matrix ``C[true, predicted]``:

* ``accuracy``: ``trace(C) / sum(C)``;
* ``f1``: with two classes, the F1 of class 1 (GLUE's convention: the positive class); with more,
  the macro average of the per-class F1 over the classes that occur in the labels or the
  predictions (a class's F1 is 0 when it has no true positive);
* ``matthews_correlation``: Gorodkin's multi-class form, ``(c s - sum_k p_k t_k) /
  sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2))`` with ``c`` the correct predictions, ``s`` the
  samples, ``t_k``/``p_k`` the true/predicted counts of class ``k``; 0 when a factor is 0 (a
  constant prediction), as scikit-learn does. With two classes it is the usual binary MCC.

Example:
    >>> import torch
    >>> m = classification_metrics(torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 1, 0, 0, 1]), 2)
    >>> round(m["f1"], 4), round(m["matthews_correlation"], 4)
    (0.8, 0.6667)
"""

from __future__ import annotations

import math

import torch

from workbench.pruner.errors import ConfigError

__all__ = ["CLASSIFICATION_METRICS", "classification_metrics", "confusion_matrix"]

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews_correlation")
"""The keys :func:`classification_metrics` returns."""


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C[true, predicted]`` counts (int64, ``num_classes`` x ``num_classes``)."""
    predictions, labels = predictions.reshape(-1).long().cpu(), labels.reshape(-1).long().cpu()
    if predictions.shape != labels.shape or labels.numel() == 0:
        raise ConfigError(
            f"metrics: need as many predictions as labels (at least 1), got {predictions.numel()} and {labels.numel()}"
        )
    for key, values in (("labels", labels), ("predictions", predictions)):
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.numel():
            raise ConfigError(f"{key}: {int(bad[0])} is not a class of 0..{num_classes - 1} (num_labels={num_classes})")
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _f1(confusion: torch.Tensor) -> float:
    c = confusion.double()
    tp = torch.diagonal(c)
    fp, fn = c.sum(0) - tp, c.sum(1) - tp
    denominator = 2 * tp + fp + fn
    per_class = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
    if confusion.shape[0] == 2:
        return float(per_class[1])
    present = (c.sum(0) + c.sum(1)) > 0
    return float(per_class[present].mean())


def _mcc(confusion: torch.Tensor) -> float:
    c = confusion.double()
    t, p = c.sum(1), c.sum(0)
    correct, samples = float(torch.trace(c)), float(c.sum())
    numerator = correct * samples - float((p * t).sum())
    denominator = (samples**2 - float((p * p).sum())) * (samples**2 - float((t * t).sum()))
    return numerator / math.sqrt(denominator) if denominator > 0 else 0.0


def classification_metrics(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """``{"accuracy", "f1", "matthews_correlation"}`` of integer ``predictions`` against ``labels``.

    Raises:
        ValueError: Different lengths, no samples, or a label outside ``0..num_classes-1``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_labels: must be an integer >= 2 for classification, got {num_classes!r}")
    confusion = confusion_matrix(predictions, labels, num_classes)
    accuracy = float(torch.trace(confusion)) / float(confusion.sum())
    return {"accuracy": accuracy, "f1": _f1(confusion), "matthews_correlation": _mcc(confusion)}
