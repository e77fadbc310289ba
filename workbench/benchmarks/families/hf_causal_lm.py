"""``hf-causal-lm``: an ``AutoModelForCausalLM`` judged by perplexity on a fixed evaluation slice.

Extra ``[hf]`` (``pip install -e '.[hf]'``). The texts of a split (``text_field``; wikitext-2 raw
by default) are tokenised line by line without special tokens, concatenated, and cut into
sequences of ``seq_len`` tokens (the remainder is dropped), as Hugging Face's ``run_clm`` does.
Training draws ``train_size`` sequences (seeded by ``data_seed``; ``None``: all) and shuffles them
each epoch; evaluation always reads the first ``eval_size`` sequences of the evaluation split, so
every trial is judged on the same tokens. A batch is ``{"input_ids", "labels"}`` (the same tensor:
the model shifts the labels itself), and the loss is the model's own.

:func:`evaluate_perplexity` returns ``loss`` (mean negative log-likelihood per predicted token,
nats) and ``perplexity`` (``exp(loss)``), the study's metric, minimised. The checkpoint is the
dense model (``dense_steps: 0``); a randomly initialised ``model_config`` wants ``dense_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from workbench.pruner.errors import ConfigError

from ..registry import register_benchmark
from ..task import Task
from .batches import DictBatches
from .hf_loading import column, dense_recipe, fingerprint, load_model, load_split, load_tokenizer, subset_indices

__all__ = ["chunk_tokens", "evaluate_perplexity", "hf_causal_lm"]

NAME = "hf-causal-lm"


def chunk_tokens(token_lists: Iterable[list[int]], seq_len: int) -> torch.Tensor:
    """The concatenated tokens cut into rows of ``seq_len`` (int64 ``[n, seq_len]``; the remainder dropped)."""
    flat = torch.tensor([token for tokens in token_lists for token in tokens], dtype=torch.long)
    rows = flat.numel() // seq_len
    return flat[: rows * seq_len].reshape(rows, seq_len)


@torch.no_grad()
def evaluate_perplexity(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """``{"loss", "perplexity"}`` over every predicted token of ``batches`` (the model in eval mode)."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        for batch in batches:
            labels = batch["labels"]
            predicted = int((labels[:, 1:] != -100).sum())  # the model predicts every token but the first
            total += float(model(**batch).loss) * predicted
            tokens += predicted
    finally:
        model.train(was_training)
    if tokens == 0:
        raise ConfigError("eval_batches: yielded no tokens to predict")
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def _sequences(tokenizer: Any, split: Any, text_field: str, seq_len: int, key: str) -> torch.Tensor:
    texts = [text for text in column(split, text_field) if isinstance(text, str) and text.strip()]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    sequences = chunk_tokens(ids, seq_len)
    if sequences.shape[0] == 0:
        raise ConfigError(f"{key}: the split holds fewer than seq_len={seq_len} tokens")
    return sequences


@register_benchmark(NAME)
def hf_causal_lm(
    model: str = "gpt2",
    dataset: Any = "wikitext",
    dataset_config: str | None = "wikitext-2-raw-v1",
    text_field: str = "text",
    train_split: str = "train",
    eval_split: str = "validation",
    seq_len: int = 512,
    train_size: int | None = 2000,
    eval_size: int | None = 64,
    batch_size: int = 8,
    dense_steps: int = 0,
    dense_lr: float = 5e-5,
    tokenizer: Any = None,
    model_config: Mapping[str, Any] | None = None,
    data_seed: int = 0,
) -> Task:
    """The ``hf-causal-lm`` task (see the module docstring).

    Args:
        model: Checkpoint of ``AutoModelForCausalLM`` (or the base of ``model_config``).
        dataset, dataset_config: A ``datasets`` hub name and config, or in-memory splits (tests).
        text_field: The text column.
        train_split, eval_split: Split names.
        seq_len: Tokens per sequence (at most the model's context).
        train_size: Training sequences drawn (seeded by ``data_seed``); ``None``: all.
        eval_size: The first ``eval_size`` sequences of the evaluation split; ``None``: all.
        batch_size: Sequences per batch.
        dense_steps, dense_lr: Training of the dense baseline (0: the checkpoint is the dense model).
        tokenizer: A hub name or a tokenizer object (``None``: the model's).
        model_config: Config fields of a randomly initialised model (``None``: ``from_pretrained``).
        data_seed: Seed of the training draw.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ConfigError(f"seq_len: must be an integer >= 2, got {seq_len!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
    if eval_size is not None and (isinstance(eval_size, bool) or not isinstance(eval_size, int) or eval_size < 1):
        raise ConfigError(f"eval_size: must be an integer >= 1 or null (all sequences), got {eval_size!r}")
    recipe = dense_recipe(dense_steps, batch_size, dense_lr)
    tok = load_tokenizer(tokenizer, model, family=NAME)
    train = _sequences(
        tok, load_split(dataset, dataset_config, train_split, family=NAME), text_field, seq_len, "train_split"
    )
    evals = _sequences(
        tok, load_split(dataset, dataset_config, eval_split, family=NAME), text_field, seq_len, "eval_split"
    )
    picked = subset_indices(train.shape[0], train_size, data_seed, "train_size")
    train = train if picked is None else train[picked]
    evals = evals if eval_size is None else evals[:eval_size]
    params = {
        "model": model, "dataset": fingerprint(dataset), "dataset_config": dataset_config, "text_field": text_field,
        "train_split": train_split, "eval_split": eval_split, "seq_len": seq_len, "train_size": train_size,
        "eval_size": eval_size, "batch_size": batch_size, "dense_steps": dense_steps, "dense_lr": dense_lr,
        "tokenizer": fingerprint(tokenizer), "model_config": fingerprint(model_config), "data_seed": data_seed,
    }  # fmt: skip
    labels = {"labels": "input_ids"}

    def build_model() -> nn.Module:
        return load_model("AutoModelForCausalLM", model, model_config, family=NAME)

    return Task(
        NAME,
        build_model=build_model,
        train_batches=DictBatches({"input_ids": train}, batch_size=batch_size, aliases=labels),
        eval_batches=DictBatches({"input_ids": evals}, batch_size=batch_size, shuffle=False, aliases=labels),
        evaluate=evaluate_perplexity,
        metric="perplexity",
        direction="minimize",
        dense=recipe,
        params=params,
    )
