"""The Hugging Face task families on tiny random models, a local tokenizer and in-memory data."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
datasets = pytest.importorskip("datasets", reason="the [hf] extra (datasets) is not installed")

from workbench.benchmarks import BENCHMARKS, DenseRecipe, Task  # noqa: E402
from workbench.benchmarks.families import chunk_tokens, hf_causal_lm, hf_text_classification  # noqa: E402
from workbench.pruner import ConfigError  # noqa: E402

from helpers.hf_tiny import BERT_CONFIG, GPT2_CONFIG, sentences, sentiment_splits, text_splits, tiny_tokenizer  # noqa: E402


def text_task(**overrides) -> Task:
    tok = tiny_tokenizer()
    params = {
        "model": "tiny-bert",
        "dataset": sentiment_splits(),
        "dataset_config": None,
        "text_fields": ["sentence"],
        "tokenizer": tok,
        "model_config": {**BERT_CONFIG, "vocab_size": tok.vocab_size},
        "max_length": 16,
        "train_size": None,
        "eval_size": None,
        "batch_size": 8,
    }
    return hf_text_classification(**{**params, **overrides})


def lm_task(**overrides) -> Task:
    tok = tiny_tokenizer()
    config = {**GPT2_CONFIG, "vocab_size": tok.vocab_size, "bos_token_id": 2, "eos_token_id": 3}
    params = {
        "model": "tiny-gpt2",
        "dataset": text_splits(),
        "dataset_config": None,
        "tokenizer": tok,
        "model_config": config,
        "seq_len": 8,
        "train_size": None,
        "eval_size": None,
        "batch_size": 4,
    }
    return hf_causal_lm(**{**params, **overrides})


def train(task: Task, model: torch.nn.Module, steps: int, lr: float = 3e-3) -> tuple[float, float]:
    """Loss on one fixed batch before and after ``steps`` AdamW steps on it."""
    torch.manual_seed(0)
    batch = next(iter(task.train_batches))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    before = float(task.loss(model, batch).detach())
    for _ in range(steps):
        optimizer.zero_grad()
        task.loss(model, batch).backward()
        optimizer.step()
    return before, float(task.loss(model, batch).detach())


def test_the_families_are_registered_by_name():
    assert BENCHMARKS["hf-text-classification"] is hf_text_classification
    assert BENCHMARKS["hf-causal-lm"] is hf_causal_lm


def test_text_task_builds_a_tiny_bert_and_dict_batches():
    task = text_task()
    model = task.build_model()
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32 and model.config.num_labels == 2
    batch = next(iter(task.train_batches))
    assert set(batch) >= {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[0] == 8
    assert batch["input_ids"].shape[1] <= 16 and batch["labels"].dtype == torch.long
    assert (task.metric, task.direction, task.dense) == ("accuracy", "maximize", None)
    assert sum(len(b["labels"]) for b in task.eval_batches) == 32


def test_text_task_loss_is_finite_and_decreases():
    task = text_task()
    before, after = train(task, task.build_model(), steps=15)
    assert math.isfinite(before) and after < before


def test_text_evaluate_matches_a_hand_computation():
    task = text_task()
    labels = torch.cat([b["labels"] for b in task.eval_batches])

    class AlwaysPositive(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            return SimpleNamespace(logits=torch.tensor([[0.0, 1.0]]).expand(input_ids.shape[0], 2))

    metrics = task.evaluate(AlwaysPositive())
    share = float(labels.float().mean())  # precision of "always 1"; recall is 1
    assert set(metrics) == {"accuracy", "f1", "matthews_correlation"}
    assert metrics["accuracy"] == pytest.approx(share)
    assert metrics["f1"] == pytest.approx(2 * share / (share + 1))
    assert metrics["matthews_correlation"] == 0.0


def test_three_classes_sentence_pairs_and_a_datasets_dataset():
    splits = {
        name: datasets.Dataset.from_dict({**rows, "other": list(reversed(rows["sentence"]))})
        for name, rows in {"train": sentences(48, 0, 3), "validation": sentences(24, 1, 3)}.items()
    }
    task = text_task(dataset=splits, text_fields=["sentence", "other"], train_size=30, eval_size=12, metric="f1")
    model = task.build_model()
    assert model.config.num_labels == 3  # from the largest label
    assert sum(len(b["labels"]) for b in task.train_batches) == 30
    batch = next(iter(task.eval_batches))
    sep = tiny_tokenizer().sep_token_id
    assert int((batch["input_ids"] == sep).sum(1).min()) == 2  # two segments per row
    assert set(task.evaluate(model)) == {"accuracy", "f1", "matthews_correlation"} and task.metric == "f1"


def test_cola_is_judged_by_matthews_correlation_and_the_dense_recipe_is_optional():
    splits = sentiment_splits()
    task = text_task(dataset={"train": splits["train"], "validation": splits["validation"]}, dense_steps=7)
    assert isinstance(task.dense, DenseRecipe) and task.dense.steps == 7
    with pytest.raises(ConfigError, match="dataset_config"):
        text_task(dataset="glue", dataset_config="stsb", text_fields=None)
    with pytest.raises(ConfigError, match="metric"):
        text_task(metric="precision")


def test_unlabelled_rows_are_refused():
    splits = sentiment_splits()
    splits["validation"]["label"] = [-1] * len(splits["validation"]["label"])
    with pytest.raises(ConfigError, match="unlabelled"):
        text_task(dataset=splits)


def test_causal_lm_chunks_the_concatenated_tokens():
    tok = tiny_tokenizer()
    task = lm_task(train_size=None)
    texts = [t for t in text_splits()["train"]["text"] if t.strip()]
    expected = chunk_tokens(tok(texts, add_special_tokens=False)["input_ids"], 8)
    rows = torch.cat([b["input_ids"] for b in task.train_batches])  # shuffled: compare as a multiset
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, expected.tolist()))
    assert expected.shape[0] >= 4  # the data holds several sequences
    batch = next(iter(task.train_batches))
    assert batch["input_ids"].shape == (4, 8) and batch["labels"] is batch["input_ids"]
    assert (task.metric, task.direction, task.dense) == ("perplexity", "minimize", None)


def test_causal_lm_loss_decreases_and_perplexity_is_exp_loss():
    task = lm_task()
    model = task.build_model()
    assert type(model).__name__ == "GPT2LMHeadModel" and model.config.n_layer == 2
    before, after = train(task, model, steps=15)
    assert math.isfinite(before) and after < before
    metrics = task.evaluate(model)
    assert set(metrics) == {"loss", "perplexity"}
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))


def test_uniform_predictions_have_the_vocabulary_size_as_perplexity():
    task = lm_task(eval_size=2)
    model = task.build_model()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied to the token embedding: every logit is 0
    assert sum(b["input_ids"].shape[0] for b in task.eval_batches) == 2  # the fixed slice
    assert task.evaluate(model)["perplexity"] == pytest.approx(model.config.vocab_size, rel=1e-4)


def test_too_little_text_for_one_sequence_is_a_config_error():
    with pytest.raises(ConfigError, match="seq_len=60"):
        lm_task(seq_len=60, dataset={"train": {"text": ["good movie"]}, "validation": {"text": ["bad"]}})


@pytest.mark.parametrize("factory", [hf_text_classification, hf_causal_lm])
def test_without_transformers_the_family_says_which_extra_to_install(factory, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError) as err:
        factory()  # the defaults: hub names, so the tokenizer loads through transformers first
    assert "\n" not in str(err.value) and "pip install -e '.[hf]'" in str(err.value)


def test_a_hub_name_that_cannot_load_is_one_line(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, no network retries
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as err:
        text_task(model_config=None, tokenizer="no-such-org/no-such-model")
    assert str(err.value).startswith("tokenizer: 'no-such-org/no-such-model' cannot be loaded") and "\n" not in str(
        err.value
    )
    with pytest.raises(ConfigError, match="^dataset: 'no-such-org/no-such-set' cannot be loaded") as err:
        text_task(dataset="no-such-org/no-such-set")
    assert "\n" not in str(err.value)
