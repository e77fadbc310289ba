"""Bad experiment files, numbers, plug-ins and run ids: exit 2, one line naming it, nothing written.

Every case runs ``workbench.cli.main`` in-process in an empty folder and checks the exit status,
the one stderr line (a failing plug-in's line is followed by its own frames only), that no
traceback of ours is printed and that no store was created (issue 17, CLI group).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import yaml

from workbench.cli import main
from workbench.pruner import ConfigError, process_config

from helpers.experiments import with_changes

WORKBENCH_DIR = str(Path(__file__).resolve().parents[1] / "workbench")
STORES = ("mlflow.db", "optuna.db", "optuna.journal", "mlruns")
_counter = itertools.count()


def _experiment(**changes) -> dict:
    """A valid experiment; ``changes`` maps dotted keys (``"training.steps"``) to new values."""
    data = {
        "name": "hardening",
        "benchmark": "mlp-digits",
        "training": {"steps": 10, "batch_size": 32, "eval_every": 5, "pruning_frequency": 5, "threads": 1},
        "search_space": {
            "pattern": "4x1",
            "criterion": "magnitude",
            "scheduler": "oneshot",
            "target_sparsity": {"low": 0.5, "high": 0.7, "step": 0.1},
        },
        "study": {"n_trials": 1, "sampler": "random", "seed": 0},
    }
    return with_changes(data, **changes)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty working folder with no store variables set."""
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "WORKBENCH_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def _assert_one_line(code: int, err: list[str], folder: Path, *words: str) -> None:
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith("error: "), err
    for word in words:
        assert word in err[0], err
    assert "Traceback" not in err[0]
    assert not [s for s in STORES if (folder / s).exists()], list(folder.iterdir())


# ---- numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"training.steps": 10**400}, ["training.steps:", "401 digits", "at most 1000000"]),
        ({"training.lr": 10**400}, ["training.lr:", "expected a finite number"]),
        ({"training.steps": 10**7}, ["training.steps:", "10000000 is too large", "at most 1000000"]),
        ({"training.batch_size": 2**40}, ["training.batch_size:", "at most 1048576"]),
        ({"training.threads": 2**40}, ["training.threads:", "1099511627776", "at most 1024"]),
        ({"training.eval_every": 10**9}, ["training.eval_every:", "at most 1000000"]),
        ({"study.seed": -1}, ["study.seed:", "-1 is out of range", "2**32 - 1"]),
        ({"study.seed": 2**32}, ["study.seed:", "4294967296", "4294967295"]),
        ({"study.seed": 10**40}, ["study.seed:", "41 digits"]),
        ({"search_space.target_sparsity": {"low": 0.1, "high": 0.9, "step": 1e-9}}, ["target_sparsity.step:", "10000"]),
        ({"search_space.lr": {"low": 0.001, "high": 10**400}}, ["search_space.lr.high:", "beyond the float range"]),
        ({"search_space.lr": 10**400}, ["search_space.lr:", "beyond the float range"]),
        (
            {
                "study.sampler": "grid",
                "search_space.target_sparsity": {"low": 0.0, "high": 0.9, "step": 0.001},
                "search_space.lr": {"low": 0.001, "high": 0.1, "step": 0.001},
            },
            ["study.sampler: grid over", "at most 10000"],
        ),
        ({"search_space.pattern": [f"{n}x1" for n in range(1, 1202)]}, ["search_space.pattern:", "at most 1000"]),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, dict) else "-".join(v)[:40],
)
def test_bad_numbers_are_refused_before_any_store(folder, capsys, changes, words):
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(_experiment(**changes)))
    code, err = _cli(capsys, "search", str(path))
    _assert_one_line(code, err, folder, *words)


@pytest.mark.parametrize("workers", [str(2**40), "257"])
def test_too_many_workers_is_refused(folder, capsys, workers):
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(_experiment()))
    code, err = _cli(capsys, "search", str(path), "--workers", workers)
    _assert_one_line(code, err, folder, "--workers", "at most 256", workers)


def test_run_set_seed_out_of_range_is_refused(folder, capsys):
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(_experiment()))
    code, err = _cli(capsys, "run", str(path), "--set", f"seed={2**32}")
    _assert_one_line(code, err, folder, "--set seed:", "2**32 - 1")


_FLOW_BOMB = (
    "[&a [x, x, x, x, x, x, x, x, x, x], "
    + ", ".join(f"&{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8))
    + "]"
)


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        (f"pruning.excluded_op_names={_FLOW_BOMB}", ["--set pruning.excluded_op_names", "more than 100000 values"]),
        ("pruning.parameters={a: 1, a: 2}", ["--set pruning.parameters", "duplicate key 'a'"]),
        (f"training.steps={10**400}", ["training.steps:", "401 digits"]),
    ],
)
def test_bad_set_values_are_refused(folder, capsys, setting, words):
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(_experiment()))
    code, err = _cli(capsys, "run", str(path), "--set", setting)
    _assert_one_line(code, err, folder, *words)


def test_numbers_at_the_bounds_are_accepted():
    from workbench.experiment import parse_experiment

    exp = parse_experiment(
        _experiment(**{"study.seed": 2**32 - 1, "training.threads": 1024, "training.steps": 1_000_000})
    )
    assert (exp.study.seed, exp.training.threads, exp.training.steps) == (2**32 - 1, 1024, 1_000_000)


# ---- files ------------------------------------------------------------------------------------
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


def _write(folder: Path, kind: str) -> Path:
    path = folder / "exp.yaml"
    good = yaml.safe_dump(_experiment(), sort_keys=False)
    if kind == "non-utf8":
        path.write_bytes(good.encode().replace(b"hardening", b"h\xe4rdening"))
    elif kind == "duplicate top-level key":
        path.write_text(good + "name: again\n")
    elif kind == "duplicate nested key":
        path.write_text(good.replace("  seed: 0\n", "  seed: 0\n  seed: 1\n"))
    elif kind == "alias bomb":
        path.write_text(good + _BOMB + "description: *i\n")
    elif kind == "recursive alias":
        path.write_text(good + "plugins: &p [*p]\n")
    elif kind == "oversized":
        path.write_text(good + "description: '" + "x" * (1 << 20) + "'\n")
    elif kind == "folder":
        path.mkdir()
    elif kind == "unreadable":
        path.write_text(good)
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("non-utf8", ["experiment: ", "exp.yaml", "not UTF-8", "0xe4"]),
        ("duplicate top-level key", ["experiment: ", "exp.yaml", "duplicate key 'name'"]),
        ("duplicate nested key", ["experiment: ", "exp.yaml", "duplicate key 'seed'"]),
        ("alias bomb", ["experiment: ", "exp.yaml", "more than 100000 values"]),
        ("recursive alias", ["experiment: ", "exp.yaml", "contains it"]),
        ("oversized", ["experiment: ", "exp.yaml", "at most 1048576 bytes"]),
        ("folder", ["experiment: ", "exp.yaml", "it is a folder"]),
        ("unreadable", ["experiment: ", "cannot read", "exp.yaml", "Permission denied"]),
    ],
)
def test_bad_files_are_named_in_one_line(folder, capsys, monkeypatch, kind, words):
    path = _write(folder, kind)
    if kind == "unreadable":  # tests may run as root, where chmod 000 does not stop reading
        real = Path.read_bytes

        def refuse(self):
            if self.name == "exp.yaml":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", refuse)
    for command in ("search", "run"):
        code, err = _cli(capsys, command, str(path))
        _assert_one_line(code, err, folder, *words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "target_sparsity: 0.5\ntarget_sparsity: 0.7\n",
            ["config path: ", "line 2", "duplicate key 'target_sparsity'"],
        ),
        ("pruning_configs:\n  - {pattern: 4x1, pattern: 2:4}\n", ["duplicate key 'pattern'"]),
        (_BOMB, ["config path: ", "more than 100000 values"]),
        ("target_sparsity: 0.5\nexcluded_op_names: ['\xff']\n".encode("latin-1"), ["config path: ", "not UTF-8"]),
    ],
)
def test_bad_pruning_config_yaml_is_named(tmp_path, text, words):
    path = tmp_path / "prune.yaml"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    with pytest.raises(ConfigError) as info:
        process_config(str(path))
    for word in words:
        assert word in str(info.value)
    assert "prune.yaml" in str(info.value)


def test_rerun_of_an_unknown_run_creates_no_store(folder, capsys):
    code, err = _cli(capsys, "rerun", "0123456789abcdef0123456789abcdef")
    _assert_one_line(code, err, folder, "run_id:", "0123456789abcdef", "'mlflow.db' does not exist")


@pytest.mark.slow
def test_rerun_of_an_unknown_run_in_an_existing_store_is_one_line(folder, capsys):
    from workbench.tracking import Tracker

    Tracker("sqlite:///mlflow.db").experiment_id("x")
    capsys.readouterr()
    code, err = _cli(capsys, "rerun", "0123456789abcdef0123456789abcdef")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: run_id:"), err
    assert "not found" in err[0]


# ---- plug-ins ---------------------------------------------------------------------------------
PLUGINS = {
    "syntax error": ("def make(:\n    pass\n", "the plug-in has a syntax error: invalid syntax", "SyntaxError"),
    "raises on import": (
        "def helper():\n    raise RuntimeError('no GPU here')\nhelper()\n",
        "the plug-in raised RuntimeError: no GPU here",
        "RuntimeError: no GPU here",
    ),
    "imports a missing package": (
        "import not_a_real_package_xyz\n",
        "the plug-in raised ModuleNotFoundError: No module named 'not_a_real_package_xyz'",
        "ModuleNotFoundError",
    ),
    "exits on import": ("import sys\nsys.exit(0)\n", "the plug-in called sys.exit(0)", "SystemExit: 0"),
    "function raises": (
        "def helper(x):\n    return 1 / x\ndef make():\n    return helper(0)\n",
        "the plug-in raised ZeroDivisionError: division by zero",
        "ZeroDivisionError",
    ),
    "function exits": ("import sys\ndef make():\n    sys.exit(3)\n", "the plug-in called sys.exit(3)", "SystemExit: 3"),
    "function exits silently": (
        "def make():\n    raise SystemExit\n",
        "the plug-in called sys.exit(None)",
        "SystemExit",
    ),
}


@pytest.fixture
def plugin_module(folder, monkeypatch):
    """Write a plug-in module with a name unique in this process; returns (name, path)."""
    monkeypatch.syspath_prepend(str(folder))

    def write(source: str) -> tuple[str, Path]:
        name = f"hardening_plugin_{next(_counter)}"
        path = folder / f"{name}.py"
        path.write_text(source)
        return name, path

    yield write
    for name in [m for m in sys.modules if m.startswith("hardening_plugin_")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("where", "case"),
    [("benchmark", case) for case in PLUGINS] + [("plugins", case) for case in PLUGINS if "function" not in case],
)
def test_failing_plugin_is_one_line_and_its_own_traceback(folder, capsys, plugin_module, where, case):
    source, summary, last = PLUGINS[case]
    name, path = plugin_module(source)
    data = _experiment(benchmark=f"{name}:make") if where == "benchmark" else _experiment(plugins=[name])
    exp = folder / "exp.yaml"
    exp.write_text(yaml.safe_dump(data))
    code, err = _cli(capsys, "run" if where == "benchmark" else "search", str(exp))
    assert code == 2, err
    label = f"benchmark '{name}:make'" if where == "benchmark" else "plugins[0]"
    assert err[0].startswith(f"error: {label}: "), err
    assert summary in err[0], err
    assert not any("Traceback" in line and "plug-in" not in line for line in err), err
    assert not any(WORKBENCH_DIR in line for line in err), err  # only the plug-in's frames
    assert str(path) in "\n".join(err[1:])  # ... and they are there
    assert err[-1].startswith(last), err
    assert not [s for s in STORES if (folder / s).exists()]


@pytest.mark.slow  # a subprocess: the entry point as users run it
def test_failing_plugin_from_the_console_exits_2_not_0(folder, plugin_module):
    import os
    import subprocess

    name, _ = plugin_module("import sys\ndef make():\n    sys.exit(0)\n")
    exp = folder / "exp.yaml"
    exp.write_text(yaml.safe_dump(_experiment(benchmark=f"{name}:make")))
    env = {**os.environ, "PYTHONPATH": str(Path(WORKBENCH_DIR).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "run", str(exp)], capture_output=True, text=True, cwd=folder, env=env
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0].startswith(f"error: benchmark '{name}:make': the plug-in called sys.exit(0)")
    assert not (folder / "mlflow.db").exists()


@pytest.mark.slow  # a subprocess: the entry point as users run it
@pytest.mark.parametrize(("kind", "words"), [("alias bomb", "more than 100000 values")])
def test_console_prints_one_line_and_creates_nothing(folder, kind, words):
    import os
    import subprocess

    path = _write(folder, kind)
    env = {**os.environ, "PYTHONPATH": str(Path(WORKBENCH_DIR).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "search", str(path)], capture_output=True, text=True, cwd=folder, env=env
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "exp.yaml" in lines[0], proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["exp.yaml"]
