"""Model shapes for ``make bench``: plain torch modules shaped like what users prune.

- :class:`ConvStack`: ResNet-50's convolutions (a 7x7 stem, bottleneck stages of 3, 4, 6 and 3
  blocks with 1x1 / 3x3 / 1x1 convolutions, widths 64 to 2048; 23.5M conv weights at width 1),
  with BatchNorm and ReLU, on batches of 64x64 images.
- :class:`Encoder`: BERT-base's encoder layers (hidden 768, 12 heads, feed-forward 3072:
  separate query/key/value/output Linear layers, 7.1M weights per layer, 85M for 12), on
  sequences of 128 tokens.

``width`` (convs) and ``layers`` (encoder) scale the weights for the size sweep. No torchvision
or transformers is needed; the weights are random (the pruner's cost does not depend on them).
"""

from __future__ import annotations

import torch
from torch import nn

CLASSES = 10


class _Bottleneck(nn.Module):
    def __init__(self, inputs: int, width: int, stride: int) -> None:
        super().__init__()
        out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(inputs, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.skip = None
        if stride != 1 or inputs != out:
            self.skip = nn.Sequential(nn.Conv2d(inputs, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + (x if self.skip is None else self.skip(x)))


class ConvStack(nn.Module):
    """ResNet-50's convolution shapes; ``width`` multiplies every channel count (weights ~ width^2)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        widths = [max(1, round(w * width)) for w in (64, 128, 256, 512)]
        stem = widths[0]
        layers: list[nn.Module] = [nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(stem)]
        layers += [nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)]
        inputs = stem
        for stage, (blocks, w) in enumerate(zip((3, 4, 6, 3), widths)):
            for i in range(blocks):
                layers.append(_Bottleneck(inputs, w, 2 if i == 0 and stage > 0 else 1))
                inputs = 4 * w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(inputs, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    @staticmethod
    def batch(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random 3x64x64 images and labels."""
        return torch.randn(size, 3, 64, 64), torch.randint(0, CLASSES, (size,))


class _EncoderLayer(nn.Module):
    def __init__(self, hidden: int = 768, heads: int = 12, ffn: int = 3072) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.output = nn.Linear(hidden, hidden)
        self.intermediate, self.ffn_output = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, h = t.shape
        return t.view(b, n, self.heads, h // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split(f(x)) for f in (self.query, self.key, self.value))
        attended = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
        x = self.norm1(x + self.output(attended))
        return self.norm2(x + self.ffn_output(nn.functional.gelu(self.intermediate(x))))


class Encoder(nn.Module):
    """BERT-base's encoder layer shapes, ``layers`` deep (weights ~ layers), with a pooled head."""

    def __init__(self, layers: int = 12) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[_EncoderLayer() for _ in range(layers)])
        self.head = nn.Linear(768, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(x).mean(dim=1))

    @staticmethod
    def batch(size: int = 1, tokens: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random sequences of ``tokens`` 768-wide embeddings, and labels."""
        return torch.randn(size, tokens, 768), torch.randint(0, CLASSES, (size,))


def prunable_weights(model: nn.Module) -> int:
    """Weights of the Linear and Conv2d layers (what the bench's pruning configs select)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
