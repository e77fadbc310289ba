"""The pruner's fast paths give what ``_backend.reference`` defines, on the kernels and on PyTorch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import _backend
from workbench.pruner._backend import kernels, probes, reference, selection, threshold_search
from workbench.pruner.criteria import get_criterion
from workbench.pruner.patterns import get_pattern
from workbench.pruner.patterns.base import BasePattern

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_SPECIALS = [0.0, -0.0, 1.0, 2.0, float("inf"), float("-inf")]


@pytest.fixture
def small(monkeypatch):
    """Rows of 8, tiny samples and few in-bracket scores, so small inputs take every branch of
    the counting search and the sample bracket (the same constants for every generated input)."""
    monkeypatch.setattr(probes, "ROW", 8)
    monkeypatch.setattr(threshold_search, "_SAMPLE", 16)
    monkeypatch.setattr(threshold_search, "_FEW", 4)
    monkeypatch.setattr(selection, "_SAMPLE", 16)


def _tensor(data, shape: tuple[int, ...], kind: str, label: str) -> torch.Tensor:
    numel = 1
    for d in shape:
        numel *= d
    values = {
        "levels": st.integers(0, 3).map(float),
        "floats": st.floats(-1e3, 1e3, width=32),
        "specials": st.sampled_from(_SPECIALS),
    }[kind]
    return torch.tensor(data.draw(st.lists(values, min_size=numel, max_size=numel), label=label)).view(shape)


_SHAPES = st.one_of(st.tuples(st.integers(1, 40)), st.tuples(st.integers(1, 7), st.integers(1, 7)))
_KINDS = st.sampled_from(["levels", "floats", "specials"])


@SETTINGS
@given(data=st.data(), layers=st.integers(1, 4), kind=_KINDS, bounded=st.booleans())
def test_select_lowest_equals_the_reference(small, kernel_path, data, layers, kind, bounded):
    scores = [_tensor(data, data.draw(_SHAPES, label=f"shape{i}"), kind, f"s{i}") for i in range(layers)]
    sizes = [s.numel() for s in scores]
    lo = hi = None
    if bounded:
        lo = [data.draw(st.integers(0, n // 2), label="lo") for n in sizes]
        hi = [data.draw(st.integers(low, n), label="hi") for low, n in zip(lo, sizes)]
    k = data.draw(st.integers(-2, sum(sizes) + 2), label="k")  # outside the bounds: clamped
    masks, counts, capped = _backend.select_lowest(scores, k, lo=lo, hi=hi)
    want_masks, want_counts, want_capped = reference.select_lowest(scores, k, lo=lo, hi=hi)
    assert counts == want_counts
    if not lo or not any(lo):  # with floors, which walk sets ``capped`` depends on the path taken
        assert capped == want_capped
    for mask, want, s in zip(masks, want_masks, scores):
        assert mask.shape == s.shape and mask.dtype == torch.bool
        assert torch.equal(mask, want)


@SETTINGS
@given(data=st.data(), kind=_KINDS, shape=_SHAPES)
def test_lowest_mask_equals_the_reference(small, kernel_path, data, kind, shape):
    score = _tensor(data, shape, kind, "score")
    k = data.draw(st.integers(0, score.numel()), label="k")
    assert torch.equal(_backend.lowest_mask(score, k), reference.lowest_mask(score, k))


def _groups(nm, rows, groups, kind, seed) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (rows, groups * nm[1])
    if kind == "levels":
        return torch.randint(0, 3, shape, generator=gen).float()
    scores = torch.randn(shape, generator=gen) * torch.exp(torch.randn(shape, generator=gen) * 4)
    if kind == "specials":
        where = torch.rand(shape, generator=gen) < 0.4
        scores[where] = torch.tensor(_SPECIALS)[torch.randint(0, len(_SPECIALS), shape, generator=gen)][where]
    return scores


_NM = st.sampled_from([(2, 4), (1, 4), (3, 4), (4, 4), (1, 2), (5, 8), (2, 8), (3, 16)])


@SETTINGS
@given(nm=_NM, rows=st.integers(1, 6), groups=st.integers(1, 9), kind=_KINDS, seed=st.integers(0, 10_000))
def test_lowest_n_per_group_equals_the_reference(kernel_path, nm, rows, groups, kind, seed):
    n, m = nm
    scores, other = _groups(nm, rows, groups, kind, seed), _groups(nm, rows + 1, groups, kind, seed + 1)
    workspace = _backend.Workspace()
    score, picked = _backend.lowest_n_per_group(scores, n, m, workspace)
    _backend.lowest_n_per_group(other, n, m, workspace)  # reuses the scratch: must not touch the results
    want_score, want_picked = reference.lowest_n_per_group(scores, n, m)
    assert torch.equal(picked, want_picked)
    # the networks add the n lowest from the lowest up, as the reference does (inf - inf is NaN)
    rtol = 0 if m <= 8 else 1e-5
    torch.testing.assert_close(score, want_score, rtol=rtol, atol=0, equal_nan=True)


@SETTINGS
@given(
    m=st.sampled_from([2, 3, 4, 8, 16]), groups=st.integers(1, 50), seed=st.integers(0, 10_000), strided=st.booleans()
)
def test_mask_groups_equals_the_reference(m, groups, seed, strided):
    gen = torch.Generator().manual_seed(seed)
    picked = torch.rand(groups, 2 * m if strided else m, generator=gen) < 0.5
    picked = picked[:, ::2] if strided else picked
    chosen = torch.rand(groups, generator=gen) < 0.5
    expected = reference.mask_groups(picked, chosen)
    assert torch.equal(_backend.mask_groups(picked.clone(), chosen), expected)


@SETTINGS
@given(
    block=st.sampled_from([(1, 1), (2, 1), (4, 1), (3, 1), (16, 1), (17, 1), (2, 2), (1, 4), (3, 5)]),
    grid=st.tuples(st.integers(1, 5), st.integers(1, 6)),
    how=st.sampled_from(["mean", "sum", "max"]),
    seed=st.integers(0, 10_000),
)
def test_reduce_blocks_equals_the_reference(block, grid, how, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (grid[0] * block[0], grid[1] * block[1])
    x = torch.rand(shape, generator=gen) * torch.exp(torch.randn(shape, generator=gen) * 4)  # order matters
    got, want = _backend.reduce_blocks(x, *block, how), reference.reduce_blocks(x, *block, how)
    if how == "max" or _backend.row_order_blocks(*block, how) or block == (1, 1):
        assert torch.equal(got, want)  # what the compiled block update must reproduce bit for bit
    else:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=0)


def _snip_inputs(rows, cols, block_rows, seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows * block_rows, cols, generator=gen) * torch.exp(
        torch.randn(rows * block_rows, cols, generator=gen) * 3
    )
    w[torch.rand(w.shape, generator=gen) < 0.3] = 0.0
    g = torch.randn(w.shape, generator=gen)
    return w, g, torch.rand(rows, cols, generator=gen)


@SETTINGS
@given(
    block_rows=st.sampled_from([1, 2, 3, 4, 16]),
    rows=st.integers(1, 5),
    cols=st.integers(1, 70),
    mean=st.booleans(),
    alpha=st.sampled_from([0.9, 0.0, 0.37]),
    beta=st.sampled_from([1.0, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_accumulate_snip_is_the_reference_or_declines(kernel_path, block_rows, rows, cols, mean, alpha, beta, seed):
    w, g, score = _snip_inputs(rows, cols, block_rows, seed)
    before = score.clone()
    done = _backend.accumulate_snip(score, w, g, alpha, beta, block_rows=block_rows, mean=mean)
    assert done == (kernel_path == "kernels")  # contiguous float32 of fitting shapes: the kernel takes them
    want = reference.accumulate_snip(before, w, g, alpha, beta, block_rows=block_rows, mean=mean)
    assert torch.equal(score, want if done else before)


@pytest.mark.parametrize("pattern", ["1x1", "4x1", "2x2", "2:4"])
def test_snip_momentum_scores_equal_the_reference_on_either_path(kernel_path, pattern):
    """The criterion's chunked PyTorch update (and the kernel where it applies) against the
    reference, over three steps (the first one creates the scores)."""
    layers = {"fc": nn.Linear(24, 32)}
    p = get_pattern({"pattern": pattern, "criterion_reduce_type": "sum"}, layers)
    criterion = get_criterion({"criterion_type": "snip_momentum"}, layers, p)
    bn = p.block("fc")[0] if hasattr(p, "block") else 1
    want = None
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        layers["fc"].weight.grad = torch.randn(32, 24, generator=gen)
        criterion.on_before_optimizer_step()
        w, g = layers["fc"].weight.detach(), layers["fc"].weight.grad
        if pattern == "2x2":
            new = reference.reduce_blocks((w * g).abs(), 2, 2, "sum")
            want = new if want is None else torch.add(new, want, alpha=0.9)
        else:
            zero = torch.zeros(32 // bn, 24)
            want = reference.accumulate_snip(
                zero if want is None else want, w, g, 0.0 if want is None else 0.9, 1.0, block_rows=bn
            )
        torch.testing.assert_close(criterion.scores["fc"], want, rtol=1e-6 if pattern == "2x2" else 0, atol=0)


@SETTINGS
@given(
    block_rows=st.sampled_from([1, 2, 3, 8]),
    rows=st.integers(1, 6),
    cols=st.integers(1, 40),
    seed=st.integers(0, 10_000),
)
def test_zero_by_mask_is_the_reference_or_declines(kernel_path, block_rows, rows, cols, seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows * block_rows, cols, generator=gen)
    weight.view(-1)[: min(3, weight.numel())] = torch.tensor([float("nan"), float("inf"), -1.0])[: weight.numel()]
    pruned = torch.rand(rows, cols, generator=gen) < 0.5
    mask = pruned if block_rows > 1 else pruned.view(weight.shape)
    before = weight.clone()
    done = _backend.zero_by_mask(weight, mask, block_rows=block_rows)
    assert done == (kernel_path == "kernels")
    want = reference.zero_by_mask(before, mask, block_rows=block_rows) if done else before
    assert torch.equal(weight.isnan(), want.isnan())
    assert torch.equal(weight.nan_to_num(), want.nan_to_num())
    assert torch.equal(weight.signbit(), want.signbit())  # -0.0 where a negative weight was pruned


_LAYER = st.tuples(
    st.sampled_from([1, 2, 3, 4, 16]),  # block rows
    st.integers(1, 6),  # rows of blocks
    st.integers(1, 40),  # columns
    st.booleans(),  # mean
    st.sampled_from(["fits", "transposed", "float64"]),
)


@SETTINGS
@given(
    layers=st.lists(_LAYER, min_size=1, max_size=5),
    alpha=st.sampled_from([0.9, 0.0, 0.37]),
    beta=st.sampled_from([1.0, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_accumulate_snip_many_is_the_reference_per_layer_or_declines(
    kernel_path, two_threads, layers, alpha, beta, seed
):
    """One call over several layers (element and Nx1 scores, some the kernels cannot take) gives
    each layer the reference's update, or leaves it as it was and says so."""
    updates, befores = [], []
    for i, (block_rows, rows, cols, mean, kind) in enumerate(layers):
        w, g, score = _snip_inputs(rows, cols, block_rows, seed + i)
        if kind == "transposed":
            score = score.t().contiguous().t()
        elif kind == "float64":
            score = score.double()
        updates.append((score, w, g, block_rows, mean))
        befores.append(score.clone())
    done = _backend.accumulate_snip_many(updates, alpha, beta)
    fits = [score.is_contiguous() and score.dtype == torch.float32 for score, *_ in updates]  # (a 1-row transpose is)
    assert done == [kernel_path == "kernels" and ok for ok in fits]
    for (score, w, g, block_rows, mean), before, ok in zip(updates, befores, done):
        want = reference.accumulate_snip(before, w, g, alpha, beta, block_rows=block_rows, mean=mean) if ok else before
        assert torch.equal(score, want.to(score.dtype))


@SETTINGS
@given(
    layers=st.lists(st.tuples(st.sampled_from([1, 2, 3, 8]), st.integers(1, 6), st.integers(1, 40)), max_size=5),
    seed=st.integers(0, 10_000),
)
def test_zero_by_mask_many_is_the_reference_per_layer(kernel_path, two_threads, layers, seed):
    """One call over several layers with element and Nx1 block masks zeroes each as the
    reference does (NaN stays NaN, a pruned negative weight becomes -0.0)."""
    gen = torch.Generator().manual_seed(seed)
    jobs, befores = [], []
    for block_rows, rows, cols in layers:
        weight = torch.randn(rows * block_rows, cols, generator=gen)
        weight.view(-1)[: min(3, weight.numel())] = torch.tensor([float("nan"), float("inf"), -1.0])[: weight.numel()]
        pruned = torch.rand(rows, cols, generator=gen) < 0.5
        jobs.append((weight, pruned if block_rows > 1 else pruned.repeat(block_rows, 1), block_rows))
        befores.append(weight.clone())
    done = _backend.zero_by_mask_many(jobs)
    assert done == [kernel_path == "kernels"] * len(jobs)
    for (weight, mask, block_rows), before, ok in zip(jobs, befores, done):
        want = reference.zero_by_mask(before, mask, block_rows=block_rows) if ok else before
        assert torch.equal(weight.isnan(), want.isnan())
        assert torch.equal(weight.nan_to_num(), want.nan_to_num())
        assert torch.equal(weight.signbit(), want.signbit())


def test_the_kernels_decline_what_they_cannot_take():
    w = torch.randn(6, 4)
    assert not _backend.zero_by_mask(w, torch.zeros(4, 6, dtype=torch.bool))  # not the weight's shape
    assert not _backend.zero_by_mask(w, torch.zeros(3, 4, dtype=torch.bool), block_rows=4)  # 6 % 4
    assert not _backend.accumulate_snip(torch.zeros(6, 4, dtype=torch.float64), w, w, 0.9, 1.0)
    assert not _backend.accumulate_snip(torch.zeros(4, 6).t(), w, w, 0.9, 1.0)  # not contiguous
    assert _backend.kernels_available() == kernels.available()


@pytest.mark.parametrize("pattern, scope", [("2:4", "local"), ("4x1", "global"), ("1:8", "global")])
def test_patterns_keep_nothing_from_one_mask_computation_to_the_next(pattern, scope):
    layers = {"a": nn.Linear(16, 8), "b": nn.Linear(32, 4)}
    p = get_pattern({"pattern": pattern, "pruning_scope": scope, "max_sparsity_ratio_per_op": 1.0}, layers)
    state = {k: (v, dict(v) if isinstance(v, dict) else None) for k, v in vars(p).items()}
    scores = {n: torch.rand(m.weight.shape) for n, m in layers.items()}
    first = p.select_pruned(scores, 0.3, {})
    p.select_pruned({n: torch.rand(s.shape) for n, s in scores.items()}, 0.4, {})
    assert {k: (v, dict(v) if isinstance(v, dict) else None) for k, v in vars(p).items()}.keys() == state.keys()
    for key, (value, copy) in state.items():
        assert getattr(p, key) is value and (copy is None or getattr(p, key) == copy), key
    assert all(torch.equal(first[n], m) for n, m in p.select_pruned(scores, 0.3, {}).items())


def test_a_pattern_family_must_parse_its_strings_and_everything_else_has_a_default():
    class Half(BasePattern):
        def check_layer(self, layout):
            return None

    with pytest.raises(TypeError, match="abstract"):
        Half({"pattern": "4x1"}, {})
    assert BasePattern.__abstractmethods__ == {"parse"}
    # kernel dispatch and the mask-cache policy are the backend's, not part of the contract
    assert not {"keep_factor", "apply_factor", "zero_compiled", "score_block", "row_sum_block"} & set(dir(BasePattern))


def test_an_infinite_score_beside_ties_is_ranked_not_interpolated_into_nan():
    """The search used to aim a probe at -inf + (0 - -inf) * t = NaN, and then found nothing in
    the bracket (NaN, 0] to rank (an IndexError from kthvalue)."""
    score = torch.tensor([0.0, 0.0, 0.0, float("-inf")])
    assert _backend.lowest_mask(score, 3).tolist() == [True, True, False, True]


def test_only_the_pruner_imports_the_backend_and_the_backend_imports_only_itself():
    import ast
    from pathlib import Path

    import workbench

    root = Path(workbench.__file__).parent
    backend = root / "pruner" / "_backend"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (f"{node.module}." if node.module else "")
                names = [module + alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if backend in path.parents:
                    assert not name.startswith(("workbench", "..")), f"{path}: {name}"
                elif "pruner" not in path.relative_to(root).parts:
                    assert "_backend" not in name.split("."), f"{path}: {name}"
