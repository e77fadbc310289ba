"""The names post-training pruning accepts, as plain data (no torch: experiment files are checked
against them before torch loads).

Example:
    >>> METHODS, LAYERS_PER_PASS[0], OWL_GROUPS[0]
    (('wanda', 'sparsegpt'), 'block', 'block')
"""

from __future__ import annotations

__all__ = ["LAYERS_PER_PASS", "METHODS", "OWL_GROUPS"]

METHODS = ("wanda", "sparsegpt")
"""The post-training methods :func:`~workbench.pruner.posttraining.prune_posttraining` knows."""
LAYERS_PER_PASS = ("block", "true-sequential")
"""The named values of ``layers_per_pass`` (besides an int >= 1 and ``None``); the first is the default."""
OWL_GROUPS = ("block", "layer")
"""Values of ``owl_groups``: one outlier ratio per numbered block (the authors' code) or per layer."""
