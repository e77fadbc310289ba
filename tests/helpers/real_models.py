"""Tiny randomly initialised stand-ins of real models for the pruner tests.

Hugging Face models come from their own classes (tests ``importorskip`` transformers); ResNet-50
is rebuilt here with torchvision's module names and bottleneck structure at a small width
(torchvision cannot be imported on every test machine).
"""

from __future__ import annotations

import torch
from torch import nn


def tiny_bert_classifier():
    """``BertForSequenceClassification``: 2 layers, hidden 32, 2 labels (needs transformers)."""
    import transformers  # optional extra: the caller skips without it

    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def tiny_gpt2_lm():
    """``GPT2LMHeadModel``: 2 layers, width 32; its ``lm_head`` is tied to ``transformer.wte``."""
    import transformers  # optional extra: the caller skips without it

    config = transformers.GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck: 1x1 reduce, 3x3, 1x1 expand (x4), optional downsample."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        width = planes * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TinyResNet(nn.Module):
    """ResNet-50's layout (stem 7x7 conv on 3 channels, bottleneck stages, ``fc``) at width 8.

    ``groups > 1`` gives ResNeXt's grouped 3x3 convolutions.
    """

    def __init__(self, num_classes: int = 10, groups: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(Bottleneck(16, 8, groups=groups), Bottleneck(32, 8, groups=groups))
        self.layer2 = nn.Sequential(Bottleneck(32, 16, 2, groups=groups), Bottleneck(64, 16, groups=groups))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DepthwiseNet(nn.Module):
    """MobileNet-style: a depthwise 3x3 (groups = channels), a grouped 1x1 (groups=2), a pointwise."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 8, 1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.pointwise = nn.Conv2d(8, 16, 1)
        self.classifier = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.grouped(torch.relu(self.depthwise(torch.relu(self.stem(x))))))
        return self.classifier(torch.relu(self.pointwise(x)).mean(dim=(2, 3)))
