"""Provenance tags: the git queries started early give the same tags as asked late; no git, no error."""

from __future__ import annotations

import subprocess

import pytest

from workbench.tracking import provenance


@pytest.fixture
def fresh(monkeypatch):
    """No tags cached and no queries pending, before and after the test."""
    provenance.run_tags.cache_clear()
    monkeypatch.setattr(provenance, "_started", None)
    yield
    provenance.run_tags.cache_clear()


def test_prefetched_tags_are_the_tags_asked_late(fresh):
    late = provenance.run_tags()
    provenance.run_tags.cache_clear()
    provenance.prefetch_run_tags()
    assert provenance._started and all(isinstance(p, subprocess.Popen) for p in provenance._started)
    assert provenance.run_tags() == late
    assert provenance._started == []  # collected
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance._REPO, capture_output=True, text=True)
    if git.returncode == 0:  # a checkout (an installed copy has no commit: "unknown")
        assert late["workbench.git_commit"] == late["mlflow.source.git.commit"] == git.stdout.strip()


def test_prefetch_after_the_tags_are_known_starts_nothing(fresh, monkeypatch):
    provenance.run_tags()
    monkeypatch.setattr(provenance, "_start", lambda: pytest.fail("git asked again"))
    provenance.prefetch_run_tags()
    assert not provenance._started


def test_without_git_the_commit_is_unknown(fresh, monkeypatch):
    def no_git():
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance, "_start", no_git)
    provenance.prefetch_run_tags()  # does not raise
    tags = provenance.run_tags()
    assert tags["workbench.git_commit"] == "unknown" and tags["workbench.git_dirty"] == "false"
    assert "mlflow.source.git.commit" not in tags and tags["workbench.version.torch"] != "unknown"
