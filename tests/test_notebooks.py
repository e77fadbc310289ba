"""The analysis notebooks: committed clean, and each runs (nbclient, python3 kernel) on a quick.yaml store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from tools import build_notebooks
from tools.notebooks import NOTEBOOKS_DIR, count_images, main, notebook_paths
from workbench import analysis

REPO = Path(__file__).resolve().parent.parent


NAMES = sorted(build_notebooks.NOTEBOOKS)


@pytest.fixture(scope="session")
def quick_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store made by `workbench search experiments/quick.yaml`, run once per session in a temp folder."""
    folder = tmp_path_factory.mktemp("quick")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "WORKBENCH_EXPERIMENT")}
    cli = Path(sys.executable).parent / "workbench"
    done = subprocess.run(
        [str(cli), "search", str(REPO / "experiments" / "quick.yaml")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return f"sqlite:///{folder / 'mlflow.db'}"


def test_committed_notebooks_are_generated_without_outputs():
    generator = build_notebooks
    assert [p.stem for p in notebook_paths()] == NAMES
    for name in NAMES:
        path = NOTEBOOKS_DIR / f"{name}.ipynb"
        assert path.read_text() == generator.render(name), f"{path.name}: run python -m tools.build_notebooks"
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), f"{name} has outputs"
        first = code[0]
        assert first.metadata.get("tags") == ["parameters"], f"{name}: first code cell is not the parameters cell"
        assert "TRACKING_URI = analysis.default_tracking_uri()" in first.source
        assert "EXPERIMENT = analysis.latest_experiment(TRACKING_URI)" in first.source


def test_runner_without_a_store_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["--output", str(tmp_path / "out")]) == 2
    assert "run `make search` first" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_runner_rejects_unknown_names(quick_store, tmp_path, capsys):
    assert main(["04_nope", "--tracking-uri", quick_store, "--output", str(tmp_path)]) == 2
    assert "notebook: '04_nope'" in capsys.readouterr().err
    assert main(["--experiment", "nope", "--tracking-uri", quick_store, "--output", str(tmp_path)]) == 2
    assert "experiment: 'nope' is not in" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="session")
def executed(quick_store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, dict[str, bytes]]:
    """`python -m tools.notebooks` over every notebook once (3 kernels at a time): rc, output folder, originals."""
    output = tmp_path_factory.mktemp("executed")
    before = {name: (NOTEBOOKS_DIR / f"{name}.ipynb").read_bytes() for name in NAMES}
    saved = os.environ.pop("WORKBENCH_EXPERIMENT", None)
    try:
        rc = main(["--tracking-uri", quick_store, "--output", str(output), "--jobs", "3"])
    finally:
        if saved is not None:
            os.environ["WORKBENCH_EXPERIMENT"] = saved
    return rc, output, before


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_draws(name, quick_store, executed):
    rc, output, before = executed
    nb = nbformat.read(output / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    assert rc == 0
    assert (NOTEBOOKS_DIR / f"{name}.ipynb").read_bytes() == before[name]  # outputs never land in the repo copy
    params_out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"'quick' in {quick_store}" in params_out  # the runner's store reached the parameters cell
    complete = analysis.trials_frame("quick", client=quick_store).query("state == 'COMPLETE'")
    expected = {
        "01_study_overview": 3,  # accuracy vs sparsity with the front, cost, importances
        "02_sparsity_curves": 2 * min(3, len(complete)) + 2,  # lines + heatmap per trial, global, eval
        "03_criterion_schedule": 2,  # criterion per pattern x scheduler, scheduler per pattern x criterion
    }[name]
    assert count_images(nb) == expected


@pytest.mark.slow
def test_notebook_03_compares_with_the_other_knobs_and_the_reached_sparsity_fixed(quick_store, executed):
    _, output, _ = executed
    nb = nbformat.read(output / "03_criterion_schedule.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any("plot_metric_by_group" in c.source for c in code)  # no curve averages over patterns any more
    complete = analysis.trials_frame("quick", client=quick_store).query("state == 'COMPLETE'")
    for knob, within in (("criterion", ["pattern", "scheduler"]), ("scheduler", ["pattern", "criterion"])):
        (cell,) = [c for c in code if "compare_at_matched_sparsity(" in c.source and f'"{knob}", within=[' in c.source]
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1  # the faceted figure: one panel per value of the held knobs
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        expected = analysis.compare_at_matched_sparsity(complete, knob, within=within)
        assert printed.strip() == expected.attrs["note"]
        assert f"{knob} compared with {', '.join(within)} held fixed; matched: reached sparsity within 0.01" in printed
        (table,) = [o["data"]["text/plain"] for o in cell.outputs if o.output_type == "execute_result"]
        with pd.option_context("display.max_columns", 40, "display.width", 200):
            assert table == repr(expected)  # the rows and columns the notebook shows, computed here again
    (strict,) = [c for c in code if 'within="all"' in c.source]
    note = analysis.compare_at_matched_sparsity(complete, "criterion", within="all").attrs["note"]
    assert "".join(o.get("text", "") for o in strict.outputs if o.output_type == "stream").strip() == note


def test_experiment_is_chosen_by_name_or_by_its_yaml(tmp_path):
    from tools.notebooks import experiment_name

    assert experiment_name(str(NOTEBOOKS_DIR.parent / "experiments" / "cnn-digits.yaml")) == "cnn-digits"
    assert experiment_name("cnn-digits") == "cnn-digits"
    with pytest.raises(ValueError, match="--experiment: no such file"):
        experiment_name(str(tmp_path / "missing.yaml"))
