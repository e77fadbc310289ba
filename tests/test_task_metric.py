"""The task's metric everywhere: a minimised metric (perplexity) through tracking, the study and analysis.

The stand-in runner :data:`helpers.results.PERPLEXITY` reports perplexity (lower is better) as a
language model would, so these tests check, in seconds, that the study minimises it, that "best"
and the Pareto front pick the lowest, that the drop has the right sign and what MLflow records.
``benchmark_params`` are checked to reach the benchmark factory and ``rerun``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from workbench import analysis
from workbench.experiment import parse_experiment
from workbench.results.front import front
from workbench.study.recovery import counted_trials
from workbench.study.run import run_study
from workbench.study.summary import result_rows, summary_text
from workbench.study.tracked import TrialRunner
from workbench.tracking import Tracker
from workbench.tracking.artifacts import result_metrics

from helpers.results import PERPLEXITY, fake_build_pruning_config, fake_run_trial, make_perplexity_result, make_result

EXPERIMENT = {
    "name": "lm",
    "benchmark": "fake-lm",
    "training": {"steps": 40, "eval_every": 10, "threads": 1},
    "search_space": {
        "pattern": ["4x1", "2:4"],
        "criterion": ["magnitude", "snip"],
        "scheduler": "oneshot",
        "target_sparsity": {"low": 0.5, "high": 0.9, "step": 0.1},
    },
    "study": {"n_trials": 6, "sampler": "random", "pruner": "none", "seed": 0},
}


def _experiment(name: str, **study) -> dict:
    data = copy.deepcopy(EXPERIMENT)
    data["name"] = name
    data["study"].update(study)
    return data


@pytest.fixture(autouse=True)
def in_tmp(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def _children(client, parent):
    exp_id = client.get_run(parent).info.experiment_id
    return client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent}'")


def test_a_minimised_metric_is_logged_under_its_own_names_with_a_positive_drop_when_worse():
    keys = {m.key: m.value for m in result_metrics(make_perplexity_result(), ts=1) if "/" not in m.key}
    assert keys == {
        "perplexity": 40.0,
        "dense_perplexity": 30.0,
        "perplexity_drop": 10.0,  # 40 is worse than 30: a positive drop, as for accuracy
        "token_accuracy": 0.4,
        "dense_token_accuracy": 0.5,
    }
    series = {m.key for m in result_metrics(make_perplexity_result(), ts=1)}
    assert {"eval/perplexity", "eval/token_accuracy"} <= series and not any("accuracy_drop" in k for k in series)
    default = {m.key for m in result_metrics(make_result(), ts=1)}  # the built-ins: the names as before
    assert {"accuracy", "dense_accuracy", "accuracy_drop", "eval/accuracy"} <= default
    assert not any(k.startswith("eval/") and k != "eval/accuracy" for k in default)


def test_the_tracker_tags_the_metric_and_writes_benchmark_params_to_trial_yaml(store, tmp_path):
    tracker = Tracker(store)
    exp_id = tracker.experiment_id("tagging")
    run_id = tracker.trial_run(exp_id, parent_run_id=None, run_name="t")
    tracker.log_result(run_id, make_perplexity_result(), {"pattern": "4x1", "benchmark.hidden": 32})
    run = tracker.client.get_run(run_id)
    assert run.data.tags["workbench.metric"] == "perplexity" and run.data.tags["workbench.direction"] == "minimize"
    assert run.data.params["benchmark.hidden"] == "32"
    spec, _ = tracker.trial_spec(run_id)
    assert spec["benchmark_params"] == {"hidden": 32}  # typed, for rerun


@pytest.mark.e2e
def test_a_study_minimises_the_tasks_metric_and_its_summaries_pick_the_lowest(store, caplog):
    with caplog.at_level(logging.INFO, logger="workbench.study.workers"):
        study = run_study(parse_experiment(_experiment("lm-one")), tracking_uri=store, runner=PERPLEXITY)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and study.metric_names == ["perplexity"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert study.best_value == min(t.value for t in done) and study.best_value < max(t.value for t in done)
    lines = [r.getMessage() for r in caplog.records if r.name == "workbench.study.workers"]
    assert any(" perplexity=" in line and " sparsity=" in line for line in lines), lines
    assert not any("accuracy=" in line for line in lines)

    text = summary_text(study, multi_objective=False, parent_url="u", experiment="lm-one")
    assert "Best trials by perplexity (lower is better)" in text and "Best perplexity per pattern" in text
    rows = result_rows(study)
    header = text.splitlines().index(next(line for line in text.splitlines() if line.startswith("trial ")))
    best_shown = int(text.splitlines()[header + 1].split()[0])
    assert best_shown == min(rows, key=lambda r: r["perplexity"])["trial"]

    client = Tracker(store).client
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert client.get_run(parent).data.params["direction"] == "minimize"
    assert "perplexity_vs_sparsity.png" in {f.path for f in client.list_artifacts(parent)}
    best_bins = {k: v for k, v in client.get_run(parent).data.metrics.items() if k.startswith("best_perplexity/")}
    assert best_bins and min(best_bins.values()) == pytest.approx(study.best_value)
    for run in _children(client, parent):
        assert {"perplexity", "dense_perplexity", "perplexity_drop", "loss", "dense_loss"} <= set(run.data.metrics)
        assert "accuracy" not in run.data.metrics
        assert run.data.metrics["perplexity_drop"] == pytest.approx(
            run.data.metrics["perplexity"] - run.data.metrics["dense_perplexity"]
        )
        assert len(client.get_metric_history(run.info.run_id, "eval/perplexity")) == 4
        assert run.data.tags["workbench.metric"] == "perplexity"

    trials = analysis.trials_frame("lm-one", client=store)
    assert analysis.metric_of(trials) == ("perplexity", "minimize")
    assert {"perplexity", "dense_perplexity", "perplexity_drop"} <= set(trials.columns)
    assert set(analysis.summary_columns("perplexity")) <= set(trials.columns)
    picked = analysis.pick_trials(trials, n=len(trials), y="perplexity", direction="minimize")
    assert picked["perplexity"].iloc[0] == pytest.approx(study.best_value)
    matched = analysis.best_at_matched_sparsity(trials, metric="perplexity", direction="minimize")
    bins = [c for c in matched.columns if not c.endswith("trial")]
    assert bins
    for label in bins:  # each cell is the lowest perplexity of its group in the range reached there
        low, _, high = label.partition("-")
        low, high = float(low), float(high or low)
        for (pattern, criterion), value in matched[label].dropna().items():
            group = trials[(trials["pattern"] == pattern) & (trials["criterion"] == criterion)]
            in_range = group[group["sparsity"].map(lambda s, lo=low, hi=high: lo <= round(s, 3) <= hi)]
            assert value == in_range["perplexity"].min()
    evals = analysis.eval_frame("lm-one", client=store, metric="perplexity")
    assert list(evals.columns) == ["trial", "run_id", "step", "perplexity"] and len(evals) == 4 * len(trials)


@pytest.mark.e2e
def test_a_two_objective_study_minimises_the_metric_and_maximises_sparsity(store):
    data = _experiment("lm-two", objectives=["perplexity", "sparsity"], sampler="nsga2", n_trials=8)
    study = run_study(parse_experiment(data), tracking_uri=store, runner=PERPLEXITY)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    assert study.metric_names == ["perplexity", "sparsity"]  # what optuna-dashboard shows
    rows = result_rows(study)
    shown = front(rows, metric="perplexity", direction="minimize")
    for row in rows:  # nothing off the front is both sparser and lower in perplexity than a front point
        if row not in shown:
            assert any(f["perplexity"] <= row["perplexity"] and f["sparsity"] >= row["sparsity"] for f in shown)
    lowest = min(rows, key=lambda r: (r["perplexity"], -r["sparsity"]))
    assert lowest in shown
    trials = analysis.trials_frame("lm-two", client=store)
    pareto = analysis.pareto_front(trials, y="perplexity", direction="minimize")
    assert sorted(pareto["trial"]) == sorted(r["trial"] for r in shown)


@pytest.mark.e2e
def test_early_stopping_reports_the_minimised_metric(store):
    data = _experiment("lm-median", pruner="median", sampler="tpe", n_trials=10)
    study = run_study(parse_experiment(data), tracking_uri=store, runner=PERPLEXITY)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    client = Tracker(store).client
    for trial in pruned:
        assert trial.intermediate_values  # reported perplexity
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert "(perplexity " in run.data.tags["workbench.reason"], run.data.tags["workbench.reason"]
        assert client.get_metric_history(run.info.run_id, "eval/perplexity")


def test_objectives_naming_another_metric_than_the_tasks_are_refused(store):
    data = _experiment("lm-wrong", objectives=["accuracy"])
    with pytest.raises(ValueError, match=r"^study\.objectives: \['accuracy'\] is not allowed; allowed: \[perplexity\]"):
        run_study(parse_experiment(data), tracking_uri=store, runner=PERPLEXITY)
    assert not Path("optuna.db").exists()  # refused before any store was written


SEEN: list = []


def _recording_run(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    SEEN.append(benchmark)
    return fake_run_trial(benchmark, pruning_config, training, seed, on_eval, cache_dir=cache_dir)


@pytest.mark.e2e
def test_benchmark_params_reach_the_factory_and_the_run(store):
    data = _experiment("params", n_trials=2)
    data.update(benchmark="mlp-digits", benchmark_params={"hidden": 32})
    SEEN.clear()
    runner = TrialRunner(build_config=fake_build_pruning_config, run=_recording_run)  # the real goal: built
    study = run_study(parse_experiment(data), tracking_uri=store, runner=runner)
    assert len(SEEN) == 2 and all(b.name == "mlp-digits" and b.params == {"hidden": 32} for b in SEEN)
    assert study.user_attrs["metric"] == "accuracy"  # the built-in's metric, as the objective defaulted to it
    client = Tracker(store).client
    for run in _children(client, study.user_attrs["mlflow_parent_run_id"]):
        assert run.data.params["benchmark.hidden"] == "32" and run.data.params["benchmark"] == "mlp-digits"
        path = client.download_artifacts(run.info.run_id, "trial.yaml", ".")
        assert yaml.safe_load(Path(path).read_text())["benchmark_params"] == {"hidden": 32}


def test_bad_benchmark_params_fail_before_the_study_starts(store):
    data = _experiment("params-bad", n_trials=1)
    data.update(benchmark="mlp-digits", benchmark_params={"hiden": 32})
    runner = TrialRunner(build_config=fake_build_pruning_config, run=_recording_run)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['hiden'\]"):
        run_study(parse_experiment(data), tracking_uri=store, runner=runner)


@pytest.mark.e2e
def test_worker_processes_minimise_the_tasks_metric_too(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path / "spool"))
    uri = f"sqlite:///{tmp_path}/workers.db"
    study = run_study(
        parse_experiment(_experiment("lm-workers", n_trials=4)),
        workers=2,
        storage=str(tmp_path / "optuna.journal"),
        tracking_uri=uri,
        runner=PERPLEXITY,
    )
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    trained = [t for t in done if "repeat_of" not in t.user_attrs]  # two workers may sample the same point
    assert len(trained) == 4 == counted_trials(study)  # a repeat does not spend the budget
    client = Tracker(uri).client
    for trial in trained:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.metrics["perplexity"] == trial.value and run.data.tags["workbench.direction"] == "minimize"
