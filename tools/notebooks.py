"""Execute the analysis notebooks against a tracking store: ``make notebooks`` (``python -m tools.notebooks``).

Each ``notebooks/*.ipynb`` runs in a fresh ``python3`` kernel whose working folder is the notebook's
folder (as in Jupyter) and whose environment carries ``MLFLOW_TRACKING_URI`` (the store resolved
where the command runs, as ``make search`` does) and ``WORKBENCH_EXPERIMENT`` (``--experiment``,
else ``WORKBENCH_EXPERIMENT``, else the most recent study), so every notebook reads the same study.
``--experiment`` takes an experiment name or its YAML file (``make notebooks
EXPERIMENT=experiments/cnn-digits.yaml`` or ``EXPERIMENT=cnn-digits``). Executed copies go to
``notebooks/_executed/<experiment>/`` (git-ignored), one folder per study; the committed notebooks
stay without outputs. ``--jobs N`` runs N notebooks (kernels) at a time.

Example:
    $ .venv/bin/python -m tools.notebooks                         # every notebook, default store
    $ .venv/bin/python -m tools.notebooks 02_sparsity_curves --experiment quick
    $ .venv/bin/python -m tools.notebooks --experiment experiments/cnn-digits.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from workbench.analysis.store import experiment_id, get_client, latest_experiment
from workbench.infra.stores import absolute_sqlite, sqlite_path
from workbench.tracking import resolve_tracking_uri

__all__ = ["count_images", "execute_notebook", "experiment_name", "main", "notebook_paths"]

_log = logging.getLogger(__name__)

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
"""The repository's ``notebooks/`` folder (the package is installed in editable mode)."""


def experiment_name(value: str) -> str:
    """The experiment a ``--experiment`` value names: a YAML file's ``name``, else the value itself."""
    path = Path(value)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ValueError(f"--experiment: no such file {value!r}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError(f"--experiment: {value!r} has no experiment name")
        return data["name"]
    return value


def notebook_paths(folder: str | os.PathLike[str] = NOTEBOOKS_DIR, names: Sequence[str] = ()) -> list[Path]:
    """The notebooks of ``folder`` (sorted), or only ``names`` (with or without ``.ipynb``)."""
    folder = Path(folder)
    found = sorted(folder.glob("*.ipynb"))
    if not names:
        return found
    by_name = {p.stem: p for p in found}
    out = []
    for name in names:
        stem = Path(name).stem
        if stem not in by_name:
            raise ValueError(f"notebook: {name!r} is not in {folder}; allowed: {', '.join(sorted(by_name))}")
        out.append(by_name[stem])
    return out


def count_images(nb: nbformat.NotebookNode, mime: str = "image/png") -> int:
    """How many outputs of ``nb`` carry a ``mime`` picture (figures shown by the notebook)."""
    return sum(
        mime in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def execute_notebook(
    path: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int = 600,
    kernel_name: str = "python3",
) -> nbformat.NotebookNode:
    """Run every cell of the notebook at ``path`` in a fresh kernel and return the executed notebook.

    The kernel runs in the notebook's folder with ``env`` added to this process's environment.
    ``output``, when given, receives the executed copy, also when a cell fails (the error is then
    re-raised as :class:`nbclient.exceptions.CellExecutionError`). The file at ``path`` is never written.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        client.execute(env={**os.environ, **(env or {})})
    finally:
        if output is not None:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(output))
    return nb


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--notebooks", default=str(NOTEBOOKS_DIR), help="folder of the notebooks")
    parser.add_argument(
        "--output", default=None, help="folder of executed copies (default: NOTEBOOKS/_executed/<experiment>)"
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    parser.add_argument(
        "--experiment", default=None, help="experiment name or YAML file (default: the most recent study)"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at the same time")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Execute the notebooks; 0 when all ran, 1 when one failed, 2 for bad input or no study."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    uri = resolve_tracking_uri(args.tracking_uri)  # as `workbench search` resolves it, from here
    uri = absolute_sqlite(uri)  # the kernel runs in another folder
    try:
        if args.jobs < 1:
            raise ValueError(f"--jobs: must be >= 1, got {args.jobs}")
        db_file = sqlite_path(uri)
        if db_file is not None and not Path(db_file).is_file():
            raise ValueError(f"tracking store: no {db_file}; run `make search` first")
        wanted = experiment_name(args.experiment) if args.experiment else None
        if wanted:
            experiment_id(get_client(uri), wanted)  # raises naming the experiments there
        experiment = wanted or latest_experiment(uri)
        paths = notebook_paths(args.notebooks, args.names)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    env = {"MLFLOW_TRACKING_URI": uri, "WORKBENCH_EXPERIMENT": experiment}
    output = Path(args.output) if args.output else Path(args.notebooks) / "_executed" / experiment

    def run(path: Path) -> bool:
        start = time.perf_counter()
        try:
            nb = execute_notebook(path, output=output / path.name, env=env, timeout=args.timeout)
        except CellExecutionError as err:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # the traceback's terminal colours
            last = text.splitlines()[-1] if text else type(err).__name__
            _log.error("%s FAILED: %s (see %s)", path.name, last, output / path.name)
            return False
        _log.info(
            "%s: %d figures, %.1f s -> %s", path.name, count_images(nb), time.perf_counter() - start, output / path.name
        )
        return True

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # one kernel process per running notebook
        ok = list(pool.map(run, paths))
    _log.info("%d of %d notebooks ran on experiment %r in %s", sum(ok), len(paths), experiment, uri)
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
