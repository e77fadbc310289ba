"""The ``workbench`` command: bad input exits 2 with one line; end-to-end search, resume, rerun, ui."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from workbench.cli import main

from helpers import SAFETY_NET_S

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "experiments" / "quick.yaml"
REQUIRED_PARAMS = {
    "pattern",
    "criterion",
    "scheduler",
    "target_sparsity",
    "pruner",
    "pruning_scope",
    "sparsity_decay_type",
    "seed",
    "benchmark",
}
SERIES = ["sparsity/elementwise_over_matmul_gemm_conv", "sparsity/elementwise_over_all", "eval/accuracy", "train/loss"]
TRIAL_ARTIFACTS = {"pruning_config.yaml", "trial.yaml", "layers.csv", "layer_sparsity.csv", "sparsity_overview.png"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dense-cache")


@pytest.fixture(autouse=True)
def _shared_dense_cache(monkeypatch, cache_dir):
    """One dense-baseline cache for the module (inherited by spawned workers and subprocesses)."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(cache_dir))


def _quick_with(tmp_path: Path, **changes) -> Path:
    """quick.yaml with dotted keys replaced (value ``...`` deletes the key)."""
    data = yaml.safe_load(QUICK.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run_main(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"nme": "x"}, "nme: unknown key; did you mean 'name'"),
        ({"study__sampler": "bayes"}, "study.sampler: 'bayes' is not allowed"),
        ({"study__n_trials": "three"}, "study.n_trials: expected an integer"),
        ({"search_space__pattern": []}, "search_space.pattern: expected a non-empty list"),
        ({"search_space__target_sparsity": {"low": 0.9, "high": 0.2}}, "search_space.target_sparsity: low (0.9)"),
        ({"search_space__criterion": ["magnitude", "bogus"]}, "search_space.criterion[1]: 'bogus' is not allowed"),
        ({"study__objectives": ["accuracy", "sparsity"], "study__pruner": "median"}, "study.pruner: 'median' needs"),
        ({"training__steps": -1}, "training.steps: must be >= 1"),
        ({"search_space__scheduler": ...}, "search_space.scheduler: missing"),
        (
            {"study__objectives": ["perplexity"]},
            "study.objectives: ['perplexity'] is not allowed; allowed: [accuracy], [accuracy, sparsity] or [accuracy, speedup]",
        ),
        (
            {
                "benchmark": "plugin_bench:perplexity_blobs"
            },  # quick.yaml asks for accuracy; this task minimises perplexity
            "study.objectives: ['accuracy'] is not allowed; allowed: [perplexity], [perplexity, sparsity] or [perplexity, speedup]",
        ),
        ({"benchmark_params": [8]}, "benchmark_params: expected a mapping"),
        ({"benchmark_params": {"hiden": 8}}, "unknown parameter(s) ['hiden']"),
        ({"training__device": "gpu"}, "training.device: 'gpu' is not allowed"),
    ],
)
def test_invalid_experiment_exits_2_with_one_line(tmp_path, capsys, changes, words):
    code, err = _run_main(["search", str(_quick_with(tmp_path, **changes))], capsys)
    assert code == 2
    assert len(err) == 1 and words in err[0], err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["search", "missing.yaml"], "experiment: no such file"),
        (["search", str(QUICK), "--n-trials", "0"], "argument --n-trials: expected a positive integer, got '0'"),
        (["search", str(QUICK), "--workers", "two"], "--workers"),
        (["ui", "--port", "99999"], "--port: expected a port in 1..65535"),
        (["frobnicate"], "invalid choice"),
        (["run", str(QUICK), "--set", "patern=4x1"], "--set patern: unknown key; did you mean 'pattern'"),
        (["run", str(QUICK), "--set", "target_sparsity=2"], "--set target_sparsity"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    code, err = _run_main(argv, capsys)
    assert code == 2
    assert len(err) == 1 and words in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the test is about one without")
@pytest.mark.parametrize("command", ["search", "run"])
def test_cuda_on_a_machine_without_it_exits_2_before_any_store(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    code, err = _run_main([command, str(_quick_with(tmp_path, training__device="cuda"))], capsys)
    assert code == 2
    assert len(err) == 1 and "training.device: 'cuda' is not available" in err[0], err
    assert "allowed here: auto, cpu" in err[0]
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "mlruns").exists()  # nothing opened, no trial


@pytest.mark.e2e
def test_console_entry_point_prints_no_traceback(tmp_path):
    bad = _quick_with(tmp_path, study__sampler="bayes")
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "search", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=SAFETY_NET_S,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: study.sampler: 'bayes' is not allowed; allowed: tpe, random, nsga2, grid"
    ]


def _check_child(client: MlflowClient, run, parent_id: str) -> None:
    assert run.data.tags["mlflow.parentRunId"] == parent_id
    assert run.info.status == "FINISHED", run.data.tags.get("workbench.reason")
    assert REQUIRED_PARAMS <= set(run.data.params)
    assert {"accuracy", "dense_accuracy", "accuracy_drop"} <= set(run.data.metrics)
    prefixes = ("layer_sparsity/", "layer_blockwise_sparsity/", "layer_nm_satisfied/")
    for key in SERIES + [k for k in run.data.metrics if k.startswith(prefixes)]:
        assert len(client.get_metric_history(run.info.run_id, key)) > 1, key
    assert any(k.startswith("layer_sparsity/") for k in run.data.metrics)
    nm = ":" in run.data.params["pattern"]  # N:M: the fraction of groups satisfied, under its own name
    assert nm == ("sparsity/nm_groups_satisfied" in run.data.metrics)
    assert nm == any(k.startswith("layer_nm_satisfied/") for k in run.data.metrics)
    assert not (nm and any(k.startswith("layer_blockwise_sparsity/") for k in run.data.metrics))
    assert TRIAL_ARTIFACTS <= {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"optuna.trial_number", "optuna.study_name", "workbench.git_commit", "workbench.version.torch"} <= set(
        run.data.tags
    )


@pytest.mark.slow
def test_quick_search_end_to_end_then_resume_then_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["search", str(QUICK)]) == 0
    printed = capsys.readouterr().out
    assert "Best trials by accuracy" in printed and "make notebooks EXPERIMENT=quick" in printed
    client = MlflowClient("sqlite:///mlflow.db")
    experiment = client.get_experiment_by_name("quick")
    parents = client.search_runs([experiment.experiment_id], "tags.`workbench.study` = 'quick'")
    assert len(parents) == 1
    parent = parents[0]
    assert {"trials.csv", "best_so_far.png", "param_importances.json"} <= {
        f.path for f in client.list_artifacts(parent.info.run_id)
    }
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3
    for run in children:
        _check_child(client, run, parent.info.run_id)
    assert f"/runs/{parent.info.run_id}" in printed  # the next step names the study's parent run

    assert main(["search", str(QUICK), "--n-trials", "4"]) == 0  # resume: one more trial, same parent
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [0, 1, 2, 3]
    capsys.readouterr()
    assert main(["search", str(QUICK), "--n-trials", "4"]) == 0  # the same command again: nothing to resume
    assert "has 4 of 4 counted trials: nothing to resume" in capsys.readouterr().err
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 4

    source = children[0]
    assert main(["rerun", source.info.run_id]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    reruns = client.search_runs([experiment.experiment_id], f"tags.`workbench.rerun_of` = '{source.info.run_id}'")
    assert len(reruns) == 1
    assert reruns[0].data.metrics["accuracy"] == source.data.metrics["accuracy"]


@pytest.mark.slow
def test_run_one_trial_with_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/runs.db"
    assert (
        main(
            [
                "run",
                str(QUICK),
                "--tracking-uri",
                uri,
                "--set",
                "pattern=2:4",
                "--set",
                "target_sparsity=0.8",
                "--set",
                "training.steps=12",
            ]
        )
        == 0
    )
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    assert len(runs) == 1
    params = runs[0].data.params
    assert params["pattern"] == "2:4" and float(params["target_sparsity"]) == 0.5
    assert float(params["requested_target_sparsity"]) == 0.8 and params["training.steps"] == "12"


@pytest.mark.slow
def test_benchmark_params_reach_the_run_and_its_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/runs.db"
    path = _quick_with(tmp_path, benchmark_params={"hidden": 8}, training__steps=10, training__eval_every=5)
    assert main(["run", str(path), "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.startswith("run ")
    client = MlflowClient(uri)
    (source,) = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    assert source.data.params["benchmark.hidden"] == "8" and source.data.tags["workbench.metric"] == "accuracy"
    assert main(["rerun", source.info.run_id, "--tracking-uri", uri]) == 0  # built with hidden=8 again
    out = capsys.readouterr().out
    assert "accuracy" in out and "reproduced exactly" in out, out
    rerun = client.search_runs([source.info.experiment_id], f"tags.`workbench.rerun_of` = '{source.info.run_id}'")[0]
    assert rerun.data.params["benchmark.hidden"] == "8"
    assert rerun.data.metrics["accuracy"] == source.data.metrics["accuracy"]


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["search", str(QUICK), "--workers", "2", "--n-trials", "2", "--tracking-uri", uri]) == 0
    assert (tmp_path / "optuna.journal").exists() and not (tmp_path / "optuna.db").exists()
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name("quick").experiment_id
    parent = client.search_runs([exp_id], "tags.`workbench.study` = 'quick'")[0]
    children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [0, 1]
    assert all(r.info.status == "FINISHED" for r in children)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_store(tmp_path):
    from workbench.tracking import Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri)
    run_id = tracker.trial_run(tracker.experiment_id("served"), parent_run_id=None, run_name="r")
    tracker.client.log_text(run_id, "x: 1\n", "pruning_config.yaml")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "ui", "--port", str(port), "--tracking-uri", uri],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the server answers (or nothing: ui exited)
        assert line.startswith(f"MLflow UI: http://127.0.0.1:{port}"), (line, proc.poll())
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=50"
        with urllib.request.urlopen(url, timeout=SAFETY_NET_S) as response:
            names = {e["name"] for e in json.load(response)["experiments"]}
        assert "served" in names
        listing = f"http://127.0.0.1:{port}/api/2.0/mlflow/artifacts/list?run_id={run_id}"
        with urllib.request.urlopen(listing, timeout=SAFETY_NET_S) as response:
            assert [f["path"] for f in json.load(response)["files"]] == ["pruning_config.yaml"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=SAFETY_NET_S)
