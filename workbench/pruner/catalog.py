"""What is registered, for the layers above: schemas, search spaces and tracked params.

Each function reads one registry at call time, so a registration made by a plug-in module
(imported before the call) is listed. Names are in registration order.

Example:
    >>> list_criteria()
    ['magnitude', 'gradient', 'snip', 'snip_momentum', 'snip_momentum_block']
    >>> list_pruner_types(), list_schedulers()
    (['basic', 'progressive', 'pattern_lock', 'block_mask', 'retrain_free'], ['oneshot', 'iterative'])
"""

from __future__ import annotations

from .criteria import CRITERIA
from .patterns import PATTERNS, pattern_examples
from .pruners import PRUNERS, parse_valid_pruner_types
from .regs import REGS
from .schedulers import DECAYS, SCHEDULERS

__all__ = [
    "list_criteria",
    "list_decays",
    "list_pattern_families",
    "list_pattern_examples",
    "list_pruner_types",
    "list_pruning_types",
    "list_regs",
    "list_schedulers",
]


def list_pattern_families() -> list[str]:
    """Registered pattern family names, e.g. ``['NxM', 'N:M']``."""
    return list(PATTERNS)


def list_pattern_examples() -> dict[str, tuple[str, ...]]:
    """``{family: a few valid pattern strings}``; any string a family parses is valid.

    Example:
        >>> list_pattern_examples()["NxM"][:2]
        ('4x1', '1x1')
    """
    return pattern_examples()


def list_criteria() -> list[str]:
    """Registered criteria (``criterion_type``)."""
    return list(CRITERIA)


def list_schedulers() -> list[str]:
    """Registered schedulers (the config key ``scheduler``)."""
    return list(SCHEDULERS)


def list_decays() -> list[str]:
    """Registered decay curves (``sparsity_decay_type``).

    Example:
        >>> list_decays()
        ['linear', 'cos', 'cube', 'exp']
    """
    return list(DECAYS)


def list_pruner_types() -> list[str]:
    """Registered pruners (``pruner_type``)."""
    return list(PRUNERS)


def list_pruning_types() -> list[str]:
    """Every accepted ``pruning_type`` string (pruner forms times criteria, then fixed names)."""
    return parse_valid_pruner_types()


def list_regs() -> list[str]:
    """Registered regularisers (``reg_type``; ``None``, no regulariser, is also allowed).

    Example:
        >>> list_regs()
        ['group_lasso']
    """
    return list(REGS)
