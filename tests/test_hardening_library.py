"""Bad or unusual inputs to the pruner library: it works, or a ValueError names the input.

Half-precision layers, non-contiguous weights, meta-device models, wrong argument types and
malformed saved states (issue 17, library group).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from workbench.pruner import ConfigError, WeightPruningConfig, get_sparsity_ratio, prepare_pruning

PATTERNS = ["4x1", "1x1", "2x2", "channelx1", "1xchannel", "2:4", "1:4"]
CRITERIA = ["magnitude", "gradient", "snip", "snip_momentum"]


class Net(nn.Module):
    """A conv layer and two Linear layers to prune, and a head (excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc1 = nn.Linear(128, 32)
        self.fc2 = nn.Linear(32, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).flatten(1)
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _config(pattern: str, criterion: str) -> WeightPruningConfig:
    target = 0.2 if pattern == "1:4" else 0.5
    return WeightPruningConfig(
        pattern=pattern, pruning_type=criterion, target_sparsity=target, start_step=2, end_step=2
    )


def _prune(model: nn.Module, config: WeightPruningConfig, grads: dict[str, torch.Tensor]):
    """Run the hooks for three steps with fixed gradients (no optimizer: weights change only by masking)."""
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    modules = dict(model.named_modules())
    for step in range(3):
        pruning.on_step_begin(step)
        for name, grad in grads.items():
            weight = modules[name].weight
            weight.grad = grad.to(weight.dtype)
        pruning.on_before_optimizer_step()
        pruning.on_after_optimizer_step()
        pruning.on_step_end()
    return pruning


def _grads(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        n: torch.randn(m.weight.shape, generator=g).to(dtype).float()
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    }


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_half_precision_layers_prune_like_float32(pattern, criterion, dtype):
    # the fp32 reference holds exactly the half model's values, so scores (kept in fp32) and
    # therefore masks must be identical, and the half weights stay half
    torch.manual_seed(0)
    half = Net().to(dtype)
    ref = Net()
    ref.load_state_dict({k: v.float() for k, v in half.state_dict().items()})
    grads = _grads(ref, dtype)
    pruning_half = _prune(half, _config(pattern, criterion), grads)
    pruning_ref = _prune(ref, _config(pattern, criterion), grads)
    assert pruning_half.mask_updates == pruning_ref.mask_updates == 1
    for name in ("conv", "fc1", "fc2"):
        w_half, w_ref = getattr(half, name).weight, getattr(ref, name).weight
        assert w_half.dtype == dtype
        assert torch.equal(w_half == 0, w_ref == 0), name
        assert torch.equal(w_half.float(), w_ref)
    assert get_sparsity_ratio(pruning_half.pruners, half) == pytest.approx(get_sparsity_ratio(pruning_ref.pruners, ref))
    assert get_sparsity_ratio(pruning_half.pruners, half)[0] > 0.1


VARIANTS = {
    "progressive": dict(pruning_type="snip_momentum_progressive", pattern="4x1", pruning_frequency=1),
    "low memory scores": dict(pruning_type="magnitude", pattern="2:4", low_memory_usage=True),
    "local scope": dict(pruning_type="gradient", pattern="1x1", pruning_scope="local"),
    "iterative": dict(pruning_type="snip", pattern="2x2", pruning_frequency=1, start_step=0),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("variant", list(VARIANTS) + ["group lasso"])
def test_half_precision_pruner_variants(variant, dtype):
    # the other pruners and options on half weights: identical masks to a float32 copy of the
    # same values; group lasso rescales weights (rounded in the dtype), so only its sparsity is compared
    lasso = dict(pruning_type="magnitude", pattern="4x1", reg_type="group_lasso", parameters={"reg_coeff": 0.05})
    kwargs = VARIANTS.get(variant, lasso)
    config = WeightPruningConfig(**{"target_sparsity": 0.5, "start_step": 2, "end_step": 2, **kwargs})
    torch.manual_seed(0)
    half = Net().to(dtype)
    ref = Net()
    ref.load_state_dict({k: v.float() for k, v in half.state_dict().items()})
    grads = _grads(ref, dtype)
    p_half, p_ref = _prune(half, config, grads), _prune(ref, config, grads)
    assert all(getattr(half, n).weight.dtype == dtype for n in ("conv", "fc1", "fc2"))
    s_half, s_ref = get_sparsity_ratio(p_half.pruners, half), get_sparsity_ratio(p_ref.pruners, ref)
    assert s_half[0] == pytest.approx(s_ref[0]) and s_half[0] > 0.1
    if variant != "group lasso":
        for name in ("conv", "fc1", "fc2"):
            assert torch.equal(getattr(half, name).weight == 0, getattr(ref, name).weight == 0), name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("pattern", ["4x1", "1x1", "2x2", "2:4"])
def test_half_precision_masks_agree_with_unrounded_float32_up_to_ties(pattern, dtype):
    # against a float32 model that was never rounded, masks may differ only where rounding to
    # the dtype can tie or swap scores: the sparsity is the same, and every block whose float32
    # score is further than 2 eps (relative) from the pruning threshold is decided alike
    torch.manual_seed(0)
    ref = Net()
    half = Net().to(dtype)
    half.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    scores = {n: getattr(ref, n).weight.detach().abs().clone() for n in ("conv", "fc1", "fc2")}
    config = _config(pattern, "magnitude")
    p_ref, p_half = _prune(ref, config, {}), _prune(half, config, {})
    assert get_sparsity_ratio(p_half.pruners, half)[0] == pytest.approx(get_sparsity_ratio(p_ref.pruners, ref)[0])
    if ":" in pattern:
        return  # N:M also picks the N lowest inside each group, where ties are everywhere
    bn, bm = (int(x) for x in pattern.split("x"))
    pruner_ref, pruner_half = p_ref.pruners[0], p_half.pruners[0]
    block = {}
    for name, score in scores.items():
        view = pruner_ref.pattern.layouts[name].to_2d(score)
        r, c = view.shape
        block[name] = view.reshape(r // bn, bn, c // bm, bm).mean(dim=(1, 3))
    threshold = max(float(block[n][pruner_ref.pruned[n]].max()) for n in block)
    eps = torch.finfo(dtype).eps
    decided = 0
    for name, b in block.items():
        clear = (b - threshold).abs() > 2 * eps * threshold
        assert torch.equal(pruner_half.pruned[name][clear], pruner_ref.pruned[name][clear]), name
        assert torch.equal(pruner_ref.pruned[name][clear], b[clear] <= threshold), name
        decided += int(clear.sum())
    assert decided > 0.8 * sum(b.numel() for b in block.values())


def _transposed(weight: torch.Tensor) -> nn.Parameter:
    """A parameter holding ``weight``'s values as a transposed (non-contiguous) view."""
    return nn.Parameter(weight.detach().t().contiguous().t())


@pytest.mark.parametrize("criterion", ["magnitude", "snip_momentum"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_non_contiguous_weights_prune_like_contiguous(pattern, criterion):
    torch.manual_seed(0)
    dense = Net()
    strided = Net()
    strided.load_state_dict(dense.state_dict())
    strided.fc1.weight = _transposed(strided.fc1.weight)
    strided.fc2.weight = _transposed(strided.fc2.weight)
    strided.conv.to(memory_format=torch.channels_last)
    assert not strided.fc2.weight.is_contiguous() and not strided.conv.weight.is_contiguous()
    grads = _grads(dense, torch.float32)
    p_dense = _prune(dense, _config(pattern, criterion), grads)
    p_strided = _prune(strided, _config(pattern, criterion), grads)
    for name in ("conv", "fc1", "fc2"):
        assert torch.equal(getattr(strided, name).weight, getattr(dense, name).weight), name
    assert get_sparsity_ratio(p_strided.pruners, strided) == get_sparsity_ratio(p_dense.pruners, dense)
    assert p_strided.layer_sparsity() == p_dense.layer_sparsity()
    assert get_sparsity_ratio(p_dense.pruners, dense)[0] > 0.1


def _meta_net() -> nn.Module:
    with torch.device("meta"):
        return Net()


@pytest.mark.parametrize("pattern", ["4x1", "2:4"])
@pytest.mark.parametrize(
    "hook", ["on_train_begin", "on_step_begin", "on_before_optimizer_step", "on_after_optimizer_step"]
)
def test_meta_model_is_described_but_refused_by_name_when_pruned(pattern, hook):
    model = _meta_net()
    pruning = prepare_pruning(model, _config(pattern, "magnitude"))
    assert [(info.name, info.pruned) for info in pruning.describe()] == [
        ("conv", True),
        ("fc1", True),
        ("fc2", True),
        ("head", False),
    ]
    with pytest.raises(ConfigError, match=r"^model: layer 'conv' \(and 2 more\) has its weight on the meta device"):
        getattr(pruning, hook)()


@pytest.mark.parametrize("measure", ["get_sparsity_ratio", "layer_sparsity"])
def test_meta_model_sparsity_is_refused_by_name(measure):
    model = _meta_net()
    pruning = prepare_pruning(model, _config("2:4", "magnitude"))
    with pytest.raises(ConfigError, match=r"^model: layer 'conv' .* meta device"):
        get_sparsity_ratio(pruning.pruners, model) if measure == "get_sparsity_ratio" else pruning.layer_sparsity()


def test_meta_model_is_planned_then_pruned_once_materialised():
    model = _meta_net()
    planned = [(i.name, i.pruned) for i in prepare_pruning(model, _config("4x1", "magnitude")).describe()]
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    pruning = _prune(model, _config("4x1", "magnitude"), {})
    assert [(i.name, i.pruned) for i in pruning.describe()] == planned
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (None, r"^model: None \(NoneType\) is not a torch.nn.Module"),
        ("model.pt", r"^model: 'model.pt' \(str\) is not a torch.nn.Module"),
        (3, r"^model: 3 \(int\) is not a torch.nn.Module"),
        ({"fc": nn.Linear(4, 4)}, r"^model: .* \(dict\) is not a torch.nn.Module"),
    ],
)
def test_a_model_that_is_not_a_module_is_named(model, message):
    with pytest.raises(ConfigError, match=message):
        prepare_pruning(model, WeightPruningConfig())


def _good_state() -> tuple:
    torch.manual_seed(0)
    model = Net()
    pruning = _prune(model, _config("4x1", "snip_momentum"), _grads(model, torch.float32))
    return pruning, pruning.state_dict()


def _with(state: dict, **changes) -> dict:
    return {"pruners": [{**state["pruners"][0], **changes}]}


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda s: None, r"^state: None \(NoneType\) is not a Pruning.state_dict\(\)"),
        (lambda s: "checkpoint.pt", r"^state: 'checkpoint.pt' \(str\) is not"),
        (lambda s: [1, 2], r"^state: \[1, 2\] \(list\) is not"),
        (lambda s: {}, r"^state\['pruners'\]: None is not a list"),
        (lambda s: {"pruners": "abc"}, r"^state\['pruners'\]: 'abc' is not a list"),
        (lambda s: {"pruners": [None]}, r"^state\['pruners'\]: \[None\] is not a list"),
        (lambda s: {"pruners": []}, r"^state\['pruners'\]: holds 0 pruner states; this config builds 1"),
        (lambda s: {"pruners": [{}]}, r"^state\['pruners'\]\[0\]\['global_step'\]: missing"),
        (lambda s: _with(s, global_step="3"), r"^state\['pruners'\]\[0\]\['global_step'\]: '3' is not of type int"),
        (lambda s: _with(s, begun=1), r"^state\['pruners'\]\[0\]\['begun'\]: 1 is not of type bool"),
        (lambda s: _with(s, pruned=None), r"^state\['pruners'\]\[0\]\['pruned'\]: None is not a mapping"),
        (lambda s: _with(s, pruned={}), r"^state\['pruners'\]\[0\]\['pruned'\]: no masks for layers \['conv'"),
        (
            lambda s: _with(s, pruned={**s["pruners"][0]["pruned"], "fc1": torch.zeros(3, 3, dtype=torch.bool)}),
            r"^state\['pruners'\]\[0\]\['pruned'\]\['fc1'\]: torch.bool \(3, 3\) does not match",
        ),
        (
            lambda s: _with(s, pruned={**s["pruners"][0]["pruned"], "fc1": "mask"}),
            r"^state\['pruners'\]\[0\]\['pruned'\]\['fc1'\]: str does not match",
        ),
        (lambda s: _with(s, keep_mask_layers=[]), r"^state\['pruners'\]\[0\]\['keep_mask_layers'\]: \[\] is not"),
        (lambda s: _with(s, scores=7), r"^state\['pruners'\]\[0\]: not a state of this BasicPruner \(AttributeError"),
    ],
)
def test_a_malformed_state_is_named_and_changes_nothing(make_bad, message):
    pruning, good = _good_state()
    before = pruning.state_dict()
    with pytest.raises(ConfigError, match=message):
        pruning.load_state_dict(make_bad(good))
    after = pruning.state_dict()
    assert after["pruners"][0]["global_step"] == before["pruners"][0]["global_step"]
    for name, mask in before["pruners"][0]["pruned"].items():
        assert torch.equal(after["pruners"][0]["pruned"][name], mask)
    for name, score in before["pruners"][0]["scores"].items():
        assert torch.equal(after["pruners"][0]["scores"][name], score)
    pruning.load_state_dict(good)  # the good state still loads


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.sampled_from([4, 8, 12, 16]),
    cols=st.sampled_from([4, 8, 16, 24]),
    pattern=st.sampled_from(PATTERNS),
    criterion=st.sampled_from(CRITERIA),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
    transposed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_masks_depend_only_on_weight_values(rows, cols, pattern, criterion, dtype, transposed, seed):
    # a layer's masks are a function of its values alone: not of its dtype (scores in float32)
    # nor of its memory layout
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, cols, generator=g).to(dtype)
    grad = torch.randn(rows, cols, generator=g).to(dtype).float()

    def pruned(weight: torch.Tensor) -> torch.Tensor:
        model = nn.Sequential(nn.Linear(cols, rows, bias=False), nn.Linear(rows, 2))
        model[0].weight = nn.Parameter(weight)
        _prune(model, _config(pattern, criterion), {"0": grad})
        return model[0].weight.detach() == 0

    subject = values.t().contiguous().t() if transposed else values
    reference = pruned(values.float().contiguous())
    assert torch.equal(pruned(subject), reference)
    assert reference.any()
