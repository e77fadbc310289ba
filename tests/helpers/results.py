"""Trial results without training: a complete :class:`TrialResult` and a stand-in trial runner."""

from __future__ import annotations

from workbench.study.objective import TrialRunner
from workbench.trial import SPARSITY_KEYS, TrialResult

__all__ = ["FAKE", "fake_build_pruning_config", "fake_run_trial", "make_result"]


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
        benchmark=benchmark,
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


FAKE = TrialRunner(build_config=fake_build_pruning_config, run=fake_run_trial)
"""A runner to inject into a study (``run_study(..., runner=FAKE)``): tests the study, not the trial."""


def full_disk_run(benchmark, pruning_config, training, seed, on_eval=None, *, cache_dir=None):
    """A trial whose write fails for lack of space (a module-level function: workers import it)."""
    raise OSError(28, "No space left on device", "/data/full/checkpoint.pt")


FULL_DISK = TrialRunner(build_config=fake_build_pruning_config, run=full_disk_run)
"""A runner whose every trial hits a full disk."""
