"""Pruning patterns: a registry of pattern families, one file each.

``PATTERNS`` maps a family name ("NxM", "N:M") to its class; :func:`get_pattern` parses the
config's ``pattern`` string and builds the matching family. A new family is one file that
decorates its class with ``@register_pattern("family")`` and is imported below.
"""
from __future__ import annotations

from ..registry import Registry
from .spec import PatternSpec, parse_pattern

PATTERNS = Registry("pattern")


def register_pattern(name: str):
    """Class decorator registering a pattern family under ``name`` (e.g. ``"NxM"``)."""
    return PATTERNS.register(name)


def get_pattern(config: dict, modules: dict):
    """Build the pattern object for a resolved config and its candidate layers.

    Example:
        >>> import torch
        >>> get_pattern({"pattern": "2:4"}, {"fc": torch.nn.Linear(8, 4)}).pattern
        '2:4'
    """
    spec = parse_pattern(config["pattern"])
    return PATTERNS.lookup(spec.kind)(config, modules)


from . import nm, nxm  # noqa: E402,F401  (registers the built-in families)

__all__ = ["PATTERNS", "PatternSpec", "get_pattern", "parse_pattern", "register_pattern"]
