"""Slimming tiny random Hugging Face models (BERT, GPT-2): FFN channels and attention heads.

As INC 3.7.1's ``test_auto_slim``: prune the FFN down projections' input channels and some
heads' query/key/value rows and output columns, slim, and compare the outputs before and after.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.helpers.real_models import tiny_bert_classifier, tiny_gpt2_lm
from workbench.pruner import WeightPruningConfig, prepare_pruning
from workbench.pruner.slim import find_attention_groups, find_ffn_pairs, slim_model, slim_pruning_configs
from workbench.pruner.slim.layers import weight_view

pytest.importorskip("transformers")


def _prune(model: torch.nn.Module, op_names: list[str], pattern: str = "channelx1") -> None:
    _prune_configs(model, [{"op_names": op_names, "pattern": pattern, "pruning_scope": "local"}])


def _prune_configs(model: torch.nn.Module, configs: list[dict]) -> None:
    config = WeightPruningConfig(
        pruning_configs=configs, target_sparsity=0.5, pruning_type="magnitude", start_step=0, end_step=0
    )
    pruning = prepare_pruning(model, config)
    pruning.on_train_begin()
    pruning.on_step_begin(0)
    pruning.on_step_end()
    pruning.on_train_end()


@torch.no_grad()
def _zero_heads(qkv: list[torch.nn.Module], out: torch.nn.Module, heads: list[int], size: int, blocks: int = 1) -> None:
    """Zero the heads' rows of every projection in ``qkv`` (each of ``blocks`` blocks) and columns of ``out``."""
    for module in qkv:
        rows = weight_view(module)
        width = rows.shape[0] // blocks
        for b in range(blocks):
            for h in heads:
                rows[b * width + h * size : b * width + (h + 1) * size] = 0
    for h in heads:
        weight_view(out)[:, h * size : (h + 1) * size] = 0


def test_bert_pairs_and_attention_blocks_are_found_by_name():
    model = tiny_bert_classifier()
    assert [(p.up, p.down) for p in find_ffn_pairs(model)] == [
        (f"bert.encoder.layer.{i}.intermediate.dense", f"bert.encoder.layer.{i}.output.dense") for i in range(2)
    ]
    assert [g.name for g in find_attention_groups(model)] == [
        f"bert.encoder.layer.{i}.attention.self" for i in range(2)
    ]


def test_bert_slims_ffn_and_heads_to_equal_logits():
    model = tiny_bert_classifier().eval()
    _prune(model, [r"layer\.\d+\.output\.dense"])
    layers = model.bert.encoder.layer
    att0, att1 = layers[0].attention, layers[1].attention
    _zero_heads([att0.self.query, att0.self.key, att0.self.value], att0.output.dense, [0], 8)
    _zero_heads([att1.self.query, att1.self.key, att1.self.value], att1.output.dense, [1, 3], 8)
    ids = torch.randint(0, 100, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    masked = model(input_ids=ids, attention_mask=mask).logits
    hidden, inter = 32, 64
    ffn_drop = 2 * 32 * (hidden + 1 + hidden)  # 2 layers, 32 of 64 channels, up rows+bias and down columns
    head_drop = (1 + 2) * 8 * (3 * (hidden + 1) + hidden)  # q/k/v rows+bias and output columns per head
    report = slim_model(model)
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, masked, atol=1e-5)
    assert report.params_before - report.params_after == ffn_drop + head_drop
    assert [layers[i].intermediate.dense.out_features for i in range(2)] == [inter // 2] * 2
    assert (att0.self.num_attention_heads, att1.self.num_attention_heads) == (3, 2)
    assert att1.self.all_head_size == att1.self.query.out_features == att1.output.dense.in_features == 16
    assert len(report.slimmed) == 4 and not report.skipped


def test_bert_zero_query_key_rows_alone_do_not_remove_a_head():
    model = tiny_bert_classifier().eval()
    att = model.bert.encoder.layer[0].attention
    with torch.no_grad():
        att.self.query.weight[:8] = 0
        att.self.key.weight[:8] = 0
    report = slim_model(model, ffn=False)
    assert att.self.num_attention_heads == 4
    assert [e.reason for e in report.entries] == ["no dead head", "no dead head"]


def test_bert_zero_value_rows_and_bias_remove_the_head():
    model = tiny_bert_classifier().eval()
    att = model.bert.encoder.layer[0].attention
    with torch.no_grad():
        att.self.value.weight[8:16] = 0
        att.self.value.bias[8:16] = 0
    ids = torch.randint(0, 100, (1, 7))
    masked = model(input_ids=ids).logits
    slim_model(model, ffn=False)
    assert att.self.num_attention_heads == 3
    assert torch.allclose(model(input_ids=ids).logits, masked, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*past_key_values.*:FutureWarning")
def test_gpt2_slims_mlp_and_heads_to_equal_logits_and_cached_decoding():
    model = tiny_gpt2_lm().eval()
    _prune(model, [r"mlp\.c_proj"])
    blocks = model.transformer.h
    _zero_heads([blocks[0].attn.c_attn], blocks[0].attn.c_proj, [2], 8, blocks=3)
    _zero_heads([blocks[1].attn.c_attn], blocks[1].attn.c_proj, [0, 1, 3], 8, blocks=3)
    assert [(p.up, p.down, p.source) for p in find_ffn_pairs(model)][0] == (
        "transformer.h.0.mlp.c_fc",
        "transformer.h.0.mlp.c_proj",
        "names",
    )
    ids = torch.randint(0, 100, (2, 10))
    reference = copy.deepcopy(model)
    report = slim_model(model)
    full = model(ids).logits
    assert torch.allclose(full, reference(ids).logits, atol=1e-5)
    ffn_drop = 2 * 64 * (32 + 1 + 32)  # n_inner = 4 * 32 = 128, half pruned, in both blocks
    head_drop = (1 + 3) * 8 * (3 * (32 + 1) + 32)
    assert report.params_before - report.params_after == ffn_drop + head_drop
    assert (blocks[0].attn.num_heads, blocks[1].attn.num_heads) == (3, 1)
    assert blocks[1].attn.c_attn.weight.shape == (32, 3 * 8)
    out = model(ids[:, :6], use_cache=True)
    step = model(ids[:, 6:], past_key_values=out.past_key_values).logits
    assert torch.allclose(step, full[:, 6:], atol=1e-5)


@pytest.mark.parametrize(
    ("op_name", "pattern"), [(r"layer\.\d+\.output\.dense", "channelx1"), (r"intermediate\.dense", "1xchannel")]
)
def test_bert_ffn_slims_after_either_channel_pattern(op_name, pattern):
    model = tiny_bert_classifier().eval()
    _prune(model, [op_name], pattern)
    ids = torch.randint(0, 100, (2, 9))
    masked = model(input_ids=ids).logits
    report = slim_model(model, heads=False)
    assert torch.allclose(model(input_ids=ids).logits, masked, atol=1e-5)
    assert [e.after for e in report.entries] == [32, 32]


@pytest.mark.parametrize("make", [tiny_bert_classifier, tiny_gpt2_lm])
def test_auto_slim_configs_prune_whole_heads_and_channels_that_slim_away(make):
    model = make().eval()
    configs = slim_pruning_configs(model, ffn_sparsity=0.5, head_sparsity=0.5, pruning_scope="local")
    assert [len(c["op_names"]) for c in configs] == [2, 2]  # 2 FFN down projections, 2 attention outputs
    assert [c["pattern"] for c in configs] == ["channelx1", "channelx8"]
    _prune_configs(model, configs)
    ids = torch.randint(0, 100, (2, 8))
    masked = model(input_ids=ids).logits
    report = slim_model(model)
    assert torch.allclose(model(input_ids=ids).logits, masked, atol=1e-5)
    heads = [e.after for e in report.entries if e.kind == "heads"]
    ffn = [e.after for e in report.entries if e.kind == "ffn"]
    assert heads == [2, 2]
    assert ffn == [e.before // 2 for e in report.entries if e.kind == "ffn"]
