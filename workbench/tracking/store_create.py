"""A new MLflow SQLite store is created whole or not at all.

MLflow creates its tables and then runs ~60 schema migrations in place; a process killed
meanwhile (kill -9 in the first second of a folder's first search) left a half-migrated
``mlflow.db`` that every later start refused ("table _alembic_tmp_metrics already exists").
:func:`ensure_sqlite_store` migrates a new store in a temporary file beside the target and
renames it into place, so the target is either absent or complete (the file synced before the
rename and its folder after, so a power loss cannot leave a store without its tables). A half-migrated store that
an older workbench left, holding no run, is moved aside (``<name>.broken-<time>``, with a
warning) and created again; one that holds runs is the user's data: a ConfigError says what to do.

Running the migrations takes seconds (MLflow reads ~100 migration scripts), paid by every new
store: a folder's first ``workbench search``. The first store created on a machine is also kept,
untouched, as a template in the cache folder (``<cache>/mlflow-store/mlflow-<version>.db``,
:mod:`workbench.infra.cache_dir`; one per MLflow version, whose schema it fixes), and later new
stores are copies of it: the same file MLflow would have written, in milliseconds. A template that
is not a complete store at its version's schema is ignored and written again.

MLflow puts an empty experiment "Default" (id 0) in every new store; beside the study's own it
only misleads (a first look at the UI opens on it). :func:`hide_default_experiment` moves it to
the trash (MLflow's soft delete: MLflow itself does not create it again, ``mlflow gc`` would
remove it for good) in a store the workbench has just created, where nothing can be in it.

Example:
    >>> ensure_sqlite_store("sqlite:////tmp/doc-store/mlflow.db")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from workbench.infra.cache_dir import resolve_cache_dir
from workbench.infra.durable import replace_durably, write_durably
from workbench.infra.stores import sqlite_path, sqlite_url
from workbench.pruner.errors import ConfigError

__all__ = ["DEFAULT_EXPERIMENT", "ensure_sqlite_store", "hide_default_experiment", "schema_problem", "template_path"]

_log = logging.getLogger(__name__)


def _head_revision() -> str:
    # start-up: MLflow's migration scripts are read only when a store is checked
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def schema_problem(db: Path) -> str | None:
    """Why the MLflow SQLite file ``db`` is not a complete store (None when it is one).

    Raises sqlite3.DatabaseError when the file is not a SQLite database at all.
    """
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        half = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
        if half:
            return f"a schema migration was cut short (table {half[0]} left behind)"
        if not {"experiments", "runs", "alembic_version"} <= tables:
            return "its MLflow tables are missing or incomplete"
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or ("none",)
    head = _head_revision()
    return None if version == head else f"its schema is at version {version}, not {head}"


def _runs(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def template_path() -> Path:
    """Where this MLflow version's empty store is kept (module docstring)."""
    # start-up: MLflow's version only, when a store is created
    from mlflow.version import VERSION

    return resolve_cache_dir() / "mlflow-store" / f"mlflow-{VERSION}.db"


def _usable_template(template: Path) -> bool:
    try:
        return template.is_file() and schema_problem(template) is None
    except sqlite3.DatabaseError:
        return False


def _keep_template(tmp: Path, template: Path) -> None:
    """Copy the store just created to ``template`` (atomically, no partial file left; a failure
    only costs the speed-up)."""
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("rb") as source:
            write_durably(template, lambda handle: shutil.copyfileobj(source, handle))
    except OSError as err:
        _log.debug("no store template kept at %s: %s", template, err)


def _create(db: Path) -> None:
    tmp = db.with_name(f".{db.name}.creating-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    template = template_path()
    if _usable_template(template):
        shutil.copyfile(template, tmp)
    else:
        # start-up: SQLAlchemy and MLflow's schema code load only when a store is migrated
        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables

        engine = sqlalchemy.create_engine(sqlite_url(tmp), poolclass=sqlalchemy.pool.NullPool)
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        _keep_template(tmp, template)
    replace_durably(tmp, db)  # atomic and synced: the store appears complete, or not at all


def ensure_sqlite_store(uri: str) -> bool:
    """Create the MLflow SQLite store ``uri`` atomically if it does not exist (module docstring).

    Call it under a lock shared by the processes that may create the same store. Other URLs and
    complete stores are left alone; a file that is not a database is reported by
    :func:`workbench.study.store_health.check_store_health`, not here. Returns whether it created
    the store (then :func:`hide_default_experiment` may tidy it).
    """
    path = sqlite_path(uri)
    if path is None or path == ":memory:":
        return False
    db = Path(path).expanduser()
    for leftover in db.parent.glob(f".{db.name}.creating-*"):  # a creation killed before its rename
        leftover.unlink(missing_ok=True)
    if not db.exists() or db.stat().st_size == 0:
        _create(db)
        return True
    try:
        problem = schema_problem(db)
    except sqlite3.DatabaseError:
        return False
    if problem is None:
        return False
    if _runs(db):
        raise ConfigError(
            f"{db}: the MLflow store is not usable: {problem}; it holds runs, so back it up and run "
            f"`mlflow db upgrade {uri}` (or move it away to start a new store)"
        )
    aside = db.with_name(f"{db.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(db, aside)
    _log.warning("%s: %s and it held no run; moved to %s and created again", db, problem, aside)
    _create(db)
    return True


DEFAULT_EXPERIMENT = ("0", "Default")
"""MLflow's own experiment in a new store: its id and name."""


def hide_default_experiment(client: Any, *, keep: str) -> bool:
    """Move MLflow's empty "Default" experiment of a new store to the trash; returns whether it did.

    Only an active experiment 0 named ``Default`` that holds no run, and never when the study's own
    experiment is named ``keep`` == ``Default`` (it would be that one). ``client`` is an
    ``MlflowClient`` of the store.
    """
    exp_id, name = DEFAULT_EXPERIMENT
    if keep == name:
        return False
    try:
        found = client.get_experiment(exp_id)
        if found.name != name or found.lifecycle_stage != "active" or client.search_runs([exp_id], max_results=1):
            return False
        client.delete_experiment(exp_id)
    except Exception as err:  # noqa: BLE001 - tidying only: the store works with Default shown
        _log.debug("MLflow's Default experiment left in place: %s", err)
        return False
    _log.debug("moved MLflow's empty Default experiment to the trash")
    return True
