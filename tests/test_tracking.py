"""MLflow tracking: metric-key sanitising, batch chunking, the child-run layout of one trial."""

from __future__ import annotations

import csv
import posixpath
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.entities import Metric, Param

from workbench.tracking.artifacts import config_label, result_metrics, run_description, timing_params, trial_params
from workbench.tracking.metric_keys import MAX_KEY_LENGTH, layer_metric_keys, sanitize_name
from workbench.tracking.tracker import Tracker, log_batch_chunked, resolve_tracking_uri
from workbench.trial import SPARSITY_KEYS

from helpers.results import make_result

_VALID = re.compile(r"^[/\w.\- ]*$")


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """One store for the module: creating an MLflow SQLite store costs seconds."""
    return Tracker(f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db")


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path):
    """A SQLite store puts artifacts under ./mlruns: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


def _valid_key(key: str) -> bool:
    return bool(_VALID.match(key)) and posixpath.normpath(key) == key and len(key) <= MAX_KEY_LENGTH


def test_ordinary_layer_names_keep_their_dots():
    keys = layer_metric_keys(["encoder.layers.0.fc1", "conv 1", "a-b"], prefix="layer_sparsity")
    assert keys == {
        "encoder.layers.0.fc1": "layer_sparsity/encoder.layers.0.fc1",
        "conv 1": "layer_sparsity/conv 1",
        "a-b": "layer_sparsity/a-b",
    }


def test_bad_characters_map_to_underscore_and_collisions_get_hash_suffix():
    keys = layer_metric_keys(["blocks[0]:attn", "x/y", "x:y", ".."], prefix="p")
    assert keys["blocks[0]:attn"] == "p/blocks_0__attn"
    assert keys[".."] == "p/__"
    assert keys["x/y"] != keys["x:y"]
    assert keys["x/y"].startswith("p/x_y-") and keys["x:y"].startswith("p/x_y-")
    assert all(_valid_key(k) for k in keys.values())


def test_long_names_are_cut_with_a_hash():
    long_a, long_b = "a" * 400 + "1", "a" * 400 + "2"
    keys = layer_metric_keys([long_a, long_b], prefix="layer_blockwise_sparsity")
    assert len(set(keys.values())) == 2
    assert all(len(k) <= MAX_KEY_LENGTH for k in keys.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=6, unique=True))
def test_keys_are_valid_unique_and_order_independent(names):
    keys = layer_metric_keys(names, prefix="layer_sparsity")
    assert set(keys) == set(names)
    assert len(set(keys.values())) == len(names)
    assert all(_valid_key(k) for k in keys.values())
    assert layer_metric_keys(list(reversed(names)), prefix="layer_sparsity") == keys
    assert all(_valid_key(sanitize_name(n)) for n in names)


class _CountingClient:
    def __init__(self):
        self.calls = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        assert len(metrics) <= 1000 and len(params) <= 100 and len(tags) <= 100
        self.calls.append((len(metrics), len(params), len(tags)))


def test_log_batch_chunks_at_1000_metrics():
    client = _CountingClient()
    metrics = [Metric("m", float(i), 0, i) for i in range(2501)]
    calls = log_batch_chunked(client, "r", metrics, params=[], tags=[])
    assert calls == 3
    assert [c[0] for c in client.calls] == [1000, 1000, 501]


def test_log_batch_keeps_params_and_metrics_within_1000_entities():
    client = _CountingClient()
    params = [Param(f"p{i}", "v") for i in range(150)]
    calls = log_batch_chunked(client, "r", [Metric("m", 0.0, 0, i) for i in range(1500)], params=params)
    assert calls == 2
    assert client.calls == [(900, 100, 0), (600, 50, 0)]
    assert all(sum(c) <= 1000 for c in client.calls)


def test_resolve_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri() == "sqlite:///env.db"
    assert resolve_tracking_uri("sqlite:///flag.db") == "sqlite:///flag.db"


def test_trial_params_fill_knobs_from_config():
    result = make_result()
    params = trial_params(
        {"pattern": "4x1", "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": 0.5},
        result.pruning_config,
        seed=3,
        benchmark="mlp-digits",
    )
    assert params["pruner"] == "progressive"
    assert params["pruning_scope"] == "local"
    assert params["seed"] == 3 and params["benchmark"] == "mlp-digits"
    assert set(params) >= {"pattern", "criterion", "scheduler", "target_sparsity", "sparsity_decay_type"}


def test_result_metrics_cover_every_series():
    metrics = result_metrics(make_result(layers=("net.0", "odd:name")))
    keys = {m.key for m in metrics}
    assert {
        "accuracy",
        "dense_accuracy",
        "accuracy_drop",
        "eval/accuracy",
        "train/loss",
        "layer_sparsity/net.0",
        "layer_sparsity/odd_name",
        "sparsity/elementwise_over_matmul_gemm_conv",
        "sparsity/elementwise_over_all",
    } <= keys
    assert not [k for k in keys if k.startswith("time/")]  # timings are params, not six bar charts
    assert len([m for m in metrics if m.key == "train/loss"]) == 20


def _blockwise(pattern: str, differs: tuple[str, ...]):
    result = make_result(layers=("net.0", "net.2"))
    result.pruning_config["pruning_configs"][0]["pattern"] = pattern
    for name in differs:
        result.layer_blockwise_sparsity[name] = {s: v / 2 for s, v in result.layer_sparsity[name].items()}
    if differs:
        result.sparsity[SPARSITY_KEYS[2]] = {s: v / 2 for s, v in result.sparsity[SPARSITY_KEYS[2]].items()}
    return result


@pytest.mark.parametrize(
    "pattern, differs, expected",
    [
        ("4x1", (), set()),  # blockwise equal to elementwise: not logged twice
        ("4x1", ("net.2",), {"layer_blockwise_sparsity/net.2", "sparsity/blockwise_over_matmul_gemm_conv"}),
        ("2:4", (), {"layer_nm_satisfied/net.0", "layer_nm_satisfied/net.2", "sparsity/nm_groups_satisfied"}),
    ],
)
def test_blockwise_series_only_where_they_say_something(pattern, differs, expected):
    result = _blockwise(pattern, differs)
    keys = {m.key for m in result_metrics(result)}
    block = {k for k in keys if k.startswith(("layer_blockwise", "layer_nm", "sparsity/blockwise", "sparsity/nm"))}
    assert block == expected
    note = run_description(result, {"pattern": pattern, "criterion": "magnitude", "target_sparsity": 0.5})
    assert ("fraction of N:M groups" in note) == (":" in pattern)
    assert note.startswith(f"**{pattern} magnitude 0.50**: accuracy 0.9000")


def test_timings_are_params_and_runs_are_named_by_configuration():
    assert timing_params(make_result()) == {"time.total_s": "10.000", "time.finetune_s": "8.000"}
    label = config_label(
        {"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative", "target_sparsity": 0.8}
    )
    assert label == "4x1 snip_momentum iterative 0.80"


def test_experiment_is_a_model_training_experiment_with_the_yaml_description(tracker):
    exp_id = tracker.experiment_id("described", description="Which pattern keeps accuracy?")
    tags = tracker.client.get_experiment(exp_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tags["mlflow.note.content"] == "Which pattern keeps accuracy?"
    tracker.experiment_id("described", description="changed")  # the YAML's description follows edits
    assert tracker.client.get_experiment(exp_id).tags["mlflow.note.content"] == "changed"


def test_tracker_logs_a_complete_child_run(tracker, tmp_path):
    exp_id = tracker.experiment_id("t")
    assert tracker.experiment_id("t") == exp_id
    parent = tracker.study_run(exp_id, "study-a", params={"sampler": "tpe"})
    assert tracker.study_run(exp_id, "study-a", params={"sampler": "tpe"}) == parent  # resume reuses it
    run_id = tracker.trial_run(exp_id, parent_run_id=parent, run_name="trial-0", tags={"optuna.trial_number": 0})
    seconds = tracker.log_result(
        run_id, make_result(layers=[f"l.{i}" for i in range(200)], steps=range(0, 21)), {"pattern": "4x1"}
    )
    tracker.finish(run_id, "COMPLETE")
    run = tracker.client.get_run(run_id)
    assert seconds > 0 and run.info.status == "FINISHED"
    store_dir = Path(tracker.tracking_uri.removeprefix("sqlite:///")).parent
    assert run.info.artifact_uri.startswith((store_dir / "mlruns").as_uri())  # next to the database
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["optuna.trial_number"] == "0"
    assert {
        "workbench.git_commit",
        "workbench.version.torch",
        "workbench.version.mlflow",
        "workbench.version.optuna",
        "workbench.version.workbench",
    } <= set(run.data.tags)
    assert run.data.params["training.steps"] == "20"
    history = tracker.client.get_metric_history(run_id, "layer_sparsity/l.199")
    assert sorted(m.step for m in history) == list(range(21))  # 8000+ metrics went through several batches
    names = {f.path for f in tracker.client.list_artifacts(run_id)}
    assert names == {"pruning_config.yaml", "trial.yaml", "layers.csv", "layer_sparsity.csv", "sparsity_overview.png"}
    assert run.data.params["time.total_s"] == "10.000" and float(run.data.params["time.logging_s"]) > 0
    assert run.data.tags["mlflow.note.content"].startswith("**4x1")
    spec, _ = tracker.trial_spec(run_id)
    assert spec["pruning_config"]["target_sparsity"] == 0.5 and spec["seed"] == 0
    layers_csv = tracker.client.download_artifacts(run_id, "layers.csv", str(tmp_path))
    rows = list(csv.DictReader(open(layers_csv)))
    assert rows[-1] == {
        "name": "head",
        "type": "Linear",
        "shape": "10x8",
        "pruned": "False",
        "reason": "last linear layer",
        "pruner": "",
    }


@pytest.mark.parametrize("state, status", [("PRUNED", "KILLED"), ("FAIL", "FAILED")])
def test_stopped_and_failed_runs_show_their_state(tracker, tmp_path, state, status):
    exp_id = tracker.experiment_id("t")
    run_id = tracker.trial_run(exp_id, parent_run_id=None, run_name="x")
    tracker.log_partial(
        run_id, {"pattern": "2:4"}, pruning_config={"target_sparsity": 0.5}, eval_values={5: 0.5, 10: 0.6}
    )
    tracker.finish(run_id, state, "because")
    run = tracker.client.get_run(run_id)
    assert run.info.status == status
    assert run.data.tags["workbench.trial_state"] == state and run.data.tags["workbench.reason"] == "because"
    assert [m.step for m in tracker.client.get_metric_history(run_id, "eval/accuracy")] == [5, 10]
    path = tracker.client.download_artifacts(run_id, "pruning_config.yaml", str(tmp_path))
    assert yaml.safe_load(open(path)) == {"target_sparsity": 0.5}


@pytest.mark.slow
def test_a_relative_sqlite_url_opens_the_current_folders_store(tmp_path, monkeypatch):
    """MLflow caches stores by URI: the same relative URL from two folders must reach two databases."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ids = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        ids[name] = Tracker("sqlite:///mlflow.db").experiment_id(f"only-in-{name}")
    monkeypatch.chdir(tmp_path / "a")
    names = {e.name for e in Tracker("sqlite:///mlflow.db").client.search_experiments()}
    assert "only-in-a" in names and "only-in-b" not in names
    assert (tmp_path / "b" / "mlflow.db").exists()
