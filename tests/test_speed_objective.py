"""Measured speed in a trial (``training.measure_speed``) and ``speedup`` as a study objective.

Timings are never compared (CPU latency is noisy): the tests check parameter counts, that the
latencies are measured (positive), and how the speed-up flows to Optuna, the tables and figures.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import math

import pandas as pd
import pytest
import torch

from workbench import analysis
from workbench.experiment import parse_experiment
from workbench.pruner import ConfigError
from workbench.results.figures import plot_metric_vs_speedup
from workbench.results.front import front, has_speed
from workbench.study.budget import log_trial
from workbench.study.run import run_study
from workbench.study.summary import summary_text
from workbench.tracking import Tracker
from workbench.tracking.artifacts import result_metrics
from workbench.tracking.spool import decode, encode
from workbench.trial import build_pruning_config, run_trial
from workbench.trial.speed import SPEED_KEYS, example_inputs
from workbench.trial.types import TrainingConfig

TRAINING = TrainingConfig(steps=10, eval_every=10, pruning_frequency=5, threads=1, measure_speed=True, speed_repeats=2)


def _trial(pattern: str, training: TrainingConfig = TRAINING):
    params = {"pattern": pattern, "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": 0.5}
    return run_trial("mlp-digits", build_pruning_config(params, training=training), training, 0)


@pytest.fixture(scope="module")
def channel_result():
    return _trial("channelx1")


def test_a_channel_pruned_trial_slims_to_fewer_parameters(channel_result):
    speed = channel_result.speed
    assert set(speed) == set(SPEED_KEYS)
    assert speed["slim_params"] < speed["dense_params"]
    assert speed["pruned_params"] == speed["dense_params"]  # masks zero weights, they remove none
    assert speed["pruned_nonzero_params"] < speed["dense_nonzero_params"]
    assert speed["slim_nonzero_params"] <= speed["slim_params"]
    assert speed["param_ratio"] == pytest.approx(speed["slim_params"] / speed["dense_params"])
    assert all(speed[f"{m}_ms"] > 0 for m in ("dense", "pruned", "slim"))
    assert speed["speedup"] == pytest.approx(speed["dense_ms"] / speed["slim_ms"]) and speed["speedup"] > 0


def test_speed_is_logged_as_metrics(channel_result):
    logged = {m.key: m.value for m in result_metrics(channel_result)}
    for key in ("dense_ms", "slim_ms", "speedup", "slim_params", "param_ratio"):
        assert logged[f"speed/{key}"] == pytest.approx(channel_result.speed[key])


@pytest.fixture(scope="module")
def unstructured_result():
    return _trial("1x1")


def test_unstructured_sparsity_does_not_slim(unstructured_result):
    speed = unstructured_result.speed
    assert speed["slim_params"] == speed["dense_params"]
    assert speed["slim_nonzero_params"] == speed["pruned_nonzero_params"] < speed["dense_params"]
    assert speed["param_ratio"] == 1.0


def test_speed_is_not_measured_by_default_and_measuring_changes_no_result(unstructured_result):
    result = _trial("1x1", dataclasses.replace(TRAINING, measure_speed=False))
    assert result.speed == {}
    assert result.value == unstructured_result.value and result.sparsity == unstructured_result.sparsity
    assert not any(m.key.startswith("speed/") for m in result_metrics(result))


def test_spooled_results_keep_speed_and_old_ones_still_decode(channel_result):
    assert decode(encode(channel_result)).speed == channel_result.speed
    old = encode(channel_result)
    del old["trial_result"]["speed"]  # spooled before the field existed
    assert decode(old).speed == {}


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"measure_speed": "yes"}, "training.measure_speed"),
        ({"measure_speed": 1}, "training.measure_speed"),
        ({"speed_repeats": 0}, "training.speed_repeats"),
        ({"speed_repeats": True}, "training.speed_repeats"),
    ],
)
def test_bad_speed_settings_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        TrainingConfig(**changes)


def test_example_inputs_take_the_inputs_of_the_first_batch():
    x, y = torch.ones(2, 3), torch.zeros(2)
    assert torch.equal(example_inputs([(x, y)], torch.device("cpu")), x)
    batch = example_inputs([{"input_ids": x, "labels": y}], torch.device("cpu"))
    assert set(batch) == {"input_ids", "labels"}
    with pytest.raises(ConfigError, match="measure_speed"):
        example_inputs([], torch.device("cpu"))


# ---- speedup as a study objective -----------------------------------------------------------

EXPERIMENT = {
    "name": "speed",
    "benchmark": "mlp-digits",
    "training": {"steps": 10, "eval_every": 10, "pruning_frequency": 5, "threads": 1, "speed_repeats": 2},
    "search_space": {
        "pattern": ["channelx1", "1x1"],
        "criterion": ["magnitude"],
        "scheduler": "oneshot",
        "target_sparsity": 0.5,
    },
    "study": {"n_trials": 2, "sampler": "grid", "objectives": ["accuracy", "speedup"], "seed": 0},
}


def _data(**changes):
    data = copy.deepcopy(EXPERIMENT)
    for key, value in changes.items():
        section, name = key.split(".")
        data[section][name] = value
    return data


def test_a_speedup_objective_turns_measure_speed_on():
    exp = parse_experiment(_data())
    assert exp.study.objectives == ("accuracy", "speedup") and exp.training.measure_speed
    assert not parse_experiment(_data(**{"study.objectives": ["accuracy", "sparsity"]})).training.measure_speed
    with pytest.raises(ConfigError, match="training.measure_speed"):
        parse_experiment(_data(**{"training.measure_speed": False}))


@pytest.mark.parametrize("objectives", [["accuracy", "latency"], ["speedup"], ["speedup", "accuracy"]])
def test_a_bad_objective_lists_the_allowed_forms(objectives):
    with pytest.raises(ConfigError, match=r"study.objectives.*\[<metric>, sparsity\] or \[<metric>, speedup\]"):
        parse_experiment(_data(**{"study.objectives": objectives}))


@pytest.mark.e2e
def test_a_study_maximises_accuracy_and_speedup(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    with caplog.at_level(logging.INFO, logger="workbench.study.workers"):
        study = run_study(parse_experiment(_data()), tracking_uri=store)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    by_pattern = {t.params["pattern"]: t for t in study.trials}
    for trial in study.trials:
        assert trial.values[1] == trial.user_attrs["speedup"] > 0
    assert by_pattern["channelx1"].user_attrs["param_ratio"] < 1.0 == by_pattern["1x1"].user_attrs["param_ratio"]
    text = summary_text(study, multi_objective=True, parent_url="http://x", experiment="speed")
    assert "Pareto front, accuracy vs measured speed-up" in text and "speedup" in text
    log_trial(study, study.trials[0])
    assert f"speedup={study.trials[0].values[1]:.3f}" in caplog.text
    tracker = Tracker(store)
    parent = study.user_attrs["mlflow_parent_run_id"]
    artifacts = {f.path for f in tracker.client.list_artifacts(parent)}
    assert {"accuracy_vs_speedup.png", "accuracy_vs_sparsity.png", "trials.csv"} <= artifacts
    rows = list(csv.DictReader(open(tracker.client.download_artifacts(parent, "trials.csv", str(tmp_path)))))
    assert all(float(r["speedup"]) > 0 for r in rows)
    run = tracker.client.get_run(by_pattern["channelx1"].user_attrs["mlflow_run_id"])
    assert run.data.metrics["speed/slim_params"] < run.data.metrics["speed/dense_params"]
    frame = analysis.trials_frame("speed", client=store)
    assert analysis.has_speed(frame) and frame["speedup"].tolist() == [t.values[1] for t in study.trials]
    fig = analysis.plot_speedup(frame, metric="accuracy")
    points = {tuple(p) for c in fig.axes[0].collections for p in c.get_offsets()}
    assert {(t.values[1], t.values[0]) for t in study.trials} <= points


def test_the_front_and_figure_use_the_speedup_axis():
    rows = [
        {"trial": 0, "pattern": "channelx1", "criterion": "magnitude", "accuracy": 0.90, "speedup": 2.0},
        {"trial": 1, "pattern": "1x1", "criterion": "magnitude", "accuracy": 0.95, "speedup": 1.0},
        {"trial": 2, "pattern": "1x1", "criterion": "snip", "accuracy": 0.80, "speedup": 1.5},
        {"trial": 3, "pattern": "4x1", "criterion": "snip", "accuracy": 0.99, "speedup": math.nan},
    ]
    assert [r["trial"] for r in front(rows, axis="speedup")] == [1, 0]
    assert has_speed(rows) and not has_speed([{"speedup": math.nan}, {}])
    assert not analysis.has_speed(pd.DataFrame({"accuracy": [0.9], "speedup": [math.nan]}))
    assert not analysis.has_speed(pd.DataFrame({"accuracy": [0.9]}))
    fig = plot_metric_vs_speedup(rows, dense=0.97, front=front(rows, axis="speedup"))
    ax = fig.axes[0]
    assert "speed-up" in ax.get_xlabel()
    points = [tuple(p) for c in ax.collections for p in c.get_offsets()]
    assert (1.0, 0.97) in points  # the dense model at speed-up 1.0
    assert (2.0, 0.90) in points and not any(y == 0.99 for _, y in points)  # no speed-up, not drawn


@pytest.mark.parametrize("speed", [True, False])
def test_the_notebook_cell_draws_the_speedup_figure_only_with_speed(speed):
    from matplotlib.figure import Figure

    from tools.build_notebooks import NOTEBOOKS

    (cell,) = [c for c in NOTEBOOKS["01_study_overview"] if c.startswith("if analysis.has_speed(complete)")]
    complete = pd.DataFrame(
        {
            "trial": [0, 1],
            "pattern": ["channelx1", "1x1"],
            "criterion": ["magnitude"] * 2,
            "accuracy": [0.9, 0.95],
            "dense_accuracy": [0.97, 0.97],
            "speedup": [2.0, 1.0] if speed else [math.nan, math.nan],
        }
    )
    shown: list = []
    exec(
        cell,
        {
            "analysis": analysis,
            "complete": complete,
            "METRIC": "accuracy",
            "DIRECTION": "maximize",
            "display": shown.append,
        },
    )
    figures = [s for s in shown if isinstance(s, Figure)]
    assert len(figures) == (1 if speed else 0)
