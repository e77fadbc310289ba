"""One-shot post-training pruning (issue 16, point 1): Wanda, SparseGPT and OWL against their definitions."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import ConfigError
from workbench.pruner.posttraining import (
    SumSquares,
    bound_batches,
    outlier_ratio,
    owl_sparsities,
    parse_shape,
    prune_posttraining,
    reconstruction_error,
    sparsegpt_prune,
    wanda_pruned,
    wanda_scores,
)
from workbench.pruner.posttraining.calibration import capture

UNSTRUCTURED = parse_shape("1x1")
TWO_FOUR = parse_shape("2:4")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))


def _batches(n: int = 4, size: int = 16, features: int = 16, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, features, generator=g), torch.zeros(size, dtype=torch.long)) for _ in range(n)]


def _correlated_inputs(features: int = 128, tokens: int = 1024, seed: int = 0) -> torch.Tensor:
    """``[tokens, features]`` inputs: pairs of features share a latent factor, scales differ 4x."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(tokens, features // 2, generator=g)
    mix = torch.randn(features // 2, features, generator=g) / (features // 2) ** 0.5
    scale = torch.linspace(0.5, 2.0, features)
    return (latent @ mix + 0.3 * torch.randn(tokens, features, generator=g)) * scale


def _hessian(x: torch.Tensor) -> torch.Tensor:
    return 2 * x.t() @ x / x.shape[0]


# --- Wanda -------------------------------------------------------------------------------------


def test_captured_input_norms_and_the_wanda_score_equal_the_formula_by_hand():
    layer = nn.Linear(3, 2)
    x = torch.tensor([[[1.0, 0.0, 2.0], [3.0, -1.0, 0.0]], [[0.0, 2.0, -2.0], [1.0, 1.0, 1.0]]])  # [batch, tokens, in]
    stats = capture(layer, [x], {"fc": layer}, lambda _n, _m: SumSquares(3, "cpu"))
    tokens = x.reshape(-1, 3)
    by_hand = torch.tensor([sum(float(t[j]) ** 2 for t in tokens) ** 0.5 for j in range(3)])
    assert torch.allclose(stats["fc"].norms(), by_hand)
    scores = wanda_scores(layer.weight.data, stats["fc"].norms())
    for i in range(2):
        for j in range(3):
            assert scores[i, j] == pytest.approx(abs(float(layer.weight.detach()[i, j])) * float(by_hand[j]), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(1, 24), sparsity=st.floats(0, 0.95), seed=st.integers(0, 10**6))
def test_wanda_prunes_the_same_count_in_every_output_row(rows, cols, sparsity, seed):
    g = torch.Generator().manual_seed(seed)
    weight, norms = torch.randn(rows, cols, generator=g), torch.rand(cols, generator=g) + 0.01
    mask = wanda_pruned(weight, norms, sparsity, UNSTRUCTURED)
    assert mask.sum(dim=1).tolist() == [round(sparsity * cols)] * rows
    scores = wanda_scores(weight, norms)  # within a row, every pruned score is <= every kept one
    for i in range(rows):
        if 0 < mask[i].sum() < cols:
            assert scores[i][mask[i]].max() <= scores[i][~mask[i]].min()


@settings(max_examples=40, deadline=None)
@given(
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 4), (4, 8)]),
    rows=st.integers(1, 6),
    groups=st.integers(1, 5),
    zeros=st.floats(0, 0.5),
    seed=st.integers(0, 10**6),
)
def test_wanda_nm_leaves_at_least_n_zeros_in_every_group_of_m(nm, rows, groups, zeros, seed):
    n, m = nm
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, groups * m, generator=g)
    weight[torch.rand(weight.shape, generator=g) < zeros] = 0  # zeros already there must not break it
    mask = wanda_pruned(weight, torch.rand(groups * m, generator=g), 0.0, parse_shape(f"{n}:{m}"))
    pruned = weight.masked_fill(mask, 0)
    per_group = (pruned == 0).reshape(rows, groups, m).sum(dim=2)
    assert (per_group >= n).all()
    assert (mask.reshape(rows, groups, m).sum(dim=2) == n).all()


def test_wanda_differs_from_magnitude_when_input_norms_differ_and_equals_it_when_they_do_not():
    torch.manual_seed(0)
    weight = torch.randn(8, 16)
    magnitude = wanda_pruned(weight, torch.ones(16), 0.5, UNSTRUCTURED)
    by_hand = weight.abs() <= weight.abs().kthvalue(8, dim=1, keepdim=True).values
    assert torch.equal(magnitude, by_hand)
    weight[:, :4] = 0.01 * weight[:, :4].sign()  # the smallest weights, on the loudest inputs
    assert wanda_pruned(weight, torch.ones(16), 0.5, UNSTRUCTURED)[:, :4].all()  # magnitude prunes them
    norms = torch.ones(16)
    norms[:4] = 1000.0
    wanda = wanda_pruned(weight, norms, 0.5, UNSTRUCTURED)
    assert not wanda[:, :4].any()  # Wanda keeps them: 0.01 * 1000 outranks every other score


def test_wanda_blocks_prune_whole_blocks_ranked_by_summed_score():
    torch.manual_seed(0)
    weight = torch.randn(8, 16)
    mask = wanda_pruned(weight, torch.rand(16) + 0.1, 0.5, parse_shape("1x4"))
    blocks = mask.reshape(8, 4, 4)
    assert (blocks.all(dim=2) | ~blocks.any(dim=2)).all()  # each 1x4 block pruned whole or kept
    assert blocks.all(dim=2).sum(dim=1).tolist() == [2] * 8  # the same number per output row


# --- SparseGPT ---------------------------------------------------------------------------------


def _magnitude(weight: torch.Tensor, shape) -> torch.Tensor:
    return wanda_pruned(weight, torch.ones(weight.shape[1]), 0.5, shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("pattern", ["1x1", "2:4"])
def test_sparsegpt_reconstructs_better_than_magnitude_and_wanda_masks(pattern, seed):
    shape = parse_shape(pattern)
    torch.manual_seed(seed)
    weight, x = torch.randn(32, 128), _correlated_inputs(seed=seed)
    h = _hessian(x)
    new, mask = sparsegpt_prune(weight, h, 0.5, shape, blocksize=64)  # two lazy blocks
    norms = x.pow(2).sum(0).sqrt()

    def err(w):  # ||W X - W' X||^2 per token, directly
        return float(((x @ weight.t() - x @ w.t()) ** 2).sum() / x.shape[0])

    ours = err(new)
    assert ours == pytest.approx(reconstruction_error(weight, new, h), rel=1e-3)
    assert ours < err(weight.masked_fill(_magnitude(weight, shape), 0))
    assert ours < err(weight.masked_fill(wanda_pruned(weight, norms, 0.5, shape), 0))
    assert int(mask.sum()) == weight.numel() // 2
    assert int((new == 0).sum()) == weight.numel() // 2
    if shape.kind == "nm":
        assert (mask.reshape(32, 32, 4).sum(dim=2) == 2).all()


def test_sparsegpt_lazy_block_updates_equal_column_by_column_updates():
    """N:M masks are chosen at each group with current weights, so the block size must not matter."""
    torch.manual_seed(3)
    weight, x = torch.randn(16, 64), _correlated_inputs(64, 512, seed=3)
    by_column, _ = sparsegpt_prune(weight, _hessian(x), 0.5, TWO_FOUR, blocksize=4)
    lazy, _ = sparsegpt_prune(weight, _hessian(x), 0.5, TWO_FOUR, blocksize=64)
    assert torch.allclose(by_column, lazy, atol=1e-4)


def test_sparsegpt_zeroes_pruned_weights_exactly_and_updates_kept_ones():
    torch.manual_seed(1)
    weight, x = torch.randn(16, 48), _correlated_inputs(48, 256, seed=4)
    new, mask = sparsegpt_prune(weight, _hessian(x), 0.6, UNSTRUCTURED, blocksize=16)
    assert (new[mask] == 0).all()
    assert int(mask.sum()) == round(0.6 * weight.numel())
    assert not torch.allclose(new[~mask], weight[~mask])  # the OBS update moved the kept weights


def test_sparsegpt_blocks_are_pruned_whole():
    torch.manual_seed(2)
    weight, x = torch.randn(16, 32), _correlated_inputs(32, 256)
    new, mask = sparsegpt_prune(weight, _hessian(x), 0.5, parse_shape("4x1"), blocksize=8)
    blocks = mask.reshape(4, 4, 32)
    assert (blocks.all(dim=1) | ~blocks.any(dim=1)).all()
    assert int(mask.sum()) == weight.numel() // 2 and (new[mask] == 0).all()


# --- OWL ---------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    ratios=st.lists(st.floats(0, 0.2), min_size=2, max_size=12),
    sizes=st.lists(st.integers(1, 1000), min_size=12, max_size=12),
    target=st.floats(0.35, 0.65),
    lam=st.floats(0.0, 0.08),
    clamp=st.booleans(),
)
def test_owl_sparsities_reach_the_target_overall_and_order_by_outliers(ratios, sizes, target, lam, clamp):
    layers = {f"l{i}": r for i, r in enumerate(ratios)}
    weights = {f"l{i}": sizes[i] for i in range(len(ratios))}
    out = owl_sparsities(layers, target, lam, sizes=weights, clamp=clamp)
    overall = sum(out[n] * weights[n] for n in out) / sum(weights.values())
    assert overall == pytest.approx(target, abs=1e-9)  # weighted by size: the targets' zero fraction
    bound = lam if clamp else 2 * lam  # the paper's text vs the authors' code
    assert all(target - bound - 1e-9 <= s <= target + bound + 1e-9 for s in out.values())
    for a in layers:
        for b in layers:
            if layers[a] > layers[b]:
                assert out[a] <= out[b] + 1e-12  # more outliers, less sparsity


def test_owl_end_to_end_gives_the_layer_with_outliers_less_sparsity():
    model = _mlp()
    with torch.no_grad():
        model[2].weight[:, :2] *= 40  # a few outlier weights in the second layer
    report = prune_posttraining(model, _batches(), "wanda", 0.5, owl=True, owl_lambda=0.1, owl_groups="layer")
    by_name = {r.name: r for r in report.layers}
    assert by_name["2"].outlier_ratio > by_name["0"].outlier_ratio
    assert by_name["2"].target < 0.5 < by_name["0"].target
    sizes = {r.name: r.shape[0] * r.shape[1] for r in report.layers}
    assert sum(r.target * sizes[r.name] for r in report.layers) / sum(sizes.values()) == pytest.approx(0.5)
    for r in report.layers:
        assert r.sparsity == pytest.approx(r.target, abs=1 / r.shape[1])
    assert outlier_ratio(torch.ones(10)) == 0.0


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["1x1", "2:4"])
def test_mlp_every_target_layer_reaches_the_target_and_the_head_stays_dense(method, pattern):
    model = _mlp()
    head = model[4].weight.detach().clone()
    report = prune_posttraining(model, _batches(), method, 0.5, pattern, calibration_samples=48)
    assert [r.name for r in report.layers] == ["0", "2"]
    assert report.samples == 48 and report.passes == 2
    for r in report.layers:
        assert r.sparsity == 0.5
    assert torch.equal(model[4].weight, head)
    assert torch.isfinite(model(torch.randn(5, 16))).all()
    assert model.training  # the mode is restored


def test_layers_are_calibrated_on_the_already_pruned_earlier_layers():
    model, batches = _mlp(), _batches()
    expected = copy.deepcopy(model)
    x = torch.cat([b[0] for b in batches])
    with torch.no_grad():  # by hand: prune layer 0 from X, then layer 2 from the pruned model's activations
        w0 = expected[0].weight
        w0.masked_fill_(wanda_pruned(w0, x.pow(2).sum(0).sqrt(), 0.5, UNSTRUCTURED), 0)
        hidden = expected[1](expected[0](x))
        w2 = expected[2].weight
        w2.masked_fill_(wanda_pruned(w2, hidden.pow(2).sum(0).sqrt(), 0.5, UNSTRUCTURED), 0)
    prune_posttraining(model, batches, "wanda", 0.5)
    assert torch.equal(model[0].weight == 0, expected[0].weight == 0)
    assert torch.equal(model[2].weight == 0, expected[2].weight == 0)


def test_dict_batches_are_passed_as_keywords_and_samples_are_bounded():
    class Keyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, features, labels=None):
            return self.head(torch.relu(self.body(features)))

    batches = [{"features": torch.randn(10, 8), "labels": torch.zeros(10)} for _ in range(3)]
    assert [len(b["features"]) for b in bound_batches(batches, 15)] == [10, 5]
    report = prune_posttraining(Keyword(), batches, "sparsegpt", 0.25, calibration_samples=15)
    assert report.samples == 15 and [r.name for r in report.layers] == ["body"]
    assert report.layers[0].sparsity == 0.25 and report.layers[0].error >= 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "magnitude", "sparsity": 0.5},
        {"method": "wanda", "sparsity": 1.0},
        {"method": "wanda", "sparsity": 0.3, "pattern": "2:4"},
        {"method": "wanda", "sparsity": 0.5, "pattern": "2:4", "owl": True},
        {"method": "wanda", "sparsity": 0.5, "pattern": "3:5"},
        {"method": "wanda", "sparsity": 0.5, "skip": [".*"]},
        {"method": "wanda", "sparsity": 0.5, "layers_per_pass": 0},
        {"method": "wanda", "sparsity": "0.5"},
        {"method": "wanda", "sparsity": "0.5", "pattern": "2:4"},
        {"method": "wanda", "sparsity": 0.5, "owl": "yes"},
        {"method": "wanda", "sparsity": 0.5, "owl": True, "owl_m": 0},
        {"method": "wanda", "sparsity": 0.5, "owl": True, "owl_lambda": 0.6, "owl_clamp": True},
        {"method": "wanda", "sparsity": 0.5, "owl": True, "owl_groups": "row"},
        {"method": "wanda", "sparsity": 0.5, "owl": True, "owl_clamp": "no"},
        {"method": "wanda", "sparsity": 0.5, "layers_per_pass": "sequential"},
        {"method": "wanda", "sparsity": 0.5, "layers_per_pass": None, "execution_device": "cpu"},
        {"method": "wanda", "sparsity": 0.5, "execution_device": "cpu"},
        {"method": "sparsegpt", "sparsity": 0.5, "damp": -0.1},
        {"method": "sparsegpt", "sparsity": 0.5, "blocksize": 0},
        {"method": "wanda", "sparsity": 0.5, "calibration_samples": 0},
        {"method": "wanda", "sparsity": 0.5, "pattern": "4x3"},
    ],
)
def test_bad_arguments_raise_config_error_naming_the_key(kwargs):
    with pytest.raises(ConfigError):
        prune_posttraining(_mlp(), _batches(), **kwargs)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["1x1", "2:4"])
def test_tiny_gpt2_reaches_the_target_on_every_conv1d_and_keeps_the_tied_head(method, pattern):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    model = transformers.GPT2LMHeadModel(config)
    embeddings = model.transformer.wte.weight.detach().clone()
    batches = [{"input_ids": torch.randint(0, 64, (4, 16))} for _ in range(2)]
    report = prune_posttraining(model, batches, method, 0.5, pattern)
    names = [r.name for r in report.layers]
    assert len(names) == 8 and all(type(model.get_submodule(n)).__name__ == "Conv1D" for n in names)
    assert all(r.sparsity == 0.5 for r in report.layers)
    assert torch.equal(model.transformer.wte.weight, embeddings)  # lm_head (tied) was skipped
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=batches[0]["input_ids"]).logits).all()


@pytest.mark.gpu
def test_sparsegpt_on_cuda_with_statistics_offloaded_to_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model = _mlp().cuda().half()
    batches = [(b[0].cuda().half(), b[1]) for b in _batches()]
    report = prune_posttraining(model, batches, "sparsegpt", 0.5, "2:4", stats_device="cpu")
    assert all(r.sparsity == 0.5 for r in report.layers)
    assert model[0].weight.dtype == torch.float16 and model[0].weight.is_cuda
    assert torch.isfinite(model(batches[0][0])).all()


def test_only_one_layers_statistics_are_alive_at_a_time_and_passes_stop_early(monkeypatch):
    from workbench.pruner.posttraining import calibration

    alive, peak, calls = [0], [0], []

    class Counted(calibration.Hessian):
        def __init__(self, *args):
            super().__init__(*args)
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])

        def __del__(self):
            alive[0] -= 1

    monkeypatch.setattr("workbench.pruner.posttraining.api.Hessian", Counted)
    model = _mlp()
    model[4].register_forward_pre_hook(lambda _m, _a: calls.append(1))
    prune_posttraining(model, _batches(n=3), "sparsegpt", 0.5)
    assert peak[0] == 1
    assert len(calls) == 1  # the head ran in the order probe only: both passes stopped before it


def test_block_passes_group_the_layers_of_each_numbered_block():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=3, n_embd=16, n_head=2, vocab_size=32))
    batches = [{"input_ids": torch.randint(0, 32, (2, 8))}]
    report = prune_posttraining(model, batches, "sparsegpt", 0.5, layers_per_pass="block")
    assert report.passes == 3 and len(report.layers) == 12
    assert all(r.sparsity == 0.5 for r in report.layers)


def test_tied_weights_are_never_pruned_and_named_heads_are_skipped():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.body = nn.Embedding(16, 8), nn.Linear(8, 8)
            self.classifier, self.out = nn.Linear(8, 3), nn.Linear(8, 16, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            h = torch.relu(self.body(self.emb(ids)))
            return self.out(h).sum(-1) + self.classifier(h).sum(-1)

    model = Tied()
    batches = [torch.randint(0, 16, (4, 5))]
    report = prune_posttraining(model, batches, "wanda", 0.5, include_head=True)
    assert sorted(r.name for r in report.layers) == ["body", "classifier"]  # out is tied to emb
    report = prune_posttraining(Tied(), batches, "wanda", 0.5)
    assert [r.name for r in report.layers] == ["body"]


def test_padding_tokens_are_left_out_of_the_statistics():
    layer = nn.Linear(3, 2)

    class Keyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = layer

        def forward(self, x, attention_mask=None):
            return self.fc(x)

    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    stats = capture(Keyword(), [{"x": x, "attention_mask": mask}], {"fc": layer}, lambda _n, _m: SumSquares(3, "cpu"))
    real = x[mask.bool()]
    assert stats["fc"].tokens == 5
    assert torch.allclose(stats["fc"].norms(), real.pow(2).sum(0).sqrt())


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 6),
    groups=st.integers(1, 6),
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (2, 8)]),
    sparsity=st.floats(0, 0.9),
    blocksize=st.integers(1, 40),
    seed=st.integers(0, 10**6),
)
def test_sparsegpt_masks_hold_their_pattern_and_count_for_any_block_size(rows, groups, nm, sparsity, blocksize, seed):
    n, m = nm
    g = torch.Generator().manual_seed(seed)
    cols = groups * m
    weight, x = torch.randn(rows, cols, generator=g), torch.randn(3 * cols, cols, generator=g)
    new, mask = sparsegpt_prune(weight, _hessian(x), 0.0, parse_shape(f"{n}:{m}"), blocksize=blocksize)
    assert (mask.reshape(rows, groups, m).sum(dim=2) == n).all() and (new[mask] == 0).all()
    new, mask = sparsegpt_prune(weight, _hessian(x), sparsity, UNSTRUCTURED, blocksize=blocksize)
    assert int(mask.sum()) == round(sparsity * rows * cols) and (new[mask] == 0).all()
    assert torch.isfinite(new).all()


def test_sparsegpt_at_zero_sparsity_leaves_the_weight_unchanged():
    torch.manual_seed(5)
    weight, x = torch.randn(8, 32), _correlated_inputs(32, 128)
    new, mask = sparsegpt_prune(weight, _hessian(x), 0.0, UNSTRUCTURED)
    assert not mask.any() and torch.equal(new, weight)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_bfloat16_weights_keep_their_dtype_and_reach_the_target(method):
    model = _mlp().to(torch.bfloat16)
    batches = [(b[0].to(torch.bfloat16), b[1]) for b in _batches()]
    report = prune_posttraining(model, batches, method, 0.5, "2:4")
    assert all(r.sparsity == 0.5 for r in report.layers)
    assert model[0].weight.dtype == torch.bfloat16
    assert torch.isfinite(model(batches[0][0]).float()).all()


def test_a_layer_never_called_during_calibration_is_left_dense_and_reported():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.spare = _mlp(), nn.Linear(16, 16)

        def forward(self, x):
            return self.net(x)

    model = WithSpare()
    dense = model.spare.weight.detach().clone()
    report = prune_posttraining(model, _batches(), "sparsegpt", 0.5)
    assert report.skipped == {"spare": "never called during calibration"}
    assert torch.equal(model.spare.weight, dense)
    assert [r.name for r in report.layers] == ["net.0", "net.2"]


def test_a_layer_called_twice_sees_both_inputs_and_passes_do_not_stop_early():
    from workbench.pruner.posttraining.calibration import call_order

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared, self.head = nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.shared(torch.relu(self.shared(x))))

    model, x = Twice(), torch.randn(6, 8)
    order, once = call_order(model, x, {"shared": model.shared})
    assert order == ["shared"] and not once
    stats = capture(model, [x], {"shared": model.shared}, lambda _n, _m: SumSquares(8, "cpu"))
    assert stats["shared"].tokens == 12
    report = prune_posttraining(model, [x], "wanda", 0.5)
    assert [r.sparsity for r in report.layers] == [0.5]
