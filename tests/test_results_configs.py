"""workbench.results.configs: trials grouped by configuration, the metric averaged over seeds."""

from __future__ import annotations

import math
import statistics

from hypothesis import given
from hypothesis import strategies as st

from workbench.results.configs import by_configuration, configuration_knobs


def _row(trial, pattern, seed, acc, *, target=0.5, sparsity=0.5, **extra):
    return {
        "trial": trial,
        "pattern": pattern,
        "target": target,
        "seed": seed,
        "sparsity": sparsity,
        "accuracy": acc,
        "run_id": f"r{trial}",
        **extra,
    }


def test_the_seeds_of_one_configuration_become_one_row_with_mean_and_spread():
    rows = [_row(0, "2:4", 0, 0.9867), _row(1, "2:4", 1, 0.9750), _row(2, "2:4", 2, 0.9762), _row(3, "4x1", 0, 0.98)]
    configs = by_configuration(rows)
    assert [c["pattern"] for c in configs] == ["2:4", "4x1"]
    first = configs[0]
    assert math.isclose(first["accuracy"], (0.9867 + 0.9750 + 0.9762) / 3)
    assert math.isclose(first["accuracy_std"], statistics.stdev([0.9867, 0.9750, 0.9762]))
    assert (first["n_seeds"], first["trials"], first["run_ids"]) == (3, (0, 1, 2), ("r0", "r1", "r2"))
    assert "seed" not in first and first["accuracy_min"] == 0.9750 and first["accuracy_max"] == 0.9867
    assert configs[1]["n_seeds"] == 1 and math.isnan(configs[1]["accuracy_std"])


def test_every_knob_but_the_seed_separates_configurations():
    rows = [
        _row(0, "2:4", 0, 0.9, pruning_scope="global"),
        _row(1, "2:4", 0, 0.8, pruning_scope="local"),
        _row(2, "2:4", 0, 0.7, target=0.55),
    ]
    assert len(by_configuration(rows)) == 3
    assert "seed" not in configuration_knobs(rows) and {"pattern", "pruning_scope", "target"} <= set(
        configuration_knobs(rows)
    )


def test_runs_of_one_seed_weigh_once():
    rows = [_row(0, "2:4", 0, 1.0), _row(1, "2:4", 0, 1.0), _row(2, "2:4", 1, 0.7)]
    (config,) = by_configuration(rows)
    assert math.isclose(config["accuracy"], 0.85) and config["n_seeds"] == 2


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["2:4", "4x1"]),
            st.integers(0, 3),
            st.floats(0, 1, allow_nan=False),
            st.floats(0, 1, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_mean_lies_within_the_seeds_and_every_trial_is_counted_once(samples):
    rows = [_row(i, p, s, acc, sparsity=sp) for i, (p, s, acc, sp) in enumerate(samples)]
    configs = by_configuration(rows)
    assert sorted(t for c in configs for t in c["trials"]) == list(range(len(rows)))
    for c in configs:
        assert c["accuracy_min"] - 1e-12 <= c["accuracy"] <= c["accuracy_max"] + 1e-12
        assert c["sparsity_min"] - 1e-12 <= c["sparsity"] <= c["sparsity_max"] + 1e-12
        assert c["n_seeds"] == len({rows[t]["seed"] for t in c["trials"]})


@given(
    st.lists(
        st.tuples(st.sampled_from(["2:4", "4x1"]), st.integers(0, 2), st.floats(0, 1, allow_nan=False)),
        min_size=1,
        max_size=12,
    )
)
def test_grouping_configurations_again_changes_nothing(samples):
    rows = [_row(i, p, s, acc) for i, (p, s, acc) in enumerate(samples)]
    once = by_configuration(rows)
    twice = by_configuration(once)
    assert [c["trials"] for c in twice] == [c["trials"] for c in once]
    for a, b in zip(once, twice):
        assert a["n_seeds"] == b["n_seeds"] and a["accuracy"] == b["accuracy"]
        assert a["accuracy_std"] == b["accuracy_std"] or (
            math.isnan(a["accuracy_std"]) and math.isnan(b["accuracy_std"])
        )
