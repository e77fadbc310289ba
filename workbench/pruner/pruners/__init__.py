"""Pruners: the objects that run the pruning process for one pruner config.

``PRUNERS`` maps a pruner name ("basic", "progressive", "pattern_lock") to its class. Each class
states how its ``pruning_type`` strings are formed (``pruning_type_form``: ``"{criterion}"``,
``"{criterion}_progressive"``, or a fixed name such as ``"pattern_lock"``), so
:func:`parse_valid_pruner_types` and :func:`parse_pruning_type` derive every accepted
``pruning_type`` from the pruner and criterion registries. A new pruner is one module with a
:class:`BasePruner` subclass decorated by ``@register_pruner("name")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config_types import PrunerConfig
from ..criteria import CRITERIA
from ..errors import ConfigError
from ..registry import Registry, did_you_mean
from .base import BasePruner

PRUNERS: Registry[type[BasePruner]] = Registry("pruner_type")


def register_pruner(name: str):
    """Class decorator registering a pruner class (a :class:`BasePruner` subclass) as ``name``."""
    return PRUNERS.register(name)


def _pruning_types() -> dict[str, tuple[str, str | None]]:
    """``{pruning_type: (pruner_type, criterion_type)}`` in INC's order: for each criterion, every
    pruner whose form takes one; then the pruners with a fixed name."""
    out: dict[str, tuple[str, str | None]] = {}
    takes_criterion = [(n, c.pruning_type_form) for n, c in PRUNERS.items() if c.needs_criterion()]
    for criterion, criterion_cls in CRITERIA.items():
        allowed = getattr(criterion_cls, "pruner_types", None)  # None: every pruner that takes a criterion
        for name, form in takes_criterion:
            if allowed is None or name in allowed:
                out.setdefault(form.format(criterion=criterion), (name, criterion))
    for name, cls in PRUNERS.items():
        if not cls.needs_criterion():
            out.setdefault(cls.pruning_type_form, (name, None))
    return out


def parse_valid_pruner_types() -> list[str]:
    """Every accepted ``pruning_type``: each registered criterion in every form a registered
    pruner builds from it, then the fixed names. A newly registered criterion or pruner is valid at once.

    Example:
        >>> parse_valid_pruner_types()[:2], parse_valid_pruner_types()[-3:]
        (['magnitude', 'magnitude_progressive'], ['pattern_lock', 'block_mask', 'retrain_free'])
    """
    return list(_pruning_types())


def parse_pruning_type(pruning_type: Any) -> tuple[str, str | None]:
    """``pruning_type`` -> ``(pruner_type, criterion_type)``; :class:`~workbench.pruner.ConfigError` if unknown.

    Example:
        >>> parse_pruning_type("snip_progressive"), parse_pruning_type("pattern_lock")
        (('progressive', 'snip'), ('pattern_lock', None))
    """
    known = _pruning_types()
    if not isinstance(pruning_type, str) or pruning_type not in known:
        raise ConfigError(
            f"pruning_type: {pruning_type!r} is not known; allowed: {list(known)}{did_you_mean(pruning_type, known)}"
        )
    return known[pruning_type]


def format_pruning_type(pruner_type: str, criterion_type: str | None = None) -> str:
    """The ``pruning_type`` naming ``pruner_type`` with ``criterion_type``: the inverse of
    :func:`parse_pruning_type`.

    Example:
        >>> format_pruning_type("progressive", "snip"), format_pruning_type("pattern_lock")
        ('snip_progressive', 'pattern_lock')
    """
    cls = PRUNERS.lookup(pruner_type)
    if not cls.needs_criterion():
        return cls.pruning_type_form
    CRITERIA.lookup(criterion_type)
    return cls.pruning_type_form.format(criterion=criterion_type)


def get_pruner(config: PrunerConfig | Mapping[str, Any], modules: dict) -> BasePruner:
    """Build the pruner a config asks for over ``modules`` (``{name: module}``).

    Example:
        >>> import torch
        >>> from workbench.pruner import resolve_config, WeightPruningConfig
        >>> cfg = resolve_config(WeightPruningConfig(pruning_type="magnitude"))[0]
        >>> type(get_pruner(cfg, {"fc": torch.nn.Linear(8, 8)})).__name__
        'BasicPruner'
    """
    config = PrunerConfig.from_mapping(config)
    if config.pruner_type is None:
        pruner_type, criterion = parse_pruning_type(config.pruning_type)
        config = config.replace(pruner_type=pruner_type, criterion_type=criterion)
    return PRUNERS.lookup(config.pruner_type)(config, modules)


from . import basic, progressive, pattern_lock, block_mask, retrain_free  # noqa: E402,F401,I001  (registers the built-in pruners, INC's order)

__all__ = [
    "PRUNERS",
    "BasePruner",
    "format_pruning_type",
    "get_pruner",
    "parse_pruning_type",
    "parse_valid_pruner_types",
    "register_pruner",
]
