"""The shipped experiments of the task families: they parse, name a registered family and valid params.

Each is also built with its own ``benchmark_params``, only the download replaced by the tests'
injection points (tiny model, local tokenizer, in-memory data), so the objectives it names are the
task's metric and every other param is accepted by the family.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from workbench.benchmarks import BENCHMARKS
from workbench.benchmarks.families import FAMILY_NAMES, hf_causal_lm, hf_text_classification, torchvision_classification

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = {
    "hf-text-classification": hf_text_classification,
    "hf-causal-lm": hf_causal_lm,
    "torchvision-classification": torchvision_classification,
}
SHIPPED = [
    path
    for path in sorted((ROOT / "experiments").glob("*.yaml"))
    if yaml.safe_load(path.read_text()).get("benchmark") in FAMILIES
]


def test_every_family_has_a_shipped_experiment():
    assert set(FAMILY_NAMES) == set(FAMILIES)  # what offline loops (make bench) leave out
    named = {yaml.safe_load(path.read_text())["benchmark"] for path in SHIPPED}
    assert named == set(FAMILIES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_experiment_names_a_registered_family_and_params_of_its_signature(path):
    data = yaml.safe_load(path.read_text())
    factory = BENCHMARKS[data["benchmark"]]
    assert factory is FAMILIES[data["benchmark"]]
    params = data["benchmark_params"]
    assert isinstance(params, dict) and params
    inspect.signature(factory).bind(**params)  # TypeError on a name the factory does not take
    assert data["study"]["objectives"][-1] == "sparsity"
    assert "GPU" in path.read_text().split("\nname:")[0]  # the header comment says what it costs


def _injected(benchmark: str) -> dict:
    if benchmark == "torchvision-classification":
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (20, 3, 8, 8), generator=g, dtype=torch.uint8)
        y = torch.arange(20) % 10
        model = lambda n: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, n))  # noqa: E731
        return {"model": model, "dataset": {"train": (x, y), "test": (x, y)}}
    pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
    from helpers.hf_tiny import BERT_CONFIG, GPT2_CONFIG, sentiment_splits, text_splits, tiny_tokenizer

    tok = tiny_tokenizer()
    if benchmark == "hf-causal-lm":
        config = {**GPT2_CONFIG, "vocab_size": tok.vocab_size, "n_positions": 1024}
        return {"tokenizer": tok, "model_config": config, "dataset": text_splits(4000)}
    splits = sentiment_splits()
    config = {**BERT_CONFIG, "vocab_size": tok.vocab_size, "max_position_embeddings": 512}
    return {"tokenizer": tok, "model_config": config, "dataset": splits, "text_fields": ["sentence"]}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_experiment_builds_its_task_with_injected_downloads(path):
    data = yaml.safe_load(path.read_text())
    params = {**data["benchmark_params"], **_injected(data["benchmark"])}
    if data["benchmark"] == "hf-causal-lm":
        params["eval_size"] = 2  # the tiny text holds fewer than 64 sequences of 512 tokens
    task = FAMILIES[data["benchmark"]](**params)
    assert data["study"]["objectives"][0] == task.metric
    batch = next(iter(task.train_batches))
    assert batch is not None and task.build_model() is not None


@pytest.mark.parametrize("name", ["tiny_text", "tiny_lm", "tiny_vision"])
def test_the_test_size_plugins_build_tasks_with_a_dense_recipe(name):
    if name != "tiny_vision":
        pytest.importorskip("transformers", reason="the [hf] extra (transformers) is not installed")
    import family_plugins

    task = getattr(family_plugins, name)()
    assert task.dense is not None and task.name in FAMILY_NAMES
    model = task.build_model()
    assert torch.isfinite(task.loss(model, next(iter(task.train_batches))))
    assert task.metric in task.evaluate(model)
