"""Failures, Ctrl-C and kill -9: recorded in both stores, the study goes on or resumes.

The misbehaving benchmarks are in ``failing_bench.py``. The interruption tests run the real
``workbench search`` command in a subprocess (working folder ``tmp_path``) and poll its stores;
nothing here depends on wall-clock speed beyond generous polling deadlines.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from workbench.experiment import parse_experiment
from workbench.infra.processes import owner_is_dead, worker_identity
from workbench.study.recovery import counted_trials
from workbench.study.run import run_study

from helpers.experiments import experiment, write_experiment
from helpers.study import child_runs, finish, start_search, wait_for_running_trial


@pytest.mark.e2e
@pytest.mark.parametrize(
    "benchmark, reason",
    [
        ("failing_bench:nan_when_pruned", "TrialDiverged: training diverged"),
        ("failing_bench:raise_when_pruned", "RuntimeError: boom"),
    ],
)
def test_diverging_or_raising_trial_fails_in_both_stores_and_the_study_goes_on(
    tmp_path, monkeypatch, benchmark, reason
):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = run_study(parse_experiment(experiment("bad", benchmark, n_trials=2)), tracking_uri=uri)
    states = {round(t.params["target_sparsity"], 2): t for t in study.trials}
    assert sorted(states) == [0.5, 0.9]  # both grid points ran: the failure did not stop the study
    good, bad = states[0.5], states[0.9]
    assert good.state == TrialState.COMPLETE and bad.state == TrialState.FAIL
    assert reason in bad.user_attrs["failure_reason"] and not bad.user_attrs.get("interrupted")
    assert counted_trials(study) == 2  # a trial failing by itself counts toward the total

    client = MlflowClient(uri)
    run = client.get_run(bad.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert reason in run.data.tags["workbench.reason"] and run.data.tags["workbench.trial_state"] == "FAIL"
    evals = client.get_metric_history(run.info.run_id, "eval/accuracy")
    assert [m.step for m in evals] == [1]  # the evaluation before pruning started at step 2
    if "nan" in benchmark:  # the diverged trial's partial curves: losses up to the NaN step
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [0, 1]
    assert client.get_run(good.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    assert client.get_run(study.user_attrs["mlflow_parent_run_id"]).info.status == "FINISHED"


@pytest.mark.e2e
def test_owner_of_a_finished_process_is_dead_and_a_live_one_is_not():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = worker_identity(proc.pid)
    proc.wait()
    assert owner_is_dead(owner)
    assert not owner_is_dead(worker_identity())
    assert not owner_is_dead(dict(worker_identity(), host="another-machine", pid=1 << 22))


@pytest.mark.e2e
def test_ctrl_c_fails_the_running_trial_closes_the_runs_and_says_how_to_resume(tmp_path):
    write_experiment(
        tmp_path, experiment("slow", "failing_bench:slow_when_pruned", n_trials=2, steps=400, sampler="random")
    )
    proc = start_search(tmp_path, "--n-trials", "2")
    trial = wait_for_running_trial(proc, "sqlite:///" + str(tmp_path / "optuna.db"), "slow")
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    code, err = finish(proc)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == (
        "interrupted: running trials marked failed, runs closed; resume with: workbench search exp.yaml --n-trials 2"
    )
    assert sum("resume" in line for line in lines) == 1 and "Traceback" not in err

    study = optuna.load_study(study_name="slow", storage="sqlite:///" + str(tmp_path / "optuna.db"))
    failed = study.trials[trial.number]
    assert failed.state == TrialState.FAIL and failed.user_attrs["interrupted"] is True
    assert [t.state for t in study.trials] == [TrialState.FAIL]  # nothing left RUNNING, no new trial
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent, children = child_runs(client, "slow")
    assert parent.info.status == "KILLED"
    assert [(r.info.run_id, r.info.status) for r in children] == [(failed.user_attrs["mlflow_run_id"], "KILLED")]
    assert children[0].data.tags["workbench.interrupted"] == "true"


@pytest.mark.e2e
def test_kill_9_mid_trial_then_resume_fails_it_and_completes_the_total(tmp_path):
    write_experiment(
        tmp_path,
        experiment(
            "killed", "failing_bench:slow_when_pruned", n_trials=3, steps=24, targets=(0.5, 0.8), sampler="random"
        ),
    )
    storage = "sqlite:///" + str(tmp_path / "optuna.db")
    proc = start_search(tmp_path)
    victim = wait_for_running_trial(proc, storage, "killed", complete=1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    before = optuna.load_study(study_name="killed", storage=storage).trials
    assert before[victim.number].state == TrialState.RUNNING  # nobody closed it: the process is gone
    done = {t.number: t.user_attrs["mlflow_run_id"] for t in before if t.state == TrialState.COMPLETE}
    assert done

    code, err = finish(start_search(tmp_path))  # the same command again
    assert code == 0, err
    worker = victim.user_attrs["worker"]
    recovery = [line for line in err.splitlines() if "recovered trial" in line]
    assert len(recovery) == 1 and recovery[0].endswith(  # one line: trial, worker, host, what happens
        f"recovered trial {victim.number}: left running by worker pid {worker['pid']} on host {worker['host']} "
        "(its process is gone); marked failed and interrupted: it does not count toward n_trials and the "
        "study runs another trial in its place"
    ), err
    study = optuna.load_study(study_name="killed", storage=storage)
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["interrupted"] is True
    assert "died" in killed.user_attrs["failure_reason"]
    counted = [t for t in study.trials if "repeat_of" not in t.user_attrs]  # exact repeats do not count
    assert sum(t.state == TrialState.COMPLETE for t in counted) == 3 and len(counted) == 4
    assert {n: study.trials[n].user_attrs["mlflow_run_id"] for n in done} == done  # never redone or lost

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent, children = child_runs(client, "killed")
    status = {r.info.run_id: r.info.status for r in children}
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]  # exact repeats get no run
    assert len(children) == len(trained) and status[killed.user_attrs["mlflow_run_id"]] == "KILLED"
    assert sorted(status.values()) == ["FINISHED"] * (len(trained) - 1) + ["KILLED"]
    assert parent.info.status == "FINISHED"


def test_stale_heartbeat_of_a_worker_on_another_machine_fails_its_trial_and_kills_its_run(tmp_path, monkeypatch):
    from sqlalchemy import text

    from workbench.study.factories import make_storage
    from workbench.study.recovery import GRACE_PERIOD, recover_study
    from workbench.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    exp_id = tracker.experiment_id("remote")
    parent = tracker.study_run(exp_id, "remote", params={})
    storage = make_storage(f"sqlite:///{tmp_path}/optuna.db")
    study = optuna.create_study(study_name="remote", storage=storage)
    trial = study.ask()
    run_id = tracker.trial_run(exp_id, parent_run_id=parent, run_name="trial-0", tags={"optuna.trial_number": 0})
    trial.set_user_attr("mlflow_run_id", run_id)
    trial.set_user_attr("worker", dict(worker_identity(), host="another-machine"))  # no pid check possible
    storage.record_heartbeat(trial._trial_id)
    assert recover_study(study, tracker, parent) == [] and study.trials[0].state == TrialState.RUNNING
    with storage.engine.begin() as conn:  # age the heartbeat past the grace period: that worker is gone
        conn.execute(
            text("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, :ago)"),
            {"ago": f"-{2 * GRACE_PERIOD} seconds"},
        )
    recover_study(study, tracker, parent)
    assert study.trials[0].state == TrialState.FAIL
    run = tracker.client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["workbench.interrupted"] == "true"
    assert counted_trials(study) == 0  # a trial lost with its worker does not count


def test_library_error_records_of_our_interrupt_are_dropped_inside_the_guard_only(caplog):
    from workbench.infra.interrupts import interrupt_guard

    pool = logging.getLogger("sqlalchemy.pool.impl.QueuePool")  # logs "Exception during reset" so

    def report(exc: BaseException) -> None:
        pool.error("Exception during reset or similar", exc_info=(type(exc), exc, None))

    with caplog.at_level(logging.ERROR), interrupt_guard():
        report(KeyboardInterrupt("signal 2"))
        report(ValueError("a real error"))
    report(KeyboardInterrupt("outside"))
    kinds = [type(r.exc_info[1]).__name__ for r in caplog.records]
    assert kinds == ["ValueError", "KeyboardInterrupt"]
