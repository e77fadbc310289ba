"""Store faults: a half-created MLflow store, two searches creating one folder's stores, corrupt stores."""

from __future__ import annotations

import shutil
import sqlite3

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from workbench import cli
from workbench.pruner import ConfigError
from workbench.tracking.store_create import ensure_sqlite_store, schema_problem, template_path

from helpers.experiments import experiment, write_experiment
from helpers.study import child_runs, finish, start_search


def _stores(folder):
    return ["--storage", f"sqlite:///{folder}/optuna.db", "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]


def _search(folder, monkeypatch, n_trials=1, *, default_storage=False):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("WORKBENCH_SPOOL_DIR", str(folder / "spool"))
    monkeypatch.delenv("WORKBENCH_STORAGE", raising=False)
    stores = _stores(folder)[2:] if default_storage else _stores(folder)  # MLflow's URI stays absolute (cached)
    return cli.main(["-q", "search", "exp.yaml", "--n-trials", str(n_trials), *stores])


def _half_migrated(db, *, with_run: bool) -> None:
    """What kill -9 in the middle of MLflow's first migrations left (an older workbench)."""
    ensure_sqlite_store(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE _alembic_tmp_metrics (key TEXT)")
        conn.execute("UPDATE alembic_version SET version_num = 'ff01da956556'")
        if with_run:
            conn.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (7, 'e', 'active')")
            conn.execute(
                "INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage, status, source_type) "
                "VALUES ('r1', 7, 'active', 'FINISHED', 'LOCAL')"
            )


@pytest.fixture
def no_template(tmp_path_factory, monkeypatch):
    """A cache folder with no store template yet: a new store runs MLflow's migrations."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(cache))
    return cache


def test_a_new_store_is_a_copy_of_the_template_the_first_one_left(tmp_path, no_template, monkeypatch):
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    first.parent.mkdir(), second.parent.mkdir()
    assert ensure_sqlite_store(f"sqlite:///{first}")
    template = template_path()
    assert template.parent.parent == no_template and schema_problem(template) is None

    def migrations(engine):
        raise AssertionError("a template was there: no migration should run")

    monkeypatch.setattr("mlflow.store.db.utils._initialize_tables", migrations)
    assert ensure_sqlite_store(f"sqlite:///{second}")
    assert second.read_bytes() == template.read_bytes() and schema_problem(second) is None
    client = MlflowClient(f"sqlite:///{second}")  # MLflow opens the copy as a store of its own
    exp = client.create_experiment("copied")
    client.create_run(exp)
    assert len(client.search_runs([exp])) == 1 and not MlflowClient(f"sqlite:///{first}").search_runs([exp])


@pytest.mark.parametrize("damage", ["not a database", "half migrated"])
def test_a_damaged_template_is_ignored_and_written_again(tmp_path, no_template, damage):
    template = template_path()
    template.parent.mkdir(parents=True)
    if damage == "not a database":
        template.write_text("garbage")
    else:
        _half_migrated(template, with_run=False)
    assert ensure_sqlite_store(f"sqlite:///{tmp_path}/mlflow.db")
    assert schema_problem(tmp_path / "mlflow.db") is None and schema_problem(template) is None


def test_a_store_whose_creation_is_cut_short_never_appears(tmp_path, no_template, monkeypatch):
    def killed(engine):  # the tables half made, then the process dies
        engine.connect().exec_driver_sql("CREATE TABLE experiments (x INT)").close()
        raise KeyboardInterrupt("kill -9")

    monkeypatch.setattr("mlflow.store.db.utils._initialize_tables", killed)
    with pytest.raises(KeyboardInterrupt):
        ensure_sqlite_store(f"sqlite:///{tmp_path}/mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()
    monkeypatch.undo()
    ensure_sqlite_store(f"sqlite:///{tmp_path}/mlflow.db")  # the next start creates it whole
    assert schema_problem(tmp_path / "mlflow.db") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]  # the leftover is gone


@pytest.mark.e2e
def test_a_half_migrated_store_without_runs_is_set_aside_and_the_search_works(tmp_path, monkeypatch, capsys):
    _half_migrated(tmp_path / "mlflow.db", with_run=False)
    assert "cut short" in schema_problem(tmp_path / "mlflow.db")
    write_experiment(tmp_path, experiment("half", "plugin_bench:blobs", n_trials=1))
    assert _search(tmp_path, monkeypatch) == 0
    assert schema_problem(tmp_path / "mlflow.db") is None
    assert len(list(tmp_path.glob("mlflow.db.broken-*"))) == 1 and "moved to" in capsys.readouterr().err
    _, children = child_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), "half")
    assert [r.info.status for r in children] == ["FINISHED"]


@pytest.mark.slow
def test_workbench_run_sets_a_half_migrated_store_aside_too(tmp_path, monkeypatch, capsys):
    _half_migrated(tmp_path / "mlflow.db", with_run=False)
    write_experiment(tmp_path, experiment("half", "plugin_bench:blobs", n_trials=1))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["-q", "run", "exp.yaml", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 0
    assert schema_problem(tmp_path / "mlflow.db") is None
    assert len(list(tmp_path.glob("mlflow.db.broken-*"))) == 1 and "moved to" in capsys.readouterr().err
    runs = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_runs(
        [e.experiment_id for e in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()]
    )
    assert "FINISHED" in {r.info.status for r in runs}


def test_a_half_migrated_store_with_runs_is_refused_with_what_to_do(tmp_path):
    _half_migrated(tmp_path / "mlflow.db", with_run=True)
    with pytest.raises(ConfigError, match=r"mlflow.db: the MLflow store is not usable: .*mlflow db upgrade"):
        ensure_sqlite_store(f"sqlite:///{tmp_path}/mlflow.db")
    assert not list(tmp_path.glob("mlflow.db.broken-*"))


@pytest.mark.e2e
def test_two_plain_searches_in_one_new_folder_run_the_total_once(tmp_path):
    write_experiment(
        tmp_path, experiment("race", "plugin_bench:blobs", n_trials=4, targets=(0.5, 0.8), sampler="random")
    )
    procs = [start_search(tmp_path, "--n-trials", "4") for _ in range(2)]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
    study = optuna.load_study(study_name="race", storage=f"sqlite:///{tmp_path}/optuna.db")
    counted = [t for t in study.trials if "repeat_of" not in t.user_attrs]  # exact repeats do not count
    assert sum(t.state == TrialState.COMPLETE for t in counted) == 4 and len(counted) == 4
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp_id = client.get_experiment_by_name("race").experiment_id
    assert len(client.search_runs([exp_id], "tags.`workbench.study` = 'race'")) == 1  # one parent run
    _, children = child_runs(client, "race")
    numbers = sorted(int(r.data.tags["optuna.trial_number"]) for r in children)
    # an exact repeat of a finished trial returns its result without a run of its own
    trained = sorted(t.number for t in study.trials if "repeat_of" not in t.user_attrs)
    assert numbers == trained and all(r.info.status == "FINISHED" for r in children)


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A folder with a study of 2 trials in optuna.db and mlflow.db (copied by each test)."""
    folder = tmp_path_factory.mktemp("healthy")
    write_experiment(folder, experiment("health", "plugin_bench:blobs", n_trials=2))
    with pytest.MonkeyPatch.context() as mp:
        assert _search(folder, mp, n_trials=2) == 0
    shutil.rmtree(folder / "spool", ignore_errors=True)
    return folder


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"this is not a database" * 500)


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "victim, damage, words",
    [
        ("optuna.db", _truncate, "the Optuna store is"),
        ("optuna.db", _garbage, "the Optuna store is not a readable SQLite database"),
        ("optuna.db", _empty, "holds 0 trials of study 'health' but"),
        ("mlflow.db", _truncate, "the MLflow store is"),
        ("mlflow.db", _garbage, "the MLflow store is not a readable SQLite database"),
        ("mlflow.db", _empty, "holds no runs of study 'health' but"),
    ],
)
def test_a_corrupt_store_is_one_line_naming_the_file_and_nothing_is_written(
    finished_study, tmp_path, monkeypatch, capsys, victim, damage, words
):
    folder = tmp_path / "study"
    shutil.copytree(finished_study, folder)
    damage(folder / victim)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    code = _search(folder, monkeypatch, n_trials=3, default_storage=victim == "optuna.db")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    named = "optuna.db" if victim == "optuna.db" else str(folder / victim)  # as the user wrote it (default)
    assert err[0].startswith(f"error: {named}: ") and words in err[0] and "move both" in err[0], err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before  # nothing written
