"""Plug-in modules for the tests: importing one registers extensions for the whole process, so
pytest's doctest collection must not import them; each test imports its plug-in in a fixture
that undoes the registrations."""

collect_ignore = ["toy_pruner_plugin.py"]
