"""The answer on the parent run's page: its description holds the front of configurations.

A study with three seeds whose seeds disagree (a stand-in runner adds ``0.01 * seed``) writes the
parent run's ``mlflow.note.content``; it is read back through MLflow's API and checked against the
study: every front configuration once, the mean and spread over its seeds and ``n``, a link to each
of its runs, the study figure from the run's own artifacts. A store the workbench created holds no
empty "Default" experiment beside the study's.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution

from workbench.experiment import parse_experiment
from workbench.results.configs import by_configuration
from workbench.results.front import front
from workbench.study.description import GAP, artifact_link, front_markdown, run_link, study_description
from workbench.study.objective import TrialRunner
from workbench.study.run import run_study
from workbench.study.summary import result_rows
from workbench.tracking.store_create import ensure_sqlite_store, hide_default_experiment

from helpers import SAFETY_NET_S
from helpers.browser import dump_dom
from helpers.results import fake_build_pruning_config, fake_goal, fake_run_trial

TESTS = Path(__file__).resolve().parent

STUDY = {
    "name": "described",
    "benchmark": "fake-bench",
    "training": {"steps": 20, "eval_every": 10, "threads": 1},
    "search_space": {
        "pattern": "4x1",
        "criterion": ["magnitude", "snip"],
        "scheduler": "oneshot",
        "target_sparsity": {"low": 0.5, "high": 0.7, "step": 0.2},
    },
    "study": {
        "n_trials": 12,  # 4 configurations x 3 seeds
        "sampler": "random",
        "objectives": ["accuracy", "sparsity"],
        "pruner": "none",
        "seed": 0,
        "seeds": [0, 1, 2],
    },
    "tracking": {"log_model": "none"},
}


def seeded_run_trial(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    """:func:`fake_run_trial` whose seeds disagree (each seed adds 0.01) and where snip beats magnitude by 0.005."""
    result = fake_run_trial(benchmark, pruning_config, training, seed, on_eval, cache_dir=cache_dir)
    snip = 0.005 if pruning_config["pruning_configs"][0]["pruning_type"] == "snip" else 0.0
    return dataclasses.replace(result, value=result.value + 0.01 * seed + snip)


SEEDED = TrialRunner(build_config=fake_build_pruning_config, run=seeded_run_trial, goal=fake_goal)


def _table(text: str) -> list[dict[str, str]]:
    """The markdown table of ``text`` as rows of header -> cell."""
    lines = [line.replace(GAP, "") for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    folder = tmp_path_factory.mktemp("described")
    uri = f"sqlite:///{folder}/mlflow.db"
    study = run_study(parse_experiment(STUDY), tracking_uri=uri, storage=f"sqlite:///{folder}/optuna.db", runner=SEEDED)
    client = MlflowClient(uri)
    parent = study.user_attrs["mlflow_parent_run_id"]
    return study, client, parent, client.get_run(parent).data.tags["mlflow.note.content"]


@pytest.mark.e2e
def test_the_parent_run_description_holds_the_front_of_configurations(described):
    study, client, parent, text = described
    exp_id = study.user_attrs["mlflow_experiment_id"]
    configs = by_configuration(result_rows(study), metric="accuracy")
    assert all(c["n_seeds"] == 3 for c in configs) and len(configs) == 4
    expected = front(configs, metric="accuracy", direction="maximize")
    table = _table(text)
    assert [c["criterion"] for c in expected] == ["snip", "snip"]  # the best of each target
    assert [(r["criterion"], r["target"]) for r in table] == [(c["criterion"], f"{c['target']:.2f}") for c in expected]
    assert "pattern" not in table[0]  # not searched: no column
    for row, config in zip(table, expected):
        values = [t.values[0] for t in study.trials if t.number in config["trials"]]
        assert len(values) == 3 and len(set(values)) == 3  # the seeds disagree
        mean, std = (float(x) for x in row["accuracy mean ± std"].split(" ± "))
        assert mean == pytest.approx(statistics.fmean(values), abs=5e-5)
        assert std == pytest.approx(statistics.stdev(values), abs=5e-5)
        assert row["seeds"] == "3" and float(row["sparsity reached"]) == pytest.approx(config["sparsity"], abs=5e-4)
        for trial, run_id in zip(config["trials"], config["run_ids"]):  # a link to each of its runs
            assert f"[t{trial}]({run_link(exp_id, run_id)})" in row["runs"]
            linked = client.get_run(run_id)
            assert linked.info.experiment_id == exp_id and linked.data.tags["mlflow.parentRunId"] == parent
    assert f"![accuracy vs sparsity reached]({artifact_link(parent, 'accuracy_vs_sparsity.png')})" in text
    assert "accuracy_vs_sparsity.png" in {a.path for a in client.list_artifacts(parent)}  # the figure it embeds


@pytest.mark.e2e
def test_a_store_the_workbench_created_shows_only_the_study_experiment(described):
    _, client, _, _ = described
    assert [e.name for e in client.search_experiments()] == ["described"]
    assert client.get_experiment("0").lifecycle_stage == "deleted"  # MLflow's Default: kept, in the trash


def test_a_single_objective_study_shows_its_best_configurations_ranked_on_the_mean():
    rows = [
        {"trial": 0, "pattern": "4x1", "target": 0.5, "seed": 0, "sparsity": 0.5, "accuracy": 0.99, "run_id": "a"},
        {"trial": 1, "pattern": "4x1", "target": 0.5, "seed": 1, "sparsity": 0.5, "accuracy": 0.80, "run_id": "b"},
        {"trial": 2, "pattern": "2:4", "target": 0.5, "seed": 0, "sparsity": 0.5, "accuracy": 0.95, "run_id": "c"},
        {"trial": 3, "pattern": "2:4", "target": 0.5, "seed": 1, "sparsity": 0.5, "accuracy": 0.94, "run_id": "d"},
    ]
    text = front_markdown(rows, metric="accuracy", direction="maximize", experiment_id="7", multi_objective=False)
    table = _table(text)
    assert [r["pattern"] for r in table] == ["2:4", "4x1"]  # the luckiest seed (0.99) does not win
    assert table[0]["accuracy mean ± std"] == f"0.9450 ± {statistics.stdev([0.95, 0.94]):.4f}"
    assert table[0]["seeds"] == "2"


def test_a_single_seed_shows_no_spread_and_a_minimised_metric_ranks_lowest_first():
    rows = [
        {"trial": 0, "pattern": "4x1", "target": 0.5, "seed": 0, "sparsity": 0.5, "perplexity": 30.0, "run_id": "a"},
        {"trial": 1, "pattern": "2:4", "target": 0.5, "seed": 0, "sparsity": 0.5, "perplexity": 20.0, "run_id": "b"},
    ]
    table = _table(
        front_markdown(rows, metric="perplexity", direction="minimize", experiment_id="1", multi_objective=False)
    )
    assert [(r["pattern"], r["perplexity mean ± std"]) for r in table] == [("2:4", "20.0000"), ("4x1", "30.0000")]


def test_registered_versions_are_named_beside_their_runs():
    dists = {
        "pattern": CategoricalDistribution(["4x1", "2:4"]),
        "criterion": CategoricalDistribution(["magnitude"]),
        "scheduler": CategoricalDistribution(["oneshot"]),
        "target_sparsity": FloatDistribution(0.5, 0.9, step=0.1),
    }
    study = optuna.create_study(directions=["maximize", "maximize"], study_name="reg")
    for i, (pattern, target, accuracy) in enumerate([("4x1", 0.5, 0.9), ("2:4", 0.5, 0.8), ("4x1", 0.7, 0.85)]):
        params = {"pattern": pattern, "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": target}
        attrs = {"sparsity": target, "seed": 0, "mlflow_run_id": f"run{i}"}
        trial = optuna.trial.create_trial(
            params=params, distributions=dists, values=[accuracy, target], user_attrs=attrs
        )
        study.add_trial(trial)
    study.set_user_attr("registered_model", "reg")
    versions = [
        SimpleNamespace(run_id="run0", version="1", tags={}),
        SimpleNamespace(run_id="run2", version="2", tags={}),
    ]
    tracker = SimpleNamespace(client=SimpleNamespace(search_model_versions=lambda query: versions))
    experiment = parse_experiment({**STUDY, "study": {**STUDY["study"], "seeds": [0]}})
    text = study_description(study, experiment, experiment_id="3", parent_run_id="p", tracker=tracker)
    runs = {r["target"]: r["runs"] for r in _table(text)}
    assert runs == {"0.50": f"[t0]({run_link('3', 'run0')}) (v1)", "0.70": f"[t2]({run_link('3', 'run2')}) (v2)"}
    assert "[`reg`](#/models/reg) v1, v2" in text and "models:/reg/K" in text


def test_a_study_without_a_completed_trial_says_so():
    study = optuna.create_study(directions=["maximize", "maximize"], study_name="empty")
    experiment = parse_experiment(STUDY)
    text = study_description(study, experiment, experiment_id="1", parent_run_id="p", tracker=None)
    assert "No trial completed" in text and "|" not in text


@pytest.fixture(scope="module")
def served(described, tmp_path_factory):
    """``workbench ui`` over the described study's store; yields the UI's address."""
    study, client, parent, _ = described
    uri = client.tracking_uri
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "ui", "--port", str(port), "--tracking-uri", uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    proc.stdout.readline()  # printed once the server answers
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=SAFETY_NET_S)


@pytest.mark.browser
@pytest.mark.slow
def test_the_parent_run_page_shows_the_front_table_in_a_browser(described, served, tmp_path):
    study, _, parent, text = described
    dom = dump_dom(f"{served}/{run_link(study.user_attrs['mlflow_experiment_id'], parent)}", tmp_path / "profile")
    dom = html.unescape(dom.replace("<!-- -->", ""))
    assert "<table>" in dom  # the markdown table rendered as one
    cells = [c.replace("\u2003", "").strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", dom, flags=re.S)]
    for row in _table(text):  # every cell of the front table, as a cell of the page's table
        for key, value in row.items():
            if key != "runs":
                assert value in cells, (key, value)
        for trial in re.findall(r"\[(t\d+)\]", row["runs"]):
            assert f">{trial}</a>" in dom
    assert f'<img src="{artifact_link(parent, "accuracy_vs_sparsity.png")}"' in dom


def test_default_is_kept_when_it_holds_a_run_or_is_the_study_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert ensure_sqlite_store(uri) is True and ensure_sqlite_store(uri) is False  # created once
    client = MlflowClient(uri)
    assert hide_default_experiment(client, keep="Default") is False  # the study's own experiment
    client.create_run("0")
    assert hide_default_experiment(client, keep="mine") is False  # holds a run: the user's
    assert client.get_experiment("0").lifecycle_stage == "active"
