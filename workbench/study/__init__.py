"""All Optuna: a study's factories, objective, recovery and budget, workers, run and report.

Owns the Optuna side of a search: storages, samplers and early stopping (:mod:`.factories`), the
objective that runs one tracked trial (:mod:`.objective`), recovery of trials a dead process left
(:mod:`.recovery`), the trial loop and budget shared by processes (:mod:`.budget`), worker
processes (:mod:`.workers`), :func:`run_study` (:mod:`.run`), reruns (:mod:`.rerun`), console
logging (:mod:`.console`), the study's summary artifacts (:mod:`.report`, :mod:`.summary`) and the parent
run's description, its front as a markdown table (:mod:`.description`; the
front, bins, importances and figures they use are :mod:`workbench.results`). May import every
layer below it: tracking, results, experiment, trial, benchmarks, pruner, infra; never analysis.
"""

from workbench.study.factories import make_storage, resolve_storage
from workbench.study.objective import Objective, run_tracked_trial
from workbench.study.run import run_study
from workbench.study.workers import WorkerError

__all__ = ["Objective", "WorkerError", "make_storage", "resolve_storage", "run_study", "run_tracked_trial"]
