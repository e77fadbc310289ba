"""Benchmarks: registry, plug-ins, built-in models and data, the dense-baseline cache."""

from __future__ import annotations

import logging
import os
import time

import pytest
import torch

from workbench import benchmarks as wb
from workbench.benchmarks import (
    Benchmark,
    BenchmarkData,
    DenseRecipe,
    cache_path,
    get_benchmark,
    list_benchmarks,
    load_dense_baseline,
    register_benchmark,
    resolve_cache_dir,
)
from workbench.benchmarks.tiny_transformer import counting_task

BUILTINS = ("cnn-digits", "mlp-digits", "tiny-transformer")
PLUGIN = "plugin_bench:blobs"


@pytest.fixture(scope="session")
def dense(workbench_cache_dir):
    """``dense(name) -> (benchmark, model, accuracy)``, trained at most once per session (seed 0)."""
    done: dict[str, tuple] = {}

    def get(name: str):
        if name not in done:
            model, metrics = load_dense_baseline(bench := get_benchmark(name), 0)
            done[name] = (bench, model, metrics["accuracy"])
        return done[name]

    return get


@pytest.fixture
def count_training(monkeypatch):
    """Counts calls of the dense-training function (the cache calls it through its module)."""
    calls: list[str] = []
    real = wb.cache.train_dense

    def counting(benchmark, seed, **kwargs):
        calls.append(benchmark.name)
        return real(benchmark, seed, **kwargs)

    monkeypatch.setattr(wb.cache, "train_dense", counting)
    return calls


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- registry and plug-ins -----------------------------------------------------------------


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(list_benchmarks())
    assert list_benchmarks() == sorted(list_benchmarks())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_model_fits_its_data(name):
    bench = get_benchmark(name)
    data = bench.data
    assert bench.name == name and isinstance(bench.params, dict) and bench.min_dense_accuracy is not None
    model = bench.build_model(0)
    logits = model(data.x_test[:5])
    assert logits.shape == (5, int(data.y_train.max()) + 1)
    assert torch.isfinite(bench.loss(model, (data.x_test[:5], data.y_test[:5])))


@pytest.mark.parametrize("name", BUILTINS)
def test_prunable_dims_divide_by_four(name):
    model = get_benchmark(name).build_model(0)
    shapes = [m.weight.shape for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert shapes and all(s[0] % 4 == 0 for s in shapes[:-1])  # every layer but the classifier head


@pytest.mark.parametrize("name, head", [("mlp-digits", "4"), ("cnn-digits", "fc2"), ("tiny-transformer", "head")])
def test_classifier_head_is_found_by_the_pruner(name, head):
    from workbench.pruner import parse_last_linear

    assert parse_last_linear(get_benchmark(name).build_model(0)) == head


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    bench = get_benchmark("mlp-digits")
    state = torch.random.get_rng_state()
    a, b, c = bench.build_model(3), bench.build_model(3), bench.build_model(4)
    assert torch.equal(state, torch.random.get_rng_state())
    assert _same_weights(a, b) and not _same_weights(a, c)


def test_transformer_projections_are_linear_layers():
    model = get_benchmark("tiny-transformer").build_model(0)
    names = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    for layer in range(2):
        assert {f"layers.{layer}.attn.{p}" for p in ("q", "k", "v", "out")} <= names
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())


def test_counting_task_labels_count_the_query():
    x, y = counting_task(64, seq_len=10, vocab=5, num_classes=4, generator=torch.Generator().manual_seed(1))
    counts = (x[:, :-1] == x[:, -1:]).sum(dim=1)
    assert torch.equal(counts, y) and set(y.tolist()) <= set(range(4))
    x2, _ = counting_task(64, seq_len=10, vocab=5, num_classes=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)


def test_params_change_the_benchmark_and_bad_params_fail():
    bench = get_benchmark("mlp-digits", hidden=32)
    assert bench.params == {"hidden": 32} and bench.build_model(0)[0].out_features == 32
    with pytest.raises(ValueError, match="hidden"):
        get_benchmark("mlp-digits", hidden=30)
    with pytest.raises(ValueError, match=r"mlp-digits.*unknown parameter.*'width'.*allowed.*hidden"):
        get_benchmark("mlp-digits", width=3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no-such-bench", "unknown benchmark 'no-such-bench'"),
        ("", "expected a name"),
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("plugin_bench:missing", "has no callable 'missing'"),
        ("plugin_bench:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
        ("plugin_bench:not_a_tuple", "expected a Task, a Benchmark or a tuple"),
        ("plugin_bench:float_labels", "integer class labels"),
        ("plugin_bench:not_a_module", "expected a torch.nn.Module"),
        (":blobs", "expected 'package.module:function'"),
    ],
)
def test_bad_specs_name_the_spec_and_the_registered_names(spec, message):
    with pytest.raises(ValueError) as info:
        get_benchmark(spec)
    assert message in str(info.value)
    assert "mlp-digits" in str(info.value)


def test_plugin_benchmark_follows_the_contract():
    bench = get_benchmark(PLUGIN, width=12)
    assert isinstance(bench, Benchmark) and bench.name == PLUGIN and bench.params == {"width": 12}
    assert bench.recipe == DenseRecipe(steps=60, batch_size=32, lr=0.01)
    assert bench.data.x_train.shape == (120, 4) and bench.source_digest
    a, b = bench.build_model(0), bench.build_model(1)
    assert a[0].out_features == 12 and not _same_weights(a, b)
    assert _same_weights(a, bench.build_model(0))


def test_register_benchmark_rejects_duplicates_and_bad_names():
    with pytest.raises(ValueError, match="already registered"):
        register_benchmark("mlp-digits")(lambda: None)
    with pytest.raises(ValueError, match="name"):
        register_benchmark("a:b")


def test_benchmark_data_validation():
    x = torch.zeros(4, 2)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="x_test"):
        BenchmarkData(x, y, torch.zeros(3, 2), y)
    with pytest.raises(ValueError, match="missing keys"):
        BenchmarkData.coerce({"x_train": x}, where="data")
    with pytest.raises(ValueError, match="optimizer"):
        DenseRecipe(steps=3, optimizer="rmsprop")


# ---- dense baselines -----------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.slow
def test_builtin_trains_past_its_stated_dense_accuracy(dense, name):
    bench, model, accuracy = dense(name)
    assert accuracy >= bench.min_dense_accuracy
    assert bench.evaluate(model) == {"accuracy": pytest.approx(accuracy, abs=2 / bench.data.y_test.numel())}


def test_transformer_task_needs_attention(dense):
    bench, _, accuracy = dense("tiny-transformer")
    model, _ = load_dense_baseline(bench, 0)  # a fresh copy (cache hit) to damage
    chance = 1 / bench.params["num_classes"]
    with torch.no_grad():
        for layer in model.layers:
            layer.attn.out.weight.zero_()
            layer.attn.out.bias.zero_()
    assert bench.evaluate(model)["accuracy"] < (chance + accuracy) / 2


def test_dense_training_ignores_the_callers_thread_count():
    bench = get_benchmark("mlp-digits", hidden=32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a, acc_a = wb.train_dense(bench, 0)
        torch.set_num_threads(1)
        b, acc_b = wb.train_dense(bench, 0)
    finally:
        torch.set_num_threads(before)
    assert acc_a == acc_b and _same_weights(a, b)


def test_cache_reuses_the_baseline(tmp_path, count_training, caplog):
    bench = get_benchmark(PLUGIN)
    with caplog.at_level("INFO", logger="workbench.benchmarks"):
        model1, acc1 = load_dense_baseline(bench, 0, cache_dir=tmp_path)
        announced = caplog.text.count("training the dense baseline")
        path = cache_path(bench, 0, cache_dir=tmp_path)
        mtime = path.stat().st_mtime_ns
        model2, acc2 = load_dense_baseline(get_benchmark(PLUGIN), 0, cache_dir=tmp_path)
    assert announced == 1 and caplog.text.count("training the dense baseline") == 1  # said once, before training
    assert count_training == [PLUGIN]
    assert acc1 == acc2 and _same_weights(model1, model2) and path.stat().st_mtime_ns == mtime
    assert not _same_weights(model1, bench.build_model(0))  # it is trained, not the init
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cache_reads_an_unchanged_entry_once_per_process(tmp_path, count_training, monkeypatch):
    bench = get_benchmark(PLUGIN)
    reads: list[str] = []
    real = wb.cache._read

    def counting(path, *args):
        reads.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(wb.cache, "_read", counting)
    monkeypatch.setattr(wb.cache, "_MEMORY", {})
    path = cache_path(bench, 0, cache_dir=tmp_path)
    first, metrics = load_dense_baseline(bench, 0, cache_dir=tmp_path)  # trained and written just now
    again, _ = load_dense_baseline(bench, 0, cache_dir=tmp_path)
    assert len(reads) == 1  # too fresh to remember: its file times may not tick on a quick rewrite
    settled = time.time_ns() - 10 * 10**9
    os.utime(path, ns=(settled, settled))
    second, again = load_dense_baseline(bench, 0, cache_dir=tmp_path)  # read, checked, remembered
    assert len(reads) == 2 and again == metrics and _same_weights(first, second)
    with torch.no_grad():  # the trial fine-tunes its model: the remembered weights must not follow
        next(second.parameters()).add_(1.0)
    third, third_metrics = load_dense_baseline(bench, 0, cache_dir=tmp_path)
    assert len(reads) == 2 and third_metrics == metrics and _same_weights(first, third)
    path.write_bytes(path.read_bytes())  # the same bytes, but another write: read and checked again
    fourth, _ = load_dense_baseline(bench, 0, cache_dir=tmp_path)
    assert len(reads) == 3 and _same_weights(first, fourth) and count_training == [PLUGIN]


def test_cache_key_follows_seed_and_params(tmp_path, count_training):
    load_dense_baseline(get_benchmark(PLUGIN), 0, cache_dir=tmp_path)
    load_dense_baseline(get_benchmark(PLUGIN), 1, cache_dir=tmp_path)
    load_dense_baseline(get_benchmark(PLUGIN, width=4), 0, cache_dir=tmp_path)
    assert len(count_training) == 3
    assert len(list(tmp_path.glob("*.pt"))) == 3


def _corrupt_garbage(path):
    path.write_bytes(b"not a torch file")


def _corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _corrupt_weights(path):
    entry = torch.load(path, weights_only=True)
    name = next(iter(entry["state_dict"]))
    entry["state_dict"][name] = entry["state_dict"][name] + 1.0
    torch.save(entry, path)


def _corrupt_meta(path):
    entry = torch.load(path, weights_only=True)
    entry["meta"] = entry["meta"].replace('"seed": 0', '"seed": 9')
    torch.save(entry, path)


def _corrupt_missing_key(path):
    entry = torch.load(path, weights_only=True)
    del entry["metrics"]
    torch.save(entry, path)


def _corrupt_shape(path):
    entry = torch.load(path, weights_only=True)
    entry["state_dict"] = {k: v[:1] for k, v in entry["state_dict"].items()}
    entry["checksum"] = wb.cache.state_checksum(entry["state_dict"])
    torch.save(entry, path)


@pytest.mark.parametrize(
    "corrupt, reason",
    [
        (_corrupt_garbage, "unreadable"),
        (_corrupt_truncate, "unreadable"),
        (_corrupt_weights, "checksum"),
        (_corrupt_meta, "stale"),
        (_corrupt_missing_key, "missing keys"),
        (_corrupt_shape, "do not fit"),
    ],
)
def test_corrupt_or_stale_entry_is_rebuilt(tmp_path, count_training, caplog, corrupt, reason):
    bench = get_benchmark(PLUGIN)
    model, accuracy = load_dense_baseline(bench, 0, cache_dir=tmp_path)
    corrupt(cache_path(bench, 0, cache_dir=tmp_path))
    with caplog.at_level(logging.WARNING, logger="workbench.benchmarks.cache"):
        rebuilt, again = load_dense_baseline(bench, 0, cache_dir=tmp_path)
    assert count_training == [PLUGIN, PLUGIN]
    assert reason in caplog.text and "retraining" in caplog.text
    assert again == accuracy and _same_weights(model, rebuilt)  # dense training is deterministic
    load_dense_baseline(bench, 0, cache_dir=tmp_path)
    assert len(count_training) == 2  # the rebuilt entry is good


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("WORKBENCH_CACHE_DIR")
    assert str(resolve_cache_dir()) == ".workbench-cache"
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "env"))
    load_dense_baseline(PLUGIN, 0)
    assert list((tmp_path / "env").glob("*.pt"))
