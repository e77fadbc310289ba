"""One owner per layer rule (issue 26, point 1): "is this a transposed (Hugging Face ``Conv1D``)
weight" is :func:`workbench.pruner.layout.is_transposed_linear`'s to say, and "is this layer a
target" is :func:`workbench.pruner.sparsity.classify_layers`'s; the training-aware pruner and the
post-training target finder both ask them, so a second copy of either rule breaks these tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import ConfigError, Pruning, WeightPruningConfig, prune_posttraining
from workbench.pruner.layout import is_transposed_linear, layout_of
from workbench.pruner.posttraining import find_targets

hf = pytest.importorskip("transformers.pytorch_utils")


class Conv1D(nn.Module):
    """A user's own layer that happens to be called ``Conv1D``: a Linear with an ``[out, in]``
    weight (and an ``nf`` = outputs attribute, as Hugging Face's has)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nf, nx))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t() + self.bias


class Declared(nn.Module):
    """Not called Conv1D, but declaring Hugging Face's layout: ``nx`` inputs, ``nf`` outputs, ``[nx, nf]``."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.randn(nx, nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


class HFSubclass(hf.Conv1D):
    pass


def test_transposed_is_decided_by_what_the_layer_is_not_its_class_name():
    assert is_transposed_linear(hf.Conv1D(8, 4)) and is_transposed_linear(HFSubclass(8, 4))
    assert is_transposed_linear(hf.Conv1D(8, 8))  # square: Hugging Face's class decides
    assert is_transposed_linear(Declared(8, 4))
    assert not is_transposed_linear(Conv1D(8, 4))  # named Conv1D, weight [out, in]
    assert not is_transposed_linear(Conv1D(8, 8))
    assert not is_transposed_linear(nn.Linear(4, 8))
    assert not is_transposed_linear(nn.Conv1d(4, 8, 3))


def _twin(layer: nn.Module, out_in: torch.Tensor) -> nn.Sequential:
    """``[layer, ReLU, head]`` with ``layer``'s Linear-orientation weight set to ``out_in``."""
    with torch.no_grad():
        layer.weight.copy_(out_in.t() if is_transposed_linear(layer) else out_in)
    torch.manual_seed(3)
    return nn.Sequential(layer, nn.ReLU(), nn.Linear(out_in.shape[0], 2))


def _linear_orientation(layer: nn.Module) -> torch.Tensor:
    return layout_of(layer).to_2d(layer.weight.detach())


def _kinds(out: int, inp: int) -> dict[str, nn.Module]:
    return {"linear": nn.Linear(inp, out), "own Conv1D": Conv1D(out, inp), "HF Conv1D": hf.Conv1D(out, inp)}


@pytest.mark.parametrize("pattern", ["2:4", "4x1"])
def test_own_conv1d_and_hf_conv1d_are_pruned_like_a_linear_by_the_training_aware_pruner(pattern):
    torch.manual_seed(0)
    weight = torch.randn(16, 32)
    pruned = {}
    for kind, layer in _kinds(16, 32).items():
        model = _twin(layer, weight)
        config = WeightPruningConfig(target_sparsity=0.5, pruning_type="magnitude", pattern=pattern)
        pruning = Pruning(model, config)
        pruning.on_train_begin()
        pruning.on_step_begin(0)
        pruned[kind] = _linear_orientation(model[0]) == 0
        transposed_said = "stored [in, out]" in pruning.describe()[0].reason
        assert transposed_said == (kind == "HF Conv1D")
    assert pruned["linear"].float().mean() == 0.5
    assert torch.equal(pruned["own Conv1D"], pruned["linear"])
    assert torch.equal(pruned["HF Conv1D"], pruned["linear"])


@pytest.mark.parametrize("pattern", ["2:4", "4x1"])
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_own_conv1d_and_hf_conv1d_are_pruned_like_a_linear_by_post_training(method, pattern):
    torch.manual_seed(0)
    weight = torch.randn(16, 32)
    batches = [torch.randn(8, 32) * torch.linspace(0.2, 3.0, 32) for _ in range(2)]
    after = {}
    for kind, layer in _kinds(16, 32).items():
        model = _twin(layer, weight)
        report = prune_posttraining(model, batches, method, 0.5, pattern)
        assert [r.name for r in report.layers] == ["0"]
        after[kind] = _linear_orientation(model[0])
    assert float((after["linear"] == 0).float().mean()) == 0.5
    torch.testing.assert_close(after["own Conv1D"], after["linear"])
    torch.testing.assert_close(after["HF Conv1D"], after["linear"])


class Zoo(nn.Module):
    """Every kind of layer the rules distinguish: an embedding tied to an output layer, Hugging
    Face's Conv1D, a user's Conv1D, a hidden Linear named like a head, a convolution, a norm and a
    classifier head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(16, 8)
        self.attn = hf.Conv1D(12, 8)
        self.proj = Conv1D(8, 12)
        self.pre_classifier = nn.Linear(8, 8)
        self.conv = nn.Conv1d(8, 8, 1)
        self.norm = nn.LayerNorm(8)
        self.classifier = nn.Linear(8, 3)
        self.out = nn.Linear(8, 16, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(self.attn(self.emb(ids))))
        h = self.norm(self.pre_classifier(h) + self.conv(h.transpose(1, 2)).transpose(1, 2))
        return self.classifier(h).sum(-1) + self.out(h).sum(-1)


NAMES = ["emb", "attn", "proj", "pre_classifier", "conv", "norm", "classifier", "out"]
REGEXES = st.sampled_from([*NAMES, *(f"^{n}$" for n in NAMES), "classifier", "pr", "o", ".*", "^(attn|proj)$", "c.*"])
OP_TYPES = st.sampled_from([None, ["Linear"], ["Conv"], ["Conv1D"], ["Conv", "Linear"], ["Linear", "Embedding"]])


def _training_aware(model, op_names, excluded, op_types) -> set[str] | None:
    """The layers the training-aware pruner prunes (``None``: it refuses the config)."""
    extra = {} if op_types is None else {"pruning_op_types": op_types}
    config = WeightPruningConfig(
        pruning_type="magnitude", pattern="1x1", op_names=op_names, excluded_op_names=excluded, **extra
    )
    try:
        return {info.name for info in Pruning(model, config).describe() if info.pruned}
    except ConfigError:
        return None


def _post_training(model, op_names, excluded, op_types, include_head=False) -> set[str] | None:
    try:
        return set(find_targets(model, op_names or None, excluded or None, include_head, op_types))
    except ConfigError:
        return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    op_names=st.lists(REGEXES, max_size=2, unique=True),
    excluded=st.lists(REGEXES, max_size=2, unique=True),
    op_types=OP_TYPES,
)
def test_training_aware_and_post_training_choose_the_same_targets(op_names, excluded, op_types):
    model = Zoo()
    training = _training_aware(model, op_names, excluded, op_types)
    post = _post_training(model, op_names, excluded, op_types)
    if training is None:  # e.g. a tied layer named in op_names: both refuse
        assert post is None
        return
    two_d = {n for n in training if model.get_submodule(n).weight.dim() == 2}  # post-training: no convolutions
    assert post == (two_d or None)


def test_the_shared_rules_on_the_zoo_heads_tied_weights_and_types():
    model = Zoo()
    assert _post_training(model, [], [], None) == {"attn", "proj", "pre_classifier"}
    assert _training_aware(model, [], [], None) == {"attn", "proj", "pre_classifier", "conv"}
    # a head named by its whole name is a target on both paths; include_head takes every head
    assert _post_training(model, ["^classifier$", "attn"], [], None) == {"classifier", "attn"}
    assert _training_aware(model, ["^classifier$", "attn"], [], None) == {"classifier", "attn"}
    assert _post_training(model, [], [], None, include_head=True) == {"attn", "proj", "pre_classifier", "classifier"}
    # a tied layer named in op_names is refused on both paths, with both layers named
    for run in (lambda: find_targets(model, ["^out$"]), lambda: Pruning(model, {"op_names": ["^out$"]})):
        with pytest.raises(ConfigError, match="'out'.*tied to 'emb'"):
            run()


def test_nothing_selected_names_each_candidates_reason():
    with pytest.raises(
        ConfigError, match=r"'conv': not a 2-D weight.*'norm': not a prunable type.*'classifier': classifier head"
    ):
        find_targets(Zoo(), ["^conv$", "norm"])
