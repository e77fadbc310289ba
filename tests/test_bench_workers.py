"""The start-up bench reads the study's own records: first trial start, log-writer seconds per trial."""

from __future__ import annotations

import datetime
import math
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from tools.bench_workers import first_trial_after, writer_ratio


def _trial(start: datetime.datetime | None, run: str | None = None, seconds: float | None = None) -> SimpleNamespace:
    attrs = {k: v for k, v in (("mlflow_run_id", run), ("seconds", seconds)) if v is not None}
    return SimpleNamespace(datetime_start=start, user_attrs=attrs)


@given(offsets=st.lists(st.floats(0.0, 1e4), min_size=1, max_size=6), waiting=st.integers(0, 3))
def test_first_trial_is_the_earliest_recorded_start(offsets, waiting):
    started = 1.8e9
    base = datetime.datetime.fromtimestamp(started)
    trials = [_trial(base + datetime.timedelta(seconds=o)) for o in offsets] + [_trial(None)] * waiting
    assert math.isclose(first_trial_after(trials, started), min(offsets), abs_tol=1e-5)


def test_writer_ratio_pairs_runs_with_their_trials():
    trials = [_trial(None, "a", 2.0), _trial(None, "b", 4.0), _trial(None, "c", 1.0), _trial(None, None, 1.0)]
    # the median of 0.1 and 0.2: c has no writer time, z no trial, the last trial no run
    assert math.isclose(writer_ratio(trials, {"a": 0.2, "b": 0.8, "z": 9.0}), 0.15)
    assert math.isnan(writer_ratio(trials, {}))
    assert math.isnan(writer_ratio([_trial(None, "a", 0.0)], {"a": 1.0}))  # no own time: not a ratio
