"""Faults that must lose nothing and never hang: SIGTERM to the process group, a dead log writer.

The search tests run the real ``workbench search`` in its own process group (working folder
``tmp_path``) and wait for a deterministic moment through its Optuna store (a trial RUNNING with
its MLflow run, after N complete ones) before sending the signal.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading
import time

import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from workbench.tracking import Tracker
from workbench.tracking.spool import SpooledTracker, SpoolWriter, pending_runs

from helpers.experiments import experiment, write_experiment
from helpers.results import make_result
from helpers.study import child_runs, finish, start_search, wait_for_running_trial


@pytest.mark.e2e
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


@pytest.mark.e2e
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
    code, err = finish(proc)
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


def _interrupt_once_after_the_first_trial(monkeypatch, owner, name, *, when=lambda *a, **k: True):
    """Patch ``owner.name`` to send this process SIGINT (a Ctrl-C) the first time ``when`` holds."""
    original, sent = getattr(owner, name), []

    def patched(*args, **kwargs):
        if not sent and when(*args, **kwargs):
            sent.append(True)
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    return sent


def _completing(self, trial_id, state, values=None):
    return state == TrialState.COMPLETE


@pytest.mark.e2e
@pytest.mark.parametrize("moment", ["optuna-records-the-end", "trial-line-callback", "before-the-next-claim"])
def test_one_ctrl_c_just_after_a_trial_ends_exits_130_with_the_resume_line(tmp_path, monkeypatch, capsys, moment):
    from optuna.storages import RDBStorage

    from workbench import cli
    from workbench.study import budget

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path / "spool"))
    for var in ("WORKBENCH_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    write_experiment(tmp_path, experiment("ctrlc", "plugin_bench:blobs", n_trials=2))
    if moment == "optuna-records-the-end":  # inside Optuna's tell (it failed with "Should not reach")
        sent = _interrupt_once_after_the_first_trial(
            monkeypatch, RDBStorage, "set_trial_state_values", when=_completing
        )
    elif moment == "trial-line-callback":
        sent = _interrupt_once_after_the_first_trial(monkeypatch, budget, "log_trial")
    else:
        sent = _interrupt_once_after_the_first_trial(
            monkeypatch, budget, "counted_trials", when=lambda study: bool(study.get_trials(deepcopy=False))
        )
    # absolute store URLs: MLflow caches a store per URI within the process, across test folders
    stores = ["--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    code = cli.main(["search", "exp.yaml", "--n-trials", "2", *stores])
    err = capsys.readouterr().err
    assert sent and code == 130, err
    assert err.strip().splitlines()[-1] == (
        "interrupted: running trials marked failed, runs closed; resume with: "
        + shlex.join(["workbench", "search", "exp.yaml", "--n-trials", "2", *stores])
    )
    assert "Traceback" not in err and "Should not reach" not in err

    study = optuna.load_study(study_name="ctrlc", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.trials[0].state == TrialState.COMPLETE  # the trial that had ended is recorded, not lost
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent, children = child_runs(client, "ctrlc")
    first = client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert first.info.status == "FINISHED" and "accuracy" in first.data.metrics
    assert parent.info.status == "KILLED" and all(r.info.status != "RUNNING" for r in children)


@pytest.mark.parametrize("blocked", [("entry",), ("lock",), ("entry", "lock")])
def test_a_folder_in_place_of_a_cache_entry_or_its_lock_is_warned_about_and_built_beside(
    tmp_path, monkeypatch, caplog, blocked
):
    from workbench.benchmarks import cache, get_benchmark
    from workbench.benchmarks.cache import cache_path, load_dense_baseline

    trained = []
    real = cache.train_dense
    monkeypatch.setattr(cache, "train_dense", lambda b, s, **kw: trained.append(s) or real(b, s, **kw))
    bench = get_benchmark("plugin_bench:blobs")
    entry = cache_path(bench, 0, cache_dir=tmp_path)
    folders = [entry] * ("entry" in blocked) + [entry.with_name(entry.name + ".lock")] * ("lock" in blocked)
    for folder in folders:
        (folder / "inside").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="workbench"):
        model, accuracy = load_dense_baseline(bench, 0, cache_dir=tmp_path)
        again, accuracy_again = load_dense_baseline(get_benchmark("plugin_bench:blobs"), 0, cache_dir=tmp_path)
    assert trained == [0]  # built once, beside the folder, then read back
    assert accuracy == accuracy_again and all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    for folder in folders:
        assert (folder / "inside").is_dir()  # the user's folder is left alone
        assert f"{folder} is not a file" in caplog.text
    if "entry" in blocked:
        assert entry.with_name(f"{entry.stem}.1.pt").is_file()
