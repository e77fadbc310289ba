"""scikit-learn's bundled 8x8 digits (1797 images, 10 classes) with a fixed stratified split.

The data ships inside scikit-learn, so nothing is downloaded. The split is fixed (stratified,
25 % test, ``random_state=0``) and independent of the trial seed, so every trial and every seed
is scored on the same 450 test images.
"""

from __future__ import annotations

import functools

import torch

from .base import BenchmarkData

__all__ = ["digits_data"]


@functools.lru_cache(maxsize=1)
def _split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # start-up: scikit-learn loads only when a digits benchmark is built
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32) / 16.0  # noqa: E731 - pixel values are 0..16
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_tr), as_y(y_tr), as_x(x_te), as_y(y_te)


def digits_data(*, images: bool = False) -> BenchmarkData:
    """Train/test tensors; ``x`` is ``[N, 64]`` in [0, 1], or ``[N, 1, 8, 8]`` with ``images=True``."""
    x_tr, y_tr, x_te, y_te = _split()
    if images:
        x_tr, x_te = x_tr.view(-1, 1, 8, 8), x_te.view(-1, 1, 8, 8)
    return BenchmarkData(x_tr.clone(), y_tr.clone(), x_te.clone(), y_te.clone())
