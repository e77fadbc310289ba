"""Trial results without training: a complete :class:`TrialResult` and a stand-in trial runner."""

from __future__ import annotations

import dataclasses
import math

from workbench.study.objective import TrialRunner
from workbench.trial import SPARSITY_KEYS, TrialResult

__all__ = [
    "FAKE",
    "PERPLEXITY",
    "fake_build_pruning_config",
    "fake_goal",
    "fake_run_trial",
    "make_perplexity_result",
    "make_result",
    "perplexity_run_trial",
]


def make_result(layers=("net.0", "net.2"), steps=(0, 10, 20), seed=0) -> TrialResult:
    """A complete result of two pruned layers and a head, with every curve filled."""
    curve = {s: round(s / 40, 3) for s in steps}
    return TrialResult(
        benchmark="mlp-digits",
        seed=seed,
        params={"pattern": "4x1", "criterion": "magnitude"},
        pruning_config={
            "pruning_configs": [{"pattern": "4x1", "pruning_type": "magnitude_progressive"}],
            "pattern": "1x1",
            "target_sparsity": 0.5,
            "pruning_scope": "local",
        },
        training={"steps": 20, "lr": 0.01},
        value=0.9,
        dense_value=0.95,
        sparsity={k: dict(curve) for k in SPARSITY_KEYS},
        layer_sparsity={name: dict(curve) for name in layers},
        layer_blockwise_sparsity={name: dict(curve) for name in layers},
        train_loss={s: 1.0 / (s + 1) for s in range(1, 21)},
        eval_values={10: 0.91, 20: 0.9},
        layers=[
            {"name": n, "type": "Linear", "shape": [8, 8], "pruned": True, "reason": "", "pruner": 0} for n in layers
        ]
        + [
            {
                "name": "head",
                "type": "Linear",
                "shape": [10, 8],
                "pruned": False,
                "reason": "last linear layer",
                "pruner": None,
            }
        ],
        timings={"total": 10.0, "finetune": 8.0},
    )


def fake_build_pruning_config(params, *, training, fixed=None):
    """A deterministic stand-in for the config builder: progressive + N:M is rejected."""
    if params.get("pruner") == "progressive" and ":" in params["pattern"]:
        raise ValueError("pruner: progressive needs an NxM pattern")
    entry = {"pattern": params["pattern"], "pruning_type": params["criterion"]}
    return {"pruning_configs": [entry], "target_sparsity": params["target_sparsity"], **(fixed or {})}


def make_perplexity_result(**changes) -> TrialResult:
    """:func:`make_result` of a language-model task: perplexity (minimised) and its token accuracy."""
    base = make_result()
    fields = dict(
        metric="perplexity",
        direction="minimize",
        value=40.0,
        dense_value=30.0,
        metrics={"perplexity": 40.0, "token_accuracy": 0.4},
        dense_metrics={"perplexity": 30.0, "token_accuracy": 0.5},
        eval_values={10: 45.0, 20: 40.0},
        eval_metrics={"perplexity": {10: 45.0, 20: 40.0}, "token_accuracy": {10: 0.35, 20: 0.4}},
    )
    fields.update(changes)
    return dataclasses.replace(base, **fields)


def fake_goal(spec, params=None):
    """The stand-in benchmarks' (metric, direction): accuracy, maximised (no benchmark is built)."""
    return "accuracy", "maximize"


def perplexity_goal(spec, params=None):
    """A stand-in language model's (metric, direction): perplexity, minimised."""
    return "perplexity", "minimize"


def fake_run_trial(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    """A deterministic stand-in for the trial: 2:4 trials score badly, denser trials score better."""
    target = pruning_config["target_sparsity"]
    final = (0.3 if ":" in pruning_config["pruning_configs"][0]["pattern"] else 0.9) - 0.1 * target
    evals = {}
    for step in range(training.eval_every, training.steps + 1, training.eval_every):
        evals[step] = final * step / training.steps
        if on_eval:
            on_eval(step, evals[step])
    curve = {0: 0.0, training.steps: target}
    return TrialResult(
        benchmark=getattr(benchmark, "name", benchmark),  # a spec, or the task built from benchmark_params
        seed=seed,
        params={},
        pruning_config=pruning_config,
        training=training.to_dict(),
        value=final,
        dense_value=0.95,
        sparsity={k: dict(curve) for k in SPARSITY_KEYS},
        layer_sparsity={"fc.0": dict(curve)},
        layer_blockwise_sparsity={"fc.0": dict(curve)},
        train_loss={s: 1.0 / s for s in range(1, training.steps + 1)},
        eval_values=evals,
        layers=[{"name": "fc.0", "type": "Linear", "shape": [8, 8], "pruned": True, "reason": "", "pruner": 0}],
        timings={"total": 1.0},
    )


FAKE = TrialRunner(build_config=fake_build_pruning_config, run=fake_run_trial, goal=fake_goal)
"""A runner to inject into a study (``run_study(..., runner=FAKE)``): tests the study, not the trial."""


def perplexity_run_trial(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    """:func:`fake_run_trial` as a language model would report it: perplexity, lower is better.

    Perplexity is ``100 * (1 - accuracy)`` of the fake trial: 2:4 trials and sparser trials are worse
    (higher), as there.
    """
    seen = {}

    def report(step, value):
        seen[step] = 100.0 * (1.0 - value)
        if on_eval:
            on_eval(step, seen[step])

    base = fake_run_trial(benchmark, pruning_config, training, seed, report, cache_dir=cache_dir)
    value, dense = 100.0 * (1.0 - base.value), 100.0 * (1.0 - base.dense_value)
    return dataclasses.replace(
        base,
        metric="perplexity",
        direction="minimize",
        value=value,
        dense_value=dense,
        eval_values=dict(seen),
        metrics={"perplexity": value, "loss": math.log(value)},
        dense_metrics={"perplexity": dense, "loss": math.log(dense)},
        eval_metrics={"perplexity": dict(seen), "loss": {s: math.log(v) for s, v in seen.items()}},
    )


PERPLEXITY = TrialRunner(build_config=fake_build_pruning_config, run=perplexity_run_trial, goal=perplexity_goal)
"""A runner whose trials report perplexity (minimised): the study must minimise it."""


def full_disk_run(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    """A trial whose write fails for lack of space (a module-level function: workers import it)."""
    raise OSError(28, "No space left on device", "/data/full/checkpoint.pt")


FULL_DISK = TrialRunner(build_config=fake_build_pruning_config, run=full_disk_run, goal=fake_goal)
"""A runner whose every trial hits a full disk."""
