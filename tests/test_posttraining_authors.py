"""Post-training pruning as the authors' code computes it (issue 28): OWL per block, padding, onloading."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from workbench.pruner.posttraining import SumSquares, find_targets, prune_posttraining
from workbench.pruner.posttraining import onload as onload_module
from workbench.pruner.posttraining.calibration import capture, run_batch

transformers = pytest.importorskip("transformers")


# --- OWL with outlier ratios known by construction -----------------------------------------------


class _Block(nn.Module):
    """Two bias-free 16x16 sublayers that both see the block's input; the block passes its input on."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 16, bias=False), nn.Linear(16, 16, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0 * (self.a(x) + self.b(x))


class _Stack(nn.Module):
    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block() for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block(x)
        return x


def _known_outliers(outliers: list[tuple[int, int]]) -> tuple[nn.Module, list]:
    """Block i: every weight 1 except ``outliers[i] = (in a, in b)`` weights of 100.

    Inputs are +-1, so every input feature's norm is sqrt(tokens) and a Wanda score is ``|W|``
    times the same constant: a block with k weights of 100 among its 512 has mean score
    ``(512 + 99k) / 512`` times that constant, 5 times which stays below 100 for k < 98, so its
    outlier ratio (scores above 5x the block's mean) is exactly ``k / 512``.
    """
    model = _Stack(len(outliers))
    with torch.no_grad():
        for block, (in_a, in_b) in zip(model.layers, outliers, strict=True):
            for layer, k in ((block.a, in_a), (block.b, in_b)):
                layer.weight.fill_(1.0)
                layer.weight.view(-1)[:k] = 100.0
    g = torch.Generator().manual_seed(0)
    return model, [torch.randint(0, 2, (8, 4, 16), generator=g).float() * 2 - 1 for _ in range(2)]


def _owl_by_hand(ratios: list[float], target: float, lam: float) -> list[float]:
    """OWL as the authors' code maps ratios: min-max onto 0..2*lambda, minus the mean, off the target."""
    low, high = min(ratios), max(ratios)
    spread = [(r - low) / (high - low) * 2 * lam for r in ratios]
    mean = sum(spread) / len(spread)
    return [target - (d - mean) for d in spread]


def test_owl_gives_each_block_the_authors_sparsity_from_its_ratio_over_all_its_sublayers():
    outliers = [(0, 0), (1, 1), (6, 0), (0, 12)]  # per-Linear ratios differ inside blocks 2 and 3
    model, batches = _known_outliers(outliers)
    report = prune_posttraining(model, batches, "wanda", 0.5, owl=True, owl_lambda=0.08, include_head=True)
    ratios = [(a + b) / 512 for a, b in outliers]
    expected = _owl_by_hand(ratios, 0.5, 0.08)  # [0.5667, 0.54, 0.4867, 0.4067]
    by_block: dict[int, list] = {}
    for layer in report.layers:
        by_block.setdefault(int(layer.name.split(".")[1]), []).append(layer)
    assert sorted(by_block) == [0, 1, 2, 3] and all(len(v) == 2 for v in by_block.values())
    for i, layers in by_block.items():
        for layer in layers:  # both sublayers: the block's ratio and the block's sparsity
            assert layer.outlier_ratio == pytest.approx(ratios[i])
            assert layer.target == pytest.approx(expected[i])
    assert by_block[3][0].target < 0.5 - 0.08  # no clamp to target - lambda
    assert sum(expected) / 4 == pytest.approx(0.5)  # equal blocks: the overall target is reached


def test_owl_options_per_linear_grouping_and_the_clamp_of_the_papers_text():
    outliers = [(0, 0), (1, 1), (6, 0), (0, 12)]
    model, batches = _known_outliers(outliers)
    clamped = prune_posttraining(
        copy.deepcopy(model), batches, "wanda", 0.5, owl=True, owl_clamp=True, include_head=True
    )
    targets = [r.target for r in clamped.layers]
    assert min(targets) == pytest.approx(0.5 - 0.08) and all(0.42 - 1e-9 <= t <= 0.58 + 1e-9 for t in targets)
    per_layer = prune_posttraining(model, batches, "wanda", 0.5, owl=True, owl_groups="layer", include_head=True)
    by_name = {r.name: r for r in per_layer.layers}
    assert by_name["layers.2.a"].outlier_ratio == pytest.approx(6 / 256) and by_name["layers.2.b"].outlier_ratio == 0
    assert by_name["layers.2.a"].target < by_name["layers.2.b"].target  # the sublayers of one block differ
    expected = _owl_by_hand([by_name[n].outlier_ratio for n in by_name], 0.5, 0.08)
    assert [by_name[n].target for n in by_name] == pytest.approx(expected)


# --- padding: tiny OPT (flattens its FFN inputs) and LLaMA (does not) ----------------------------


def _opt() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.OPTConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=3,
        ffn_dim=32,
        num_attention_heads=2,
        max_position_embeddings=32,
        word_embed_proj_dim=16,
        pad_token_id=0,
    )
    return transformers.OPTForCausalLM(config).eval()


def _llama() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        pad_token_id=0,
    )
    return transformers.LlamaForCausalLM(config).eval()


def _padded(lengths: list[int], seq: int = 12, seed: int = 1) -> tuple[dict, list[torch.Tensor]]:
    """A right-padded batch and its sequences unpadded."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randint(1, 64, (n,), generator=g) for n in lengths]
    ids = torch.zeros(len(lengths), seq, dtype=torch.long)
    mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return {"input_ids": ids, "attention_mask": mask}, rows


@pytest.mark.parametrize("make, flat", [(_opt, "fc1"), (_llama, None)], ids=["opt", "llama"])
def test_padding_tokens_reach_no_layers_statistics_whatever_shape_its_input_takes(make, flat):
    model = make()
    targets = find_targets(model)
    batch, rows = _padded([12, 9, 5, 10])
    shapes: dict[str, int] = {}

    def record(name):
        def hook(_module, args):
            shapes.setdefault(name, args[0].dim())

        return hook

    for name, module in targets.items():
        module.register_forward_pre_hook(record(name))
    stats = capture(model, [batch], targets, lambda _n, m: SumSquares(m.in_features, "cpu"))
    if flat is not None:  # the probe's point: OPT hands its feed-forward layers [tokens, in]
        assert {n: d for n, d in shapes.items() if n.endswith(flat)} and all(
            d == 2 for n, d in shapes.items() if n.endswith(flat)
        )
    alone = capture(model, [row.unsqueeze(0) for row in rows], targets, lambda _n, m: SumSquares(m.in_features, "cpu"))
    for name in targets:
        assert stats[name].tokens == 36 == alone[name].tokens, name
        assert torch.allclose(stats[name].sum, alone[name].sum, rtol=1e-4, atol=1e-5), name


# --- sequential onloading --------------------------------------------------------------------------


class _MetaOffload:
    """A tracking device for the test: an offloaded block's parameters live on ``meta`` (their values
    kept aside), so any computation with a block that is not onloaded fails; onloading restores them."""

    def __init__(self) -> None:
        self.kept: dict[int, dict] = {}
        self.onloaded: set[int] = set()
        self.most = 0

    def move(self, module: nn.Module, device) -> None:
        if torch.device(device).type == "meta":
            self.kept[id(module)] = {k: v.detach().clone() for k, v in module.state_dict().items()}
            module.to("meta")
            self.onloaded.discard(id(module))
        else:
            module.to_empty(device=device)
            module.load_state_dict(self.kept.pop(id(module)))
            self.onloaded.add(id(module))
        self.most = max(self.most, len(self.onloaded))


def _weights_zero(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight == 0 for n, m in find_targets(model).items()}


@pytest.mark.parametrize("make", [_opt, _llama], ids=["opt", "llama"])
@pytest.mark.parametrize(
    "method, mode, owl", [("wanda", "block", True), ("sparsegpt", "block", False), ("wanda", "true-sequential", False)]
)
def test_onloading_keeps_at_most_one_block_on_the_device_and_gives_the_same_masks(monkeypatch, make, method, mode, owl):
    model = make()
    reference = copy.deepcopy(model)
    batches = [_padded([12, 9, 5, 10], seed=s)[0] for s in (1, 2)]
    options = {"layers_per_pass": mode, "owl": owl, "owl_lambda": 0.05}
    expected = prune_posttraining(reference, batches, method, 0.5, **options)

    device = _MetaOffload()
    blocks = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1].isdigit()]
    for block in blocks:
        device.move(block, "meta")  # the model "bigger than the device": every block offloaded
    layer_block = {id(m): id(b) for b in blocks for m in b.modules()}
    seen = []
    for module in find_targets(model).values():
        module.register_forward_pre_hook(lambda m, _a: seen.append((layer_block[id(m)], set(device.onloaded))) and None)
    monkeypatch.setattr(onload_module, "move", device.move)
    report = prune_posttraining(model, batches, method, 0.5, execution_device="cpu", **options)

    assert report.onloaded and device.most == 1 and not device.onloaded  # every block went back
    assert seen and all(onloaded == {block} for block, onloaded in seen)  # a layer ran only in its onloaded block
    for block in blocks:
        device.move(block, "cpu")
    got, want = _weights_zero(model), _weights_zero(reference)
    assert list(got) == list(want) and all(torch.equal(got[n], want[n]) for n in got)
    assert [(r.name, r.target) for r in report.layers] == [(r.name, r.target) for r in expected.layers]
    if owl:  # every sublayer of a decoder block (attention and MLP alike) gets the block's sparsity
        per_block = {}
        for r in report.layers:
            per_block.setdefault(r.name.split(".layers.")[1].split(".")[0], set()).add(r.target)
        assert len(per_block) == 3 and all(len(t) == 1 for t in per_block.values())
    with torch.no_grad():
        run_batch(model, batches[0])  # the model, back on the CPU, still runs


@pytest.mark.gpu
def test_onloading_to_cuda_leaves_the_model_on_the_cpu_and_prunes_as_on_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model, reference = _llama(), _llama()
    batches = [_padded([12, 9, 5, 10], seed=s)[0] for s in (1, 2)]
    prune_posttraining(reference, batches, "wanda", 0.5)
    report = prune_posttraining(model, batches, "wanda", 0.5, execution_device="cuda")
    assert report.onloaded and all(p.device.type == "cpu" for p in model.parameters())
    assert all(r.sparsity == 0.5 for r in report.layers)
    got, want = _weights_zero(model), _weights_zero(reference)
    agree = sum(int((got[n] == want[n]).sum()) for n in got) / sum(got[n].numel() for n in got)
    assert agree > 0.99  # the same masks up to float ties between the devices
