"""The counting search behind global pruning: exact k-lowest masks, every branch forced small."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.pruner._backend import probes, threshold_search
from workbench.pruner._backend.counting import select_by_counting
from workbench.pruner._backend.selection import select_lowest


def _reference(scores: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Masks of the first k scores in (value, layer, index) order."""
    items = sorted((float(v), i, j) for i, s in enumerate(scores) for j, v in enumerate(s.tolist()))
    masks = [torch.zeros(s.numel(), dtype=torch.bool) for s in scores]
    for _, i, j in items[:k]:
        masks[i][j] = True
    return masks


@pytest.fixture
def tiny(monkeypatch):
    """Rows of 8, a 16-point sample and few in-bracket scores, so small inputs take every path
    (the same constants for every generated input, so a function-scoped fixture is fine)."""
    monkeypatch.setattr(probes, "ROW", 8)
    monkeypatch.setattr(threshold_search, "_SAMPLE", 16)
    monkeypatch.setattr(threshold_search, "_FEW", 4)


_VALUES = {
    "continuous": st.floats(-1e3, 1e3, allow_nan=False, width=32),
    "ties": st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, -3.0]),
    "tiny": st.floats(0, 2.0**-126, allow_nan=False, allow_subnormal=True, width=32),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), layers=st.integers(1, 4), kind=st.sampled_from(sorted(_VALUES)))
def test_masks_equal_the_sorted_reference(tiny, kernel_path, data, layers, kind):
    scores = []
    for i in range(layers):
        n = data.draw(st.integers(1, 120), label=f"n{i}")
        values = data.draw(st.lists(_VALUES[kind], min_size=n, max_size=n), label=f"values{i}")
        scores.append(torch.tensor(values, dtype=torch.float32))
    k = data.draw(st.integers(0, sum(s.numel() for s in scores)), label="k")
    result = select_by_counting(scores, k)
    assert result is not None, "the probe budget ran out"
    masks, counts = result
    expected = _reference(scores, k)
    assert [m.tolist() for m in masks] == [e.tolist() for e in expected]
    assert counts == [int(e.sum()) for e in expected]


def test_large_continuous_scores_need_few_probes(monkeypatch):
    g = torch.Generator().manual_seed(0)
    scores = [torch.randn(200_000, generator=g).abs() * (i + 1) for i in range(3)]
    seen: list[float] = []
    original = probes.Counter.probe
    monkeypatch.setattr(probes.Counter, "probe", lambda self, value: seen.append(value) or original(self, value))
    for k in (1, 12_345, 300_000, 599_999):
        seen.clear()
        masks, counts = select_by_counting(scores, k)
        assert sum(counts) == k and len(seen) <= 4
        chosen = torch.cat([s[m] for s, m in zip(scores, masks)])
        rest = torch.cat([s[~m] for s, m in zip(scores, masks)])
        assert chosen.max() <= rest.min()


def test_half_precision_scores_are_ranked_exactly(tiny):
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float16, torch.bfloat16):
        scores = [torch.rand(50, generator=g).to(dtype), torch.rand(70, generator=g).to(dtype)]
        masks, _ = select_by_counting(scores, 37)
        assert [m.tolist() for m in masks] == [e.tolist() for e in _reference([s.float() for s in scores], 37)]


def test_unsupported_inputs_fall_back_and_select_lowest_stays_exact(tiny, monkeypatch):
    double = [torch.rand(40, dtype=torch.float64)]
    assert select_by_counting(double, 10) is None
    with_nan = [torch.tensor([1.0, float("nan"), 3.0, 0.5])]
    assert select_by_counting(with_nan, 3) is None  # the virtual top needs the maximum
    monkeypatch.setattr(threshold_search, "_MAX_PROBES", 1)
    scores = [torch.rand(500), torch.rand(300)]
    assert select_by_counting(scores, 321) is None
    masks, counts, _ = select_lowest(scores, 321)
    assert [m.tolist() for m in masks] == [e.tolist() for e in _reference(scores, 321)]
    assert sum(counts) == 321
