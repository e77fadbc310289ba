"""``PruningCallback``: prune inside an unchanged ``transformers.Trainer`` with an INC-style config.

Usage (``pip install -e '.[hf]'``)::

    from workbench.integrations.transformers import PruningCallback
    from workbench.pruner import WeightPruningConfig

    config = WeightPruningConfig(target_sparsity=0.8, pattern="4x1", pruning_type="snip_momentum",
                                 start_step=100, end_step=2000, pruning_frequency=100)
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[PruningCallback(config)])
    trainer.train()

The config is anything :func:`workbench.pruner.prepare_pruning` takes (a
``WeightPruningConfig``, a dict, a YAML path); ``start_step``/``end_step`` count optimizer steps
(the Trainer's ``global_step``). The pruner's hooks run at the Trainer's events:

============================  =====================================================
Trainer event                 pruner hook
============================  =====================================================
``on_train_begin``            ``prepare_pruning(model, config)``, ``on_train_begin``
``on_epoch_begin``/``_end``   ``on_epoch_begin(epoch)`` / ``on_epoch_end``
``on_step_begin``             ``on_step_begin`` (masks change here on pruning steps)
``on_pre_optimizer_step``     ``on_before_optimizer_step`` (gradients still there)
``on_optimizer_step``         ``on_after_optimizer_step`` (pruned weights back to 0)
``on_step_end``               ``on_step_end``; ``on_before_eval`` when it evaluates
``on_evaluate``               ``on_after_eval``
``on_train_end``              ``on_train_end`` (final masks applied)
``on_save``                   the pruner's state saved into the checkpoint
``on_log``                    sparsity added to the logs (below)
============================  =====================================================

Logging: every time the Trainer logs, ``sparsity`` (zeros over the weights of the pruned layers),
``sparsity/elementwise_over_all``, ``sparsity/blockwise_over_matmul_gemm_conv`` and, with
``per_layer=True``, ``layer_sparsity/<layer>`` are added to the logs and to that entry of
``trainer.state.log_history``. So that the reporting callbacks (MLflow's among them), which the
Trainer calls before the user's callbacks, see these keys, the callback moves itself to the front
of the Trainer's callback list at ``on_init_end``/``on_train_begin`` (it finds the list through
the ``CallbackHandler`` that calls it; if that fails it warns once and the keys reach
``log_history`` only: then add it with ``trainer.callback_handler.callbacks.insert(0, cb)``).
It stays after the Trainer's own flow callbacks (``DefaultFlowCallback`` decides at
``on_step_end`` whether to evaluate, which this callback reads).

Requires transformers with the ``on_pre_optimizer_step``/``on_optimizer_step`` events (4.46 or
newer). Gradient accumulation works (one pruner step per optimizer step). Checkpoints: at
``on_save`` the pruner's state (masks, step counters) is written beside the Trainer's, as
``checkpoint-<step>/workbench_pruning.pt``; ``trainer.train(resume_from_checkpoint=...)`` restores
it from the folder the Trainer actually resumes from, whatever folder that is (another run's
``A/checkpoint-8`` with a new ``output_dir`` too), so the schedule continues where it stopped and
the masks and weights are those of the uninterrupted run. The folder is read from the Trainer's
training loop (``resume_from_checkpoint``, after ``True`` was resolved to the last checkpoint),
else ``resume_from=`` names it, else ``<output_dir>/checkpoint-<global_step>``. A resumed run
(``global_step > 0``) whose checkpoint holds no pruner state is an error (the schedule would
restart at step 0 and the pruned weights regrow) unless ``restart_schedule=True`` says to start
the schedule afresh (then one warning).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import torch

from workbench.pruner import Pruning, get_sparsity_ratio, layer_counts, layer_sparsity, prepare_pruning, resolve_config
from workbench.pruner.errors import ConfigError

try:  # optional extra [hf]: without transformers this module still imports (and documents itself)
    from transformers import TrainerCallback
    from transformers.trainer_callback import DefaultFlowCallback
except ImportError:  # pragma: no cover - exercised where transformers is missing
    TrainerCallback = DefaultFlowCallback = object  # type: ignore[assignment,misc]

__all__ = ["GLOBAL_KEYS", "STATE_FILE", "PruningCallback"]

logger = logging.getLogger(__name__)

GLOBAL_KEYS = ("sparsity", "sparsity/elementwise_over_all", "sparsity/blockwise_over_matmul_gemm_conv")
"""Log keys of :func:`workbench.pruner.get_sparsity_ratio`'s three values, in its order."""

STATE_FILE = "workbench_pruning.pt"
"""The pruner's state in each Trainer checkpoint folder (``checkpoint-<step>/``)."""

_EVENTS = ("on_pre_optimizer_step", "on_optimizer_step")
_BAD = re.compile(r"[^\w.\- ]")


class PruningCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that prunes the Trainer's model with ``config``.

    Args:
        config: An INC-style pruning config (``WeightPruningConfig``, dict or YAML path);
            validated here, so a bad key fails before training.
        per_layer: Also log ``layer_sparsity/<layer>`` for every pruned layer.
        resume_from: The checkpoint folder a resumed run restores the pruner's state from, when
            the Trainer's own ``resume_from_checkpoint`` cannot be found (a custom training loop).
        restart_schedule: On a resumed run whose checkpoint holds no pruner state, start the
            pruning schedule afresh (with a warning) instead of raising.

    Attributes:
        pruning: The :class:`~workbench.pruner.Pruning` (``None`` until training begins).

    Raises:
        ValueError: transformers is missing or too old, or the config is invalid.
    """

    def __init__(
        self,
        config: Any,
        *,
        per_layer: bool = True,
        resume_from: str | os.PathLike | None = None,
        restart_schedule: bool = False,
    ) -> None:
        if TrainerCallback is object:
            raise ConfigError("PruningCallback needs the optional extra [hf] (transformers): pip install -e '.[hf]'")
        missing = [event for event in _EVENTS if not hasattr(TrainerCallback, event)]
        if missing:
            raise ConfigError(
                f"PruningCallback: this transformers lacks the events {missing}; install transformers>=4.46"
            )
        resolve_config(config)  # a bad config is a ConfigError now, not at the first step
        self.config, self.per_layer = config, bool(per_layer)
        self.resume_from, self.restart_schedule = resume_from, bool(restart_schedule)
        self.pruning: Pruning | None = None
        self._eval_open = False
        self._warned = False

    # ---- order: before the reporting callbacks, so they log what on_log adds -------------
    def _go_first(self) -> None:
        handler = sys._getframe(2).f_locals.get("self")  # CallbackHandler.call_event -> handler.on_* -> here
        callbacks = getattr(handler, "callbacks", None)
        if type(handler).__name__ == "CallbackHandler" and isinstance(callbacks, list) and self in callbacks:
            flow = [i for i, cb in enumerate(callbacks) if isinstance(cb, DefaultFlowCallback)]
            target, index = (max(flow) + 1) if flow else 0, callbacks.index(self)
            if index > target:  # the list is being iterated: moving an item back skips or repeats none
                callbacks.insert(target, callbacks.pop(index))
        elif not self._warned:
            self._warned = True
            logger.warning(
                "PruningCallback could not move itself before the Trainer's reporting callbacks; sparsity "
                "reaches trainer.state.log_history only (use trainer.callback_handler.callbacks.insert(0, cb))"
            )

    def on_init_end(self, args, state, control, **kwargs):
        """Move before the reporting callbacks."""
        self._go_first()

    # ---- the pruner's hooks -----------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """Prepare pruning of ``model`` (once per model) and start it."""
        self._go_first()
        if model is None:
            raise ConfigError("PruningCallback: the Trainer passed no model to on_train_begin")
        if self.pruning is None or self.pruning.model is not model:
            self.pruning = prepare_pruning(model, self.config)
            self._restore(args, state)
        self.pruning.on_train_begin()

    # ---- checkpoints: the pruner's state beside the Trainer's ----------------------------------
    @staticmethod
    def _state_file(args, step: int) -> str:
        return os.path.join(args.output_dir, f"checkpoint-{step}", STATE_FILE)

    @staticmethod
    def _trainer_resume_folder() -> str | None:
        """The checkpoint folder the Trainer resumes from: ``resume_from_checkpoint`` of its loop."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == "_inner_training_loop" and "resume_from_checkpoint" in frame.f_locals:
                value = frame.f_locals["resume_from_checkpoint"]
                return os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
            frame = frame.f_back
        return None

    def _restore(self, args, state) -> None:
        """A resumed run gets the pruner's state saved in the checkpoint it resumes from (module docstring)."""
        if not state.global_step:
            return
        folders = [self._trainer_resume_folder(), self.resume_from]
        folders.append(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))
        tried = [os.path.join(os.fspath(f), STATE_FILE) for f in dict.fromkeys(f for f in folders if f)]
        path = next((p for p in tried if os.path.isfile(p)), None)
        if path is None:
            if not self.restart_schedule:
                raise ConfigError(
                    f"PruningCallback: training resumes at step {state.global_step} but no pruner state was found "
                    f"(tried {', '.join(tried)}); allowed: resume from a checkpoint this callback saved, name it "
                    "with PruningCallback(..., resume_from=folder), or start the schedule afresh with "
                    "PruningCallback(..., restart_schedule=True)"
                )
            logger.warning(
                "PruningCallback: training resumes at step %d without a pruner state (tried %s): "
                "restart_schedule=True, so the pruning schedule starts afresh",
                state.global_step,
                ", ".join(tried),
            )
            return
        self.pruning.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        logger.info("PruningCallback: pruner state of step %d restored from %s", state.global_step, path)

    def on_save(self, args, state, control, **kwargs):
        """Save the pruner's state (masks, counters) into the checkpoint the Trainer just wrote."""
        if self.pruning is None:
            return
        path = self._state_file(args, state.global_step)
        if not os.path.isdir(os.path.dirname(path)):
            logger.warning(
                "PruningCallback: no checkpoint folder %s; the pruner's state is not saved", os.path.dirname(path)
            )
            return
        torch.save(self.pruning.state_dict(), path)

    def _hooks(self) -> Pruning:
        if self.pruning is None:
            raise ConfigError("PruningCallback: a training event came before on_train_begin")
        return self.pruning

    def on_epoch_begin(self, args, state, control, **kwargs):
        """Start of an epoch."""
        self._hooks().on_epoch_begin(int(state.epoch or 0))

    def on_step_begin(self, args, state, control, **kwargs):
        """Start of an optimizer step: masks update on pruning steps."""
        self._hooks().on_step_begin(state.global_step)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        """After backward and clipping, before ``optimizer.step()``."""
        self._hooks().on_before_optimizer_step()

    def on_optimizer_step(self, args, state, control, **kwargs):
        """After ``optimizer.step()``: pruned weights back to zero, the pruner's step advances."""
        self._hooks().on_after_optimizer_step()

    def on_step_end(self, args, state, control, **kwargs):
        """End of a step; the evaluation the Trainer is about to run is announced to the pruner."""
        pruning = self._hooks()
        pruning.on_step_end()
        if control.should_evaluate and not self._eval_open:
            pruning.on_before_eval()
            self._eval_open = True

    def on_evaluate(self, args, state, control, **kwargs):
        """After an evaluation."""
        if self._eval_open and self.pruning is not None:
            self.pruning.on_after_eval()
            self._eval_open = False

    def on_epoch_end(self, args, state, control, **kwargs):
        """End of an epoch."""
        self._hooks().on_epoch_end()

    def on_train_end(self, args, state, control, **kwargs):
        """End of training: the final masks are applied."""
        self._hooks().on_train_end()

    # ---- reporting --------------------------------------------------------------------------
    def sparsity(self) -> dict[str, float]:
        """The log keys and their values now (empty before training)."""
        if self.pruning is None:
            return {}
        pruners = self.pruning.pruners
        counts = layer_counts(pruners)  # the weights read once for both views
        values = dict(zip(GLOBAL_KEYS, get_sparsity_ratio(pruners, self.pruning.model, counts=counts)))
        if self.per_layer:
            for name, (elementwise, _) in layer_sparsity(pruners, counts=counts).items():
                values[f"layer_sparsity/{_BAD.sub('_', name)}"] = elementwise
        return values

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Add the sparsity to ``logs`` (seen by the callbacks after this one) and to ``log_history``."""
        values = self.sparsity()
        if not values or logs is None:
            return
        logs.update(values)
        last = state.log_history[-1] if state.log_history else None
        if (
            isinstance(last, dict)
            and last.get("step") == state.global_step
            and all(k in last for k in logs if k not in values)
        ):
            last.update(values)
