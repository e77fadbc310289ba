"""The winner out: trials keep their pruned model sparse, the front's models are registered, exported.

The codec is checked by property (any zero pattern comes back exactly); the study tests run one
3-trial study per task (module fixture) and check that the front's models come back from MLflow
with the trial's logged metric exactly (CPU), and that the others were dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from workbench.experiment import parse_experiment
from workbench.pruner import ConfigError
from workbench.trial.model_file import load_sparse_state, pack_mask, save_sparse_model, unpack_mask

from helpers.experiments import experiment

TESTS = Path(__file__).resolve().parent


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=200), st.integers(1, 4))
def test_a_packed_mask_unpacks_to_itself(bits, rows):
    mask = torch.tensor(bits * rows).reshape(rows, len(bits))
    assert torch.equal(unpack_mask(pack_mask(mask), mask.shape), mask)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_a_sparse_model_file_gives_the_exact_state_back(tmp_path_factory, sparsity, seed):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(33, 17), torch.nn.LayerNorm(17), torch.nn.Linear(17, 5))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand(p.shape, generator=gen) >= sparsity)
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    size = save_sparse_model(model, path, meta={"k": [1, 2]})
    state, meta = load_sparse_state(path)
    assert meta == {"k": [1, 2]} and size == path.stat().st_size
    assert state.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name


def test_a_sparse_file_is_smaller_than_dense_by_its_sparsity(tmp_path):
    model = torch.nn.Linear(512, 512, bias=False)
    with torch.no_grad():
        model.weight.mul_(torch.rand(model.weight.shape) >= 0.8)
    size = save_sparse_model(model, tmp_path / "m.safetensors")
    dense = 512 * 512 * 4
    assert size / dense < 0.2 + 1 / 32 + 0.02  # 20% values + 1 bit per weight (+ header)


def test_tracking_log_model_is_validated():
    data = experiment("x", "mlp-digits", n_trials=1)
    assert parse_experiment(data).log_model == "front"
    assert parse_experiment({**data, "tracking": {"log_model": "all"}}).log_model == "all"
    with pytest.raises(ConfigError, match=r"tracking.log_model: 'best' is not allowed; allowed: none, front, all"):
        parse_experiment({**data, "tracking": {"log_model": "best"}})
    with pytest.raises(ConfigError, match=r"tracking.keep"):
        parse_experiment({**data, "tracking": {"keep": 1}})


def _run_study(folder: Path, data: dict):
    from workbench.study.run import run_study

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run_study(
            parse_experiment(data),
            tracking_uri=f"sqlite:///{folder}/mlflow.db",
            storage=f"sqlite:///{folder}/optuna.db",
        )
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def mlp_study(tmp_path_factory):
    """A 3-trial mlp-digits study, accuracy vs sparsity (targets 0.5, 0.7, 0.9), models kept for the front."""
    folder = tmp_path_factory.mktemp("mlp")
    data = experiment("winners", "mlp-digits", n_trials=3)
    data["search_space"]["target_sparsity"] = {"low": 0.5, "high": 0.9, "step": 0.2}
    data["study"]["objectives"] = ["accuracy", "sparsity"]
    study = _run_study(folder, data)
    return folder, study, parse_experiment(data)


@pytest.mark.slow
def test_the_front_keeps_its_models_and_they_give_the_logged_metric(mlp_study):
    from workbench.study.models import front_rows, load_trial_model
    from workbench.tracking import Tracker

    folder, study, exp = mlp_study
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    front = {r["run_id"] for r in front_rows(study, exp)}
    assert front
    for trial in study.trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        run = tracker.client.get_run(run_id)
        if run_id in front:
            model, task, _ = load_trial_model(tracker, run_id)
            assert task.evaluate(model, task.eval_batches)["accuracy"] == run.data.metrics["accuracy"]
            assert int(run.data.tags["workbench.model_bytes"]) > 0
        else:
            assert run.data.tags["workbench.model"] == "dropped: off the study's front"
            assert not MlflowClient(tracker.tracking_uri).list_artifacts(run_id, "model")


def test_no_model_is_logged_with_log_model_none(tmp_path, monkeypatch):
    from workbench.study.tracked import TrialRunner

    data = experiment("nomodel", "mlp-digits", n_trials=1)
    data["tracking"] = {"log_model": "none"}
    seen = {}

    def run(task, config, training, seed, on_eval=None, **kwargs):
        seen.update(kwargs)
        from workbench.trial import run_trial

        return run_trial(task, config, training, seed, on_eval, **kwargs)

    from workbench.study.run import run_study

    monkeypatch.chdir(tmp_path)
    study = run_study(
        parse_experiment(data), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", runner=TrialRunner(run=run)
    )
    assert "on_model" not in seen
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert "workbench.model" not in run.data.tags


def test_spool_files_may_log_a_model_file():
    from workbench.tracking.spool_format import METHODS, dumps_entry

    assert "log_model_file" in METHODS
    assert "log_model_file" in dumps_entry("r", [("log_model_file", ("r", "/x/sparse_model.safetensors"), {})])


@pytest.mark.slow
def test_the_registry_holds_one_tagged_version_per_front_trial_that_predicts_its_outputs(mlp_study):
    import mlflow
    import numpy as np

    from workbench.study.models import front_rows, load_trial_model
    from workbench.tracking import Tracker

    folder, study, exp = mlp_study
    uri = f"sqlite:///{folder}/mlflow.db"
    tracker = Tracker(uri)
    front = {r["run_id"]: r for r in front_rows(study, exp)}
    versions = tracker.client.search_model_versions("name = 'winners'")
    assert sorted(v.tags["run_id"] for v in versions) == sorted(front)
    parent = tracker.client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["workbench.registered_model"].startswith("winners v")
    assert study.user_attrs["registered_model"] == "winners"
    mlflow.set_tracking_uri(uri)
    for version in versions:
        row = front[version.tags["run_id"]]
        assert {k: version.tags[k] for k in ("pattern", "criterion", "scheduler", "metric")} == {
            "pattern": "1x1",
            "criterion": "magnitude",
            "scheduler": "oneshot",
            "metric": "accuracy",
        }
        assert float(version.tags["target"]) == pytest.approx(row["target"])
        assert float(version.tags["sparsity"]) == pytest.approx(row["sparsity"], abs=1e-6)
        assert float(version.tags["accuracy"]) == row["accuracy"]
        model, task, _ = load_trial_model(tracker, version.tags["run_id"])
        x = next(iter(task.eval_batches))[0][:4]
        expected = model(x).detach()
        uri_v = f"models:/winners/{version.version}"
        assert np.array_equal(mlflow.pyfunc.load_model(uri_v).predict(x.numpy()), expected.numpy())
        assert torch.equal(mlflow.pytorch.load_model(uri_v)(x), expected)
