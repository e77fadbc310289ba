"""``tiny-transformer``: a 2-layer, 4-head encoder (d_model 64, FFN 128) on a counting task.

The task (synthetic, generated deterministically from the ``data_seed`` parameter): a sequence
of ``seq_len`` tokens over a vocabulary of ``vocab`` symbols whose *last* token is the query;
the label is how many times the query occurs among the tokens before it (0 .. ``num_classes``-1,
uniformly distributed, so chance is ``1/num_classes``). The classifier reads only the last
position, so without attention the model sees the query alone and is at chance: it has to attend
from the query to the matching tokens and count them. Pruning the q/k/v/out projections (all
plain ``nn.Linear``, written out rather than ``nn.MultiheadAttention``, so every projection is a
prunable layer) or the FFN visibly costs accuracy at high sparsity.

Dense accuracy: above 0.95 for every seed (``min_dense_accuracy``; typically about 0.99) after
600 AdamW steps (lr 3e-3 with 10 % warm-up and cosine decay, batch 128, weight decay 0.01).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from workbench.pruner.errors import ConfigError

from .base import BenchmarkData, DenseRecipe
from .benchmark import Benchmark
from .registry import register_benchmark

__all__ = ["SelfAttention", "TinyTransformer", "counting_task", "tiny_transformer"]


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate ``q``, ``k``, ``v`` and ``out`` Linear projections."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), x.size(1), self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(x.size(0), x.size(1), self.n_heads * self.head_dim)
        return self.out(y)


class EncoderLayer(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln1(x))`` then ``x + fc2(gelu(fc1(ln2(x))))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyTransformer(nn.Module):
    """Token + learned position embeddings, encoder layers, final LayerNorm, head on the last token."""

    def __init__(
        self,
        *,
        vocab: int,
        seq_len: int,
        num_classes: int,
        d_model: int = 64,
        n_heads: int = 4,
        d_ff: int = 128,
        n_layers: int = 2,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x[:, -1]))


def counting_task(
    n: int, *, seq_len: int, vocab: int, num_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences ``[n, seq_len]`` (last token = query) and labels = query count before it."""
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    query = torch.randint(0, vocab, (n,), generator=generator)
    other = torch.randint(0, vocab - 1, (n, seq_len - 1), generator=generator)
    other = other + (other >= query[:, None]).long()  # any symbol but the query
    rank = torch.argsort(torch.rand(n, seq_len - 1, generator=generator), dim=1)
    context = torch.where(rank < labels[:, None], query[:, None].expand(-1, seq_len - 1), other)
    return torch.cat([context, query[:, None]], dim=1), labels


@register_benchmark("tiny-transformer")
def tiny_transformer(
    seq_len: int = 16,
    vocab: int = 12,
    num_classes: int = 6,
    n_train: int = 8000,
    n_test: int = 2000,
    data_seed: int = 0,
) -> Benchmark:
    """The counting task and its 2-layer encoder; the data depends only on these parameters."""
    for key, value, low in (
        ("seq_len", seq_len, 2),
        ("vocab", vocab, 2),
        ("num_classes", num_classes, 2),
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
        ("data_seed", data_seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key}: must be an integer >= {low}, got {value!r}")
    if num_classes > seq_len:
        raise ConfigError(f"num_classes: must be <= seq_len ({seq_len}), got {num_classes}")

    def data() -> BenchmarkData:
        generator = torch.Generator().manual_seed(data_seed)
        x, y = counting_task(
            n_train + n_test, seq_len=seq_len, vocab=vocab, num_classes=num_classes, generator=generator
        )
        return BenchmarkData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])

    params = {
        "seq_len": seq_len,
        "vocab": vocab,
        "num_classes": num_classes,
        "n_train": n_train,
        "n_test": n_test,
        "data_seed": data_seed,
    }
    return Benchmark(
        "tiny-transformer",
        model_fn=lambda: TinyTransformer(vocab=vocab, seq_len=seq_len, num_classes=num_classes),
        data=data,
        recipe=DenseRecipe(steps=600, batch_size=128, lr=3e-3, optimizer="adamw", weight_decay=0.01, schedule="cosine"),
        params=params,
        version="1",
        min_dense_accuracy=0.95,
    )
