"""``cnn-digits``: a small CNN on scikit-learn's 8x8 digits (Conv 1->16->32, then 512->64->10).

Exercises Conv weights: their 2-D view is ``[out, kh*kw*in]``, so conv2 (``[32, 144]``) takes
every pattern and channel pruning, while conv1 (``[16, 9]``) takes row blocks (``4x1``,
``1xchannel``) but is skipped, with a warning, by patterns whose columns do not divide 9
(e.g. ``1x4``, ``2:4``). Channel counts divide by 4.

Dense accuracy: above 0.95 for every seed (``min_dense_accuracy``; typically about 0.98) after
600 AdamW steps (lr 2e-3, batch 64).
"""

from __future__ import annotations

from torch import nn

from workbench.pruner.errors import ConfigError

from .base import DenseRecipe
from .benchmark import Benchmark
from .digits import digits_data
from .registry import register_benchmark

__all__ = ["cnn_digits"]


class DigitsCNN(nn.Module):
    """conv(1->c1) ReLU conv(c1->c2) ReLU maxpool(2) | flatten linear(c2*16->64) ReLU linear(64->10)."""

    def __init__(self, c1: int = 16, c2: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(c2 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.relu(self.conv1(x))
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv2(x)), 2)
        return self.fc2(nn.functional.relu(self.fc1(x.flatten(1))))


@register_benchmark("cnn-digits")
def cnn_digits(channels1: int = 16, channels2: int = 32) -> Benchmark:
    """The digits CNN; both channel counts must be positive multiples of 4."""
    for key, value in (("channels1", channels1), ("channels2", channels2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 4 or value % 4:
            raise ConfigError(f"{key}: must be a positive multiple of 4, got {value!r}")
    return Benchmark(
        "cnn-digits",
        model_fn=lambda: DigitsCNN(channels1, channels2),
        data=lambda: digits_data(images=True),
        recipe=DenseRecipe(steps=600, batch_size=64, lr=2e-3, optimizer="adamw"),
        params={"channels1": channels1, "channels2": channels2},
        version="1",
        min_dense_accuracy=0.95,
    )
