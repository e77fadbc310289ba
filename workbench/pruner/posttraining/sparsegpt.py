"""SparseGPT (Frantar & Alistarh 2023): prune a layer and update its kept weights to reconstruct ``W X``.

Written from the paper's Algorithm 1. With ``H = 2 X X^T`` (fp32, dampened by
``damp * mean(diag H)`` on the diagonal) and ``U`` the upper Cholesky factor of ``H^-1``,
columns are processed left to right in lazy blocks of ``blocksize``:

* mask selection per block: a weight's saliency is ``w^2 / U_jj^2`` (the OBS error of pruning
  it given the columns still open). Unstructured: the lowest-saliency fraction of the whole
  ``[out, blocksize]`` block (adaptive: rows may differ), with per-block counts chosen so the
  layer's total is exactly ``round(sparsity * out * in)``. N:M: the N lowest of each group of M
  columns of every row, chosen when the sweep reaches the group. NxM blocks (block width dividing
  ``blocksize``): blocks ranked by the sum of their saliencies within each lazy block;
* column ``j``: the pruned weights' error ``e = w_j * pruned / U_jj`` is spread onto the columns
  to its right, ``W[:, j:] -= e U[j, j:]`` (OBS update), lazily for the columns beyond the block.

Pruned weights are then set to exactly zero. Inputs that never fire (``H_jj = 0``) have their
weights zeroed first, as in the paper.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .masks import Shape, count_schedule, nm_mask, row_mask

__all__ = ["SparseGPTResult", "dampened_inverse_factor", "reconstruction_error", "sparsegpt_prune"]


class SparseGPTResult(NamedTuple):
    """What :func:`sparsegpt_prune` returns (unpacks as ``new_weight, pruned``)."""

    weight: torch.Tensor
    """The updated ``[out, in]`` weight, fp32, pruned weights exactly zero."""
    pruned: torch.Tensor
    """Bool ``[out, in]``, ``True`` where pruned (``~pruned`` is the kept mask)."""


def dampened_inverse_factor(hessian: torch.Tensor, damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, dead)``: the upper Cholesky factor of ``(H + damp * mean(diag H) I)^-1`` and the dead inputs."""
    h = hessian.float().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    diag = torch.arange(h.shape[0], device=h.device)
    h[diag, diag] += damp * torch.mean(torch.diag(h))
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(inverse, upper=True), dead


def reconstruction_error(before: torch.Tensor, after: torch.Tensor, hessian: torch.Tensor) -> float:
    """``||W X - W' X||^2`` per calibration token, from ``H = 2 X X^T / tokens``: ``tr(D H D^T) / 2``."""
    d = before.float().to(hessian.device) - after.float().to(hessian.device)
    return float(((d @ hessian) * d).sum() / 2)


def _select(scores: torch.Tensor, shape: Shape, count: int, rows: int) -> torch.Tensor:
    """Mask of ``count`` lowest-saliency units of one lazy block (unstructured or NxM)."""
    if shape.kind == "block":
        bn, bm = shape.block(rows, scores.shape[1])
        r, c = rows // bn, scores.shape[1] // bm
        sums = scores.reshape(r, bn, c, bm).sum(dim=(1, 3)).reshape(1, r * c)
        pruned = row_mask(sums, count / (r * c)).reshape(r, c)
        return pruned.view(r, 1, c, 1).expand(r, bn, c, bm).reshape(scores.shape)
    flat = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if count:
        flat[torch.topk(scores.reshape(-1), count, largest=False).indices] = True
    return flat.reshape(scores.shape)


def sparsegpt_prune(
    weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, shape: Shape, blocksize: int = 128, damp: float = 0.01
) -> SparseGPTResult:
    """``(weight, pruned)`` for an ``[out, in]`` weight: the updated weight (fp32, on the Hessian's
    device) and a bool tensor, ``True`` where pruned (see :class:`SparseGPTResult`).

    For N:M the sparsity is N/M and ``sparsity`` is not used.
    """
    w = weight.float().to(hessian.device).clone()
    rows, cols = w.shape
    u, dead = dampened_inverse_factor(hessian, damp)
    w[:, dead] = 0
    mask = torch.zeros_like(w, dtype=torch.bool)
    bn, bm = shape.block(rows, cols) if shape.kind == "block" else (1, shape.m if shape.kind == "nm" else 1)
    blocksize = max(bm, blocksize // bm * bm)  # a lazy block holds whole N:M groups / NxM blocks
    units = [(rows // bn) * (min(blocksize, cols - i) // bm) for i in range(0, cols, blocksize)]
    counts = count_schedule(units, sparsity)
    for b, start in enumerate(range(0, cols, blocksize)):
        end = min(start + blocksize, cols)
        block, ub = w[:, start:end].clone(), u[start:end, start:end]
        diag = torch.diag(ub)
        errors = torch.zeros_like(block)
        if shape.kind != "nm":
            mask[:, start:end] = _select(block**2 / diag**2, shape, counts[b], rows)
        for j in range(end - start):
            if shape.kind == "nm" and j % shape.m == 0:
                group = block[:, j : j + shape.m] ** 2 / diag[j : j + shape.m] ** 2
                mask[:, start + j : start + j + shape.m] = nm_mask(group, shape.n, shape.m)
            col = block[:, j]
            err = torch.where(mask[:, start + j], col, torch.zeros_like(col)) / diag[j]
            block[:, j:] -= err.unsqueeze(1) * ub[j, j:].unsqueeze(0)
            errors[:, j] = err
        w[:, start:end] = block
        w[:, end:] -= errors @ u[start:end, end:]
    w[mask] = 0
    return SparseGPTResult(w, mask)
