"""Block scores and block masking on every pattern, layer type and weight dtype give what
``_backend.reference`` defines: bit for bit on the kernels, and through the criteria and
patterns on either path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import _backend
from workbench.pruner._backend import blocks, reference
from workbench.pruner.criteria import get_criterion
from workbench.pruner.layout import Layout
from workbench.pruner.patterns import get_pattern

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
_SHAPES = st.one_of(
    st.tuples(st.integers(1, 12), st.integers(1, 12)),  # Linear [out, in]
    st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3)),  # Conv2d
    st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4)),  # Conv1d
)


def _weight(shape, dtype, seed, specials=False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen) * torch.exp(torch.randn(shape, generator=gen) * 3)  # order matters
    w[torch.rand(shape, generator=gen) < 0.2] = 0.0
    if specials:
        w.view(-1)[: min(3, w.numel())] = torch.tensor([float("nan"), float("inf"), -1.0])[: w.numel()]
    return w.to(dtype)


def _divisor(data, n: int, label: str) -> int:
    return data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]), label=label)


@SETTINGS
@given(
    data=st.data(),
    shape=_SHAPES,
    dtype=st.sampled_from(_DTYPES),
    element=st.sampled_from(sorted(blocks.ELEMENTS)),
    how=st.sampled_from(sorted(blocks.REDUCTIONS)),
    accumulate=st.booleans(),
    alpha=st.sampled_from([0.9, 0.0, 0.37]),
    beta=st.sampled_from([1.0, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_block_scores_are_the_reference_or_decline(
    kernel_path, data, shape, dtype, element, how, accumulate, alpha, beta, seed
):
    layout = Layout(shape)
    block = (_divisor(data, layout.rows, "n"), _divisor(data, layout.cols, "m"))
    w, g = _weight(shape, dtype, seed), _weight(shape, dtype, seed + 1)
    grid = (layout.rows // block[0], layout.cols // block[1])
    score = torch.rand(grid, generator=torch.Generator().manual_seed(seed))
    out = score.clone() if accumulate else None
    got = _backend.block_scores(w, g, element, block, how, out=out, accumulate=accumulate, alpha=alpha, beta=beta)
    if kernel_path != "kernels":
        assert got is None and (out is None or torch.equal(out, score))
        return
    want = reference.block_scores(
        layout.to_2d(w),
        layout.to_2d(g),
        element,
        block,
        how,
        score=score if accumulate else None,
        alpha=alpha,
        beta=beta,
    )
    assert got.dtype == torch.float32 and (out is None or got is out)
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@SETTINGS
@given(data=st.data(), shape=_SHAPES, dtype=st.sampled_from(_DTYPES), seed=st.integers(0, 10_000))
def test_zero_blocks_is_the_reference_or_declines(kernel_path, data, shape, dtype, seed):
    layout = Layout(shape)
    block = (_divisor(data, layout.rows, "n"), _divisor(data, layout.cols, "m"))
    weight = _weight(shape, dtype, seed, specials=True)
    pruned = torch.rand(layout.rows // block[0], layout.cols // block[1]) < 0.5
    before = weight.clone()
    done = _backend.zero_blocks(weight, pruned, block)
    assert done == (kernel_path == "kernels")
    want = reference.zero_blocks(layout.to_2d(before), pruned, block) if done else layout.to_2d(before)
    got = layout.to_2d(weight)
    assert got.dtype == dtype
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
    # -0.0 where a negative weight was pruned (a NaN's sign is PyTorch's choice: bfloat16 ops
    # turn every NaN into +NaN)
    assert torch.equal(got.signbit() & ~got.isnan(), want.signbit() & ~want.isnan())


def test_the_block_kernels_decline_what_they_cannot_take():
    w = torch.randn(8, 6)
    assert blocks.block_scores(w.t(), None, "magnitude", (1, 1), "sum") is None  # not contiguous
    assert blocks.block_scores(w.double(), None, "magnitude", (1, 1), "sum") is None
    assert blocks.block_scores(w, None, "snip", (2, 2), "sum") is None  # no gradient
    assert blocks.block_scores(w, w, "snip", (3, 2), "sum") is None  # 8 rows in blocks of 3
    bf16 = torch.zeros(4, 3, dtype=torch.bfloat16)
    assert blocks.block_scores(w, None, "magnitude", (2, 2), "sum", out=bf16) is None
    assert blocks.block_scores(w, None, "magnitude", (2, 2), "sum", accumulate=True) is None  # nothing to add to
    assert not blocks.zero_blocks(w, torch.zeros(4, 2, dtype=torch.bool), (2, 2))  # not the grid's shape
    assert not blocks.zero_blocks(w, torch.zeros(4, 3, dtype=torch.uint8), (2, 2))


def test_column_offsets_map_the_channels_last_view_onto_the_weight():
    w = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2)
    view = Layout(tuple(w.shape)).to_2d(w)
    offsets = blocks.column_offsets(tuple(w.shape))
    assert torch.equal(w.reshape(2, -1)[:, offsets], view)
    assert blocks.column_offsets((4, 5)) is None


_LAYERS = {
    "linear": lambda: nn.Linear(24, 16),
    "conv": lambda: nn.Conv2d(8, 16, 3),  # 2-D view 16 x 72
    "conv1x1": lambda: nn.Conv2d(24, 16, 1),  # its own 2-D view, 16 x 24
}
_PATTERNS = ["1x1", "4x1", "2x2", "1x4", "4x4", "channelx1", "1xchannel", "2:4"]


@pytest.mark.parametrize("criterion", ["magnitude", "gradient", "snip", "snip_momentum"])
@pytest.mark.parametrize("pattern", _PATTERNS)
@pytest.mark.parametrize("layer", sorted(_LAYERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_criteria_scores_are_the_reference_on_either_path(kernel_path, criterion, pattern, layer, dtype):
    """Three steps of each criterion (the first creates the scores) against the reference: bit
    for bit on the kernels; the PyTorch path sums multi-element blocks in its own order."""
    torch.manual_seed(0)
    layers = {"l": _LAYERS[layer]().to(dtype)}
    p = get_pattern({"pattern": pattern, "criterion_reduce_type": "mean"}, layers)
    c = get_criterion({"criterion_type": criterion}, layers, p)
    layout = Layout(tuple(layers["l"].weight.shape))
    block, how = p.block("l"), p.reduce_type
    want = None
    for _ in range(3):
        weight = layers["l"].weight
        weight.grad = torch.randn(weight.shape).to(dtype)
        c.on_step_begin() if criterion == "magnitude" else c.on_before_optimizer_step()
        w2d, g2d = layout.to_2d(weight.detach()), layout.to_2d(weight.grad)
        element = "snip" if criterion == "snip_momentum" else criterion
        new = reference.block_scores(w2d, g2d, element, block, how)
        if criterion != "snip_momentum" or want is None:
            want = new
        else:
            want = reference.block_scores(w2d, g2d, element, block, how, score=want, alpha=0.9, beta=1.0)
        exact = kernel_path == "kernels" or block[0] * block[1] == 1 or (block[1] == 1 and block[0] <= 16)
        tol = 0 if exact else 1e-5
        torch.testing.assert_close(c.scores["l"], want, rtol=tol, atol=0)


@pytest.mark.parametrize("pattern", _PATTERNS)
@pytest.mark.parametrize("layer", sorted(_LAYERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_masks_zero_the_reference_on_either_path(kernel_path, pattern, layer, dtype):
    torch.manual_seed(1)
    layers = {"l": _LAYERS[layer]().to(dtype)}
    p = get_pattern({"pattern": pattern}, layers)
    layout = p.layouts["l"]
    masks = p.select_pruned({"l": torch.rand(layout.rows, layout.cols)}, 0.5, {})
    weight = layers["l"].weight.detach()
    factors: dict[str, torch.Tensor] = {}
    for _ in range(2):  # the second step reuses what the first cached in ``factors``
        weight.copy_(torch.randn(weight.shape))
        before = weight.clone()
        p.apply_all({"l": weight}, masks, factors)
        want = layout.to_2d(before) * ~layout.to_2d(p.expand("l", masks["l"]))
        assert torch.equal(layout.to_2d(weight), want)
        assert 0.4 < float((weight == 0).float().mean()) < 0.6


@pytest.mark.skipif(not _backend.kernels_available(), reason="C kernels not built (no compiler?)")
@pytest.mark.parametrize("threads", [2, 3, 7])
@pytest.mark.parametrize(
    "shape, block",
    [
        ((12, 5, 3, 3), (2, 1)),
        ((12, 5, 3, 3), (12, 1)),
        ((12, 5, 3, 3), (1, 45)),
        ((12, 4, 3, 3), (2, 2)),  # blocks of inputs at one kernel position: read in runs
        ((8, 6, 2, 3), (4, 3)),
        ((4, 6, 5), (1, 2)),
        ((6, 10), (3, 2)),
        ((2, 9), (2, 3)),
    ],
)
def test_block_results_do_not_depend_on_how_the_work_is_shared(monkeypatch, threads, shape, block):
    """Shares of block rows, or of block columns where there are fewer block rows than threads
    (channelx1), in the weight's order or the view's, give the reference's scores and masks."""
    monkeypatch.setattr(_backend.kernels, "SPLIT", 1)
    monkeypatch.setattr(blocks, "COLUMN_SHARE", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    layout = Layout(shape)
    w, g = _weight(shape, torch.float32, threads), _weight(shape, torch.float32, threads + 1)
    for how in blocks.REDUCTIONS:
        got = _backend.block_scores(w, g, "snip", block, how)
        assert torch.equal(got, reference.block_scores(layout.to_2d(w), layout.to_2d(g), "snip", block, how))
    pruned = torch.rand(layout.rows // block[0], layout.cols // block[1]) < 0.5
    want = reference.zero_blocks(layout.to_2d(w), pruned, block)
    assert _backend.zero_blocks(w, pruned, block)
    assert torch.equal(layout.to_2d(w), want)


def test_every_float16_value_is_read_exactly(kernel_path):
    """The kernels' branch-free half-to-float conversion, over all 65536 bit patterns."""
    halves = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.float16).view(4, -1)
    got = _backend.block_scores(halves, None, "value", (1, 1), "sum")
    if got is None:
        assert kernel_path != "kernels"
        return
    want = halves.float()
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.nan_to_num(), want.nan_to_num())
    assert torch.equal(got.signbit() & ~got.isnan(), want.signbit() & ~want.isnan())


@SETTINGS
@given(data=st.data(), shape=_SHAPES, seed=st.integers(0, 10_000))
def test_weight_order_masks_are_the_expanded_masks(kernel_path, data, shape, seed):
    layout = Layout(shape)
    block = (_divisor(data, layout.rows, "n"), _divisor(data, layout.cols, "m"))
    gen = torch.Generator().manual_seed(seed)
    pruned = torch.rand(layout.rows // block[0], layout.cols // block[1], generator=gen) < 0.5
    if data.draw(st.booleans(), label="some block rows prune nothing"):
        pruned[::2] = False
    got = _backend.weight_order_mask(pruned, shape, block)
    if kernel_path != "kernels":
        assert got is None
        return
    full = pruned.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)
    assert got.is_contiguous() and torch.equal(got, layout.from_2d(full))


@pytest.mark.skipif(not _backend.kernels_available(), reason="C kernels not built (no compiler?)")
@pytest.mark.parametrize("pattern", ["1x1", "4x1", "channelx1"])
def test_1x1_convolutions_take_the_fused_passes_of_linear_weights(monkeypatch, pattern):
    """A 1x1 convolution's weight is its own 2-D view: its snip_momentum update and its masking
    run the fused Nx1 passes of Linear weights (same results: the tests above)."""
    calls = []
    for module, name in ((_backend, "accumulate_snip_many"), (_backend.masking, "zero_by_mask_many")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    layers = {"l": nn.Conv2d(24, 16, 1)}
    p = get_pattern({"pattern": pattern}, layers)
    c = get_criterion({"criterion_type": "snip_momentum"}, layers, p)
    for _ in range(2):  # the first step creates the scores, the second accumulates
        layers["l"].weight.grad = torch.randn(layers["l"].weight.shape)
        c.on_before_optimizer_step()
    assert calls == ["accumulate_snip_many"]
    masks = p.select_pruned(c.scores, 0.5, {})
    p.apply_all({"l": layers["l"].weight.detach()}, masks, {})
    assert calls == ["accumulate_snip_many", "zero_by_mask_many"]
    assert 0.4 < float((layers["l"].weight == 0).float().mean()) < 0.6
