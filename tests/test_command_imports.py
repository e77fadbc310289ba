"""Each command loads what it uses: which libraries a command has imported when it rejects its input.

A command is run in a fresh interpreter under a small wrapper (:data:`WRAPPER`) that records the
top-level names in ``sys.modules`` when the process exits. A command that rejects its input
exits right there, so the record is what it had imported at the moment it validated the input:
``workbench ui`` never needs torch, Optuna or MLflow, ``dashboard`` checks its port and storage
before loading Optuna, and ``search`` reads the experiment file before MLflow and Optuna.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "experiments" / "quick.yaml"

WRAPPER = """
import atexit, json, os, sys
def _record():
    with open(os.environ["IMPORTS_RECORD"], "w") as out:
        json.dump(sorted({name.partition(".")[0] for name in sys.modules}), out)
atexit.register(_record)
sys.argv[0] = "workbench"
from workbench.cli import main
sys.exit(main())
"""
"""Runs ``workbench ARGS`` and writes the imported top-level names to ``$IMPORTS_RECORD`` at exit."""

HEAVY = {"torch", "optuna", "mlflow", "matplotlib", "pandas", "fastapi", "sklearn"}
"""The study layer's libraries: none of them is needed to check a server's inputs."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_recorded(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, list[str], set[str]]:
    """``workbench *args`` under :data:`WRAPPER`: exit status, stderr lines, imported top-level names."""
    record = cwd / "imports.json"
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), IMPORTS_RECORD=str(record), **(env or {}))
    for name in ("MLFLOW_TRACKING_URI", "WORKBENCH_STORAGE"):
        if name not in (env or {}):
            full_env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600
    )
    return proc.returncode, proc.stderr.strip().splitlines(), set(json.loads(record.read_text()))


@pytest.mark.parametrize(
    "args, words",
    [
        (["ui", "--tracking-uri", "nosuch://x"], "--tracking-uri: 'nosuch://x' has an unknown scheme"),
        (["ui", "--host", "no such host!"], "--host: 'no such host!' is not a host name"),
        (["ui", "--experiment", "no-such-exp"], "--experiment: 'no-such-exp' is not in sqlite:///mlflow.db"),
    ],
)
@pytest.mark.e2e
def test_ui_checks_its_input_without_torch_optuna_or_mlflow(tmp_path, args, words):
    code, err, imported = run_recorded([*args, "--port", str(_free_port())], tmp_path)
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not imported & HEAVY, sorted(imported & HEAVY)


@pytest.mark.e2e
def test_dashboard_checks_its_storage_before_loading_optuna(tmp_path):
    code, err, imported = run_recorded(["dashboard", "--storage", "nosuch://x", "--port", str(_free_port())], tmp_path)
    assert code == 2 and err == [
        "error: --storage: 'nosuch://x' has an unknown scheme; allowed: sqlite, postgresql, mysql, mariadb, "
        "mssql, oracle (a driver may follow, as postgresql+psycopg://)"
    ]
    assert not imported & HEAVY, sorted(imported & HEAVY)


def _bad_experiment(folder: Path) -> Path:
    data = yaml.safe_load(QUICK.read_text())
    data["study"]["sampler"] = "bayes"
    path = folder / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.e2e
def test_search_reads_the_experiment_before_loading_mlflow_or_optuna(tmp_path):
    code, err, imported = run_recorded(["search", str(_bad_experiment(tmp_path))], tmp_path)
    assert code == 2 and len(err) == 1 and "study.sampler: 'bayes' is not allowed" in err[0], err
    assert not imported & {"mlflow", "optuna", "matplotlib", "pandas", "fastapi"}, sorted(imported & HEAVY)
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "mlruns").exists()


@pytest.mark.e2e
def test_search_rejects_a_bad_experiment_before_torch(tmp_path):
    """Sections checked against no registry (study, training, the file's shape) fail before torch loads."""
    code, err, imported = run_recorded(["search", str(_bad_experiment(tmp_path))], tmp_path)
    assert code == 2 and len(err) == 1 and "study.sampler: 'bayes' is not allowed" in err[0], err
    assert "torch" not in imported


@pytest.mark.e2e
def test_search_checks_the_search_space_against_the_registries(tmp_path):
    """A search-space value is checked against the pruner's registries: one line, exit 2, no store."""
    data = yaml.safe_load(QUICK.read_text())
    data["search_space"]["criterion"] = ["magnitude", "no_such_criterion"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    code, err, imported = run_recorded(["search", str(path)], tmp_path)
    assert code == 2 and len(err) == 1 and "no_such_criterion" in err[0], err
    assert not imported & {"mlflow", "optuna"} and not list(tmp_path.glob("*.db"))


def loaded_after(imports: str, names: tuple[str, ...], cwd: Path) -> list[str]:
    """Which of ``names`` are in ``sys.modules`` after ``imports`` (a statement) in a fresh interpreter."""
    code = f"import sys; {imports}; print(sorted(m for m in {names!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().replace("'", '"'))


@pytest.mark.e2e
def test_what_search_loads_before_its_first_trial_has_no_figures(tmp_path):
    """The layers `workbench search` imports to run trials: matplotlib waits for a figure.

    pandas and FastAPI are not asserted: ``import mlflow`` (3.x) loads both itself, and the first
    trial is tracked in MLflow.
    """
    modules = "workbench.cli, workbench.study, workbench.study.run, workbench.study.preflight, workbench.study.workers"
    assert loaded_after(f"import {modules}", ("matplotlib", "mlflow.server"), tmp_path) == []


@pytest.mark.e2e
def test_the_log_writer_starts_without_torch(tmp_path):
    """The writer process (spawned beside the first trial) imports the CLI as its main module and
    the spool module to run ``_writer_main``: MLflow, but not torch, which the trial is loading."""
    imports = "import workbench.cli; from workbench.tracking.spool import _writer_main"
    assert loaded_after(imports, ("torch", "mlflow"), tmp_path) == ["mlflow"]
