"""Bad store URLs: exit 2, one line naming the flag or variable, and no store of either kind written."""

from __future__ import annotations

import socket

import pytest

from workbench import cli

from helpers.experiments import experiment, write_experiment


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DEAD = _dead_port()

CASES = [
    # flags, environment, the words of the one line
    (["--storage", "bogus://host/db"], {}, "--storage: 'bogus://host/db' has an unknown scheme"),
    ([], {"WORKBENCH_STORAGE": "bogus://host/db"}, "$WORKBENCH_STORAGE: 'bogus://host/db' has an unknown scheme"),
    (["--storage", "sqlite:///missing/optuna.db"], {}, "--storage: the folder of the SQLite file"),
    ([], {"WORKBENCH_STORAGE": "sqlite:///missing/o.db"}, "$WORKBENCH_STORAGE: the folder of the SQLite file"),
    (["--storage", "missing/optuna.journal"], {}, "--storage: the folder of the journal file 'missing/optuna.journal'"),
    (
        ["--storage", f"postgresql://u:Pw0rd@127.0.0.1:{DEAD}/db"],
        {},
        f"--storage: cannot connect to postgresql://***@127.0.0.1:{DEAD}/db",
    ),
    (
        ["--tracking-uri", f"http://127.0.0.1:{DEAD}"],
        {},
        f"--tracking-uri: the tracking server http://127.0.0.1:{DEAD}",
    ),
    (
        [],
        {"MLFLOW_TRACKING_URI": f"http://alice:S3cret@127.0.0.1:{DEAD}"},
        f"$MLFLOW_TRACKING_URI: the tracking server http://***@127.0.0.1:{DEAD} does not answer",
    ),
    (["--tracking-uri", "bogus://x"], {}, "--tracking-uri: 'bogus://x' has an unknown scheme"),
    ([], {"MLFLOW_TRACKING_URI": "ftp://x/y"}, "$MLFLOW_TRACKING_URI: 'ftp://x/y' has an unknown scheme"),
    (["--tracking-uri", "sqlite:///missing/mlflow.db"], {}, "--tracking-uri: the folder of the SQLite file"),
    ([], {"MLFLOW_TRACKING_URI": "sqlite:///missing/m.db"}, "$MLFLOW_TRACKING_URI: the folder of the SQLite file"),
    (
        ["--tracking-uri", f"postgresql://u:Pw0rd@127.0.0.1:{DEAD}/db"],
        {},
        f"--tracking-uri: cannot connect to postgresql://***@127.0.0.1:{DEAD}/db",
    ),
    (
        ["--tracking-uri", "sqlite:///missing/mlflow.db"],
        {"WORKBENCH_STORAGE": "sqlite:///optuna.db"},
        "--tracking-uri: the folder of the SQLite file",
    ),
]


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(tmp_path / ".workbench-spool"))
    for var in ("WORKBENCH_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    write_experiment(tmp_path, experiment("stores", "mlp-digits", n_trials=1))
    return tmp_path


@pytest.mark.parametrize("flags, env, words", CASES)
def test_a_bad_store_exits_2_with_one_line_and_writes_nothing(folder, monkeypatch, capsys, flags, env, words):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    code = cli.main(["search", "exp.yaml", *flags])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {words}"), lines[0]
    assert "Pw0rd" not in err + out and "S3cret" not in err + out
    assert sorted(p.name for p in folder.iterdir()) == ["exp.yaml"]  # neither store, no spool, no mlruns


@pytest.mark.parametrize("flags, env, words", [c for c in CASES if "--tracking-uri" in c[2] or "MLFLOW" in c[2]])
def test_workbench_run_checks_the_tracking_store_first_too(folder, monkeypatch, capsys, flags, env, words):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    code = cli.main(["run", "exp.yaml", *[f for f in flags if f != "--storage"]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {words}"), err
    assert sorted(p.name for p in folder.iterdir()) == ["exp.yaml"]
