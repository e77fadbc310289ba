"""``mlp-digits``: an MLP 64-256-256-10 on scikit-learn's 8x8 digits.

The fastest benchmark (dense training about a second, a trial a few seconds): use it to try a
search. Hidden sizes divide by 4, so every NxM and N:M pattern with blocks up to 4 applies to
both hidden layers; the output layer is the classifier head and is never pruned.

Dense accuracy: above 0.95 for every seed (documented in ``min_dense_accuracy``; typically about
0.98) after 600 AdamW steps (lr 3e-3, batch 64).
"""

from __future__ import annotations

from torch import nn

from workbench.pruner.errors import ConfigError

from .base import DenseRecipe
from .benchmark import Benchmark
from .digits import digits_data
from .registry import register_benchmark

__all__ = ["mlp_digits"]


@register_benchmark("mlp-digits")
def mlp_digits(hidden: int = 256) -> Benchmark:
    """The digits MLP; ``hidden`` (a multiple of 4) is the width of both hidden layers."""
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 4 or hidden % 4:
        raise ConfigError(f"hidden: must be a positive multiple of 4, got {hidden!r}")

    def model_fn() -> nn.Module:
        return nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )

    return Benchmark(
        "mlp-digits",
        model_fn=model_fn,
        data=digits_data,
        recipe=DenseRecipe(steps=600, batch_size=64, lr=3e-3, optimizer="adamw"),
        params={"hidden": hidden},
        version="1",
        min_dense_accuracy=0.95,
    )
