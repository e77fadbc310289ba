"""The study's answer on its parent run's page: a markdown description with the front and the figure.

MLflow shows a run's ``mlflow.note.content`` tag as the *Description* on top of the run page,
rendered as markdown. At the end of every study :func:`describe_study` writes there:

* one line saying what was searched (trials, configurations, seeds, the knobs held fixed);
* the front as a table of **configurations**, not trials (:func:`workbench.results.configs.by_configuration`
  over :func:`workbench.study.summary.result_rows`: a configuration's seeds averaged, ranked on the
  mean): every knob that varies among the configurations, the mean of the task's metric, its
  spread over seeds (standard deviation, ``-`` for one seed) and ``n`` seeds, the sparsity reached
  (or the measured speed-up), and a link to each of its runs. Two objectives: the Pareto front
  (:func:`workbench.results.front.front`); one: the best five configurations;
* the study figure (``<metric>_vs_sparsity.png``, or ``<metric>_vs_speedup.png``) embedded from
  the run's artifacts;
* when the study registered its front's models (:mod:`workbench.study.models`), the registered
  model, its versions beside their runs, and how to load or export one.

Links are relative to the UI's address, so they work on ``workbench ui``, a tracking server, or
behind a proxy path: a run is ``#/experiments/<id>/runs/<run_id>`` (the UI's own route), a figure
``get-artifact?path=<file>&run_uuid=<run_id>`` (the route the UI itself loads artifacts from), a
registered model ``#/models/<name>``.

Example:
    >>> rows = [{"trial": 0, "pattern": "2:4", "target": 0.5, "seed": 0, "sparsity": 0.5, "accuracy": 0.9,
    ...          "run_id": "r0"},
    ...         {"trial": 1, "pattern": "2:4", "target": 0.5, "seed": 1, "sparsity": 0.5, "accuracy": 0.8,
    ...          "run_id": "r1"}]
    >>> text = front_markdown(rows, metric="accuracy", direction="maximize", experiment_id="1")
    >>> print(text.splitlines()[-1])
    | 0.50&emsp; | 0.8500 ± 0.0707&emsp; | 2&emsp; | 0.500&emsp; | [t0](#/experiments/1/runs/r0) [t1](#/experiments/1/runs/r1) |
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import optuna
from optuna.trial import TrialState

from workbench.benchmarks.direction import best_first
from workbench.results.configs import by_configuration, configuration_knobs, spread_column
from workbench.results.front import front
from workbench.study.repeats import REPEAT_ATTR
from workbench.study.summary import result_rows
from workbench.tracking.tracker import NOTE_TAG

if TYPE_CHECKING:
    from workbench.experiment import Experiment
    from workbench.tracking import Tracker

__all__ = ["BEST_SHOWN", "artifact_link", "describe_study", "figure_name", "front_markdown", "run_link"]

_log = logging.getLogger(__name__)

BEST_SHOWN = 5
"""Configurations shown for a single-objective study (the best ones by the mean)."""


def run_link(experiment_id: str, run_id: str) -> str:
    """The UI's page of ``run_id``, relative to the UI's address (``#/experiments/<id>/runs/<run_id>``)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def artifact_link(run_id: str, path: str) -> str:
    """An artifact of ``run_id`` as the UI serves it (``get-artifact?path=...&run_uuid=...``, relative)."""
    return f"get-artifact?path={quote(path)}&run_uuid={quote(run_id)}"


def figure_name(metric: str, axis: str = "sparsity") -> str:
    """The parent run's study figure for ``metric`` against ``axis`` (``sparsity`` or ``speedup``)."""
    return f"{metric.replace('/', '_')}_vs_{axis}.png"


def _cell(value: Any, knob: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if knob == "target":
            return f"{value:.2f}"
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def _number(value: Any, spec: str) -> str:
    return "-" if not isinstance(value, (int, float)) or value != value else format(value, spec)


GAP = "&emsp;"
"""Ends every cell but the last: MLflow's run page draws markdown tables without cell padding."""


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join([*(f"{c}{GAP}" for c in cells[:-1]), *cells[-1:]]) + " |"


def _mean_spread(mean: Any, spread: Any) -> str:
    """``mean ± spread`` (4 decimals); the mean alone when there is no spread (one seed)."""
    text = _number(mean, ".4f")
    return text if _number(spread, ".4f") == "-" else f"{text} ± {_number(spread, '.4f')}"


def _varying(configs: Sequence[Mapping[str, Any]], knobs: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """The knobs with more than one value among ``configs`` (``target`` always), and the fixed ones' values."""
    varying, fixed = [], {}
    for knob in knobs:
        values = {repr(c.get(knob)) for c in configs}
        if len(values) > 1 or knob == "target":
            varying.append(knob)
        elif configs and configs[0].get(knob) is not None:
            fixed[knob] = configs[0][knob]
    return varying, fixed


def front_markdown(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    direction: str,
    experiment_id: str,
    axis: str = "sparsity",
    multi_objective: bool = True,
    versions: Mapping[str, str] | None = None,
) -> str:
    """The front of ``rows`` (plain result rows, one per trial) as a markdown table of configurations.

    Columns: every knob that varies among the configurations (``target`` always), ``<metric> mean ±
    std``: the mean of ``metric`` over seeds and its standard deviation (the mean alone for one seed), the
    number of ``seeds``, the mean ``sparsity reached`` (and the ``speed-up`` when ``axis`` is
    ``speedup``), and the runs (``tN`` links, with ``vK`` when ``versions`` maps the run id to its
    registered version).
    """
    configs = by_configuration(rows, metric=metric)
    if multi_objective:
        shown = front(configs, metric=metric, direction=direction, axis=axis)
    else:
        finite = [c for c in configs if c.get(metric) == c.get(metric)]
        shown = sorted(finite, key=lambda c: (best_first(c, metric, direction), c["trial"]))[:BEST_SHOWN]
    knobs, _ = _varying(configs, configuration_knobs(rows))
    reached = ["sparsity reached", *(["speed-up"] if axis == "speedup" else [])]
    header = [*knobs, f"{metric} mean ± std", "seeds", *reached, "runs"]
    lines = [_row(header), "|" + "|".join(["---"] * len(header)) + "|"]
    versions = versions or {}
    for c in shown:
        runs = []
        for trial, run_id in zip(c["trials"], c["run_ids"]):
            link = f"[t{trial}]({run_link(experiment_id, run_id)})" if run_id else f"t{trial}"
            runs.append(link + (f" (v{versions[run_id]})" if run_id in versions else ""))
        cells = [
            *(_cell(c.get(k), k) for k in knobs),
            _mean_spread(c.get(metric), c.get(spread_column(metric))),
            str(c["n_seeds"]),
            _number(c.get("sparsity"), ".3f"),
            *([_number(c.get("speedup"), ".2f")] if axis == "speedup" else []),
            " ".join(runs),
        ]
        lines.append(_row(cells))
    return "\n".join(lines)


def _registered_versions(tracker: Tracker, name: str) -> dict[str, str]:
    """run id -> version of the registered model ``name`` (its versions' ``run_id``)."""
    out = {}
    for version in tracker.client.search_model_versions(f"name = '{name}'"):
        run_id = version.run_id or version.tags.get("run_id")
        if run_id:
            out[run_id] = str(version.version)
    return out


def study_description(
    study: optuna.Study, experiment: Experiment, *, experiment_id: str, parent_run_id: str, tracker: Tracker | None
) -> str:
    """The parent run's markdown description of ``study`` (see the module docstring)."""
    metric, direction = experiment.metric, experiment.direction
    multi = experiment.multi_objective
    axis = str(experiment.study.objectives[-1]) if multi else "sparsity"
    rows = result_rows(study, metric)
    configs = by_configuration(rows, metric=metric)
    trials = study.get_trials(deepcopy=False)
    repeats = sum(REPEAT_ATTR in t.user_attrs for t in trials)
    stopped = sum(t.state == TrialState.PRUNED for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    seeds = max((c["n_seeds"] for c in configs), default=0)
    _, fixed = _varying(configs, configuration_knobs(rows))
    lower = " (lower is better)" if direction == "minimize" else ""
    others = [f"{stopped} stopped early"] * bool(stopped) + [f"{failed} failed"] * bool(failed)
    others += [f"{repeats} exact repeat{'s' * (repeats > 1)} not trained"] * bool(repeats)
    detail = f" ({', '.join(others)})" if others else ""
    out = [
        f"**Study `{study.study_name}`** on `{experiment.benchmark}`: {len(rows)} trials trained{detail}, "
        f"{len(configs)} configurations"
        f"{f' of up to {seeds} seeds' if seeds > 1 else ''}; metric `{metric}`{lower}."
    ]
    if fixed:
        out.append("Held fixed: " + ", ".join(f"{k} `{_cell(v, k)}`" for k, v in fixed.items()) + ".")
    registered = study.user_attrs.get("registered_model")
    versions = _registered_versions(tracker, registered) if registered and tracker is not None else {}
    if not rows:
        out += ["", "No trial completed, so there is no answer yet."]
        return "\n".join(out)
    where = "measured speed-up" if axis == "speedup" else "sparsity reached"
    title = (
        f"Pareto front: mean {metric} over seeds vs {where}"
        if multi
        else f"Best {min(BEST_SHOWN, len(configs))} configurations by mean {metric} over seeds"
    )
    out += [
        "",
        f"#### {title}",
        "",
        front_markdown(
            rows,
            metric=metric,
            direction=direction,
            experiment_id=experiment_id,
            axis=axis,
            multi_objective=multi,
            versions=versions,
        ),
        "",
        "One row per configuration (its seeds averaged; ± is the standard deviation over them); "
        "each `tN` opens that trial's run.",
    ]
    if registered and versions:
        listed = ", ".join(f"v{v}" for v in sorted(set(versions.values()), key=int))
        out += [
            "",
            f"**Registered models**: [`{registered}`](#/models/{quote(registered)}) {listed} (the front's trials, "
            f'`vK` beside each run). Load one with `mlflow.pytorch.load_model("models:/{registered}/K")`; '
            "export it with `workbench export RUN_ID --format torch --to DIR`.",
        ]
    name = figure_name(metric, axis)
    out += ["", f"![{metric} vs {where}]({artifact_link(parent_run_id, name)})"]
    out += ["", f"All figures and tables are under *Artifacts*; the whole figure: `{name}`."]
    return "\n".join(out)


def describe_study(study: optuna.Study, tracker: Tracker, parent_run_id: str, experiment: Experiment) -> str:
    """Write :func:`study_description` as the parent run's description (``mlflow.note.content``); returns it."""
    experiment_id = tracker.client.get_run(parent_run_id).info.experiment_id
    text = study_description(
        study, experiment, experiment_id=experiment_id, parent_run_id=parent_run_id, tracker=tracker
    )
    tracker.client.set_tag(parent_run_id, NOTE_TAG, text)
    _log.debug("described the parent run %s (%d characters)", parent_run_id, len(text))
    return text
