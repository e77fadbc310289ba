"""The typed form of one resolved pruner config, and the keys and defaults it is made of.

:class:`PrunerConfig` is a frozen dataclass with one field per config key (INC 3.7.1's keys,
``scheduler``, and the keys derived during resolution). Resolution
(:func:`workbench.pruner.resolve_config`) builds one per pruner after validation; patterns,
criteria, schedulers, pruners and regularisers read its attributes, so every default is written
once, here. :data:`DEFAULT_CONFIG` and friends are derived from the fields.

Example:
    >>> cfg = PrunerConfig.from_mapping({"pattern": "2:4", "target_sparsity": 0.5})
    >>> cfg.pattern, cfg.pruning_scope, cfg.scheduler
    ('2:4', 'global', 'oneshot')
    >>> cfg.as_dict()["target_sparsity"]
    0.5
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .registry import unknown_key_message

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_GLOBAL_CONFIG",
    "DEFAULT_LOCAL_CONFIG",
    "DERIVED_KEYS",
    "GLOBAL_KEYS",
    "PrunerConfig",
    "VALID_KEYS",
    "default_scheduler",
]

#: The keyword arguments of ``WeightPruningConfig`` (INC's global keys), in INC's order.
GLOBAL_KEYS: tuple[str, ...] = (
    "target_sparsity",
    "pruning_type",
    "pattern",
    "op_names",
    "excluded_op_names",
    "start_step",
    "end_step",
    "pruning_scope",
    "pruning_frequency",
    "min_sparsity_ratio_per_op",
    "max_sparsity_ratio_per_op",
    "sparsity_decay_type",
    "pruning_op_types",
    "low_memory_usage",
)
#: Keys computed during resolution; accepted as input so a resolved dict can be fed back.
DERIVED_KEYS: tuple[str, ...] = ("reg_coeff", "criterion_type", "pruner_type")


def default_scheduler(start_step: int, end_step: int) -> str:
    """INC's rule when ``scheduler`` is not given: one pruning step is "oneshot", more "iterative".

    Example:
        >>> default_scheduler(0, 0), default_scheduler(0, 10)
        ('oneshot', 'iterative')
    """
    return "oneshot" if start_step == end_step else "iterative"


@dataclass(frozen=True)
class PrunerConfig:
    """One pruner's resolved config: every key, typed. Read-only; ``cfg["key"]`` also works.

    Lists and the ``parameters`` dict are copies owned by the config; :meth:`as_dict` gives a
    plain, YAML-safe dict (what :func:`workbench.pruner.process_config` returns).
    """

    target_sparsity: float = 0.9
    pruning_type: str = "snip_momentum"
    pattern: str = "4x1"
    op_names: list[str] = field(default_factory=list)
    excluded_op_names: list[str] = field(default_factory=list)
    start_step: int = 0
    end_step: int = 0
    pruning_scope: str = "global"
    pruning_frequency: int = 1
    min_sparsity_ratio_per_op: float = 0.0
    max_sparsity_ratio_per_op: float = 0.98
    sparsity_decay_type: str = "exp"
    pruning_op_types: list[str] = field(default_factory=lambda: ["Conv", "Linear"])
    low_memory_usage: bool = False
    criterion_reduce_type: str = "mean"
    reg_type: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"reg_coeff": 0.0})
    resume_from_pruned_checkpoint: bool = False
    lock_init_sparsity: bool = False
    progressive_steps: int = 4
    progressive_type: str = "scores"
    progressive_interval: int = 1
    use_global: bool = True
    #: A registered scheduler; ``None`` means :func:`default_scheduler` (resolved to a name).
    scheduler: str | None = None
    reg_coeff: float = 0.0
    criterion_type: str | None = None
    pruner_type: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | PrunerConfig) -> PrunerConfig:
        """A config from a (possibly partial) dict, missing or ``None`` keys taking their defaults.

        Does not validate (resolution does); used where a hand-written dict reaches a builder
        such as :func:`workbench.pruner.get_pattern`. ``reg_coeff`` falls back to
        ``parameters["reg_coeff"]``; ``scheduler`` to :func:`default_scheduler`.
        """
        if isinstance(data, PrunerConfig):
            return data
        unknown = [k for k in data if k not in VALID_KEYS]
        if unknown:
            raise ConfigError(unknown_key_message(unknown[0], VALID_KEYS))
        values = {k: copy.deepcopy(v) for k, v in data.items() if v is not None}
        params = values.get("parameters")
        if "reg_coeff" not in values and isinstance(params, Mapping) and params.get("reg_coeff") is not None:
            values["reg_coeff"] = params["reg_coeff"]
        cfg = cls(**values)
        if cfg.scheduler is None:
            cfg = dataclasses.replace(cfg, scheduler=default_scheduler(cfg.start_step, cfg.end_step))
        return cfg

    def as_dict(self) -> dict[str, Any]:
        """A deep-copied plain dict of every key (YAML-safe)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> PrunerConfig:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_NAMES)

    def __len__(self) -> int:
        return len(_FIELD_NAMES)

    def keys(self) -> tuple[str, ...]:
        """Every key, in field order (so ``dict(cfg)`` works)."""
        return _FIELD_NAMES


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PrunerConfig))
_DEFAULTS = PrunerConfig()

#: ``WeightPruningConfig``'s keyword defaults (INC's global keys).
DEFAULT_GLOBAL_CONFIG: dict[str, Any] = {k: _DEFAULTS[k] for k in GLOBAL_KEYS}
#: Further keys, accepted globally (as keyword) and per pruner.
DEFAULT_LOCAL_CONFIG: dict[str, Any] = {
    k: _DEFAULTS[k] for k in _FIELD_NAMES if k not in GLOBAL_KEYS and k not in DERIVED_KEYS
}
DEFAULT_CONFIG: dict[str, Any] = {**DEFAULT_GLOBAL_CONFIG, **DEFAULT_LOCAL_CONFIG}
VALID_KEYS: tuple[str, ...] = (*DEFAULT_CONFIG, *DERIVED_KEYS)
