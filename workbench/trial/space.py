"""The search dimensions: the one table that the schema, the search space, MLflow params and analysis read.

A dimension is a knob a study can search (``search_space:`` in an experiment file). Choice
dimensions take their allowed values from the pruner library's registries at the time of the
call, so a criterion, scheduler, pruner type or decay registered by a plug-in is allowed at once;
patterns are an open family, checked by :func:`workbench.pruner.parse_pattern`. Range dimensions
are floats. ``pruning`` dimensions are the seven knobs of a pruning config (every child run logs
all seven); ``lr`` is a training knob.

Example:
    >>> [d.name for d in DIMENSIONS if d.required]
    ['pattern', 'criterion', 'scheduler', 'target_sparsity']
    >>> "snip_momentum" in allowed_values("criterion")
    True
    >>> effective_params({"pattern": "2:4", "target_sparsity": 0.8})["target_sparsity"]
    0.5
    >>> is_active("sparsity_decay_type", {"scheduler": "oneshot"})
    False
    >>> is_active("scheduler", {"criterion": "wanda"})
    False

Post-training criteria (``wanda``, ``sparsegpt``: :data:`POSTTRAINING_CRITERIA`) are choices of
``criterion`` beside the registered ones: such a trial prunes once from calibration data
(:mod:`workbench.trial.posttraining`), so the schedule knobs (:data:`POSTTRAINING_INACTIVE`) have
no effect there and an N:M pattern prunes exactly N/M.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from workbench import pruner
from workbench.pruner.errors import ConfigError
from workbench.pruner.posttraining.options import METHODS

__all__ = [
    "CHOICE_DIMS",
    "DIMENSIONS",
    "INACTIVE",
    "POSTTRAINING_CRITERIA",
    "POSTTRAINING_INACTIVE",
    "PRUNING_DIMS",
    "RANGE_DIMS",
    "REQUIRED_DIMS",
    "SEARCH_DIMS",
    "Dimension",
    "allowed_values",
    "check_posttraining_pattern",
    "dimension",
    "effective_params",
    "is_active",
    "grid_decimals",
    "is_posttraining",
    "max_sparsity",
    "on_grid",
    "ordered",
    "point_key",
    "sampled_params",
]


@dataclass(frozen=True)
class Dimension:
    """One search dimension.

    Attributes:
        name: The key in ``search_space:``, in MLflow params and in analysis frames.
        kind: ``"choice"`` (a list of values) or ``"range"`` (a float range).
        required: Whether every experiment must give it.
        pruning: Whether it is a knob of the pruning config (logged on every child run).
        choices: The allowed values of a choice dimension (called when needed, so registrations
            made after import count); None for patterns and ranges.
        help: One line for messages and docs.
    """

    name: str
    kind: str
    required: bool
    pruning: bool
    choices: Callable[[], tuple[str, ...]] | None
    help: str


POSTTRAINING_CRITERIA: tuple[str, ...] = tuple(METHODS)
"""Criteria that make a post-training trial (one-shot prune from calibration data), not INC criteria."""
POSTTRAINING_INACTIVE = ("scheduler", "pruner", "pruning_scope", "sparsity_decay_type")
"""Knobs without effect in a post-training trial (neither sampled nor logged there)."""


def _listed(query: str) -> Callable[[], tuple[str, ...]]:
    """The allowed values of a dimension: the pruner's ``list_*`` query ``query``, asked when needed
    (``workbench.pruner`` is a lazy namespace: reading an experiment file does not load torch)."""
    return lambda: tuple(getattr(pruner, query)())


def _criteria() -> tuple[str, ...]:
    registered = tuple(pruner.list_criteria())
    return registered + tuple(m for m in POSTTRAINING_CRITERIA if m not in registered)


def is_posttraining(criterion: Any) -> bool:
    """Whether ``criterion`` is a post-training method (``wanda``, ``sparsegpt``)."""
    return criterion in POSTTRAINING_CRITERIA


def check_posttraining_pattern(criterion: str, pattern: str, key: str = "pattern") -> None:
    """Refuse a pattern post-training pruning cannot take (it takes unstructured, N:M and NxM).

    Raises:
        ValueError: Naming ``key``, the pattern, the criterion and what is allowed.
    """
    from workbench.pruner.posttraining import parse_shape  # the pattern families (torch) load here

    try:
        parse_shape(pattern)
    except ValueError as err:
        raise ConfigError(
            f"{key}: {pattern!r} cannot be used with post-training criterion {criterion}; allowed: "
            f"unstructured '1x1', N:M ('2:4') or NxM blocks ('4x1', 'channelx1') ({err})"
        ) from None


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("pattern", "choice", True, True, None, "block shape: NxM ('4x1', 'channelx1') or N:M ('2:4')"),
    Dimension(
        "criterion", "choice", True, True, _criteria, "how weights are scored (wanda / sparsegpt: post-training)"
    ),
    Dimension(
        "scheduler",
        "choice",
        True,
        True,
        _listed("list_schedulers"),
        "how sparsity rises: one pruning step (oneshot) or a window of them",
    ),
    Dimension("target_sparsity", "range", True, True, None, "fraction of weights zeroed at the end, in [0, 1)"),
    Dimension("pruner", "choice", False, True, _listed("list_pruner_types"), "how masks change over steps"),
    Dimension("pruning_scope", "choice", False, True, lambda: pruner.SCOPES, "rank layers together or apart"),
    Dimension(
        "sparsity_decay_type",
        "choice",
        False,
        True,
        _listed("list_decays"),
        "shape of the sparsity ramp of iterative schedules",
    ),
    Dimension("lr", "range", False, False, None, "the fine-tuning learning rate (> 0)"),
)
SEARCH_DIMS = tuple(d.name for d in DIMENSIONS)
REQUIRED_DIMS = tuple(d.name for d in DIMENSIONS if d.required)
PRUNING_DIMS = tuple(d.name for d in DIMENSIONS if d.pruning)
CHOICE_DIMS = tuple(d.name for d in DIMENSIONS if d.kind == "choice")
RANGE_DIMS = tuple(d.name for d in DIMENSIONS if d.kind == "range")


def dimension(name: str) -> Dimension:
    """The dimension called ``name``; ``ValueError`` naming the known ones otherwise."""
    for dim in DIMENSIONS:
        if dim.name == name:
            return dim
    raise ConfigError(f"{name}: not a search dimension; allowed: {', '.join(SEARCH_DIMS)}")


def allowed_values(name: str) -> tuple[str, ...]:
    """The values a choice dimension allows now (registries included); ``()`` for patterns."""
    choices = dimension(name).choices
    return tuple(choices()) if choices is not None else ()


def max_sparsity(pattern: str) -> float:
    """The highest sparsity ``pattern`` can reach, as its family states it (N/M for N:M, else 1)."""
    return float(pruner.parse_pattern(pattern).max_sparsity)


def effective_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params a trial runs: ``target_sparsity`` as the pattern's spec makes it effective
    (:meth:`workbench.pruner.PatternSpec.effective_target`): clipped to the pattern's maximum (N/M);
    with a post-training criterion, a pattern of fixed sparsity (N:M) prunes exactly that.
    """
    out = dict(params)
    if "target_sparsity" in out and "pattern" in out:
        spec = pruner.parse_pattern(out["pattern"])  # the pattern's family decides, not its syntax
        one_shot = is_posttraining(out.get("criterion"))
        out["target_sparsity"] = spec.effective_target(out["target_sparsity"], one_shot=one_shot)
    return out


def grid_decimals(*numbers: float) -> int:
    """How many decimals a stepped range's values carry: the most any of ``numbers`` (its step and
    low) is written with (``0.05`` -> 2, ``1e-05`` -> 5, ``2.0`` -> 1)."""
    exponents = (Decimal(repr(float(n))).as_tuple().exponent for n in numbers)
    return max((-e for e in exponents if isinstance(e, int)), default=0) if numbers else 0


def on_grid(value: float, step: float | None, low: float = 0.0) -> float:
    """``value`` of a range stepped by ``step`` from ``low``, rounded to the grid's precision.

    The one rounding rule of sampled range values: ``low + k * step`` in floats is often a hair off
    (``0.8500000000000001``); rounded to :func:`grid_decimals` of the step and low it is the value
    the file wrote (``0.85``), which MLflow logs, filters (``params.target_sparsity = '0.85'``) and
    every table shows. A range without a step (continuous or log) is returned unchanged.

    Example:
        >>> on_grid(0.5 + 7 * 0.05, 0.05, 0.5)
        0.85
    """
    if not step:
        return value
    return round(value, grid_decimals(step, low))


def sampled_params(params: Mapping[str, Any], distributions: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` of a stored Optuna trial with each stepped float on its grid (:func:`on_grid`).

    ``distributions`` is the trial's (``FrozenTrial.distributions``): a float distribution's ``step``
    and ``low`` give the grid; Optuna stores the unrounded value it drew.
    """
    out = dict(params)
    for name, value in out.items():
        dist = distributions.get(name)
        if isinstance(value, float) and getattr(dist, "step", None) and isinstance(dist.step, float):
            out[name] = on_grid(value, dist.step, dist.low)
    return out


INACTIVE = "none"
"""What MLflow logs for a knob that has no effect in a trial (the decay of a one-step schedule)."""


def is_active(name: str, point: dict[str, Any]) -> bool:
    """Whether dimension ``name`` has an effect at ``point`` (the conditional search space).

    ``sparsity_decay_type`` shapes the ramp of a schedule with several pruning steps only; a
    one-step scheduler (``oneshot``, or a plug-in whose class says ``single_step``) ignores it,
    so a study neither samples nor logs it there. A post-training criterion makes the schedule
    knobs (:data:`POSTTRAINING_INACTIVE`) inactive. Every other dimension is always active.
    """
    if name in POSTTRAINING_INACTIVE and is_posttraining(point.get("criterion")):
        return False
    if name != "sparsity_decay_type" or "scheduler" not in point:
        return True
    scheduler = pruner.SCHEDULERS.get(point["scheduler"])
    return scheduler is None or not getattr(scheduler, "single_step", False)


def ordered(names: Iterable[str]) -> list[str]:
    """``names`` in the table's order, so a dimension comes after those it depends on."""
    rank = {d: i for i, d in enumerate(SEARCH_DIMS)}
    return sorted(names, key=lambda n: rank.get(n, len(rank)))


def point_key(point: dict[str, Any], seed: int) -> str:
    """A canonical text of an effective point and its seed: equal keys mean the same training run."""
    eff = {k: v for k, v in effective_params(point).items() if is_active(k, point)}
    eff = {k: round(v, 10) if isinstance(v, float) else v for k, v in eff.items()}
    return json.dumps({"point": eff, "seed": int(seed)}, sort_keys=True, default=str)
