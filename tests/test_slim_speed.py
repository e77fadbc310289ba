"""Measured speed: latency/parameter rows as plain data; 2:4 semi-structured conversion (CUDA)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tools.bench_slim import FfnStack
from workbench.pruner import ConfigError
from workbench.pruner.slim import find_ffn_pairs, is_two_four, measure, measure_latency, slim_model, to_semi_structured


def _ffn(hidden: int = 64, width: int = 32) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


def _two_four(weight: torch.Tensor) -> torch.Tensor:
    """Zero the two smallest of every 4 consecutive inputs."""
    groups = weight.detach().reshape(weight.shape[0], -1, 4)
    keep = groups.abs().topk(2, dim=2).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, keep, True)
    return (groups * mask).reshape_as(weight)


def test_measure_returns_exact_counts_and_positive_latencies_for_dense_masked_slimmed():
    dense = _ffn()
    masked = copy.deepcopy(dense)
    with torch.no_grad():
        masked[2].weight[:, :40] = 0
    slimmed = copy.deepcopy(masked)
    slim_model(slimmed)
    rows = measure({"dense": dense, "masked": masked, "slimmed": slimmed}, torch.randn(4, 32), warmup=1, repeats=3)
    assert [r.name for r in rows] == ["dense", "masked", "slimmed"]
    total = sum(p.numel() for p in dense.parameters())
    assert rows[0].params == rows[1].params == total
    assert rows[1].nonzero_params == total - 40 * 32
    assert rows[2].params == total - 40 * (32 + 1 + 32)
    assert rows[2].nonzero_params == rows[1].nonzero_params - 40 * (32 + 1)
    assert all(r.latency_ms > 0 and r.device == "cpu" for r in rows)
    assert set(rows[0].as_dict()) == {"name", "params", "nonzero_params", "latency_ms", "device"}


def test_measure_calls_with_dicts_and_tuples():
    class Two(nn.Module):
        def forward(self, a, b):
            return a + b

    assert measure_latency(Two(), (torch.ones(2), torch.ones(2)), warmup=0, repeats=1) > 0
    assert measure_latency(Two(), {"a": torch.ones(2), "b": torch.ones(2)}, warmup=0, repeats=1) > 0


@pytest.mark.parametrize(("key", "value"), [("warmup", -1), ("repeats", 0), ("repeats", 2.0)])
def test_measure_validates_counts(key, value):
    with pytest.raises(ConfigError, match=key):
        measure({"m": _ffn()}, torch.randn(1, 32), **{key: value})


@pytest.mark.parametrize("models", [{}, [nn.Linear(2, 2)], {"x": "not a module"}])
def test_measure_validates_models(models):
    with pytest.raises(ConfigError, match="models"):
        measure(models, torch.randn(1, 2))


def test_two_four_check():
    w = torch.randn(8, 16)
    assert not is_two_four(w)
    assert is_two_four(_two_four(w))
    assert not is_two_four(torch.zeros(2, 6))  # inputs not a multiple of 4


def test_to_semi_structured_refuses_non_two_four_weights_with_the_layer_name():
    model = _ffn()
    with pytest.raises(ValueError, match=r"'0'.*not 2:4"):
        to_semi_structured(model, ["0"])


def test_to_semi_structured_refuses_other_layers_and_cpu():
    model = _ffn()
    with pytest.raises(ConfigError, match="only torch.nn.Linear"):
        to_semi_structured(model, ["1"])
    with torch.no_grad():
        model[0].weight.copy_(_two_four(model[0].weight))
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        to_semi_structured(model, ["0"])
    assert to_semi_structured(nn.Sequential(nn.Linear(6, 2)), None) == []  # nothing 2:4: nothing to do


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make test-gpu)")
def test_semi_structured_linear_matches_the_masked_dense_one_on_cuda():
    model = nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 128)).cuda().half().eval()
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.copy_(_two_four(layer.weight))
    x = torch.randn(64, 128, device="cuda", dtype=torch.half)
    with torch.no_grad():
        expected = model(x)
    dense = copy.deepcopy(model)
    assert to_semi_structured(model) == ["0", "2"]
    with torch.no_grad():
        got = model(x)
    assert torch.allclose(got.float(), expected.float(), atol=2e-2, rtol=2e-2)
    rows = measure({"dense": dense, "2:4": model}, x, warmup=2, repeats=5)
    assert rows[1].params == rows[0].params and rows[1].nonzero_params < rows[0].params
    assert all(r.latency_ms > 0 and r.device.startswith("cuda") for r in rows)


def test_the_bench_stack_is_slimmed_through_a_trace():
    model = FfnStack(2)
    assert [(p.up, p.down, p.source) for p in find_ffn_pairs(model)] == [
        (f"{i}.up", f"{i}.down", "fx") for i in range(2)
    ]
