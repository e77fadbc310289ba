"""Integrations of the pruner library with other training loops (optional extras, loaded on use).

* :mod:`workbench.integrations.transformers`: :class:`PruningCallback`, a
  ``transformers.TrainerCallback`` that makes an unchanged ``transformers.Trainer`` prune with
  any INC-style config and adds the sparsity curves to the Trainer's own logs (so its MLflow,
  TensorBoard or W&B integration records them). Needs the ``[hf]`` extra.

This package imports only :mod:`workbench.pruner` (and the third-party library it integrates,
when the integration is used); nothing of the study, tracking or benchmarks layers. Importing it
does not import transformers: ``PruningCallback`` is loaded on first access.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PruningCallback"]


def __getattr__(name: str) -> Any:
    if name == "PruningCallback":
        from .transformers import PruningCallback  # optional extra [hf]: transformers loads on first use

        return PruningCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
