"""The end of `workbench search`: the console summary, labelled trial lines, trials.csv rows."""

from __future__ import annotations

import logging

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from workbench.results.front import front
from workbench.results.matched import best_per_level, sparsity_bin
from workbench.study.budget import log_trial
from workbench.study.report import trial_rows
from workbench.study.summary import result_rows, summary_text
from workbench.tracking.ui import run_url, runs_url, ui_base

DISTS = {
    "pattern": CategoricalDistribution(["4x1", "2:4"]),
    "criterion": CategoricalDistribution(["magnitude", "snip_momentum"]),
    "scheduler": CategoricalDistribution(["oneshot", "iterative"]),
    "target_sparsity": FloatDistribution(0.5, 0.9, step=0.1),
}
# (pattern, criterion, target, reached sparsity, accuracy)
TRIALS = [
    ("4x1", "magnitude", 0.6, 0.600, 0.95),  # 0: front
    ("4x1", "snip_momentum", 0.8, 0.800, 0.90),  # 1: front
    ("2:4", "magnitude", 0.8, 0.500, 0.97),  # 2: front; target clipped to 0.5
    ("2:4", "snip_momentum", 0.5, 0.500, 0.93),  # 3: dominated by 2
    ("4x1", "magnitude", 0.7, 0.650, 0.96),  # 4: front; 0.05 above trial 0, so never matched with it
]


def _study(multi: bool = True) -> optuna.Study:
    study = optuna.create_study(directions=["maximize"] * (2 if multi else 1), study_name="demo")
    for i, (pattern, criterion, target, reached, accuracy) in enumerate(TRIALS):
        params = {"pattern": pattern, "criterion": criterion, "scheduler": "oneshot", "target_sparsity": target}
        values = [accuracy, reached] if multi else [accuracy]
        attrs = {"sparsity": reached, "seed": 0, "mlflow_run_id": f"run{i}"}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=DISTS, values=values, user_attrs=attrs))
    repeat = dict(study.trials[0].user_attrs, repeat_of=0)
    study.add_trial(
        optuna.trial.create_trial(
            params=study.trials[0].params, distributions=DISTS, values=study.trials[0].values, user_attrs=repeat
        )
    )
    return study


def test_rows_leave_out_repeats_and_show_the_effective_target():
    rows = result_rows(_study())
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[2]["target"] == 0.5 and rows[2]["sparsity"] == 0.5


def test_a_dense_value_stored_before_0_1_0_is_read_with_a_warning_naming_its_removal():
    study = optuna.create_study(directions=["maximize", "maximize"], study_name="old")
    params = {"pattern": "4x1", "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": 0.6}
    for attrs in ({"sparsity": 0.6, "dense_value": 0.97}, {"sparsity": 0.6, "dense_accuracy": 0.96}):
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=DISTS, values=[0.9, 0.6], user_attrs=attrs)
        )
    with pytest.warns(FutureWarning, match=r"'dense_accuracy'.*until workbench 0\.2\.0"):
        rows = result_rows(study, "accuracy")
    assert [r["dense_accuracy"] for r in rows] == [0.97, 0.96]


def test_front_and_best_per_pattern_at_matched_sparsity():
    rows = result_rows(_study())
    assert [r["trial"] for r in front(rows)] == [2, 4, 1]
    table = best_per_level(rows, ("pattern",))
    # 0.600 and 0.650 are 0.05 apart: two levels, never one comparison
    assert {k: v["trial"] for k, v in table[("4x1",)].items()} == {"0.600": 0, "0.650": 4, "0.800": 1}
    assert {k: v["trial"] for k, v in table[("2:4",)].items()} == {"0.500": 2}


@pytest.mark.parametrize("value, label", [(0.5, "0.50"), (0.59999999, "0.60"), (0.649, "0.65")])
def test_sparsity_names_in_metric_keys(value, label):
    assert sparsity_bin(value) == label


@pytest.mark.parametrize("multi, heading", [(True, "Pareto front"), (False, "Best trials by accuracy")])
def test_summary_text_tables_and_next_steps(multi, heading):
    text = summary_text(_study(multi), multi_objective=multi, parent_url="http://h/#/x", experiment="demo")
    assert "6 trials (6 complete; 1 exact repeats not trained)" in text
    assert heading in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial  pattern"))
    assert lines[header].split() == [
        "trial",
        "pattern",
        "criterion",
        "target",
        "sparsity",
        "accuracy",
        "run_id",
    ]  # every trial is oneshot: the scheduler does not vary, so it is not a column
    first = lines[header + 1].split()
    assert first[:5] == ["2", "2:4", "magnitude", "0.50", "0.500"]  # effective target, reached sparsity
    matched = lines[lines.index(next(line for line in lines if line.startswith("Best accuracy per pattern"))) + 1]
    assert matched.split() == ["pattern", "0.500", "0.600", "0.650", "0.800"]
    assert "matched: reached sparsity within 0.01" in text and "held fixed" not in text
    assert "http://h/#/x" in text and "make notebooks EXPERIMENT=demo" in text


def test_trial_lines_are_labelled_with_effective_targets(caplog):
    study = _study()
    with caplog.at_level(logging.INFO, logger="workbench.study.workers"):
        log_trial(study, study.trials[2])
        log_trial(study, study.trials[5])
    first, second = [r.getMessage() for r in caplog.records if r.name == "workbench.study.workers"]
    assert "accuracy=0.9700 sparsity=0.500" in first and "target_sparsity=0.5]" in first
    assert "repeat of trial 0" in second


def test_trials_csv_rows_hold_the_effective_target_and_the_sampled_one():
    rows = trial_rows(_study(), ("accuracy", "sparsity"))
    assert rows[2]["target_sparsity"] == 0.5 and rows[2]["requested_target_sparsity"] == 0.8
    assert "requested_target_sparsity" not in rows[0] and rows[5]["repeat_of"] == 0 and rows[0]["seed"] == 0


def test_ui_addresses():
    assert ui_base("sqlite:///mlflow.db") == "http://127.0.0.1:5000"
    assert ui_base("http://tracking:5000/") == "http://tracking:5000"
    assert run_url("http://h", "3", "r") == "http://h/#/experiments/3/runs/r"
    url = runs_url("http://h", "3", study="my study")
    assert url.startswith(
        "http://h/#/experiments/3/runs?searchFilter=tags.%60optuna.study_name%60%20%3D%20%27my%20study%27"
    )
    assert url.endswith("orderByKey=metrics.%60accuracy%60&orderByAsc=false")


def test_every_knob_that_varies_is_a_column_and_no_knob_that_does_not():
    """Two trials that differ only in decay type and scope are two rows with those columns shown."""
    dists = {
        "pattern": CategoricalDistribution(["4x1"]),
        "scheduler": CategoricalDistribution(["iterative"]),
        "sparsity_decay_type": CategoricalDistribution(["exp", "linear"]),
        "pruning_scope": CategoricalDistribution(["global", "local"]),
        "target_sparsity": FloatDistribution(0.5, 0.9, step=0.05),
    }
    study = optuna.create_study(directions=["maximize", "maximize"], study_name="knobs")
    for i, (decay, scope, seed) in enumerate([("exp", "global", 0), ("linear", "local", 0), ("exp", "global", 1)]):
        params = {
            "pattern": "4x1",
            "scheduler": "iterative",
            "sparsity_decay_type": decay,
            "pruning_scope": scope,
            "target_sparsity": 0.8500000000000001,
        }
        reached = 0.85 - i / 20  # configuration (exp, global): 0.80 at 0.91 mean; (linear, local) beats it
        attrs = {"sparsity": reached, "seed": seed, "mlflow_run_id": f"run{i}"}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, values=[(0.90, 0.95, 0.92)[i], reached], user_attrs=attrs
            )
        )
    text = summary_text(study, multi_objective=True, parent_url="http://x", experiment="knobs")
    header = next(line for line in text.splitlines() if line.startswith("trial"))
    # trials 0 and 2 are one configuration (seeds 0 and 1): its mean, spread and n_seeds, no seed column
    assert header.split() == [
        "trials", "pruning_scope", "sparsity_decay_type", "target", "sparsity", "accuracy", "±", "std", "n_seeds"
    ]  # fmt: skip
    assert "linear" in text and "local" in text
    assert "pattern" not in header and "scheduler" not in header  # one value in the whole study: hidden
    one_seed = [r for r in result_rows(study) if r["seed"] == 0]
    from workbench.study.summary import table_columns

    assert "seed" not in table_columns(one_seed)


@pytest.mark.parametrize("seeds, shown", [([0], False), ([0, 1, 2], True)])
def test_trial_lines_show_the_seed_when_the_study_has_several(caplog, seeds, shown):
    study = _study()
    study.set_user_attr("seeds", seeds)
    with caplog.at_level(logging.INFO, logger="workbench.study.workers"):
        log_trial(study, study.trials[2])
    (line,) = [r.getMessage() for r in caplog.records if r.name == "workbench.study.workers"]
    assert ("seed=0]" in line) is shown


def test_a_layer_warning_every_trial_repeats_prints_once_per_study(caplog):
    """The CNN's first convolution is not divisible by M=4 under every 2:4 trial: one line, not one per trial."""
    import torch

    from workbench.pruner import WeightPruningConfig, prepare_pruning
    from workbench.study.console import once_per_study

    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 16), torch.nn.Linear(16, 4)
    )
    config = WeightPruningConfig(pattern="2:4", target_sparsity=0.5, pruning_type="magnitude", start_step=1, end_step=1)
    with caplog.at_level(logging.WARNING, logger="workbench.pruner"), once_per_study():
        for _ in range(3):  # three trials in one study
            prepare_pruning(model, config)
    lines = [r.getMessage() for r in caplog.records if "not divisible by M=4" in r.getMessage()]
    assert len(lines) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="workbench.pruner"):
        prepare_pruning(model, config)  # outside a study: printed as before
    assert any("not divisible by M=4" in r.getMessage() for r in caplog.records)
