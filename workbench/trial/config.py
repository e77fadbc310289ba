"""From the workbench's search dimensions to an INC-style pruning config (and back).

The search dimensions (:mod:`workbench.trial.space`) are the four core ones, ``pattern``,
``criterion``, ``scheduler`` and ``target_sparsity``, plus the optional ``pruner`` (default
basic), ``pruning_scope`` and ``sparsity_decay_type``; the allowed values are whatever the
pruner library has registered. :func:`build_pruning_config` maps them, with the fine-tuning length of a
:class:`~workbench.trial.types.TrainingConfig`, to ``{"pruning_configs": [{}], **globals}``
(INC's own idiom: one pruner made of the global keys):

* ``pruning_type``: as the pruner type forms it with the criterion
  (:func:`~workbench.pruner.format_pruning_type`: ``magnitude``, ``snip_progressive``,
  ``pattern_lock``, which has no criterion).
* a single-step scheduler (oneshot): ``start_step == end_step = max(1, round(start_fraction * steps))``.
* any other scheduler (iterative): ``start_step = max(1, round(start_fraction * steps))``,
  ``end_step = round(end_fraction * steps)``, ``pruning_frequency = training.pruning_frequency``
  (progressive: rounded up to a multiple of ``progressive_steps``, default 4).
* Steps are the pruner's, 0 .. ``steps``-1, so ``start_step`` and ``end_step`` are capped at
  ``steps - 1`` (a later step would never run). Start is at least 1 because the gradient-based
  criteria need one backward pass before they can score.
* ``scheduler`` is written into the config only for a scheduler INC's rule (oneshot exactly when
  ``start_step == end_step``) would not pick, so configs of the built-ins stay INC's.

``fixed`` (the experiment's ``pruning:`` section) may set any INC key, and wins over values
derived from ``training`` (``pruning_frequency``; ``start_step`` / ``end_step`` as long as they
still describe the chosen scheduler). It may not contradict a value of ``params`` or what the
core dimensions imply: a different ``pattern``, ``target_sparsity``, ``pruning_type``, optional
dimension, or steps of the other scheduler kind are a ``ValueError``. ``fixed`` may hold its own
``pruning_configs`` list (e.g. several pruners with different ``op_names``); each entry inherits
the globals and is held to the same rule.

A post-training criterion (``wanda``, ``sparsegpt``) builds a different config: the INC config of
a ``pattern_lock`` pruner (it keeps the zeros the one-shot prune leaves during the optional
fine-tuning) plus the key ``posttraining: {method: <criterion>, ...}`` that
:func:`~workbench.trial.runner.run_trial` reads (and removes before the pruner library sees the
config). The schedule knobs do not apply and are dropped from ``fixed``; ``fixed`` may hold a
``posttraining:`` mapping of :func:`~workbench.pruner.prune_posttraining`'s options
(:mod:`.posttraining_config`), which training-aware trials ignore.

Example:
    >>> from workbench.trial import TrainingConfig
    >>> cfg = build_pruning_config({"pattern": "4x1", "criterion": "snip_momentum", "scheduler": "iterative",
    ...                             "target_sparsity": 0.8, "pruner": "progressive"},
    ...                            training=TrainingConfig(steps=100, pruning_frequency=10))
    >>> {k: cfg[k] for k in ("pruning_type", "start_step", "end_step", "pruning_frequency")}
    {'pruning_type': 'snip_momentum_progressive', 'start_step': 10, 'end_step': 70, 'pruning_frequency': 12}
    >>> search_params(cfg)["scheduler"], search_params(cfg)["criterion"]
    ('iterative', 'snip_momentum')
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from workbench.pruner import SCHEDULERS, format_pruning_type, process_config
from workbench.pruner.errors import ConfigError
from workbench.pruner.registry import did_you_mean
from workbench.trial.posttraining_config import POSTTRAINING_KEY, posttraining_config
from workbench.trial.space import INACTIVE, PRUNING_DIMS, REQUIRED_DIMS, allowed_values, is_posttraining
from workbench.trial.types import TrainingConfig

__all__ = ["build_pruning_config", "search_params"]

_DEFAULT_PROGRESSIVE_STEPS = 4


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise _fail("params", f"expected a mapping of search dimensions, got {type(params).__name__}")
    for key in params:
        if key not in PRUNING_DIMS:
            raise _fail(
                str(key),
                f"unknown search dimension{did_you_mean(str(key), PRUNING_DIMS)}; allowed: {', '.join(PRUNING_DIMS)}",
            )
    for key in REQUIRED_DIMS:
        if key not in params:
            raise _fail(key, f"missing; the core search dimensions are {', '.join(REQUIRED_DIMS)}")
    out = dict(params)
    out.setdefault("pruner", "basic")
    for key in ("criterion", "scheduler", "pruner"):
        allowed = allowed_values(key)
        if out[key] not in allowed:
            raise _fail(key, f"{out[key]!r} is not allowed; allowed: {', '.join(allowed)}")
    value = out["target_sparsity"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise _fail("target_sparsity", f"{value!r} is out of range; allowed: 0 <= target_sparsity < 1")
    out["target_sparsity"] = float(value)
    return out


def _single_step(scheduler: str) -> bool:
    """Whether the registered ``scheduler`` prunes in one step (start == end) or over a window."""
    return SCHEDULERS.lookup(scheduler).single_step


def _schedule(scheduler: str, training: TrainingConfig, progressive_steps: int | None) -> dict[str, int]:
    steps = training.steps
    if steps < 2:
        raise _fail("training.steps", f"must be >= 2 to prune (pruning starts at step >= 1), got {steps}")
    last = steps - 1
    start = min(last, max(1, round(training.start_fraction * steps)))
    if _single_step(scheduler):
        return {"start_step": start, "end_step": start}
    end = min(last, round(training.end_fraction * steps))
    frequency = training.pruning_frequency
    if progressive_steps is not None:
        frequency = math.ceil(frequency / progressive_steps) * progressive_steps
    if end - start < frequency:
        raise _fail(
            "training.end_fraction",
            f"an iterative schedule needs end_step - start_step >= pruning_frequency; got start_step "
            f"{start}, end_step {end}, pruning_frequency {frequency} (with steps {steps}, start_fraction "
            f"{training.start_fraction}, end_fraction {training.end_fraction}); use more steps, a "
            f"wider start/end range or a lower pruning_frequency",
        )
    return {"start_step": start, "end_step": end, "pruning_frequency": frequency}


def _check_fixed(fixed: Mapping[str, Any], owned: dict[str, Any], scheduler: str, where: str) -> None:
    """``fixed`` may not contradict the values the search dimensions own."""
    for key, value in owned.items():
        if key in fixed and fixed[key] != value:
            raise _fail(
                f"{where}{key}",
                f"{fixed[key]!r} contradicts the search dimensions, which set {value!r}; set {key} in one place only",
            )
    start, end = fixed.get("start_step"), fixed.get("end_step")
    if start is not None and end is not None:
        if _single_step(scheduler) and start != end:
            raise _fail(
                f"{where}end_step", f"scheduler {scheduler} needs start_step == end_step, got {start} and {end}"
            )
        if not _single_step(scheduler) and not start < end:
            raise _fail(f"{where}end_step", f"scheduler {scheduler} needs start_step < end_step, got {start} and {end}")


def build_pruning_config(
    params: Mapping[str, Any], *, training: TrainingConfig, fixed: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The INC-style config ``{"pruning_configs": [...], **globals}`` for one point of the search space.

    Args:
        params: ``pattern``, ``criterion``, ``scheduler``, ``target_sparsity`` and optionally
            ``pruner``, ``pruning_scope``, ``sparsity_decay_type``.
        training: Supplies ``steps``, ``start_fraction``, ``end_fraction`` and ``pruning_frequency``.
        fixed: Further INC keys (see the module docstring for what may and may not be fixed).

    Returns:
        A new YAML-safe dict, validated by the pruner library.

    Raises:
        ValueError: Unknown or missing dimension, bad value, a contradiction between ``fixed`` and
            ``params``, or a config the pruner library rejects; the message names the key.
    """
    fixed = copy.deepcopy(dict(fixed or {}))
    options = fixed.pop(POSTTRAINING_KEY, None) or {}
    if isinstance(params, Mapping) and is_posttraining(params.get("criterion")):
        return posttraining_config(params, fixed, options)
    point = _check_params(params)
    entries = fixed.pop("pruning_configs", None)
    if entries is not None and (not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries)):
        raise _fail("pruning_configs", f"expected a list of dicts (one per pruner), got {entries!r}")
    pruner = point["pruner"]
    owned: dict[str, Any] = {
        "pattern": point["pattern"],
        "target_sparsity": point["target_sparsity"],
        "pruning_type": format_pruning_type(pruner, point["criterion"]),
    }
    if point["scheduler"] != ("oneshot" if _single_step(point["scheduler"]) else "iterative"):
        owned["scheduler"] = point["scheduler"]  # INC's rule (oneshot iff start == end) would not name it
    owned.update({k: point[k] for k in ("pruning_scope", "sparsity_decay_type") if k in point})
    progressive = fixed.get("progressive_steps", _DEFAULT_PROGRESSIVE_STEPS) if pruner == "progressive" else None
    if progressive is not None and (
        isinstance(progressive, bool) or not isinstance(progressive, int) or progressive < 1
    ):
        raise _fail("pruning.progressive_steps", f"must be an integer >= 1, got {progressive!r}")
    derived = _schedule(point["scheduler"], training, progressive)
    _check_fixed(fixed, owned, point["scheduler"], "pruning.")
    for i, entry in enumerate(entries or []):
        _check_fixed(entry, owned, point["scheduler"], f"pruning.pruning_configs[{i}].")
    config: dict[str, Any] = {"pruning_configs": copy.deepcopy(entries) if entries else [{}]}
    config.update(owned)
    config.update(derived)
    config.update(fixed)
    single, name = _single_step(point["scheduler"]), point["scheduler"]
    if not single and not config["start_step"] < config["end_step"]:
        raise _fail(
            "pruning.start_step",
            f"scheduler {name} needs start_step < end_step, got {config['start_step']} and {config['end_step']}",
        )
    if single and config["start_step"] != config["end_step"]:
        raise _fail(
            "pruning.end_step",
            f"scheduler {name} needs start_step == end_step, got {config['start_step']} and {config['end_step']}",
        )
    process_config(config)
    return config


def search_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The search-dimension values a config (of its first pruner) expresses: the inverse of
    :func:`build_pruning_config`. ``criterion`` is ``None`` for pattern_lock; missing keys take
    the pruner library's defaults. A post-training config gives its method as ``criterion`` and
    ``none`` for the schedule knobs."""
    if POSTTRAINING_KEY in config:
        lock = {k: v for k, v in config.items() if k != POSTTRAINING_KEY}
        first = process_config(lock)[0]
        return {
            "pattern": first["pattern"],
            "criterion": config[POSTTRAINING_KEY]["method"],
            "scheduler": INACTIVE,
            "target_sparsity": float(first["target_sparsity"]),
            "pruner": INACTIVE,
            "pruning_scope": INACTIVE,
            "sparsity_decay_type": INACTIVE,
        }
    first = process_config(dict(config))[0]
    return {
        "pattern": first["pattern"],
        "criterion": first["criterion_type"],
        "scheduler": first["scheduler"],
        "target_sparsity": float(first["target_sparsity"]),
        "pruner": first["pruner_type"],
        "pruning_scope": first["pruning_scope"],
        "sparsity_decay_type": first["sparsity_decay_type"],
    }
