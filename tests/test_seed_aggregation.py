"""A study with three seeds where one configuration's seeds disagree: every comparison ranks the mean.

The console's front and matched table, the parent run's figure, table and importances, the
landing view's per-run metrics and notebook 01 show the configuration's mean over seeds, its
spread and n, never the luckiest seed, and never score the seed as a knob (issue 31). A study of
one seed reads as before: one trial per row, no spread columns.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import statistics
from pathlib import Path

import nbformat
import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.container import ErrorbarContainer

from workbench.analysis import configurations_frame, seed_spread
from workbench.experiment import parse_experiment
from workbench.results.configs import by_configuration, configuration_knobs
from workbench.results.figures import plot_metric_vs_sparsity
from workbench.results.front import front
from workbench.study.models import front_rows
from workbench.study.objective import TrialRunner
from workbench.study.report import param_importances
from workbench.study.run import run_study
from workbench.study.summary import SPREAD, result_rows, summary_text, table_columns
from workbench.tracking import Tracker
from workbench.trial import SPARSITY_KEYS

from helpers.results import fake_build_pruning_config, fake_goal, fake_run_trial

LUCK = (0.06, -0.04, -0.05)
"""What seed 0, 1, 2 add to the 4x1 + snip configuration: its seeds disagree (mean 0.84, best seed 0.91)."""
SNIP_SEEDS = [0.85 + d for d in LUCK]


def seeded_run_trial(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    """:func:`fake_run_trial`, but 4x1 + snip reaches 0.6 and its metric depends on the seed."""
    result = fake_run_trial(benchmark, pruning_config, training, seed, on_eval, cache_dir=cache_dir)
    entry = pruning_config["pruning_configs"][0]
    if (entry["pattern"], entry["pruning_type"]) != ("4x1", "snip"):
        return result
    curve = {0: 0.0, training.steps: 0.6}
    return dataclasses.replace(
        result, value=result.value + LUCK[seed], sparsity={k: dict(curve) for k in SPARSITY_KEYS}
    )


SEEDED = TrialRunner(build_config=fake_build_pruning_config, run=seeded_run_trial, goal=fake_goal)

SPACE = dict(pattern=["4x1", "2:4"], criterion=["magnitude", "snip"], scheduler="oneshot", target_sparsity=0.5)
EXPERIMENT = dict(
    name="seeds3",
    benchmark="fake-bench",
    training=dict(steps=20, eval_every=10, threads=1),
    search_space=SPACE,  # 4 configurations, each trained with seeds 0, 1, 2
    study=dict(n_trials=12, sampler="random", seed=0, objectives=["accuracy", "sparsity"], pruner="none"),
    tracking=dict(log_model="none"),
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """The study (4 configurations x seeds 0, 1, 2) in a fresh store: (tracking URI, study)."""
    folder = tmp_path_factory.mktemp("seeds3")
    data = copy.deepcopy(EXPERIMENT)
    data["study"]["seeds"] = [0, 1, 2]
    uri = f"sqlite:///{folder}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        study = run_study(parse_experiment(data), tracking_uri=uri, runner=SEEDED)
    return uri, study


def _snip_trials(study):
    return sorted(
        t.number for t in study.trials if t.params.get("criterion") == "snip" and t.params.get("pattern") == "4x1"
    )


@pytest.mark.e2e
def test_the_console_ranks_the_mean_and_shows_the_spread_n_seeds_and_trials(seeded):
    _, study = seeded
    assert len(result_rows(study)) == 12
    text = summary_text(study, multi_objective=True, parent_url="http://x", experiment="seeds3")
    front_block = text.split("Pareto front")[1].split("\n\n")[0]
    assert "(2 of 4 configurations, 12 trained trials; accuracy = mean over seeds)" in front_block
    header = front_block.splitlines()[1]
    assert header.split() == ["trials", "pattern", "criterion", "target", "sparsity", "accuracy", "±", "std", "n_seeds"]
    (snip,) = [line for line in front_block.splitlines() if " snip " in line]
    trials = ",".join(str(n) for n in _snip_trials(study))
    mean, spread = statistics.fmean(SNIP_SEEDS), statistics.stdev(SNIP_SEEDS)
    assert snip.split() == [trials, "4x1", "snip", "-", "0.600", f"{mean:.4f}", f"{spread:.4f}", "3"]
    assert f"{max(SNIP_SEEDS):.4f}" not in text  # the luckiest seed is never shown as the configuration's value
    matched = text.split("the same reached sparsity")[1].split("\n\n")[0]
    assert "mean ±std over seeds" in matched
    assert f"{mean:.4f} ±{spread:.4f} t{trials}" in matched


@pytest.mark.e2e
def test_the_parent_run_ranks_configurations_and_importances_never_score_the_seed(seeded, tmp_path):
    uri, study = seeded
    tracker = Tracker(uri)
    parent = study.user_attrs["mlflow_parent_run_id"]
    folder = tracker.client.download_artifacts(parent, "", str(tmp_path))
    importances = json.loads((tmp_path / "param_importances.json").read_text())
    assert importances == param_importances(study)
    assert "seed" not in importances["importances"] and set(importances["importances"]) == {"pattern", "criterion"}
    assert importances["n_complete_trials"] == 4 and importances["n_trials"]["pattern"] == 4  # configurations
    with open(f"{folder}/best_at_matched_sparsity.csv", newline="") as handle:
        matched = list(csv.DictReader(handle))
    (snip,) = [r for r in matched if r["pattern"] == "4x1" and r["criterion"] == "snip"]
    assert float(snip["accuracy"]) == pytest.approx(statistics.fmean(SNIP_SEEDS))
    assert float(snip["accuracy_std"]) == pytest.approx(statistics.stdev(SNIP_SEEDS))
    assert snip["n_seeds"] == "3" and snip["trials"].split() == [str(n) for n in _snip_trials(study)]
    run = tracker.client.get_run(study.trials[_snip_trials(study)[0]].user_attrs["mlflow_run_id"])
    assert run.data.metrics["config/accuracy_mean"] == pytest.approx(statistics.fmean(SNIP_SEEDS))
    assert run.data.metrics["config/accuracy_std"] == pytest.approx(statistics.stdev(SNIP_SEEDS))
    assert run.data.metrics["config/n_seeds"] == 3


@pytest.mark.e2e
def test_the_figure_draws_each_configuration_once_with_its_spread(seeded):
    _, study = seeded
    configs = by_configuration(result_rows(study))
    fig = plot_metric_vs_sparsity(configs, front=[c for c in configs if c["criterion"] == "snip"])
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 4  # one per configuration (3 seeds each), not one per trial
    heights = sorted(float(seg[1][1] - seg[0][1]) for bar in bars for seg in bar.lines[2][0].get_segments())
    assert heights[-1] == pytest.approx(2 * statistics.stdev(SNIP_SEEDS))  # ± one std
    labels = [t.get_text() for t in ax.texts]
    assert "t" + ",".join(str(n) for n in _snip_trials(study)) in labels
    assert any("mean ± std over 3 seeds" in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.e2e
@pytest.mark.slow
def test_notebook_01_shows_the_mean_the_spread_and_no_seed_knob(seeded, tmp_path, monkeypatch):
    from tools.notebooks import main

    uri, _ = seeded
    root = str(Path(__file__).resolve().parent.parent)  # the kernel imports this checkout's workbench
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    assert main(["01_study_overview", "--tracking-uri", uri, "--experiment", "seeds3", "--output", str(tmp_path)]) == 0
    nb = nbformat.read(tmp_path / "01_study_overview.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]

    def text(marker: str) -> str:
        (cell,) = [c for c in code if marker in c.source]
        return "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)

    trials = text("trial_columns(").splitlines()[0].split()
    assert {"pattern", "criterion", "seed"} <= set(trials) and "scheduler" not in trials  # one value: hidden
    table = text("configuration_columns(")
    assert "accuracy_std" in table and "n_seeds" in table and "trials" in table
    (snip,) = [line for line in table.splitlines() if " snip " in line and "4x1" in line]
    assert snip.split()[-3:] == ["0.84", f"{statistics.stdev(SNIP_SEEDS):.6f}", "3"]  # mean, spread, n
    assert "seed " not in table
    matched = text("matched_configurations(")
    assert "NaN" not in matched and "snip" in matched
    importances = text("param_importances(")
    assert "pattern" in importances and "seed" not in importances
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_one_seed_reads_as_before_one_trial_per_row_without_spread_columns():
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists = {
        "pattern": CategoricalDistribution(["4x1", "2:4"]),
        "target_sparsity": FloatDistribution(0.5, 0.9, step=0.1),
    }
    study = optuna.create_study(directions=["maximize", "maximize"], study_name="one")
    for i, (pattern, reached, acc) in enumerate([("4x1", 0.6, 0.9), ("2:4", 0.5, 0.95), ("4x1", 0.8, 0.8)]):
        attrs = {"sparsity": reached, "seed": 0, "mlflow_run_id": f"run{i}"}
        params = {"pattern": pattern, "target_sparsity": reached}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, values=[acc, reached], user_attrs=attrs)
        )
    text = summary_text(study, multi_objective=True, parent_url="http://x", experiment="one")
    header = next(line for line in text.splitlines() if line.startswith("trial"))
    assert header.split() == table_columns(result_rows(study)) == [
        "trial", "pattern", "target", "sparsity", "accuracy", "run_id"
    ]  # fmt: skip
    assert SPREAD not in text and "n_seeds" not in text and "configurations" not in text
    assert "0.9500 t1" in text  # the matched table names the trial, as ever


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["2:4", "4x1"]), st.sampled_from([0.5, 0.7]), st.integers(0, 2), st.floats(0, 1)),
        min_size=1,
        max_size=15,
    )
)
def test_the_notebooks_seed_spread_agrees_with_the_configurations(samples):
    df = pd.DataFrame(
        [
            {"trial": i, "pattern": p, "target_sparsity": t, "seed": s, "sparsity": t, "accuracy": a}
            for i, (p, t, s, a) in enumerate(samples)
        ]
    )
    configs = configurations_frame(df).set_index(["pattern", "target_sparsity"]).sort_index()
    knobs = configuration_knobs(df.to_dict("records"))
    assert knobs == ["pattern", "target_sparsity"]
    spread = seed_spread(df, knobs).set_index(knobs).sort_index()
    assert list(configs.index) == list(spread.index)
    assert configs["n_seeds"].tolist() == spread["n_seeds"].tolist()
    for ours, theirs in (
        (configs["accuracy"], spread["accuracy_mean"]),
        (configs["accuracy_std"], spread["accuracy_std"]),
    ):
        assert all(math.isclose(a, b, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)) for a, b in zip(ours, theirs))


@pytest.mark.e2e
def test_the_landing_view_shows_every_searched_knob_the_seed_and_the_configuration_mean(seeded):
    from workbench.tracking.landing_view import VIEW_TAG_PREFIX, view_key

    uri, study = seeded
    tags = Tracker(uri).client.get_experiment(study.user_attrs["mlflow_experiment_id"]).tags
    view = json.loads(json.loads(tags[VIEW_TAG_PREFIX + view_key("seeds3")])["state"])
    params = [c for c in view["selectedColumns"] if c.startswith("params.")]
    assert params == ["params.`pattern`", "params.`criterion`", "params.`target_sparsity`", "params.`seed`"]
    assert view["orderByKey"] == "metrics.`config/accuracy_mean`"  # scheduler (one value) hidden, mean first
    assert not any(c.startswith("tags.") for c in view["selectedColumns"])  # log_model: none, nothing registered


def test_the_landing_view_knobs_are_the_searched_ones_decay_and_scope_included():
    from workbench.study.run import view_knobs

    data = copy.deepcopy(EXPERIMENT)
    data["search_space"].update(
        scheduler=["oneshot", "iterative"], sparsity_decay_type=["exp", "linear"], pruning_scope=["global", "local"]
    )
    data["search_space"]["criterion"] = "magnitude"
    knobs = view_knobs(parse_experiment(data))
    assert knobs == ["pattern", "scheduler", "target_sparsity", "pruning_scope", "sparsity_decay_type"]
    assert "criterion" not in knobs  # one value in the whole study: hidden


@pytest.mark.browser
@pytest.mark.slow
def test_the_ui_lists_each_trial_with_its_seed_and_its_configuration_mean_in_a_browser(seeded, tmp_path):
    import signal

    from test_ui import _free_port, _start_ui, _table_cells

    from helpers import SAFETY_NET_S

    uri, study = seeded
    proc = _start_ui(uri, _free_port())
    try:
        url = proc.stdout.readline().split()[2]  # printed once the server answers
        # wide: ag-grid renders only the columns in view, and seed is the tenth (at 1920 px, one scroll away)
        dom = _dump_dom(url, tmp_path / "profile", size="3200,1080")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SAFETY_NET_S)
    cells = _table_cells(dom)  # a fresh profile: the columns come from the study's saved view
    configs = by_configuration(result_rows(study))
    for config in configs:
        for trial, run_id in zip(config["trials"], config["run_ids"]):
            row = cells[run_id]
            assert float(row["metrics.`config/accuracy_mean`"]) == pytest.approx(config["accuracy"]), trial
            assert float(row["metrics.`config/n_seeds`"]) == 3
            assert row["params.`seed`"] == str(study.trials[trial].user_attrs["seed"])
    snip = next(c for c in configs if c["criterion"] == "snip" and c["pattern"] == "4x1")
    assert float(cells[snip["run_ids"][0]]["metrics.`config/accuracy_std`"]) == pytest.approx(
        statistics.stdev(SNIP_SEEDS), abs=1e-6
    )


def _dump_dom(url: str, profile: Path, *, size: str) -> str:
    """The page's DOM in headless Chromium: the shared helper where the suite has it (helpers.browser)."""
    try:
        from helpers.browser import dump_dom
    except ImportError:  # a checkout before helpers.browser: test_ui's own Chromium lookup
        import subprocess

        from test_ui import _chromium

        from helpers import SAFETY_NET_S

        binary = _chromium()
        if binary is None:
            pytest.skip("no Chromium (apt-get install chromium, or set $CHROMIUM)")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--dump-dom"]
        flags += [f"--user-data-dir={profile}", "--virtual-time-budget=30000", f"--window-size={size}"]
        return subprocess.run([binary, *flags, url], capture_output=True, text=True, timeout=SAFETY_NET_S).stdout
    return dump_dom(url, profile, size=size)


@pytest.mark.e2e
def test_the_models_kept_are_every_seed_of_the_front_configurations(seeded):
    """The registry's front is the console's: configurations ranked on the mean, each with all its seeds."""
    _, study = seeded
    data = copy.deepcopy(EXPERIMENT)
    data["study"]["seeds"] = [0, 1, 2]
    kept = front_rows(study, parse_experiment(data))
    configs = front(by_configuration(result_rows(study)), metric="accuracy", direction="maximize")
    assert sorted(r["trial"] for r in kept) == sorted(t for c in configs for t in c["trials"])
    assert len(kept) == 3 * len(configs)  # every seed of each front configuration
