"""Pruned selection vs the plain per-pick pass vs the memory-bandwidth floor.

The floor of a brute-force selection is budget * n * row bytes / read bandwidth (the session
roofline of bench/conftest.py); a pruned run can beat it because it skips rows, so its
`floor_fraction` may exceed 100%. Groups `pruned-kcg:<pool>` / `pruned-kmpp:<pool>` put
plain, adaptive, pruned and auto (the public `algorithm="auto"` call) of every backend side by side in `python -m bench.report`. Pools are Gaussian
mixtures (clusters with a low intrinsic dimension, embedded in d dimensions) and isotropic
Gaussian noise. Quick sizes by default; UWE_BENCH_SIZE=full runs n up to 2,000,000, UWE_BENCH_SIZE=smoke tiny pools.
extra_info: rows touched per pick, fraction of rows touched, time / floor, speed-up vs plain.

Factored cases: BADGE gradient embeddings at CIFAR-10-like shapes (K = 10 classes, d = 512
features, K*d = 5120 implicit columns never built), clustered (class logits follow the feature
clusters) and isotropic; pruned vs the brute-force factored kernel, same picks asserted.

The numba cases time the numba backend's pruned kernels against its own brute force
(algorithm="brute", every row every pick) on smaller pools.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels._pruning import looks_clustered
from uwe_kernels.cpp import pruned
from uwe_kernels.factored import FactoredArrays

from bench._data import pick, size_mode
from bench.conftest import require_backend, run_once

# (name, n, d, clusters, intrinsic dimension, budget); clusters 0 = isotropic noise
QUICK_POOLS = [
    ("mixture", 50_000, 128, 10, 8, 500),
    ("mixture", 50_000, 128, 1_000, 8, 500),
    ("mixture", 200_000, 128, 100, 16, 1_000),
    ("mixture", 50_000, 512, 100, 64, 300),
    ("isotropic", 50_000, 128, 0, 0, 200),
]
FULL_POOLS = [
    ("mixture", 200_000, 128, 10, 8, 2_000),
    ("mixture", 1_000_000, 512, 1_000, 16, 10_000),
    ("mixture", 1_000_000, 512, 100, 64, 10_000),
    ("mixture", 500_000, 2_048, 1_000, 32, 2_000),
    ("mixture", 2_000_000, 128, 1_000, 8, 10_000),
    ("isotropic", 200_000, 512, 0, 0, 1_000),
    ("isotropic", 1_000_000, 128, 0, 0, 1_000),
]
SMOKE_POOLS = [
    ("mixture", 6_000, 32, 20, 4, 60),
    ("isotropic", 4_000, 32, 0, 0, 30),
]
POOLS = pick(QUICK_POOLS, FULL_POOLS, SMOKE_POOLS)
# plain/adaptive/pruned: the C++ kernel's modes with their work statistics; brute and auto: the
# public calls (validation included), so that auto is held to what a user calling brute force gets.
PROVIDERS = ["plain", "brute", "adaptive", "pruned", "auto"]

_plain_seconds: dict[str, float] = {}
_adaptive_stats: dict[str, dict[str, Any]] = {}


def pool_id(spec: tuple[Any, ...]) -> str:
    name, n, d, clusters, intrinsic, budget = spec
    shape = f"{clusters}x{intrinsic}" if clusters else "noise"
    return f"{name}-{shape}-n{n}-d{d}-b{budget}"


def gaussian_mixture(n: int, d: int, clusters: int, intrinsic: int, seed: int = 0) -> np.ndarray:
    """Clusters of `intrinsic` dimensions (random bases) around well-separated centres."""
    return mixture_and_labels(n, d, clusters, intrinsic, seed)[0]


def mixture_and_labels(n: int, d: int, clusters: int, intrinsic: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    labels = rng.integers(0, clusters, n)
    centres = rng.standard_normal((clusters, d)).astype(np.float32) * 4.0
    for c in range(clusters):
        rows = np.flatnonzero(labels == c)
        basis = rng.standard_normal((intrinsic, d)).astype(np.float32) / np.sqrt(intrinsic)
        z = rng.standard_normal((len(rows), intrinsic)).astype(np.float32)
        out[rows] = centres[c] + z @ basis
    return out, labels


@pytest.fixture(scope="session")
def read_bandwidth(roofline: dict[str, float | None]) -> float:
    """Bytes per second of a plain streaming read on the CPU, measured once per session."""
    assert roofline["cpu"]
    return float(roofline["cpu"])


_pools: dict[str, np.ndarray] = {}


def get_pool(spec: tuple[Any, ...]) -> np.ndarray:
    key = pool_id(spec)
    if key not in _pools:
        _pools.clear()
        name, n, d, clusters, intrinsic, _ = spec
        if name == "isotropic":
            _pools[key] = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
        else:
            _pools[key] = gaussian_mixture(n, d, clusters, intrinsic)
    return _pools[key]


def _auto_stats(key: str, x: np.ndarray, budget: int, adaptive: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Work statistics of an algorithm='auto' call (the public API returns none): those of the
    brute-force pass when auto chose it, else those of the adaptive kernel (the one auto runs,
    deterministic) on the same pool: from its timed run, or `adaptive()` untimed when that was
    deselected."""
    if looks_clustered(x):
        if key not in _adaptive_stats:
            _adaptive_stats[key] = adaptive()
        return dict(_adaptive_stats[key])
    return _brute_stats(x, budget)


def _brute_stats(x: np.ndarray, budget: int) -> dict[str, Any]:
    """Brute force reads every row for every pick after the first."""
    return {"rows_touched": (budget - 1) * len(x), "values_read": (budget - 1) * x.size, "switched_at": -1}


def _is_noise(spec: tuple[Any, ...]) -> bool:
    """Isotropic pools (dense or factored): where pruning cannot pay and auto is held to brute force."""
    return "isotropic" in spec[0]


def _auto_over_brute(benchmark: Any, spec: tuple[Any, ...], call: Callable[[str], Any]) -> None:
    """On isotropic pools, where auto is held to at most 1.2x brute force: the public calls
    with algorithm='brute' and 'auto', alternated five times (best of each), so that the noise
    of a shared machine falls on both alike. Separate timed cases of 0.1-0.3 s can differ by
    more than that from noise alone."""
    if not _is_noise(spec):
        return
    best = {"brute": math.inf, "auto": math.inf}
    for _ in range(5):
        for algorithm in best:
            start = time.perf_counter()
            call(algorithm)
            best[algorithm] = min(best[algorithm], time.perf_counter() - start)
    benchmark.extra_info["auto_over_brute_alternating"] = best["auto"] / best["brute"]


def _skip_public_brute(spec: tuple[Any, ...], provider: str) -> None:
    if provider == "brute" and not _is_noise(spec):
        pytest.skip("the public brute-force call is timed on isotropic pools only (plain is the same pass)")


# The pool varies slowest (each is generated once); plain runs first on every pool.
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("spec", POOLS, ids=[pool_id(s) for s in POOLS])
def bench_kcenter_greedy(benchmark: Any, spec: tuple[Any, ...], provider: str, read_bandwidth: float) -> None:
    _skip_public_brute(spec, provider)
    require_backend("cpp")
    x = get_pool(spec)
    n, d = x.shape
    budget = spec[-1]
    mask = np.zeros(n, dtype=bool)
    key = pool_id(spec)
    out: dict[str, Any] = {}

    def run() -> None:
        if provider in ("brute", "auto"):  # public calls; auto: choose_algorithm, then that kernel
            out["picks"] = uk.kcenter_greedy(x, None, budget, algorithm=provider, backend="cpp")
        else:
            out["picks"], _, out["stats"] = pruned.kcenter_greedy_stats(x, mask, budget, None, mode=provider)

    benchmark.group = f"pruned-kcg:{key}"
    seconds = run_once(benchmark, run)
    if provider == "adaptive":
        _adaptive_stats["kcg/" + key] = out["stats"]
    if provider == "auto":
        stats = _auto_stats("kcg/" + key, x, budget,
                            lambda: pruned.kcenter_greedy_stats(x, mask, budget, None, mode="adaptive")[2])
        _auto_over_brute(benchmark, spec, lambda a: uk.kcenter_greedy(x, None, budget, algorithm=a, backend="cpp"))
    elif provider == "brute":
        stats = _brute_stats(x, budget)
    else:
        stats = out["stats"]
    _record(benchmark, "kcg", spec, f"{provider}[cpp]", seconds, stats, x, read_bandwidth)
    if provider == "plain":
        _plain_seconds[key] = seconds
        _pools[key + "/picks"] = out["picks"]
    elif key + "/picks" in _pools:
        np.testing.assert_array_equal(out["picks"], _pools[key + "/picks"])


KMPP_POOLS = [POOLS[0], POOLS[-1]]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("spec", KMPP_POOLS, ids=[pool_id(s) for s in KMPP_POOLS])
def bench_kmeans_pp(benchmark: Any, spec: tuple[Any, ...], provider: str, read_bandwidth: float) -> None:
    _skip_public_brute(spec, provider)
    require_backend("cpp")
    x = get_pool(spec)
    budget = spec[-1]
    mask = np.zeros(len(x), dtype=bool)
    key = "kmpp/" + pool_id(spec)
    out: dict[str, Any] = {}

    def run() -> None:
        if provider in ("brute", "auto"):
            out["picks"] = uk.kmeans_pp(x, budget, seed=0, first="max_norm", algorithm=provider, backend="cpp")
        else:
            out["picks"], out["stats"] = pruned.kmeans_pp_stats(x, mask, budget, 0, "max_norm", mode=provider)

    benchmark.group = f"pruned-kmpp:{pool_id(spec)}"
    seconds = run_once(benchmark, run)
    if provider == "adaptive":
        _adaptive_stats[key] = out["stats"]
    if provider == "auto":
        stats = _auto_stats(key, x, budget,
                            lambda: pruned.kmeans_pp_stats(x, mask, budget, 0, "max_norm", mode="adaptive")[1])
        _auto_over_brute(benchmark, spec, lambda a: uk.kmeans_pp(x, budget, seed=0, first="max_norm", algorithm=a,
                                                                 backend="cpp"))
    elif provider == "brute":
        stats = _brute_stats(x, budget)
    else:
        stats = out["stats"]
    _record(benchmark, "kmpp", spec, f"{provider}[cpp]", seconds, stats, x, read_bandwidth)
    if provider == "plain":
        _pools[key + "/picks"] = out["picks"]
    elif key + "/picks" in _pools:  # exact: the picks of the plain pass
        np.testing.assert_array_equal(out["picks"], _pools[key + "/picks"])


# ---------------------------------------------------------------- numba backend

NUMBA_QUICK_POOLS = [
    ("mixture", 20_000, 64, 100, 8, 300),
    ("isotropic", 20_000, 64, 0, 0, 100),
]
NUMBA_FULL_POOLS = [
    ("mixture", 200_000, 128, 100, 16, 1_000),
    ("mixture", 200_000, 128, 1_000, 8, 2_000),
    ("isotropic", 200_000, 128, 0, 0, 300),
]
NUMBA_SMOKE_POOLS = [
    ("mixture", 3_000, 16, 20, 4, 30),
    ("isotropic", 2_000, 16, 0, 0, 20),
]
NUMBA_POOLS = pick(NUMBA_QUICK_POOLS, NUMBA_FULL_POOLS, NUMBA_SMOKE_POOLS)
NUMBA_PROVIDERS = ["brute", "adaptive", "pruned", "auto"]
_numba_picks: dict[str, np.ndarray] = {}


def _numba_warm(x: np.ndarray) -> None:
    """Compile outside the timed region (numba compiles on first call per input type)."""
    from uwe_kernels.numba import pruned as npruned
    from uwe_kernels.numba import select as nselect

    small = np.ascontiguousarray(x[:64])
    nselect.kcenter_greedy(small, np.zeros(64, bool), 3, None, algorithm="brute", progress=None,
                           accum_dtype=np.float32)
    nselect.kmeans_pp(small, np.zeros(64, bool), 3, 0, "max_norm", algorithm="brute", progress=None,
                      accum_dtype=np.float32)
    parallel_min = npruned.PARALLEL_MIN
    npruned.PARALLEL_MIN = 0  # compile the parallel row evaluation too
    try:
        npruned.kcenter_greedy_stats(small, np.zeros(64, bool), 3, None)
        npruned.kmeans_pp_stats(small, np.zeros(64, bool), 3, 0, "max_norm")
    finally:
        npruned.PARALLEL_MIN = parallel_min


def _numba_run(op: str, provider: str, x: np.ndarray, budget: int) -> tuple[np.ndarray, dict[str, Any]]:
    from uwe_kernels.numba import pruned as npruned

    mask = np.zeros(len(x), dtype=bool)
    if provider in ("brute", "auto"):  # the public calls; auto's statistics are filled in by bench_numba
        if op == "kcg":
            picks = uk.kcenter_greedy(x, None, budget, algorithm=provider, backend="numba")
        else:
            picks = uk.kmeans_pp(x, budget, seed=0, first="max_norm", algorithm=provider, backend="numba")
        return picks, _brute_stats(x, budget)
    if op == "kcg":
        picks, _, stats = npruned.kcenter_greedy_stats(x, mask, budget, None, mode=provider)
    else:
        picks, stats = npruned.kmeans_pp_stats(x, mask, budget, 0, "max_norm", mode=provider)
    # numba's distances have no early exit: a touched row reads all d values
    stats["values_read"] = stats["rows_touched"] * x.shape[1]
    return picks, stats


@pytest.mark.parametrize("provider", NUMBA_PROVIDERS)
@pytest.mark.parametrize("spec", NUMBA_POOLS, ids=[pool_id(s) for s in NUMBA_POOLS])
@pytest.mark.parametrize("op", ["kcg", "kmpp"])
def bench_numba(benchmark: Any, op: str, spec: tuple[Any, ...], provider: str, read_bandwidth: float) -> None:
    require_backend("numba")
    x = get_pool(spec)
    budget = spec[-1]
    _numba_warm(x)
    out: dict[str, Any] = {}

    def run() -> None:
        out["picks"], out["stats"] = _numba_run(op, provider, x, budget)

    benchmark.group = f"pruned-{op}:{pool_id(spec)}"
    seconds = run_once(benchmark, run)
    key = f"numba-{op}/" + pool_id(spec)
    if provider == "adaptive":
        _adaptive_stats[key] = out["stats"]
    elif provider == "auto":
        out["stats"] = _auto_stats(key, x, budget, lambda: _numba_run(op, "adaptive", x, budget)[1])
        _auto_over_brute(benchmark, spec, lambda a: _numba_run(op, a, x, budget))
    if provider == "brute":
        _plain_seconds[key] = seconds
        _numba_picks[key] = out["picks"]
    elif key in _numba_picks:  # exact: the picks of brute force
        np.testing.assert_array_equal(out["picks"], _numba_picks[key])
    _record(benchmark, op, spec, f"{provider}[numba]", seconds, out["stats"], x, read_bandwidth, plain_key=key)


def _record(benchmark: Any, op: str, spec: tuple[Any, ...], provider: str, seconds: float, stats: dict[str, Any],
            x: np.ndarray, bandwidth: float, plain_key: str | None = None) -> None:
    n, d = x.shape
    budget = spec[-1]
    floor = _tag(benchmark, op, pool_id(spec), provider, seconds, budget * n * d * x.itemsize, bandwidth)
    info = benchmark.extra_info
    info["rows_touched_per_pick"] = stats["rows_touched"] / max(1, budget)
    info["fraction_touched"] = stats["rows_touched"] / max(1, budget * n)
    info["fraction_values_read"] = stats["values_read"] / max(1, budget * n * d)
    info["switched_at"] = stats["switched_at"]
    info["time_over_floor"] = seconds / floor
    info["auto_choice"] = "pruned" if looks_clustered(x) else "brute"
    plain = _plain_seconds.get(plain_key or pool_id(spec))
    if plain is not None and not provider.startswith(("plain", "brute")):
        info["speedup_vs_plain"] = plain / seconds


def _tag(benchmark: Any, op: str, shape: str, provider: str, seconds: float, brute_bytes: float,
         bandwidth: float) -> float:
    """Provider and roofline fields in the layout bench/report.py reads (the group is set before
    the timed call: pytest-benchmark takes it from there); returns the brute-force floor in seconds."""
    floor = brute_bytes / bandwidth
    benchmark.extra_info.update(provider=provider, role="ours", shape=shape, bytes_moved=float(brute_bytes),
                                floor_s=floor, bandwidth_GBps=bandwidth / 1e9, best_s=seconds,
                                size=size_mode(),
                                GBps=brute_bytes / seconds / 1e9, floor_fraction=floor / seconds)
    return floor


# ---------------------------------------------------------------- factored BADGE embeddings
# (name, n, K, d, clusters, intrinsic dimension, budget); clusters 0 = isotropic noise
QUICK_FACTORED = [
    ("badge-mixture", 20_000, 10, 512, 100, 16, 500),
    ("badge-isotropic", 20_000, 10, 512, 0, 0, 100),
]
FULL_FACTORED = [
    ("badge-mixture", 50_000, 10, 512, 100, 16, 1_000),
    ("badge-mixture", 50_000, 10, 512, 1_000, 16, 1_000),
    ("badge-isotropic", 50_000, 10, 512, 0, 0, 500),
]
SMOKE_FACTORED = [
    ("badge-mixture", 2_000, 10, 64, 20, 8, 40),
    ("badge-isotropic", 2_000, 10, 64, 0, 0, 20),
]
FACTORED = pick(QUICK_FACTORED, FULL_FACTORED, SMOKE_FACTORED)
FACTORED_PROVIDERS = ["brute", "adaptive", "pruned", "auto"]

_brute_seconds: dict[str, float] = {}
_factored: dict[str, Any] = {}


def factored_id(spec: tuple[Any, ...]) -> str:
    name, n, k, d, clusters, intrinsic, budget = spec
    shape = f"{clusters}x{intrinsic}" if clusters else "noise"
    return f"{name}-{shape}-n{n}-K{k}-d{d}-b{budget}"


def badge_factors(spec: tuple[Any, ...]) -> FactoredArrays:
    """BADGE factors p - onehot(argmax p) and features; clustered pools draw each cluster's class
    logits around one vector, so the weights cluster with the features."""
    key = factored_id(spec)
    if key not in _factored:
        _factored.clear()
        name, n, k, d, clusters, intrinsic, _ = spec
        rng = np.random.default_rng(3)
        if clusters:
            feats, labels = mixture_and_labels(n, d, clusters, intrinsic, seed=3)
            logits = 4.0 * rng.standard_normal((clusters, k))[labels] + 0.2 * rng.standard_normal((n, k))
        else:
            feats = rng.standard_normal((n, d), dtype=np.float32)
            logits = 3.0 * rng.standard_normal((n, k))
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w = (p - np.eye(k)[p.argmax(1)]).astype(np.float32)
        _factored[key] = FactoredArrays(w, np.ascontiguousarray(feats, dtype=np.float32))
    factors: FactoredArrays = _factored[key]
    return factors


@pytest.mark.parametrize("provider", FACTORED_PROVIDERS)
@pytest.mark.parametrize("spec", FACTORED, ids=[factored_id(s) for s in FACTORED])
def bench_kcenter_greedy_factored(benchmark: Any, spec: tuple[Any, ...], provider: str,
                                  read_bandwidth: float) -> None:
    require_backend("cpp")
    fa = badge_factors(spec)
    n, budget = spec[1], spec[-1]
    mask = np.zeros(n, dtype=bool)
    out: dict[str, Any] = {}

    def run() -> None:
        if provider in ("brute", "auto"):  # the public calls
            out["picks"] = uk.kcenter_greedy(uk.FactoredEmbedding(fa.weights, fa.features), None, budget,
                                             algorithm=provider, backend="cpp")
            out["stats"] = None
        else:
            out["picks"], _, out["stats"] = pruned.kcenter_greedy_stats(fa, mask, budget, None, mode=provider)

    benchmark.group = f"pruned-kcg:{factored_id(spec)}"
    seconds = run_once(benchmark, run)
    key = factored_id(spec)
    k, d = fa.weights.shape[1], fa.features.shape[1]
    _tag(benchmark, "kcg", key, f"{provider}[cpp]", seconds, budget * n * (k + d) * fa.features.itemsize,
         read_bandwidth)
    info = benchmark.extra_info
    info["auto_choice"] = pruned.choose_algorithm(fa)
    if provider == "brute":
        _brute_seconds[key] = seconds
        _factored[key + "/picks"] = out["picks"]
    else:  # exact: the picks of brute force
        if key + "/picks" in _factored:
            np.testing.assert_array_equal(out["picks"], _factored[key + "/picks"])
        if key in _brute_seconds:
            info["speedup_vs_brute"] = _brute_seconds[key] / seconds
    if provider == "adaptive":
        _adaptive_stats[key] = out["stats"]
    if provider == "auto":
        emb = uk.FactoredEmbedding(fa.weights, fa.features)
        _auto_over_brute(benchmark, spec, lambda a: uk.kcenter_greedy(emb, None, budget, algorithm=a, backend="cpp"))
    stats = out["stats"]
    if provider == "auto" and info["auto_choice"] == "pruned":
        if key not in _adaptive_stats:  # the adaptive case was deselected: its statistics, untimed
            _adaptive_stats[key] = pruned.kcenter_greedy_stats(fa, mask, budget, None, mode="adaptive")[2]
        stats = _adaptive_stats[key]
    if stats is None:  # brute force: every row every pick
        info["rows_touched_per_pick"] = n - 1
        return
    touched = stats["rows_touched"] - stats["labelled_pairs"]
    info["rows_touched_per_pick"] = touched / max(1, budget)
    info["fraction_touched"] = touched / max(1, budget * n)
    info["switched_at"] = stats["switched_at"]
