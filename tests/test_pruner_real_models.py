"""The pruner on models as they really are (issue 19, point 5): heads, tied weights, Conv1D,
grouped convolutions, and describe() explaining each decision on a tiny BERT, GPT-2 and a
ResNet-50-shaped model."""

from __future__ import annotations

import pytest
import torch

from workbench.pruner import ConfigError, WeightPruningConfig, get_sparsity_ratio, prepare_pruning
from workbench.pruner.heads import find_heads, tied_weights

from helpers.real_models import DepthwiseNet, TinyResNet, tiny_bert_classifier, tiny_gpt2_lm

pytest.importorskip("transformers")


def _describe(model, **config):
    config = {"pruning_type": "snip_momentum", "pattern": "4x1", "target_sparsity": 0.5, **config}
    return {info.name: info for info in prepare_pruning(model, WeightPruningConfig(**config)).describe()}


def test_bert_describe_explains_every_layer():
    layers = _describe(tiny_bert_classifier())
    head = layers["classifier"]
    assert not head.pruned and "classifier head" in head.reason
    query = layers["bert.encoder.layer.0.attention.self.query"]
    assert query.pruned and query.reason == "pruned by pruner 0 (4x1, snip_momentum)"
    assert layers["bert.pooler.dense"].pruned  # a hidden layer of the pooler, not the head
    assert "not a prunable type" in layers["bert.embeddings.word_embeddings"].reason
    assert "not a prunable type" in layers["bert.encoder.layer.0.output.LayerNorm"].reason
    pruned = [name for name, info in layers.items() if info.pruned]
    assert len(pruned) == 2 * 6 + 1  # q, k, v, attention output, intermediate, output per layer; pooler


def test_gpt2_lm_head_is_tied_to_the_embedding_and_never_pruned():
    model = tiny_gpt2_lm()
    assert tied_weights(model) == {"transformer.wte": ["lm_head"], "lm_head": ["transformer.wte"]}
    layers = _describe(model)
    head = layers["lm_head"]
    assert not head.pruned and "tied" in head.reason and "'transformer.wte' (Embedding)" in head.reason
    attn = layers["transformer.h.0.attn.c_attn"]
    assert attn.type == "Conv1D" and attn.pruned
    assert "Linear orientation [out, in]" in attn.reason and "[in, out]" in attn.reason


def test_gpt2_opting_the_tied_lm_head_in_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"'lm_head'.*tied to 'transformer\.wte' \(Embedding\)") as err:
        _describe(tiny_gpt2_lm(), op_names=["lm_head", "transformer.h.0.mlp.c_fc"])
    assert isinstance(err.value, ValueError) and "excluded_op_names" in str(err.value)


def test_gpt2_training_never_touches_the_tied_embedding():
    model = tiny_gpt2_lm()
    wte = model.transformer.wte.weight.detach().clone()
    config = WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5, start_step=0, end_step=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    pruning = prepare_pruning(model, config, opt)
    model.train()
    ids = torch.randint(0, 100, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    assert torch.equal(model.transformer.wte.weight, wte) and torch.equal(model.lm_head.weight, wte)
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(0.5, abs=0.01)
    assert "lm_head" not in pruning.pruners[0].modules


def test_resnet50_shaped_model_describe():
    model = TinyResNet()
    assert find_heads(model) == {"fc": "classifier head (last Linear before the output)"}
    layers = _describe(model, pattern="2:4", target_sparsity=0.5)
    assert not layers["fc"].pruned and "classifier head" in layers["fc"].reason
    stem = layers["conv1"]  # 7x7 on 3 channels: 147 columns
    assert not stem.pruned and "not divisible by M=4" in stem.reason
    block = layers["layer1.0.conv2"]
    assert block.pruned and "channels-last" in block.reason
    assert layers["layer1.0.downsample.0"].pruned
    assert "not a prunable type" in layers["layer1.0.bn1"].reason


def test_heads_found_by_name_where_tracing_finds_another_linear():
    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Linear(8, 8)
            self.score = torch.nn.Linear(8, 1)  # Hugging Face's reward/sequence head name
            self.aux = torch.nn.Linear(8, 4)

        def forward(self, x):
            h = self.body(x)
            return self.aux(h) + self.score(h)

    heads = find_heads(TwoHeads())
    assert set(heads) == {"aux", "score"}
    layers = _describe(TwoHeads())
    assert layers["body"].pruned and not layers["score"].pruned and "'score'" in layers["score"].reason


def test_a_hidden_top_level_fc_is_not_a_head():
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.out = torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)

    assert set(find_heads(Net())) == {"out"}  # untraceable: the last Linear; "fc" comes before it


@pytest.mark.parametrize(
    ("pattern", "pruned", "skipped"),
    [
        ("4x1", {"stem", "grouped", "pointwise"}, {"depthwise"}),
        ("channelx1", {"stem", "pointwise"}, {"depthwise", "grouped"}),
        ("1xchannel", {"stem", "depthwise", "grouped", "pointwise"}, set()),
        ("2:4", {"stem", "grouped", "pointwise"}, {"depthwise"}),
        ("1x1", {"stem", "depthwise", "grouped", "pointwise"}, set()),
    ],
)
def test_grouped_convolutions_are_skipped_with_a_reason_or_pruned_within_groups(pattern, pruned, skipped):
    target = 0.5
    layers = _describe(DepthwiseNet(), pattern=pattern, target_sparsity=target)
    assert {n for n, i in layers.items() if i.pruned} == pruned
    for name in skipped:
        assert "grouped convolution" in layers[name].reason
    if "grouped" in pruned:
        assert "grouped (groups=2)" in layers["grouped"].reason


def test_4x1_blocks_of_a_grouped_convolution_stay_within_a_group():
    model = DepthwiseNet()
    config = WeightPruningConfig(pruning_type="magnitude", pattern="4x1", target_sparsity=0.5, start_step=0, end_step=0)
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    zeros = (model.grouped.weight == 0).view(2, 4, 4)  # [group, output in group, input in group]
    assert torch.equal(zeros.all(dim=1), zeros.any(dim=1)) and zeros.any()


@pytest.mark.parametrize("pattern", ["4x1", "2:4", "1xchannel"])
@pytest.mark.parametrize("build", [tiny_bert_classifier, tiny_gpt2_lm], ids=["bert", "gpt2"])
def test_hugging_face_models_reach_the_target_under_an_unchanged_loop(build, pattern):
    model = build()
    target = 0.5
    config = WeightPruningConfig(
        pruning_type="snip_momentum", pattern=pattern, target_sparsity=target, start_step=1, end_step=3
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pruning = prepare_pruning(model, config, opt)
    model.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        ids = torch.randint(0, 100, (2, 8), generator=gen)
        labels = torch.randint(0, 2, (2,), generator=gen) if build is tiny_bert_classifier else ids
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    assert get_sparsity_ratio(pruning.pruners, model)[0] == pytest.approx(target, abs=0.01)
