"""One rule, one owner: every caller asks the owner, so a second copy of a rule breaks a test here.

* the kind of a store (journal file / SQLite / database / server): :mod:`workbench.infra.stores`;
* the Pareto front of a metric against sparsity or speed-up: :mod:`workbench.results.front`, for
  the study's summary and figures and the notebooks' :func:`workbench.analysis.pareto_front` alike;
* which way a metric is better: ``direction`` ("maximize" / "minimize",
  :mod:`workbench.benchmarks.direction`) in every layer, never a ``maximize`` flag;
* whether trials measured speed: :func:`workbench.results.front.has_speed`;
* the notebooks' analysis API never loads the study layer (import contract, checked here at run time too).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import analysis
from workbench.benchmarks.direction import DIRECTIONS
from workbench.infra.stores import STORE_KINDS, is_local_store, local_path, sqlite_path, store_kind, store_scheme
from workbench.pruner import ConfigError
from workbench.results.front import front, has_speed
from workbench.study.dashboard import dashboard_command
from workbench.study.factories import make_storage
from workbench.study.preflight import check_storage, check_tracking_uri
from workbench.study.recovery import study_lock
from workbench.tracking.server import needs_local_server
from workbench.tracking.ui import ui_base

ROOT = Path(__file__).resolve().parent.parent

# spec -> the kind infra.stores must answer (a table, so the owner itself is pinned too)
SPECS = {
    "optuna.journal": "path",
    "runs/optuna.journal": "path",
    "mlruns": "path",
    "sqlite:///optuna.db": "sqlite",
    "sqlite:////abs/optuna.db": "sqlite",
    "postgresql://u:pw@dbhost/optuna": "database",
    "postgresql+psycopg://dbhost/optuna": "database",
    "POSTGRESQL://dbhost/optuna": "database",
    "mysql+pymysql://h/db": "database",
    "http://127.0.0.1:5000": "server",
    "HTTPS://alice:pw@mlflow.example:443/": "server",
    "file:///tmp/mlruns": "other",
    "databricks://profile": "other",
    "bogus://host/db": "other",
}


@pytest.mark.parametrize("spec", SPECS)
def test_the_owner_names_each_kind(spec):
    assert store_kind(spec) == SPECS[spec] and store_kind(spec) in STORE_KINDS
    assert (store_scheme(spec) == "") == (store_kind(spec) == "path")
    assert (local_path(spec) is not None) == (store_kind(spec) == "path" or sqlite_path(spec) is not None)


@pytest.mark.parametrize("spec", SPECS)
def test_every_caller_agrees_with_infra_stores(spec, tmp_path):
    kind = store_kind(spec)
    assert needs_local_server(spec) == is_local_store(spec)
    assert ("--storage-class" in dashboard_command(spec, "127.0.0.1", 8080)) == (kind == "path")
    assert (ui_base(spec) != "http://127.0.0.1:5000" or spec.startswith("http://127.0.0.1:5000")) == (kind == "server")
    lock = study_lock(spec, "owner-test", storage=object())
    assert (not isinstance(lock, contextlib.nullcontext)) == (local_path(spec) is not None)


@pytest.mark.parametrize("spec", ["bogus://host/db", "ftp://x/y"])
def test_the_tracking_check_refuses_what_the_owner_calls_other(spec):
    assert store_kind(spec) == "other"
    with pytest.raises(ConfigError, match="unknown scheme"):
        check_tracking_uri(spec)


@pytest.mark.parametrize(("spec", "what"), [("o.journal", "journal file"), ("sqlite:///{}/o.db", "SQLite file")])
def test_the_storage_check_reads_the_kind_the_owner_names(spec, what, tmp_path):
    missing = tmp_path / "no" / "such"
    spec = spec.format(missing) if "{}" in spec else str(missing / spec)
    with pytest.raises(ConfigError, match=what):
        check_storage(spec)


def test_make_storage_opens_what_the_owner_names(tmp_path):
    journal = make_storage(str(tmp_path / "o.journal"))
    rdb = make_storage(f"sqlite:///{tmp_path}/o.db")
    assert "Journal" in type(journal).__name__ and "RDB" in type(rdb).__name__


# code that decides a store's kind by itself: a second copy of infra.stores' rule
_SECOND_COPY = re.compile(
    r"""("://"\s+(not\s+)?in\b|\.partition\("://"\)|startswith\(\(?["'](sqlite|postgres\w*|mysql|https?|file)\b)"""
)
_OWNERS = {"workbench/infra/stores.py", "workbench/infra/redaction.py"}


def test_no_module_but_infra_stores_tests_a_store_spec():
    offenders = []
    for path in sorted(ROOT.joinpath("workbench").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name in _OWNERS:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if _SECOND_COPY.search(line) and not line.strip().startswith((">>>", "...")):  # doctests may
                offenders.append(f"{name}:{lineno}: {line.strip()}")
    assert not offenders, "ask workbench.infra.stores (store_kind, store_scheme, local_path):\n" + "\n".join(offenders)


# --- the Pareto front: one implementation, the same answer in both layers ---

_VALUE = st.one_of(st.sampled_from([0.5, 0.7, 0.9, 30.0]), st.floats(0, 100, allow_nan=False), st.just(math.nan))
_ROWS = st.lists(st.tuples(_VALUE, _VALUE), max_size=14).map(
    lambda pairs: [{"trial": i, "sparsity": x, "perplexity": y} for i, (x, y) in enumerate(pairs)]
)


def _dominated(row: dict, rows: list[dict], metric: str, direction: str, axis: str) -> bool:
    s = -1.0 if direction == "minimize" else 1.0
    return any(
        s * o[metric] >= s * row[metric]
        and o[axis] >= row[axis]
        and (s * o[metric] > s * row[metric] or o[axis] > row[axis])
        for o in rows
    )


@settings(max_examples=200, deadline=None)
@given(rows=_ROWS, direction=st.sampled_from(DIRECTIONS))
def test_summary_and_analysis_fronts_are_the_same_front(rows, direction):
    """The console summary's front and the notebooks' front agree, and both match the definition."""
    summary = front(rows, metric="perplexity", direction=direction)
    notebooks = analysis.pareto_front(
        pd.DataFrame(rows, columns=["trial", "sparsity", "perplexity"]), y="perplexity", direction=direction
    )
    assert sorted(r["trial"] for r in summary) == sorted(notebooks["trial"].tolist())
    finite = [r for r in rows if math.isfinite(r["sparsity"]) and math.isfinite(r["perplexity"])]
    expected = [r["trial"] for r in finite if not _dominated(r, finite, "perplexity", direction, "sparsity")]
    assert sorted(r["trial"] for r in summary) == sorted(expected)


def test_a_minimised_metric_keeps_the_lowest_on_both_fronts():
    rows = [
        {"trial": 0, "sparsity": 0.5, "perplexity": 30.0},
        {"trial": 1, "sparsity": 0.5, "perplexity": 25.0},
        {"trial": 2, "sparsity": 0.8, "perplexity": 40.0},
        {"trial": 3, "sparsity": 0.8, "perplexity": 60.0},
    ]
    assert [r["trial"] for r in front(rows, metric="perplexity", direction="minimize")] == [1, 2]
    df = pd.DataFrame(rows)
    assert analysis.pareto_front(df, y="perplexity", direction="minimize")["trial"].tolist() == [1, 2]
    assert analysis.pareto_front(df, y="perplexity")["trial"].tolist() == [3]  # maximised: the highest wins


# --- the metric's direction: one vocabulary ---


def test_no_public_function_takes_a_maximize_flag():
    import workbench.results as results

    flagged = [
        f"{module.__name__}.{name}"
        for module in (analysis, results)
        for name in getattr(module, "__all__", ())
        if callable(fn := getattr(module, name)) and "maximize" in inspect.signature(fn).parameters
    ]
    assert not flagged, f"take direction='maximize'/'minimize' instead: {flagged}"


@pytest.mark.parametrize(
    "call",
    [
        lambda df: analysis.pareto_front(df, direction="max"),
        lambda df: analysis.best_by(df, "pattern", direction="max"),
        lambda df: analysis.pick_trials(df, direction="max"),
        lambda df: analysis.cost_table(df, direction="max"),
        lambda df: front(df.to_dict("records"), direction="max"),
    ],
)
def test_every_layer_refuses_an_unknown_direction_in_the_same_words(call):
    df = pd.DataFrame({"pattern": ["4x1"], "criterion": ["snip"], "sparsity": [0.5], "accuracy": [0.9], "trial": [0]})
    with pytest.raises(ConfigError, match=r"^direction: 'max' is not allowed; allowed: maximize, minimize$"):
        call(df)


# --- whether trials measured speed: decided once ---


@pytest.mark.parametrize(
    ("speedups", "expected"),
    [([], False), ([math.nan, None], False), ([math.nan, 2.0], True), ([float("inf")], False), ([1.0], True)],
)
def test_has_speed_is_one_rule_for_rows_and_frames(speedups, expected):
    rows = [{"trial": i, "speedup": s} for i, s in enumerate(speedups)]
    assert has_speed(rows) is expected
    assert analysis.has_speed(pd.DataFrame(rows, columns=["trial", "speedup"])) is expected


# --- layer order ---


@pytest.mark.e2e
def test_importing_the_analysis_api_loads_no_study_module():
    code = "import sys, workbench.analysis; print(sorted(m for m in sys.modules if m.startswith('workbench.study')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
