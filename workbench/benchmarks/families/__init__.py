"""Built-in task families on real models and data, each behind an optional extra.

Registered by name on import (nothing heavy is imported until a family is built):

* ``hf-text-classification`` (extra ``[hf]``): :func:`hf_text_classification`, any
  ``AutoModelForSequenceClassification`` checkpoint on a GLUE task or a ``datasets`` text set;
  accuracy, F1 and Matthews correlation;
* ``hf-causal-lm`` (extra ``[hf]``): :func:`hf_causal_lm`, any ``AutoModelForCausalLM`` on a text
  set (wikitext-2 by default); perplexity, minimised;
* ``torchvision-classification`` (extra ``[vision]``): :func:`torchvision_classification`, a
  torchvision model on CIFAR-10/100 with the usual transforms; accuracy.

Each factory returns a :class:`~workbench.benchmarks.task.Task`. Models and data download on the
user's machine; the tests inject tiny random models, local tokenizers and in-memory data through
the same parameters (``model_config``, ``tokenizer``, ``dataset``, a model callable). A missing
extra is a one-line ConfigError naming the ``pip install`` to run.
"""

from __future__ import annotations

from .batches import DictBatches
from .extras import EXTRAS, require
from .hf_causal_lm import chunk_tokens, evaluate_perplexity, hf_causal_lm
from .hf_text import GLUE_TASKS, evaluate_classifier, hf_text_classification
from .metrics import CLASSIFICATION_METRICS, classification_metrics, confusion_matrix
from .vision import build_torchvision_model, torchvision_classification
from .vision_data import CIFAR, ImageBatches, augment, normalise

FAMILY_NAMES = ("hf-causal-lm", "hf-text-classification", "torchvision-classification")
"""The registered names of these families (they download models and data: not for offline loops)."""

__all__ = [
    "CIFAR",
    "CLASSIFICATION_METRICS",
    "EXTRAS",
    "FAMILY_NAMES",
    "GLUE_TASKS",
    "DictBatches",
    "ImageBatches",
    "augment",
    "build_torchvision_model",
    "chunk_tokens",
    "classification_metrics",
    "confusion_matrix",
    "evaluate_classifier",
    "evaluate_perplexity",
    "hf_causal_lm",
    "hf_text_classification",
    "normalise",
    "require",
    "torchvision_classification",
]
