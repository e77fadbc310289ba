"""Process and file plumbing shared by the layers above: signals, file locks, store URLs.

Owns what is neither pruning nor tracking nor Optuna: Ctrl-C/SIGTERM handling
(:mod:`.interrupts`), the one advisory file lock (:mod:`.locks`), files written to survive a crash
(:mod:`.durable`), the one parser of store URLs
and credential redaction (:mod:`.stores`, :mod:`.redaction`), store URLs checked before they are
opened (:mod:`.store_checks`), console logging (:mod:`.console`), server processes that never
outlive the command (:mod:`.serve`), worker identity (:mod:`.processes`), the cache folder
(:mod:`.cache_dir`) and importing a user's modules (:mod:`.plugins`). Imports the standard
library and, for its one error type, :class:`workbench.pruner.ConfigError`; every layer above
may use it.
"""
