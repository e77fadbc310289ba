"""``hf-text-classification``: an ``AutoModelForSequenceClassification`` on GLUE or any text set.

Extra ``[hf]`` (``pip install -e '.[hf]'``). The model and the data download on first use
(``model``, ``dataset``/``dataset_config``, the tokenizer: the model's unless ``tokenizer`` says).
Texts (one field, or two for sentence pairs: GLUE's fields are known) are tokenised once to
``max_length`` and batched as dicts (``input_ids``, ``attention_mask``, ``token_type_ids`` when
the tokenizer makes them, ``labels``), each batch cut to its longest sentence. The training loss
is the model's own (``model(**batch).loss``); :func:`evaluate` returns ``accuracy``, ``f1``
(class 1 for two classes, macro otherwise) and ``matthews_correlation`` (see
:mod:`.metrics`); the study's metric is ``matthews_correlation`` on CoLA, else ``accuracy``
(``metric`` chooses).

Dense baseline: with ``dense_steps: 0`` (the default) the checkpoint is the dense model, so give
one already fine-tuned on the task, its labels numbered as the dataset's (the default is DistilBERT
fine-tuned on SST-2: 0 negative, 1 positive, as GLUE); with
``dense_steps: N`` the dense baseline is first fine-tuned for N AdamW steps (``dense_lr``, warm-up
and cosine decay), then cached, for a base checkpoint whose classifier head is new.

Tests inject a randomly initialised model (``model_config={"model_type": "bert", ...}``), a
tokenizer object and an in-memory dataset; see :mod:`.hf_loading`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from workbench.pruner.errors import ConfigError

from ..registry import register_benchmark
from ..task import Task
from .batches import DictBatches
from .hf_loading import (
    column,
    dense_recipe,
    fingerprint,
    load_model,
    load_split,
    load_tokenizer,
    split_length,
    subset_indices,
)
from .metrics import CLASSIFICATION_METRICS, classification_metrics

__all__ = ["GLUE_TASKS", "evaluate_classifier", "hf_text_classification"]

NAME = "hf-text-classification"

GLUE_TASKS: dict[str, tuple[tuple[str, ...], str]] = {
    "cola": (("sentence",), "validation"),
    "sst2": (("sentence",), "validation"),
    "mrpc": (("sentence1", "sentence2"), "validation"),
    "qqp": (("question1", "question2"), "validation"),
    "mnli": (("premise", "hypothesis"), "validation_matched"),
    "qnli": (("question", "sentence"), "validation"),
    "rte": (("sentence1", "sentence2"), "validation"),
    "wnli": (("sentence1", "sentence2"), "validation"),
}
"""GLUE's classification tasks: their text fields and the labelled evaluation split (STS-B is a regression)."""


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]], num_labels: int
) -> dict[str, float]:
    """Accuracy, F1 and Matthews correlation of ``model(**batch).logits`` against ``batch["labels"]``.

    The model is evaluated in eval mode; its mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    predictions, labels = [], []
    try:
        for batch in batches:
            inputs = {key: value for key, value in batch.items() if key != "labels"}
            logits = model(**inputs).logits
            predictions.append(logits.argmax(dim=-1).cpu())
            labels.append(batch["labels"].cpu())
    finally:
        model.train(was_training)
    if not labels:
        raise ConfigError("eval_batches: yielded no samples")
    return classification_metrics(torch.cat(predictions), torch.cat(labels), num_labels)


def _fields(dataset: Any, dataset_config: str | None, text_fields: Sequence[str] | None) -> tuple[str, ...]:
    if text_fields is not None:
        if isinstance(text_fields, str):
            text_fields = [text_fields]
        if not 1 <= len(text_fields) <= 2 or not all(isinstance(f, str) for f in text_fields):
            raise ConfigError(f"text_fields: expected one or two column names, got {text_fields!r}")
        return tuple(text_fields)
    if dataset == "glue":
        if dataset_config not in GLUE_TASKS:
            raise ConfigError(
                f"dataset_config: {dataset_config!r} is not a GLUE classification task; allowed: {', '.join(GLUE_TASKS)}"
            )
        return GLUE_TASKS[dataset_config][0]
    return ("text",)


def _num_labels(split: Any, labels: list[int], label_field: str, num_labels: int | None) -> int:
    if num_labels is not None:
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ConfigError(f"num_labels: must be an integer >= 2 or null (from the data), got {num_labels!r}")
        return num_labels
    feature = getattr(split, "features", {}).get(label_field) if hasattr(split, "features") else None
    if getattr(feature, "num_classes", None):
        return int(feature.num_classes)
    return max(2, max(labels) + 1)


def _encode(tokenizer: Any, split: Any, fields: tuple[str, ...], label_field: str, indices, max_length: int):
    texts = [column(split, field, indices) for field in fields]
    encoded = tokenizer(*texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    tensors = {key: value for key, value in encoded.items() if key in ("input_ids", "attention_mask", "token_type_ids")}
    labels = [int(value) for value in column(split, label_field, indices)]
    if any(value < 0 for value in labels):
        raise ConfigError(
            f"{label_field}: the split has unlabelled rows (label -1, a GLUE test split?); use a labelled split"
        )
    tensors["labels"] = torch.tensor(labels, dtype=torch.long)
    return tensors, labels


@register_benchmark(NAME)
def hf_text_classification(
    model: str = "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    dataset: Any = "glue",
    dataset_config: str | None = "sst2",
    text_fields: Sequence[str] | None = None,
    label_field: str = "label",
    train_split: str = "train",
    eval_split: str | None = None,
    max_length: int = 128,
    train_size: int | None = 2000,
    eval_size: int | None = 872,
    batch_size: int = 32,
    num_labels: int | None = None,
    metric: str | None = None,
    dense_steps: int = 0,
    dense_lr: float = 2e-5,
    tokenizer: Any = None,
    model_config: Mapping[str, Any] | None = None,
    data_seed: int = 0,
) -> Task:
    """The ``hf-text-classification`` task (see the module docstring for every parameter's role).

    Args:
        model: Checkpoint of ``AutoModelForSequenceClassification`` (or the base of ``model_config``).
        dataset: A ``datasets`` hub name, or in-memory splits (tests).
        dataset_config: The set's config (GLUE task name), or ``None``.
        text_fields: One or two text columns (``None``: GLUE's, else ``["text"]``).
        label_field: The integer label column.
        train_split, eval_split: Split names (``eval_split=None``: GLUE's validation split, else ``"validation"``).
        max_length: Tokens per text (pair) after truncation.
        train_size, eval_size: Rows drawn (seeded by ``data_seed``) from each split; ``None``: all.
        batch_size: Samples per batch (training and evaluation).
        num_labels: Classes (``None``: from the dataset's label feature, else the largest label + 1).
        metric: The study's metric: ``accuracy``, ``f1`` or ``matthews_correlation`` (``None``: MCC on CoLA, else accuracy).
        dense_steps, dense_lr: Fine-tuning of the dense baseline (0: the checkpoint is the dense model).
        tokenizer: A hub name or a tokenizer object (``None``: the model's).
        model_config: Config fields of a randomly initialised model (``None``: ``from_pretrained``).
        data_seed: Seed of the subset draws.
    """
    fields = _fields(dataset, dataset_config, text_fields)
    if eval_split is None:
        eval_split = GLUE_TASKS[dataset_config][1] if dataset == "glue" else "validation"
    if metric is None:
        metric = "matthews_correlation" if (dataset, dataset_config) == ("glue", "cola") else "accuracy"
    if metric not in CLASSIFICATION_METRICS:
        raise ConfigError(f"metric: {metric!r} is not allowed; allowed: {', '.join(CLASSIFICATION_METRICS)}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length: must be an integer >= 2, got {max_length!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
    recipe = dense_recipe(dense_steps, batch_size, dense_lr)
    tok = load_tokenizer(tokenizer, model, family=NAME)
    if getattr(tok, "pad_token", None) is None and getattr(tok, "eos_token", None) is not None:
        tok.pad_token = tok.eos_token  # GPT-style tokenizers have no padding token
    train = load_split(dataset, dataset_config, train_split, family=NAME)
    evals = load_split(dataset, dataset_config, eval_split, family=NAME)
    train_idx = subset_indices(split_length(train), train_size, data_seed, "train_size")
    eval_idx = subset_indices(split_length(evals), eval_size, data_seed, "eval_size")
    train_tensors, train_labels = _encode(tok, train, fields, label_field, train_idx, max_length)
    eval_tensors, eval_labels = _encode(tok, evals, fields, label_field, eval_idx, max_length)
    classes = _num_labels(train, train_labels + eval_labels, label_field, num_labels)
    extra = {"pad_token_id": tok.pad_token_id} if getattr(tok, "pad_token_id", None) is not None else {}
    params = {
        "model": model, "dataset": fingerprint(dataset), "dataset_config": dataset_config, "text_fields": list(fields),
        "label_field": label_field, "train_split": train_split, "eval_split": eval_split, "max_length": max_length,
        "train_size": train_size, "eval_size": eval_size, "batch_size": batch_size, "num_labels": classes,
        "metric": metric, "dense_steps": dense_steps, "dense_lr": dense_lr, "tokenizer": fingerprint(tokenizer),
        "model_config": fingerprint(model_config), "data_seed": data_seed,
    }  # fmt: skip

    def build_model() -> nn.Module:
        return load_model(
            "AutoModelForSequenceClassification", model, model_config, family=NAME, num_labels=classes, **extra
        )

    return Task(
        NAME,
        build_model=build_model,
        train_batches=DictBatches(train_tensors, batch_size=batch_size, trim="attention_mask"),
        eval_batches=DictBatches(eval_tensors, batch_size=batch_size, shuffle=False, trim="attention_mask"),
        evaluate=lambda m, batches: evaluate_classifier(m, batches, classes),
        metric=metric,
        direction="maximize",
        dense=recipe,
        params=params,
    )
