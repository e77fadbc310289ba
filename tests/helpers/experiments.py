"""Small experiment dicts and files for tests that run studies."""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["experiment", "with_changes", "write_experiment"]


def experiment(
    name: str,
    benchmark: str,
    *,
    n_trials: int,
    steps: int = 20,
    targets=(0.5, 0.9),
    sampler: str = "grid",
    step: float | None = None,
) -> dict:
    """A one-knob study over ``targets``: a grid walks the two ends; a random or TPE sampler
    draws from a 0.05 grid, so it has more distinct points than ``n_trials`` (exact repeats do
    not count toward it, and a space with too few points would end the study early)."""
    low, high = targets
    step = step or (round(high - low, 6) if sampler == "grid" else 0.05)
    return {
        "name": name,
        "benchmark": benchmark,
        "training": {
            "steps": steps,
            "batch_size": 32,
            "lr": 0.05,
            "eval_every": 2,
            "pruning_frequency": 2,
            "start_fraction": 0.1,
            "end_fraction": 0.5,
            "threads": 1,
        },
        "search_space": {
            "pattern": "1x1",
            "criterion": "magnitude",
            "scheduler": "oneshot",
            "target_sparsity": {"low": low, "high": high, "step": step},
        },
        "study": {"n_trials": n_trials, "sampler": sampler, "objectives": ["accuracy"], "pruner": "none", "seed": 0},
    }


def write_experiment(folder: Path, data: dict) -> Path:
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_changes(data: dict, **changes) -> dict:
    """``data`` with ``changes`` applied: dotted keys (``"training.steps"``) to new values, sections made as needed."""
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        section = data
        for key in path:
            section = section.setdefault(key, {})
        section[last] = value
    return data
