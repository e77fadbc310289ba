"""The bench's model shapes are the sizes its docstrings and tables say they are."""

from __future__ import annotations

import pytest
import torch

from tools.bench_models import SWEEP
from tools.bench_shapes import ConvStack, Encoder, prunable_weights


def test_the_conv_stack_has_resnet50s_convolutions():
    model = ConvStack()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 53  # ResNet-50: the stem, 16 bottlenecks of 3 and 4 projection shortcuts
    assert sum(c.weight.numel() for c in convs) == 23_454_912
    assert model(ConvStack.batch(2)[0]).shape == (2, 10)


def test_the_encoder_has_bert_bases_layer_weights():
    layer = Encoder(1)
    assert prunable_weights(layer) - 768 * 10 == 7_077_888  # 4 x 768^2 + 2 x 768 x 3072
    assert layer(Encoder.batch(2, 8)[0]).shape == (2, 10)


@pytest.mark.parametrize("scale, layers", SWEEP)
def test_the_sweep_scales_the_weights(scale, layers):
    numerator, _, denominator = scale.partition("/")
    assert layers == 12 * int(numerator) / int(denominator or 1)
