"""Shared benchmark machinery: the session roofline, providers from the backend registry,
and one `measure` that times a call and records bytes, GB/s and the fraction of the floor.

The suite runs against the installed package: Python run from a clone puts the source tree
first on sys.path, and a source tree without its compiled modules would shadow the install
(and skip every cpp and cuda case). `_installed_package` imports the installed copy instead,
unless the source tree was built in place.
"""
from __future__ import annotations

import ctypes
import gc
import importlib.machinery
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

SOURCE_TREE = Path(__file__).resolve().parents[1]


def _built_in_place(package: Path) -> bool:
    return any(package.glob("_ext_cpu*" + importlib.machinery.EXTENSION_SUFFIXES[0]))


def _installed_package() -> str:
    """Import uwe_kernels: the installed copy when the source tree has no compiled modules (the
    source tree then goes to the end of sys.path, where `bench` is still found, and spawned
    workers inherit the order). Returns where it came from, for the report header."""
    if "uwe_kernels" not in sys.modules and not _built_in_place(SOURCE_TREE / "uwe_kernels"):
        here = [p for p in sys.path if Path(p or os.curdir).resolve() == SOURCE_TREE]
        others = [p for p in sys.path if p not in here]
        if importlib.machinery.PathFinder.find_spec("uwe_kernels", others) is not None:
            sys.path[:] = [*others, str(SOURCE_TREE)]
    import uwe_kernels

    where = Path(uwe_kernels.__file__).resolve().parent
    if where == SOURCE_TREE / "uwe_kernels":
        how = "built in place" if _built_in_place(where) else "not built, and no installed copy was found"
        return f"{where} (the source tree, {how})"
    return f"{where} (installed)"


UWE_KERNELS_FROM = _installed_package()
import uwe_kernels  # noqa: E402  (the copy chosen above)

from bench import _roofline  # noqa: E402

DEVICE_BACKENDS = ("cuda", "triton")
# The float64 reference is the correctness oracle, written for clarity: timed only while
# its estimated work (multiply-adds) stays under this.
REFERENCE_MAX_WORK = 3e8


def pytest_configure(config: pytest.Config) -> None:
    # `--benchmark-disable` checks that the suite runs, not how fast: the smoke sizes, unless
    # UWE_BENCH_SIZE says otherwise. Set before bench/_data.py (which reads it) is imported.
    if config.getoption("benchmark_disable", False):
        os.environ.setdefault("UWE_BENCH_SIZE", "smoke")


def backend_params() -> list[Any]:
    return [pytest.param(name, id=name) for name in uwe_kernels.backends()]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from bench._data import SIZES, size_mode

    rows = [f"uwe_kernels bench: {size_mode()} sizes (UWE_BENCH_SIZE={'|'.join(SIZES)})",
            f"uwe_kernels from {UWE_KERNELS_FROM}"]
    for name, (ok, why) in uwe_kernels.backends().items():
        rows.append(f"  {name:9s} {'yes' if ok else 'no ':3s} {why}")
    return rows


def _cached_pools() -> list[Any]:
    """The lru_cache'd pool makers of the loaded benchmark modules (bench._data, bench._realistic,
    the bench_*.py files)."""
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "bench" or name.startswith("bench.") or name.startswith("bench_")):
            continue
        found += [fn for fn in vars(module).values() if callable(getattr(fn, "cache_clear", None))]
    return found


def _return_freed_memory() -> None:
    """glibc keeps freed blocks below its mmap threshold (which grows to 32 MB) in the heap:
    after a file's pools are dropped, hand them back to the system."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A skipped case's traceback outlives it (pytest keeps its exception info), and with it the
    case's frame and every pool its locals hold: skipped device cases stacked up gigabytes. Once
    the report is made, the frames' locals are dropped."""
    yield
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception):
        traceback.clear_frames(call.excinfo.tb)


# A case can also leave pools in reference cycles that only the cyclic collector frees; it runs
# rarely (large arrays are few objects). Collect when the resident size has grown by this much
# since the last collection.
COLLECT_AFTER_GROWTH = 256 * 2**20
_resident_after_collect = [0]


@pytest.fixture(autouse=True)
def free_garbage_after_case() -> Any:
    yield
    now = _resident_bytes()
    if now is None or now > _resident_after_collect[0] + COLLECT_AFTER_GROWTH:
        gc.collect()
        _return_freed_memory()
        _resident_after_collect[0] = _resident_bytes() or 0


@pytest.fixture(autouse=True, scope="module")
def free_pools_after_module() -> Any:
    """Pools cached for one file's cases are dropped when the file is done: kept for the whole
    session they would add up to several GB."""
    yield
    for fn in _cached_pools():
        fn.cache_clear()
    gc.collect()
    _return_freed_memory()
    _resident_after_collect[0] = _resident_bytes() or 0


@pytest.fixture(scope="session")
def roofline() -> dict[str, float | None]:
    from bench._data import pick

    # Smoke sizes fit in cache anyway; 64 MiB keeps their floor column defined at no cost.
    return _roofline.measure(pick(_roofline.GIB, _roofline.GIB, 64 * 2**20))


def require_backend(name: str, work: float | None = None) -> str:
    """The device the backend's inputs live on ("cpu" or "cuda"), or skip with its reason."""
    ok, why = uwe_kernels.backends()[name]
    if not ok:
        pytest.skip(f"{name}: {why}")
    if name in DEVICE_BACKENDS:
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"{name}: {why}; the interpreter is a test vehicle, not timed")
        return "cuda"
    if name == "reference" and work is not None and work > REFERENCE_MAX_WORK:
        pytest.skip(f"reference: float64 oracle, timed only up to {REFERENCE_MAX_WORK:.0e} multiply-adds "
                    f"(this case needs {work:.1e})")
    return "cpu"


def run_once(benchmark: Any, fn: Callable[[], Any]) -> float:
    """One timed round of `fn`; its seconds, also under --benchmark-disable (no stats then)."""
    seconds: list[float] = []

    def timed() -> None:
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)

    benchmark.pedantic(timed, rounds=1, iterations=1, warmup_rounds=0)
    return seconds[-1]


def on_device(x: Any, device: str) -> Any:
    """numpy stays numpy on the CPU; on "cuda" a torch tensor (outside the timed region)."""
    if device == "cpu" or x is None:
        return x
    import torch

    if isinstance(x, np.memmap):
        x = np.asarray(x)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def optional_peer(module: str, pip_name: str | None = None) -> Any:
    """Import a peer library or skip with how to install it."""
    return pytest.importorskip(module, reason=f"peer {module} is not installed (pip install {pip_name or module})")


def nbytes_of(*arrays: Any) -> int:
    return int(sum(getattr(a, "nbytes", 0) if not hasattr(a, "element_size") else a.numel() * a.element_size()
                   for a in arrays if a is not None))


def _synchronised(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    if device != "cuda":
        return fn
    import torch

    def run() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


@pytest.fixture
def measure(benchmark: Any, roofline: dict[str, float | None]) -> Callable[..., Any]:
    """measure(fn, provider=..., shape=..., bytes_moved=..., device="cpu", **extra) -> fn's result.

    The first call runs untimed (JIT compilation, page faults, lazy loading) and its time is
    kept as first_call_s; then rounds are timed so that one case takes about TARGET_SECONDS.
    BackendUnavailable on the first call skips the case with its message. Peers, which
    compile nothing, pass warmup=False and are timed PEER_ROUNDS times with no untimed call.
    """

    from bench._data import pick, size_mode

    target_seconds, max_rounds, peer_rounds = pick(1.0, 3.0, 0.0), pick(3, 5, 1), pick(1, 3, 1)

    def run(fn: Callable[[], Any], *, provider: str, shape: str, bytes_moved: float,
            device: str = "cpu", role: str = "ours", warmup: bool = True, **extra: Any) -> Any:
        call = _synchronised(fn, device)
        first = None
        if warmup:
            t0 = time.perf_counter()
            try:
                call()
            except uwe_kernels.BackendUnavailable as exc:
                pytest.skip(str(exc))
            first = time.perf_counter() - t0
            rounds = int(max(1, min(max_rounds, target_seconds // max(first, 1e-9))))
        else:
            rounds = peer_rounds
        result = benchmark.pedantic(call, rounds=rounds, iterations=1)
        bandwidth = roofline["cuda" if device == "cuda" else "cpu"] or roofline["cpu"]
        floor_s = bytes_moved / bandwidth
        info = benchmark.extra_info
        info.update(provider=provider, role=role, shape=shape, device=device, size=size_mode(),
                    first_call_s=first, bytes_moved=float(bytes_moved), floor_s=floor_s,
                    bandwidth_GBps=bandwidth / 1e9, machine=platform.machine())
        stats = getattr(getattr(benchmark, "stats", None), "stats", None)
        if stats is not None and stats.min > 0:
            info.update(best_s=stats.min, GBps=bytes_moved / stats.min / 1e9, floor_fraction=floor_s / stats.min)
        info.update(extra)
        return result

    return run
