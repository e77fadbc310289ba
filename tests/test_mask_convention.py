"""One mask convention across the public API (issue 26, point 3): a *mask* is ``True`` where a
weight is kept (INC, ``torch.ao.pruning``); a tensor ``True`` where a weight is pruned is named
so (``pruned``, ``wanda_pruned``, ``locked_zeros``). Renamed names warn with their removal version."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import workbench.integrations
import workbench.pruner
import workbench.pruner.posttraining
import workbench.pruner.slim
from workbench.pruner import BasePruner, Pruning, WeightPruningConfig, prepare_pruning
from workbench.pruner.posttraining import SparseGPTResult, parse_shape, sparsegpt_prune, wanda_mask, wanda_pruned

# Every public name that says "mask", and what its True means. A new one must be added here,
# with its convention, after checking it against the rule above.
MASK_NAMES = {
    "workbench.pruner.posttraining.wanda_mask": "deprecated alias of wanda_pruned (removal 0.2.0)",
    "BasePruner.masks": "kept",
    "BasePruner.mask_weights": "a method: zeroes the pruned weights",
    "Pruning.mask_updates": "a counter",
    "BasePruner.update_masks": "a method",
}


def _public_mask_names() -> set[str]:
    found = set()
    for module in (workbench.pruner, workbench.pruner.posttraining, workbench.pruner.slim, workbench.integrations):
        found |= {f"{module.__name__}.{n}" for n in module.__all__ if "mask" in n.lower()}
    for cls in (Pruning, BasePruner):
        found |= {f"{cls.__name__}.{n}" for n, _ in inspect.getmembers(cls) if "mask" in n and not n.startswith("_")}
    return found


def test_every_public_mask_name_is_known_with_its_convention():
    assert _public_mask_names() == set(MASK_NAMES)


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.parametrize("pattern", ["1x1", "4x1", "2:4"])
def test_pruner_masks_are_true_where_kept_and_pruned_is_true_where_pruned(pattern):
    model = _mlp()
    pruning = prepare_pruning(
        model,
        WeightPruningConfig(pruning_type="magnitude", pattern=pattern, target_sparsity=0.5, pruning_scope="local"),
    )
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    pruner = pruning.pruners[0]
    for name, keep in pruner.masks.items():
        weight = pruner.modules[name].weight.detach()
        assert keep.dtype == torch.bool and keep.shape == weight.shape
        assert float(keep.float().mean()) == 0.5
        assert bool((weight[~keep] == 0).all()) and bool((weight[keep] != 0).all())
        assert torch.equal(pruner.pattern.expand(name, pruner.pruned[name]), ~keep)


def test_pattern_lock_locked_zeros_are_the_zeros_and_the_old_name_warns():
    model = _mlp()
    with torch.no_grad():
        model[0].weight[:4] = 0
    pruning = prepare_pruning(model, WeightPruningConfig(pruning_type="pattern_lock"))
    pruning.on_train_begin()
    pruner = pruning.pruners[0]
    assert torch.equal(pruner.locked_zeros["0"], model[0].weight.detach() == 0)
    assert torch.equal(pruner.masks["0"], ~pruner.locked_zeros["0"])
    with pytest.warns(
        FutureWarning, match=r"locked is deprecated since 0\.1\.0 .* removed in 0\.2\.0; use locked_zeros"
    ):
        assert pruner.locked is pruner.locked_zeros


def test_wanda_pruned_is_true_where_pruned_and_wanda_mask_warns():
    torch.manual_seed(0)
    weight, norms = torch.randn(8, 16), torch.rand(16) + 0.1
    pruned = wanda_pruned(weight, norms, 0.25, parse_shape("1x1"))
    scores = weight.abs() * norms
    assert pruned.dtype == torch.bool and int(pruned.sum()) == 8 * 4
    for row, row_pruned in zip(scores, pruned):  # in each output row, the lowest scores are the pruned ones
        assert bool(row[row_pruned].max() <= row[~row_pruned].min())
    with pytest.warns(FutureWarning, match=r"wanda_mask is deprecated since 0\.1\.0 .* removed in 0\.2\.0"):
        assert torch.equal(wanda_mask(weight, norms, 0.25, parse_shape("1x1")), pruned)


def test_sparsegpt_returns_the_weight_and_what_it_pruned_by_name():
    torch.manual_seed(0)
    weight, x = torch.randn(8, 16), torch.randn(64, 16)
    result = sparsegpt_prune(weight, 2 * x.t() @ x / 64, 0.5, parse_shape("2:4"))
    assert isinstance(result, SparseGPTResult)
    new, pruned = result  # unpacks as before
    assert new is result.weight and pruned is result.pruned
    assert float(pruned.float().mean()) == 0.5 and bool((new[pruned] == 0).all())
