"""workbench.analysis: frames read back from a hand-made MLflow store with known contents."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from pandas.testing import assert_frame_equal

from workbench import analysis

from helpers.analysis_store import COMMON, TRIALS, empty_store, make_store

LABEL = {"enc.0.fc1": "enc.0.fc1", "head:out": "head_out"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WORKBENCH_EXPERIMENT", raising=False)


def _order(ids: dict[str, str]) -> list[tuple[object, str, str]]:
    """(trial number, run id, TRIALS key) in the frames' order: study trials, then the standalone run."""
    return [(0, ids["trial0"], 0), (1, ids["trial1"], 1), (2, ids["trial2"], 2), (pd.NA, ids["run"], 0)]


def test_trials_frame_rows(store):
    uri, ids = store
    assert analysis.trials_frame("demo", client=uri)["run_id"].tolist() == [ids[f"trial{i}"] for i in range(3)]
    df = analysis.trials_frame("demo", client=uri, include_runs=True)  # `workbench run` runs only when asked
    assert df["run_id"].tolist() == [ids["trial0"], ids["trial1"], ids["trial2"], ids["run"]]
    assert df["trial"].tolist()[:3] == [0, 1, 2] and pd.isna(df["trial"].iloc[3])
    assert df["state"].tolist() == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert df["status"].tolist() == ["FINISHED", "FINISHED", "KILLED", "FINISHED"]
    assert df["source"].tolist() == ["study", "study", "study", "run"]
    assert df["study"].tolist() == ["demo-study"] * 3 + [""]
    assert df["parent_run_id"].tolist() == [ids["parent"]] * 3 + [""]
    for column in ("pattern", "criterion", "scheduler"):
        assert df[column].tolist() == [TRIALS[n]["params"][column] for n in (0, 1, 2, 0)]
    assert df["target_sparsity"].tolist() == [0.5, 0.7, 0.9, 0.5]  # converted to numbers
    assert df["seed"].tolist() == [0, 0, 0, 1]
    assert set(COMMON) - {"training.steps"} <= set(df.columns) and "training.steps" not in df
    accuracy = df["accuracy"].tolist()
    assert accuracy[:2] == [0.9, 0.8] and math.isnan(accuracy[2]) and accuracy[3] == 0.8
    assert df["accuracy_drop"].tolist()[:2] == [0.05, 0.15]
    # achieved sparsity = last value of each sparsity/* series
    assert df["sparsity"].tolist()[:2] == [0.5, 0.7] and df["sparsity_all"].tolist()[:2] == [0.25, 0.35]
    # no global blockwise series logged: a block pattern logs it only where it differs, so it is the elementwise one
    assert df["blockwise_sparsity"].tolist()[:2] == [0.5, 0.7] and math.isnan(df["sparsity"].iloc[2])
    assert df["nm_groups_satisfied"].isna().all()


def test_trials_frame_filters_and_training(store):
    uri, ids = store
    df = analysis.trials_frame("demo", client=MlflowClient(uri), study="demo-study", include_training=True)
    assert df["run_id"].tolist() == [ids["trial0"], ids["trial1"], ids["trial2"]]
    assert df["training.steps"].tolist() == [20, 20, 20]
    assert analysis.trials_frame("older", client=uri).empty  # a study without trials: no rows, same columns
    with pytest.raises(ValueError, match="experiment: 'nope' .*allowed: Default, demo, older"):
        analysis.trials_frame("nope", client=uri)


def _expected_curves(ids: dict[str, str]) -> pd.DataFrame:
    rows = []
    for trial, run_id, key in _order(ids):
        spec = TRIALS[key]
        for name, curve in sorted(spec["layers"].items(), key=lambda kv: LABEL[kv[0]]):
            rows += [
                (trial, run_id, LABEL[name], step, value, spec["blocks"][name][step])
                for step, value in sorted(curve.items())
            ]
    df = pd.DataFrame(rows, columns=["trial", "run_id", "layer", "step", "elementwise", "blockwise"])
    df["nm_groups_satisfied"] = float("nan")
    return df.astype({"trial": "Int64", "step": "int64"})


def _sorted(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.sort_values(by).reset_index(drop=True)


def test_curves_frame_exact(store):
    uri, ids = store
    got = analysis.curves_frame("demo", client=uri)
    by = ["run_id", "layer", "step"]
    assert_frame_equal(_sorted(got, by), _sorted(_expected_curves(ids), by), check_dtype=False)
    assert got["trial"].dtype == "Int64" and got["step"].dtype == "int64"
    assert got.columns.tolist() == [
        "trial",
        "run_id",
        "layer",
        "step",
        "elementwise",
        "blockwise",
        "nm_groups_satisfied",
    ]


def test_curves_frame_selected_runs(store):
    uri, ids = store
    got = analysis.curves_frame("demo", [ids["trial1"]], client=uri)
    assert set(got["run_id"]) == {ids["trial1"]} and got["layer"].unique().tolist() == ["enc.0.fc1"]
    assert got["elementwise"].tolist() == [0.0, 0.4, 0.8] and got["blockwise"].tolist() == [0.0, 0.3, 0.75]
    assert analysis.curves_frame("demo", [ids["trial2"]], client=uri).empty  # pruned early: no curves


def test_global_and_eval_frames_exact(store):
    uri, ids = store
    rows = []
    for trial, run_id, key in _order(ids):
        for step, value in TRIALS[key]["global"].items():
            rows += [
                (trial, run_id, step, "elementwise_over_all", value / 2),
                (trial, run_id, step, "elementwise_over_matmul_gemm_conv", value),
            ]
    expected = pd.DataFrame(rows, columns=["trial", "run_id", "step", "metric", "value"]).astype({"trial": "Int64"})
    by = ["run_id", "step", "metric"]
    assert_frame_equal(
        _sorted(analysis.global_curves_frame("demo", client=uri), by), _sorted(expected, by), check_dtype=False
    )
    rows = [(t, r, s, v) for t, r, key in _order(ids) for s, v in TRIALS[key]["eval"].items()]
    expected = pd.DataFrame(rows, columns=["trial", "run_id", "step", "accuracy"]).astype({"trial": "Int64"})
    assert_frame_equal(
        _sorted(analysis.eval_frame("demo", client=uri), ["run_id", "step"]),
        _sorted(expected, ["run_id", "step"]),
        check_dtype=False,
    )


def test_metric_history_without_bulk_matches_and_keeps_latest(tmp_path, monkeypatch):
    uri = empty_store(tmp_path / "m.db")
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e", artifact_location=tmp_path.as_uri())).info.run_id
    client.log_batch(
        run_id,
        metrics=[
            Metric("a", 1.0, 100, 0),
            Metric("a", 2.0, 200, 0),
            Metric("a", 3.0, 100, 5),
            Metric("b", 4.0, 100, 1),
        ],
    )
    bulk = analysis.metric_history_frame(client, [run_id], ["a", "b"])
    assert bulk.values.tolist() == [[run_id, "a", 0, 2.0], [run_id, "a", 5, 3.0], [run_id, "b", 1, 4.0]]
    store_class = type(client._tracking_client.store)
    monkeypatch.delattr(store_class, "get_metric_history_bulk")
    assert_frame_equal(analysis.metric_history_frame(uri, [run_id], ["b", "a"]), bulk)


def test_latest_experiment(store, monkeypatch, tmp_path):
    uri, _ = store
    assert analysis.latest_experiment(uri) == "demo"  # the most recently started study
    monkeypatch.setenv("WORKBENCH_EXPERIMENT", "older")
    assert analysis.latest_experiment(uri) == "older"
    monkeypatch.setenv("WORKBENCH_EXPERIMENT", "missing")
    with pytest.raises(ValueError, match="WORKBENCH_EXPERIMENT: 'missing'.*allowed: Default, demo, older"):
        analysis.latest_experiment(uri)
    monkeypatch.delenv("WORKBENCH_EXPERIMENT")
    with pytest.raises(ValueError, match="no study in .*make search"):
        analysis.latest_experiment(empty_store(tmp_path / "empty.db"))


def test_default_tracking_uri(tmp_path, monkeypatch):
    inner = tmp_path / "repo" / "notebooks"
    inner.mkdir(parents=True)
    assert analysis.default_tracking_uri(inner) == f"sqlite:///{inner / 'mlflow.db'}"  # none found
    (tmp_path / "repo" / "mlflow.db").touch()
    assert analysis.default_tracking_uri(inner) == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    monkeypatch.chdir(inner)
    assert analysis.default_tracking_uri() == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert analysis.default_tracking_uri(inner) == "sqlite:///elsewhere.db"


def test_param_importances_need_three_complete_trials(store):
    uri, _ = store  # two complete study trials
    got = analysis.param_importances("demo", client=uri)
    assert got.empty and "at least 3" in got.attrs["skipped"]


def test_importances_remove_the_sparsity_effect_and_skip_inactive_knobs():
    """Accuracy falls with sparsity and depends on the pattern; the decay does nothing under oneshot."""
    from workbench.results.importance import residual_importances

    rows = [
        {
            "pattern": pattern,
            "scheduler": scheduler,
            "sparsity_decay_type": ["exp", "cos"][k % 2],
            "target_sparsity": sparsity,
            "sparsity": sparsity,
            "accuracy": 1.0 - sparsity**2 + (0.02 if pattern == "4x1" else 0.0),
        }
        for k, sparsity in enumerate([0.5, 0.6, 0.7, 0.8, 0.9])
        for pattern in ("4x1", "2:4")
        for scheduler in ("oneshot", "iterative")
    ]
    got = residual_importances(rows, ["pattern", "scheduler", "sparsity_decay_type", "target_sparsity"])
    assert "target_sparsity" not in got["importances"]  # its effect is what was removed
    assert got["explained"]["pattern"] == pytest.approx(1.0)
    assert got["explained"]["scheduler"] == pytest.approx(0.0, abs=1e-9)
    assert got["importances"]["pattern"] == pytest.approx(1.0)
    # the decay is scored over iterative trials only, where it had an effect (none here)
    assert got["explained"]["sparsity_decay_type"] == pytest.approx(0.0, abs=1e-9)


def test_pareto_front():
    df = pd.DataFrame(
        {"sparsity": [0.5, 0.7, 0.7, 0.9, 0.9, 0.3, None], "accuracy": [0.9, 0.8, 0.95, 0.5, 0.5, 0.99, 1.0]}
    )
    assert analysis.pareto_front(df).index.tolist() == [5, 2, 3, 4]  # duplicates of a front point stay
    low = analysis.pareto_front(df, x="sparsity", y="accuracy", x_direction="minimize")
    assert low.index.tolist() == [5]
    with pytest.raises(ValueError, match="pareto_front: column 'acc'"):
        analysis.pareto_front(df, y="acc")


def test_best_by_and_pick_trials():
    df = pd.DataFrame(
        {
            "state": ["COMPLETE"] * 4 + ["PRUNED"],
            "pattern": ["a", "a", "b", "b", "b"],
            "sparsity": [0.5, 0.9, 0.5, 0.4, 0.99],
            "accuracy": [0.7, 0.6, 0.8, 0.75, 0.99],
        }
    )
    assert analysis.best_by(df, "pattern").index.tolist() == [4, 0]
    assert analysis.best_by(df, "pattern", metric="sparsity", direction="minimize").index.tolist() == [3, 0]
    # complete only: the front (2, 1) by accuracy, then the best of the rest
    assert analysis.pick_trials(df, n=3).index.tolist() == [2, 1, 3]
    with pytest.raises(ValueError, match="n: must be >= 1"):
        analysis.pick_trials(df, n=0)


def test_seed_spread():
    df = pd.DataFrame(
        {
            "criterion": ["snip", "snip", "snip", "magnitude"],
            "target_sparsity": [0.5] * 4,
            "seed": [0, 1, 1, 0],
            "accuracy": [0.5, 0.7, 0.9, 0.4],
        }
    )
    got = analysis.seed_spread(df, ["criterion", "target_sparsity"])
    assert got["criterion"].tolist() == ["magnitude", "snip"]
    # seed 1 of snip ran twice (a repeat): its runs are one value, 0.8, so the spread is over 2 seeds
    assert got["accuracy_mean"].tolist() == pytest.approx([0.4, 0.65])
    assert math.isnan(got["accuracy_std"].iloc[0]) and got["accuracy_std"].iloc[1] == pytest.approx(0.3 / 2**0.5)
    assert got["n_runs"].tolist() == [1, 3] and got["n_seeds"].tolist() == [1, 2]
    assert got["accuracy_min"].tolist() == pytest.approx([0.4, 0.5])
    assert got["accuracy_max"].tolist() == pytest.approx([0.4, 0.8])


def test_variance_explained_bins_numbers():
    df = pd.DataFrame(
        {"lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "pattern": ["a"] * 6, "accuracy": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]}
    )
    got = analysis.variance_explained(df, ["lr", "pattern"], bins=2)
    assert got.to_dict() == {"lr": 1.0, "pattern": 0.0}
    assert analysis.variance_explained(df.assign(accuracy=0.5), ["lr"]).to_dict() == {"lr": 0.0}
    with pytest.raises(ValueError, match="bins: must be >= 1, got 0"):
        analysis.variance_explained(df, ["lr"], bins=0)


def test_plots_from_frames(store):
    uri, ids = store
    curves = analysis.curves_frame("demo", client=uri)
    fig = analysis.plot_layer_curves(curves, run_id=ids["trial0"])
    assert isinstance(fig, Figure) and [len(ax.lines) for ax in fig.axes] == [2, 2]
    with pytest.raises(ValueError, match="run_id: the frame holds 3 runs"):
        analysis.plot_layer_curves(curves)
    heat = analysis.plot_layer_heatmap(curves, run_id=ids["trial0"], value="blockwise")
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == ["enc.0.fc1", "head_out"]
    with pytest.raises(ValueError, match="value: 'dense' is not allowed"):
        analysis.plot_layer_heatmap(curves, run_id=ids["trial0"], value="dense")
    glob = analysis.plot_global_curves(analysis.global_curves_frame("demo", client=uri))
    assert [len(ax.lines) for ax in glob.axes] == [3, 3]
    trials = analysis.trials_frame("demo", client=uri, include_runs=True)
    evals = analysis.plot_eval_curves(
        analysis.eval_frame("demo", client=uri), dense=trials.set_index("run_id")["dense_accuracy"]
    )
    assert len(evals.axes[0].lines) == 4 + 3  # four runs, three dense baselines (the pruned one has none)
    complete = trials[trials["state"] == "COMPLETE"]
    scatter = analysis.plot_accuracy_vs_sparsity(complete, front=analysis.pareto_front(complete))
    assert len(scatter.axes[0].collections) == len(complete)  # one marker per trial
    legend = [t.get_text() for t in scatter.axes[0].get_legend().get_texts()]
    assert {"pattern 4x1", "pattern 2:4", "criterion magnitude", "criterion snip_momentum"} <= set(legend)
    assert any(t.startswith("dense model ") for t in legend)  # the dense accuracy as a reference line
    matched = analysis.best_at_matched_sparsity(complete)
    assert matched.index.names == ["pattern", "criterion"] and "0.500" in matched.columns
    assert "within 0.01" in matched.attrs["note"]
    groups = analysis.plot_metric_by_group(complete, groups=["criterion", "scheduler"])
    assert [ax.get_legend_handles_labels()[1] for ax in groups.axes] == [
        ["magnitude", "snip_momentum"],
        ["iterative", "oneshot"],
    ]
    assert len(groups.axes[0].containers) == 1  # an error bar where a point has two seeds (magnitude, 0.5)


def test_twelve_layers_get_twelve_distinguishable_lines():
    from workbench.analysis.figures import line_styles

    curves = pd.DataFrame(
        [
            {"run_id": "r0", "trial": 0, "layer": f"layer{i:02d}", "step": step, "elementwise": step / 100 * i / 12,
             "blockwise": float("nan")}
            for i in range(12)
            for step in (0, 50, 100)
        ]
    )  # fmt: skip
    fig = analysis.plot_layer_curves(curves, run_id="r0")
    for ax in fig.axes[:1]:
        styles = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
        assert len(ax.get_lines()) == 12 and len(styles) == 12  # notebook 02 drew 12 layers in 10 colours
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [f"layer{i:02d}" for i in range(12)]
    for n in (1, 10, 12, 20, 21, 80, 81, 200):
        assert len(set(line_styles(n))) == n
