"""CIFAR images as tensors, and the usual CIFAR transforms written in plain torch.

:class:`ImageBatches` keeps a split as one ``uint8`` tensor ``[N, 3, H, W]`` and makes each batch
the way torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()`` + ``ToTensor()``
+ ``Normalize(mean, std)`` would, vectorised over the batch (training), or only the last two
(evaluation). The crops, flips and order are drawn from ``generator`` (else the global torch RNG).

:func:`load_images` returns a split from torchvision's CIFAR-10/100 (downloaded to ``data_dir``
on first use; extra ``[vision]``) or from in-memory ``{split: (images, labels)}`` (tests).

Example:
    >>> import torch
    >>> images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    >>> batches = ImageBatches(images, torch.arange(4), batch_size=2, mean=(0.5,) * 3, std=(0.5,) * 3)
    >>> x, y = next(iter(batches))
    >>> tuple(x.shape), x.dtype
    ((2, 3, 8, 8), torch.float32)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from workbench.pruner.errors import ConfigError

from .extras import require

__all__ = ["CIFAR", "ImageBatches", "augment", "load_images", "normalise"]

CIFAR: dict[str, tuple[str, int, tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ("CIFAR10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
"""The datasets by name: torchvision class, classes, per-channel mean and std of the training images."""


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8 [B, C, H, W]`` -> ``float32`` in [0, 1], minus ``mean``, over ``std`` (per channel)."""
    shape = (1, -1, 1, 1)
    x = images.float() / 255.0
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def augment(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``H x W`` crop of each image zero-padded by ``padding``, flipped left-right with p = 0.5."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]
    cols = left[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


class ImageBatches:
    """A re-iterable of ``(images, labels)`` batches: float, normalised, augmented when ``train``.

    Args:
        images: ``uint8 [N, C, H, W]``.
        labels: Integer class labels ``[N]``.
        batch_size: Samples per batch (>= 1).
        mean, std: Per-channel normalisation of the [0, 1] pixels.
        train: Shuffle, random crop (``padding``) and flip; else the images in order, unaugmented.
        padding: Zero padding of the random crop (0: flips only).
        generator: The ``torch.Generator`` of order, crops and flips (``None``: the global RNG).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = True,
        padding: int = 4,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise ConfigError(
                f"images: expected a uint8 tensor [N, C, H, W], got {getattr(images, 'dtype', type(images))}"
            )
        if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],) or labels.numel() == 0:
            raise ConfigError(
                f"labels: expected {images.shape[0]} (>= 1) integer labels, got {tuple(getattr(labels, 'shape', ()))}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        if len(mean) != images.shape[1] or len(std) != images.shape[1] or min(std) <= 0:
            raise ConfigError(f"mean/std: expected {images.shape[1]} values (std > 0), got {mean!r} and {std!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ConfigError(f"padding: must be an integer >= 0, got {padding!r}")
        self.images, self.labels = images, labels.long()
        self.batch_size, self.mean, self.std = batch_size, tuple(mean), tuple(std)
        self.train, self.padding, self.generator = bool(train), padding, generator

    def __len__(self) -> int:
        return -(-self.labels.shape[0] // self.batch_size)

    def rebatched(self, *, batch_size: int, generator: torch.Generator | None) -> ImageBatches:
        """The same images (not copied) with another ``batch_size`` and random ``generator``."""
        return ImageBatches(
            self.images,
            self.labels,
            batch_size=batch_size,
            mean=self.mean,
            std=self.std,
            train=self.train,
            padding=self.padding,
            generator=generator,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.labels.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.train else torch.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index]
            if self.train:
                images = augment(images, self.padding, self.generator)
            yield normalise(images, self.mean, self.std), self.labels[index]


def _as_tensors(images: Any, labels: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(images)
    if images.dim() == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.permute(0, 3, 1, 2)  # [N, H, W, C] as torchvision's CIFAR stores it
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ConfigError(
            f"{where}: expected uint8 images [N, C, H, W] or [N, H, W, C], got {images.dtype} {tuple(images.shape)}"
        )
    return images.contiguous(), torch.as_tensor(labels, dtype=torch.long)


def load_images(dataset: Any, split: str, data_dir: str, *, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(uint8 images [N, C, H, W], labels [N])`` of ``split`` (``"train"`` or ``"test"``)."""
    if isinstance(dataset, Mapping):
        if split not in dataset:
            raise ConfigError(f"dataset: the in-memory dataset has no split {split!r}; it has {sorted(dataset)}")
        pair = dataset[split]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(f"dataset[{split!r}]: expected (images, labels), got {type(pair).__name__}")
        return _as_tensors(pair[0], pair[1], f"dataset[{split!r}]")
    if dataset not in CIFAR:
        raise ConfigError(f"dataset: {dataset!r} is not allowed; allowed: {', '.join(CIFAR)} (or in-memory splits)")
    datasets = require("torchvision.datasets", extra="vision", family=family)
    root = os.path.expanduser(data_dir)
    loaded = getattr(datasets, CIFAR[dataset][0])(root=root, train=split == "train", download=True)
    return _as_tensors(loaded.data, loaded.targets, f"{dataset} {split}")
