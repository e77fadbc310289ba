"""Signals in every command that writes a store, and rerun of a deleted run (issue 29, points 4, 8).

The subprocess tests run the real ``workbench run`` in its own process group and wait for a
deterministic moment through its MLflow store (the run RUNNING) before sending the signal; they
wait on exit codes, never on wall-clock limits tuned to a quiet machine.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from workbench.cli import main

from helpers.experiments import experiment, write_experiment
from helpers.study import finish, start_workbench


def _runs(folder):
    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    try:
        return client, client.search_runs([e.experiment_id for e in client.search_experiments()])
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return client, []


def _wait_for_running_run(proc: subprocess.Popen, folder, *, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the command exited early ({proc.returncode}): {err[-2000:]}")
        if (folder / "mlflow.db").exists():
            running = [r for r in _runs(folder)[1] if r.info.status == "RUNNING"]
            if running:
                return running[0]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("no run was seen running")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_workbench_run_ends_the_run_killed_and_the_same_command_runs_again(tmp_path, signum):
    data = experiment("sig", "failing_bench:slow_when_pruned", n_trials=1, steps=20)
    data["benchmark_params"] = {"delay": 0.5}  # after pruning each step sleeps: the run is RUNNING for seconds
    write_experiment(tmp_path, data)
    proc = start_workbench(tmp_path, "run", "exp.yaml", "--set", "pattern=4x1")
    run = _wait_for_running_run(proc, tmp_path)
    os.killpg(proc.pid, signum)
    code, err = finish(proc, timeout=300)
    lines = err.strip().splitlines()
    assert code == 130, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    assert lines[-1] == (
        f"interrupted: run {run.info.run_id} ended KILLED (interrupted by {name}); "
        "run it again with: workbench run exp.yaml --set pattern=4x1"
    ), lines
    client, runs = _runs(tmp_path)
    killed = client.get_run(run.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["workbench.reason"] == f"interrupted by {name}"
    assert killed.data.tags["workbench.interrupted"] == "true"

    again = start_workbench(tmp_path, "run", "exp.yaml", "--set", "pattern=4x1")  # the same command
    code, err = finish(again, timeout=600)
    assert code == 0, err
    _, runs = _runs(tmp_path)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]


@pytest.fixture
def one_run(tmp_path, monkeypatch):
    """A finished ``workbench run`` in ``tmp_path`` (the working folder); its run id."""
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "WORKBENCH_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    write_experiment(tmp_path, experiment("rerun", "plugin_bench:blobs", n_trials=1, steps=6))
    assert main(["run", "exp.yaml"]) == 0
    (run,) = _runs(tmp_path)[1]
    return run.info.run_id


def test_rerun_of_a_deleted_run_says_so_and_force_reruns_it(tmp_path, one_run, capsys):
    client, _ = _runs(tmp_path)
    client.delete_run(one_run)
    capsys.readouterr()
    assert main(["rerun", one_run]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: run_id: run {one_run!r} was deleted; restore it in the MLflow UI, or rerun it anyway with --force"
    ]
    assert len(_runs(tmp_path)[1]) == 0  # nothing new (the deleted run is not listed)
    assert main(["rerun", one_run, "--force"]) == 0
    (new,) = _runs(tmp_path)[1]
    assert new.data.tags["workbench.rerun_of"] == one_run and new.info.status == "FINISHED"


def test_an_interrupted_rerun_ends_its_run_killed_with_the_reason(tmp_path, one_run, capsys, monkeypatch):
    import workbench.study.rerun as rerun

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)  # arrives inside the guard, during the trial
        time.sleep(60)  # never reached: the handler raises at once

    monkeypatch.setattr(rerun, "run_trial", interrupted)
    capsys.readouterr()
    assert main(["rerun", one_run]) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    client, runs = _runs(tmp_path)
    (new,) = [r for r in runs if r.info.run_id != one_run]
    assert line == (
        f"interrupted: run {new.info.run_id} ended KILLED (interrupted by SIGTERM); "
        f"run it again with: workbench rerun {one_run}"
    )
    assert new.info.status == "KILLED" and new.data.tags["workbench.reason"] == "interrupted by SIGTERM"


@pytest.mark.e2e
@pytest.mark.parametrize("owner", ["dead-pid", "never-recorded"])
def test_recovery_logs_one_line_per_trial_left_by_a_dead_process(tmp_path, caplog, owner):
    import datetime

    import optuna

    from workbench.infra.processes import worker_identity
    from workbench.study import recovery

    study = optuna.create_study(study_name="dead", storage=f"sqlite:///{tmp_path}/optuna.db")
    trial = study.ask()
    if owner == "dead-pid":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        trial.set_user_attr("worker", dict(worker_identity(), host=worker_identity()["host"], pid=gone.pid))
        expected = f"left running by worker pid {gone.pid} on host {worker_identity()['host']} (its process is gone)"
    else:  # created, then its process died before recording itself, long enough ago
        old = datetime.datetime.now() - datetime.timedelta(seconds=2 * recovery.ORPHAN_AGE)
        from sqlalchemy import text

        with study._storage._backend.engine.begin() as conn:
            conn.execute(text("UPDATE trials SET datetime_start = :t"), {"t": old})
        expected = "left running by a worker that died before recording itself (no worker recorded in 120 s)"
    with caplog.at_level(logging.WARNING, logger="workbench.study.recovery"):
        assert recovery.recover_study(study, None, None) == [trial.number]
    lines = [r.getMessage() for r in caplog.records if "recovered trial" in r.getMessage()]
    assert lines == [
        f"recovered trial {trial.number}: {expected}; marked failed and interrupted: it does not count "
        "toward n_trials and the study runs another trial in its place"
    ]
    assert study.trials[0].state == optuna.trial.TrialState.FAIL and recovery.counted_trials(study) == 0
