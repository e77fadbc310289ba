"""The layout is the architecture: import contracts, module size, import placement, docs in the repo."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import workbench

from helpers import SAFETY_NET_S

ROOT = Path(__file__).resolve().parent.parent
# A module is one concept; its size is a hint, not a rule (docs/design.md, Conventions): above
# WARN_LINES the test warns, naming the file, so a reviewer asks whether it holds two concepts;
# only above MAX_LINES (no single concept here needs that many) does it fail.
WARN_LINES = 600
MAX_LINES = 1200
SOURCES = sorted([*ROOT.joinpath("workbench").rglob("*.py"), *ROOT.joinpath("tools").rglob("*.py")])
PACKAGES = sorted(m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.") if m.ispkg)


@pytest.mark.e2e
def test_the_import_contracts_hold():
    """The layers of docs/design.md, the pruner's independence and acyclic packages (pyproject.toml)."""
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=SAFETY_NET_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def module_size_problems(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """``(warnings, failures)`` for modules of ``sizes`` (path -> lines) above WARN_LINES / MAX_LINES."""
    warn = [
        f"{p} has {n} lines (> {WARN_LINES}): is it one concept?"
        for p, n in sizes.items()
        if WARN_LINES < n <= MAX_LINES
    ]
    fail = [f"{p} has {n} lines (> {MAX_LINES}); split it by concept" for p, n in sizes.items() if n > MAX_LINES]
    return warn, fail


def test_modules_hold_one_concept_each():
    """Large modules are named in a warning; only a module above MAX_LINES fails."""
    sizes = {str(p.relative_to(ROOT)): p.read_text().count("\n") for p in SOURCES}
    warn, fail = module_size_problems(sizes)
    for message in warn:
        warnings.warn(message, stacklevel=1)
    assert not fail, "\n".join(fail)


def test_the_size_guard_warns_before_it_fails():
    warn, fail = module_size_problems({"a.py": WARN_LINES, "b.py": WARN_LINES + 1, "c.py": MAX_LINES + 1})
    assert warn == [f"b.py has {WARN_LINES + 1} lines (> {WARN_LINES}): is it one concept?"]
    assert fail == [f"c.py has {MAX_LINES + 1} lines (> {MAX_LINES}); split it by concept"]


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if path.name == "__init__.py" and getattr(node, "name", None) == "_load":
            continue  # a lazy namespace's imports (workbench/_lazy.py says why); checked below
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.extend(
                (sub.lineno, lines[sub.lineno - 1])
                for sub in ast.walk(node)
                if isinstance(sub, (ast.Import, ast.ImportFrom))
            )
    return found


def test_function_level_imports_say_why():
    """Only for start-up cost, with the reason on the line or just above (the CLI says so once)."""
    unexplained = []
    for path in SOURCES:
        if path.name == "cli.py":  # its module docstring explains: each command imports its own layers
            continue
        lines = path.read_text().splitlines()
        for lineno, line in _function_level_imports(path):
            first = lineno - 1  # the block of imports this one belongs to, and the line above it
            while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                first -= 1
            if "#" not in " ".join(lines[max(0, first - 1) : lineno]):
                unexplained.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not unexplained, "function-level imports without a reason:\n" + "\n".join(unexplained)


LAZY = ("workbench.pruner", "workbench.pruner.posttraining", "workbench.benchmarks", "workbench.trial")


@pytest.mark.parametrize("name", LAZY)
def test_a_lazy_namespace_binds_exactly_what_it_lists_on_first_use(name):
    """Its ``_load`` binds every name of ``__all__`` (and only public names the package means to export)."""
    module = importlib.import_module(name)
    loaded = {k for k in module._load() if not k.startswith("_")}
    missing = set(module.__all__) - loaded - {k for k in module.__all__ if k in vars(module)}
    assert not missing, f"{name}.__all__ lists names _load does not bind: {sorted(missing)}"
    assert set(dir(module)) >= set(module.__all__)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_says_what_it_owns_and_exports_what_it_lists(name):
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.split()) >= 20, f"{name}: its docstring must say what it owns"
    for exported in getattr(module, "__all__", ()):
        assert hasattr(module, exported), f"{name}.__all__ lists {exported!r}, which it does not define"


OUTSIDE = "/".join(("..", "shared"))  # built, so this file does not hold the path it looks for


def test_nothing_in_the_repository_points_outside_it():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".toml", ".yaml", ".ipynb")) or name in ("Makefile",)
        if OUTSIDE in (ROOT / name).read_text(errors="replace")
    ]
    assert not offenders, offenders


_IMPORT_EACH_FRESH = """
import importlib, pkgutil, sys, workbench
names = sorted(m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.") if m.name != "workbench.__main__")
for name in names:
    for loaded in [k for k in sys.modules if k == "workbench" or k.startswith("workbench.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as err:
        print(f"{name}: {err}")
"""


@pytest.mark.e2e
def test_every_module_imports_first_in_a_fresh_interpreter():
    """Importing any module first (``python -c "import workbench.pruner.config"``) works: no module
    reaches a lazy package's names half-way through that package's own imports (a cycle)."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_FRESH],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    assert out.stdout == ""
