"""n/N and an ETA while a long trial runs: the heartbeat line, its estimate, and its wiring into a study."""

from __future__ import annotations

import copy
import logging
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.experiment import parse_experiment
from workbench.study import heartbeat
from workbench.study.heartbeat import Heartbeat, eta_seconds, format_duration, progress_line
from workbench.study.objective import TrialRunner
from workbench.study.run import run_study

from helpers.results import FAKE, fake_run_trial


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bar:
    def __init__(self) -> None:
        self.postfix: list[str] = []

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix.append(text)


def test_a_beat_says_the_trial_its_step_n_of_n_and_an_eta(caplog):
    clock, bar = Clock(), Bar()
    state = {"trial": 7, "step": 100, "steps": 300}
    beat = Heartbeat(lambda: state, total=24, progress=bar, clock=clock)
    assert beat.beat() is None  # no trial running: nothing to say
    beat.trial_started(done=6, durations=[], parallel=1)
    clock.now += 120.0
    with caplog.at_level(logging.INFO, logger="workbench.study.workers"):
        line = beat.beat()
    # no trial finished yet: its pace (120 s for 100 of 300 steps) is 360 s a trial: 240 s + 17 x 360 s
    assert line == "trial 7 running 2m00s (step 100/300); 6/24 trials done; ETA ~1h46m"
    assert line in caplog.text and bar.postfix == ["trial 7 running 2m00s (step 100/300)"]
    beat.trial_ended()
    assert beat.beat() is None


def test_before_the_first_step_of_the_first_trial_there_is_no_estimate():
    clock = Clock()
    beat = Heartbeat(lambda: {"trial": 0, "step": 0, "steps": 300}, total=3, clock=clock)
    beat.trial_started(done=0, durations=[])
    clock.now += 5
    assert beat.beat() == "trial 0 running 5s; 0/3 trials done; ETA after the first step or trial"


def test_eta_uses_finished_trials_and_shares_the_rest_among_workers():
    assert eta_seconds(elapsed=60.0, done=2, total=4, durations=[100.0, 140.0]) == 180.0
    assert eta_seconds(elapsed=60.0, done=2, total=6, durations=[120.0], parallel=3) == 60.0 + 3 * 120.0 / 3
    assert eta_seconds(elapsed=500.0, done=0, total=1, durations=[120.0]) == 0.0  # overdue, never negative
    assert eta_seconds(elapsed=10.0, done=0, total=2, durations=[]) is None
    assert [format_duration(s) for s in (0, 59.4, 61, 3600, 7620)] == ["0s", "59s", "1m01s", "1h00m", "2h07m"]
    assert progress_line(number=None, elapsed=1, done=0, total=1, eta=None).startswith("a trial running 1s;")


@given(
    st.floats(0, 1e5),
    st.integers(0, 50),
    st.integers(1, 60),
    st.lists(st.floats(0.1, 1e4), max_size=5),
    st.integers(0, 300),
    st.integers(1, 8),
)
def test_the_eta_is_never_negative_and_never_grows_as_trials_finish(elapsed, done, total, durations, step, parallel):
    kwargs = {"elapsed": elapsed, "total": total, "durations": durations, "step": step, "steps": 300}
    eta = eta_seconds(done=done, parallel=parallel, **kwargs)
    if eta is None:
        assert not durations and step == 0
        return
    assert eta >= 0
    assert eta_seconds(done=done + 1, parallel=parallel, **kwargs) <= eta + 1e-6


@pytest.mark.e2e
def test_a_study_logs_the_running_trial_while_it_runs(monkeypatch, tmp_path, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.01)
    seen = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "(step 10/40)" in record.getMessage():
                seen.set()

    def slow_run(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
        def waiting(step, value):
            on_eval(step, value)
            assert seen.wait(timeout=120), "no progress line while the trial ran"

        return fake_run_trial(benchmark, pruning_config, training, seed, waiting, cache_dir=cache_dir)

    data = {
        "name": "beat",
        "benchmark": "fake-bench",
        "training": {"steps": 40, "eval_every": 10, "threads": 1},
        "search_space": {"pattern": "4x1", "criterion": "magnitude", "scheduler": "oneshot", "target_sparsity": 0.5},
        "study": {"n_trials": 1, "sampler": "random", "objectives": ["accuracy"]},
    }
    handler = Seen()
    logger = logging.getLogger("workbench.study.workers")
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="workbench.study.workers"):
            run_study(
                parse_experiment(copy.deepcopy(data)),
                tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                runner=TrialRunner(build_config=FAKE.build_config, run=slow_run, goal=FAKE.goal),
            )
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in caplog.records if "(step 10/40)" in r.getMessage()]
    assert lines and lines[0].startswith("trial 0 running ") and "(step 10/40); 0/1 trials done; ETA ~" in lines[0]
    assert any(r.getMessage().startswith("trial 0 COMPLETE") for r in caplog.records)


@pytest.mark.parametrize("elapsed, done", [(30.0, 0), (3000.0, 5)])
def test_a_line_always_names_n_of_n(elapsed, done):
    clock = Clock()
    beat = Heartbeat(lambda: {}, total=10, clock=clock)
    beat.trial_started(done=done, durations=[60.0])
    clock.now += elapsed
    assert f"; {done}/10 trials done; ETA ~" in beat.beat()
