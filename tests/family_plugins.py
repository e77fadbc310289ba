"""The task families at test size, as plug-ins: ``benchmark: "family_plugins:tiny_text"`` (``tests/`` on the path).

Each function calls a built-in family with the tests' injection points (a 2-layer random model, a
local tokenizer, in-memory data), so a study can run a family end to end with nothing downloaded.
Keyword arguments (``benchmark_params:``) override the family's parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.benchmarks import Task
from workbench.benchmarks.families import hf_causal_lm, hf_text_classification, torchvision_classification


def tiny_text(**params: Any) -> Task:
    """``hf-text-classification`` on a 2-layer BERT (hidden 32) and 96 + 32 synthetic sentences."""
    from helpers.hf_tiny import BERT_CONFIG, sentiment_splits, tiny_tokenizer  # optional extra: transformers

    tok = tiny_tokenizer()
    defaults = {
        "model": "tiny-bert",
        "dataset": sentiment_splits(96, 32),
        "dataset_config": None,
        "text_fields": ["sentence"],
        "tokenizer": tok,
        "model_config": {**BERT_CONFIG, "vocab_size": tok.vocab_size},
        "max_length": 16,
        "train_size": None,
        "eval_size": None,
        "batch_size": 16,
        "dense_steps": 60,
        "dense_lr": 3e-3,  # dense accuracy 1.0 (40 steps at 1e-3 stayed near chance)
    }
    return hf_text_classification(**{**defaults, **params})


def tiny_lm(**params: Any) -> Task:
    """``hf-causal-lm`` on a 2-layer GPT-2 (n_embd 32) and synthetic text, sequences of 8 tokens."""
    from helpers.hf_tiny import GPT2_CONFIG, text_splits, tiny_tokenizer  # optional extra: transformers

    tok = tiny_tokenizer()
    defaults = {
        "model": "tiny-gpt2",
        "dataset": text_splits(200),
        "dataset_config": None,
        "tokenizer": tok,
        "model_config": {**GPT2_CONFIG, "vocab_size": tok.vocab_size, "bos_token_id": 2, "eos_token_id": 3},
        "seq_len": 8,
        "train_size": None,
        "eval_size": 16,
        "batch_size": 8,
        "dense_steps": 40,
        "dense_lr": 1e-3,
    }
    return hf_causal_lm(**{**defaults, **params})


def _small_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, num_classes)
    )


def tiny_vision(**params: Any) -> Task:
    """``torchvision-classification`` with a small CNN on 96 + 30 synthetic 12x12 images of 3 classes."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(126) % 3
    images = torch.randint(0, 100, (126, 3, 12, 12), generator=g)
    images[torch.arange(126), labels] += 150
    images = images.to(torch.uint8)
    defaults = {
        "model": _small_cnn,
        "dataset": {"train": (images[:96], labels[:96]), "test": (images[96:], labels[96:])},
        "batch_size": 16,
        "dense_steps": 40,
        "dense_lr": 0.05,
    }
    return torchvision_classification(**{**defaults, **params})
