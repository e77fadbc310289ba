"""One rule, one owner: every caller asks the owner, so a second copy of a rule breaks a test here.

* the kind of a store (journal file / SQLite / database / server): :mod:`workbench.infra.stores`.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from workbench.infra.stores import STORE_KINDS, is_local_store, local_path, sqlite_path, store_kind, store_scheme
from workbench.pruner import ConfigError
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
