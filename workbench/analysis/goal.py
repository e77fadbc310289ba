"""Which metric a study's trials optimise and which way is better, read back from their runs.

Every trial run carries its task's metric and direction as tags (``workbench.metric``,
``workbench.direction``; runs logged before tasks had their own metric have none and are
accuracy, maximised). :func:`~workbench.analysis.trials_frame` shows them as the columns
``metric`` and ``direction`` and holds every final metric of the task (``<name>``,
``dense_<name>``, ``<metric>_drop``); :func:`metric_of` is what a notebook reads to pick the
column to plot and which way is better.

Example:
    >>> import pandas as pd
    >>> metric_of(pd.DataFrame({"metric": ["perplexity"], "direction": ["minimize"]}))
    ('perplexity', 'minimize')
    >>> summary_columns("perplexity")[-4:]
    ('perplexity', 'perplexity_drop', 'sparsity', 'blockwise_sparsity')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from workbench.tracking.artifacts import DIRECTION_TAG, METRIC_TAG

__all__ = ["DEFAULT_GOAL", "final_columns", "metric_of", "run_goal", "summary_columns"]

DEFAULT_GOAL = ("accuracy", "maximize")
"""The metric and direction of a run that names none (every run before tasks named their metric)."""


def run_goal(tags: Mapping[str, str]) -> tuple[str, str]:
    """A run's (metric, direction) from its tags (:data:`DEFAULT_GOAL` when it has none)."""
    return tags.get(METRIC_TAG) or DEFAULT_GOAL[0], tags.get(DIRECTION_TAG) or DEFAULT_GOAL[1]


def metric_of(trials: pd.DataFrame) -> tuple[str, str]:
    """The (metric, direction) most trials of ``trials`` optimise (:data:`DEFAULT_GOAL` for an empty frame)."""
    if "metric" not in trials or trials["metric"].dropna().empty:
        return DEFAULT_GOAL
    metric = str(trials["metric"].dropna().mode().iloc[0])
    directions = trials.loc[trials["metric"] == metric, "direction"].dropna() if "direction" in trials else []
    return metric, str(directions.mode().iloc[0]) if len(directions) else DEFAULT_GOAL[1]


def summary_columns(metric: str = "accuracy") -> tuple[str, ...]:
    """The columns of :func:`~workbench.analysis.trials_frame` a summary table shows, for a task optimising ``metric``."""
    return (
        "trial",
        "state",
        "pattern",
        "criterion",
        "scheduler",
        "target_sparsity",
        "seed",
        metric,
        f"{metric}_drop",
        "sparsity",
        "blockwise_sparsity",
    )


def final_columns(keys: Iterable[str], metrics: Iterable[str]) -> list[str]:
    """The final-metric columns in reading order: each optimised metric's value, dense value and drop,
    then the task's other metrics (value, dense value)."""
    keys, out = set(keys), []
    for name in dict.fromkeys(metrics):
        out += [name, f"dense_{name}", f"{name}_drop"]
    rest = sorted(k for k in keys if not k.startswith("dense_") and not k.endswith("_drop") and k not in out)
    for name in rest:
        out += [name, *([f"dense_{name}"] if f"dense_{name}" in keys else [])]
    return out + sorted(keys - set(out))
