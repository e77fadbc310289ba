"""OWL (Yin et al. 2024): outlier-weighted layer-wise sparsity.

A layer's outlier ratio is the fraction of its Wanda scores above ``M`` times the layer's mean
score (``M = 5``). Layers with more outliers are pruned less: ratios are min-max normalised to
``[-lambda, lambda]``, centred so their mean is zero (shrunk back inside ``±lambda`` if centring
pushed one out) and subtracted from the target, so each layer's sparsity lies in
``target ± lambda`` and their unweighted mean is the target, as in the paper. A layer here is one
Linear/Conv1D (the paper groups a transformer block's sublayers).
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

__all__ = ["outlier_ratio", "owl_sparsities"]


def outlier_ratio(scores: torch.Tensor, m: float = 5.0) -> float:
    """Fraction of ``scores`` above ``m`` times their mean.

    Example:
        >>> outlier_ratio(torch.tensor([1.0, 1.0, 1.0, 100.0]), m=2.0)
        0.25
    """
    scores = scores.float()
    return float((scores > m * scores.mean()).float().mean())


def owl_sparsities(ratios: dict[str, float], target: float, lam: float = 0.08) -> dict[str, float]:
    """Per-layer sparsity from outlier ratios: mean ``target``, each in ``target ± lam``.

    Example:
        >>> s = owl_sparsities({"a": 0.01, "b": 0.03, "c": 0.02}, 0.5, 0.1)
        >>> [round(s[k], 3) for k in "abc"]
        [0.6, 0.4, 0.5]
    """
    if not 0 <= lam < 1:
        raise ConfigError(f"owl_lambda: {lam!r} is out of range; allowed: 0 <= owl_lambda < 1")
    if not 0 <= target - lam or not target + lam < 1:
        raise ConfigError(
            f"owl_lambda: {lam!r} with sparsity {target!r} leaves [0, 1); allowed: lambda <= min(sparsity, 1 - sparsity)"
        )
    names = list(ratios)
    r = torch.tensor([ratios[n] for n in names], dtype=torch.float64)
    spread = float(r.max() - r.min()) if len(names) else 0.0
    if spread == 0.0:
        return {n: float(target) for n in names}
    a = (r - r.min()) / spread * 2 * lam - lam
    a = a - a.mean()
    peak = float(a.abs().max())
    if peak > lam:
        a = a * (lam / peak)
    return {n: float(target - v) for n, v in zip(names, a.tolist(), strict=True)}
