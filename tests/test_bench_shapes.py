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


def test_the_bench_device_is_cuda_only_where_there_is_one(monkeypatch):
    from tools import bench_device

    assert bench_device.pick("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench_device.pick("auto").type == "cpu"
    with pytest.raises(ValueError, match="--device: 'cuda' is not available"):
        bench_device.pick("cuda")
    with pytest.raises(ValueError, match="allowed: auto, cpu, cuda"):
        bench_device.pick("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench_device.pick("auto").type == "cuda"


def test_the_bench_times_on_the_device_it_was_given(monkeypatch):
    from tools import bench_device, bench_models

    moved = []
    monkeypatch.setattr(bench_device, "_current", torch.device("cpu"))
    real_move = bench_device.move
    monkeypatch.setattr(bench_models, "move", lambda obj: moved.append(type(obj).__name__) or real_move(obj))
    schedule = bench_models.Schedule(start=1, end=2, freq=1, steps=4)
    times = bench_models.time_hooks(lambda: Encoder(1), Encoder.batch(1, 4), "4x1", 0.5, schedule)
    assert moved.count("Tensor") == 2 and moved.count("Encoder") == 1  # the batch and the model
    assert times.dense > 0 and times.pruning > 0


@pytest.mark.gpu
def test_the_bench_sections_run_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
    from tools import bench, bench_device

    bench_device.use("cuda")
    try:
        rows = bench.SECTIONS["models"](repeats=1, quick=True)
    finally:
        bench_device.use("cpu")
    assert {row["model"] for row in rows} and all(row["pruning/dense"] >= 1.0 for row in rows)
