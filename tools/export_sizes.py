"""The export formats' sizes on disk, measured: ``python -m tools.export_sizes`` (docs/export.md's table).

For the tests' tiny random Hugging Face models (``tests/family_plugins.py``: a 2-layer BERT
classifier and a 2-layer GPT-2, nothing downloaded) it runs one small study per model (patterns
``1x1``, ``4x1`` and ``2:4`` at 0.5 and ``1x1`` at 0.8, every trial's model kept), exports every
trial as ``torch``, ``hf`` and ``compressed-tensors`` (each export reloaded and checked by
:func:`workbench.export`) and prints one Markdown row per trial: bytes on disk and the fraction of
the dense fp32 safetensors checkpoint, with the logged sparse model's size beside them. Nothing is
asserted (the tests check the exports); the numbers go into docs/export.md. Example:

    >>> rows = export_sizes(Path("/tmp/sizes"))   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["export_sizes", "main"]

FAMILIES = (("tiny_text", "accuracy", "2-layer BERT classifier"), ("tiny_lm", "perplexity", "2-layer GPT-2"))
FORMATS = ("torch", "hf", "compressed-tensors")
TRIALS = ((["1x1", "4x1", "2:4"], 0.5), (["1x1"], 0.8))


def _experiment(plugin: str, metric: str, patterns: list[str], target: float) -> dict[str, Any]:
    return {
        "name": f"sizes-{plugin}-{target}",
        "benchmark": f"family_plugins:{plugin}",
        "training": {"steps": 12, "lr": 0.001, "optimizer": "adamw", "eval_every": 6, "pruning_frequency": 3},
        "search_space": {
            "pattern": patterns,
            "criterion": ["magnitude"],
            "scheduler": ["iterative"],
            "target_sparsity": target,
        },
        "study": {
            "n_trials": len(patterns),
            "sampler": "grid",
            "objectives": [metric, "sparsity"],
            "pruner": "none",
            "seed": 0,
        },
        "tracking": {"log_model": "all"},
    }


def export_sizes(folder: Path) -> list[dict[str, Any]]:
    """Run the studies in ``folder``, export every trial in :data:`FORMATS`; one row per trial."""
    # the study layer (torch, MLflow, Optuna) loads when the tool runs, not when `--help` is asked
    import workbench
    from workbench.experiment import parse_experiment
    from workbench.study.run import run_study
    from workbench.tracking import Tracker

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # family_plugins
    uri = f"sqlite:///{folder}/mlflow.db"
    tracker = Tracker(uri)
    rows = []
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for plugin, metric, label in FAMILIES:
            for patterns, target in TRIALS:
                data = _experiment(plugin, metric, patterns, target)
                study = run_study(parse_experiment(data), tracking_uri=uri, storage=f"sqlite:///{folder}/optuna.db")
                for trial in study.trials:
                    run_id = trial.user_attrs["mlflow_run_id"]
                    run = tracker.client.get_run(run_id)
                    row = {
                        "model": label,
                        "pattern": trial.params.get("pattern", patterns[0]),  # a one-choice dimension is fixed
                        "target": target,
                        "sparse_model": int(run.data.tags["workbench.model_bytes"]),
                    }
                    for fmt in FORMATS:
                        meta = workbench.export(run_id, fmt, folder / "exports" / f"{run_id}-{fmt}", tracking_uri=uri)
                        row["dense"] = meta["sizes"]["dense_fp32_bytes"]
                        row[fmt] = meta["sizes"]["export_bytes"]
                        if "compression" in meta:
                            row["layout"] = meta["compression"]["format"]
                    rows.append(row)
    finally:
        os.chdir(cwd)
    return rows


def _cell(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:,} ({row[key] / row['dense']:.2f})"


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown table (``--dir``: keep the studies and exports there; default: a temporary folder)."""
    parser = argparse.ArgumentParser(prog="python -m tools.export_sizes", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="folder for the studies and exports (kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = export_sizes(folder)
    print("| model, pattern, target | dense fp32 | logged sparse model | `torch` | `hf` | `compressed-tensors` |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']}, `{r['pattern']}`, {r['target']} | {r['dense']:,} | {_cell(r, 'sparse_model')} | "
            f"{_cell(r, 'torch')} | {_cell(r, 'hf')} | {_cell(r, 'compressed-tensors')} `{r['layout']}` |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
