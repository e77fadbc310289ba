"""Hugging Face ``Conv1D`` (GPT-2) weights are ``[in, out]``; patterns apply in the Linear
orientation ``[out, in]``, so a Conv1D and an ``nn.Linear`` holding the transposed same weights
are pruned alike (masks equal up to the transpose) for every pattern family and criterion."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import ConfigError, WeightPruningConfig, list_criteria, list_pattern_examples, prepare_pruning
from workbench.pruner.layout import is_transposed_linear

transformers_utils = pytest.importorskip("transformers.pytorch_utils")
Conv1D = transformers_utils.Conv1D

IN, HIDDEN, OUT = 32, 16, 2


def _linear_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))


def _conv1d_twin(linear_model: nn.Sequential) -> nn.Sequential:
    """The same model with its hidden Linears as Conv1D holding the transposed weights."""
    layers = []
    for layer in linear_model:
        if isinstance(layer, nn.Linear) and layer.out_features != OUT:
            conv = Conv1D(layer.out_features, layer.in_features)
            with torch.no_grad():
                conv.weight.copy_(layer.weight.t())
                conv.bias.copy_(layer.bias)
            layers.append(conv)
        elif isinstance(layer, nn.Linear):
            twin = nn.Linear(layer.in_features, layer.out_features)
            twin.load_state_dict(layer.state_dict())
            layers.append(twin)
        else:
            layers.append(layer)
    return nn.Sequential(*layers)


def _train(model: nn.Module, config: WeightPruningConfig, steps: int = 4):
    torch.manual_seed(1)
    x, y = torch.randn(8, IN), torch.randint(0, OUT, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    pruning = prepare_pruning(model, config, opt)
    model.train()
    for _ in range(steps):
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return pruning


def test_conv1d_is_detected_by_duck_typing():
    assert is_transposed_linear(Conv1D(8, 4))
    assert not is_transposed_linear(nn.Linear(4, 8))
    assert not is_transposed_linear(nn.Conv1d(4, 8, 3))  # torch's Conv1d is a real convolution


COMBOS = [(c, p) for c in list_criteria() for ps in list_pattern_examples().values() for p in ps]


@pytest.mark.parametrize(("criterion", "pattern"), COMBOS)
def test_conv1d_masks_equal_linear_masks_transposed(criterion, pattern):
    target = 0.25 if ":" in pattern else 0.5
    config = WeightPruningConfig(
        pruning_type=criterion, pattern=pattern, target_sparsity=target, start_step=1, end_step=3
    )
    linear = _linear_model()
    try:
        p_linear = _train(linear, config)
    except ConfigError as err:  # a combination the library refuses (e.g. a block criterion on N:M)
        pytest.skip(f"{criterion} x {pattern} is not a valid combination: {err}")
    conv = _conv1d_twin(_linear_model())
    p_conv = _train(conv, config)
    linear_masks, conv_masks = p_linear.pruners[0].masks, p_conv.pruners[0].masks
    assert set(linear_masks) == set(conv_masks) == {"0", "2"}
    for name in linear_masks:
        assert conv_masks[name].shape == linear_masks[name].t().shape
        assert torch.equal(conv_masks[name], linear_masks[name].t()), (criterion, pattern, name)
        assert torch.equal(conv[int(name)].weight == 0, (linear[int(name)].weight == 0).t())
    assert (linear[0].weight == 0).float().mean() > 0  # it did prune


def test_conv1d_4x1_blocks_run_along_outputs():
    """ "4x1" is 4 outputs x 1 input: in the stored [in, out] weight, 4 consecutive columns."""
    conv = _conv1d_twin(_linear_model())
    config = WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5, start_step=0, end_step=0)
    pruning = prepare_pruning(conv, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    zeros = conv[0].weight == 0  # [in, out]
    blocks = zeros.view(IN, HIDDEN // 4, 4)
    assert torch.equal(blocks.all(dim=2), blocks.any(dim=2))  # each block of 4 outputs is pruned whole
    assert blocks.all(dim=2).any()


@settings(max_examples=25, deadline=None)
@given(
    nm=st.sampled_from([(1, 4), (2, 4), (5, 8), (3, 8)]),
    inputs_groups=st.integers(1, 4),
    outputs=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_nm_on_conv1d_prunes_n_of_every_m_inputs(nm, inputs_groups, outputs, seed):
    n, m = nm
    torch.manual_seed(seed)
    conv = Conv1D(outputs, inputs_groups * m)  # weight [in, out]
    model = nn.Sequential(conv, nn.Linear(outputs, 2))
    config = WeightPruningConfig(
        pruning_type="magnitude", pattern=f"{n}:{m}", target_sparsity=n / m, start_step=0, end_step=0
    )
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    groups = (conv.weight == 0).t().reshape(outputs, inputs_groups, m)  # [out, in] view, groups of M inputs
    assert bool((groups.sum(dim=2) >= n).all())


@pytest.mark.parametrize("pattern", ["4x1", "2x2", "1xchannel", "2:4"])
@pytest.mark.parametrize("criterion", ["magnitude", "snip", "snip_momentum"])
def test_conv1d_scores_equal_linear_scores_and_are_computed_in_place(criterion, pattern):
    """Scores in the Linear orientation; where the kernels are built, computed as stored ([in, out],
    transposed block) into a contiguous tensor, so no weight-sized copy is made per step."""
    from workbench.pruner import get_criterion
    from workbench.pruner._backend import kernels_available
    from workbench.pruner.patterns import get_pattern

    linear = _linear_model()[0]
    conv = _conv1d_twin(_linear_model())[0]
    gen = torch.Generator().manual_seed(2)
    grad = torch.randn(linear.weight.shape, generator=gen)
    scores = {}
    for name, layer, g in (("linear", linear, grad), ("conv", conv, grad.t().contiguous())):
        config = {"criterion_type": criterion, "pattern": pattern}
        c = get_criterion(config, {"l": layer}, get_pattern(config, {"l": layer}))
        for _ in range(2):
            layer.weight.grad = g
            c.on_step_begin()
            c.on_before_optimizer_step()
        scores[name] = c.scores["l"]
    torch.testing.assert_close(scores["conv"], scores["linear"], rtol=1e-6, atol=0)
    if kernels_available():
        assert scores["conv"].t().is_contiguous()
