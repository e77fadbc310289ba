"""The spool holds no pickle: exact JSON round trips, and nothing in the folder can run code."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tracking import Tracker
from workbench.tracking.spool import (
    SpooledTracker,
    SpoolFormatError,
    decode,
    dumps_entry,
    encode,
    pending_runs,
    read_entry,
    replay,
)

from helpers.results import make_result

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
_keys = st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.none()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_encode_then_decode_gives_back_exactly_the_value(value):
    back = decode(json.loads(json.dumps(encode(value))))
    assert repr(back) == repr(value)  # repr: exact types (1 vs 1.0 vs True, tuple vs list) and NaN


class _Touch:
    """A pickle that runs ``touch`` when loaded (what the issue's attacker dropped in the spool)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module (creating one costs seconds)."""
    folder = tmp_path_factory.mktemp("spool-format")
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    return tracker, tracker.experiment_id("fmt", artifact_location=(folder / "art").as_uri())


@pytest.fixture()
def spool_store(store, tmp_path):
    tracker, exp_id = store
    return SpooledTracker(tracker.tracking_uri, spool=tmp_path / "spool"), exp_id


def test_a_trials_logging_round_trips_through_the_spool_exactly(spool_store):
    tracker, exp_id = spool_store
    run_id = tracker.trial_run(exp_id, parent_run_id=None, run_name="t")
    result = dataclasses.replace(make_result(), value=float("nan"), train_loss={1: float("inf"), 2: 0.5})
    tracker.log_partial(run_id, {"pattern": "2:4", "lr": 0.1}, pruning_config={"a": [1, 2]}, eval_values={5: 0.7})
    tracker.log_result(run_id, result, {"pattern": "2:4", "target_sparsity": 0.5}, ts=123)
    queued = [(m, a, dict(k)) for m, a, k in tracker._calls[run_id]]
    tracker.finish(run_id, "FAIL", "diverged")
    ((path),) = tracker.spool.glob("*.jsonl")
    assert b"pickle" not in path.read_bytes() and path.read_text().startswith('{"format": "workbench-spool"')
    got_run, calls = read_entry(path)
    assert got_run == run_id
    assert repr(calls) == repr(queued + [("finish", (run_id, "FAIL", "diverged"), {})])
    assert isinstance(calls[1][1][1], type(result)) and calls[1][1][1].train_loss == {1: float("inf"), 2: 0.5}


@pytest.mark.parametrize("where", ["pickle file", "pickle named as a spool file"])
def test_a_malicious_pickle_in_the_spool_is_never_executed(spool_store, tmp_path, caplog, where):
    tracker, exp_id = spool_store
    good = tracker.trial_run(exp_id, parent_run_id=None, run_name="good")
    tracker.finish(good, "COMPLETE")
    target = tmp_path / "pwned"
    suffix = ".pkl" if where == "pickle file" else ".jsonl"
    evil = tracker.spool / f"1-{'e' * 32}{suffix}"
    evil.write_bytes(pickle.dumps({"run_id": "x", "calls": [_Touch(str(target))]}))
    with caplog.at_level(logging.WARNING, logger="workbench"):
        assert replay(tracker.spool, Tracker(tracker.tracking_uri), reclaim=True) == 1  # the good file only
    assert not target.exists()
    assert tracker.client.get_run(good).info.status == "FINISHED"
    if suffix == ".jsonl":  # read, refused and named; a file of any other name is never read at all
        assert any(evil.stem in r.getMessage() for r in caplog.records), caplog.text
    kept = sorted(p.name for p in tracker.spool.iterdir())
    assert kept == ([evil.name] if suffix == ".pkl" else [f"{evil.stem}.bad"])
    assert pending_runs(tracker.spool) == set()  # nothing counts as logging still waiting


_HEADER = json.dumps({"format": "workbench-spool", "version": 1, "run_id": "r"})


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x80\x04\x95garbage\xff",
        b"not json at all\n",
        json.dumps({"format": "workbench-spool", "version": 99, "run_id": "r"}).encode(),
        json.dumps({"format": "other", "version": 1, "run_id": "r"}).encode(),
        (_HEADER + "\n" + json.dumps({"method": "__class__", "args": [], "kwargs": {"dict": []}})).encode(),
        (_HEADER + "\n" + json.dumps({"method": "finish", "args": [], "kwargs": {"dict": []}, "x": 1})).encode(),
        (_HEADER + "\n" + json.dumps({"method": "finish", "args": [{"object": "os.system"}], "kwargs": {}})).encode(),
        (_HEADER + "\n" + json.dumps({"method": "finish", "args": [{"dict": [[[1], 2]]}], "kwargs": {}})).encode(),
        (
            _HEADER + "\n" + json.dumps({"method": "log_result", "args": [{"trial_result": {"x": 1}}], "kwargs": {}})
        ).encode(),
        (_HEADER + "\n" + "[" * 100_000).encode(),
    ],
)
def test_a_malformed_spool_file_is_set_aside_with_a_warning(spool_store, caplog, content):
    tracker, exp_id = spool_store
    bad = tracker.spool / f"1-{'b' * 32}.jsonl"
    tracker.spool.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(content)
    with pytest.raises(SpoolFormatError):
        read_entry(bad)
    with caplog.at_level(logging.WARNING, logger="workbench"):
        assert replay(tracker.spool, Tracker(tracker.tracking_uri)) == 0
    assert [p.name for p in tracker.spool.iterdir()] == [f"{bad.stem}.bad"]
    assert "not a workbench spool file" in caplog.text


def test_only_the_three_logging_calls_can_be_spooled():
    with pytest.raises(ValueError, match="method: 'log_batch' cannot be spooled"):
        dumps_entry("r", [("log_batch", (), {})])
    with pytest.raises(TypeError, match="cannot spool a object"):
        encode(object())


def test_a_result_spooled_with_the_fields_of_unreleased_versions_is_set_aside(store, tmp_path, caplog):
    """Field names from before tasks named their metric (``accuracy`` for ``value``) are not read back.

    No release wrote them: such a file is refused like any malformed one (kept as ``*.bad``, named in
    a warning), not replayed under guessed names.
    """
    tracker, exp_id = store
    run_id = tracker.trial_run(exp_id, parent_run_id=None, run_name="old-result")
    body = encode(make_result())["trial_result"]
    old = {("accuracy" if k == "value" else k): v for k, v in body.items()}
    spool = tmp_path / "old-spool"
    spool.mkdir()
    header = {"format": "workbench-spool", "version": 1, "run_id": run_id}
    call = {"method": "log_result", "args": [run_id, {"trial_result": old}, encode({})], "kwargs": encode({"ts": 7})}
    path = spool / f"1-{run_id}.jsonl"
    path.write_text(json.dumps(header) + "\n" + json.dumps(call) + "\n")
    with pytest.raises(SpoolFormatError):
        read_entry(path)
    with caplog.at_level(logging.WARNING, logger="workbench"):
        assert replay(spool, tracker) == 0
    assert [p.name for p in spool.iterdir()] == [f"{path.stem}.bad"] and path.stem in caplog.text
    assert "accuracy" not in tracker.client.get_run(run_id).data.metrics
