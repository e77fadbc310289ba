"""OWL (Yin et al. 2024): outlier-weighted layer-wise sparsity.

A group's outlier ratio is the fraction of its Wanda scores above ``M`` times the group's mean
score (``M = 5``). Groups with more outliers are pruned less. Two choices, both named options of
:func:`~workbench.pruner.prune_posttraining`:

* ``owl_groups``: ``"block"`` (default, the authors' code): one ratio per decoder block, over the
  scores of all its sublayers together, and every sublayer of the block gets the block's sparsity;
  ``"layer"``: one ratio and one sparsity per Linear/Conv1D (an extension of ours).
* ``owl_clamp``: ``False`` (default, the authors' code): ratios are min-max normalised to
  ``[0, 2*lambda]``, their mean is subtracted and the result is subtracted from the target, with no
  clamp (a group may move by up to ``2*lambda*(1 - 1/L)``); ``True`` (the paper's text, "within
  ``target ± lambda``"): the deviations are shrunk back inside ``±lambda`` when centring pushed one
  out.

The mean that is subtracted is weighted by each group's number of weights, so the overall zero
fraction of the targets is the target (with equal groups, as the blocks of a decoder are, it is
the plain mean of the authors' code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..errors import ConfigError
from .options import OWL_GROUPS

__all__ = ["OWL_GROUPS", "outlier_ratio", "owl_sparsities"]


def outlier_ratio(scores: torch.Tensor | Sequence[torch.Tensor], m: float = 5.0) -> float:
    """Fraction of ``scores`` above ``m`` times their mean; a sequence of tensors counts as one group.

    Example:
        >>> outlier_ratio(torch.tensor([1.0, 1.0, 1.0, 100.0]), m=2.0)
        0.25
        >>> outlier_ratio([torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 100.0]])], m=2.0)
        0.25
    """
    parts = [scores] if isinstance(scores, torch.Tensor) else list(scores)
    count = sum(p.numel() for p in parts)
    if count == 0:
        return 0.0
    threshold = m * sum(float(p.double().sum()) for p in parts) / count
    return sum(int((p.double() > threshold).sum()) for p in parts) / count


def owl_sparsities(
    ratios: Mapping[str, float],
    target: float,
    lam: float = 0.08,
    *,
    sizes: Mapping[str, int] | None = None,
    clamp: bool = False,
) -> dict[str, float]:
    """Per-group sparsity from outlier ratios; the ``sizes``-weighted mean is ``target``.

    ``sizes`` (weights per group; default: all equal) weight the mean. Without ``clamp`` (the
    authors' code) a sparsity may leave ``target ± lam``; with it each lies in ``target ± lam``.

    Raises:
        ConfigError: ``lam`` out of ``[0, 1)``, or a sparsity out of ``[0, 1)``.

    Example:
        >>> s = owl_sparsities({"a": 0.01, "b": 0.03, "c": 0.02}, 0.5, 0.1)
        >>> [round(s[k], 3) for k in "abc"]
        [0.6, 0.4, 0.5]
        >>> s = owl_sparsities({"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0}, 0.5, 0.08)
        >>> [round(s[k], 3) for k in "abcd"]
        [0.54, 0.54, 0.54, 0.38]
    """
    if not 0 <= lam < 1:
        raise ConfigError(f"owl_lambda: {lam!r} is out of range; allowed: 0 <= owl_lambda < 1")
    if clamp and (not 0 <= target - lam or not target + lam < 1):
        raise ConfigError(
            f"owl_lambda: {lam!r} with sparsity {target!r} leaves [0, 1); allowed: lambda <= min(sparsity, 1 - sparsity)"
        )
    names = list(ratios)
    r = torch.tensor([ratios[n] for n in names], dtype=torch.float64)
    w = torch.tensor([1 if sizes is None else sizes[n] for n in names], dtype=torch.float64)
    spread = float(r.max() - r.min()) if len(names) else 0.0
    if spread == 0.0:
        return {n: float(target) for n in names}
    a = (r - r.min()) / spread * 2 * lam  # in [0, 2*lambda]: most outliers -> 2*lambda
    a = a - (a * w).sum() / w.sum()
    peak = float(a.abs().max())
    if clamp and peak > lam:
        a = a * (lam / peak)
    out = {n: float(target - v) for n, v in zip(names, a.tolist(), strict=True)}
    bad = {n: round(s, 4) for n, s in out.items() if not 0 <= s < 1}
    if bad:
        raise ConfigError(
            f"owl_lambda: {lam!r} with sparsity {target!r} gives sparsities out of [0, 1) ({bad}); "
            "allowed: a smaller owl_lambda, or owl_clamp=True with lambda <= min(sparsity, 1 - sparsity)"
        )
    return out
