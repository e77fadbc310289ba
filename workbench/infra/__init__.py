"""Process and file plumbing shared by the layers above: signals, file locks, store URLs.

Owns what is neither pruning nor tracking nor Optuna: Ctrl-C/SIGTERM handling
(:mod:`.interrupts`), the one advisory file lock (:mod:`.locks`) and the one parser of store URLs
and credential redaction (:mod:`.stores`). Imports the standard library only, nothing of the
workbench, so every layer may use it.
"""
