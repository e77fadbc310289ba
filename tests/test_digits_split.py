"""The digits split cached in the cache folder: the same tensors as scikit-learn's split, damage
recomputed, an unwritable folder harmless, and a process with the file never imports scikit-learn."""

from __future__ import annotations

import pytest
import torch

from workbench.benchmarks import digits


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder for the split, and no split held in this process."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    digits._split.cache_clear()
    yield tmp_path
    digits._split.cache_clear()


def _same(a, b) -> bool:
    return all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_cached_split_is_scikit_learns_split(cache):
    first = digits._split()  # computed and written
    path = digits.split_cache_path()
    assert path.parent == cache and path.is_file()
    digits._split.cache_clear()
    assert digits._read(path) is not None
    assert _same(digits._split(), digits._compute())
    assert _same(first, digits._compute())


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "not a split"])
def test_a_damaged_cache_file_is_computed_again_and_rewritten(cache, damage):
    digits._split()
    path = digits.split_cache_path()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "flipped byte":  # a pixel changed inside the saved tensors: only the checksum sees it
        parts = torch.load(path, weights_only=True)
        parts["parts"]["x_test"][3, 5] += 1.0
        torch.save(parts, path)
    else:
        torch.save({"parts": {"x_train": torch.zeros(2)}}, path)
    assert digits._read(path) is None
    digits._split.cache_clear()
    assert _same(digits._split(), digits._compute())
    assert digits._read(path) is not None  # rewritten whole


def test_an_unwritable_cache_folder_still_gives_the_split(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(blocker / "cache"))  # a folder under a file: mkdir fails
    digits._split.cache_clear()
    try:
        assert _same(digits._split(), digits._compute())
    finally:
        digits._split.cache_clear()
    assert not (blocker / "cache").exists()


@pytest.mark.e2e
def test_a_process_with_the_cached_split_never_imports_scikit_learn(cache):
    from test_command_imports import loaded_after

    digits._split()  # the file a first process leaves
    build = "from workbench.benchmarks import get_benchmark; get_benchmark('mlp-digits'); get_benchmark('cnn-digits')"
    assert loaded_after(build, ("sklearn", "torch"), cache) == ["torch"]
