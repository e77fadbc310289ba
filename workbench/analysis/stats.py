"""Pure pandas helpers over a trials table (:func:`workbench.analysis.trials_frame`): no MLflow here.

Pareto fronts, the best row per group, the spread of a metric across seeds and a simple
variance-explained importance. Re-exported by :mod:`workbench.analysis`.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"pattern": ["4x1", "4x1", "2:4"], "sparsity": [0.5, 0.8, 0.5],
    ...                    "accuracy": [0.9, 0.85, 0.8]})
    >>> pareto_front(df)["sparsity"].tolist()
    [0.5, 0.8]
    >>> best_by(df, "pattern")[["pattern", "accuracy"]].values.tolist()
    [['4x1', 0.9], ['2:4', 0.8]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from workbench.benchmarks.direction import sign
from workbench.pruner.errors import ConfigError
from workbench.results.front import pareto_indices
from workbench.results.matched import matched_note, matched_rows, resolve_tolerance

__all__ = [
    "best_at_matched_sparsity",
    "best_by",
    "pareto_front",
    "pick_trials",
    "seed_spread",
    "trial_records",
    "variance_explained",
]


def _need(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    for column in columns:
        if column not in df.columns:
            allowed = ", ".join(map(str, df.columns))
            raise ConfigError(f"{what}: column {column!r} is not in the frame; allowed: {allowed}")


def trial_records(df: pd.DataFrame, metric: str = "accuracy") -> list[dict[str, Any]]:
    """``df``'s trials with a finite ``metric`` and ``sparsity`` as the study's plain rows.

    The rows :mod:`workbench.results` takes (``workbench.study.summary.result_rows``' shape): the
    target as ``target`` (from ``target_sparsity``), ``trial`` an int (``-1 - position`` for a run
    outside a study), NaN knobs left out so they group alike.
    """
    records = []
    for i, record in enumerate(df.dropna(subset=[metric, "sparsity"]).to_dict("records")):
        record = {k: v for k, v in record.items() if k == metric or not (isinstance(v, float) and math.isnan(v))}
        trial = record.get("trial")
        record["trial"] = int(trial) if isinstance(trial, (int, float)) else -1 - i  # a run outside a study
        if "target_sparsity" in record:
            record["target"] = round(float(record.pop("target_sparsity")), 6)
        records.append(record)
    return records


def pareto_front(
    df: pd.DataFrame,
    *,
    x: str = "sparsity",
    y: str = "accuracy",
    direction: str = "maximize",
    x_direction: str = "maximize",
) -> pd.DataFrame:
    """The rows no other row dominates in (``x``, ``y``), sorted by ``x``.

    A row is dominated when another is at least as good in both columns and better in one: ``y``
    (the task's metric) under ``direction``, ``x`` (reached sparsity, speed-up) under
    ``x_direction``. Rows with a missing ``x`` or ``y`` are ignored; exact duplicates of a front
    point are all kept. The same front as the study's summary and figures
    (:func:`workbench.results.front.pareto_indices`).

    Example:
        >>> df = pd.DataFrame({"sparsity": [0.5, 0.7, 0.7, 0.9], "accuracy": [0.9, 0.8, 0.95, 0.5]})
        >>> pareto_front(df).index.tolist()
        [2, 3]
    """
    _need(df, (x, y), "pareto_front")
    keep = pareto_indices(df[x].tolist(), df[y].tolist(), x_direction=x_direction, y_direction=direction)
    return df.iloc[keep].sort_values([x, y], kind="stable")


def best_by(df: pd.DataFrame, column: str, *, metric: str = "accuracy", direction: str = "maximize") -> pd.DataFrame:
    """The best row (by ``metric`` under ``direction``) for each value of ``column``, best group first.

    Rows with a missing ``metric`` are ignored; ties keep the first row.

    Example:
        >>> df = pd.DataFrame({"criterion": ["snip", "snip", "magnitude"], "accuracy": [0.7, 0.9, 0.8]})
        >>> best_by(df, "criterion")["accuracy"].tolist()
        [0.9, 0.8]
    """
    _need(df, (column, metric), "best_by")
    ascending = sign(direction) < 0
    valid = df.dropna(subset=[metric])
    groups = valid.groupby(column, sort=False, dropna=False)[metric]
    index = groups.idxmin() if ascending else groups.idxmax()
    return valid.loc[index.to_numpy()].sort_values(metric, ascending=ascending, kind="stable")


def seed_spread(
    df: pd.DataFrame, by: str | Sequence[str], *, metric: str = "accuracy", seed: str = "seed"
) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed), min and max of ``metric`` over the seeds of each ``by`` group.

    Seeds are what count: runs of one group with the same seed (repeats) are averaged into one
    value first, so a configuration trained three times with one seed has ``n_seeds`` 1 and no
    spread. Columns: the ``by`` columns, ``<metric>_mean``, ``<metric>_std``, ``<metric>_min``,
    ``<metric>_max``, ``n_seeds`` (distinct values of ``seed``) and ``n_runs``. Rows with a
    missing ``metric`` are ignored.

    Example:
        >>> df = pd.DataFrame({"criterion": ["snip"] * 3 + ["magnitude"], "seed": [0, 1, 1, 0],
        ...                    "accuracy": [0.5, 1.0, 1.0, 0.7]})
        >>> seed_spread(df, "criterion")[["criterion", "accuracy_mean", "n_seeds", "n_runs"]].values.tolist()
        [['magnitude', 0.7, 1, 1], ['snip', 0.75, 2, 3]]
    """
    keys = [by] if isinstance(by, str) else list(by)
    _need(df, [*keys, metric, seed], "seed_spread")
    valid = df.dropna(subset=[metric])
    per_seed = valid.groupby([*keys, seed], dropna=False)[metric].agg(["mean", "count"]).reset_index()
    grouped = per_seed.groupby(keys, dropna=False)
    out = grouped["mean"].agg(["mean", "std", "min", "max", "count"])
    out.columns = [f"{metric}_{c}" for c in ("mean", "std", "min", "max")] + ["n_seeds"]
    out["n_runs"] = grouped["count"].sum()
    return out.reset_index()


def variance_explained(
    df: pd.DataFrame, params: Sequence[str], *, target: str = "accuracy", bins: int = 4
) -> pd.Series:
    """How much of ``target``'s variance each param explains on its own, normalised to sum 1.

    The one-way ANOVA eta squared (between-group over total sum of squares) per param, the
    fallback when Optuna's fANOVA is not available. A numeric param with more than ``bins``
    distinct values is grouped into ``bins`` quantile bins first. ``.attrs["method"]`` is
    ``"variance_explained"``. All zeros when ``target`` does not vary.

    Example:
        >>> df = pd.DataFrame({"pattern": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
        ...                    "accuracy": [0.9, 0.9, 0.5, 0.5]})
        >>> variance_explained(df, ["pattern", "seed"]).to_dict()
        {'pattern': 1.0, 'seed': 0.0}
    """
    if bins < 1:
        raise ConfigError(f"bins: must be >= 1, got {bins}")
    _need(df, [*params, target], "variance_explained")
    valid = df.dropna(subset=[target])
    y = valid[target].astype(float)
    total = float(((y - y.mean()) ** 2).sum())
    scores = {}
    for param in params:
        groups = valid[param]
        if pd.api.types.is_numeric_dtype(groups) and groups.nunique() > bins:
            groups = pd.qcut(groups, bins, duplicates="drop")
        stats = y.groupby(groups.astype(str)).agg(["mean", "count"])
        between = float((stats["count"] * (stats["mean"] - y.mean()) ** 2).sum())
        scores[param] = between / total if total > 0 else 0.0
    series = pd.Series(scores, name="importance", dtype="float64")
    if series.sum() > 0:
        series = series / series.sum()
    series = series.sort_values(ascending=False, kind="stable")
    series.index.name = "param"
    series.attrs["method"] = "variance_explained"
    return series


def pick_trials(
    df: pd.DataFrame, *, n: int = 3, x: str = "sparsity", y: str = "accuracy", direction: str = "maximize"
) -> pd.DataFrame:
    """Up to ``n`` complete trials worth plotting: the Pareto front by ``y``, then the best of the rest
    (the lowest ``y`` first when ``direction`` is ``minimize``: a perplexity).

    Example:
        >>> df = pd.DataFrame({"state": ["COMPLETE"] * 3, "sparsity": [0.5, 0.9, 0.4],
        ...                    "accuracy": [0.9, 0.6, 0.8]})
        >>> pick_trials(df, n=2).index.tolist()
        [0, 1]
    """
    if n < 1:
        raise ConfigError(f"n: must be >= 1, got {n}")
    complete = df[df["state"] == "COMPLETE"] if "state" in df else df
    ascending = sign(direction) < 0
    front = pareto_front(complete, x=x, y=y, direction=direction)
    front = front.sort_values(y, ascending=ascending, kind="stable")
    rest = complete.drop(index=front.index).dropna(subset=[y]).sort_values(y, ascending=ascending, kind="stable")
    return pd.concat([front, rest]).head(n)


def best_at_matched_sparsity(
    df: pd.DataFrame,
    by: Sequence[str] = ("pattern", "criterion"),
    *,
    tolerance: float | None = None,
    metric: str = "accuracy",
    direction: str = "maximize",
) -> pd.DataFrame:
    """The best configuration of each ``by`` group at each matched reached sparsity, wide.

    The study's rule (:func:`workbench.results.matched.matched_rows`): trials grouped by
    configuration (mean ``metric`` over seeds), compared where their reached sparsities lie within
    ``tolerance`` of each other (None: 0.01, less on a finer grid of targets;
    :func:`workbench.results.matched.supported_tolerance`). One row per group, one column per matched sparsity (labelled by
    the range reached there, ``"0.593-0.600"``) holding the best mean ``metric`` there (the lowest
    when ``direction`` is ``minimize``), and ``<level> trial`` columns naming the configuration's
    first trial. The other knobs (scheduler, decay, ...) are whatever each best configuration
    used, not held fixed (:func:`workbench.results.matched.matched_rows` has them). ``attrs["note"]``
    says the tolerance. The same numbers as the study's ``best_at_matched_sparsity.csv``.

    Example:
        >>> df = pd.DataFrame({"trial": [0, 1, 2], "pattern": ["4x1", "4x1", "2:4"], "criterion": ["snip"] * 3,
        ...                    "target_sparsity": [0.6, 0.65, 0.5], "sparsity": [0.6, 0.65, 0.5],
        ...                    "accuracy": [0.9, 0.95, 0.97]})
        >>> table = best_at_matched_sparsity(df)
        >>> [c for c in table.columns if not c.endswith("trial")], float(table.loc[("4x1", "snip"), "0.600"])
        (['0.500', '0.600', '0.650'], 0.9)
    """
    _need(df, [*by, "sparsity", metric], "best_at_matched_sparsity")
    records = trial_records(df, metric)
    tolerance = resolve_tolerance(tolerance, (r.get("target") for r in records))
    rows = matched_rows(records, tuple(by), tolerance=tolerance, metric=metric, direction=direction)
    if not rows:
        out = pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=list(by)))
        out.attrs["note"] = matched_note(tolerance)
        return out
    long = pd.DataFrame(rows)
    values = long.pivot_table(index=list(by), columns="matched_sparsity", values=metric, aggfunc="first")
    trials = long.pivot_table(index=list(by), columns="matched_sparsity", values="trial", aggfunc="first")
    trials.columns = [f"{c} trial" for c in trials.columns]
    out = values.join(trials.astype("Int64"))
    order = [c for b in values.columns for c in (b, f"{b} trial")]
    out = out[order]
    out.columns.name = None
    out = out.sort_values(list(values.columns), ascending=sign(direction) < 0, na_position="last")
    out.attrs["note"] = matched_note(tolerance)
    return out
