"""Helpers shared by the tests (the one place for builders of experiments, results and stores).

- :mod:`helpers.experiments`: small experiment dicts and files.
- :mod:`helpers.results`: a complete :class:`~workbench.trial.TrialResult` and a stand-in trial runner.
- :mod:`helpers.study`: a ``workbench search`` subprocess, polling its stores, its MLflow runs.
- :mod:`helpers.analysis_store`: an MLflow store with known runs and curves, for analysis.
- :mod:`helpers.browser`: a page's DOM as headless Chromium renders it (browser tests).
- :mod:`helpers.pruner`: small models and a training loop for the pruner library.
- :mod:`helpers.postgres`: a throw-away PostgreSQL server and an MLflow server on it.
- :mod:`helpers.hf_tiny`: a local word-level tokenizer, tiny BERT/GPT-2 configs and text splits
  (imports transformers: only after ``pytest.importorskip("transformers")``).
"""

#: The one limit on a test's waits for a process, a server or a condition: a safety net so that a
#: hung test ends, never a budget tuned to a quiet machine. Every wait returns on its event (an
#: exit code, a line printed, a server answering, a state reached) long before it on any machine.
SAFETY_NET_S = 900.0
