"""``make bench --only posttraining``: the authors' block mode vs true-sequential, time and peak memory side by side.

A randomly initialised LLaMA-shaped model (hidden 512, MLP 1376, 4 decoder blocks, 8 heads,
vocabulary 1000; ``quick``: 2 blocks) is pruned to 50% (unstructured) from random calibration
tokens (32 samples of 256 tokens; ``quick``: 8 of 128) by Wanda and by SparseGPT, once with
``layers_per_pass="block"`` (the authors' drivers: one pass per decoder block) and once with
``"true-sequential"`` (one pass per Linear). On CUDA a third row per method onloads the model
block by block from the CPU (``execution_device``). Each measurement runs in a fresh process, so
its peak memory is its own: ``peak RSS +MiB`` is the process's peak resident memory above what it
held before pruning, ``peak CUDA MiB`` the CUDA allocator's peak (CUDA only). ``seconds`` is the
median over repetitions of the ``prune_posttraining`` call.
"""

from __future__ import annotations

import copy
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tools import bench_device
from tools.bench_device import now
from workbench.pruner import prune_posttraining
from workbench.trial.cost import PeakMemory

__all__ = ["posttraining_table"]


def _model(blocks: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=blocks,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval()


def _measure(job: tuple) -> dict:
    """One measurement in this (fresh) process: ``(method, mode, onload, device, blocks, samples, seq, repeats, threads)``."""
    method, mode, onload, device, blocks, samples, seq, repeats, threads = job
    torch.set_num_threads(threads)
    device = torch.device(device)
    base = _model(blocks)
    g = torch.Generator().manual_seed(1)
    batches = [{"input_ids": torch.randint(0, 1000, (4, seq), generator=g)} for _ in range(samples // 4)]
    seconds, memory, passes = [], {}, 0
    for _ in range(repeats):
        model = copy.deepcopy(base).to("cpu" if onload else device)
        calib = batches if onload else [{k: v.to(device) for k, v in b.items()} for b in batches]
        with PeakMemory(device) as peak:
            tick = now()
            report = prune_posttraining(
                model, calib, method, 0.5, layers_per_pass=mode, execution_device=device if onload else None
            )
            seconds.append(now() - tick)
        memory, passes = peak.result(), report.passes
    row = {
        "method": method,
        "layers_per_pass": mode + (" (onloaded)" if onload else ""),
        "passes": passes,
        "seconds": statistics.median(seconds),
        "peak RSS +MiB": memory["peak_rss_increase_mb"],
    }
    if "peak_cuda_mb" in memory:
        row["peak CUDA MiB"] = memory["peak_cuda_mb"]
    return row


def posttraining_table(*, repeats: int = 3, quick: bool = False, threads: int | None = None) -> list[dict]:
    """One row per (method, calibration mode), each measured in a fresh process on the bench's device."""
    device = bench_device.current()
    blocks, samples, seq = (2, 8, 128) if quick else (4, 32, 256)
    threads = threads or torch.get_num_threads()
    jobs = []
    for method in ("wanda", "sparsegpt"):
        for mode in ("block", "true-sequential"):
            jobs.append((method, mode, False, str(device), blocks, samples, seq, repeats, threads))
        if device.type == "cuda":
            jobs.append((method, "block", True, str(device), blocks, samples, seq, repeats, threads))
    rows = []
    context = multiprocessing.get_context("spawn")
    for job in jobs:  # one process per measurement, one at a time: the peaks do not mix
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            rows.append(pool.submit(_measure, job).result())
    return rows
