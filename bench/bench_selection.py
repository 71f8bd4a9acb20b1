"""Selection time: UWE + k-center greedy against BADGE + k-means++ (explicit and factored)
at the paper's Table 2 shapes, and k-center greedy scaling in n, d, budget and dtype.

The floor of brute-force selection is budget x n x row bytes at the measured bandwidth:
each pick must read every row once.
"""
from __future__ import annotations

import numpy as np
import pytest

import uwe_kernels
from bench import _data
from bench._data import CIFAR10_BADGE, CIFAR100_BADGE, FULL, pick
from bench.conftest import backend_params, on_device, require_backend

TABLE2 = [pytest.param(CIFAR10_BADGE, id="cifar10"), pytest.param(CIFAR100_BADGE, id="cifar100")]
ALGORITHMS = [pytest.param("brute", id="brute"), pytest.param("auto", id="auto")]
DTYPES = [pytest.param("float32", id="float32"), pytest.param("float16", id="float16")]

N_SWEEP = pick([10_000, 50_000, 200_000], [10_000, 50_000, 200_000, 1_000_000, 2_000_000], [2_000, 5_000])
N_SWEEP_D = 128
D_SWEEP = [64, 512, 2048]
D_SWEEP_N = pick(10_000, 50_000, 1_000)
BUDGET_SWEEP = pick([100, 1_000], [100, 1_000, 10_000], [10, 50])
BUDGET_SWEEP_N = pick(20_000, 50_000, 2_000)
SWEEP_BUDGET = pick(100, 100, 20)


def _kcg_floor(n: int, row_bytes: float, budget: int) -> float:
    return budget * n * row_bytes


def _kcg_case(measure, benchmark, emb, labelled, budget, backend, *, group, shape, algorithm="brute", **extra):
    n, d = emb.shape
    device = require_backend(backend, work=n * d * (budget + len(labelled)))
    x, lab = on_device(emb, device), on_device(labelled, device)
    benchmark.group = group
    return measure(lambda: uwe_kernels.kcenter_greedy(x, lab, budget, algorithm=algorithm, backend=backend),
                   provider=f"kcg {algorithm}[{backend}]", shape=shape, device=device,
                   bytes_moved=_kcg_floor(n, d * emb.dtype.itemsize, budget), op="kcenter_greedy",
                   n=n, d=d, budget=budget, labelled=len(labelled), dtype=str(emb.dtype), algorithm=algorithm,
                   rows_scanned=budget * n, labelled_madds=n * d * len(labelled), **extra)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape", TABLE2)
@pytest.mark.parametrize("backend", backend_params())
def bench_uwe_kcenter_greedy(measure, benchmark, shape, backend, algorithm):
    emb = _data.uwe_pool(shape.n, shape.K, shape.d)
    labelled = _data.labelled(shape.n, shape.labelled)
    _kcg_case(measure, benchmark, emb, labelled, shape.budget, backend, group=f"select:{shape.name}",
              shape=shape.label, algorithm=algorithm, method="uwe+kcg", embedding_dim=shape.d)


@pytest.mark.parametrize("shape", TABLE2)
@pytest.mark.parametrize("backend", backend_params())
def bench_badge_kmeans_pp_explicit(measure, benchmark, shape, backend):
    emb = _data.badge_explicit(shape.n, shape.K, shape.d)
    labelled = _data.labelled(shape.n, shape.labelled)
    width = shape.K * shape.d
    device = require_backend(backend, work=shape.n * width * (shape.budget + shape.labelled))
    x, lab = on_device(emb, device), on_device(labelled, device)
    benchmark.group = f"select:{shape.name}"
    measure(lambda: uwe_kernels.kmeans_pp(x, shape.budget, labelled_idx=lab, backend=backend),
            provider=f"km++ explicit[{backend}]", shape=shape.label, device=device,
            bytes_moved=_kcg_floor(shape.n, width * emb.dtype.itemsize, shape.budget), op="kmeans_pp",
            method="badge+km++ explicit", n=shape.n, d=width, budget=shape.budget, labelled=shape.labelled,
            dtype=str(emb.dtype), embedding_dim=width)


@pytest.mark.parametrize("shape", TABLE2)
@pytest.mark.parametrize("backend", backend_params())
def bench_badge_kmeans_pp_factored(measure, benchmark, shape, backend):
    weights, feats = _data.badge_weights(shape.n, shape.K), _data.features(shape.n, shape.d)
    labelled = _data.labelled(shape.n, shape.labelled)
    device = require_backend(backend, work=shape.n * (shape.K + shape.d) * (shape.budget + shape.labelled))
    emb = uwe_kernels.FactoredEmbedding(on_device(weights, device), on_device(feats, device))
    lab = on_device(labelled, device)
    benchmark.group = f"select:{shape.name}"
    measure(lambda: uwe_kernels.kmeans_pp(emb, shape.budget, labelled_idx=lab, backend=backend),
            provider=f"km++ factored[{backend}]", shape=shape.label, device=device,
            bytes_moved=_kcg_floor(shape.n, weights.itemsize * shape.K + feats.itemsize * shape.d, shape.budget),
            op="kmeans_pp", method="badge+km++ factored", n=shape.n, d=shape.K * shape.d, budget=shape.budget,
            labelled=shape.labelled, dtype=str(feats.dtype), embedding_dim=shape.K * shape.d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", N_SWEEP)
@pytest.mark.parametrize("backend", backend_params())
def bench_kcg_scale_n(measure, benchmark, n, dtype, backend):
    emb = _data.gaussian_pool(n, N_SWEEP_D, dtype)
    _kcg_case(measure, benchmark, emb, np.empty(0, np.int64), SWEEP_BUDGET, backend,
              group=f"select-n:d{N_SWEEP_D}-budget{SWEEP_BUDGET}-{dtype}", shape=f"n={n} d={N_SWEEP_D}", sweep="n")


@pytest.mark.parametrize("d", D_SWEEP)
@pytest.mark.parametrize("backend", backend_params())
def bench_kcg_scale_d(measure, benchmark, d, backend):
    emb = _data.gaussian_pool(D_SWEEP_N, d)
    _kcg_case(measure, benchmark, emb, np.empty(0, np.int64), SWEEP_BUDGET, backend,
              group=f"select-d:n{D_SWEEP_N}-budget{SWEEP_BUDGET}-float32", shape=f"n={D_SWEEP_N} d={d}",
              sweep="d")


@pytest.mark.parametrize("budget", BUDGET_SWEEP)
@pytest.mark.parametrize("backend", backend_params())
def bench_kcg_scale_budget(measure, benchmark, budget, backend):
    emb = _data.gaussian_pool(BUDGET_SWEEP_N, N_SWEEP_D)
    _kcg_case(measure, benchmark, emb, np.empty(0, np.int64), budget, backend,
              group=f"select-budget:n{BUDGET_SWEEP_N}-d{N_SWEEP_D}-float32",
              shape=f"n={BUDGET_SWEEP_N} d={N_SWEEP_D} budget={budget}", sweep="budget")


@pytest.mark.skipif(not FULL, reason="memory-mapped 2,000,000-row pool: UWE_BENCH_SIZE=full only")
@pytest.mark.parametrize("backend", backend_params())
def bench_kcg_memmap_pool(measure, benchmark, backend):
    n = 2_000_000
    require_backend(backend, work=n * N_SWEEP_D * SWEEP_BUDGET)
    emb = _data.memmap_pool(n, N_SWEEP_D)
    _kcg_case(measure, benchmark, emb, np.empty(0, np.int64), SWEEP_BUDGET, backend,
              group=f"select-memmap:n{n}-d{N_SWEEP_D}", shape=f"memmap n={n} d={N_SWEEP_D}", sweep="memmap")
