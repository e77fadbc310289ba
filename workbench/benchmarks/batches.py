"""Batches of a task: moving them to a device, in-memory tensor batches, cycling epochs.

* :func:`to_device` moves a batch (a tensor, a tuple/list or a dict of them, nested);
* :class:`TensorBatches` is the re-iterable of ``(inputs, labels)`` mini-batches the tensor
  benchmarks use; :meth:`TensorBatches.rebatched` gives the same data with another batch size
  and a seeded generator (how a trial and the dense training get a reproducible batch order);
* :func:`cycle_batches` walks any re-iterable epoch after epoch for a number of steps.

Example:
    >>> import torch
    >>> batches = TensorBatches(torch.arange(5.0)[:, None], torch.arange(5), batch_size=2)
    >>> seeded = batches.rebatched(batch_size=3, generator=torch.Generator().manual_seed(0))
    >>> [(epoch, local, len(b[1])) for epoch, local, b in cycle_batches(seeded, 3)]
    [(0, 0, 3), (0, 1, 2), (1, 0, 3)]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from workbench.pruner.errors import ConfigError

__all__ = ["OnDevice", "TensorBatches", "cycle_batches", "to_device"]


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts, nested) moved to ``device``.

    Anything that is not a tensor or a container of them is returned unchanged; a mapping type
    with a ``to`` method (a Hugging Face ``BatchEncoding``) is moved with it. A tensor already on
    ``device`` is returned as it is (no copy).
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        if hasattr(batch, "to") and not isinstance(batch, dict):
            return batch.to(device)
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple keeps its type
        return type(batch)(*(to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


class OnDevice:
    """A re-iterable view of ``batches`` whose every batch is moved to ``device`` (:func:`to_device`).

    How a task's own ``evaluate(model, batches)`` sees its evaluation batches on the model's device.
    """

    def __init__(self, batches: Iterable[Any], device: torch.device | str) -> None:
        if not isinstance(batches, Iterable):
            raise ConfigError(f"batches: expected a re-iterable of batches, got {type(batches).__name__}")
        self.batches, self.device = batches, torch.device(device)

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]  # TypeError when the loader has no length

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            yield to_device(batch, self.device)


class TensorBatches:
    """A re-iterable of ``(inputs, labels)`` mini-batches over in-memory tensors.

    Each iteration is one epoch; with ``shuffle`` its order is a fresh permutation drawn from
    ``generator`` (the trial runner passes one seeded from the trial seed, so the batch order is a
    pure function of it), else from the global torch RNG. The last batch may be smaller.

    Args:
        inputs: Tensor with the sample dimension first.
        labels: Tensor with as many samples as ``inputs``.
        batch_size: Samples per batch (>= 1).
        shuffle: Permute the samples every epoch.
        generator: The ``torch.Generator`` of the permutation (``None``: global RNG).
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise ConfigError(
                f"TensorBatches: inputs and labels must be tensors, got {type(inputs).__name__}, "
                f"{type(labels).__name__}"
            )
        if inputs.dim() < 1 or labels.dim() < 1 or inputs.shape[0] != labels.shape[0] or labels.shape[0] == 0:
            raise ConfigError(
                f"TensorBatches: inputs {tuple(inputs.shape)} and labels {tuple(labels.shape)} need the "
                f"same number (>= 1) of samples first"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
        self.inputs, self.labels = inputs, labels
        self.batch_size, self.shuffle, self.generator = batch_size, bool(shuffle), generator

    def __len__(self) -> int:
        return -(-self.labels.shape[0] // self.batch_size)

    def __repr__(self) -> str:
        return f"TensorBatches({self.labels.shape[0]} samples, batch_size={self.batch_size}, shuffle={self.shuffle})"

    def rebatched(self, *, batch_size: int, generator: torch.Generator | None) -> TensorBatches:
        """The same tensors (not copied) with another ``batch_size`` and shuffling ``generator``."""
        return TensorBatches(self.inputs, self.labels, batch_size=batch_size, shuffle=self.shuffle, generator=generator)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.labels.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.inputs[start : start + self.batch_size], self.labels[start : start + self.batch_size]
            else:
                idx = order[start : start + self.batch_size]
                yield self.inputs[idx], self.labels[idx]


def cycle_batches(batches: Iterable[Any], steps: int) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(epoch, step_in_epoch, batch)`` for ``steps`` batches, iterating ``batches`` again
    for every epoch (a :class:`TensorBatches` draws a fresh order each time).

    Raises:
        ValueError: ``batches`` yields nothing in an epoch (the steps could never be reached).
    """
    step, epoch = 0, 0
    while step < steps:
        local = -1
        for local, batch in enumerate(batches):
            yield epoch, local, batch
            step += 1
            if step >= steps:
                return
        if local < 0:
            raise ConfigError(f"train_batches: epoch {epoch} yielded no batches; expected at least one")
        epoch += 1
