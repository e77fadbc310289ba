"""One-shot post-training pruning: Wanda and SparseGPT from calibration batches, with OWL layer sparsity.

Unlike the training-aware pruners (``workbench.pruner.pruners``), these prune a trained model
once, layer by layer, from a few hundred calibration samples and no gradients.
:func:`prune_posttraining` is the entry point: it captures each target layer's inputs with forward
hooks (one numbered block's layers per pass by default, as the authors' drivers do), prunes with ``wanda`` (``|W| * ||X||_2``
within output rows) or ``sparsegpt`` (second-order reconstruction with weight updates) and returns
a :class:`PosttrainingReport`. ``docs/posttraining.md`` says what each method computes.
"""

from __future__ import annotations

from workbench._lazy import lazy_exports

__all__ = [
    "LAYERS_PER_PASS",
    "METHODS",
    "OWL_GROUPS",
    "Hessian",
    "LayerReport",
    "PosttrainingReport",
    "Shape",
    "SparseGPTResult",
    "SumSquares",
    "bound_batches",
    "check_posttraining_options",
    "find_targets",
    "outlier_ratio",
    "owl_sparsities",
    "parse_shape",
    "prune_posttraining",
    "reconstruction_error",
    "sparsegpt_prune",
    "wanda_mask",
    "wanda_pruned",
    "wanda_scores",
]


def _load() -> dict:
    """The package's modules, imported on first use of an exported name (workbench._lazy)."""
    from .api import check_posttraining_options, prune_posttraining
    from .calibration import Hessian, SumSquares, bound_batches
    from .masks import Shape, parse_shape
    from .options import LAYERS_PER_PASS, METHODS, OWL_GROUPS
    from .owl import outlier_ratio, owl_sparsities
    from .report import LayerReport, PosttrainingReport
    from .sparsegpt import SparseGPTResult, reconstruction_error, sparsegpt_prune
    from .targets import find_targets
    from .wanda import wanda_mask, wanda_pruned, wanda_scores

    return locals()


__getattr__, __dir__ = lazy_exports(__name__, _load)
