"""The oneshot and iterative schedules and the four decay curves."""

from __future__ import annotations

import math

import pytest

from workbench.pruner import get_scheduler

FORMULAS = {
    "linear": lambda s0, t, x: s0 + (t - s0) * x,
    "cos": lambda s0, t, x: s0 + (t - s0) * (1 - math.cos(x * math.pi / 2)),
    "cube": lambda s0, t, x: s0 + (t - s0) * x**3,
    "exp": lambda s0, t, x: 1 - (1 - s0) * ((1 - t) / (1 - s0)) ** x,
}


def _sched(decay, start=2, end=14, freq=4):
    return get_scheduler(
        {"start_step": start, "end_step": end, "pruning_frequency": freq, "sparsity_decay_type": decay}
    )


@pytest.mark.parametrize("decay", sorted(FORMULAS))
@pytest.mark.parametrize("s0", [0.0, 0.3])
def test_decay_curves_follow_the_formulas(decay, s0):
    sched = _sched(decay)
    total = sched.total_prune_steps()
    assert total == 3
    values = [sched.update_sparsity_ratio(0.8, k, total, init_ratio=s0) for k in range(total + 1)]
    assert values == pytest.approx([FORMULAS[decay](s0, 0.8, k / total) for k in range(total + 1)])
    assert values[0] == pytest.approx(s0) and values[-1] == pytest.approx(0.8)
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    assert max(values) <= 0.8 + 1e-12


def test_oneshot_when_start_equals_end():
    sched = _sched("exp", start=5, end=5)
    assert type(sched).__name__ == "OneshotScheduler"
    assert sched.update_sparsity_ratio(0.7, 0, 0) == 0.7


def test_interval_count_ignores_a_partial_last_interval():
    assert _sched("linear", start=0, end=10, freq=4).total_prune_steps() == 2
