"""The overhead bench compares like with like: its hand loop trains as the trial does."""

from __future__ import annotations

import pytest

from tools.bench_overhead import TYPICAL, hand_loop, measure_overhead
from workbench.benchmarks import get_benchmark, load_dense_baseline
from workbench.trial import build_pruning_config, run_trial
from workbench.trial.types import TrainingConfig


@pytest.mark.slow
def test_the_hand_loop_reaches_the_trials_metric():
    training = TrainingConfig(steps=30, eval_every=10, pruning_frequency=5, threads=1)
    task = get_benchmark("mlp-digits")
    config = build_pruning_config(TYPICAL, training=training)
    dense, _ = load_dense_baseline(task, 0)
    result = run_trial(task, config, training, 0)
    assert hand_loop(task, dense, config, training, 0) == result.value
    assert result.final_sparsity["blockwise_over_matmul_gemm_conv"] > 0.5  # it did prune


def test_measure_overhead_reports_both_medians():
    training = TrainingConfig(steps=10, eval_every=5, pruning_frequency=2, threads=1)
    m = measure_overhead("mlp-digits", repeats=1, training=training)
    assert set(m) == {"hand", "trial"} and m["hand"] > 0 and m["trial"] > 0


def test_the_study_timeline_records_every_call_of_a_timed_step_even_a_failing_one():
    from tools.study_timeline import timed

    steps: list = []

    def fail():
        raise RuntimeError("boom")

    add = timed(steps, lambda x: x + 1, "add")
    assert add(1) == 2 and add(2) == 3
    with pytest.raises(RuntimeError):
        timed(steps, fail, "fail")()
    assert [name for name, _, _ in steps] == ["add", "add", "fail"]
    assert all(start <= end for _, start, end in steps) and steps[0][2] <= steps[1][1]
