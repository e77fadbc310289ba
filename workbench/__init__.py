"""Sparsity research workbench: Optuna studies over pruning configs, every trial tracked in MLflow.

The subpackages are the architecture; each imports only the ones listed after it (enforced by
the import contracts in ``pyproject.toml``, checked by ``make test``):

============  ==========================================================================
``cli``       the ``workbench`` command
``analysis``  tidy frames, statistics and figures of finished studies (the notebooks' API)
``study``     all Optuna: factories, objective, recovery, workers, ``run_study``, report
``tracking``  all MLflow: tracker, metric keys, per-trial figure, spool, local server
``experiment``  experiment YAML: schema, validation, ``--set`` overrides
``trial``     one trial: search dimensions, pruning config, fine-tuning loop, result types
``benchmarks``  models, data and their cached dense baselines
``infra``     signals, file locks, store URLs, process identity (standard library only)
``pruner``    the INC-compatible pruning library (torch and yaml only)
============  ==========================================================================

See ``docs/design.md`` for the data flow and the contracts.
"""


def __getattr__(name: str):  # noqa: ANN202 - lazy: ``import workbench`` stays cheap
    """``workbench.export``: :func:`workbench.study.export.export`, imported on first use."""
    if name == "export":
        from workbench.study.export import export  # on first use: ``import workbench`` stays cheap

        return export
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
