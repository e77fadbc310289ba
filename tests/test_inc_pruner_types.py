"""INC 3.7.1's other pruner types: ``block_mask``, ``retrain_free``, and the ``snip_momentum_block``
criterion (issue 20, point 3).

Expectations derived from INC 3.7.1's source (pruners/block_mask.py, pruners/retrain_free.py,
criteria.py), written as our own; tools/inc_oracle.py runs INC itself on small models.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import ConfigError, WeightPruningConfig, get_criterion, prepare_pruning, resolve_config
from workbench.pruner.patterns import get_pattern

from helpers.pruner import MLP, ConvNet, batches, seeded, train


def _masked_forward_gradient(layer: nn.Linear, pattern, name: str, x: torch.Tensor) -> torch.Tensor:
    """INC's way: a 0/1 mask per block multiplied into the weight in forward; its gradient."""
    bn, bm = pattern.block(name)
    rows, cols = layer.weight.shape
    mask = torch.ones(rows // bn, cols // bm, requires_grad=True)
    full = mask.repeat_interleave(bn, dim=0).repeat_interleave(bm, dim=1)
    nn.functional.linear(x, layer.weight * full, layer.bias).pow(2).sum().backward()
    return mask.grad


@pytest.mark.parametrize("pattern", ["4x1", "2x2", "1xchannel", "channelx1"])
def test_snip_momentum_block_scores_are_the_gradients_of_inc_block_masks(pattern):
    torch.manual_seed(0)
    layer = nn.Linear(8, 8)
    p = get_pattern({"pattern": pattern}, {"fc": layer})
    criterion = get_criterion({"criterion_type": "snip_momentum_block"}, {"fc": layer}, p)
    expected = torch.zeros(1)
    for step in range(3):
        x = torch.randn(4, 8)
        mask_grad = _masked_forward_gradient(layer, p, "fc", x)
        layer.weight.grad = None
        nn.functional.linear(x, layer.weight, layer.bias).pow(2).sum().backward()
        criterion.on_before_optimizer_step()
        expected = mask_grad.abs() if step == 0 else 0.9 * expected + mask_grad.abs()
        assert torch.allclose(criterion.scores["fc"], expected, atol=1e-5)


def test_block_mask_is_basic_pruning_with_the_block_criterion_over_linear_layers_only():
    (config,) = resolve_config(WeightPruningConfig(pruning_type="block_mask", pattern="4x1"))
    assert (config.pruner_type, config.criterion_type) == ("block_mask", None)
    model = seeded(ConvNet)
    pruning, _ = train(
        model,
        WeightPruningConfig(pruning_type="block_mask", pattern="4x1", target_sparsity=0.5, start_step=1, end_step=5),
        8,
    )
    assert type(pruning.pruners[0].criterion).__name__ == "SnipMomentumBlockCriterion"
    layers = {info.name: info for info in pruning.describe()}
    assert layers["fc"].pruned and not layers["conv1"].pruned and not layers["conv2"].pruned
    assert "Linear layers only" in layers["conv1"].reason
    assert float((model.fc.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert bool((model.conv1.weight != 0).all())


@pytest.mark.parametrize(
    "keys, key",
    [
        ({"pruning_type": "block_mask", "pattern": "2:4", "target_sparsity": 0.5}, "pattern"),  # INC asserted
        ({"pruning_type": "snip_momentum_block", "pattern": "2:4", "target_sparsity": 0.5}, "pattern"),
        ({"pruning_type": "retrain_free", "pattern": "4x1"}, "pattern"),  # INC asserted "channel" in pattern
        ({"pruning_type": "snip_momentum_block_progressive"}, "pruning_type"),
    ],
)
def test_configs_inc_refused_are_refused_naming_the_key(keys, key):
    with pytest.raises(ConfigError) as info:
        resolve_config(WeightPruningConfig(**keys))
    assert str(info.value).startswith(f"{key}: ")


def _calibrated(pattern: str, target: float, scope: str = "local", steps: int = 10, end: int = 8):
    model = seeded(MLP)
    dense = {n: m.weight.detach().clone() for n, m in model.named_children()}
    config = WeightPruningConfig(
        pruning_type="retrain_free",
        pattern=pattern,
        target_sparsity=target,
        pruning_scope=scope,
        start_step=0,
        end_step=end,
        pruning_frequency=end,
    )
    loader = [(x, y) for x, y in batches(model, steps)]
    pruning = prepare_pruning(model, config, dataloader=loader, loss_func=nn.functional.cross_entropy)
    return model, dense, pruning


@pytest.mark.parametrize("pattern, axis", [("channelx1", 0), ("1xchannel", 1)])
def test_retrain_free_prunes_whole_channels_from_calibration_and_trains_nothing(pattern, axis):
    model, dense, pruning = _calibrated(pattern, 0.25)
    pruner = pruning.pruners[0]
    assert pruner.global_step == 10 and len(pruner.grads["fc1"]) == 8  # steps 0..7 feed the mask update
    for name in ("fc1", "fc2"):
        weight = getattr(model, name).weight.detach()
        zero_channels = (weight == 0).all(dim=axis)
        assert int(zero_channels.sum()) == weight.shape[1 - axis] // 4  # local: each layer at 0.25
        kept = ~zero_channels
        dense_kept = dense[name][:, kept] if axis == 0 else dense[name][kept]
        assert torch.equal(weight[:, kept] if axis == 0 else weight[kept], dense_kept)  # no training
    assert bool((model.head.weight == dense["head"]).all())


def test_retrain_free_counts_weights_over_layers_in_global_scope():
    model, _, pruning = _calibrated("1xchannel", 0.5, scope="global")
    zeros = sum(int((getattr(model, n).weight == 0).sum()) for n in ("fc1", "fc2"))
    assert abs(zeros - 0.5 * (32 * 16 + 32 * 32)) <= 32  # within one channel of the weights' half


def test_fisher_scores_and_recorded_gradients_are_the_mask_gradients():
    model, dense, pruning = _calibrated("channelx1", 0.25, steps=3, end=8)
    pruner = pruning.pruners[0]
    grads = torch.stack(pruner.grads["fc1"])  # [steps, channels]
    assert grads.shape == (3, 16)
    assert torch.allclose(pruner.scores["fc1"].reshape(-1), grads.pow(2).sum(dim=0))
    # the first step's gradient, recomputed INC's way from the same batch and the dense model
    torch.manual_seed(0)
    fresh = seeded(MLP)
    x, y = next(iter(batches(fresh, 1)))
    mask = torch.ones(16, requires_grad=True)
    h = torch.relu(nn.functional.linear(x, fresh.fc1.weight * mask, fresh.fc1.bias))
    loss = nn.functional.cross_entropy(fresh.head(torch.relu(fresh.fc2(h))), y)
    loss.backward()
    assert torch.allclose(grads[0], mask.grad, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), channels=st.integers(2, 12), steps=st.integers(1, 5))
def test_rearrangement_keeps_the_count_and_never_raises_the_fisher_loss(data, channels, steps):
    values = data.draw(st.lists(st.floats(-1, 1), min_size=channels * steps, max_size=channels * steps))
    grads = torch.tensor(values).view(steps, channels)
    count = data.draw(st.integers(1, channels - 1))
    model = seeded(MLP)
    pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="retrain_free", pattern="channelx1"))
    pruner = pruning.pruners[0]
    pruner.grads["fc1"] = [g for g in grads]
    order = torch.argsort(grads.pow(2).sum(dim=0), stable=True)
    start = torch.zeros(channels, dtype=torch.bool)
    start[order[:count]] = True
    out = pruner.rearrange("fc1", start.view(1, channels))
    assert int(out.sum()) == count

    def loss(chosen):
        return float(grads[:, chosen.reshape(-1)].sum(dim=1).pow(2).sum())

    assert loss(out) <= loss(start) + 1e-9


def test_rearrangement_prefers_channels_whose_gradients_cancel():
    # channels 0 and 1 have the lowest Fisher information but pull the same way; 2 and 3 cancel
    grads = torch.tensor([[1.0, 1.0, 1.5, -1.5], [1.0, 1.0, -1.5, 1.5]])
    model = seeded(MLP)
    pruner = prepare_pruning(model, WeightPruningConfig(pruning_type="retrain_free", pattern="channelx1")).pruners[0]
    pruner.grads["fc1"] = [g for g in grads]
    start = torch.tensor([[True, True, False, False]])
    assert pruner.rearrange("fc1", start).tolist() == [[False, False, True, True]]
