"""The object a training loop talks to: several pruners behind the ten hooks."""

from __future__ import annotations

import logging
import types

import torch
from torch import nn

from .config import resolve_config
from .errors import ConfigError
from .inputs import check_model, check_pruner_state, check_state, check_weights_have_data
from .pruners import get_pruner
from .sparsity import LayerInfo, classify_layers, layer_sparsity, nothing_selected_error

logger = logging.getLogger(__name__)

HOOKS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_step_begin",
    "on_before_optimizer_step",
    "on_after_optimizer_step",
    "on_step_end",
    "on_epoch_end",
    "on_before_eval",
    "on_after_eval",
    "on_train_end",
)
"""The ten hooks a training loop calls, in the order of a loop (INC's names): each is a method of
:class:`Pruning` and of :class:`~workbench.pruner.BasePruner`."""


class Pruning:
    """Holds one pruner per pruner config and calls each pruner's hook in order.

    Args:
        model: The model to prune (weights are zeroed in place). A model on the ``meta``
            device can be built and described; its hooks refuse to run (no weight values).
        config: A :class:`WeightPruningConfig`, a config dict, or a YAML path.

    Raises:
        ConfigError: a pruner selects no layer (its ``op_names`` match nothing, the model has no
            prunable layer, or its only candidate is the classifier head); the message names the
            pruner, its ``op_names``/``excluded_op_names`` and why each candidate was left out.

    Attributes:
        model: The model.
        pruners: One pruner per entry of ``pruning_configs``.
        layers: A :class:`LayerInfo` for every weighted module: pruned or not, and why.

    Example:
        >>> import torch
        >>> from workbench.pruner import WeightPruningConfig
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
        >>> pruning = Pruning(model, WeightPruningConfig(pruning_type="magnitude"))
        >>> [(l.name, l.pruned) for l in pruning.describe()]
        [('0', True), ('1', False)]
    """

    def __init__(self, model: nn.Module, config) -> None:
        self.model = check_model(model)
        self.configs = resolve_config(config)
        modules_per_config, self.layers = classify_layers(self.configs, model)
        self.pruners = [get_pruner(cfg, mods) for cfg, mods in zip(self.configs, modules_per_config)]
        for index, pruner in enumerate(self.pruners):
            if not pruner.modules:  # INC pruned nothing, silently; a run that prunes nothing is a mistake
                raise nothing_selected_error(index, pruner.config, model, self.layers, pruner.pattern.invalid_layers)
        invalid = {n: r for p in self.pruners for n, r in p.pattern.invalid_layers.items()}
        for info in self.layers:
            if info.name in invalid:
                info.pruned, info.reason, info.pruner = False, invalid[info.name], None
        self._handles: list = []
        self._has_data = False

    def _check_data(self) -> None:
        """Once, before the first hook touches the weights: refuse meta-device weights, and move
        masks and scores to the weights' devices (the model may have moved since it was built)."""
        if not self._has_data:
            for pruner in self.pruners:
                check_weights_have_data(pruner.modules)
                pruner.follow_devices()
            self._has_data = True

    # ---- the ten hooks (see HOOKS; each calls the same hook of every pruner, in order) ------
    def _each(self, hook: str, *args) -> None:
        self._check_data()
        for pruner in self.pruners:
            getattr(pruner, hook)(*args)

    def on_train_begin(self, dataloader=None) -> None:
        """Called once when training starts, before the first step.

        Pattern lock and ``resume_from_pruned_checkpoint`` read the weights' existing zeros here.
        A pruner not begun yet begins on its first :meth:`on_step_begin` too.

        Args:
            dataloader: Accepted for INC compatibility (unused by the training-aware pruners).
        """
        self._each("on_train_begin", dataloader)

    def on_epoch_begin(self, epoch: int) -> None:
        """Called when an epoch starts (nothing changes here; pruning counts steps, not epochs).

        Args:
            epoch: The epoch's index, as INC takes it.
        """
        self._each("on_epoch_begin", epoch)

    def on_step_begin(self, local_step: int = 0) -> None:
        """Called when a step starts, before the forward pass.

        On a pruning step the masks change here and are applied at once; a repeated call within
        one step is a no-op.

        Args:
            local_step: Accepted for INC compatibility; each pruner counts steps itself.
        """
        self._each("on_step_begin", local_step)

    def on_before_optimizer_step(self) -> None:
        """Called after the backward pass, before ``optimizer.step()``.

        Gradient criteria read the gradients here; regularisers add their term.
        """
        self._each("on_before_optimizer_step")

    def on_after_optimizer_step(self) -> None:
        """Called right after ``optimizer.step()``: pruned weights are zeroed again (the optimizer
        may have moved them) and each pruner's step counter advances."""
        self._each("on_after_optimizer_step")

    def on_step_end(self) -> None:
        """Called when a step ends, after the optimizer step (in :meth:`calibrate`'s loop, which
        has no optimizer, ``retrain_free`` records its scores and counts the step here)."""
        self._each("on_step_end")

    def on_epoch_end(self) -> None:
        """Called when an epoch ends (nothing changes here)."""
        self._each("on_epoch_end")

    def on_before_eval(self) -> None:
        """Called before an evaluation during training (nothing changes here)."""
        self._each("on_before_eval")

    def on_after_eval(self) -> None:
        """Called after an evaluation during training (nothing changes here)."""
        self._each("on_after_eval")

    def on_train_end(self) -> None:
        """Called once when training ends: the final masks are applied to the weights."""
        self._each("on_train_end")

    def calibrate(self, dataloader, loss_func=None) -> None:
        """INC's retrain-free loop: per batch ``on_step_begin``, forward, backward, ``on_step_end``.

        No optimizer step: the weights stay as they are but for the pruned channels. A batch is
        ``(inputs, target)`` scored by ``loss_func(model(inputs), target)``, or, without
        ``loss_func``, a dict of keyword arguments to a model that returns ``.loss`` (Hugging Face
        style), as in INC. Masks are applied at the end.
        """
        self.on_train_begin(dataloader)
        for batch in dataloader:
            self.on_step_begin(self.global_step)
            if loss_func is not None:
                inputs, target = batch
                loss = loss_func(self.model(inputs), target)
            else:
                loss = self.model(return_dict=True, **batch).loss
            loss.backward()
            self.on_step_end()
            self.model.zero_grad(set_to_none=True)
        self.on_train_end()
        for index, pruner in enumerate(self.pruners):
            if pruner.global_step <= pruner.end_step:
                logger.warning(
                    "pruner %d: calibration ended after %d batches, before end_step %d; masks of step %d kept",
                    index,
                    pruner.global_step,
                    pruner.end_step,
                    pruner._last_update,
                )

    # ---- reporting ------------------------------------------------------------------------
    @property
    def mask_updates(self) -> int:
        """How many times any pruner's masks changed (compare before/after a step)."""
        return sum(p.mask_updates for p in self.pruners)

    @property
    def global_step(self) -> int:
        """The step counter of the first pruner (all pruners advance together)."""
        return self.pruners[0].global_step if self.pruners else 0

    def describe(self) -> list[LayerInfo]:
        """Every weighted module, pruned or not and why; available before training starts."""
        return list(self.layers)

    def layer_sparsity(self) -> dict[str, tuple[float, float]]:
        """``{layer: (elementwise, blockwise)}`` sparsity of each pruned layer, from its weights."""
        return layer_sparsity(self.pruners)

    # ---- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Masks, scores, step counters and frozen layers of every pruner, for exact resume."""
        return {"pruners": [p.state_dict() for p in self.pruners]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output into pruners built from the same config.

        A malformed ``state`` is a :class:`ConfigError` naming the key, and leaves every pruner
        as it was.
        """
        states = check_state(state, len(self.pruners))
        for i, (pruner, pruner_state) in enumerate(zip(self.pruners, states)):
            check_pruner_state(pruner_state, f"state['pruners'][{i}]", pruner.pruned)
        before = [_attributes(p) for p in self.pruners]  # references, not copies: loads assign new tensors
        for i, (pruner, pruner_state) in enumerate(zip(self.pruners, states)):
            try:
                pruner.load_state_dict(pruner_state)
            except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, ValueError) as err:
                for saved in before:
                    for obj, attrs in saved:
                        obj.__dict__.clear()
                        obj.__dict__.update(attrs)
                if isinstance(err, ConfigError):
                    raise ConfigError(f"state['pruners'][{i}]: {err}") from err
                raise ConfigError(
                    f"state['pruners'][{i}]: not a state of this {type(pruner).__name__} ({type(err).__name__}: {err})"
                ) from err
        self._has_data = False  # the loaded masks may come from another device: follow the weights

    # ---- optimizer wrapping ---------------------------------------------------------------
    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Run the hooks from ``optimizer.step()`` and the model's forward pass.

        Before each training-mode forward: ``on_step_begin`` (idempotent, so several forwards
        per step are fine; the first also calls ``on_train_begin``); around ``optimizer.step()``:
        ``on_before_optimizer_step`` and ``on_after_optimizer_step``. Eval-mode forwards (an
        evaluation during training) change nothing. A step taken with no training-mode forward
        before it (a model left in eval mode, as ``from_pretrained`` returns it) still prunes:
        ``optimizer.step()`` runs ``on_step_begin`` itself, and the first such step logs a
        warning naming the fix (``model.train()``; dropout is off in eval mode).
        """
        seen = {"begun": False, "forward": False, "warned": False}

        def begin_step() -> None:
            if not seen["begun"]:
                seen["begun"] = True
                self.on_train_begin()
            self.on_step_begin(self.global_step)

        def pre_forward(module, args):
            if module.training:
                seen["forward"] = True
                begin_step()

        original_step = optimizer.step
        pruning = self

        def step(opt, *args, **kwargs):
            if not seen["forward"]:  # no training-mode forward this step: prune all the same
                if not seen["warned"]:
                    seen["warned"] = True
                    logger.warning(
                        "pruning: optimizer.step() ran with no training-mode forward of the model "
                        "before it: the model is in eval mode (from_pretrained returns it so). Call "
                        "model.train() before training; pruning runs from optimizer.step() meanwhile, "
                        "so the forward of each step uses the weights before that step's mask update"
                    )
                begin_step()
            seen["forward"] = False
            pruning.on_before_optimizer_step()
            result = original_step(*args, **kwargs)
            pruning.on_after_optimizer_step()
            return result

        optimizer.step = types.MethodType(step, optimizer)
        optimizer.pruners = self.pruners
        self._handles.append(self.model.register_forward_pre_hook(pre_forward))
        self._restore = (optimizer, original_step)

    def detach(self) -> None:
        """Undo :meth:`attach`: remove the forward hook and restore ``optimizer.step``."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if getattr(self, "_restore", None):
            optimizer, original_step = self._restore
            optimizer.step = original_step
            self._restore = None


def _attributes(pruner) -> list[tuple[object, dict]]:
    """The attribute dicts of a pruner and of its parts (shallow), to undo a failed load."""
    parts = [pruner] + [getattr(pruner, k) for k in ("pattern", "criterion", "scheduler", "reg") if hasattr(pruner, k)]
    return [(obj, dict(obj.__dict__)) for obj in parts if hasattr(obj, "__dict__")]


def prepare_pruning(
    model: nn.Module,
    config,
    optimizer: torch.optim.Optimizer | None = None,
    dataloader=None,
    loss_func=None,
    framework: str = "pytorch",
) -> Pruning:
    """Build a :class:`Pruning` for ``model``; with an optimizer, hooks run by themselves.

    Without an optimizer, call the ten hooks from the training loop. With one, the hooks
    are installed around ``optimizer.step()`` and the model's forward so an unchanged
    training loop prunes (see :meth:`Pruning.attach`). With a ``dataloader`` (and ``loss_func``),
    pruners that prune from calibration batches (``retrain_free``) run over it at once
    (:meth:`Pruning.calibrate`), as in INC. ``framework`` is accepted for INC compatibility
    (only PyTorch is supported).

    Example:
        >>> import torch
        >>> from workbench.pruner import WeightPruningConfig
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> pruning = prepare_pruning(model, WeightPruningConfig(target_sparsity=0.5,
        ...     pruning_type="magnitude", start_step=1, end_step=1), opt)
        >>> for _ in range(3):
        ...     model(torch.randn(4, 8)).sum().backward(); opt.step(); opt.zero_grad()
        >>> float((model[0].weight == 0).float().mean())
        0.5
    """
    if framework not in ("pytorch", "torch"):
        raise ConfigError(f"framework: {framework!r} is not supported; allowed: ['pytorch']")
    pruning = Pruning(model, config)
    if optimizer is not None:
        pruning.attach(optimizer)
    if dataloader is not None and any(getattr(p, "calibrates", False) for p in pruning.pruners):
        pruning.calibrate(dataloader, loss_func)  # retrain-free pruning is done here, as in INC
    return pruning
