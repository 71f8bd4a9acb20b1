"""k-means++ on the device backends with the certified draw (csrc/cuda/certified_draw.cuh,
uwe_kernels/_certified_draw.py): picks equal the cpp backend's on pools built to stress the
draw (exact duplicates, so D is mostly zero and later all zero; a huge dynamic range; ties on
a grid), and, on Triton, with every draw forced through the exact chain."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from helpers import to_device

import uwe_kernels
from uwe_kernels import _certified_draw

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def device_backends() -> list[object]:
    params = []
    for name in ("cuda", "triton"):
        ok, why = uwe_kernels.backends()[name]
        skip = [] if ok else [pytest.mark.skip(reason=f"{name}: {why}")]
        if ok and name == "cuda" and INTERPRETING:
            skip = [pytest.mark.skip(reason="cuda cases run without TRITON_INTERPRET")]
        params.append(pytest.param(name, marks=skip, id=name))
    return params


def stress_pools(n: int, d: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    distinct = rng.standard_normal((n // 12, d))
    return {
        "duplicates": distinct[rng.integers(0, len(distinct), n)],
        "dynamic_range": rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 3, (n, 1)),
        "grid_ties": rng.integers(-2, 3, (n, d)).astype(np.float64),
    }


def on_backend(backend: str, x: np.ndarray):
    return to_device(x, "cpu" if backend == "triton" and INTERPRETING else "cuda")


def picks_of(backend: str, x: np.ndarray, budget: int, seed: int) -> np.ndarray:
    out = uwe_kernels.kmeans_pp(on_backend(backend, x), budget, seed=seed, algorithm="brute", backend=backend)
    return np.asarray(out.cpu() if hasattr(out, "cpu") else out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", ["duplicates", "dynamic_range", "grid_ties"])
@pytest.mark.parametrize("backend", device_backends())
def test_device_draw_picks_equal_cpp_on_stress_pools(backend, pool, dtype):
    n, d = (180, 6) if INTERPRETING else (5000, 24)
    x = stress_pools(n, d)[pool].astype(dtype)
    budget = n // 12 + 4  # past the distinct rows of "duplicates": the all-zero, uniform draws run too
    for seed in (0, 7):
        np.testing.assert_array_equal(picks_of(backend, x, budget, seed),
                                      uwe_kernels.kmeans_pp(x, budget, seed=seed, algorithm="brute", backend="cpp"))


@pytest.mark.parametrize("backend", [p for p in device_backends() if p.id == "triton"])
def test_triton_draw_forced_through_the_exact_chain(backend, monkeypatch):
    x = stress_pools(180, 6)["dynamic_range"].astype(np.float32)
    expected = uwe_kernels.kmeans_pp(x, 15, seed=3, algorithm="brute", backend="cpp")
    exact_flags: list[bool] = []
    certified_pick = _certified_draw.certified_pick

    def spy(D, r, exact_pick):
        pick, exact = certified_pick(D, r, exact_pick)
        exact_flags.append(exact)
        return pick, exact

    monkeypatch.setattr(_certified_draw, "certified_pick", spy)
    np.testing.assert_array_equal(picks_of(backend, x, 15, 3), expected)
    assert exact_flags and not all(exact_flags)  # random targets: certified
    exact_flags.clear()
    monkeypatch.setattr(_certified_draw, "chain_error_bound", lambda n_terms, total: math.inf)
    np.testing.assert_array_equal(picks_of(backend, x, 15, 3), expected)
    assert exact_flags and all(exact_flags)  # every draw a close call: the chain decided
