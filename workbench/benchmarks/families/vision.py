"""``torchvision-classification``: a torchvision model (resnet18, mobilenet_v3_small, ...) on CIFAR-10/100.

Extra ``[vision]``: torchvision, the build matching your torch (0.28.x for torch 2.13; a wheel
built for another torch fails to import, which this family reports as one line). CIFAR downloads
to ``data_dir`` on first use. Training batches are augmented as usual (random 32x32 crop of the
image zero-padded by 4, horizontal flip, per-channel normalisation; see :mod:`.vision_data`),
evaluation batches only normalised; the metric is ``accuracy`` (maximised).

The model is ``torchvision.models.get_model(model, num_classes=..., weights=weights)``. ImageNet
models shrink a 32x32 image to 1x1 through their stem, so for ResNets ``small_input_stem`` (the
default) replaces the 7x7/2 convolution and the max-pool by a 3x3/1 convolution, the usual CIFAR
variant. The dense baseline is trained by a recipe (SGD with momentum, warm-up and cosine decay,
``dense_steps``, ``dense_lr``; a torchvision model starts untrained, or from ImageNet ``weights``).

Tests inject the model through ``model`` (a callable ``f(num_classes) -> nn.Module`` instead of
a torchvision name) and the data through ``dataset`` (``{"train": (images, labels), "test":
(images, labels)}``, uint8 images): the batching, the transforms, the task and its evaluation run
as they do with torchvision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from workbench.pruner.errors import ConfigError

from ..base import DenseRecipe
from ..registry import register_benchmark
from ..task import Task
from .extras import require
from .hf_loading import fingerprint, subset_indices
from .vision_data import CIFAR, ImageBatches, load_images

__all__ = ["build_torchvision_model", "torchvision_classification"]

NAME = "torchvision-classification"


def build_torchvision_model(
    name: str, num_classes: int, weights: str | None = None, small_input_stem: bool = True
) -> nn.Module:
    """``torchvision.models.get_model(name, ...)`` with ``num_classes`` outputs (a CIFAR stem for ResNets)."""
    models = require("torchvision.models", extra="vision", family=NAME)
    if name not in models.list_models():
        raise ConfigError(f"model: {name!r} is not a torchvision model; e.g. resnet18, resnet50, mobilenet_v3_small")
    if weights is None:
        model = models.get_model(name, num_classes=num_classes)
    else:  # pretrained weights come with ImageNet's 1000 classes: replace the classifier afterwards
        model = models.get_model(name, weights=weights)
        _replace_head(model, num_classes)
    if small_input_stem and isinstance(getattr(model, "conv1", None), nn.Conv2d) and hasattr(model, "maxpool"):
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def _replace_head(model: nn.Module, num_classes: int) -> None:
    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Linear(head.in_features, num_classes))
            return
        if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
            head[-1] = nn.Linear(head[-1].in_features, num_classes)
            return
    raise ConfigError(f"weights: cannot find the classifier of {type(model).__name__} to give it {num_classes} classes")


@register_benchmark(NAME)
def torchvision_classification(
    model: str | Callable[[int], nn.Module] = "resnet18",
    dataset: Any = "cifar10",
    num_classes: int | None = None,
    weights: str | None = None,
    small_input_stem: bool = True,
    data_dir: str = "~/.cache/workbench/datasets",
    train_size: int | None = None,
    eval_size: int | None = None,
    batch_size: int = 128,
    padding: int = 4,
    dense_steps: int = 4000,
    dense_lr: float = 0.05,
    data_seed: int = 0,
) -> Task:
    """The ``torchvision-classification`` task (see the module docstring).

    Args:
        model: A torchvision model name, or a callable ``f(num_classes) -> nn.Module`` (tests, notebooks).
        dataset: ``"cifar10"``, ``"cifar100"``, or in-memory ``{"train": (images, labels), "test": ...}``.
        num_classes: Outputs of the classifier (``None``: the dataset's classes).
        weights: torchvision weights name (e.g. ``"DEFAULT"``: ImageNet), or ``None`` (random init).
        small_input_stem: The CIFAR stem for ResNets (3x3/1 convolution, no max-pool).
        data_dir: Where CIFAR is downloaded.
        train_size, eval_size: Images drawn (seeded by ``data_seed``) from each split; ``None``: all.
        batch_size: Images per batch.
        padding: Zero padding of the random crop (0: flips only).
        dense_steps, dense_lr: SGD training of the dense baseline (momentum 0.9, weight decay 5e-4, cosine).
        data_seed: Seed of the subset draws.
    """
    if not callable(model) and not isinstance(model, str):
        raise ConfigError(f"model: expected a torchvision model name or a callable, got {type(model).__name__}")
    if isinstance(dense_steps, bool) or not isinstance(dense_steps, int) or dense_steps < 1:
        raise ConfigError(
            f"dense_steps: must be an integer >= 1 (a torchvision model is trained first), got {dense_steps!r}"
        )
    train_x, train_y = load_images(dataset, "train", data_dir, family=NAME)
    eval_x, eval_y = load_images(dataset, "test", data_dir, family=NAME)
    if isinstance(dataset, str):
        classes = num_classes or CIFAR[dataset][1]
        mean, std = CIFAR[dataset][2], CIFAR[dataset][3]
    else:  # in memory: the statistics of its own training images
        classes = num_classes or int(max(train_y.max(), eval_y.max())) + 1
        pixels = train_x.float().div(255).transpose(0, 1).reshape(train_x.shape[1], -1)
        mean, std = tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).clamp(min=1e-3).tolist())
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ConfigError(f"num_classes: must be an integer >= 2 or null, got {num_classes!r}")
    picked = subset_indices(train_y.shape[0], train_size, data_seed, "train_size")
    if picked is not None:
        train_x, train_y = train_x[picked], train_y[picked]
    picked = subset_indices(eval_y.shape[0], eval_size, data_seed, "eval_size")
    if picked is not None:
        eval_x, eval_y = eval_x[picked], eval_y[picked]
    recipe = DenseRecipe(
        steps=dense_steps, batch_size=batch_size, lr=dense_lr, optimizer="sgd", weight_decay=5e-4, schedule="cosine"
    )
    params = {
        "model": fingerprint(model), "dataset": fingerprint(dataset), "num_classes": classes, "weights": weights,
        "small_input_stem": small_input_stem, "train_size": train_size, "eval_size": eval_size,
        "batch_size": batch_size, "padding": padding, "dense_steps": dense_steps, "dense_lr": dense_lr,
        "data_seed": data_seed,
    }  # fmt: skip

    def build_model() -> nn.Module:
        if callable(model):
            return model(classes)
        return build_torchvision_model(model, classes, weights, small_input_stem)

    normal = {"batch_size": batch_size, "mean": mean, "std": std, "padding": padding}
    return Task(
        NAME,
        build_model=build_model,
        train_batches=ImageBatches(train_x, train_y, train=True, **normal),
        eval_batches=ImageBatches(eval_x, eval_y, train=False, **normal),
        metric="accuracy",
        direction="maximize",
        dense=recipe,
        params=params,
    )
