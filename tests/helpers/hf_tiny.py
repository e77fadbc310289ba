"""Tiny Hugging Face stand-ins built locally (nothing downloaded): a tokenizer, configs and text data.

Used by the task-family and Trainer-callback tests. Import only after
``pytest.importorskip("transformers")``: this module imports ``tokenizers`` and ``transformers``.
"""

from __future__ import annotations

import random

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

POSITIVE = ["good", "great", "fine", "nice"]
NEGATIVE = ["bad", "awful", "poor", "sad"]
FILLER = ["the", "a", "movie", "film", "was", "is", "plot", "very", "quite", "and", "it", "show"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]

BERT_CONFIG = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
"""A 2-layer BERT, hidden size 32 (``vocab_size`` comes from :func:`tiny_tokenizer`)."""

GPT2_CONFIG = {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64}
"""A 2-layer GPT-2, n_embd 32."""


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the words of :func:`sentiment_splits`, with BERT's special tokens."""
    vocab = {token: i for i, token in enumerate(SPECIALS + POSITIVE + NEGATIVE + FILLER)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


def sentences(n: int, seed: int, classes: int = 2) -> dict[str, list]:
    """``{"sentence": [...], "label": [...]}``: a class-``k`` sentence holds words of group ``k``."""
    rng = random.Random(seed)
    groups = [POSITIVE, NEGATIVE, FILLER[:4]][:classes]
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(classes)
        words = rng.sample(FILLER[4:], rng.randint(2, 6)) + [rng.choice(groups[label])]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return {"sentence": texts, "label": labels}


def sentiment_splits(train: int = 64, validation: int = 32, classes: int = 2) -> dict[str, dict[str, list]]:
    """In-memory ``{"train", "validation"}`` splits of :func:`sentences`."""
    return {"train": sentences(train, 0, classes), "validation": sentences(validation, 1, classes)}


def text_splits(lines: int = 40) -> dict[str, dict[str, list]]:
    """In-memory ``{"train", "validation"}`` splits of a ``text`` column (some lines empty, as wikitext)."""
    return {
        "train": {
            "text": [" ".join(s.split()) if i % 5 else "" for i, s in enumerate(sentences(lines, 2)["sentence"])]
        },
        "validation": {"text": sentences(lines // 2, 3)["sentence"]},
    }
