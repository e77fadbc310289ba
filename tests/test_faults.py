"""Faults that must lose nothing and never hang: SIGTERM to the process group, a dead log writer.

The search tests run the real ``workbench search`` in its own process group (working folder
``tmp_path``) and wait for a deterministic moment through its Optuna store (a trial RUNNING with
its MLflow run, after N complete ones) before sending the signal.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from workbench.tracking import Tracker
from workbench.tracking.spool import SpooledTracker, pending_runs
from workbench.tracking.spool_writer import SpoolWriter

from helpers.experiments import experiment, write_experiment
from helpers.results import make_result
from helpers.study import child_runs, finish, start_search, wait_for_running_trial


def test_closing_the_spool_writer_after_the_writer_died_does_not_hang_and_loses_nothing(tmp_path):
    """A writer killed while it waits (SIGTERM to the group used to do this) left ``close`` blocked."""
    tracker = SpooledTracker(f"sqlite:///{tmp_path}/mlflow.db", spool=tmp_path / "spool")
    exp_id = tracker.experiment_id("dead-writer", artifact_location=(tmp_path / "art").as_uri())
    first, run_id = (tracker.trial_run(exp_id, parent_run_id=None, run_name=n) for n in ("first", "t"))
    writer = SpoolWriter(tracker.spool, tracker.tracking_uri).__enter__()
    tracker.finish(first, "COMPLETE")
    while pending_runs(tracker.spool):  # the writer logged it: it is in its loop, waiting for more
        assert writer._proc.is_alive()
        time.sleep(0.1)
    os.kill(writer._proc.pid, signal.SIGKILL)
    writer._proc.join(60)
    tracker.log_result(run_id, make_result(), {"pattern": "4x1"})
    tracker.finish(run_id, "COMPLETE")  # nobody is left to log it but close() itself
    closing = threading.Thread(target=writer.close, daemon=True)
    closing.start()
    closing.join(120)
    assert not closing.is_alive(), "SpoolWriter.close hangs on a dead writer"
    run = Tracker(tracker.tracking_uri).client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.9
    assert pending_runs(tracker.spool) == set()


@pytest.mark.parametrize("complete", [0, 1], ids=["during-first-trial", "after-a-complete-trial"])
def test_sigterm_to_the_process_group_exits_130_with_the_resume_line_and_loses_nothing(tmp_path, complete):
    write_experiment(
        tmp_path,
        experiment(
            "term", "failing_bench:slow_when_pruned", n_trials=3, steps=60, targets=(0.5, 0.8), sampler="random"
        ),
    )
    storage = "sqlite:///" + str(tmp_path / "optuna.db")
    proc = start_search(tmp_path, "--n-trials", "3")
    wait_for_running_trial(proc, storage, "term", complete=complete)
    os.killpg(proc.pid, signal.SIGTERM)  # what timeout, Slurm, systemd and docker stop do
    code, err = finish(proc, timeout=120)
    lines = err.strip().splitlines()
    assert code == 130, err
    assert lines[-1].startswith("interrupted: ") and lines[-1].endswith(
        "resume with: workbench search exp.yaml --n-trials 3"
    )
    assert "Traceback" not in err

    study = optuna.load_study(study_name="term", storage=storage)
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in study.trials)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    _, children = child_runs(client, "term")
    runs = {r.info.run_id: r for r in children}
    for trial in study.trials:  # every trial's logging reached MLflow, none left RUNNING
        run = runs[trial.user_attrs["mlflow_run_id"]]
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED" and "accuracy" in run.data.metrics
        else:
            assert trial.user_attrs["interrupted"] is True and run.info.status == "KILLED"
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) >= complete
    assert not [p for p in (tmp_path / ".workbench-spool").rglob("*") if p.suffix in (".jsonl", ".working")]
