"""`workbench ui`: a busy port, the landing address once the server answers, no orphaned server, a real browser.

The browser test (marker ``browser``) loads the landing page in headless Chromium (the Debian
package's ``/usr/bin/chromium``, or ``$CHROMIUM``) and skips cleanly where there is none.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.experiment import parse_experiment
from workbench.infra.serve import port_in_use
from workbench.study.run import run_study

from helpers.results import FAKE

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
STUDY = {
    "name": "ui-demo",
    "description": "A study for the UI tests.",
    "benchmark": "fake-bench",
    "training": {"steps": 20, "eval_every": 10, "threads": 1},
    "search_space": {
        "pattern": ["4x1", "2:4"],
        "criterion": ["magnitude", "snip"],
        "scheduler": "oneshot",
        "target_sparsity": {"low": 0.5, "high": 0.9, "step": 0.1},
    },
    "study": {"n_trials": 4, "sampler": "random", "objectives": ["accuracy"], "pruner": "none", "seed": 0},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_busy_port_exits_2_with_one_line(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port), "--tracking-uri", "sqlite:////nonexistent/x.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --port: {port} is already in use") and "\n" not in err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{folder}/mlflow.db"
    old = os.getcwd()
    os.chdir(folder)
    try:
        study = run_study(parse_experiment(STUDY), tracking_uri=uri, runner=FAKE)
    finally:
        os.chdir(old)
    return uri, study


def _start_ui(uri: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", "ui", "--port", str(port), "--tracking-uri", uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def served(store):
    uri, study = store
    port = _free_port()
    proc = _start_ui(uri, port)
    line = proc.stdout.readline()  # printed only once the server answers
    yield proc, port, line, study
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_the_address_is_printed_once_the_server_answers_and_lands_on_the_study(served):
    proc, port, line, study = served
    assert line.startswith("MLflow UI: http://127.0.0.1:"), line
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        assert response.status == 200  # it answered before the address was printed
    url = line.split()[2]
    assert f"/#/experiments/{study.user_attrs['mlflow_experiment_id']}/runs?" in url
    query = urllib.parse.parse_qs(url.partition("?")[2])
    assert query["searchFilter"] == ["tags.`optuna.study_name` = 'ui-demo'"]
    assert query["orderByKey"] == ["metrics.`accuracy`"] and query["orderByAsc"] == ["false"]


@pytest.mark.slow
def test_killing_workbench_ui_ends_the_whole_server(store):
    uri, _ = store
    port = _free_port()
    proc = _start_ui(uri, port)
    assert proc.stdout.readline().startswith("MLflow UI:")
    proc.send_signal(signal.SIGTERM)  # `kill PID` of workbench ui only, not of its process group
    assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_in_use("127.0.0.1", port), "the MLflow server outlived workbench ui"


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.mark.browser
@pytest.mark.slow
def test_the_landing_page_lists_the_trials_with_pattern_and_metric_in_a_browser(served, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium (apt-get install chromium, or set $CHROMIUM)")
    _, _, line, study = served
    url = line.split()[2]
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=30000",
            "--window-size=1600,1000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    names = {t.number: f"t{t.number:02d} {t.params['pattern']} {t.params['criterion']}" for t in trained}
    for number, name in names.items():  # every trained trial is listed, named by its configuration
        assert name in dom, number
    assert "Sort: accuracy" in dom.replace("<!-- -->", "")  # sorted by the metric, best first:
    accuracy = {t.number: t.values[0] for t in trained}
    listed = sorted(names, key=lambda n: dom.index(names[n]))
    assert [accuracy[n] for n in listed] == sorted(accuracy.values(), reverse=True)
    assert STUDY["description"] in dom  # the experiment's description from the YAML


def test_dashboard_without_optuna_dashboard_installed_exits_2(monkeypatch, capsys, tmp_path):
    from workbench.study import dashboard

    monkeypatch.setattr(dashboard, "installed", lambda: False)
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path}/optuna.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dashboard: optuna-dashboard is not installed; `make dashboard` installs it")


def test_dashboard_finds_the_storage_and_the_latest_study(tmp_path, monkeypatch):
    import optuna

    from workbench.pruner import ConfigError
    from workbench.study.dashboard import find_storage, latest_study

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_STORAGE", raising=False)
    with pytest.raises(ConfigError, match="^--storage: no Optuna storage given"):
        find_storage()
    for name in ("older", "newer"):
        optuna.create_study(study_name=name, storage="sqlite:///optuna.db").optimize(lambda t: 0.0, n_trials=1)
    spec = find_storage()
    assert spec == "sqlite:///optuna.db"
    assert latest_study(spec)[0] == "newer" and latest_study(spec, "older")[0] == "older"
    with pytest.raises(ConfigError, match="^--study: 'nope' is not in .*allowed: newer, older"):
        latest_study(spec, "nope")


@pytest.mark.slow
def test_dashboard_serves_the_study_and_stops_with_workbench(store):
    from workbench.study.dashboard import installed

    if not installed():
        pytest.skip("optuna-dashboard is not installed (make dashboard installs it)")
    uri, study = store
    storage = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).with_name("optuna.db"))
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "dashboard", "--storage", storage, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"Optuna dashboard: http://127.0.0.1:{port}/dashboard/studies/"), line
        assert "study 'ui-demo'" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as response:
            assert "ui-demo" in response.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_in_use("127.0.0.1", port), "optuna-dashboard outlived workbench dashboard"
