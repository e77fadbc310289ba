"""Half-precision weights are scored in float32 (every criterion, momentum included), and a model
left in eval mode still prunes with one warning (issue 19, points 5 and 6)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from workbench.pruner import (
    CRITERIA,
    WeightPruningConfig,
    get_criterion,
    get_sparsity_ratio,
    list_criteria,
    parse_pattern,
    prepare_pruning,
)
from workbench.pruner.patterns import get_pattern

from helpers.pruner import MLP, seeded


def _layer(dtype: torch.dtype, seed: int) -> nn.Linear:
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(16, 8, bias=False)
    with torch.no_grad():  # tiny weights and gradients: their products underflow in float16
        layer.weight.copy_(torch.randn(8, 16, generator=gen) * 1e-3)
    return layer.to(dtype)


def _scores(criterion_name: str, pattern: str, layer: nn.Linear, grads: list[torch.Tensor]) -> torch.Tensor:
    config = {"criterion_type": criterion_name, "pattern": pattern}
    criterion = get_criterion(config, {"fc": layer}, get_pattern(config, {"fc": layer}))
    for grad in grads:  # a momentum criterion accumulates over these steps
        layer.weight.grad = grad.to(layer.weight.dtype)
        criterion.on_step_begin()
        criterion.on_before_optimizer_step()
    return criterion.scores["fc"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pattern", ["4x1", "2:4"])
@pytest.mark.parametrize("criterion", list_criteria())
def test_half_weights_are_scored_in_float32_as_their_float32_copies(criterion, pattern, dtype):
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(8, 16, generator=gen) * 1e-5 for _ in range(3)]
    if not CRITERIA.lookup(criterion).requires <= parse_pattern(pattern).features:
        pytest.skip(f"{criterion} does not take {pattern} (validation refuses the pair)")
    got = _scores(criterion, pattern, _layer(dtype, seed=0), grads)
    exact = _layer(dtype, seed=0).float()  # the same half values, upcast
    want = _scores(criterion, pattern, exact, [g.to(dtype).float() for g in grads])
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    assert bool((got > 0).any())  # float16 products of these values would be 0


def test_a_model_left_in_eval_mode_still_prunes_and_warns_once(caplog):
    model = seeded(MLP)
    model.eval()  # what from_pretrained returns; the training loop forgets model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    config = WeightPruningConfig(
        pruning_type="snip_momentum", pattern="4x1", target_sparsity=0.8, start_step=2, end_step=10
    )
    pruning = prepare_pruning(model, config, opt)
    gen = torch.Generator().manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="workbench.pruner"):
        for _ in range(14):
            x, y = torch.randn(8, 16, generator=gen), torch.randint(0, 4, (8,), generator=gen)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    warnings = [r for r in caplog.records if "eval mode" in r.getMessage()]
    assert len(warnings) == 1 and "model.train()" in warnings[0].getMessage()
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(0.8, abs=0.01)


def test_a_training_mode_model_gets_no_warning_and_the_same_masks_as_explicit_hooks(caplog):
    config = WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5, start_step=1, end_step=3)
    model = seeded(MLP)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    pruning = prepare_pruning(model, config, opt)
    model.train()
    gen = torch.Generator().manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="workbench.pruner"):
        for _ in range(5):
            x, y = torch.randn(8, 16, generator=gen), torch.randint(0, 4, (8,), generator=gen)
            model.eval()
            model(x)  # an evaluation forward between steps changes nothing
            model.train()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    assert not [r for r in caplog.records if "eval mode" in r.getMessage()]
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(0.5, abs=0.01)
