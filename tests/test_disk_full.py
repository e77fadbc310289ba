"""A full disk stops the study with one line naming the path; nothing logged is lost on resume."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import time

import optuna
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from workbench import cli
from workbench.infra.diskfull import DiskFullError, as_disk_full
from workbench.tracking import Tracker
from workbench.tracking import spool as tracking_spool
from workbench.tracking.spool import SpooledTracker, SpoolWriter, pending_runs, replay

from helpers import SAFETY_NET_S
from helpers.experiments import experiment, write_experiment
from helpers.results import make_result
from helpers.study import child_runs


@pytest.mark.parametrize(
    "err, path",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.png"), "/data/x.png"),
        (OSError(errno.EDQUOT, "Disk quota exceeded", "/home/q"), "/home/q"),
        (MlflowException("(sqlite3.OperationalError) database or disk is full"), "mlflow.db"),
        (RuntimeError("wrapped"), None),
    ],
)
def test_a_full_disk_is_recognised_through_wrappers(err, path):
    wrapper = RuntimeError("log_batch failed")
    wrapper.__cause__ = err
    full = as_disk_full(wrapper, "mlflow.db")
    assert (full.path if full else None) == path


def test_a_replay_on_a_full_disk_stops_keeps_the_file_and_the_next_start_logs_it_exactly(tmp_path, monkeypatch):
    tracker = SpooledTracker(f"sqlite:///{tmp_path}/mlflow.db", spool=tmp_path / "spool")
    exp_id = tracker.experiment_id("full", artifact_location=(tmp_path / "art").as_uri())
    runs = [tracker.trial_run(exp_id, parent_run_id=None, run_name=f"t{i}") for i in range(2)]
    for run_id in runs:
        tracker.log_result(run_id, make_result(), {"pattern": "4x1"})
        tracker.finish(run_id, "COMPLETE")
    saved = {p.name: p.read_bytes() for p in tracker.spool.iterdir()}
    full = Tracker(tracker.tracking_uri)
    monkeypatch.setattr(
        full.client,
        "log_batch",
        lambda *a, **k: (_ for _ in ()).throw(MlflowException("(sqlite3.OperationalError) database or disk is full")),
    )
    with pytest.raises(DiskFullError, match=f"no space left on device writing {tmp_path}/mlflow.db"):
        replay(tracker.spool, full)
    kept = {p.name.split(".")[0]: p.read_bytes() for p in tracker.spool.iterdir()}
    assert kept == {name.split(".")[0]: data for name, data in saved.items()}  # both files, byte for byte
    assert pending_runs(tracker.spool) == {runs[1]}  # the failed one is *.failed, the other still waits

    assert replay(tracker.spool, Tracker(tracker.tracking_uri), reclaim=True) == 2  # space again: next start
    for run_id in runs:
        run = tracker.client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.9
        assert run.data.params["pattern"] == "4x1"
    assert not list(tracker.spool.iterdir())


@pytest.mark.e2e
def test_a_full_disk_during_a_search_stops_it_with_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path / "spool"))
    write_experiment(tmp_path, experiment("disk", "plugin_bench:blobs", n_trials=3, sampler="random"))
    stores = ["--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    write, calls = tracking_spool._write_entry, []

    def filling(spool, run_id, entries):  # the second trial's logging hits a full disk
        calls.append(run_id)
        if len(calls) == 2:
            target = spool / f"{run_id}.jsonl"
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return write(spool, run_id, entries)

    monkeypatch.setattr(tracking_spool, "_write_entry", filling)
    command = ["search", "exp.yaml", "--n-trials", "3", *stores]
    assert cli.main(command) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"error: no space left on device writing {tmp_path}/spool/") and lines[-1].endswith(
        "free space, then resume with: workbench search exp.yaml --n-trials 3 " + " ".join(stores)
    )
    assert "Traceback" not in "\n".join(lines)
    study = optuna.load_study(study_name="disk", storage=stores[1])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]  # stopped at once
    assert study.trials[1].user_attrs["interrupted"] is True  # not the configuration's failure

    monkeypatch.setattr(tracking_spool, "_write_entry", write)  # space again: the same command
    assert cli.main(command) == 0
    study = optuna.load_study(study_name="disk", storage=stores[1])
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len([t for t in complete if "repeat_of" not in t.user_attrs]) == 3  # exact repeats do not count
    client = MlflowClient(stores[3])
    _, children = child_runs(client, "disk")
    by_id = {r.info.run_id: r for r in children}
    for trial in complete:  # every complete trial's logging is in MLflow
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == trial.value
    assert by_id[study.trials[1].user_attrs["mlflow_run_id"]].info.status == "KILLED"


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only; skipped elsewhere, the injected-ENOSPC tests cover the logic)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()[:100]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder) -> None:
    with open(folder / "filler", "wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()


@pytest.mark.e2e
def test_the_log_writer_on_a_really_full_disk_stops_names_the_path_and_loses_nothing(small_disk, tmp_path, capfd):
    tracker = SpooledTracker(f"sqlite:///{small_disk}/mlflow.db", spool=tmp_path / "spool")
    exp_id = tracker.experiment_id("tmpfs", artifact_location=(small_disk / "art").as_uri())
    run_id = tracker.trial_run(exp_id, parent_run_id=None, run_name="t")
    _fill(small_disk)
    writer = SpoolWriter(tracker.spool, tracker.tracking_uri).__enter__()
    tracker.log_result(run_id, make_result(), {"pattern": "4x1"})
    tracker.finish(run_id, "COMPLETE")
    deadline = time.monotonic() + SAFETY_NET_S
    while writer._proc.exitcode is None and time.monotonic() < deadline:  # the writer stops by itself
        time.sleep(0.1)
    with pytest.raises(DiskFullError) as stopped:
        writer.check()  # what the trial loop calls between trials
    assert str(small_disk) in stopped.value.path
    assert "Traceback" not in capfd.readouterr().err  # MLflow's own report of the error is silenced
    assert [p.suffix for p in tracker.spool.iterdir()] == [".failed"]  # kept, replayable

    (small_disk / "filler").unlink()  # space again: the next start replays it
    assert replay(tracker.spool, Tracker(tracker.tracking_uri), reclaim=True) == 1
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.9
    assert "sparsity_overview.png" in {a.path for a in tracker.client.list_artifacts(run_id)}
