"""Mask invariants of every pattern family, as properties over random shapes and scores."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner.patterns import get_pattern, parse_pattern

CFG = {"pruning_scope": "local", "min_sparsity_ratio_per_op": 0.0, "max_sparsity_ratio_per_op": 1.0}


def _pattern(text, modules, **extra):
    return get_pattern({**CFG, "pattern": text, **extra}, modules)


def _random_scores(pattern, seed):
    g = torch.Generator().manual_seed(seed)
    return {n: pattern.reduce(n, torch.rand(l.rows, l.cols, generator=g)) for n, l in pattern.layouts.items()}


@settings(max_examples=40, deadline=None)
@given(
    n=st.sampled_from([1, 2, 4]),
    m=st.sampled_from([1, 2, 4]),
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    ratio=st.floats(0.0, 0.95),
    seed=st.integers(0, 1000),
)
def test_nxm_blocks_are_all_or_nothing_and_hit_the_ratio(n, m, rows, cols, ratio, seed):
    layer = nn.Linear(cols * m * 2, rows * n * 2)
    p = _pattern(f"{n}x{m}", {"l": layer})
    masks = p.select_pruned(_random_scores(p, seed), ratio, {})
    weight = layer.weight.detach().clone()
    p.apply("l", weight, masks["l"])
    blocks = (weight == 0).view(weight.shape[0] // n, n, weight.shape[1] // m, m)
    zero_blocks = blocks.all(dim=3).all(dim=1)
    any_zero = blocks.any(dim=3).any(dim=1)
    assert torch.equal(zero_blocks, any_zero), "a block is partly pruned"
    assert int(zero_blocks.sum()) == round(ratio * zero_blocks.numel())


@settings(max_examples=40, deadline=None)
@given(
    nm=st.sampled_from([(2, 4), (1, 4), (5, 8), (1, 2), (3, 8)]),
    groups=st.integers(1, 6),
    rows=st.integers(1, 6),
    seed=st.integers(0, 1000),
    full=st.booleans(),
)
def test_nm_groups_hold_exactly_n_zeros(nm, groups, rows, seed, full):
    n, m = nm
    layer = nn.Linear(groups * m, rows)
    p = _pattern(f"{n}:{m}", {"l": layer})
    ratio = n / m if full else n / m / 2
    masks = p.select_pruned(_random_scores(p, seed), ratio, {})
    per_group = masks["l"].view(rows, groups, m).sum(-1)
    if full:
        assert bool((per_group == n).all())
    assert set(per_group.unique().tolist()) <= {0, n}
    assert int((per_group == n).sum()) == round(ratio * m / n * rows * groups)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    nm=st.sampled_from([(2, 4), (1, 4), (3, 4), (5, 8), (2, 8), (3, 16)]),
    rows=st.integers(1, 5),
    groups=st.integers(1, 5),
    levels=st.integers(2, 6),
    seed=st.integers(0, 1000),
)
def test_nm_group_ranking_equals_a_stable_sort_even_with_ties(kernel_path, nm, rows, groups, levels, seed):
    from workbench.pruner._backend.groups import lowest_n_per_group

    n, m = nm
    scores = torch.randint(0, levels, (rows, groups * m), generator=torch.Generator().manual_seed(seed)).float()
    score, picked = lowest_n_per_group(scores, n, m)
    order = scores.view(-1, m).argsort(dim=1, stable=True)[:, :n]  # ties go to the lower index
    expected = torch.zeros(rows * groups, m, dtype=torch.bool).scatter_(1, order, True)
    assert torch.equal(picked, expected)
    assert torch.equal(score.reshape(-1), scores.view(-1, m).gather(1, order).sum(dim=1))


def test_nm_prunes_the_lowest_scores_of_each_pruned_group():
    layer = nn.Linear(8, 2)
    p = _pattern("2:4", {"l": layer})
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 9.0, 9.0, 0.5, 0.1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    mask = p.select_pruned({"l": scores}, 0.5, {})["l"]
    assert mask[0].tolist() == [False, True, False, True, False, False, True, True]
    assert mask[1].tolist() == [True, True, False, False, True, True, False, False]


@pytest.mark.parametrize("text,axis", [("channelx1", 0), ("1xchannel", 1)])
def test_channel_patterns_zero_whole_columns_or_rows(text, axis):
    layer = nn.Linear(12, 8)
    p = _pattern(text, {"l": layer})
    masks = p.select_pruned(_random_scores(p, 3), 0.5, {})
    weight = layer.weight.detach().clone()
    p.apply("l", weight, masks["l"])
    zero_lines = (weight == 0).all(dim=axis)
    any_zero = (weight == 0).any(dim=axis)
    assert torch.equal(zero_lines, any_zero)
    assert int(zero_lines.sum()) == zero_lines.numel() // 2


def test_conv_view_is_channels_last_and_blocks_follow_it():
    conv = nn.Conv2d(4, 8, 3)
    p = _pattern("4x1", {"c": conv})
    layout = p.layouts["c"]
    assert (layout.rows, layout.cols) == (8, 36)
    w = torch.arange(8 * 4 * 9, dtype=torch.float32).view(8, 4, 3, 3)
    w2d = layout.to_2d(w)
    assert torch.equal(w2d[:, 0:4], w[:, :, 0, 0])  # first 4 columns = in-channels at kernel (0, 0)
    assert torch.equal(layout.from_2d(w2d), w)
    pruned = torch.zeros(2, 36, dtype=torch.bool)
    pruned[1, 5] = True  # rows 4..7, column 5 = in-channel 1 at kernel (0, 1)
    weight = torch.ones(8, 4, 3, 3)
    p.apply("c", weight, pruned)
    assert weight[4:, 1, 0, 1].eq(0).all() and int((weight == 0).sum()) == 4


def test_layers_that_do_not_fit_are_skipped_with_the_reason(caplog):
    p = _pattern("4x1", {"ok": nn.Linear(8, 8), "odd": nn.Linear(8, 6)})
    assert list(p.modules) == ["ok"]
    assert "6x8" in p.invalid_layers["odd"] and "4x1" in p.invalid_layers["odd"]
    assert "odd" in caplog.text
    q = _pattern("2:4", {"c": nn.Conv2d(3, 4, 3)})
    assert "27 columns" in q.invalid_layers["c"]


@pytest.mark.parametrize("reduce_type,expected", [("mean", 2.5), ("sum", 10.0), ("max", 4.0)])
def test_block_score_reduction(reduce_type, expected):
    p = get_pattern({**CFG, "pattern": "2x2", "criterion_reduce_type": reduce_type}, {"l": nn.Linear(2, 2)})
    assert p.reduce("l", torch.tensor([[1.0, 2.0], [3.0, 4.0]])).item() == expected


@pytest.mark.parametrize("bad", ["4y1", "0x4", "channelxchannel", "4:2", "2:2", "", "x1"])
def test_bad_pattern_strings_raise_value_error_naming_the_value(bad):
    with pytest.raises(ValueError, match="pattern"):
        parse_pattern(bad)


def test_global_scope_ranks_across_layers():
    small, big = nn.Linear(4, 4), nn.Linear(4, 4)
    p = get_pattern({**CFG, "pattern": "1x1", "pruning_scope": "global"}, {"a": small, "b": big})
    scores = {"a": torch.full((4, 4), 1.0), "b": torch.full((4, 4), 2.0)}
    masks = p.select_pruned(scores, 0.5, {})
    assert bool(masks["a"].all()) and not bool(masks["b"].any())


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    ratio=st.floats(0.0, 0.95),
    lo=st.floats(0.0, 0.4),
    hi=st.floats(0.5, 1.0),
    seed=st.integers(0, 100),
)
def test_global_min_max_per_op_respected_and_total_exact(sizes, ratio, lo, hi, seed):
    modules = {f"l{i}": nn.Linear(4, 4 * s) for i, s in enumerate(sizes)}
    p = get_pattern(
        {"pattern": "4x1", "pruning_scope": "global", "min_sparsity_ratio_per_op": lo, "max_sparsity_ratio_per_op": hi},
        modules,
    )
    masks = p.select_pruned(_random_scores(p, seed), ratio, {})
    counts = {n: int(m.sum()) for n, m in masks.items()}
    total = sum(m.numel() for m in masks.values())
    k = round(ratio * total)
    lo_sum = sum(math.ceil(lo * m.numel() - 1e-9) for m in masks.values())
    hi_sum = sum(math.floor(hi * m.numel() + 1e-9) for m in masks.values())
    for name, mask in masks.items():
        units = mask.numel()
        assert counts[name] <= math.floor(hi * units + 1e-9)
        if k >= lo_sum:  # floors only bind when the schedule asks for at least their sum
            assert counts[name] >= math.ceil(lo * units - 1e-9)
    assert sum(counts.values()) == min(k, hi_sum)


def test_min_per_op_never_pushes_above_the_scheduled_ratio():
    modules = {"a": nn.Linear(16, 16), "b": nn.Linear(16, 16)}
    for scope in ("global", "local"):
        p = get_pattern({"pattern": "4x1", "pruning_scope": scope, "min_sparsity_ratio_per_op": 0.2}, modules)
        scores = _random_scores(p, 0)
        assert not any(bool(m.any()) for m in p.select_pruned(scores, 0.0, {}).values())
        counts = [int(m.sum()) for m in p.select_pruned(scores, 0.1, {}).values()]
        assert counts == ([round(0.1 * 64)] * 2 if scope == "local" else counts) and sum(counts) <= 13
        if scope == "global":
            assert sum(counts) == round(0.1 * 128)
