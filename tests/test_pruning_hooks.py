"""The ten pruning hooks are real methods (issue 26, point 3): defined in the class with a
docstring, visible to ``help()``, IDEs and type checkers, not synthesised by ``__getattr__``."""

from __future__ import annotations

import functools
import inspect
import pydoc

import pytest
import torch
from torch import nn

from workbench.pruner import BasePruner, Pruning, WeightPruningConfig
from workbench.pruner.pruning import HOOKS

# INC's hooks (the seeds' BasePruner, /work/shared/seeds/pruners.txt) with their arguments
INC_HOOKS = {
    "on_train_begin": [],
    "on_epoch_begin": ["epoch"],
    "on_step_begin": ["local_step"],
    "on_before_optimizer_step": [],
    "on_after_optimizer_step": [],
    "on_step_end": [],
    "on_epoch_end": [],
    "on_before_eval": [],
    "on_after_eval": [],
    "on_train_end": [],
}


def test_the_ten_hooks_are_inc_s():
    assert sorted(HOOKS) == sorted(INC_HOOKS) and len(HOOKS) == 10


@pytest.mark.parametrize("cls", [Pruning, BasePruner])
@pytest.mark.parametrize("hook", HOOKS)
def test_each_hook_is_a_method_defined_in_the_class_with_a_docstring(cls, hook):
    assert hook in vars(cls), f"{cls.__name__}.{hook} is not defined in the class"
    method = inspect.getattr_static(cls, hook)
    assert inspect.isfunction(method) and method.__qualname__ == f"{cls.__name__}.{hook}"
    assert inspect.getdoc(method)
    required = [
        p.name for p in list(inspect.signature(method).parameters.values())[1:] if p.default is inspect.Parameter.empty
    ]
    assert set(required) <= set(INC_HOOKS[hook])  # INC's calls work: no extra required argument
    assert f"{hook}(self" in _help_text(cls)  # what help() shows


@functools.cache
def _help_text(cls) -> str:
    return pydoc.render_doc(cls, renderer=pydoc.plaintext)


def test_pruning_has_no_getattr_and_unknown_names_fail_normally():
    assert "__getattr__" not in vars(Pruning)
    pruning = Pruning(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), WeightPruningConfig(pruning_type="magnitude"))
    with pytest.raises(AttributeError):
        pruning.on_step_middle()  # noqa: B018 - a misspelt hook is an error, as on any object


def test_each_hook_calls_every_pruner_s_hook_in_order(monkeypatch):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    config = WeightPruningConfig(
        [{"op_names": ["^0$"]}, {"op_names": ["^2$"]}], pruning_type="magnitude", target_sparsity=0.5
    )
    pruning = Pruning(model, config)
    calls = []
    for index, pruner in enumerate(pruning.pruners):
        for hook in HOOKS:
            original = getattr(pruner, hook)

            def spy(*args, _hook=hook, _index=index, _original=original):
                calls.append((_hook, _index, args))
                return _original(*args)

            monkeypatch.setattr(pruner, hook, spy)
    args = {"on_train_begin": (None,), "on_epoch_begin": (3,), "on_step_begin": (0,)}
    for hook in HOOKS:
        getattr(pruning, hook)(*args.get(hook, ()))
    assert calls == [(hook, i, args.get(hook, ())) for hook in HOOKS for i in (0, 1)]
    assert float((model[0].weight == 0).float().mean()) == 0.5  # the hooks really pruned


def test_a_meta_model_s_hooks_refuse_to_run():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    pruning = Pruning(model, WeightPruningConfig(pruning_type="magnitude"))
    for hook in ("on_epoch_end", "on_after_eval"):  # formerly synthesised hooks check the data too
        with pytest.raises(ValueError, match="meta"):
            getattr(pruning, hook)()
