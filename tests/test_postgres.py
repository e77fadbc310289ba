"""The workbench on team infrastructure: Optuna on PostgreSQL, MLflow server on PostgreSQL.

What several machines do, on one: a throw-away PostgreSQL server (``tests/helpers/postgres.py``) holds
two databases, ``optuna`` (the study, through ``--storage postgresql://...``) and ``mlflow`` (the
backend of an ``mlflow server`` with proxied artifacts, reached through ``--tracking-uri http://``).
One ``workbench search`` of quick.yaml (with trials of a few seconds) creates the study (one
trial); then two separate ``workbench search`` processes, started together as two machines would
be, run the same study to its total, one given the flags, the other ``WORKBENCH_STORAGE`` and
``MLFLOW_TRACKING_URI``. Both stores must then agree: exactly the requested number of COMPLETE
Optuna trials, one parent run, and one FINISHED child run per trial linked by
``optuna.trial_number`` and the trial's ``mlflow_run_id``.
Nothing is written to the working folder (no embedded stores).

The test is skipped when PostgreSQL is missing and cannot be installed (``.ci/run`` installs the
Debian package; as root the test setup installs it too); with ``WORKBENCH_REQUIRE_POSTGRES=1``
(set by ``.ci/run``) a missing server fails instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SAFETY_NET_S
from helpers.postgres import find_pg_bin, start_mlflow_server, start_postgres, stop_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
QUICK = REPO / "experiments" / "quick.yaml"
STUDY = "quick"  # quick.yaml's name, hence its study and MLflow experiment name
STEPS = 2000  # quick.yaml's 30 steps take 0.3 s: a worker that starts a few seconds late would find no trial left
TOTAL = 6  # trials requested; the first command runs one, the two workers share the rest
TIMEOUT = SAFETY_NET_S


@pytest.fixture(scope="module")
def postgres():
    """A running PostgreSQL server with the databases ``optuna`` and ``mlflow``."""
    bin_dir, reason = find_pg_bin(install=True)
    if bin_dir is None:
        if os.environ.get("WORKBENCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = start_postgres(bin_dir)
    try:
        server.create_database("optuna")
        server.create_database("mlflow")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_uri(postgres, tmp_path_factory):
    """``http://127.0.0.1:<port>`` of an MLflow server on the ``mlflow`` database."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    proc, uri = start_mlflow_server(postgres.url("mlflow"), folder / "artifacts", log_path=folder / "server.log")
    try:
        yield uri
    finally:
        stop_process(proc, timeout=5.0)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WORKBENCH_STORAGE")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _slow_quick(folder: Path) -> Path:
    """quick.yaml with :data:`STEPS` training steps (a few seconds a trial), written into ``folder``."""
    import yaml

    data = yaml.safe_load(QUICK.read_text())
    data["training"].update(steps=STEPS, eval_every=STEPS // 4, pruning_frequency=STEPS // 10)
    path = folder / "quick.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _search(experiment: Path, args: list[str], *, cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "workbench", "search", str(experiment), *args]
    with log.open("wb") as handle:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_all(procs: list[subprocess.Popen], logs: list[Path]) -> None:
    try:
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:  # a hung or failed worker must not outlive the test
        for proc in procs:
            stop_process(proc)
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, f"{log.name} exited {proc.returncode}:\n{log.read_text()[-4000:]}"


def _tails(logs: list[Path], chars: int = 1500) -> str:
    return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-chars:]}" for log in logs)


def test_two_processes_share_a_study_on_postgresql(postgres, mlflow_uri, tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient

    storage, experiment = postgres.url("optuna"), _slow_quick(tmp_path)
    # One process creates the study, the MLflow experiment and the parent run (and runs one trial),
    # so the concurrent workers below only ever load them.
    first_log = tmp_path / "first.log"
    _wait_all(
        [
            _search(
                experiment,
                ["--storage", storage, "--tracking-uri", mlflow_uri, "--n-trials", "1"],
                cwd=tmp_path,
                log=first_log,
                env=_env(),
            )
        ],
        [first_log],
    )

    # Two "machines": separate processes, one given the flags, one the environment variables.
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    procs = [
        _search(
            experiment,
            ["--storage", storage, "--tracking-uri", mlflow_uri, "--n-trials", str(TOTAL)],
            cwd=tmp_path,
            log=logs[0],
            env=_env(),
        ),
        _search(
            experiment,
            ["--n-trials", str(TOTAL)],
            cwd=tmp_path,
            log=logs[1],
            env=_env(WORKBENCH_STORAGE=storage, MLFLOW_TRACKING_URI=mlflow_uri),
        ),
    ]
    _wait_all(procs, logs)

    # Optuna on PostgreSQL: exactly the requested trials, all complete, each linked to its run.
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = [(t.number, t.state.name) for t in trials]
    assert [s for _, s in states] == ["COMPLETE"] * TOTAL, f"{states}\n{_tails([first_log, *logs])}"
    run_of = {t.number: t.user_attrs.get("mlflow_run_id") for t in trials}
    assert all(run_of.values()) and len(set(run_of.values())) == TOTAL, run_of

    # The two processes shared the study: each trial ran once, in one of them (the first command ran
    # trial 0). How the trials split between them depends on timing, so it is not asserted.
    done = [set(map(int, re.findall(r"\btrial (\d+) COMPLETE\b", log.read_text()))) for log in logs]
    assert not done[0] & done[1] and done[0] | done[1] == set(range(1, TOTAL)), done

    # MLflow server on PostgreSQL: one experiment, one parent run, one FINISHED child run per trial.
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name(STUDY)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("workbench.study") == STUDY]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1 == TOTAL
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert sorted(by_number) == list(range(TOTAL)), sorted(by_number)
    for number, run in by_number.items():
        assert run.info.status == "FINISHED"
        assert run.info.run_id == run_of[number]
        assert run.data.metrics["accuracy"] == study.trials[number].value
        assert run.data.tags["optuna.study_name"] == STUDY
    # Artifacts go through the server (proxied), as a remote machine's would.
    names = {a.path for a in client.list_artifacts(by_number[TOTAL - 1].info.run_id)}
    assert "pruning_config.yaml" in names and "trial.yaml" in names, names

    # The flags and the environment variables were honoured: no embedded store in the working folder.
    leftovers = [*tmp_path.glob("*.db"), *tmp_path.glob("*.journal"), *tmp_path.glob("mlruns")]
    assert not leftovers, leftovers


def test_study_lock_on_postgresql_excludes_a_second_process(postgres):
    """The budget lock holds across storages: what two workers' "room for one more?" relies on.

    Each worker's study wraps its RDBStorage in Optuna's cache; the lock must see through that
    (it once did not, and two workers overshot the total by a trial).
    """
    import threading

    import optuna

    from workbench.study.factories import make_storage
    from workbench.study.recovery import study_lock

    spec = postgres.url("optuna")
    first = optuna.create_study(study_name="lock-check", storage=make_storage(spec))
    second = optuna.load_study(study_name="lock-check", storage=make_storage(spec))
    entered, leave = threading.Event(), threading.Event()

    def other_worker() -> None:
        with study_lock(spec, "lock-check", second._storage):
            entered.set()
            leave.wait(30)

    def advisory_locks(granted: bool = True) -> int:
        with postgres.connect("optuna") as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = %s", (granted,)
            ).fetchone()[0]

    with study_lock(spec, "lock-check", first._storage):
        assert advisory_locks() == 1
        thread = threading.Thread(target=other_worker, daemon=True)
        thread.start()
        # the second holder's request reaches the server and waits there (not granted) ...
        deadline = time.monotonic() + SAFETY_NET_S
        while advisory_locks(granted=False) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert advisory_locks(granted=False) == 1, "the second holder's lock request never reached the server"
        assert not entered.is_set(), "a second holder entered the study lock while the first held it"
    assert entered.wait(30), "the second holder never got the lock after the first released it"
    leave.set()
    thread.join(30)
    assert advisory_locks() == 0
