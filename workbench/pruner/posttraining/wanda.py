"""Wanda (Sun et al. 2023): prune by ``|W_ij| * ||X_j||_2``, compared within each output row.

``X_j`` is input feature ``j`` over all calibration tokens, so a weight matters as much as its
magnitude times how strongly its input fires. No weight is updated; only a mask is chosen:

* unstructured (``"1x1"``): every output row loses the same number, ``round(sparsity * in)``, of
  its lowest-scoring weights (the paper's per-output comparison group);
* N:M (``"2:4"``): the N lowest of every M consecutive input weights of each row;
* NxM blocks (``"4x1"``, ``"1x4"``, ``"channelx1"``, ...): a block's score is the SUM of its
  elements' scores; each block row (``N`` output rows) prunes the same number of blocks, or,
  when a block spans all the inputs (``"Nxchannel"``), blocks compete across the layer.
"""

from __future__ import annotations

import warnings

import torch

from .masks import Shape, block_mask, nm_mask, row_mask

__all__ = ["wanda_mask", "wanda_pruned", "wanda_scores"]


def wanda_scores(weight: torch.Tensor, input_norms: torch.Tensor) -> torch.Tensor:
    """``S_ij = |W_ij| * ||X_j||_2`` for an ``[out, in]`` weight, in fp32.

    Example:
        >>> wanda_scores(torch.tensor([[1.0, -2.0]]), torch.tensor([3.0, 0.5]))
        tensor([[3., 1.]])
    """
    return weight.float().abs() * input_norms.float().to(weight.device).unsqueeze(0)


def wanda_pruned(weight: torch.Tensor, input_norms: torch.Tensor, sparsity: float, shape: Shape) -> torch.Tensor:
    """The weights Wanda prunes at ``sparsity`` for ``shape``: a bool ``[out, in]`` tensor,
    ``True`` where pruned (``~`` of it is the kept mask, the convention of ``BasePruner.masks``).

    For N:M the sparsity is N/M and ``sparsity`` is not used.
    """
    scores = wanda_scores(weight, input_norms)
    if shape.kind == "nm":
        return nm_mask(scores, shape.n, shape.m)
    if shape.kind == "block":
        return block_mask(scores, *shape.block(*scores.shape), sparsity)
    return row_mask(scores, sparsity)


def wanda_mask(weight: torch.Tensor, input_norms: torch.Tensor, sparsity: float, shape: Shape) -> torch.Tensor:
    """Deprecated since 0.1.0, removed in 0.2.0: use :func:`wanda_pruned` (the same tensor,
    ``True`` = pruned; a "mask" is ``True`` = kept everywhere else in the public API)."""
    warnings.warn(
        "wanda_mask is deprecated since 0.1.0 and will be removed in 0.2.0; use wanda_pruned "
        "(the same tensor: True = pruned)",
        FutureWarning,
        stacklevel=2,
    )
    return wanda_pruned(weight, input_norms, sparsity, shape)
