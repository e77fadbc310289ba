"""What one post-training pruning run did, per layer: plain data for logs, CSV and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["LayerReport", "PosttrainingReport"]


@dataclass
class LayerReport:
    """One pruned layer.

    Attributes:
        name: Module name.
        shape: Weight shape in Linear orientation ``(out, in)``.
        target: The sparsity asked of this layer (OWL makes it differ per layer).
        sparsity: The fraction of the layer's weights that are zero afterwards.
        outlier_ratio: OWL's outlier ratio of the layer's group (its block, or the layer with
            ``owl_groups="layer"``; ``None`` without OWL).
        error: SparseGPT's ``||W X - W' X||^2`` per calibration token after pruning (``None`` for Wanda).
    """

    name: str
    shape: tuple[int, int]
    target: float
    sparsity: float
    outlier_ratio: float | None = None
    error: float | None = None


@dataclass
class PosttrainingReport:
    """A post-training pruning run: method, pattern, calibration used, every layer's result and the layers skipped."""

    method: str
    pattern: str
    samples: int
    passes: int
    layers_per_pass: int | str | None = "block"
    """How layers were grouped into calibration passes (``"block"``, ``"true-sequential"``, an int or ``None``)."""
    onloaded: bool = False
    """Whether the model was onloaded one block at a time (``execution_device``)."""
    layers: list[LayerReport] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Target layers left dense, with the reason (e.g. never called during calibration)."""

    @property
    def sparsity(self) -> float:
        """Zeros over weights across all pruned layers."""
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        zeros = sum(r.sparsity * r.shape[0] * r.shape[1] for r in self.layers)
        return zeros / total if total else 0.0

    def to_dict(self) -> dict:
        """A plain dict (shapes as lists) with the overall sparsity."""
        d = asdict(self)
        d["sparsity"] = self.sparsity
        for layer in d["layers"]:
            layer["shape"] = list(layer["shape"])
        return d
