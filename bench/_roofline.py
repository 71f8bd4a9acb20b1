"""This machine's read bandwidth, measured in the same run as the benchmarks.

Every benchmark is compared with the time its unavoidable memory traffic takes at this
bandwidth (the floor): a kernel at 100% of the floor moves its bytes as fast as the
memory can deliver them.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

GIB = 2**30


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_read_bandwidth(nbytes: int = GIB, repeats: int = 5, threads: int | None = None) -> dict[str, float]:
    """Bytes per second reading `nbytes` of float32 with np.sum, one thread and all threads
    (numpy releases the GIL in reductions, so threads read disjoint slices in parallel).
    Returns {"single": B/s, "parallel": B/s, "best": B/s, "threads": T}."""
    import os

    threads = threads or os.cpu_count() or 1
    a = np.ones(nbytes // 4, dtype=np.float32)
    a.sum()  # fault the pages in before timing
    single = nbytes / _best_seconds(lambda: a.sum(), repeats)
    slices = np.array_split(a, threads)
    with ThreadPoolExecutor(threads) as pool:
        parallel = nbytes / _best_seconds(lambda: list(pool.map(np.sum, slices)), repeats)
    del a, slices
    return {"single": single, "parallel": parallel, "best": max(single, parallel), "threads": float(threads)}


def cuda_read_bandwidth(nbytes: int = GIB, repeats: int = 10) -> float | None:
    """Bytes per second for torch.sum over `nbytes` of float32 on the current CUDA device,
    timed with CUDA events; None without a visible device."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    x = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
    x.sum()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        x.sum()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    del x
    torch.cuda.empty_cache()
    return nbytes / best


def measure(nbytes: int = GIB) -> dict[str, float | None]:
    """{"cpu": B/s, "cpu_single": B/s, "cpu_threads": T, "cuda": B/s or None}."""
    cpu = cpu_read_bandwidth(nbytes)
    return {
        "cpu": cpu["best"],
        "cpu_single": cpu["single"],
        "cpu_threads": cpu["threads"],
        "cuda": cuda_read_bandwidth(nbytes),
    }


if __name__ == "__main__":
    for key, value in measure().items():
        shown = "none" if value is None else (f"{value / 1e9:.1f} GB/s" if key != "cpu_threads" else int(value))
        print(f"{key}: {shown}")
