"""Workers forked from the worker server: the libraries loaded, SIGINT ignored until set up, and
the environment, working folder and stderr of the moment they start, not the server's."""

from __future__ import annotations

import json
import os

import pytest

from workbench.infra.forkserver import WORKER_MODULES, start_worker_server, worker_context, worker_inheritance

from helpers.forked import report


@pytest.mark.e2e
def test_a_forked_worker_has_the_libraries_and_what_its_starter_has_now(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("PROBE", "before")
    start_worker_server()  # the server keeps the environment and folder of this moment (or an earlier test's)
    start_worker_server()  # a second call: the same server
    monkeypatch.setenv("PROBE", "after")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.json"
    proc = worker_context().Process(target=report, args=(worker_inheritance(), str(out)))
    proc.start()
    proc.join(timeout=600)
    assert proc.exitcode == 0
    seen = json.loads(out.read_text())
    assert set(WORKER_MODULES) <= set(seen["loaded"]) and {"torch", "mlflow", "optuna"} <= set(seen["loaded"])
    assert seen["sigint_ignored"] is True
    assert seen["probe"] == "after" and os.path.samefile(seen["cwd"], tmp_path)
    assert "forked worker says hello" in capfd.readouterr().err
