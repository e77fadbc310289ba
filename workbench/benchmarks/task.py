"""The :class:`Task` contract: what a trial needs from the researcher's model, data and metric.

A task is everything a trial needs that is not pruning:

* ``build_model()``: a fresh model (called under a seeded torch RNG, so its init follows the seed;
  a pretrained checkpoint simply ignores it);
* ``train_batches`` / ``eval_batches``: any re-iterable of batches (a ``DataLoader``, a list, a
  :class:`TensorBatches`), or a zero-argument callable returning one (built lazily, once). A
  batch is a tensor, a tuple/list or a dict of them (nested); :func:`to_device` moves it;
* ``loss(model, batch) -> Tensor``: default :func:`default_loss` (cross-entropy on
  ``(inputs, labels)``; a dict batch goes to ``model(**batch)`` and its ``.loss`` is used, as a
  Hugging Face model computes it);
* ``evaluate(model, eval_batches) -> dict[str, float]``: default :func:`default_evaluate`
  (``{"accuracy": ...}``); it may return several metrics;
* ``metric``: the name (a key of ``evaluate``'s dict) the study optimises, and ``direction``:
  ``"maximize"`` or ``"minimize"`` (perplexity and loss are minimised);
* ``dense``: a :class:`~workbench.benchmarks.base.DenseRecipe` to train the dense baseline (then
  cached), or ``None``: the built model is already the dense model (a pretrained checkpoint).

Batch size and order: :class:`TensorBatches` (and any batches with a ``rebatched`` method, as the
built-in families' have) are re-batched by the trial with
``training.batch_size`` (by dense training with the recipe's ``batch_size``) and shuffled by a
generator seeded from the seed, so the order is reproducible. Any other loader keeps its own
batch size (``training.batch_size`` and the recipe's ``batch_size`` do not apply; the trial logs
that once) and its own order (a ``DataLoader`` that shuffles draws from the global torch RNG,
which the trial seeds).

Example:
    >>> import torch
    >>> x, y = torch.randn(32, 4), torch.arange(32) % 2
    >>> task = Task("toy", build_model=lambda: torch.nn.Linear(4, 2),
    ...             train_batches=TensorBatches(x, y, batch_size=8),
    ...             eval_batches=TensorBatches(x, y, batch_size=16, shuffle=False))
    >>> model = task.build_model()
    >>> sorted(task.evaluate(model, task.eval_batches))
    ['accuracy']
    >>> task.loss(model, next(iter(task.train_batches))).dim()
    0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from workbench.pruner.errors import ConfigError

from .base import DenseRecipe, seeded
from .batches import OnDevice, TensorBatches, to_device
from .direction import DIRECTIONS, better, check_direction

__all__ = ["DIRECTIONS", "Task", "TensorBatches", "check_task", "default_evaluate", "default_loss", "to_device"]


def _split(batch: Any, where: str) -> tuple[Any, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ConfigError(
        f"{where}: the default expects a batch (inputs, labels) or a dict for model(**batch), "
        f"got {type(batch).__name__}; give the task its own loss/evaluate"
    )


def default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Cross-entropy of ``model(inputs)`` on ``labels`` for a batch ``(inputs, labels)``.

    A dict batch is passed as ``model(**batch)`` and the output's ``loss`` is returned (a Hugging
    Face model computes it when the batch holds ``labels``).
    """
    if isinstance(batch, Mapping):
        output = model(**batch)
        loss = output["loss"] if isinstance(output, Mapping) else getattr(output, "loss", None)
        if loss is None:
            raise ConfigError("loss: model(**batch) returned no 'loss'; put 'labels' in the batch or give a loss")
        return loss
    inputs, labels = _split(batch, "loss")
    return F.cross_entropy(_logits(model(inputs)), labels)


def _logits(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = output["logits"] if isinstance(output, Mapping) else getattr(output, "logits", None)
    if logits is None:
        raise ConfigError(f"evaluate: the model returned {type(output).__name__} without logits")
    return logits


@torch.no_grad()
def default_evaluate(model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
    """``{"accuracy": ...}``: the fraction of argmax predictions equal to the labels.

    Batches are ``(inputs, labels)`` or dicts holding ``labels`` (passed as ``model(**batch)``).
    The model is evaluated in eval mode and its mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    correct, total = 0, 0
    try:
        for batch in batches:
            if isinstance(batch, Mapping):
                labels = batch.get("labels")
                if labels is None:
                    raise ConfigError("evaluate: a dict batch needs 'labels' for the default accuracy")
                logits = _logits(model(**batch))
            else:
                inputs, labels = _split(batch, "evaluate")
                logits = _logits(model(inputs))
            correct += int((logits.argmax(dim=-1) == labels).sum())
            total += int(labels.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ConfigError("eval_batches: yielded no samples")
    return {"accuracy": correct / total}


Batches = Iterable[Any] | Callable[[], Iterable[Any]]


class Task:
    """A researcher's task: model builder, batches, loss, metrics and the dense baseline.

    Args:
        name: Registry name or plug-in spec (part of the dense-cache key).
        build_model: Zero-argument callable returning a fresh ``nn.Module``.
        train_batches: Re-iterable of training batches, or a zero-argument callable returning one.
        eval_batches: Re-iterable of evaluation batches, or a zero-argument callable returning one.
        loss: ``loss(model, batch) -> Tensor``; ``None``: :func:`default_loss`.
        evaluate: ``evaluate(model, eval_batches) -> dict[str, float]``; ``None``: :func:`default_evaluate`.
        metric: The key of ``evaluate``'s result the study optimises.
        direction: ``"maximize"`` or ``"minimize"``.
        dense: How the dense baseline is trained, or ``None`` when the built model is the dense model.
        params: The task's parameters (JSON-able; part of the dense-cache key).
        version: Bump when the model, data or recipe changes in a way the params do not show.

    Raises:
        ValueError: A bad argument; the message names it, its value and what is allowed.
    """

    def __init__(
        self,
        name: str,
        build_model: Callable[[], nn.Module],
        train_batches: Batches,
        eval_batches: Batches,
        loss: Callable[[nn.Module, Any], torch.Tensor] | None = None,
        evaluate: Callable[[nn.Module, Iterable[Any]], Mapping[str, float]] | None = None,
        metric: str = "accuracy",
        direction: str = "maximize",
        dense: DenseRecipe | None = None,
        *,
        params: dict[str, Any] | None = None,
        version: str = "1",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"name: expected a non-empty string, got {name!r}")
        for key, value in (("build_model", build_model), ("loss", loss), ("evaluate", evaluate)):
            if value is not None and not callable(value):
                raise ConfigError(f"{key}: expected a callable, got {type(value).__name__}")
        if build_model is None:
            raise ConfigError("build_model: expected a callable, got None")
        if isinstance(build_model, nn.Module):
            raise ConfigError(
                f"build_model: got a {type(build_model).__name__} instance; expected a zero-argument callable "
                "returning a fresh model (e.g. a function or class that builds it)"
            )
        for key, value in (("train_batches", train_batches), ("eval_batches", eval_batches)):
            if not callable(value) and not isinstance(value, Iterable):
                raise ConfigError(f"{key}: expected a re-iterable of batches or a callable, got {type(value).__name__}")
            if isinstance(value, Iterator):
                raise ConfigError(f"{key}: got a one-shot iterator; give a re-iterable (a list, a DataLoader)")
        if not isinstance(metric, str) or not metric.strip():
            raise ConfigError(f"metric: expected a non-empty metric name, got {metric!r}")
        check_direction(direction)
        if dense is not None and not isinstance(dense, DenseRecipe):
            raise ConfigError(f"dense: expected a DenseRecipe or None, got {type(dense).__name__}")
        self.name = name
        self._build_model = build_model
        self._train, self._eval = train_batches, eval_batches
        self._loss = loss or default_loss
        self._evaluate = evaluate or default_evaluate
        self.metric, self.direction, self.dense = metric, direction, dense
        self.params = dict(params or {})
        self.version = str(version)
        self.source_digest = ""
        """Digest of the code that defines the task (set by the registry; part of the cache key)."""

    def __repr__(self) -> str:
        return f"Task({self.name!r}, metric={self.metric!r}, direction={self.direction!r})"

    @staticmethod
    def _materialise(value: Batches, key: str) -> Iterable[Any]:
        if isinstance(value, Iterable):
            return value
        built = value()
        if not isinstance(built, Iterable) or isinstance(built, Iterator):
            raise ConfigError(f"{key}: the callable returned {type(built).__name__}, expected a re-iterable")
        return built

    @property
    def train_batches(self) -> Iterable[Any]:
        """The training batches (a callable given at construction is called once, on first use)."""
        self._train = self._materialise(self._train, "train_batches")
        return self._train

    @property
    def eval_batches(self) -> Iterable[Any]:
        """The evaluation batches (a callable given at construction is called once, on first use)."""
        self._eval = self._materialise(self._eval, "eval_batches")
        return self._eval

    def build_model(self, seed: int | None = None) -> nn.Module:
        """A fresh model from ``build_model``; anything but an ``nn.Module`` is a ValueError.

        With ``seed`` it is built under :class:`~workbench.benchmarks.base.seeded` (its random
        init depends only on the seed; the caller's RNG state is left alone).
        """
        if seed is None:
            model = self._build_model()
        else:
            with seeded(seed):
                model = self._build_model()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"task {self.name!r}: build_model returned {type(model).__name__}, expected nn.Module")
        return model

    def training_batches(self, *, batch_size: int, generator: torch.Generator | None) -> Iterable[Any]:
        """The training batches to iterate.

        Batches that can be re-batched (they have ``rebatched(batch_size=, generator=)``, as
        :class:`TensorBatches` and the built-in families' batches do) are re-batched with
        ``batch_size`` and shuffled by ``generator`` (a seeded order); any other loader (a
        ``DataLoader``) is used as it is, with its own batch size and order.
        """
        batches = self.train_batches
        if self.rebatchable:
            return batches.rebatched(batch_size=batch_size, generator=generator)  # type: ignore[attr-defined]
        return batches

    @property
    def rebatchable(self) -> bool:
        """Whether :meth:`training_batches` re-batches the training batches (they have ``rebatched``)."""
        return callable(getattr(self.train_batches, "rebatched", None))

    def cache_material(self, seed: int) -> dict[str, Any]:
        """What identifies a dense baseline: name, params, seed, version, code, recipe and metric."""
        return {
            "benchmark": self.name,
            "params": self.params,
            "seed": int(seed),
            "version": self.version,
            "source": self.source_digest,
            "recipe": None if self.dense is None else self.dense.to_dict(),
            "metric": self.metric,
            "torch": torch.__version__,
        }

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The training loss of ``batch`` (a scalar tensor)."""
        return self._loss(model, batch)

    def evaluate(self, model: nn.Module, batches: Iterable[Any] | None = None) -> dict[str, float]:
        """Every metric of ``evaluate`` as floats; the task's :attr:`metric` must be among them."""
        values = self._evaluate(model, self.eval_batches if batches is None else batches)
        if not isinstance(values, Mapping):
            raise ConfigError(f"task {self.name!r}: evaluate returned {type(values).__name__}, expected a dict")
        if self.metric not in values:
            raise ConfigError(
                f"task {self.name!r}: metric {self.metric!r} is not among evaluate's keys {sorted(values)}"
            )
        return {str(key): self._number(key, value) for key, value in values.items()}

    def _number(self, key: Any, value: Any) -> float:
        """One metric value as a float; anything but a number (a str, None) names the metric."""
        if not isinstance(value, (str, bytes, bool)) and value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        raise ConfigError(
            f"task {self.name!r}: evaluate returned {type(value).__name__} {value!r} for metric {key!r}; "
            "expected a number"
        )

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is better than ``b`` under :attr:`direction`."""
        return better(a, b, self.direction)


def check_task(task: Task, *, seed: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """Check ``task``'s contract once, before any trial: build, batches, evaluate; returns the metrics.

    Builds the model (seeded), takes the first training batch and evaluates the model as built
    (the dense model itself when ``task.dense`` is ``None``; the untrained one otherwise) on
    ``device``. Every mistake is a :class:`ConfigError` naming the task and what is wrong:
    ``build_model`` raising or returning no ``nn.Module``, empty training batches, ``evaluate``
    raising, returning no dict, omitting the metric, a value that is not a number, or NaN for the
    task's metric.

    Example:
        >>> x, y = torch.randn(8, 4), torch.arange(8) % 2
        >>> bad = Task("toy", build_model=lambda: torch.nn.Linear(4, 2), train_batches=[],
        ...            eval_batches=[(x, y)])
        >>> check_task(bad)
        Traceback (most recent call last):
        ...
        workbench.pruner.errors.ConfigError: task 'toy': train_batches yielded no batch; a trial needs training batches
    """
    where = f"task {task.name!r}"

    def guarded(what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ConfigError as err:
            raise ConfigError(str(err) if str(err).startswith(where) else f"{where}: {err}") from None
        except Exception as err:  # noqa: BLE001 - the task's own code failed: its contract, one line
            raise ConfigError(f"{where}: {what} raised {type(err).__name__}: {err}") from None

    model = guarded("build_model", lambda: task.build_model(seed))
    first = guarded("train_batches", lambda: next(iter(task.train_batches), None))
    if first is None:
        raise ConfigError(f"{where}: train_batches yielded no batch; a trial needs training batches")
    model.to(device)
    metrics = guarded("evaluate", lambda: task.evaluate(model, OnDevice(task.eval_batches, torch.device(device))))
    if math.isnan(metrics[task.metric]):
        raise ConfigError(
            f"{where}: evaluate returned NaN for metric {task.metric!r} on the model as built; expected a number"
        )
    return metrics
