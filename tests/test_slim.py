"""Slimming FFN pairs: dead hidden channels removed, outputs unchanged, parameters fewer.

Models are pruned by the workbench pruner (``channelx1`` on down projections, ``1xchannel`` on up
projections) or have channels zeroed directly; the slimmed model's outputs must equal the masked
model's (fp32, allclose) and its parameter count drop by exactly the removed rows and columns.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import ConfigError, WeightPruningConfig, prepare_pruning
from workbench.pruner.slim import find_ffn_pairs, slim_model, slim_pruning_configs


def _mlp(hidden: int = 32, act: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, hidden), act or nn.GELU(), nn.Linear(hidden, 8), nn.ReLU(), nn.Linear(8, hidden), nn.Tanh(),
        nn.Linear(hidden, 4),
    )  # fmt: skip


def _prune(model: nn.Module, configs: list[dict], target: float = 0.5) -> None:
    config = WeightPruningConfig(
        pruning_configs=configs, target_sparsity=target, pruning_type="magnitude", start_step=0, end_step=0
    )
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    pruning.on_step_end()
    pruning.on_train_end()


def _expected_drop(up: nn.Linear, down: nn.Linear, removed: int) -> int:
    per_channel = up.in_features + (1 if up.bias is not None else 0) + down.out_features
    return removed * per_channel


def test_pairs_are_found_by_tracing_through_activations():
    pairs = find_ffn_pairs(_mlp())
    assert [(p.up, p.down, p.source) for p in pairs] == [("0", "2", "fx"), ("2", "4", "fx"), ("4", "6", "fx")]


def test_channelx1_on_down_projections_slims_to_equal_outputs():
    model = _mlp().eval()
    _prune(model, [{"op_names": ["^2$", "^6$"], "pattern": "channelx1"}])
    dead = {name: int((model[int(name)].weight == 0).all(dim=0).sum()) for name in ("2", "6")}
    assert dead == {"2": 16, "6": 16}
    x = torch.randn(5, 8)
    masked = model(x)
    expected = _expected_drop(model[0], model[2], 16) + _expected_drop(model[4], model[6], 16)
    report = slim_model(model)
    assert torch.allclose(model(x), masked, atol=1e-6)
    assert report.params_before - report.params_after == expected
    assert (model[0].out_features, model[2].in_features, model[4].out_features, model[6].in_features) == (
        16,
        16,
        16,
        16,
    )
    assert [e.layers for e in report.slimmed] == [("0", "2"), ("4", "6")]
    assert report.skipped[0].reason == "no dead channel"


def test_1xchannel_on_up_projection_folds_the_constant_channels_into_the_bias():
    model = _mlp().eval()
    with torch.no_grad():
        model[4].bias.uniform_(0.5, 1.0)  # tanh(bias) != 0: the removed channels carry a constant
    _prune(model, [{"op_names": ["^4$"], "pattern": "1xchannel"}])
    x = torch.randn(5, 8)
    masked = model(x)
    bias_before = model[6].bias.clone()
    expected = _expected_drop(model[4], model[6], 16)
    report = slim_model(model)
    assert torch.allclose(model(x), masked, atol=1e-6)
    assert model[4].out_features == 16
    assert not torch.equal(model[6].bias, bias_before)
    assert report.params_before - report.params_after == expected


def test_an_inplace_activation_is_not_applied_to_the_up_bias():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[0].bias.copy_(torch.linspace(-1, 1, 8))
        model[0].weight[:2] = 0  # bias -1 and -0.71: relu gives 0, nothing to fold
        model[0].weight[6:] = 0  # bias 0.71 and 1: folded into the down bias
    bias = model[0].bias[2:6].clone()
    x = torch.randn(2, 4)
    masked = model(x)
    slim_model(model)
    assert torch.equal(model[0].bias, bias)
    assert torch.allclose(model(x), masked, atol=1e-6)


def test_zero_up_rows_stay_when_the_down_projection_has_no_bias_to_fold_into():
    model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 3, bias=False)).eval()
    with torch.no_grad():
        model[0].weight[:4] = 0  # sigmoid(bias) is never 0
    x = torch.randn(2, 4)
    masked = model(x)
    report = slim_model(model)
    assert model[0].out_features == 8
    assert "no bias to fold into" in report.entries[0].reason
    assert torch.allclose(model(x), masked)


def test_round_to_keeps_a_multiple_of_channels():
    model = _mlp().eval()
    with torch.no_grad():
        model[2].weight[:, :21] = 0
    x = torch.randn(3, 8)
    masked = model(x)
    slim_model(model, round_to=8)
    assert model[0].out_features == 16
    assert torch.allclose(model(x), masked, atol=1e-6)


def test_all_channels_dead_keeps_one():
    model = _mlp().eval()
    with torch.no_grad():
        model[2].weight.zero_()
    x = torch.randn(3, 8)
    masked = model(x)
    slim_model(model)
    assert model[0].out_features == 1
    assert torch.allclose(model(x), masked)


def test_a_module_called_twice_is_not_a_pair():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up, self.down = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.down(torch.relu(self.up(self.up(x))))

    assert [(p.up, p.down) for p in find_ffn_pairs(Twice())] == []


def test_slimmed_state_dict_loads_into_a_copy_and_training_still_works():
    model = _mlp().eval()
    _prune(model, [{"op_names": ["^2$"], "pattern": "channelx1"}])
    slim_model(model)
    twin = copy.deepcopy(model)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(4, 8)
    assert torch.equal(twin(x), model(x))
    model.train()
    model(x).sum().backward()
    assert model[0].weight.grad.shape == model[0].weight.shape == (16, 8)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_round_to_is_validated(bad):
    with pytest.raises(ConfigError, match="round_to"):
        slim_model(_mlp(), round_to=bad)


def test_a_non_module_is_refused():
    with pytest.raises(ConfigError, match="nn.Module"):
        slim_model("model")


@settings(max_examples=25, deadline=None)
@given(
    hidden=st.integers(2, 24),
    dead_cols=st.sets(st.integers(0, 23)),
    dead_rows=st.sets(st.integers(0, 23)),
    act=st.sampled_from(["relu", "gelu", "tanh", "sigmoid"]),
    seed=st.integers(0, 10_000),
)
def test_slimming_any_zero_channels_keeps_outputs_and_removes_exactly_the_dead(hidden, dead_cols, dead_rows, act, seed):
    torch.manual_seed(seed)
    acts = {"relu": nn.ReLU(), "gelu": nn.GELU(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}
    model = nn.Sequential(nn.Linear(5, hidden), acts[act], nn.Linear(hidden, 3)).eval()
    cols, rows = sorted(c for c in dead_cols if c < hidden), sorted(r for r in dead_rows if r < hidden)
    with torch.no_grad():
        model[2].weight[:, cols] = 0
        model[0].weight[rows] = 0
    dead = len(set(cols) | set(rows))
    x = torch.randn(6, 5)
    masked = model(x)
    report = slim_model(model)
    kept = max(1, hidden - dead)
    assert model[0].out_features == model[2].in_features == kept
    assert report.params_before - report.params_after == (hidden - kept) * (5 + 1 + 3)
    assert torch.allclose(model(x), masked, atol=1e-5)


@pytest.mark.parametrize(("key", "value"), [("ffn_sparsity", 1.0), ("head_sparsity", -0.1), ("ffn_sparsity", "0.5")])
def test_slim_pruning_configs_validates_sparsities(key, value):
    with pytest.raises(ConfigError, match=key):
        slim_pruning_configs(_mlp(), **{key: value})


def test_slim_pruning_configs_of_an_mlp_slim_through_the_pruner():
    model = _mlp().eval()
    configs = slim_pruning_configs(model, ffn_sparsity=0.75, pruning_scope="local")
    assert configs[0]["op_names"] == ["^2$", "^4$", "^6$"]
    _prune(model, configs, target=0.75)
    x = torch.randn(3, 8)
    masked = model(x)
    slim_model(model)
    assert (model[0].out_features, model[2].out_features, model[4].out_features) == (8, 2, 8)
    assert torch.allclose(model(x), masked, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make test-gpu)")
def test_slimming_on_cuda_keeps_outputs_and_device():
    model = _mlp().cuda().eval()
    _prune(model, [{"op_names": ["^2$", "^6$"], "pattern": "channelx1"}])
    x = torch.randn(5, 8, device="cuda")
    masked = model(x)
    slim_model(model)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert torch.allclose(model(x), masked, atol=1e-5)
