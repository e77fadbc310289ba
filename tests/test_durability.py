"""Durability that matches the promise: a file is synced before its rename, its folder after.

Each test records the real ``os.fsync`` / ``os.replace`` calls (telling a synced folder from a
synced file by ``fstat``) and checks their order for the spool, a new MLflow store and a new
journal file. Without the syncs, a power loss could leave a renamed but empty spool file, or
lose the rename itself, while the module says nothing is lost.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.infra import durable
from workbench.study.factories import make_storage
from workbench.tracking import spool as tracking_spool
from workbench.tracking.spool import read_entry
from workbench.tracking.store_create import ensure_sqlite_store


@pytest.fixture
def calls(monkeypatch):
    """The fsync and replace calls made, in order: ("fsync", "file"|"dir", inode) and ("replace", src, dst)."""
    recorded: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st_ = os.fstat(fd)
        recorded.append(("fsync", "dir" if stat.S_ISDIR(st_.st_mode) else "file", st_.st_ino))
        real_fsync(fd)

    def replace(src, dst, **kwargs):
        recorded.append(("replace", Path(src), Path(dst)))
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return recorded


def _assert_synced_renamed_synced(calls: list[tuple], final: Path) -> None:
    """fsync(the file) precedes its replace, which precedes fsync(its folder)."""
    renames = [i for i, c in enumerate(calls) if c[0] == "replace" and c[2] == final]
    assert len(renames) == 1, calls
    (at,) = renames
    src = calls[at][1]
    assert src.parent == final.parent and not src.exists() and final.exists()
    file_syncs = [i for i, c in enumerate(calls) if c == ("fsync", "file", final.stat().st_ino)]
    dir_syncs = [i for i, c in enumerate(calls) if c == ("fsync", "dir", final.parent.stat().st_ino)]
    assert file_syncs and min(file_syncs) < at, calls
    assert dir_syncs and max(dir_syncs) > at, calls


def test_a_spool_file_is_synced_renamed_then_its_folder_synced(tmp_path, calls):
    spool = tmp_path / "spool" / "study"  # created by the write: its parents are synced too
    path = tracking_spool._write_entry(spool, "r1", [("finish", ("r1", "COMPLETE", None), {})])
    _assert_synced_renamed_synced(calls, path)
    created_in = {c[2] for c in calls if c[:2] == ("fsync", "dir")}
    assert {tmp_path.stat().st_ino, (tmp_path / "spool").stat().st_ino} <= created_in
    assert read_entry(path) == ("r1", [("finish", ("r1", "COMPLETE", None), {})])
    assert sorted(p.name for p in spool.iterdir()) == [path.name]  # no temporary file left


def test_a_failed_spool_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    spool = tmp_path / "spool"

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        tracking_spool._write_entry(spool, "r1", [("finish", ("r1", "COMPLETE", None), {})])
    assert list(spool.iterdir()) == []


def test_a_new_mlflow_store_is_synced_renamed_then_its_folder_synced(tmp_path, calls, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))  # no store template: migrations run
    import sqlalchemy
    from mlflow.store.db import utils

    def tables(engine: sqlalchemy.Engine) -> None:  # MLflow's ~60 migrations are not what is tested
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE runs (x INTEGER)")

    monkeypatch.setattr(utils, "_initialize_tables", tables)
    db = tmp_path / "mlflow.db"
    ensure_sqlite_store(f"sqlite:///{db}")
    _assert_synced_renamed_synced(calls, db)


def test_a_new_journal_file_has_its_folder_synced(tmp_path, calls):
    journal = tmp_path / "optuna.journal"
    make_storage(str(journal))
    assert journal.exists()
    assert ("fsync", "dir", tmp_path.stat().st_ino) in calls
    calls.clear()
    make_storage(str(journal))  # an existing journal is opened as it is
    assert ("fsync", "dir", tmp_path.stat().st_ino) not in calls


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(0, 3), text=st.text(max_size=200))
def test_make_dirs_and_write_durably_round_trip(tmp_path_factory, depth, text):
    base = tmp_path_factory.mktemp("d")
    folder = durable.make_dirs_durably(base.joinpath(*[f"n{i}" for i in range(depth)]))
    assert folder.is_dir()
    path = durable.write_durably(folder / "x.txt", lambda handle: handle.write(text.encode()))
    assert path.read_bytes().decode("utf-8") == text and [p.name for p in folder.iterdir()] == ["x.txt"]
    assert not durable.create_durably(path) and durable.create_durably(folder / "new")
