"""What ``workbench search`` prints at the end: the answer at a glance, then where to look next.

Plain data from the Optuna study (no MLflow reads): one row per trained complete trial
(:func:`result_rows`, exact repeats left out), grouped into configurations
(:func:`workbench.results.configs.by_configuration`: every knob but the seed; the metric is the
mean over seeds), the Pareto front of the configurations' mean metric against the sparsity reached
or the measured speed-up (two objectives; :func:`workbench.results.front.front`, the notebooks'
front too) or the best configurations (one), the best configuration per pattern in bins of reached
sparsity (:func:`workbench.results.matched.best_per_bin`, so patterns are compared at the same
sparsity), and the next steps: the MLflow UI address of the study's parent run and
``make notebooks``. When some configuration was trained with several seeds
(``study.seeds``), the tables rank the mean and show its spread (``± std``, the standard deviation
over seeds), ``n_seeds`` and the trial numbers; with one seed they show one trial per row.

Rows hold the task's metric under its own name (``accuracy``, ``perplexity``); every function
takes ``metric`` (default ``accuracy``) and ``direction`` (``maximize`` / ``minimize``: "best"
is the lowest perplexity). :func:`study_goal` reads both from the study.

Example:
    >>> print(format_table([{"trial": 1, "accuracy": 0.95}], ["trial", "accuracy"]))
    trial  accuracy
        1    0.9500
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from workbench.benchmarks.direction import best_first
from workbench.results.configs import by_configuration, several_seeds, spread_column, varying_knobs
from workbench.results.front import front
from workbench.results.matched import best_per_level, matched_note, supported_tolerance
from workbench.study.repeats import REPEAT_ATTR, SEED_ATTR
from workbench.trial.space import effective_params, sampled_params

__all__ = [
    "FRONT_COLUMNS",
    "SPREAD",
    "configuration_columns",
    "format_table",
    "front_columns",
    "result_rows",
    "study_goal",
    "summary_text",
    "table_columns",
]

FRONT_COLUMNS = ("trial", "pattern", "criterion", "scheduler", "target", "sparsity", "accuracy", "run_id")
"""The columns of the console's front / best-trials table (for an accuracy task)."""


def front_columns(metric: str = "accuracy") -> tuple[str, ...]:
    """:data:`FRONT_COLUMNS` with the task's ``metric`` in place of accuracy."""
    return tuple(metric if c == "accuracy" else c for c in FRONT_COLUMNS)


def table_columns(rows: Sequence[dict[str, Any]], metric: str = "accuracy", axis: str = "sparsity") -> list[str]:
    """The console tables' columns for ``rows``: every knob that varies among them, no knob that does not.

    Each searched dimension (:data:`~workbench.trial.space.SEARCH_DIMS`: pattern, criterion,
    scheduler, decay type, pruning scope, pruner type, lr, ...) with more than one value in
    ``rows`` gets a column, in the dimensions' order, so two trials never look like one
    configuration with two results; ``target`` always; ``seed`` when the rows hold several seeds;
    then the reached sparsity, the ``metric``, the measured speed-up when ``axis`` is ``speedup``,
    and the run id.

    Example:
        >>> table_columns([{"pattern": "2:4", "criterion": "snip"}, {"pattern": "4x1", "criterion": "snip"}])
        ['trial', 'pattern', 'target', 'sparsity', 'accuracy', 'run_id']
    """
    seeds = ["seed"] if len({r.get("seed") for r in rows}) > 1 else []
    last = ["speedup"] if axis == "speedup" else []
    return ["trial", *varying_knobs(rows), "target", *seeds, "sparsity", metric, *last, "run_id"]


SPREAD = "± std"
"""The console's column of a configuration's spread: the standard deviation of its metric over seeds."""


def configuration_columns(
    configs: Sequence[dict[str, Any]], metric: str = "accuracy", axis: str = "sparsity"
) -> list[str]:
    """The console tables' columns for configuration rows (:func:`~workbench.results.configs.by_configuration`).

    With one seed per configuration, :func:`table_columns` (one trial per row, as ever). With
    several: ``trials`` (the trial numbers, ``1,4,7``), every knob that varies, ``target``, the mean
    reached sparsity, the ``metric``'s mean over seeds, its spread (:data:`SPREAD`) and
    ``n_seeds``; no ``seed`` (it is what is averaged over) and no run id (a configuration has one
    per seed: the trial numbers name them).
    """
    if not several_seeds(configs):
        return table_columns(configs, metric, axis)
    last = ["speedup"] if axis == "speedup" else []
    return ["trials", *varying_knobs(configs), "target", "sparsity", metric, SPREAD, "n_seeds", *last]


def _shown(configs: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """``configs`` as the console prints them: trial numbers joined, the spread under :data:`SPREAD`."""
    return [
        {**c, "trials": ",".join(str(t) for t in c.get("trials", (c.get("trial"),))), SPREAD: c[spread_column(metric)]}
        for c in configs
    ]


def study_goal(study: optuna.Study) -> tuple[str, str]:
    """The study's (metric, direction): its user attributes, else the first objective's direction and accuracy."""
    attrs = study.user_attrs
    direction = attrs.get("direction") or ("minimize" if study.directions[0].name == "MINIMIZE" else "maximize")
    return str(attrs.get("metric", "accuracy")), str(direction)


OLD_DENSE_ATTR, OLD_DENSE_REMOVED_IN = "dense_accuracy", "0.2.0"
"""The user attribute that held a trial's dense value before tasks named their metric, and the
workbench version that stops reading it (studies written before 0.1.0 may still be resumed)."""


def stored_dense_value(user_attrs: dict[str, Any]) -> float:
    """A trial's dense value from its user attributes (``dense_value``; NaN when not recorded).

    ``dense_accuracy``, the name before 0.1.0, is still read, with a FutureWarning naming the
    version that removes it (:data:`OLD_DENSE_REMOVED_IN`).

    Example:
        >>> stored_dense_value({"dense_value": 0.9}), stored_dense_value({})
        (0.9, nan)
    """
    if "dense_value" in user_attrs or OLD_DENSE_ATTR not in user_attrs:
        return user_attrs.get("dense_value", math.nan)
    warnings.warn(
        f"this study stores dense values as the trial user attribute {OLD_DENSE_ATTR!r} (written by a "
        f"workbench before 0.1.0); it is read until workbench {OLD_DENSE_REMOVED_IN}, which removes that "
        "support: finish the study with this version, or start a new one",
        FutureWarning,
        stacklevel=3,
    )
    return user_attrs[OLD_DENSE_ATTR]


def result_rows(study: optuna.Study, metric: str | None = None) -> list[dict[str, Any]]:
    """One row per trained, complete trial: its knobs (effective target), reached sparsity, the task's
    metric (``metric``, default :func:`study_goal`'s) and its dense value (``dense_<metric>``), run id,
    and its cost: ``wall_s`` (seconds without the dense baseline), ``peak_memory_mb`` and the measured
    ``speedup`` of the slimmed model (NaN where not recorded)."""
    metric = metric or study_goal(study)[0]
    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not trial.values or REPEAT_ATTR in trial.user_attrs:
            continue
        eff = effective_params(sampled_params(trial.params, trial.distributions))
        rows.append(
            {
                "trial": trial.number,
                **{k: v for k, v in eff.items() if k != "target_sparsity"},
                "target": round(eff["target_sparsity"], 6) if "target_sparsity" in eff else None,
                "seed": trial.user_attrs.get(SEED_ATTR),
                "sparsity": trial.user_attrs.get("sparsity", trial.values[1] if len(trial.values) > 1 else math.nan),
                metric: trial.values[0],
                f"dense_{metric}": stored_dense_value(trial.user_attrs),
                "run_id": trial.user_attrs.get("mlflow_run_id", ""),
                "wall_s": trial.user_attrs.get("wall_s", math.nan),
                "peak_memory_mb": trial.user_attrs.get("peak_memory_mb", math.nan),
                "speedup": trial.user_attrs.get("speedup", math.nan),
            }
        )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}" if value < 1.0 or value != int(value) else f"{value:g}"
    return "-" if value is None else str(value)


def format_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, formats: dict[str, str] | None = None
) -> str:
    """``rows`` as an aligned text table (numbers right-aligned, 4 decimals unless ``formats`` says)."""
    formats = {"sparsity": "{:.3f}", "target": "{:.2f}", **(formats or {})}
    text = [
        [
            formats[c].format(r[c]) if c in formats and isinstance(r.get(c), (int, float)) else _cell(r.get(c))
            for c in columns
        ]
        for r in rows
    ]
    widths = [max([len(c), *(len(t[i]) for t in text)]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) for r in rows) for c in columns]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(cells, widths, numeric)
        ).rstrip()

    return "\n".join([line(columns), *(line(t) for t in text)])


def _matched_cell(row: dict[str, Any], metric: str, seeded: bool) -> str:
    """A configuration's cell: ``0.9500 t4``, or with several seeds ``0.9793 ±0.0040 t1,4,7``."""
    if not seeded:
        return f"{row[metric]:.4f} t{row['trial']}"
    spread = row[spread_column(metric)]
    spread_text = f" ±{spread:.4f}" if spread == spread else ""
    return f"{row[metric]:.4f}{spread_text} t{','.join(str(t) for t in row['trials'])}"


def _matched_table(configs: Sequence[dict[str, Any]], metric: str, direction: str, tolerance: float) -> str:
    seeded = several_seeds(configs)
    table = best_per_level(configs, ("pattern",), tolerance=tolerance, metric=metric, direction=direction)
    levels = sorted({label for cells in table.values() for label in cells})
    lines = []
    for (pattern,), cells in sorted(table.items(), key=lambda kv: str(kv[0])):
        line = {"pattern": pattern}
        for label in levels:
            row = cells.get(label)
            line[label] = _matched_cell(row, metric, seeded) if row else "-"
        lines.append(line)
    return format_table(lines, ["pattern", *levels])


def summary_text(study: optuna.Study, *, multi_objective: bool, parent_url: str, experiment: str) -> str:
    """The end-of-search summary: front (or best trials), best per pattern at matched sparsity, next steps.

    The task's metric and direction are the study's (:func:`study_goal`): "best" is the lowest
    value of a minimised metric.
    """
    metric, direction = study_goal(study)
    rows = result_rows(study, metric)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    repeats = sum(REPEAT_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False))
    out = [
        f"study {study.study_name!r}: {len(states)} trials ({counts}{f'; {repeats} exact repeats not trained' if repeats else ''})"
    ]
    axis = str((study.user_attrs.get("objectives") or [metric, "sparsity"])[-1])
    configs = by_configuration(rows, metric=metric)  # ranked on the mean over seeds, never the luckiest seed
    seeded = several_seeds(configs)
    columns = configuration_columns(configs, metric, axis)
    of = (
        f"{{}} of {len(configs)} configurations, {len(rows)} trained trials; {metric} = mean over seeds"
        if seeded
        else f"{{}} of {len(rows)} trained trials"
    )
    if rows:
        if multi_objective:
            shown = front(configs, metric=metric, direction=direction, axis=axis)
            where = "measured speed-up" if axis == "speedup" else "reached sparsity"
            out += ["", f"Pareto front, {metric} vs {where} ({of.format(len(shown))}):"]
        else:
            shown = sorted(configs, key=lambda r: (best_first(r, metric, direction), r["trial"]))[:5]
            lower = " (lower is better)" if direction == "minimize" else ""
            best = "configurations" if seeded else "trials"
            out += ["", f"Best {best} by {metric}{lower} ({of.format(len(shown))}):"]
        out.append(format_table(_shown(shown, metric) if seeded else shown, columns))
        what = "mean ±std over seeds; t1,4,7 = its trials" if seeded else "tN = trial N"
        tolerance = supported_tolerance(r.get("target") for r in rows)
        out += [
            "",
            f"Best {metric} per pattern at the same reached sparsity ({matched_note(tolerance)}; {what}):",
            _matched_table(configs, metric, direction, tolerance),
        ]
    out += [
        "",
        "Next:",
        f"  make ui            then open {parent_url}  (the study's figures and tables)",
        f"  make notebooks EXPERIMENT={experiment}  (executed notebooks in notebooks/_executed/{experiment}/)",
    ]
    if registered := study.user_attrs.get("registered_model"):  # the front's models (workbench.study.models)
        out.append(
            f"  workbench export RUN_ID --format torch --to DIR  (the front's models: registered model {registered!r})"
        )
    return "\n".join(out)
