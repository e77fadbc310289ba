"""Which knob matters once the sparsity reached is accounted for: importances on residuals.

Raw importances of a pruning study say what everybody knows: the more you prune, the less
accuracy you keep, so ``target_sparsity`` wins, and a knob that does nothing (the decay of a
oneshot schedule) can rank above the criterion by chance. Here the sparsity's effect is removed
first: accuracy is fitted against the **reached** sparsity (least squares, a parabola with six or
more trials, else a line) and each knob is scored on the residual, the accuracy a trial kept
beyond what its sparsity predicts. A knob's score is the share of the residual's variance that
its values explain on their own (one-way ANOVA epsilon squared: eta squared corrected for the
variance groups explain by chance; a numeric knob with more than four values is grouped into quartiles), computed only over the trials where the knob has an effect
(the decay among iterative trials). ``target_sparsity`` is left out: its effect is what was removed.

Example:
    >>> rows = [{"pattern": p, "criterion": c, "sparsity": s, "accuracy": a}
    ...         for p, c, s, a in [("4x1", "snip", 0.5, 0.9), ("4x1", "magnitude", 0.8, 0.7),
    ...                            ("2:4", "snip", 0.5, 0.8), ("2:4", "magnitude", 0.8, 0.6)]]
    >>> scores = residual_importances(rows, ["pattern", "criterion"])
    >>> round(scores["explained"]["pattern"], 2), round(scores["explained"]["criterion"], 2)
    (1.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.benchmarks.direction import sign
from workbench.trial.space import is_active

__all__ = ["eta_squared", "residual_importances", "residuals"]

METHOD = "residual epsilon squared"
"""``method`` of :func:`residual_importances`' result."""


def residuals(sparsity: Sequence[float], accuracy: Sequence[float]) -> np.ndarray:
    """``accuracy`` minus its least-squares fit on ``sparsity`` (a parabola with >= 6 points at >= 3
    distinct sparsities, else a line)."""
    x, y = np.asarray(sparsity, dtype=float), np.asarray(accuracy, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return y - y.mean()
    degree = 2 if len(x) >= 6 and len(np.unique(x)) >= 3 else 1
    return y - np.polyval(np.polyfit(x, y, degree), x)


def eta_squared(groups: Sequence[Any], values: Sequence[float], *, bins: int = 4) -> float:
    """Share of ``values``' variance explained by ``groups``, corrected for chance (epsilon squared).

    ``(SS_between - (k - 1) * MS_within) / SS_total`` for ``k`` groups, floored at 0: plain eta
    squared grows with the number of groups even when they mean nothing (about ``(k - 1) / (n - 1)``
    on noise), which matters with the few trials a knob gets when it is active in some of them only.
    """
    y = np.asarray(values, dtype=float)
    keys = list(groups)
    numeric = all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys)
    if numeric and len(set(keys)) > bins:
        edges = np.quantile(np.asarray(keys, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
        keys = list(np.searchsorted(edges, np.asarray(keys, dtype=float), side="right"))
    labels = [str(k) for k in keys]
    k = len(set(labels))
    total = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    if len(y) <= k or total <= 0:
        return 0.0
    between = sum(
        len(m) * (m.mean() - y.mean()) ** 2 for m in (y[[lab == key for lab in labels]] for key in set(labels))
    )
    within = (total - between) / (len(y) - k)
    return float(max(0.0, (between - (k - 1) * within) / total))


def residual_importances(
    rows: Sequence[dict[str, Any]], knobs: Sequence[str], *, metric: str = "accuracy", direction: str = "maximize"
) -> dict[str, Any]:
    """Importances of ``knobs`` for ``metric`` with the reached sparsity's effect removed.

    ``rows`` hold each complete trial's knob values, ``sparsity`` (reached) and ``metric``. The
    residual is taken so that positive means better than the sparsity predicts (a minimised
    metric's is negated); the scores (shares of variance) do not depend on that sign.
    Returns ``{"method", "target", "n_complete_trials", "explained": {knob: epsilon squared},
    "importances": {knob: share, summing to 1}, "n_trials": {knob: trials it was scored on}}`` over the knobs that took more than one value
    where active, or ``{"skipped": reason}``.
    """
    valid = [r for r in rows if math.isfinite(r.get("sparsity", math.nan)) and math.isfinite(r[metric])]
    if len(valid) < 3:
        return {"skipped": f"needs at least 3 complete trials, have {len(valid)}"}
    res = residuals([r["sparsity"] for r in valid], [sign(direction) * r[metric] for r in valid])
    explained, counts = {}, {}
    for knob in knobs:
        if knob == "target_sparsity":
            continue
        idx = [i for i, r in enumerate(valid) if knob in r and is_active(knob, r)]
        if len({repr(valid[i][knob]) for i in idx}) > 1:
            explained[knob] = eta_squared([valid[i][knob] for i in idx], res[idx])
            counts[knob] = len(idx)
    if not explained:
        return {"skipped": "no knob other than the target took more than one value"}
    total = sum(explained.values())
    shares = {k: (v / total if total > 0 else 0.0) for k, v in explained.items()}
    return {
        "method": METHOD,
        "target": f"{metric} residual after a fit on reached sparsity",
        "n_complete_trials": len(valid),
        "explained": dict(sorted(explained.items(), key=lambda kv: -kv[1])),
        "importances": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
        "n_trials": counts,
    }
