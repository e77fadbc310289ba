"""Masks, scores and scratch live on the weight's device; off the CPU the pruner takes its plain
PyTorch paths (issue 19, point 3). What a CPU-only machine can check: the dispatch, the
device-generic selection against the CPU's, and a whole pruning run forced down the off-CPU
paths giving the CPU's masks. ``tests/test_gpu_pruner.py`` runs the same on CUDA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import (
    WeightPruningConfig,
    _backend,
    get_criterion,
    list_criteria,
    list_pattern_examples,
    prepare_pruning,
)
from workbench.pruner._backend import blocks, kernels, selection

from helpers.profiling import cpu_allocations
from helpers.pruner import MLP, batches, seeded

META = torch.device("meta")


def test_the_dispatch_predicate_is_the_device():
    assert _backend.on_cpu(torch.zeros(2))
    assert not _backend.on_cpu(torch.zeros(2, device=META))


def test_select_lowest_sends_non_cpu_scores_to_the_sorted_path(monkeypatch):
    calls = []

    def spy(scores, k, *, lo=None, hi=None):
        calls.append((scores[0].device.type, k))
        return "sorted path"

    monkeypatch.setattr(selection, "select_lowest_sorted", spy)
    assert selection.select_lowest([torch.zeros(4, device=META)], 2) == "sorted path"
    selection.select_lowest([torch.arange(4.0)], 2)  # the CPU keeps its counting path
    assert calls == [("meta", 2)]


def test_kernels_refuse_tensors_off_the_cpu():
    weight, mask = torch.zeros(8, 8, device=META), torch.zeros(8, 8, dtype=torch.bool, device=META)
    assert not _backend.zero_by_mask(weight, mask)
    assert not _backend.zero_by_mask(weight, mask[:2], block_rows=4)
    assert blocks.block_scores(weight, None, "magnitude", (4, 1), "mean") is None
    assert not blocks.zero_blocks(weight, mask[:2], (4, 1))
    assert blocks.weight_order_mask(mask[:2, :8].contiguous(), (8, 2, 2, 2), (4, 1)) is None
    assert kernels.two_of_four(torch.zeros(4, 4, device=META)) is None


def test_scratch_and_scores_are_allocated_on_the_weights_device():
    ws = _backend.Workspace()
    assert ws.get("t", (2, 3), device=META).is_meta and not ws.get("t", (2, 3)).is_meta
    layer = nn.Linear(8, 8, device=META)
    criterion = get_criterion({"criterion_type": "magnitude"}, {"fc": layer})
    assert criterion._storage("fc", (8, 8)).is_meta


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    k_frac=st.floats(0, 1),
    levels=st.integers(2, 50),
    capped=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_the_sorted_selection_equals_the_cpu_selection(sizes, k_frac, levels, capped, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = [torch.randint(0, levels, (n,), generator=gen).float() for n in sizes]  # many ties
    k = round(k_frac * sum(sizes))
    hi = [max(0, n - 3) for n in sizes] if capped else None
    fast = selection.select_lowest(scores, k, hi=hi)
    generic = selection.select_lowest_sorted(scores, k, hi=hi)
    assert fast[1] == generic[1] and fast[2] == generic[2]
    assert all(torch.equal(a, b) for a, b in zip(fast[0], generic[0]))


def _run(config: WeightPruningConfig, off_cpu: bool, monkeypatch) -> dict[str, torch.Tensor]:
    with monkeypatch.context() as m:
        if off_cpu:  # what a CUDA tensor takes: no kernels, no CPU-tuned selection
            m.setenv(kernels.ENV_SWITCH, "0")
            m.setattr(selection, "on_cpu", lambda t: False)
        model = seeded(MLP)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        pruning = prepare_pruning(model, config, opt)
        model.train()
        for x, y in batches(model, 6):
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        return pruning.pruners[0].masks


COMBOS = [
    (t, p)
    for t in [*list_criteria(), "snip_momentum_progressive"]
    for ps in list_pattern_examples().values()
    for p in ps
    if not (t == "snip_momentum_block" and ":" in p)
]


@pytest.mark.parametrize(("pruning_type", "pattern"), COMBOS)
@pytest.mark.parametrize("scope", ["global", "local"])
def test_the_off_cpu_paths_give_the_cpu_masks(pruning_type, pattern, scope, monkeypatch):
    config = WeightPruningConfig(
        pruning_type=pruning_type,
        pattern=pattern,
        target_sparsity=0.25 if ":" in pattern else 0.5,
        pruning_scope=scope,
        start_step=1,
        end_step=4,
    )
    cpu, generic = _run(config, False, monkeypatch), _run(config, True, monkeypatch)
    assert set(cpu) == set(generic) and cpu
    for name in cpu:
        assert torch.equal(cpu[name], generic[name]), (pruning_type, pattern, scope, name)


def test_a_model_planned_on_meta_and_materialised_prunes():
    with torch.device("meta"):
        model = MLP()
    config = WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5, start_step=0, end_step=0)
    pruning = prepare_pruning(model, config)
    model.to_empty(device="cpu")
    for p in model.parameters():
        nn.init.normal_(p)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    assert all(mask.device.type == "cpu" for mask in pruning.pruners[0].pruned.values())
    assert float((model.fc1.weight == 0).float().mean()) > 0


def test_follow_devices_moves_masks_and_scores_to_the_weights_device():
    """A meta model's masks start on the CPU (no values to plan with); following the weights
    moves them, and any scores, to the weights' device (what a CUDA model after .cuda() gets)."""
    with torch.device("meta"):
        model = MLP()
    config = WeightPruningConfig(pruning_type="snip", pattern="4x1", target_sparsity=0.5, start_step=0, end_step=0)
    pruner = prepare_pruning(model, config).pruners[0]
    assert {m.device.type for m in pruner.pruned.values()} == {"cpu"}
    pruner.criterion.scores = {"fc1": torch.zeros(8, 16)}
    pruner.follow_devices()
    assert {m.device.type for m in pruner.pruned.values()} == {"meta"}
    assert pruner.criterion.scores["fc1"].is_meta


def test_the_allocation_probe_of_the_gpu_test_sees_a_cpu_steps_buffers():
    """tests/test_gpu_pruner.py asserts a CUDA step leaves nothing weight-sized on the CPU; on
    the CPU the same probe must see the step's buffers (else that assertion proves nothing)."""
    model = seeded(MLP, hidden=256)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    config = WeightPruningConfig(
        pruning_type="snip_momentum", pattern="4x1", target_sparsity=0.25, start_step=1, end_step=8
    )
    prepare_pruning(model, config, opt)
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))

    def step():
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    step()
    allocations = cpu_allocations(lambda: [step() for _ in range(3)])
    assert max(allocations) >= 256 * 256 // 4  # at least one mask- or score-sized buffer
