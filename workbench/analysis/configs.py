"""Configurations, not trials, in the notebooks: a trials frame grouped over seeds.

The frame twin of the study's console tables: :func:`configurations_frame` is
:func:`workbench.results.configs.by_configuration` (the one place that groups trials by
configuration) over the rows of :func:`~workbench.analysis.trials_frame`: one row per
configuration (every searched knob and the target; never the seed), its metric the mean over
seeds, ``<metric>_std`` (standard deviation over seeds), ``<metric>_min`` / ``_max``,
``n_seeds``, ``trials`` and ``run_ids``, and the mean reached ``sparsity``. The same numbers as
:func:`workbench.analysis.seed_spread` grouped by the configuration's knobs.
:func:`configuration_columns` picks the columns worth reading (every knob that varies, the
spread only when some configuration has several seeds); :func:`matched_configurations` is the
best configuration per group and bin of reached sparsity, one row per cell that has one.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"trial": [0, 1, 2], "pattern": ["2:4", "2:4", "4x1"], "target_sparsity": [0.5] * 3,
    ...                    "seed": [0, 1, 0], "sparsity": [0.5] * 3, "accuracy": [0.98, 0.96, 0.97]})
    >>> configurations_frame(df)[["pattern", "accuracy", "n_seeds"]].values.tolist()
    [['2:4', 0.97, 2], ['4x1', 0.97, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from workbench.analysis.goal import summary_columns
from workbench.pruner.errors import ConfigError
from workbench.results.configs import by_configuration, several_seeds, spread_column, varying_knobs
from workbench.results.matched import matched_rows

BY = ("pattern", "criterion")
"""The groups :func:`matched_configurations` compares by default."""

__all__ = ["configuration_columns", "configurations_frame", "matched_configurations", "trial_columns"]


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as plain dicts, missing values as NaN (one configuration key for them all)."""
    return [{k: (float("nan") if v is None or v is pd.NA else v) for k, v in r.items()} for r in df.to_dict("records")]


def configurations_frame(df: pd.DataFrame, *, metric: str = "accuracy") -> pd.DataFrame:
    """One row per configuration of ``df`` (a trials frame): ``metric`` averaged over seeds, with its spread.

    :func:`workbench.results.configs.by_configuration` over the frame's rows (see the module
    docstring for the columns); the configurations appear in the order of their first trial.
    ``ConfigError`` naming the column when ``df`` lacks ``metric`` or ``sparsity``.
    """
    for column in (metric, "sparsity"):
        if column not in df.columns:
            raise ConfigError(
                f"configurations_frame: column {column!r} is not in the frame; allowed: {', '.join(map(str, df.columns))}"
            )
    return pd.DataFrame(by_configuration(_records(df), metric=metric))


def configuration_columns(configs: pd.DataFrame, metric: str = "accuracy") -> list[str]:
    """The columns of :func:`configurations_frame` a table shows: the trials, every knob that varies,
    the target, the mean reached sparsity, the ``metric`` (mean) and, when some configuration has
    several seeds, its spread (``<metric>_std``) and ``n_seeds``. No knob that takes one value."""
    records = configs.to_dict("records")
    target = [c for c in ("target", "target_sparsity") if c in configs][:1]
    spread = [spread_column(metric), "n_seeds"] if several_seeds(records) else []
    trials = "trials" if spread else "trial"
    return [c for c in [trials, *varying_knobs(records), *target, "sparsity", metric, *spread] if c in configs]


def matched_configurations(
    configs: pd.DataFrame, *, metric: str = "accuracy", direction: str = "maximize", by: Sequence[str] = BY
) -> pd.DataFrame:
    """The best configuration of each ``by`` group in each bin of reached sparsity, one row per cell that has one.

    Long, not wide: a row per (bin, group) that holds a configuration, so no cell is empty
    (a wide table of groups x bins is mostly empty when each group reached a few sparsities).
    :func:`workbench.results.matched.matched_rows` over ``configs`` (:func:`configurations_frame`):
    the reached sparsity is matched by the study's rule (its first column, the level); the other knobs are whatever the
    best configuration used (its columns), not held fixed. Columns: the level of reached sparsity
    (``sparsity_bin`` or ``matched_sparsity``, as :func:`~workbench.results.matched.matched_rows`
    names it), ``by``, then :func:`configuration_columns`.
    """
    records = configs.to_dict("records")
    rows = matched_rows(records, tuple(by), metric=metric, direction=direction)
    level = next((k for k in ("matched_sparsity", "sparsity_bin") if rows and k in rows[0]), "sparsity_bin")
    columns = [level, *by, *(c for c in configuration_columns(configs, metric) if c not in by)]
    return pd.DataFrame(rows, columns=columns)


def trial_columns(trials: pd.DataFrame, metric: str = "accuracy") -> list[str]:
    """The columns of a trials frame a table shows: :func:`~workbench.analysis.summary_columns` with every
    knob that varies among ``trials`` (decay type, pruning scope, ...) and none that does not, and
    ``seed`` only when the trials hold several seeds.

    Example:
        >>> df = pd.DataFrame({"trial": [0, 1], "pattern": ["4x1", "4x1"], "pruning_scope": ["global", "local"],
        ...                    "target_sparsity": [0.5, 0.5], "seed": [0, 0], "accuracy": [0.9, 0.8]})
        >>> trial_columns(df)
        ['trial', 'pruning_scope', 'target_sparsity', 'accuracy']
    """
    knobs = varying_knobs(_records(trials))
    base = summary_columns(metric)
    at = base.index("target_sparsity")
    seed = ["seed"] if "seed" in trials and trials["seed"].nunique() > 1 else []
    shown = [*base[:2], *knobs, "target_sparsity", *seed, *(c for c in base[at + 1 :] if c != "seed")]
    return [c for c in dict.fromkeys(shown) if c in trials]
