"""Sampled range values are exact: rounded to the grid's precision wherever they are logged or shown."""

from __future__ import annotations

import copy
from decimal import Decimal

import optuna
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.experiment import parse_experiment
from workbench.study.factories import make_sampler, suggest_params
from workbench.trial.space import grid_decimals, on_grid, sampled_params

BASE = {
    "name": "grid-values",
    "benchmark": "fake-bench",
    "training": {"steps": 4, "eval_every": 2, "threads": 1},
    "search_space": {"pattern": ["4x1"], "criterion": ["magnitude"], "scheduler": "oneshot"},
    "study": {"n_trials": 3, "sampler": "random", "objectives": ["accuracy"], "pruner": "none", "seed": 0},
}


def _decimals_written(value: float) -> int:
    exponent = Decimal(str(value)).as_tuple().exponent
    return max(0, -exponent)


@settings(max_examples=40, deadline=None)
@given(
    decimals=st.integers(1, 4),
    low_units=st.integers(0, 50),
    step_units=st.integers(1, 30),
    count=st.integers(1, 25),
    sampler=st.sampled_from(["random", "tpe", "grid"]),
    seed=st.integers(0, 1000),
)
def test_every_sampled_value_is_on_the_grid_in_its_short_form(decimals, low_units, step_units, count, sampler, seed):
    """For any low/high/step grid: each drawn value is round(value, decimals of the step) and str() is short."""
    scale = 10**decimals
    low, step = low_units / scale, step_units / scale
    high = round(low + count * step, decimals)
    ts_low, ts_high = 0.05, 0.95  # target_sparsity: a second stepped dimension in [0, 1)
    data = copy.deepcopy(BASE)
    lr_low, lr_high = round(low + 1 / scale, decimals), round(high + 1 / scale, decimals)
    data["search_space"]["lr"] = {"low": lr_low, "high": lr_high, "step": step}
    data["search_space"]["target_sparsity"] = {"low": ts_low, "high": ts_high, "step": 0.05}
    data["study"].update(sampler=sampler, seed=seed)
    exp = parse_experiment(data)
    places = grid_decimals(step, lr_low)
    assert places <= decimals
    study = optuna.create_study(sampler=make_sampler(exp))
    for _ in range(4):
        trial = study.ask()
        params = suggest_params(trial, exp)
        stored = sampled_params(trial.params, trial.distributions)  # what tables read back from the store
        for dim, d in (("lr", places), ("target_sparsity", 2)):
            value = params[dim]
            assert value == round(value, d)
            assert _decimals_written(value) <= d, str(value)
            assert str(stored[dim]) == str(value)
        study.tell(trial, 0.5)


def test_the_rule_names_the_value_the_file_wrote():
    """0.5 + 7 * 0.05 is 0.8500000000000001 in floats; the grid value is 0.85 and logs as '0.85'."""
    assert 0.5 + 7 * 0.05 != 0.85
    assert str(on_grid(0.5 + 7 * 0.05, 0.05, 0.5)) == "0.85"
    assert grid_decimals(0.05) == 2 and grid_decimals(1e-05) == 5 and grid_decimals(0.1, 0.33) == 2
    assert on_grid(0.123456789, None) == 0.123456789  # a continuous range is not rounded
