"""The compiled kernels give what the PyTorch paths give, and step aside when they cannot."""

from __future__ import annotations

import os
import shutil
import sysconfig

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner._backend import kernels
from workbench.pruner._backend.groups import lowest_n_per_group
from workbench.pruner.patterns import get_pattern

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="C kernels not built (no compiler?)")


def _pytorch_path(scores: torch.Tensor, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    with monkeypatch.context() as m:
        m.setenv(kernels.ENV_SWITCH, "0")
        return lowest_n_per_group(scores, 2, 4)


_CAN_BUILD = (shutil.which("cc") or shutil.which("gcc")) and os.path.exists(
    os.path.join(sysconfig.get_paths()["include"], "Python.h")
)


@pytest.mark.skipif(not _CAN_BUILD, reason="no C compiler or Python headers here")
def test_kernels_are_built_where_a_compiler_exists():
    assert kernels._kernels is not None, "setup.py's optional extension failed to build: see pip's output"


@needs_kernels
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    groups=st.integers(1, 40), levels=st.sampled_from([2, 3, 5, 0]), seed=st.integers(0, 10_000), specials=st.booleans()
)
def test_two_of_four_equals_the_pytorch_path(groups, levels, seed, specials, monkeypatch, two_threads):
    gen = torch.Generator().manual_seed(seed)
    if levels:  # few distinct values: many ties inside groups
        scores = torch.randint(0, levels, (groups, 4), generator=gen).float()
    else:
        scores = torch.rand(groups, 4, generator=gen)
    if specials:
        scores.view(-1)[torch.randint(0, groups * 4, (3,), generator=gen)] = torch.tensor([float("inf"), 0.0, -0.0])
    expected_score, expected_picked = _pytorch_path(scores, monkeypatch)
    score, picked = lowest_n_per_group(scores, 2, 4)
    assert torch.equal(picked, expected_picked)
    assert torch.equal(score, expected_score)


@needs_kernels
def test_two_of_four_reports_ties_and_nan(two_threads):
    scores = torch.tensor([[1.0, 2.0, 2.0, 5.0], [1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 7.0, 7.0]] * 3)
    score, picked, tied = kernels.two_of_four(scores)
    assert tied.tolist() == [0, 2, 3, 5, 6, 8]
    assert score.tolist() == [3.0, 3.0, 14.0] * 3
    assert picked[1].tolist() == [True, True, False, False]
    scores[4, 2] = float("nan")
    assert kernels.two_of_four(scores) is None


def test_two_of_four_declines_what_it_cannot_take(monkeypatch):
    wide = torch.rand(4, 8)
    assert kernels.two_of_four(wide[:, ::2]) is None  # not contiguous
    assert kernels.two_of_four(torch.rand(4, 4, dtype=torch.float64)) is None
    assert kernels.two_of_four(torch.rand(4, 2)) is None
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert not kernels.available()
    assert kernels.two_of_four(torch.rand(4, 4)) is None


@needs_kernels
@pytest.mark.parametrize("scope", ["global", "local"])
def test_nm_masks_are_the_same_with_and_without_kernels(scope, monkeypatch, two_threads):
    torch.manual_seed(0)
    model = {"a": nn.Linear(32, 16), "b": nn.Linear(64, 8)}
    gen = torch.Generator().manual_seed(1)
    scores = {n: torch.randint(0, 6, tuple(m.weight.shape), generator=gen).float() for n, m in model.items()}

    def masks():
        config = {
            "pattern": "2:4",
            "target_sparsity": 0.5,
            "pruning_scope": scope,
            "min_sparsity_ratio_per_op": 0.0,
            "max_sparsity_ratio_per_op": 1.0,
        }
        p = get_pattern(config, model)
        return p.select_pruned(scores, 0.3, {})

    native = masks()
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    plain = masks()
    assert all(torch.equal(native[n], plain[n]) for n in model)
    assert sum(int(m.sum()) for m in native.values()) > 0


_PROBE_VALUES = st.one_of(
    st.floats(-4, 4, width=32), st.sampled_from([0.0, -0.0, 1.0, float("inf"), float("-inf"), float("nan")])
)


@needs_kernels
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), layers=st.integers(1, 4), row=st.sampled_from([1, 3, 8, 128]), value=st.floats(-4, 4, width=32))
def test_probe_counts_and_masks_equal_the_pytorch_path(data, layers, row, value, two_threads):
    from workbench.pruner._backend.probes import row_sums

    flat = [
        torch.tensor(data.draw(st.lists(_PROBE_VALUES, min_size=1, max_size=60)), dtype=torch.float32)
        for _ in range(layers)
    ]
    counts = kernels.count_rows(flat, value, row)
    masks = kernels.at_or_below(flat, [value] * layers)
    for f, c, m in zip(flat, counts, masks):
        ones = (f <= value).float()
        sums = torch.stack([ones[i : i + row].sum() for i in range(0, f.numel(), row)])
        assert torch.equal(c, sums)
        assert torch.equal(m, f <= value)
        if row == 128:
            assert torch.equal(c, row_sums(ones))


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_results_do_not_depend_on_how_the_work_is_shared(threads, monkeypatch):
    """Every kernel cut into 1..5 shares (more threads than this machine has cores is allowed)
    gives what the PyTorch expressions give, so no share boundary drops or repeats an element."""
    monkeypatch.setattr(kernels, "SPLIT", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    gen = torch.Generator().manual_seed(threads)
    x = torch.randn(1003, generator=gen)  # no share boundary falls on a multiple of 4, 16 or 128
    (counts,) = kernels.count_rows([x], 0.25, 7)
    assert torch.equal(counts, torch.stack([(x[i : i + 7] <= 0.25).sum() for i in range(0, 1003, 7)]).float())
    (below,) = kernels.at_or_below([x], [0.25])
    assert torch.equal(below, x <= 0.25)
    rows = torch.tensor([0, 3, 4, 60, 143])
    wanted = torch.cat([torch.arange(r * 7, min(r * 7 + 7, 1003)) for r in rows.tolist()])
    wanted = wanted[(x[wanted] > -0.5) & (x[wanted] <= 0.5)]
    ((values, positions),) = kernels.between_rows([x], [rows], -0.5, 0.5, 7, [wanted.numel()])
    assert torch.equal(positions, wanted) and torch.equal(values, x[wanted])
    groups = x[:1000].view(250, 4).contiguous()
    score, picked, _ = kernels.two_of_four(groups)
    low2 = groups.sort(dim=1).values[:, :2]
    assert torch.equal(score, low2[:, 0] + low2[:, 1]) and torch.equal(picked, groups <= low2[:, 1:])
    weight, pruned = x.clone(), x > 0.8
    assert kernels.zero_pruned([weight], [pruned]) == [True]
    assert torch.equal(weight, x * ~pruned)


@needs_kernels
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 300),
    beta=st.sampled_from([1.0, 0.5, 3.0]),
    alpha=st.sampled_from([0.9, 0.0, 1.0, 0.37]),
    seed=st.integers(0, 10_000),
)
def test_snip_accumulate_equals_the_pytorch_path(n, beta, alpha, seed, two_threads):
    from workbench.pruner.criteria import _accumulate

    gen = torch.Generator().manual_seed(seed)
    w, g = torch.randn(n, generator=gen), torch.randn(n, generator=gen) * 1e-3
    w[torch.rand(n, generator=gen) < 0.3] = 0.0  # pruned weights
    score = torch.rand(n, generator=gen) * 1e-2
    expected = _accumulate(score.clone(), (w * g).abs(), alpha, beta)
    assert kernels.snip_accumulate(score, w, g, alpha, beta)
    assert torch.equal(score, expected)  # bit for bit: both round with one fused multiply-add


@needs_kernels
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bn=st.sampled_from([2, 3, 4, 5, 8, 16]),
    block_rows=st.integers(1, 5),
    cols=st.integers(1, 150),
    reduce_type=st.sampled_from(["mean", "sum"]),
    beta=st.sampled_from([1.0, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_snip_accumulate_blocks_equals_the_pytorch_path(bn, block_rows, cols, reduce_type, beta, seed, two_threads):
    from workbench.pruner.criteria import _accumulate

    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(cols, bn * block_rows)
    pattern = get_pattern({"pattern": f"{bn}x1", "criterion_reduce_type": reduce_type}, {"fc": layer})
    w = torch.randn(bn * block_rows, cols, generator=gen) * torch.exp(
        torch.randn(bn * block_rows, cols, generator=gen) * 3
    )
    g = torch.randn(bn * block_rows, cols, generator=gen)
    score = torch.rand(block_rows, cols, generator=gen)
    expected = _accumulate(score.clone(), pattern.reduce("fc", (w * g).abs()), 0.9, beta)
    assert kernels.snip_accumulate_blocks(score, w, g, bn, mean=reduce_type == "mean", alpha=0.9, beta=beta)
    assert torch.equal(score, expected)


def test_nx1_blocks_are_summed_in_row_order():
    """The order the kernel sums in; torch.sum's own order over a strided dim depends on the shape."""
    layer = nn.Linear(33, 16)
    pattern = get_pattern({"pattern": "8x1", "criterion_reduce_type": "sum"}, {"fc": layer})
    x = torch.rand(16, 33) * torch.exp(torch.randn(16, 33) * 4)
    rows = x.view(2, 8, 33)
    expected = rows[:, 0]
    for i in range(1, 8):
        expected = expected + rows[:, i]
    assert torch.equal(pattern.reduce("fc", x), expected)


@needs_kernels
@pytest.mark.parametrize("pattern, block_rows", [("1x1", 1), ("2:4", 1), ("4x1", 4), ("2x2", None)])
def test_snip_momentum_updates_go_to_the_kernel_that_fits(pattern, block_rows, monkeypatch):
    """One compiled call per step over both pruned layers, with the element (block_rows 1) or
    the Nx1 row-sum update; 2x2 blocks take block_scores instead."""
    from workbench.pruner import WeightPruningConfig, prepare_pruning

    calls = []
    real = kernels.snip_accumulate_many
    monkeypatch.setattr(
        kernels, "snip_accumulate_many", lambda jobs, *a: calls.append([j[3] for j in jobs]) or real(jobs, *a)
    )
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.Linear(16, 2))
    config = WeightPruningConfig(
        pattern=pattern,
        target_sparsity=0.5,
        pruning_type="snip_momentum",
        start_step=1,
        end_step=3,
        pruning_frequency=1,
    )
    pruning = prepare_pruning(model, config)
    for step in range(3):
        pruning.on_step_begin(step)
        model(torch.randn(8, 16)).square().mean().backward()
        pruning.on_before_optimizer_step()
        pruning.on_after_optimizer_step()
        model.zero_grad()
    # the first step creates the scores; the next two update both pruned layers in one call each
    assert calls == ([[block_rows] * 2] * 2 if block_rows else [])


@needs_kernels
def test_snip_accumulate_declines_what_it_cannot_take():
    w = torch.randn(6, 4)
    assert not kernels.snip_accumulate(torch.zeros(6, 4, dtype=torch.bfloat16), w, w, 0.9, 1.0)
    assert not kernels.snip_accumulate(torch.zeros(3, 2), w, w, 0.9, 1.0)  # block-level scores
    assert not kernels.snip_accumulate(torch.zeros(4, 6).t(), w, w, 0.9, 1.0)  # not contiguous
    assert not kernels.snip_accumulate_blocks(torch.zeros(3, 4), w, w, 4, mean=True, alpha=0.9, beta=1.0)  # 6 % 4
    assert not kernels.snip_accumulate_blocks(torch.zeros(2, 4), w, w, 2, mean=True, alpha=0.9, beta=1.0)  # shape
    score = torch.zeros(6, 4)
    assert kernels.snip_accumulate(score, w, w, 0.9, 1.0) and torch.equal(score, w * w)


@needs_kernels
def test_zero_pruned_is_multiplying_by_the_keep_mask(two_threads):
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(37, 11, generator=gen)
    weight[0, :3] = torch.tensor([float("nan"), float("inf"), -0.0])
    pruned = torch.rand(37, 11, generator=gen) > 0.5
    pruned[0, :3] = True
    expected = weight.clone().mul_(~pruned)
    assert kernels.zero_pruned([weight], [pruned]) == [True]
    assert torch.equal(weight.isnan(), expected.isnan())
    same = ~expected.isnan()
    assert torch.equal(weight[same], expected[same])
    assert torch.equal(weight.signbit(), expected.signbit())  # -0.0 where a negative weight was pruned
    other = torch.randn(11, 37)
    assert kernels.zero_pruned([weight.t(), other, other], [pruned.t(), pruned.view(11, 37), pruned]) == [
        False,
        True,
        False,
    ]  # not contiguous, fine, shapes differ: the caller multiplies the others


@needs_kernels
@pytest.mark.parametrize("pattern", ["4x1", "3x1", "channelx1"])
def test_nx1_blocks_are_zeroed_as_multiplying_by_the_expanded_keep_mask(pattern, two_threads):
    layer = nn.Linear(11, 12)
    p = get_pattern({"pattern": pattern}, {"fc": layer})
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(12, 11, generator=gen)
    weight[0, :3] = torch.tensor([float("nan"), float("inf"), -1.0])
    blocks = torch.rand(p.grid("fc", 12)[0], 11, generator=gen) > 0.5
    blocks[0, :3] = True
    expected = weight * ~p.expand("fc", blocks)
    factors = {}
    p.apply_all({"fc": weight}, {"fc": blocks}, factors)
    assert factors == {}  # a kernel zeroed it straight from the block mask: no keep factor built
    assert torch.equal(weight.isnan(), expected.isnan())
    assert torch.equal(weight.nan_to_num(), expected.nan_to_num())
    assert torch.equal(weight.signbit(), expected.signbit())  # -0.0 where a negative weight was pruned
    assert not kernels.zero_pruned_rows(weight, blocks.t().contiguous(), p.block("fc")[0])  # wrong shape


@needs_kernels
@pytest.mark.parametrize("pattern", ["1x1", "2:4", "4x1"])
def test_pruning_runs_alike_with_and_without_kernels(pattern, monkeypatch, two_threads):
    from workbench.pruner import WeightPruningConfig, prepare_pruning

    def weights(native: bool) -> list[torch.Tensor]:
        monkeypatch.setenv(kernels.ENV_SWITCH, "1" if native else "0")
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        config = WeightPruningConfig(
            pattern=pattern,
            target_sparsity=0.5,
            pruning_type="snip_momentum",
            start_step=1,
            end_step=5,
            pruning_frequency=2,
        )
        prepare_pruning(model, config, optimizer=opt)  # hooks wrap opt.step()
        x = torch.randn(8, 16)
        for _ in range(8):
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
        return [p.detach().clone() for p in model.parameters()]

    native, plain = weights(True), weights(False)
    assert all(torch.equal(a, b) for a, b in zip(native, plain))
    pruned = torch.cat([(native[0] == 0).view(-1), (native[2] == 0).view(-1)])  # the head is not pruned
    assert float(pruned.float().mean()) == pytest.approx(0.5, abs=0.01)


@needs_kernels
def test_a_stale_kernel_build_is_refused_with_a_warning(caplog):
    import importlib

    from workbench.pruner._backend import _kernels

    real = _kernels.SOURCE_HASH
    assert real == kernels.source_hash()  # the build's hash is the source's, not a number kept by hand
    try:
        _kernels.SOURCE_HASH = "0" * 16  # what a .so built before the last change to _kernels.c reports
        with caplog.at_level("WARNING", logger="workbench.pruner._backend.kernels"):
            importlib.reload(kernels)
        assert not kernels.available() and kernels.two_of_four(torch.rand(4, 4)) is None
        assert "out of date" in caplog.text
    finally:
        _kernels.SOURCE_HASH = real
        importlib.reload(kernels)
    assert kernels.available()
