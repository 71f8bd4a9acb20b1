from __future__ import annotations

import _thread
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import _lazy, registry, rng
from uwe_kernels._abi import FIRST_MAX_NORM
from uwe_kernels._arrays import BFLOAT16
from uwe_kernels._spec import emb_spec

from conftest import backends_with, cpu_backends, interpreting
from helpers import as_float64, clustered_pool, gaussian_pool, rtol, to_device, to_numpy

# Every backend-parametrised test here calls these ops unless it says otherwise.
pytestmark = pytest.mark.ops("kcenter_greedy", "kmeans_pp")
SELECT_FACTORED = pytest.mark.ops("kcenter_greedy", "kmeans_pp", factored=True)
MIN_DISTANCES = pytest.mark.ops("min_distances")
TINY = {"n": 40, "d": 12, "budget": 6}

POOLS = [
    pytest.param("gaussian", 1, 1, id="gaussian-n1-d1"),
    pytest.param("gaussian", 2, 3, id="gaussian-n2-d3"),
    pytest.param("gaussian", 37, 1, id="gaussian-n37-d1"),
    pytest.param("gaussian", 40, 12, id="gaussian-n40-d12"),
    pytest.param("clustered", 40, 12, id="clustered-n40-d12"),
    pytest.param("gaussian", 123, 7, id="gaussian-n123-d7"),
    pytest.param("clustered", 1000, 64, id="clustered-n1000-d64"),
    pytest.param("gaussian", 5000, 17, id="gaussian-n5000-d17"),
    pytest.param("clustered", 2000, 17, id="clustered-n2000-d17"),
    pytest.param("gaussian", 300, 600, id="gaussian-n300-d600"),
]


def fits(backend: str, n: int, d: int) -> None:
    if backend == "triton" and (n > TINY["n"] or d > TINY["d"]):
        pytest.skip("triton runs under the interpreter here: tiny shapes only")


def call(backend: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a public function on one backend. A refusal is a failure: the cases come from the
    backends' declarations (conftest), so a declared case must run."""
    return fn(*args, backend=backend, **kwargs)


def pool_of(kind: str, n: int, d: int, dtype: Any, seed: int = 0) -> np.ndarray:
    if kind == "clustered":
        return clustered_pool(n, d, clusters=min(10, n), seed=seed, dtype=dtype)
    return gaussian_pool(n, d, seed=seed, dtype=dtype)


def labelled_of(form: str, n: int, seed: int = 1) -> Any:
    if form == "none" or n < 3:
        return None
    idx = np.random.default_rng(seed).choice(n, max(1, n // 10), replace=False)
    if form == "indices":
        return np.concatenate([idx, idx[:1]])
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def n_labelled(labelled: Any, n: int) -> int:
    if labelled is None:
        return 0
    arr = np.asarray(labelled)
    return int(arr.sum()) if arr.dtype == bool else len(np.unique(arr))


def factored(kind: str, n: int, d: int, dtype: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    features = r.standard_normal((n, d)).astype(dtype)
    if kind == "uwe":
        return (0.2 + r.random(n)).astype(dtype), features
    p = r.dirichlet(np.full(5, 0.5), size=n)
    p[np.arange(n), p.argmax(1)] -= 1.0
    return p.astype(dtype), features


@pytest.fixture
def device(backend: str) -> str:
    if backend == "cuda" or (backend == "triton" and not interpreting()):
        return "cuda"
    return "torch-cpu" if backend == "triton" else "cpu"


def on(device: str, *arrays: np.ndarray) -> list[Any]:
    if device != "torch-cpu":
        return [to_device(a, device) for a in arrays]
    import torch

    return [torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16) if a.dtype == BFLOAT16
            else torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


_REFERENCE: dict[tuple[Any, ...], Any] = {}


def reference(key: tuple[Any, ...], compute: Any) -> Any:
    if key not in _REFERENCE:
        _REFERENCE[key] = compute()
    return _REFERENCE[key]


@pytest.mark.parametrize("form", ["none", "indices", "mask"])
@pytest.mark.parametrize("pool,n,d", POOLS)
def test_kcenter_greedy_matches_reference(backend, algorithm, dtype, device, pool, form, n, d):
    fits(backend, n, d)
    x = pool_of(pool, n, d, dtype)
    labelled = labelled_of(form, n)
    budget = min(n - n_labelled(labelled, n), 25)
    want, want_dist = reference(("kcg", pool, n, d, str(dtype), form), lambda: uk.kcenter_greedy(
        x, labelled, budget, backend="reference", return_distances=True))
    (xd,) = on(device, x)
    got, got_dist = call(backend, uk.kcenter_greedy, xd, labelled, budget, return_distances=True, algorithm=algorithm)
    np.testing.assert_array_equal(to_numpy(got), want)
    np.testing.assert_allclose(as_float64(got_dist), as_float64(want_dist), rtol=rtol(dtype) * 4)


@pytest.mark.parametrize("first", ["max_norm", "random", 3])
@pytest.mark.parametrize("seed", [7, 2**64 - 1])
@pytest.mark.parametrize("n,d", [(40, 12), (123, 7), (2000, 33)])
def test_kmeans_pp_matches_reference(backend, algorithm, dtype, device, first, seed, n, d):
    fits(backend, n, d)
    x = gaussian_pool(n, d, seed=seed % 1000, dtype=dtype)
    budget = min(n, 20)
    want = reference(("kmpp", n, d, str(dtype), seed, first), lambda: uk.kmeans_pp(
        x, budget, seed=seed, first=first, backend="reference"))
    (xd,) = on(device, x)
    got = call(backend, uk.kmeans_pp, xd, budget, seed=seed, first=first, algorithm=algorithm)
    np.testing.assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize("form", ["indices", "mask"])
@pytest.mark.parametrize("n,d", [(40, 12), (500, 40)])
def test_kmeans_pp_from_labelled_matches_reference(backend, algorithm, dtype, device, form, n, d):
    fits(backend, n, d)
    x = clustered_pool(n, d, seed=3, dtype=dtype)
    labelled = labelled_of(form, n)
    want = uk.kmeans_pp(x, 15, labelled_idx=labelled, seed=11, backend="reference")
    (xd,) = on(device, x)
    got = call(backend, uk.kmeans_pp, xd, 15, labelled_idx=labelled, seed=11, algorithm=algorithm)
    np.testing.assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("first", ["max_norm", "random", 5])
@pytest.mark.parametrize("backend", ["cpp", "numba"])  # the backends with a thread count
def test_kmeans_pp_same_picks_on_any_thread_count(backend, first, threads):
    x = gaussian_pool(3000, 24, seed=4)
    want = reference(("kmpp-threads", first), lambda: uk.kmeans_pp(x, 30, seed=123, first=first, backend="reference"))
    if backend == "cpp":
        ext = _lazy.load("cpu")
        before = ext.get_num_threads()
        ext.set_num_threads(threads)
        try:
            got = call(backend, uk.kmeans_pp, x, 30, seed=123, first=first)
            picks_kcg = call(backend, uk.kcenter_greedy, x, None, 30)
        finally:
            ext.set_num_threads(before)
    else:
        numba = pytest.importorskip("numba")
        before = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            got = call(backend, uk.kmeans_pp, x, 30, seed=123, first=first)
            picks_kcg = call(backend, uk.kcenter_greedy, x, None, 30)
        finally:
            numba.set_num_threads(before)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(picks_kcg, reference(("kcg-threads",), lambda: uk.kcenter_greedy(
        x, None, 30, backend="reference")))


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 + 17, 2**64 - 1])
def test_compiled_splitmix64_equals_python_stream(seed):
    ext = _lazy.load("cpu")
    np.testing.assert_array_equal(ext.splitmix64_uniforms(seed, 0, 64), rng.uniforms(seed, 0, 64))
    np.testing.assert_array_equal(ext.splitmix64_uniforms(seed, 1000, 5), rng.uniforms(seed, 1000, 5))


@SELECT_FACTORED
@pytest.mark.parametrize("kind", ["uwe", "badge"])
@pytest.mark.parametrize("form", ["none", "mask"])
def test_factored_matches_reference(backend, algorithm, dtype, device, kind, form):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (700, 48)
    w, f = factored(kind, n, d, dtype)
    labelled = labelled_of(form, n)
    want = uk.kcenter_greedy(uk.FactoredEmbedding(w, f), labelled, 20, backend="reference")
    want_pp = uk.kmeans_pp(uk.FactoredEmbedding(w, f), 20, labelled_idx=labelled, seed=9, backend="reference")
    emb = uk.FactoredEmbedding(*on(device, w, f))
    np.testing.assert_array_equal(to_numpy(call(backend, uk.kcenter_greedy, emb, labelled, 20, algorithm=algorithm)),
                                  want)
    got_pp = call(backend, uk.kmeans_pp, emb, 20, labelled_idx=labelled, seed=9, algorithm=algorithm)
    np.testing.assert_array_equal(to_numpy(got_pp), want_pp)


@SELECT_FACTORED
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["uwe", "badge"])
@pytest.mark.parametrize("form", ["none", "indices"])
def test_factored_picks_equal_materialised_picks(backend, device, dtype_name, kind, form):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (600, 40)
    w, f = factored(kind, n, d, np.dtype(dtype_name), seed=5)
    labelled = labelled_of(form, n)
    emb = uk.FactoredEmbedding(*on(device, w, f))
    dense = emb.materialize()
    for fn, kwargs in ((uk.kcenter_greedy, {}), (uk.kmeans_pp, {"seed": 2})):
        args = (labelled, 25) if fn is uk.kcenter_greedy else (25,)
        extra = {} if fn is uk.kcenter_greedy else {"labelled_idx": labelled}
        got = call(backend, fn, emb, *args, **extra, **kwargs)
        want = call(backend, fn, dense, *args, **extra, **kwargs)
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))


def duplicated_pool(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    distinct = np.array([[0.0, 0.0], [10.0, 1.0], [-7.0, 4.0], [3.0, -9.0], [1.0, 6.5]])
    order = np.array([2, 0, 4, 2, 1, 3, 0, 4, 1, 2, 3, 4])
    return distinct[order].astype(dtype), order


def test_kcenter_greedy_ties_go_to_the_lowest_index(backend, algorithm, dtype, device):
    x, order = duplicated_pool(dtype)
    picks = to_numpy(call(backend, uk.kcenter_greedy, *on(device, x), None, len(x), algorithm=algorithm))
    np.testing.assert_array_equal(picks, uk.kcenter_greedy(x, None, len(x), backend="reference"))
    firsts = [int(np.flatnonzero(order == v)[0]) for v in order[picks[:5]]]
    np.testing.assert_array_equal(picks[:5], firsts)
    assert sorted(set(order[picks[:5]])) == list(range(5))
    np.testing.assert_array_equal(picks[5:], np.sort(picks[5:]))


def test_kcenter_greedy_duplicates_of_labelled_rows_come_last_in_index_order(backend, algorithm, dtype, device):
    x, order = duplicated_pool(dtype)
    labelled = [0, 1]
    budget = len(x) - 2
    picks = to_numpy(call(backend, uk.kcenter_greedy, *on(device, x), labelled, budget, algorithm=algorithm))
    np.testing.assert_array_equal(picks, uk.kcenter_greedy(x, labelled, budget, backend="reference"))
    fresh = len(set(order.tolist()) - set(order[labelled].tolist()))
    assert len(set(order[picks[:fresh]].tolist())) == fresh
    np.testing.assert_array_equal(picks[fresh:], np.sort(picks[fresh:]))


def test_first_pick_on_equal_norms_is_row_zero(backend, dtype, device):
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=dtype)
    (xd,) = on(device, x)
    assert int(to_numpy(call(backend, uk.kcenter_greedy, xd, None, 1))[0]) == 0
    assert int(to_numpy(call(backend, uk.kmeans_pp, xd, 1))[0]) == 0


def test_kmeans_pp_all_distances_zero_falls_back_to_uniform_draws(backend, algorithm, dtype, device):
    x = np.tile(np.array([[1.0, 2.0, 3.0]], dtype=dtype), (9, 1))
    (xd,) = on(device, x)
    got = to_numpy(call(backend, uk.kmeans_pp, xd, 9, seed=3, first="random", algorithm=algorithm))
    np.testing.assert_array_equal(got, uk.kmeans_pp(x, 9, seed=3, first="random", backend="reference"))
    assert sorted(got.tolist()) == list(range(9))


@pytest.mark.parametrize("form", ["none", "indices"])
def test_budget_zero_and_budget_all(backend, device, form):
    x = gaussian_pool(30, 5, seed=8)
    labelled = labelled_of(form, 30)
    rest = 30 - n_labelled(labelled, 30)
    (xd,) = on(device, x)
    assert to_numpy(call(backend, uk.kcenter_greedy, xd, labelled, 0)).shape == (0,)
    assert to_numpy(call(backend, uk.kmeans_pp, xd, 0, labelled_idx=labelled)).shape == (0,)
    every = to_numpy(call(backend, uk.kcenter_greedy, xd, labelled, rest))
    np.testing.assert_array_equal(every, uk.kcenter_greedy(x, labelled, rest, backend="reference"))
    every_pp = to_numpy(call(backend, uk.kmeans_pp, xd, rest, labelled_idx=labelled, seed=4))
    np.testing.assert_array_equal(every_pp, uk.kmeans_pp(x, rest, labelled_idx=labelled, seed=4, backend="reference"))
    taken = set() if labelled is None else set(np.asarray(labelled).tolist())
    assert set(every.tolist()) == set(range(30)) - taken
    assert set(every_pp.tolist()) == set(range(30)) - taken


@pytest.mark.parametrize("form", ["none", "indices", "mask"])
def test_selection_properties(backend, dtype, device, form):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (800, 20)
    x = clustered_pool(n, d, seed=6, dtype=dtype)
    labelled = labelled_of(form, n)
    taken = set() if labelled is None else set(np.flatnonzero(np.asarray(labelled)).tolist()
                                               if np.asarray(labelled).dtype == bool else np.asarray(labelled).tolist())
    budget = min(30, n - len(taken))
    (xd,) = on(device, x)
    picks, raw_dists = call(backend, uk.kcenter_greedy, xd, labelled, budget, return_distances=True)
    picks, dists = to_numpy(picks), as_float64(raw_dists)
    assert to_numpy(raw_dists).dtype == x.dtype
    pp = to_numpy(call(backend, uk.kmeans_pp, xd, budget, labelled_idx=labelled, seed=1))
    np.testing.assert_array_equal(to_numpy(call(backend, uk.kmeans_pp, xd, budget, labelled_idx=labelled, seed=1)), pp)
    for p in (picks, pp):
        assert p.dtype == np.int64 and p.shape == (budget,)
        assert len(set(p.tolist())) == budget
        assert p.min() >= 0 and p.max() < n
        assert not set(p.tolist()) & taken
    assert np.all(np.diff(dists[1:] if not taken else dists) <= 0)
    assert np.isinf(dists[0]) if not taken else np.isfinite(dists[0])


def test_kcenter_greedy_picks_are_the_farthest_rows(backend, dtype, device):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (400, 9)
    x = gaussian_pool(n, d, seed=12, dtype=dtype)
    (xd,) = on(device, x)
    picks, dists = call(backend, uk.kcenter_greedy, xd, [0, 1], 8, return_distances=True)
    picks, dists = to_numpy(picks), as_float64(dists)
    x64 = x.astype(np.float64)
    centres = [0, 1]
    for p, dist in zip(picks, dists):
        d2 = ((x64[:, None, :] - x64[None, centres, :]) ** 2).sum(-1).min(1)
        assert int(np.argmax(d2)) == p
        np.testing.assert_allclose(dist, np.sqrt(d2[p]), rtol=rtol(dtype) * 4)
        centres.append(int(p))


@MIN_DISTANCES
@pytest.mark.parametrize("n,m,d", [(1, 1, 1), (40, 3, 12), (777, 130, 37), (900, 260, 300)])
def test_min_distances_matches_reference(backend, dtype, device, n, m, d):
    fits(backend, n, d)
    x = gaussian_pool(n, d, seed=2, dtype=dtype)
    c = gaussian_pool(m, d, seed=3, dtype=dtype)
    want, want_arg = reference(("mind", n, m, d, str(dtype)), lambda: uk.min_distances(
        x, c, return_argmin=True, backend="reference"))
    got, got_arg = call(backend, uk.min_distances, *on(device, x, c), return_argmin=True)
    np.testing.assert_array_equal(to_numpy(got_arg), want_arg)
    assert to_numpy(got).dtype == x.dtype
    np.testing.assert_allclose(as_float64(got), as_float64(want), rtol=rtol(dtype) * 4)
    alone = call(backend, uk.min_distances, *on(device, x, c))
    np.testing.assert_array_equal(to_numpy(alone), to_numpy(got))


@MIN_DISTANCES
def test_min_distances_ties_and_self_distance(backend, dtype, device):
    x, _ = duplicated_pool(dtype)
    c = x[[3, 0, 4, 9]]
    d, arg = call(backend, uk.min_distances, *on(device, x, c), return_argmin=True)
    want_d, want_arg = uk.min_distances(x, c, return_argmin=True, backend="reference")
    np.testing.assert_array_equal(to_numpy(arg), want_arg)
    np.testing.assert_array_equal(as_float64(d), as_float64(want_d))
    assert as_float64(d)[[3, 0, 4, 9]].tolist() == [0.0] * 4


@pytest.mark.ops("min_distances", factored=True)
@pytest.mark.parametrize("kind", ["uwe", "badge"])
def test_min_distances_factored_matches_reference(backend, dtype, device, kind):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (500, 30)
    w, f = factored(kind, n, d, dtype, seed=7)
    wc, fc = factored(kind, 60, d, dtype, seed=8)
    want, want_arg = uk.min_distances(uk.FactoredEmbedding(w, f), uk.FactoredEmbedding(wc, fc), return_argmin=True,
                                      backend="reference")
    got, got_arg = call(backend, uk.min_distances, uk.FactoredEmbedding(*on(device, w, f)),
                        uk.FactoredEmbedding(*on(device, wc, fc)), return_argmin=True)
    np.testing.assert_array_equal(to_numpy(got_arg), want_arg)
    np.testing.assert_allclose(as_float64(got), as_float64(want), rtol=rtol(dtype) * 4, atol=1e-6)


@pytest.mark.parametrize("backend", cpu_backends())
def test_strided_and_memmap_pools_are_read_in_place(backend, tmp_path):
    base = gaussian_pool(600, 50, seed=13)
    want = uk.kcenter_greedy(base[::-2, 3:40], [1, 2], 20, backend="reference")
    got = call(backend, uk.kcenter_greedy, base[::-2, 3:40], [1, 2], 20)
    np.testing.assert_array_equal(got, want)
    fortran = np.asfortranarray(base[:, :40])
    np.testing.assert_array_equal(call(backend, uk.kcenter_greedy, fortran, None, 15),
                                  uk.kcenter_greedy(base[:, :40], None, 15, backend="reference"))
    path = tmp_path / "pool.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=base.shape)
    mm[:] = base
    mm.flush()
    ro = np.memmap(path, dtype=np.float16, mode="r", shape=base.shape)
    np.testing.assert_array_equal(call(backend, uk.kcenter_greedy, ro, None, 20),
                                  uk.kcenter_greedy(np.asarray(ro), None, 20, backend="reference"))
    np.testing.assert_array_equal(call(backend, uk.kmeans_pp, ro, 20, seed=5),
                                  uk.kmeans_pp(np.asarray(ro), 20, seed=5, backend="reference"))


@pytest.mark.ops("kcenter_greedy", "kmeans_pp", "min_distances")
def test_inputs_are_not_modified(backend, dtype, device):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (300, 10)
    x = gaussian_pool(n, d, seed=14, dtype=dtype)
    mask = np.zeros(n, dtype=bool)
    mask[[1, 4]] = True
    x_copy, mask_copy = x.copy(), mask.copy()
    (xd,) = on(device, x)
    call(backend, uk.kcenter_greedy, xd, mask, 5)
    call(backend, uk.kmeans_pp, xd, 5, labelled_idx=mask)
    call(backend, uk.min_distances, xd, xd[:3])
    np.testing.assert_array_equal(to_numpy(xd).view(np.uint8), x_copy.view(np.uint8))
    np.testing.assert_array_equal(mask, mask_copy)


def test_progress_bar_leaves_the_picks_unchanged(backend, device, capsys):
    n, d = (TINY["n"], TINY["d"]) if backend == "triton" else (2000, 16)
    x = gaussian_pool(n, d, seed=15)
    (xd,) = on(device, x)
    quiet = to_numpy(call(backend, uk.kcenter_greedy, xd, None, 20))
    shown = to_numpy(call(backend, uk.kcenter_greedy, xd, None, 20, progress=True))
    shown_pp = to_numpy(call(backend, uk.kmeans_pp, xd, 20, progress=True))
    np.testing.assert_array_equal(shown, quiet)
    np.testing.assert_array_equal(shown_pp, uk.kmeans_pp(x, 20, backend="reference"))
    err = capsys.readouterr().err
    assert "k-center greedy" in err and "k-means++" in err


def test_progress_callback_is_called_during_a_long_compiled_run():
    x = gaussian_pool(200_000, 64, seed=16)  # about a second of work: progress fires every ~100 ms
    seen: list[int] = []
    picks, _ = _lazy.load("cpu").kcenter_greedy(emb_spec(x), np.zeros(len(x), bool), 200, FIRST_MAX_NORM, False,
                                                seen.append)
    assert len(picks) == 200
    assert seen and all(0 < a < b for a, b in zip(seen, seen[1:])) and seen[-1] < 200


@pytest.mark.parametrize("phase", ["picks", "labelled_init"])
def test_ctrl_c_interrupts_a_long_compiled_run(phase, ctrl_c_raises):
    if phase == "picks":
        x = gaussian_pool(200_000, 64, seed=17)
        labelled, budget = None, 3000
    else:
        x = gaussian_pool(100_000, 64, seed=17)
        labelled, budget = np.arange(0, 100_000, 2), 10
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            uk.kcenter_greedy(x, labelled, budget, backend="cpp")
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 2.5


def test_labelled_set_needs_no_n_by_m_matrix():
    script = textwrap.dedent("""
        import resource, numpy as np, uwe_kernels as uk
        n, m, d = 200_000, 50_000, 2
        x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
        labelled = np.arange(0, n, n // m)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        picks = uk.kcenter_greedy(x, labelled, 5, backend="cpp")
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(len(picks), grown * 1024)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(uk.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    picks, grown = map(int, out.stdout.split())
    assert picks == 5
    assert grown < 200_000 * 50_000 * 4 / 100


@pytest.mark.parametrize("fn", ["kcenter_greedy", "kmeans_pp"])
def test_bad_selection_inputs_raise_clear_errors(backend, device, fn):
    x = gaussian_pool(20, 4, seed=18)
    (xd,) = on(device, x)

    def run(emb: Any = xd, labelled: Any = None, budget: Any = 3, **kwargs: Any) -> Any:
        if fn == "kcenter_greedy":
            return call(backend, uk.kcenter_greedy, emb, labelled, budget, **kwargs)
        return call(backend, uk.kmeans_pp, emb, budget, labelled_idx=labelled, **kwargs)

    with pytest.raises(ValueError, match="out of range"):
        run(labelled=[3, 20])
    with pytest.raises(ValueError, match="out of range"):
        run(labelled=[-1])
    with pytest.raises(ValueError, match="budget"):
        run(budget=21)
    with pytest.raises(ValueError, match="budget"):
        run(labelled=[0, 1], budget=19)
    with pytest.raises(ValueError, match="budget"):
        run(budget=-1)
    with pytest.raises(TypeError, match="float"):
        run(emb=on(device, np.arange(40).reshape(20, 2))[0])
    nan = x.copy()
    nan[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        run(emb=on(device, nan)[0])
    with pytest.raises(ValueError, match="first"):
        run(first=20)
    with pytest.raises(ValueError, match="algorithm"):
        run(algorithm="fastest")


@MIN_DISTANCES
def test_bad_min_distances_inputs_raise_clear_errors(backend, device):
    x = gaussian_pool(20, 4, seed=20)
    with pytest.raises(ValueError, match="d = 5"):
        call(backend, uk.min_distances, *on(device, x, gaussian_pool(3, 5)))
    with pytest.raises(ValueError, match="at least one row"):
        call(backend, uk.min_distances, *on(device, x, x[:0]))
    bad = x[:3].copy()
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match="row 1"):
        call(backend, uk.min_distances, *on(device, x, bad))


# ---------------------------------------------------------------- embeddings made by the backend itself

MADE_BY_THE_BACKEND = pytest.mark.ops("uncertainty", "badge_weights", "kcenter_greedy", "kmeans_pp", factored=True)
LABELLED_SMALL = {"none": None, "indices": [3, 17, 3, 40], "mask": [0, 9, 52]}


def made_embedding(backend: str, device: str, kind: str, feats: np.ndarray, scores: np.ndarray) -> Any:
    """The pool a pipeline hands to selection: the features, or UWE / BADGE factors that
    `backend` computed from the scores."""
    f, s = on(device, feats, scores)
    if kind == "dense":
        return f
    make = uk.uwe_factored if kind == "uwe" else uk.badge_factored
    return make(s, f, backend=backend)


def made_inputs(dtype: Any, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    feats = gaussian_pool(n, d, seed=5, dtype=np.float64).astype(dtype)
    scores = (3.0 * np.random.default_rng(6).standard_normal((n, 4))).astype(dtype)
    return feats, scores


@MADE_BY_THE_BACKEND
@pytest.mark.parametrize("form", list(LABELLED_SMALL))
@pytest.mark.parametrize("kind", ["dense", "uwe", "badge"])
def test_kcenter_greedy_on_backend_made_embeddings_equals_reference(backend, dtype, device, kind, form):
    n, budget = 53, 7
    feats, scores = made_inputs(dtype, n, 9)
    lab: Any = LABELLED_SMALL[form]
    if form == "mask":
        lab = np.isin(np.arange(n), lab)
    got, dist = call(backend, uk.kcenter_greedy, made_embedding(backend, device, kind, feats, scores), lab, budget,
                     return_distances=True)
    want, want_dist = uk.kcenter_greedy(made_embedding("reference", "cpu", kind, feats, scores), lab, budget,
                                        backend="reference", return_distances=True)
    np.testing.assert_array_equal(to_numpy(got).astype(np.int64), want)
    finite = np.isfinite(as_float64(want_dist))
    np.testing.assert_array_equal(np.isfinite(as_float64(dist)), finite)
    tol = 4 * rtol(dtype)
    np.testing.assert_allclose(as_float64(dist)[finite], as_float64(want_dist)[finite], rtol=tol,
                               atol=tol * max(1.0, float(np.abs(as_float64(want_dist)[finite]).max(initial=0.0))))


@MADE_BY_THE_BACKEND
@pytest.mark.parametrize("first", ["max_norm", "random", 11])
@pytest.mark.parametrize("kind", ["dense", "uwe", "badge"])
def test_kmeans_pp_on_backend_made_embeddings_equals_reference(backend, dtype, device, kind, first):
    feats, scores = made_inputs(dtype, 47, 8)
    got = call(backend, uk.kmeans_pp, made_embedding(backend, device, kind, feats, scores), 7, seed=2024, first=first)
    want = uk.kmeans_pp(made_embedding("reference", "cpu", kind, feats, scores), 7, seed=2024, first=first,
                        backend="reference")
    np.testing.assert_array_equal(to_numpy(got).astype(np.int64), want)


@pytest.mark.ops("uwe", "uncertainty", "badge_weights", "kcenter_greedy", "kmeans_pp", factored=True)
def test_read_only_inputs_work_and_are_not_modified(backend, device):
    scores = (3.0 * np.random.default_rng(1).standard_normal((30, 4))).astype(np.float32)
    feats = gaussian_pool(30, 6, seed=0)
    s, f = on(device, scores, feats)
    before = [as_float64(s).copy(), as_float64(f).copy()]
    if isinstance(s, np.ndarray):
        s.flags.writeable = False
        f.flags.writeable = False
    call(backend, uk.uwe, s, f)
    call(backend, uk.kcenter_greedy, f, [0], 5)
    call(backend, uk.kmeans_pp, uk.badge_factored(s, f, backend=backend), 5)
    np.testing.assert_array_equal(as_float64(s), before[0])
    np.testing.assert_array_equal(as_float64(f), before[1])


def _without_a_pruned_engine() -> list[Any]:
    """The backends that must refuse algorithm='pruned' (the reference answers it with brute force)."""
    return [p for p in backends_with("brute") if registry.BACKENDS[p.values[0]].undeclared(
        "kcenter_greedy", algorithm="pruned") and not registry.BACKENDS[p.values[0]].answers_every_algorithm]


@pytest.mark.parametrize("backend", _without_a_pruned_engine())
def test_pruned_is_refused_with_a_reason_where_undeclared(backend, device):
    (xd,) = on(device, gaussian_pool(20, 3))
    with pytest.raises(uk.BackendUnavailable, match="pruned"):
        uk.kcenter_greedy(xd, None, 3, algorithm="pruned", backend=backend)
    with pytest.raises(uk.BackendUnavailable, match="pruned"):
        uk.kmeans_pp(xd, 3, algorithm="pruned", backend=backend)
