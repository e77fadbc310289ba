"""A ``workbench search`` subprocess, polling its Optuna store, and reading its MLflow runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from helpers import SAFETY_NET_S

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent


def child_runs(client: MlflowClient, name: str):
    exp_id = client.get_experiment_by_name(name).experiment_id
    parent = client.search_runs([exp_id], f"tags.`workbench.study` = '{name}'")[0]
    return parent, client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


def search_env(**extra: str) -> dict[str, str]:
    """The environment of a ``workbench search`` subprocess: tests importable, default stores, ``extra`` set."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), **extra)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("WORKBENCH_STORAGE", None)
    return env


def start_search(folder: Path, *args: str) -> subprocess.Popen:
    return start_workbench(folder, "search", "exp.yaml", *args)


def start_workbench(folder: Path, *argv: str) -> subprocess.Popen:
    """``workbench <argv>`` in ``folder``, in its own process group (a signal to the group reaches it all)."""
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", *argv],
        cwd=folder,
        env=search_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_running_trial(
    proc: subprocess.Popen, storage: str, name: str, *, complete: int = 0, timeout: float = SAFETY_NET_S
) -> optuna.trial.FrozenTrial:
    """Poll the Optuna storage until a trial runs with its MLflow run (after ``complete`` complete ones)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"workbench search exited early ({proc.returncode}): {err[-2000:]}")
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - the store may not exist yet
            trials = []
        running = [t for t in trials if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs]
        if running and sum(t.state == TrialState.COMPLETE for t in trials) >= complete:
            return running[0]
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no trial was seen running")


def finish(proc: subprocess.Popen, timeout: float = SAFETY_NET_S) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"workbench search did not exit: {err[-2000:]}")
    return proc.returncode, err
