"""Experiment YAML schema: validation rules, infeasible-combination handling, --set overrides."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from workbench.experiment import FloatRange, effective_params, load_experiment, parse_experiment
from workbench.experiment.overrides import apply_overrides

ROOT = Path(__file__).resolve().parent.parent

BASE = {
    "name": "t",
    "benchmark": "mlp-digits",
    "training": {"steps": 20, "eval_every": 5},
    "search_space": {
        "pattern": ["4x1", "2:4"],
        "criterion": ["magnitude", "snip_momentum"],
        "scheduler": "oneshot",
        "target_sparsity": {"low": 0.5, "high": 0.9, "step": 0.1},
    },
    "study": {"n_trials": 4, "sampler": "tpe", "objectives": ["accuracy"], "pruner": "median", "seed": 1},
}


def _with(path: str, value) -> dict:
    """BASE with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_base_is_valid_and_parsed():
    exp = parse_experiment(BASE)
    assert exp.study_name == "t"
    assert exp.search_space["scheduler"] == ["oneshot"]
    assert exp.search_space["target_sparsity"] == FloatRange(0.5, 0.9, 0.1)
    assert exp.searched_dims() == ["pattern", "criterion", "target_sparsity"]
    assert exp.training.steps == 20 and exp.training.lr == 0.01
    assert exp.default_point() == {
        "pattern": "4x1",
        "criterion": "magnitude",
        "scheduler": "oneshot",
        "target_sparsity": 0.7,
    }


@pytest.mark.parametrize(
    "path, value, key, words",
    [
        ("nmae", "x", "nmae", "did you mean 'name'"),
        ("search_space.patern", ["4x1"], "search_space.patern", "did you mean 'pattern'"),
        ("training.step", 5, "training.step", "did you mean 'steps'"),
        ("study.sampeler", "tpe", "study.sampeler", "did you mean 'sampler'"),
        ("name", 3, "name", "non-empty string"),
        ("training.steps", "many", "training.steps", "integer"),
        ("training.steps", 2.5, "training.steps", "integer"),
        ("training.lr", True, "training.lr", "number"),
        ("training.steps", 0, "training.steps", ">= 1"),
        ("training.optimizer", "adam", "training.optimizer", "sgd, adamw"),
        ("training.start_fraction", 0.9, "training.start_fraction", "end_fraction"),
        ("search_space.pattern", [], "search_space.pattern", "non-empty"),
        ("search_space.criterion", [], "search_space.criterion", "non-empty"),
        ("search_space.pattern", ["4x1", "4x1"], "search_space.pattern", "duplicate"),
        ("search_space.pattern", ["4y1"], "search_space.pattern[0]", "4y1"),
        ("search_space.pattern", [124], "search_space.pattern[0]", "quote it"),
        ("search_space.criterion", ["magnitud"], "search_space.criterion[0]", "allowed"),
        ("search_space.pruning_scope", ["world"], "search_space.pruning_scope[0]", "global"),
        ("search_space.target_sparsity", {"low": 0.9, "high": 0.5}, "search_space.target_sparsity", "<= high"),
        ("search_space.target_sparsity", {"low": 0.5, "high": 1.0}, "search_space.target_sparsity", "[0, 1)"),
        ("search_space.target_sparsity", {"low": 0.5}, "search_space.target_sparsity.high", "missing"),
        (
            "search_space.target_sparsity",
            {"low": 0.1, "high": 0.5, "step": 0.0},
            "search_space.target_sparsity.step",
            "> 0",
        ),
        (
            "search_space.target_sparsity",
            {"low": 0.1, "high": 0.5, "stp": 0.1},
            "search_space.target_sparsity.stp",
            "did you mean 'step'",
        ),
        ("search_space.lr", {"low": 0.0, "high": 0.1}, "search_space.lr.low", "> 0"),
        ("search_space.lr", {"low": 0.01, "high": 0.1, "step": 0.01, "log": True}, "search_space.lr.log", "both"),
        ("search_space.target_sparsity", ..., "search_space.target_sparsity", "missing"),
        ("search_space", ["pattern"], "search_space", "mapping"),
        ("study.sampler", "bayes", "study.sampler", "tpe, random, nsga2, grid"),
        ("study.pruner", "asha", "study.pruner", "median, hyperband, none"),
        ("study.objectives", ["sparsity"], "study.objectives", "[<metric>, sparsity]"),
        ("study.objectives", ["accuracy", "loss"], "study.objectives", "[<metric>, sparsity]"),
        ("study.objectives", [], "study.objectives", "[<metric>]"),
        ("study.objectives", "accuracy", "study.objectives", "[<metric>]"),
        ("benchmark_params", [32], "benchmark_params", "mapping"),
        ("benchmark_params", {"not a name": 1}, "benchmark_params.not a name", "identifier"),
        ("study.objectives", ["accuracy", "sparsity"], "study.pruner", "single objective"),
        ("study.n_trials", 0, "study.n_trials", ">= 1"),
        ("study.seeds", [], "study.seeds", "non-empty list of integers"),
        ("study.seeds", [0, "1"], "study.seeds", "non-empty list of integers"),
        ("study.seeds", 3, "study.seeds", "non-empty list of integers"),
        ("study.seeds", [0, 1, 0], "study.seeds", "distinct"),
        ("pruning.pattern", "4x1", "pruning.pattern", "search_space"),
    ],
)
def test_validation_error_names_the_key(path, value, key, words):
    with pytest.raises(ValueError) as info:
        parse_experiment(_with(path, value))
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert words in message
    assert "\n" not in message


def test_grid_sampler_needs_steps_on_ranges():
    data = _with("study.sampler", "grid")
    data["search_space"]["target_sparsity"] = {"low": 0.5, "high": 0.9}
    with pytest.raises(ValueError, match=r"^search_space.target_sparsity.step: required by sampler grid"):
        parse_experiment(data)


def test_nm_target_is_clipped_to_pattern_maximum():
    assert effective_params({"pattern": "2:4", "target_sparsity": 0.8})["target_sparsity"] == 0.5
    assert effective_params({"pattern": "1:4", "target_sparsity": 0.8})["target_sparsity"] == 0.25
    assert effective_params({"pattern": "2:4", "target_sparsity": 0.3})["target_sparsity"] == 0.3
    assert effective_params({"pattern": "4x1", "target_sparsity": 0.8})["target_sparsity"] == 0.8


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"study.sweep_target": "yes"}, "study.sweep_target: 'yes' is not allowed; allowed: true, false"),
        ({"study.sweep_target": 1}, "study.sweep_target: 1 is not allowed; allowed: true, false"),
        (
            {"study.sweep_target": True, "search_space.target_sparsity": {"low": 0.5, "high": 0.9}},
            "study.sweep_target: true needs search_space.target_sparsity as a range with a step",
        ),
        (
            {"study.sweep_target": True, "search_space.target_sparsity": 0.5},
            "study.sweep_target: true needs search_space.target_sparsity as a range with a step (the targets swept), got 0.5",
        ),
        (
            {"study.sweep_target": True, "study.sampler": "grid"},
            "study.sweep_target: true is not allowed with sampler grid",
        ),
    ],
)
def test_sweep_target_is_checked_when_the_file_is_read(change, words):
    data = copy.deepcopy(BASE)
    for path, value in change.items():
        section, key = path.split(".")
        data[section][key] = value
    with pytest.raises(ValueError) as info:
        parse_experiment(data)
    assert str(info.value).startswith(words) and "\n" not in str(info.value)


def test_sweep_target_defaults_to_off_and_reads_true():
    assert parse_experiment(BASE).study.sweep_target is False
    assert parse_experiment(_with("study.sweep_target", True)).study.sweep_target is True


def test_trial_seeds_are_the_seeds_list_else_the_study_seed():
    assert parse_experiment(BASE).study.trial_seeds == (1,)
    assert parse_experiment(_with("study.seeds", [0, 1, 2])).study.trial_seeds == (0, 1, 2)


def test_range_helpers():
    assert FloatRange(0.5, 0.9, 0.1).grid() == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert FloatRange(0.001, 0.1, log=True).midpoint() == pytest.approx(0.01)
    assert FloatRange(0.5, 0.8, 0.1).midpoint() in (0.6, 0.7)


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiments_are_valid(path):
    exp = load_experiment(path)
    assert exp.study.n_trials >= 1 and exp.searched_dims()


def test_load_experiment_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="^experiment: no such file"):
        load_experiment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML at line"):
        load_experiment(bad)
    python_tag = tmp_path / "tag.yaml"
    python_tag.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_experiment(python_tag)


def test_overrides_set_point_training_pruning_and_seed():
    exp, point, seed = apply_overrides(
        parse_experiment(BASE),
        [
            "pattern=2:4",
            "target_sparsity=0.4",
            "training.steps=7",
            "pruning.max_sparsity_ratio_per_op=0.9",
            "seed=5",
            "pruning_scope=local",
        ],
    )
    assert point == {
        "pattern": "2:4",
        "criterion": "magnitude",
        "scheduler": "oneshot",
        "target_sparsity": 0.4,
        "pruning_scope": "local",
    }
    assert exp.training.steps == 7 and exp.pruning == {"max_sparsity_ratio_per_op": 0.9} and seed == 5


@pytest.mark.parametrize(
    "item, words",
    [
        ("patern=4x1", "--set patern: unknown key; did you mean 'pattern'"),
        ("pattern", "--set: expected key=value"),
        ("criterion=foo", "--set criterion: 'foo' is not allowed"),
        ("target_sparsity=1.5", "--set target_sparsity: low and high must lie in [0, 1)"),
        ("training.steps=0", "--set training.steps: must be >= 1"),
        ("training.stepz=3", "--set training.stepz: unknown key"),
        ("seed=abc", "--set seed: expected an integer"),
        ("pruning.pattern=4x1", "--set pruning.pattern: 'pattern' is a search-space dimension"),
    ],
)
def test_bad_overrides(item, words):
    with pytest.raises(ValueError) as info:
        apply_overrides(parse_experiment(BASE), [item])
    assert str(info.value).startswith(words), str(info.value)


@pytest.mark.parametrize(
    "low, high, step, grid",
    [
        (0.5, 0.6, 0.1, [0.5, 0.6]),  # 0.6 - 0.5 is 0.0999... in floats: still one step
        (0.1, 0.7, 0.3, [0.1, 0.4, 0.7]),
        (0.5, 0.9, 0.05, [round(0.5 + 0.05 * i, 10) for i in range(9)]),
    ],
)
def test_a_step_equal_to_the_width_in_decimal_is_accepted_despite_float_rounding(low, high, step, grid):
    from workbench.experiment.schema import parse_range

    assert parse_range("target_sparsity", {"low": low, "high": high, "step": step}, "k").grid() == grid


def test_objectives_default_to_the_tasks_metric_and_its_direction():
    from workbench.experiment import with_task

    data = _with("study.pruner", "none")
    del data["study"]["objectives"]
    exp = parse_experiment(data)
    assert exp.study.objectives == () and exp.metric == "accuracy"  # not known before the task is built
    lm = with_task(exp, "perplexity", "minimize")
    assert lm.study.objectives == ("perplexity",) and lm.metric == "perplexity" and lm.direction == "minimize"
    data = _with("study.objectives", ["perplexity", "sparsity"])
    data["study"]["pruner"] = "none"
    both = with_task(parse_experiment(data), "perplexity", "minimize")
    assert both.study.objectives == ("perplexity", "sparsity") and both.multi_objective


def test_an_objective_naming_another_metric_than_the_tasks_is_one_line_naming_the_allowed_ones():
    from workbench.experiment import with_task

    exp = parse_experiment(_with("study.objectives", ["accuracy"]))
    with pytest.raises(ValueError) as info:
        with_task(exp, "perplexity", "minimize")
    message = str(info.value)
    assert message.startswith("study.objectives: ['accuracy'] is not allowed") and "\n" not in message
    assert "[perplexity], [perplexity, sparsity] or [perplexity, speedup]" in message
    assert with_task(exp, "accuracy", "maximize").study.objectives == ("accuracy",)  # the built-ins: as before


def test_benchmark_params_are_kept_and_overridable():
    from workbench.experiment import apply_overrides

    exp = parse_experiment(dict(_with("study.pruner", "none"), benchmark_params={"hidden": 32}))
    assert exp.benchmark_params == {"hidden": 32}
    changed, _, _ = apply_overrides(exp, ["benchmark_params.hidden=64", "benchmark_params.extra=[1, 2]"])
    assert changed.benchmark_params == {"hidden": 64, "extra": [1, 2]} and exp.benchmark_params == {"hidden": 32}
