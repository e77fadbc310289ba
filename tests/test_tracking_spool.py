"""Deferred trial logging: spool files, their replay, and the log writer process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.tracking import Tracker
from workbench.tracking import spool as tracking_spool
from workbench.tracking.spool import SpooledTracker, SpoolWriter, pending_runs, replay, spool_dir

from helpers import SAFETY_NET_S
from helpers.results import make_result


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module (creating one costs seconds) and an experiment in it."""
    folder = tmp_path_factory.mktemp("spool-store")
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db")
    exp_id = tracker.experiment_id("spool", artifact_location=(folder / "art").as_uri())
    return tracker, exp_id


@pytest.fixture()
def spooled(store, tmp_path):
    tracker, exp_id = store
    return SpooledTracker(tracker.tracking_uri, spool=tmp_path / "spool"), exp_id


def _new_run(tracker: Tracker, exp_id: str) -> str:
    return tracker.trial_run(exp_id, parent_run_id=None, run_name="t")


def _wait_until(predicate, timeout: float = SAFETY_NET_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_spooled_logging_waits_in_the_spool_until_replayed(spooled):
    tracker, exp_id = spooled
    run_id = _new_run(tracker, exp_id)
    assert tracker.log_result(run_id, make_result(), {"pattern": "4x1"}) == 0.0
    tracker.finish(run_id, "COMPLETE")
    run = tracker.client.get_run(run_id)
    assert run.info.status == "RUNNING" and "accuracy" not in run.data.metrics
    assert pending_runs(tracker.spool) == {run_id}

    assert replay(tracker.spool, Tracker(tracker.tracking_uri)) == 1
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.9
    assert run.data.params["pattern"] == "4x1" and run.data.tags["workbench.trial_state"] == "COMPLETE"
    assert "sparsity_overview.png" in {a.path for a in tracker.client.list_artifacts(run_id)}
    assert pending_runs(tracker.spool) == set() and not list(tracker.spool.iterdir())


def test_partial_logging_and_the_failure_reason_replay_in_order(spooled):
    tracker, exp_id = spooled
    run_id = _new_run(tracker, exp_id)
    tracker.log_partial(
        run_id, {"pattern": "2:4"}, pruning_config={"target_sparsity": 0.5}, eval_values={5: 0.7, 10: 0.6}
    )
    tracker.finish(run_id, "FAIL", "diverged")
    replay(tracker.spool, Tracker(tracker.tracking_uri))
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["workbench.reason"] == "diverged"
    assert [m.value for m in tracker.client.get_metric_history(run_id, "eval/accuracy")] == [0.7, 0.6]


def test_a_replay_retried_after_failing_half_way_logs_no_metric_twice(spooled, monkeypatch):
    tracker, exp_id = spooled
    run_id = _new_run(tracker, exp_id)
    result = make_result()
    tracker.log_result(run_id, result, {"pattern": "4x1"})
    tracker.finish(run_id, "COMPLETE")
    writer = Tracker(tracker.tracking_uri)
    upload, failures = writer.client.log_artifacts, []

    def flaky_upload(*args, **kwargs):  # the metrics are in, then the artifact upload fails once
        if not failures:
            failures.append(1)
            raise OSError("artifact store unreachable")
        return upload(*args, **kwargs)

    monkeypatch.setattr(writer.client, "log_artifacts", flaky_upload)
    monkeypatch.setattr(tracking_spool.time, "sleep", lambda seconds: None)
    assert replay(tracker.spool, writer) == 1 and failures == [1]
    history = tracker.client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == sorted(result.train_loss)  # each step once
    assert len(tracker.client.get_metric_history(run_id, "accuracy")) == 1
    assert tracker.client.get_run(run_id).info.status == "FINISHED"


def test_a_trial_replayed_again_after_it_was_logged_keeps_one_logging_time(spooled):
    tracker, exp_id = spooled
    run_id = _new_run(tracker, exp_id)
    writer = Tracker(tracker.tracking_uri)
    for _ in range(2):  # e.g. a writer killed after logging, before deleting the spool file
        writer.log_result(run_id, make_result(), {"pattern": "4x1"}, ts=1_700_000_000_000)
    assert len(writer.client.get_metric_history(run_id, "accuracy")) == 1
    assert float(writer.client.get_run(run_id).data.params["time.logging_s"]) > 0  # kept from the first attempt


def test_an_unknown_end_state_is_refused_before_anything_is_spooled(spooled):
    tracker, exp_id = spooled
    with pytest.raises(ValueError, match="state: 'DONE'"):
        tracker.finish("some-run", "DONE")
    assert pending_runs(tracker.spool) == set()


def test_a_file_that_cannot_be_logged_is_kept_and_the_others_still_go_through(spooled, monkeypatch):
    monkeypatch.setattr(tracking_spool, "_ATTEMPTS", 1)
    tracker, exp_id = spooled
    tracker.finish("0" * 32, "COMPLETE")  # no such run
    good = _new_run(tracker, exp_id)
    tracker.finish(good, "PRUNED", "early-stopped")
    assert replay(tracker.spool, Tracker(tracker.tracking_uri)) == 1
    assert tracker.client.get_run(good).info.status == "KILLED"
    assert [p.suffix for p in tracker.spool.iterdir()] == [".failed"]


@pytest.mark.e2e
def test_files_claimed_by_a_dead_writer_are_taken_back_only_with_reclaim(spooled):
    tracker, exp_id = spooled
    run_id = _new_run(tracker, exp_id)
    tracker.finish(run_id, "COMPLETE")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (path,) = tracker.spool.glob("*.jsonl")
    path.rename(path.with_name(f"{path.stem}.{int(dead.stdout)}.working"))
    assert pending_runs(tracker.spool) == {run_id}
    assert replay(tracker.spool, Tracker(tracker.tracking_uri)) == 0  # another writer may still be on it
    assert replay(tracker.spool, Tracker(tracker.tracking_uri), reclaim=True) == 1
    assert tracker.client.get_run(run_id).info.status == "FINISHED"


def test_the_spool_folder_depends_on_store_and_study(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path))
    a = spool_dir("sqlite:///a.db", "s")
    assert a.parent == tmp_path and a == spool_dir("sqlite:///a.db", "s")
    assert len({a, spool_dir("sqlite:///b.db", "s"), spool_dir("sqlite:///a.db", "t")}) == 3


@pytest.mark.e2e
def test_the_writer_logs_while_running_survives_sigint_and_drains_on_close(spooled):
    tracker, exp_id = spooled
    runs = [_new_run(tracker, exp_id) for _ in range(3)]
    with SpoolWriter(tracker.spool, tracker.tracking_uri) as writer:
        tracker.log_result(runs[0], make_result(), {})
        tracker.finish(runs[0], "COMPLETE")
        assert _wait_until(lambda: tracker.client.get_run(runs[0]).info.status == "FINISHED")
        os.kill(writer._proc.pid, signal.SIGINT)  # a Ctrl-C in the terminal reaches the writer too
        for run_id in runs[1:]:
            tracker.log_result(run_id, make_result(), {})
            tracker.finish(run_id, "COMPLETE")
    assert [tracker.client.get_run(r).info.status for r in runs] == ["FINISHED"] * 3
    assert pending_runs(tracker.spool) == set()


@pytest.mark.e2e
def test_a_killed_study_process_loses_no_logging(store, tmp_path):
    """kill -9 of the process that owns the writer: the writer drains the spool by itself."""
    tracker, exp_id = store
    run_ids = [_new_run(tracker, exp_id) for _ in range(2)]
    script = textwrap.dedent(f"""
        import os, signal, time
        from helpers.results import make_result
        from workbench.tracking.spool import SpooledTracker, SpoolWriter
        tracker = SpooledTracker({tracker.tracking_uri!r}, spool={str(tmp_path / "spool")!r})
        writer = SpoolWriter(tracker.spool, tracker.tracking_uri).__enter__()
        for run_id in {run_ids!r}:
            tracker.log_result(run_id, make_result(), {{}})
            tracker.finish(run_id, "COMPLETE")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    tests = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests), str(tests.parent)]))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tests.parent, env=env, timeout=SAFETY_NET_S)
    assert proc.returncode == -signal.SIGKILL
    assert _wait_until(lambda: all(tracker.client.get_run(r).info.status == "FINISHED" for r in run_ids))
    assert tracker.client.get_run(run_ids[1]).data.metrics["accuracy"] == 0.9


@pytest.mark.e2e
def test_the_bench_measures_logging_in_the_trial_and_in_the_writer(tmp_path, monkeypatch):
    from tools.bench_trials import measure_logging_overhead
    from workbench.trial.types import TrainingConfig

    monkeypatch.chdir(tmp_path)
    m = measure_logging_overhead("mlp-digits", repeats=1, training=TrainingConfig(steps=20, eval_every=10, threads=1))
    assert 0 < m["blocking_seconds"] < m["tracked_seconds"]
    assert m["fraction"] == pytest.approx(m["blocking_seconds"] / m["trial_seconds"])
    assert m["end_to_end"] == pytest.approx(m["tracked_seconds"] / m["trial_seconds"] - 1)
    assert m["writer_seconds"] > 0  # the writer logged the runs (their time.logging_s)
