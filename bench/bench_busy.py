"""Selection on a busy machine: k-center greedy with the default thread count and with one
thread, on a quiet machine and with busy processes beside it (one spinning Python process
per core by default, BUSY_PROCESSES to change), brute force and auto.

The library's promise: with default settings a call is never much slower than the same call
on one thread, whatever the load. Read the ratio default / one thread within a run (the
busy processes make absolute times depend on the machine and on the scheduler).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import uwe_kernels
from bench._data import pick
from bench.bench_pruned import gaussian_mixture
from bench.conftest import require_backend

N, D, BUDGET = pick((20_000, 128, 100), (50_000, 512, 300), smoke=(3_000, 16, 10))
BUSY_SECONDS = 600  # each busy process ends on its own after this, should the suite be killed
BUSY_DEFAULT = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@pytest.fixture(params=[0, int(os.environ.get("BUSY_PROCESSES", BUSY_DEFAULT))], ids=lambda k: f"busy{k}")
def busy(request: pytest.FixtureRequest) -> Iterator[int]:
    """`count` spinning processes for the duration of one case, stopped after it."""
    count = int(request.param)
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=BUSY_SECONDS)]) for _ in range(count)]
    try:
        yield count
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@pytest.fixture(params=["default", 1], ids=lambda t: f"threads-{t}")
def threads(request: pytest.FixtureRequest) -> Iterator[Any]:
    before = uwe_kernels.get_num_threads()
    if request.param != "default":
        uwe_kernels.set_num_threads(int(request.param))
    try:
        yield request.param
    finally:
        uwe_kernels.set_num_threads(before)


@pytest.mark.parametrize("algorithm", ["brute", "auto"])
def bench_kcenter_greedy_busy(measure: Any, benchmark: Any, busy: int, threads: Any, algorithm: str) -> None:
    require_backend("cpp")
    x = gaussian_mixture(N, D, clusters=20, intrinsic=8, seed=3)
    benchmark.group = f"busy kcg {algorithm} n{N} d{D} b{BUDGET}"
    measure(lambda: uwe_kernels.kcenter_greedy(x, None, BUDGET, algorithm=algorithm, backend="cpp"),
            provider=f"kcg {algorithm}[cpp] threads={threads} busy={busy}", shape=f"n{N}-d{D}-b{BUDGET}",
            bytes_moved=float(BUDGET * N * D * 4), op="kcenter_greedy", algorithm=algorithm, busy=busy,
            threads=str(threads), n=N, d=D, budget=BUDGET)
