"""Shared test setup: one torch thread per test process.

With two cores shared by pytest and the OS, OpenMP's spinning threads make small tensor ops
several times slower; one thread keeps the suite fast and results bit-reproducible.
"""
from __future__ import annotations

import torch

torch.set_num_threads(1)
