"""`workbench ui`: a busy port, the landing address once the server answers, no orphaned server, a real browser.

The browser test (marker ``browser``) loads the landing page in headless Chromium (the Debian
package's ``/usr/bin/chromium``, or ``$CHROMIUM``) and skips cleanly where there is none.
"""

from __future__ import annotations

import json
import os
import re
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
from workbench.tracking.landing_view import SPARSITY_METRIC, VIEW_TAG_PREFIX, view_key, view_url

from helpers import SAFETY_NET_S
from helpers.browser import dump_dom
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
    proc.wait(timeout=SAFETY_NET_S)


@pytest.mark.slow
def test_the_address_is_printed_once_the_server_answers_and_lands_on_the_study(served):
    proc, port, line, study = served
    assert line.startswith("MLflow UI: http://127.0.0.1:"), line
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=SAFETY_NET_S) as response:
        assert response.status == 200  # it answered before the address was printed
    url = line.split()[2]
    exp_id = study.user_attrs["mlflow_experiment_id"]
    assert f"/#/experiments/{exp_id}/runs?" in url
    query = urllib.parse.parse_qs(url.partition("?")[2])
    assert query == {"viewStateShareKey": [view_key("ui-demo")]}  # the study's saved view, nothing else
    request = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id={exp_id}"
    with urllib.request.urlopen(request, timeout=SAFETY_NET_S) as response:
        tags = {t["key"]: t["value"] for t in json.load(response)["experiment"]["tags"]}
    view = json.loads(json.loads(tags[VIEW_TAG_PREFIX + view_key("ui-demo")])["state"])
    assert view["searchFilter"] == "tags.`optuna.study_name` = 'ui-demo'"
    assert view["orderByKey"] == "metrics.`accuracy`" and view["orderByAsc"] is False
    assert view["selectedColumns"][0] == "metrics.`accuracy`"


def test_a_store_without_the_saved_view_lands_on_the_sorted_runs_table(store, monkeypatch):
    from workbench.tracking import ui

    _, study = store
    exp_id = study.user_attrs["mlflow_experiment_id"]
    answers = {
        "experiments/search": {"experiments": [{"experiment_id": exp_id, "name": "ui-demo", "tags": []}]},
        "runs/search": {
            "runs": [{"info": {"experiment_id": exp_id}, "data": {"tags": [{"key": "workbench.study", "value": "s"}]}}]
        },
    }
    monkeypatch.setattr(ui, "_post", lambda base, path, body: answers[path])
    assert ui.study_landing("http://h") == (ui.runs_url("http://h", exp_id, study="s"), "s")
    tag = {"key": VIEW_TAG_PREFIX + view_key("s"), "value": "{}"}
    answers["experiments/search"]["experiments"][0]["tags"] = [tag]
    assert ui.study_landing("http://h") == (view_url("http://h", exp_id, "s"), "s")


@pytest.mark.slow
def test_a_resumed_study_keeps_a_saved_view_the_user_changed(store, monkeypatch):
    from mlflow import MlflowClient

    uri, study = store
    exp_id = study.user_attrs["mlflow_experiment_id"]
    client, key = MlflowClient(uri), VIEW_TAG_PREFIX + view_key("ui-demo")
    original = client.get_experiment(exp_id).tags[key]
    client.set_experiment_tag(exp_id, key, original.replace("best accuracy", "mine"))  # as "Override" does
    monkeypatch.chdir(Path(uri.removeprefix("sqlite:///")).parent)
    try:
        run_study(parse_experiment(STUDY), tracking_uri=uri, runner=FAKE)  # all trials done: resumes, summarises
        assert "mine" in client.get_experiment(exp_id).tags[key]
    finally:
        client.set_experiment_tag(exp_id, key, original)


@pytest.mark.browser
@pytest.mark.slow
def test_the_landing_page_lists_the_trials_with_pattern_and_metric_in_a_browser(served, tmp_path):
    _, _, line, study = served
    dom = dump_dom(line.split()[2], tmp_path / "profile")
    trained = [t for t in study.trials if "repeat_of" not in t.user_attrs]
    names = {t.number: f"t{t.number:02d} {t.params['pattern']} {t.params['criterion']}" for t in trained}
    for number, name in names.items():  # every trained trial is listed, named by its configuration
        assert name in dom, number
    assert "Sort: accuracy" in dom.replace("<!-- -->", "")  # sorted by the metric, best first:
    accuracy = {t.number: t.values[0] for t in trained}
    listed = sorted(names, key=lambda n: dom.index(names[n]))
    assert [accuracy[n] for n in listed] == sorted(accuracy.values(), reverse=True)
    assert STUDY["description"] in dom  # the experiment's description from the YAML
    cells = _table_cells(dom)  # a fresh profile: the columns come from the study's saved view
    for trial in trained:
        row = cells[trial.user_attrs["mlflow_run_id"]]
        assert float(row["metrics.`accuracy`"]) == pytest.approx(trial.values[0]), trial.number
        assert float(row[f"metrics.`{SPARSITY_METRIC}`"]) == pytest.approx(trial.user_attrs["sparsity"])
        assert [row[f"params.`{k}`"] for k in ("pattern", "criterion")] == [
            trial.params[k] for k in ("pattern", "criterion")
        ]


def _table_cells(dom: str) -> dict[str, dict[str, str]]:
    """The runs table as the page shows it: run id -> column id -> the cell's text (ag-grid's DOM)."""
    cells: dict[str, dict[str, str]] = {}
    for row in re.split(r'(?=<div[^>]*role="row")', dom):
        run = re.search(r'role="row"[^>]*row-id="([0-9a-f]+)"', row[:1000])
        if run is None:
            continue
        for cell in re.split(r'(?=<div[^>]*role="gridcell")', row)[1:]:
            col, value = re.search(r'col-id="([^"]+)"', cell), re.search(r'class="ag-cell-value">([^<]*)<', cell)
            if col and value:
                cells.setdefault(run.group(1), {})[col.group(1)] = value.group(1)
    return cells


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
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=SAFETY_NET_S) as response:
            assert "ui-demo" in response.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SAFETY_NET_S)
    deadline = time.monotonic() + SAFETY_NET_S
    while port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_in_use("127.0.0.1", port), "optuna-dashboard outlived workbench dashboard"


def _processes_with(token: str) -> list[int]:
    """The live processes whose environment holds ``token`` (children inherit it: none may outlive a test)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if token.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _wait_until(condition, *, deadline_s: float = 180.0, step: float = 0.5) -> bool:
    """Poll ``condition`` until it holds; a generous deadline only guards against a hang."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


@pytest.fixture
def token():
    """A word put in the environment of the processes a test starts; whatever still carries it is killed after."""
    word = f"wb-ui-test-{os.getpid()}-{time.monotonic_ns()}"
    yield word
    for pid in _processes_with(word):
        os.kill(pid, signal.SIGKILL)


def _kill_and_expect_no_orphan(proc: subprocess.Popen, token: str, port: int) -> None:
    """SIGKILL ``proc`` (no handler of it runs) and wait until nothing carrying ``token`` lives and ``port`` is free."""
    proc.kill()
    proc.wait()
    assert _wait_until(lambda: not _processes_with(token)), f"left running: {_processes_with(token)}"
    assert not port_in_use("127.0.0.1", port)


@pytest.fixture(scope="module")
def one_experiment_store(tmp_path_factory):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('ui-inputs')}/mlflow.db"
    MlflowClient(uri).create_experiment("real-exp")
    return uri


def _dead_port() -> int:
    return _free_port()  # bound then released: nothing listens there


BAD_INPUTS = [
    # the command's words (STORE: the store holding experiment 'real-exp'), the words of its one line
    (["ui", "--tracking-uri", "nosuch://x"], "error: --tracking-uri: 'nosuch://x' has an unknown scheme"),
    (["ui", "--tracking-uri", "STORE", "--experiment", "no-such-exp"], "not in sqlite:///"),
    (["ui", "--tracking-uri", "STORE", "--experiment", "no-such-exp"], "there: 'Default', 'real-exp'"),
    (["ui", "--host", "no such host!"], "error: --host: 'no such host!' is not a host name or IPv4 address"),
    (["ui", "--tracking-uri", "sqlite:///missing/mlflow.db"], "error: --tracking-uri: the folder of the SQLite file"),
    (["ui", "--tracking-uri", f"http://127.0.0.1:{_dead_port()}"], "is a tracking server, which serves its own UI"),
    (["ui", "--tracking-uri", "BUSY"], "is already in use"),
    (["dashboard", "--storage", "nosuch://x"], "error: --storage: 'nosuch://x' has an unknown scheme"),
    (["dashboard", "--storage", "missing/optuna.journal"], "error: --storage: the folder of the journal file"),
    (["dashboard", "--storage", "x.journal", "--host", "no such host!"], "error: --host: 'no such host!'"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("words, expected", BAD_INPUTS)
def test_a_bad_input_exits_2_with_one_line_and_starts_no_server(tmp_path, one_experiment_store, token, words, expected):
    port = _free_port()
    words = [one_experiment_store if w == "STORE" else w for w in words]
    with socket.socket() as busy:
        if "BUSY" in words:
            busy.bind(("127.0.0.1", port))
            busy.listen()
            words = [one_experiment_store if w == "BUSY" else w for w in words]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), WB_TEST_TOKEN=token)
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("WORKBENCH_STORAGE", None)
        proc = subprocess.run(
            [sys.executable, "-m", "workbench", *words, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert not port_in_use("127.0.0.1", port)  # nothing was started on the port ...
    assert _processes_with(token) == []  # ... nor anywhere else
    assert not (tmp_path / "mlflow.db").exists()


SERVE_SCRIPT = """
import sys
from workbench.infra.serve import run_server
port = sys.argv[1]
cmd = [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"]
run_server(cmd, ready_url=f"http://127.0.0.1:{port}/", timeout=600, landing=lambda: "up",
           announce=lambda url: print(url, flush=True))
"""
"""A stand-in for `workbench ui`: serves a folder through :func:`run_server` and prints ``up`` once it answers."""


@pytest.mark.e2e
def test_a_server_whose_parent_is_killed_exits_by_itself(tmp_path, token):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), WB_TEST_TOKEN=token)
    parent = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout.readline().strip() == "up"
    assert port_in_use("127.0.0.1", port) and len(_processes_with(token)) >= 3  # parent, guard, server
    _kill_and_expect_no_orphan(parent, token, port)


@pytest.mark.e2e
def test_a_server_that_dies_is_reported_not_waited_for(tmp_path, monkeypatch):
    from workbench.infra.serve import run_server

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    port = _free_port()
    before = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(RuntimeError, match="^the server exited with status 3 before it answered"):
        run_server(before, ready_url=f"http://127.0.0.1:{port}/", timeout=600, landing=str, announce=print)
    once = (  # answers one request (the readiness poll), then dies with status 5
        "import http.server, sys; s = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), "
        "http.server.SimpleHTTPRequestHandler); s.handle_request(); sys.exit(5)"
    )
    with pytest.raises(RuntimeError, match=f"^the server exited with status 5 while serving http://127.0.0.1:{port}"):
        run_server(
            [sys.executable, "-c", once, str(port)],
            ready_url=f"http://127.0.0.1:{port}/",
            timeout=600,
            landing=lambda: "up",
            announce=lambda url: None,
        )


@pytest.mark.slow
def test_the_mlflow_server_exits_when_workbench_ui_is_killed(store, tmp_path, token):
    uri, _ = store
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), WB_TEST_TOKEN=token)
    ui = subprocess.Popen(
        [sys.executable, "-m", "workbench", "ui", "--port", str(port), "--tracking-uri", uri],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert ui.stdout.readline().startswith("MLflow UI: "), "the server never answered"
    assert len(_processes_with(token)) > 2  # ui, its guard, mlflow server and its workers
    _kill_and_expect_no_orphan(ui, token, port)  # `workbench ui` itself, not its group


TRACKING_SCRIPT = """
import sys
from workbench.tracking.server import LocalTrackingServer
print(LocalTrackingServer(sys.argv[1]).start(), flush=True)  # returns once the server answers
sys.stdin.read()
"""


@pytest.mark.slow
def test_the_workers_tracking_server_exits_when_the_study_process_is_killed(tmp_path, token):
    env = dict(os.environ, PYTHONPATH=str(ROOT), WB_TEST_TOKEN=token)
    study = subprocess.Popen(
        [sys.executable, "-c", TRACKING_SCRIPT, f"sqlite:///{tmp_path}/mlflow.db"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    uri = study.stdout.readline().strip()
    port = int(uri.rpartition(":")[2])
    assert port_in_use("127.0.0.1", port)
    _kill_and_expect_no_orphan(study, token, port)  # LocalTrackingServer.stop never runs


def test_the_experiments_of_a_store_are_read_without_a_server(one_experiment_store, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from workbench.tracking.ui import store_experiments

    assert sorted(store_experiments(one_experiment_store)) == ["Default", "real-exp"]
    assert store_experiments(f"sqlite:///{tmp_path}/not-yet.db") == []  # the server would create it
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    client.create_experiment("kept")
    client.delete_experiment(client.create_experiment("deleted"))
    for uri in ((tmp_path / "mlruns").as_uri(), str(tmp_path / "mlruns")):
        assert sorted(store_experiments(uri)) == ["Default", "kept"], uri
    (tmp_path / "other.db").write_bytes(b"")  # a SQLite file that is not an MLflow store
    with pytest.raises(ValueError, match="^--tracking-uri: cannot list the experiments of sqlite:///.*other.db"):
        store_experiments(f"sqlite:///{tmp_path}/other.db")
