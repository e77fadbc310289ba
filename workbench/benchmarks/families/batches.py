"""Re-iterable mini-batches of dicts of tensors (what a Hugging Face model takes as ``model(**batch)``).

:class:`DictBatches` is :class:`~workbench.benchmarks.task.TensorBatches` for dict batches: each
iteration is one epoch, shuffled from ``generator`` (else the global torch RNG), the last batch
may be smaller. With ``trim``, the padded columns of a batch are cut to its longest sequence (the
``attention_mask`` says how long each is), so a batch of short sentences costs what they cost.

Example:
    >>> import torch
    >>> batches = DictBatches({"input_ids": torch.arange(12).reshape(4, 3),
    ...                        "attention_mask": torch.tensor([[1, 1, 0]] * 4)},
    ...                       batch_size=2, shuffle=False, trim="attention_mask")
    >>> len(batches), tuple(next(iter(batches))["input_ids"].shape)
    (2, (2, 2))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from workbench.pruner.errors import ConfigError

__all__ = ["DictBatches"]


class DictBatches:
    """A re-iterable of dict mini-batches over in-memory tensors sharing their first dimension.

    Args:
        tensors: ``{name: tensor}``, every tensor with the same number (>= 1) of samples first.
        batch_size: Samples per batch (>= 1).
        shuffle: A fresh permutation every epoch.
        generator: The ``torch.Generator`` of the permutation (``None``: the global RNG).
        trim: A 2-D 0/1 mask column (``"attention_mask"``): every 2-D column of a batch with as
            many columns as it is cut to the batch's longest row (right padding). ``None``: no cut.
        aliases: ``{new: existing}``: the batch also holds ``existing`` under ``new`` (the same
            tensor, not a copy), e.g. ``{"labels": "input_ids"}`` for causal language modelling.

    Raises:
        ValueError: A bad argument; the message names it.
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        *,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        trim: str | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(tensors, Mapping) or not tensors:
            raise ConfigError(f"tensors: expected a non-empty dict of tensors, got {type(tensors).__name__}")
        sizes = set()
        for key, value in tensors.items():
            if not isinstance(value, torch.Tensor) or value.dim() < 1:
                raise ConfigError(f"tensors[{key!r}]: expected a tensor with a sample dimension, got {value!r:.60}")
            sizes.add(value.shape[0])
        if len(sizes) != 1 or 0 in sizes:
            raise ConfigError(
                f"tensors: every tensor needs the same number (>= 1) of samples first, got {sorted(sizes)}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
        if trim is not None and (trim not in tensors or tensors[trim].dim() != 2):
            raise ConfigError(f"trim: {trim!r} is not a 2-D column of {sorted(tensors)}")
        aliases = dict(aliases or {})
        for new, existing in aliases.items():
            if existing not in tensors or new in tensors:
                raise ConfigError(f"aliases: {new!r} -> {existing!r} needs an existing column and a new name")
        self.tensors, self.batch_size, self.shuffle = dict(tensors), batch_size, bool(shuffle)
        self.generator, self.trim, self.aliases = generator, trim, aliases
        self.samples = sizes.pop()

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)

    def rebatched(self, *, batch_size: int, generator: torch.Generator | None) -> DictBatches:
        """The same tensors (not copied) with another ``batch_size`` and shuffling ``generator``."""
        return DictBatches(
            self.tensors,
            batch_size=batch_size,
            shuffle=self.shuffle,
            generator=generator,
            trim=self.trim,
            aliases=self.aliases,
        )

    def _batch(self, index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        batch = {key: value[index] for key, value in self.tensors.items()}
        if self.trim is not None:
            mask = batch[self.trim]
            width = mask.shape[1]
            longest = max(1, int((mask.cumsum(1) * mask).argmax(1).max()) + 1) if mask.numel() else width
            batch = {
                key: value[:, :longest] if value.dim() == 2 and value.shape[1] == width else value
                for key, value in batch.items()
            }
        for new, existing in self.aliases.items():
            batch[new] = batch[existing]
        return batch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = torch.randperm(self.samples, generator=self.generator) if self.shuffle else None
        for start in range(0, self.samples, self.batch_size):
            if order is None:
                yield self._batch(slice(start, start + self.batch_size))
            else:
                yield self._batch(order[start : start + self.batch_size])
