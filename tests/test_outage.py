"""A tracking server that stops answering stops the study; the trial it hit runs again on resume."""

from __future__ import annotations

import errno

import optuna
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from workbench import cli
from workbench.infra.outage import StoreOutage, as_outage, as_stop
from workbench.tracking import Tracker

from helpers.experiments import experiment, write_experiment
from helpers.study import child_runs

_MLFLOW_GAVE_UP = (
    "API request to http://alice:S3cret@10.0.0.5:5000/api/2.0/mlflow/runs/create failed with exception "
    "HTTPConnectionPool(host='10.0.0.5', port=5000): Max retries exceeded with url: /api/2.0/mlflow/runs/create "
    "(Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))"
)


@pytest.mark.parametrize(
    "err, outage",
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), True),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), True),
        (MlflowException(_MLFLOW_GAVE_UP), True),
        (RuntimeError("wrapped"), False),
        (ValueError("pattern: '3x3' is not allowed"), False),
        (OSError(errno.ENOENT, "No such file or directory"), False),
    ],
)
def test_an_outage_is_recognised_through_wrappers_and_hides_secrets(err, outage):
    wrapper = RuntimeError("create_run failed")
    wrapper.__cause__ = err
    found = as_outage(wrapper, "http://alice:S3cret@10.0.0.5:5000")
    assert (found is not None) == outage
    if found is not None:
        assert "S3cret" not in str(found) and "10.0.0.5:5000" in str(found)
        assert as_stop(wrapper).hint == StoreOutage.hint


@pytest.mark.e2e
def test_an_outage_during_a_search_stops_it_with_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path / "spool"))
    write_experiment(tmp_path, experiment("outage", "plugin_bench:blobs", n_trials=3, sampler="random"))
    stores = ["--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    create, calls = Tracker.trial_run, []

    def unreachable(self, *args, **kwargs):  # the second trial starts while the server is gone
        calls.append(1)
        if len(calls) == 2:
            raise MlflowException(_MLFLOW_GAVE_UP)
        return create(self, *args, **kwargs)

    monkeypatch.setattr(Tracker, "trial_run", unreachable)
    command = ["search", "exp.yaml", "--n-trials", "3", *stores]
    assert cli.main(command) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"error: the store sqlite:///{tmp_path}/mlflow.db stopped answering (API request")
    assert lines[-1].endswith(
        "once it answers again, then resume with: workbench search exp.yaml --n-trials 3 " + " ".join(stores)
    )
    assert "Traceback" not in "\n".join(lines) and "S3cret" not in "\n".join(lines)
    study = optuna.load_study(study_name="outage", storage=stores[1])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]  # stopped at once
    assert study.trials[1].user_attrs["interrupted"] is True  # not the configuration's failure

    monkeypatch.setattr(Tracker, "trial_run", create)  # the server answers again: the same command
    assert cli.main(command) == 0
    study = optuna.load_study(study_name="outage", storage=stores[1])
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len([t for t in complete if "repeat_of" not in t.user_attrs]) == 3  # exact repeats do not count
    _, children = child_runs(MlflowClient(stores[3]), "outage")
    by_id = {r.info.run_id: r for r in children}
    for trial in complete:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == trial.value


@pytest.mark.e2e
def test_a_worker_that_hits_a_full_disk_stops_the_study_with_one_line_not_a_traceback(tmp_path, monkeypatch, capfd):
    from workbench.experiment import parse_experiment
    from workbench.infra.diskfull import DiskFullError
    from workbench.study.run import run_study

    from helpers.results import FULL_DISK

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path / "spool"))
    exp = parse_experiment(experiment("full2", "mlp-digits", n_trials=2, sampler="random"))
    with pytest.raises(DiskFullError):
        run_study(
            exp,
            workers=2,
            storage=str(tmp_path / "optuna.journal"),
            tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
            runner=FULL_DISK,
        )
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "stopped: no space left on device writing /data/full/checkpoint.pt" in err
    study = optuna.load_study(
        study_name="full2",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
        ),
    )
    assert study.trials and all(t.user_attrs.get("interrupted") is True for t in study.trials)  # none counted
