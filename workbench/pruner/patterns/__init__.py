"""Pruning patterns: a registry of pattern families, one file each.

``PATTERNS`` maps a family name ("NxM", "N:M") to its class. Each family parses its own pattern
strings (``cls.parse(text)`` returns its spec or ``None``) and describes its accepted forms
(``cls.forms``, ``cls.examples``); :func:`parse_pattern` asks the families in registration
order. A new family is one module that subclasses :class:`BasePattern` and decorates it with
``@register_pattern("family")``; nothing else is edited.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..config_types import PrunerConfig
from ..errors import ConfigError
from ..registry import Registry
from .base import BasePattern
from .spec import BLOCKS, CHANNELS, PatternSpec

PATTERNS: Registry[type[BasePattern]] = Registry("pattern")


def register_pattern(name: str):
    """Class decorator registering a pattern family (a :class:`BasePattern` subclass) as ``name``."""
    return PATTERNS.register(name)


def parse_pattern(text: Any) -> PatternSpec:
    """Parse a pattern string with the first registered family that accepts it.

    Raises :class:`~workbench.pruner.ConfigError` naming the value and every family's forms.

    Example:
        >>> parse_pattern("4x1").family, parse_pattern("2:4").max_sparsity
        ('NxM', 0.5)
    """
    if isinstance(text, str):
        for name, family in PATTERNS.items():
            spec = family.parse(text)
            if spec is not None:
                return dataclasses.replace(spec, family=name)
    forms = " and ".join(family.forms for family in PATTERNS.values())
    raise ConfigError(f"pattern: {text!r} is not a known pattern; allowed forms are {forms}")


def pattern_examples() -> dict[str, tuple[str, ...]]:
    """``{family: example pattern strings}`` of every registered family.

    Example:
        >>> pattern_examples()["N:M"]
        ('2:4', '1:4', '5:8')
    """
    return {name: tuple(family.examples) for name, family in PATTERNS.items()}


def get_pattern(config: PrunerConfig | Mapping[str, Any], modules: dict) -> BasePattern:
    """Build the pattern object for a config (a partial dict takes the defaults) and its layers.

    Example:
        >>> import torch
        >>> get_pattern({"pattern": "2:4"}, {"fc": torch.nn.Linear(8, 4)}).pattern
        '2:4'
    """
    config = PrunerConfig.from_mapping(config)
    spec = parse_pattern(config.pattern)
    return PATTERNS.lookup(spec.family)(config, modules, spec)


from . import nxm, nm  # noqa: E402,F401,I001  (registers the built-in families, NxM first)

__all__ = [
    "BLOCKS",
    "CHANNELS",
    "PATTERNS",
    "BasePattern",
    "PatternSpec",
    "get_pattern",
    "parse_pattern",
    "pattern_examples",
    "register_pattern",
]
