"""Selection on a busy machine: k-center greedy with the default thread count and with one
thread, on a quiet machine and with busy processes beside it (one spinning Python process
per core by default, BUSY_PROCESSES to change), brute force and auto, cpp and numba.

The library's promise: with default settings a call is never much slower than the same call
on one thread, whatever the load. Read the ratio default / one thread within a run (the
busy processes make absolute times depend on the machine and on the scheduler).
`python -m bench.bench_busy` runs the goal measurement: per backend and algorithm, calls with
the default threads and with one thread alternated, quiet and busy phases alternated, the
median and best of each, and the ratio default / one thread.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
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


@contextlib.contextmanager
def spinning(count: int, seconds: int = BUSY_SECONDS) -> Iterator[int]:
    """`count` spinning processes while the block runs, stopped after it."""
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=seconds)]) for _ in range(count)]
    try:
        yield count
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@pytest.fixture(params=[0, int(os.environ.get("BUSY_PROCESSES", BUSY_DEFAULT))], ids=lambda k: f"busy{k}")
def busy(request: pytest.FixtureRequest) -> Iterator[int]:
    """Spinning processes for the duration of one case."""
    with spinning(int(request.param)) as count:
        yield count


@contextlib.contextmanager
def thread_setting(setting: Any) -> Iterator[Any]:
    """"default" (the package's own count) or a thread count, restored after the block."""
    before = uwe_kernels.get_num_threads()
    if setting != "default":
        uwe_kernels.set_num_threads(int(setting))
    try:
        yield setting
    finally:
        uwe_kernels.set_num_threads(before)


@pytest.fixture(params=["default", 1], ids=lambda t: f"threads-{t}")
def threads(request: pytest.FixtureRequest) -> Iterator[Any]:
    with thread_setting(request.param) as setting:
        yield setting


@pytest.mark.parametrize("algorithm", ["brute", "auto"])
@pytest.mark.parametrize("backend", ["cpp", "numba"])
def bench_kcenter_greedy_busy(measure: Any, benchmark: Any, busy: int, threads: Any, backend: str,
                              algorithm: str) -> None:
    require_backend(backend)
    x = gaussian_mixture(N, D, clusters=20, intrinsic=8, seed=3)
    benchmark.group = f"busy kcg {algorithm}[{backend}] n{N} d{D} b{BUDGET}"
    measure(lambda: uwe_kernels.kcenter_greedy(x, None, BUDGET, algorithm=algorithm, backend=backend),
            provider=f"kcg {algorithm}[{backend}] threads={threads} busy={busy}", shape=f"n{N}-d{D}-b{BUDGET}",
            bytes_moved=float(BUDGET * N * D * 4), op="kcenter_greedy", algorithm=algorithm, busy=busy,
            threads=str(threads), n=N, d=D, budget=BUDGET, backend=backend)


# ---------------------------------------------------------------- the goal measurement


def goal(backend: str, algorithm: str, x: Any, budget: int, busy: int, phases: int, rounds: int) -> dict[str, Any]:
    """Quiet and busy phases alternated `phases` times; in each, `rounds` pairs of calls (default
    threads, one thread) alternated. Median and best per condition, ratios default / one thread."""
    def call() -> None:
        uwe_kernels.kcenter_greedy(x, None, budget, algorithm=algorithm, backend=backend)

    call()  # compiles (numba), loads the module
    times: dict[str, list[float]] = {f"{load}-{setting}": [] for load in ("quiet", "busy") for setting in ("default", "1")}
    for _ in range(phases):
        for load, count in (("quiet", 0), ("busy", busy)):
            with spinning(count, seconds=120):
                time.sleep(0.2 if count else 0.0)  # the spinners get going
                for _ in range(rounds):
                    for setting in ("default", "1"):
                        with thread_setting(setting):
                            start = time.perf_counter()
                            call()
                            times[f"{load}-{setting}"].append(time.perf_counter() - start)
    row: dict[str, Any] = {"backend": backend, "algorithm": algorithm, "n": len(x), "d": x.shape[1], "budget": budget,
                           "busy_processes": busy, "load_average": os.getloadavg()[0]}
    for key, values in times.items():
        row[f"{key}_median_s"] = statistics.median(values)
        row[f"{key}_best_s"] = min(values)
    for load in ("quiet", "busy"):
        row[f"{load}_ratio_median"] = row[f"{load}-default_median_s"] / row[f"{load}-1_median_s"]
        row[f"{load}_ratio_best"] = row[f"{load}-default_best_s"] / row[f"{load}-1_best_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="*", default=["cpp", "numba"])
    parser.add_argument("--algorithms", nargs="*", default=["brute", "auto"])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--busy", type=int, default=int(os.environ.get("BUSY_PROCESSES", BUSY_DEFAULT)))
    parser.add_argument("--phases", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    x = gaussian_mixture(args.n, args.d, clusters=20, intrinsic=8, seed=3)
    print(json.dumps({"threads": uwe_kernels.get_num_threads(), "load_average": os.getloadavg()}), flush=True)
    for backend in args.backends:
        for algorithm in args.algorithms:
            print(json.dumps(goal(backend, algorithm, x, args.budget, args.busy, args.phases, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
