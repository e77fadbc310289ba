"""Optuna search with a stand-in trial runner: resume, early stopping, failures, objectives, storage.

The stand-in (a deterministic function of the params, no training) is injected into the study as
its :class:`~workbench.study.objective.TrialRunner`, so these tests check the study logic in seconds; the end-to-end tests in ``test_cli.py`` use the
real trial runner.
"""

from __future__ import annotations

import copy
import csv
import json

import optuna
import pytest
from optuna.trial import TrialState

from workbench.experiment import parse_experiment
from workbench.results.matched import MATCH_TOLERANCE, matched_levels
from workbench.study.factories import default_storage, make_storage
from workbench.study.repeats import REPEATS_IN_A_ROW
from workbench.study.run import run_study
from workbench.tracking import Tracker

from helpers.results import FAKE

EXPERIMENT = {
    "name": "fake",
    "benchmark": "fake-bench",
    "training": {"steps": 40, "eval_every": 10, "threads": 1},
    "search_space": {
        "pattern": ["4x1", "2:4"],
        "criterion": ["magnitude", "snip"],
        "scheduler": "oneshot",
        "target_sparsity": {"low": 0.5, "high": 0.9, "step": 0.1},
    },
    "study": {"n_trials": 3, "sampler": "random", "objectives": ["accuracy"], "pruner": "none", "seed": 0},
}


def _experiment(**study):
    data = copy.deepcopy(EXPERIMENT)
    data["study"].update(study)
    data["name"] = study.get("study_name", "fake")
    return parse_experiment(data)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(autouse=True)
def in_tmp(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def _children(tracker, parent_run_id):
    exp_id = tracker.client.get_run(parent_run_id).info.experiment_id
    return tracker.client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


@pytest.mark.e2e
def test_study_links_trials_and_runs_and_resumes_to_the_total(store):
    exp = _experiment(study_name="resume")
    study = run_study(exp, tracking_uri=store, runner=FAKE)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert optuna.get_all_study_names("sqlite:///optuna.db") == ["resume"]  # the embedded default storage
    tracker = Tracker(store)
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert tracker.client.get_run(parent).data.tags["workbench.study"] == "resume"
    runs = {r.info.run_id: r for r in _children(tracker, parent)}
    assert len(runs) == 3
    for trial in study.trials:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.data.tags["optuna.study_name"] == "resume"
        assert run.data.params["pattern"] == trial.params["pattern"]
        assert run.data.metrics["accuracy"] == trial.value

    study = run_study(exp, n_trials=5, tracking_uri=store, runner=FAKE)
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]  # exact repeats get no run
    assert len(trained) == 5 and [t.number for t in study.trials] == list(range(len(study.trials)))
    assert study.user_attrs["mlflow_parent_run_id"] == parent
    before = len(study.trials)
    study = run_study(exp, n_trials=5, tracking_uri=store, runner=FAKE)
    assert len(study.trials) == before and len(_children(tracker, parent)) == len(trained)
    artifacts = {f.path for f in tracker.client.list_artifacts(parent)}
    assert {"trials.csv", "best_so_far.png", "param_importances.json", "experiment.yaml"} <= artifacts
    rows = list(csv.DictReader(open(tracker.client.download_artifacts(parent, "trials.csv", "."))))
    assert [r["number"] for r in rows] == [str(n) for n in range(before)]
    importances = json.load(open(tracker.client.download_artifacts(parent, "param_importances.json", ".")))
    varied = {p for p in study.trials[0].params if len({t.params[p] for t in study.trials}) > 1}
    # scored at matched sparsity: the target's own effect is removed, so it is not a knob here
    assert varied and set(importances["importances"]) == varied - {"target_sparsity"}
    # shares of what the knobs explain beyond the sparsity: sum 1, or all 0 when the sparsity explains it all
    assert sum(importances["importances"].values()) in (pytest.approx(1.0), 0.0)
    assert tracker.client.get_run(parent).info.status == "FINISHED"


@pytest.mark.e2e
def test_importances_are_skipped_gracefully_with_one_trial(store):
    study = run_study(_experiment(study_name="one", n_trials=1), tracking_uri=store, runner=FAKE)
    tracker = Tracker(store)
    path = tracker.client.download_artifacts(study.user_attrs["mlflow_parent_run_id"], "param_importances.json", ".")
    assert "at least 3 complete trials" in json.load(open(path))["skipped"]


@pytest.mark.e2e
def test_early_stopping_marks_trials_pruned_in_optuna_and_mlflow(store):
    study = run_study(
        _experiment(study_name="median", n_trials=10, pruner="median", sampler="tpe"), tracking_uri=store, runner=FAKE
    )
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    client = Tracker(store).client
    for trial in pruned:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED" and run.data.tags["workbench.trial_state"] == "PRUNED"
        assert "early-stopped at step" in run.data.tags["workbench.reason"]
        assert len(client.get_metric_history(run.info.run_id, "eval/accuracy")) >= 1


@pytest.mark.e2e
def test_failed_trial_is_recorded_and_the_study_goes_on(store):
    data = copy.deepcopy(EXPERIMENT)
    data.update(name="failing")
    data["search_space"].update(pattern=["2:4"], pruner="progressive")
    study = run_study(parse_experiment(data), n_trials=2, tracking_uri=store, runner=FAKE)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    run = Tracker(store).client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "progressive needs an NxM pattern" in run.data.tags["workbench.reason"]


@pytest.mark.e2e
def test_multi_objective_study_logs_pareto_front_and_clips_nm_targets(store):
    study = run_study(
        _experiment(study_name="pareto", n_trials=6, sampler="nsga2", objectives=["accuracy", "sparsity"]),
        tracking_uri=store,
        runner=FAKE,
    )
    assert all(len(t.values) == 2 for t in study.trials if t.state == TrialState.COMPLETE)
    client = Tracker(store).client
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert {"accuracy_vs_sparsity.png", "best_at_matched_sparsity.csv"} <= {
        f.path for f in client.list_artifacts(parent)
    }
    matched = list(csv.DictReader(open(client.download_artifacts(parent, "best_at_matched_sparsity.csv", "."))))
    cells = [(r["matched_sparsity"], r["pattern"], r["criterion"]) for r in matched]
    assert matched and len(cells) == len(set(cells))  # one best per pattern x criterion x matched sparsity
    levels = matched_levels([t.values[1] for t in study.trials if t.values])
    for row in matched:  # the best of its cell, at the sparsity it reached, within the stated tolerance
        assert float(row["tolerance"]) == MATCH_TOLERANCE
        same = [
            t
            for t in study.trials
            if t.params["pattern"] == row["pattern"]
            and t.params["criterion"] == row["criterion"]
            and t.values
            and levels[t.values[1]] == row["matched_sparsity"]
        ]
        assert float(row["accuracy"]) == max(t.values[0] for t in same)
    metrics = client.get_run(parent).data.metrics
    assert any(k.startswith("best_accuracy/sparsity_") for k in metrics) and "best_accuracy" not in metrics
    for trial in study.trials:
        params = client.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        if trial.params["pattern"] == "2:4" and trial.params["target_sparsity"] > 0.5:
            assert float(params["target_sparsity"]) == 0.5
            assert float(params["requested_target_sparsity"]) == trial.params["target_sparsity"]
        else:
            assert float(params["target_sparsity"]) == trial.params["target_sparsity"]
            assert "requested_target_sparsity" not in params


@pytest.mark.e2e
def test_grid_sampler_total_is_capped_by_the_grid(store):
    data = copy.deepcopy(EXPERIMENT)
    data.update(name="grid")
    data["search_space"].update(
        pattern="4x1", criterion="magnitude", target_sparsity={"low": 0.5, "high": 0.7, "step": 0.1}
    )
    data["study"].update(sampler="grid", n_trials=10)
    study = run_study(parse_experiment(data), tracking_uri=store, runner=FAKE)
    assert sorted(t.params["target_sparsity"] for t in study.trials) == [0.5, 0.6, 0.7]


@pytest.mark.e2e
def test_a_grid_with_seeds_trains_every_point_once_per_seed(store):
    data = copy.deepcopy(EXPERIMENT)
    data.update(name="grid-seeds")
    data["search_space"].update(pattern=["4x1", "2:4"], criterion="magnitude", target_sparsity=0.5)
    data["study"].update(sampler="grid", n_trials=10, seeds=[0, 1, 2])
    study = run_study(parse_experiment(data), tracking_uri=store, runner=FAKE)
    trained = sorted((t.params["pattern"], t.user_attrs.get("seed", 0)) for t in study.trials)
    assert trained == [(p, s) for p in ("2:4", "4x1") for s in (0, 1, 2)]


def test_default_storage_follows_the_study():
    assert default_storage("new", 1) == "sqlite:///optuna.db"
    assert default_storage("new", 3) == "optuna.journal"
    optuna.create_study(study_name="in-journal", storage=make_storage("optuna.journal"))
    assert default_storage("in-journal", 1) == "optuna.journal"
    optuna.create_study(study_name="in-sqlite", storage=make_storage("sqlite:///optuna.db"))
    assert default_storage("in-sqlite", 4) == "sqlite:///optuna.db"


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_each_trial_number_has_its_own_random_stream(sampler):
    """Two processes sharing a study draw different points; a fresh run of the study draws the same ones."""
    from workbench.study.factories import make_sampler, suggest_params

    exp = _experiment(sampler=sampler, seed=3)
    storage = optuna.storages.InMemoryStorage()
    shared = [optuna.create_study(storage=storage, study_name="s", sampler=make_sampler(exp))]
    shared.append(optuna.load_study(storage=storage, study_name="s", sampler=make_sampler(exp)))  # a 2nd process
    drawn = []
    for number in range(4):
        trial = shared[number % 2].ask()
        drawn.append(suggest_params(trial, exp))
    again = optuna.create_study(sampler=make_sampler(exp))
    assert [suggest_params(again.ask(), exp) for _ in range(4)] == drawn
    assert drawn[0] != drawn[1] and len({tuple(sorted(d.items())) for d in drawn}) >= 3


def _space_experiment(name, space, **study):
    data = copy.deepcopy(EXPERIMENT)
    data["name"] = name
    data["search_space"].update(space)
    data["study"].update(study)
    return parse_experiment(data)


@pytest.mark.e2e
def test_conditional_space_samples_decay_only_for_iterative_and_nm_targets_up_to_n_over_m(store):
    exp = _space_experiment(
        "conditional",
        {
            "scheduler": ["oneshot", "iterative"],
            "sparsity_decay_type": ["exp", "cos", "linear", "cube"],
            "target_sparsity": {"low": 0.3, "high": 0.9, "step": 0.05},
        },
        n_trials=16,
        sampler="random",
    )
    study = run_study(exp, tracking_uri=store, runner=FAKE)
    client = Tracker(store).client
    seen = set()
    for trial in study.trials:
        params = trial.params
        seen.add((params["scheduler"], params["pattern"]))
        assert ("sparsity_decay_type" in params) == (params["scheduler"] == "iterative"), params
        if params["pattern"] == "2:4":
            assert params["target_sparsity"] <= 0.5, params
        logged = client.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        if params["scheduler"] == "oneshot":
            assert logged["sparsity_decay_type"] == "none"  # no effect, so not a misleading "exp"
        else:
            assert logged["sparsity_decay_type"] == params["sparsity_decay_type"]
        assert "requested_target_sparsity" not in logged  # nothing was sampled above N/M
    assert {"oneshot", "iterative"} <= {s for s, _ in seen} and {"4x1", "2:4"} <= {p for _, p in seen}


@pytest.mark.e2e
def test_an_exact_repeat_returns_the_stored_result_and_is_not_trained(store, caplog):
    exp = _space_experiment(
        "repeats",
        {"pattern": "4x1", "criterion": "magnitude", "target_sparsity": {"low": 0.5, "high": 0.6, "step": 0.1}},
        n_trials=6,
        sampler="random",
    )
    with caplog.at_level("INFO", logger="workbench"):
        study = run_study(exp, tracking_uri=store, runner=FAKE)
    originals = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert len(originals) == 2  # two distinct targets: the space holds no third configuration
    assert len(repeats) >= REPEATS_IN_A_ROW  # repeats do not spend the budget; the study stops on a run of them
    assert "stopped at 2 of 6 trained trials" in caplog.text and "exhausted" in caplog.text
    by_number = {t.number: t for t in study.trials}
    for trial in repeats:
        twin = by_number[trial.user_attrs["repeat_of"]]
        assert twin.params == trial.params and trial.values == twin.values
        assert trial.user_attrs["mlflow_run_id"] == twin.user_attrs["mlflow_run_id"]
        assert f"trial {trial.number} repeats trial {twin.number}" in caplog.text
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert len(_children(Tracker(store), parent)) == 2  # one MLflow run per trained configuration


@pytest.mark.e2e
def test_a_study_with_repeats_trains_n_trials_distinct_configurations(store, caplog):
    """Repeats return stored results but do not count: the study trains n_trials distinct points."""
    exp = _space_experiment(
        "distinct",
        {"pattern": "4x1", "criterion": "magnitude", "target_sparsity": {"low": 0.5, "high": 0.9, "step": 0.1}},
        n_trials=4,
        sampler="random",
        seed=1,
    )
    study = run_study(exp, tracking_uri=store, runner=FAKE)
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    assert len(trained) == 4 and len({t.user_attrs["point_key"] for t in trained}) == 4
    assert any("repeat_of" in t.user_attrs for t in study.trials)  # this seed draws a repeat within 4 trials
    assert len(_children(Tracker(store), study.user_attrs["mlflow_parent_run_id"])) == 4


@pytest.mark.e2e
def test_a_grid_with_clipped_repeats_stops_and_says_why(store, caplog):
    """2:4 at 0.6 and 0.7 both train 0.5: a 4-point grid holds 3 configurations; the study says so."""
    exp = _space_experiment(
        "grid-short",
        {
            "pattern": ["4x1", "2:4"],
            "criterion": "magnitude",
            "target_sparsity": {"low": 0.6, "high": 0.7, "step": 0.1},
        },
        n_trials=4,
        sampler="grid",
    )
    with caplog.at_level("INFO", logger="workbench"):
        study = run_study(exp, tracking_uri=store, runner=FAKE)
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    assert len(trained) == 3 and len(study.trials) == 4
    assert "stopped at 3 of 4 trained trials: every point of the grid has been run" in caplog.text


@pytest.mark.e2e
def test_explicit_seeds_train_each_configuration_once_per_seed(store):
    from workbench.analysis import seed_spread, trials_frame

    exp = _space_experiment(
        "seeded",
        {"pattern": "4x1", "criterion": "magnitude", "target_sparsity": {"low": 0.5, "high": 0.6, "step": 0.1}},
        n_trials=9,
        sampler="random",
        seeds=[0, 1, 2],
    )
    study = run_study(exp, tracking_uri=store, runner=FAKE)
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    pairs = sorted((t.params["target_sparsity"], t.user_attrs["seed"]) for t in trained)
    assert len(pairs) == len(set(pairs))  # never the same configuration and seed twice
    assert {s for _, s in pairs} == {0, 1, 2}
    frame = trials_frame("seeded", client=store)
    spread = seed_spread(frame[frame["state"] == "COMPLETE"], "target_sparsity")
    assert spread["n_seeds"].max() == 3 and (spread["n_seeds"] == spread["n_runs"]).all()


@pytest.mark.e2e
def test_sweep_target_puts_every_pattern_at_the_same_targets_and_they_are_compared(store):
    from workbench.results.matched import matched_rows
    from workbench.study.summary import result_rows

    exp = _space_experiment(
        "swept",
        {
            "pattern": ["4x1", "2:4"],
            "criterion": "magnitude",
            "target_sparsity": {"low": 0.3, "high": 0.7, "step": 0.1},
        },
        n_trials=8,
        sampler="nsga2",
        objectives=["accuracy", "sparsity"],
        sweep_target=True,
    )
    study = run_study(exp, tracking_uri=store, runner=FAKE)
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE and "repeat_of" not in t.user_attrs]
    reached = {(t.params["pattern"], round(t.params["target_sparsity"], 2)) for t in trained}
    # 4x1 at every target of the grid, 2:4 at every target up to N/M = 0.5: nothing left to the sampler
    assert reached == {("4x1", t) for t in (0.3, 0.4, 0.5, 0.6, 0.7)} | {("2:4", t) for t in (0.3, 0.4, 0.5)}
    assert len(trained) == 8
    shared = {}
    for row in matched_rows(result_rows(study), ("pattern",)):
        shared.setdefault(row["matched_sparsity"], set()).add(row["pattern"])
    assert [level for level, patterns in sorted(shared.items()) if patterns == {"4x1", "2:4"}] == [
        "0.300",
        "0.400",
        "0.500",
    ]
