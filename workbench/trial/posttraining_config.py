"""The pruning config of a post-training trial (criterion ``wanda`` / ``sparsegpt``).

:func:`posttraining_config` is :func:`workbench.trial.build_pruning_config`'s branch for a
post-training criterion: the INC config of a ``pattern_lock`` pruner (it keeps the zeros the
one-shot prune leaves during the optional fine-tuning) plus ``posttraining: {method, **options}``,
which :func:`~workbench.trial.run_trial` reads and removes before the pruner library sees the
config. Schedule keys of ``fixed`` (:data:`SCHEDULE_KEYS`) have no effect there and are left out;
``pruning.posttraining`` may fix :data:`POSTTRAINING_OPTIONS`. The calibration mode is always
written into the config (:data:`POSTTRAINING_DEFAULTS`: ``layers_per_pass="block"``, the authors'
drivers and the library's default), so every trial's logged params say which mode ran.

Example:
    >>> cfg = posttraining_config({"pattern": "2:4", "criterion": "wanda", "target_sparsity": 0.3}, {}, {})
    >>> cfg["pruning_type"], cfg["target_sparsity"], cfg["posttraining"]
    ('pattern_lock', 0.5, {'method': 'wanda', 'layers_per_pass': 'block'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench import pruner  # a lazy namespace: process_config loads the pruner when a config is built
from workbench.pruner.errors import ConfigError
from workbench.pruner.posttraining.options import LAYERS_PER_PASS
from workbench.trial.space import POSTTRAINING_INACTIVE, check_posttraining_pattern, effective_params

__all__ = [
    "POSTTRAINING_DEFAULTS",
    "POSTTRAINING_KEY",
    "POSTTRAINING_OPTIONS",
    "SCHEDULE_KEYS",
    "check_posttraining_options",
    "posttraining_config",
    "posttraining_params",
]

POSTTRAINING_KEY = "posttraining"
"""The config key that makes a trial post-training: ``{method: wanda|sparsegpt, **options}``."""
POSTTRAINING_OPTIONS = ("layers_per_pass", "owl", "owl_m", "owl_lambda", "owl_groups", "owl_clamp", "blocksize", "damp")
"""Options of :func:`~workbench.pruner.prune_posttraining` an experiment may fix under ``pruning.posttraining``."""
POSTTRAINING_DEFAULTS = {"layers_per_pass": LAYERS_PER_PASS[0]}
"""Options every post-training config carries (the library's defaults) unless ``pruning.posttraining`` sets them."""
SCHEDULE_KEYS = (
    "start_step",
    "end_step",
    "pruning_frequency",
    "scheduler",
    "sparsity_decay_type",
    "pruning_scope",
    "pruner_type",
    "criterion_type",
    "progressive_steps",
    "progressive_type",
    "progressive_interval",
)
"""INC keys of a schedule: they have no effect on a post-training trial and are left out of its config."""


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def posttraining_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """A post-training config's options as logged params, ``posttraining.<key>`` (``{}`` for other configs).

    Example:
        >>> posttraining_params({"posttraining": {"method": "wanda", "layers_per_pass": "block"}})
        {'posttraining.layers_per_pass': 'block'}
    """
    options = config.get(POSTTRAINING_KEY)
    if not isinstance(options, Mapping):
        return {}
    return {f"{POSTTRAINING_KEY}.{k}": v for k, v in options.items() if k != "method"}


def check_posttraining_options(options: Any) -> None:
    """Raise :class:`ConfigError` naming ``pruning.posttraining.<key>`` for an unknown option or a bad value.

    The values are judged by the library (:func:`workbench.pruner.posttraining.check_posttraining_options`),
    the one owner of what ``prune_posttraining`` accepts; pattern-dependent refusals (``owl`` with
    N:M) are checked per pattern by :func:`workbench.experiment.dims.check_posttraining_space`.
    """
    where = f"pruning.{POSTTRAINING_KEY}"
    if not isinstance(options, Mapping) or any(k not in POSTTRAINING_OPTIONS for k in options):
        raise _fail(where, f"{options!r} is not allowed; allowed: a mapping of {', '.join(POSTTRAINING_OPTIONS)}")
    try:
        pruner.check_posttraining_options("wanda", 0.5, "1x1", **options)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def posttraining_config(params: Mapping[str, Any], fixed: dict[str, Any], options: Any) -> dict[str, Any]:
    """The config of a post-training trial: a pattern_lock pruner plus ``posttraining: {method, ...}``.

    Args:
        params: ``pattern``, ``criterion`` (a post-training method), ``target_sparsity``; schedule
            knobs are ignored.
        fixed: The experiment's ``pruning:`` section without ``posttraining`` (schedule keys dropped).
        options: ``pruning.posttraining``: a mapping of :data:`POSTTRAINING_OPTIONS`.

    Raises:
        ValueError: A missing or bad value, a pattern the method cannot take, an unknown option,
            or ``fixed`` contradicting the search dimensions; the message names the key.
    """
    criterion = params["criterion"]
    for key in ("pattern", "target_sparsity"):
        if key not in params:
            raise _fail(key, f"missing; a post-training trial ({criterion}) needs pattern and target_sparsity")
    point = {k: v for k, v in params.items() if k not in POSTTRAINING_INACTIVE}
    check_posttraining_pattern(criterion, point["pattern"])
    value = point["target_sparsity"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise _fail("target_sparsity", f"{value!r} is out of range; allowed: 0 <= target_sparsity < 1")
    point = effective_params(dict(point, target_sparsity=float(value)))
    check_posttraining_options(options)
    owned = {"pattern": point["pattern"], "target_sparsity": point["target_sparsity"], "pruning_type": "pattern_lock"}
    for key, value in owned.items():
        if key in fixed and fixed[key] != value:
            raise _fail(
                f"pruning.{key}",
                f"{fixed[key]!r} contradicts the search dimensions, which set {value!r}; set {key} in one place only",
            )
    entries = fixed.pop("pruning_configs", None) or [{}]
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise _fail("pruning_configs", f"expected a list of dicts (one per pruner), got {entries!r}")
    config: dict[str, Any] = {
        "pruning_configs": [{k: v for k, v in e.items() if k not in SCHEDULE_KEYS} for e in entries],
        **{k: v for k, v in fixed.items() if k not in SCHEDULE_KEYS},
        **owned,
    }
    pruner.process_config(config)  # the lock the fine-tuning keeps (and the op_names it covers)
    config[POSTTRAINING_KEY] = {"method": criterion, **POSTTRAINING_DEFAULTS, **dict(options)}
    return config
