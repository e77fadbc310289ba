"""The exact k-lowest selection behind global pruning, against a brute-force reference."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.pruner._backend import reference, selection
from workbench.pruner._backend.selection import select_lowest


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), layers=st.integers(1, 4), discrete=st.booleans())
def test_matches_reference_with_ties_and_bounds(kernel_path, data, layers, discrete):
    scores = []
    for i in range(layers):
        n = data.draw(st.integers(1, 30), label=f"n{i}")
        vals = data.draw(st.lists(st.integers(0, 4) if discrete else st.floats(0, 1), min_size=n, max_size=n))
        scores.append(torch.tensor(vals, dtype=torch.float32))
    lo = [data.draw(st.integers(0, s.numel() // 2)) for s in scores]
    hi = [data.draw(st.integers(l, s.numel())) for l, s in zip(lo, scores)]
    k = data.draw(st.integers(0, sum(s.numel() for s in scores)))
    masks, counts, _ = select_lowest(scores, k, lo=lo, hi=hi)
    assert counts == reference.select_lowest(scores, k, lo=lo, hi=hi)[1]
    for mask, count, s in zip(masks, counts, scores):
        assert int(mask.sum()) == count
        if 0 < count < s.numel():
            assert s[mask].max() <= s[~mask].min()


def test_large_inputs_use_the_sample_bracket_and_stay_exact(monkeypatch):
    monkeypatch.setattr(selection, "_SAMPLE", 64)  # force a narrow bracket over many elements
    g = torch.Generator().manual_seed(0)
    scores = [torch.rand(5000, generator=g), torch.rand(3000, generator=g) * 0.5]
    for k in (0, 1, 1234, 4000, 7999, 8000):
        masks, counts, _ = select_lowest(scores, k)
        assert sum(counts) == k
        everything = torch.cat(scores)
        if 0 < k < everything.numel():
            chosen = torch.cat([s[m] for s, m in zip(scores, masks)])
            rest = torch.cat([s[~m] for s, m in zip(scores, masks)])
            assert chosen.max() <= rest.min()


def test_ties_are_broken_by_layer_then_index():
    scores = [torch.zeros(4), torch.zeros(4)]
    masks, counts, _ = select_lowest(scores, 3)
    assert counts == [3, 0]
    assert masks[0].tolist() == [True, True, True, False]


def test_capped_layers_are_reported():
    scores = [torch.zeros(10), torch.ones(10)]
    _, counts, capped = select_lowest(scores, 10, hi=[6, 10])
    assert counts == [6, 4] and capped == [True, False]


def test_caps_that_push_another_layer_over_its_cap_are_resolved_by_counting(monkeypatch):
    from workbench.pruner._backend import counting, probes

    calls, built = [], []
    real, real_masks = counting.count_lowest, probes.Counter.masks
    monkeypatch.setattr(selection, "count_lowest", lambda flat, k: calls.append(len(flat)) or real(flat, k))
    monkeypatch.setattr(
        probes.Counter, "masks", lambda self, values: built.append(len(values)) or real_masks(self, values)
    )
    g = torch.Generator().manual_seed(0)
    # layer 0 has the lowest scores, layer 1 the next lowest: capping 0 sends the threshold
    # into layer 1, which then exceeds its own cap; layer 2 takes the rest
    scores = [
        torch.rand(400, generator=g) * 0.1,
        torch.rand(400, generator=g) * 0.5 + 0.1,
        torch.rand(400, generator=g),
    ]
    lo, hi = [0, 0, 0], [100, 250, 400]
    masks, counts, capped = select_lowest(scores, 600, lo=lo, hi=hi)
    assert counts == reference.select_lowest(scores, 600, lo=lo, hi=hi)[1] == [100, 250, 250]
    assert capped == [True, True, False]
    assert calls[:3] == [3, 2, 1], "expected two rounds of counting before the capped layers' own ranking"
    assert sorted(built) == [1, 1, 1], "each layer's mask is built once: none for the rounds that capped"
    for mask, s in zip(masks, scores):
        assert s[mask].max() <= s[~mask].min()
