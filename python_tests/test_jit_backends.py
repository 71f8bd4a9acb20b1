from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import _thread

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import registry
from uwe_kernels._arrays import BFLOAT16

from helpers import as_float64, gaussian_pool, logits, rtol, to_numpy

pytest.importorskip("numba")

DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BFLOAT16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
KINDS = ("entropy", "bvsb", "margin", "least_confidence")


def _triton_interpreting():
    try:
        import torch  # noqa: F401
        import triton.language as tl
    except ImportError as exc:
        return False, f"triton: {exc}"
    if type(tl.max).__name__ != "InterpretedFunction":
        return False, ("triton was imported without TRITON_INTERPRET=1 (triton reads it at import); "
                       "test_triton_cases_in_an_interpreter_process runs these cases")
    return True, ""


TRITON_READY, TRITON_WHY = _triton_interpreting()


def _jit_params():
    params = [pytest.param("numba", id="numba")]
    marks = [] if TRITON_READY else [pytest.mark.skip(reason=TRITON_WHY)]
    params.append(pytest.param("triton", id="triton", marks=marks))
    return params


@pytest.fixture(params=_jit_params())
def jit(request):
    ok, why = registry.BACKENDS[request.param].availability()
    if not ok:
        pytest.skip(f"{request.param}: {why}")
    return request.param


@pytest.fixture(params=list(DTYPES), ids=list(DTYPES))
def dtype(request):
    return DTYPES[request.param]


def _inputs(backend, *arrays):
    if backend == "numba":
        return arrays
    import torch

    out = []
    for a in arrays:
        if a.dtype == BFLOAT16:
            out.append(torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16))
        else:
            out.append(torch.from_numpy(np.ascontiguousarray(a)))
    return out


def _close(got, want, dtype, factor=4.0):
    g, w = as_float64(got), as_float64(want)
    assert g.shape == w.shape
    tol = factor * rtol(dtype)
    np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(1.0, float(np.abs(w).max(initial=0.0))))


def _pool(n, d, dtype, seed=0):
    return gaussian_pool(n, d, seed=seed, dtype=np.float64).astype(dtype)


def _scores(n, k, dtype, seed=1):
    return logits(n, k, seed=seed, dtype=np.float64).astype(dtype)


def _picks(x):
    return np.asarray(as_float64(x)).astype(np.int64)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("kind", KINDS)
def test_uncertainty_matches_reference(jit, dtype, kind, from_logits):
    scores = _scores(37, 5, dtype)
    if not from_logits:
        scores = np.abs(scores)
    (s,) = _inputs(jit, scores)
    got = uk.uncertainty(s, kind, from_logits=from_logits, backend=jit)
    want = uk.uncertainty(scores, kind, from_logits=from_logits, backend="reference")
    _close(got, want, dtype)


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.5])
def test_uwe_matches_reference(jit, dtype, tau):
    scores, feats = _scores(37, 5, dtype), _pool(37, 6, dtype)
    s, f = _inputs(jit, scores, feats)
    got = uk.uwe(s, f, "entropy", tau, backend=jit)
    want = uk.uwe(scores, feats, "entropy", tau, backend="reference")
    assert to_numpy(got).dtype == dtype
    _close(got, want, dtype)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_badge_embedding_and_weights_match_reference(jit, dtype, from_logits):
    scores, feats = _scores(29, 7, dtype), _pool(29, 5, dtype)
    if not from_logits:
        scores = np.abs(scores)
    s, f = _inputs(jit, scores, feats)
    got = uk.badge_embedding(s, f, from_logits=from_logits, backend=jit)
    want = uk.badge_embedding(scores, feats, from_logits=from_logits, backend="reference")
    _close(got, want, dtype)
    fe = uk.badge_factored(s, f, from_logits=from_logits, backend=jit)
    ref = uk.badge_factored(scores, feats, from_logits=from_logits, backend="reference")
    _close(fe.weights, ref.weights, dtype)


@pytest.mark.parametrize("region", [None, (4, 6), (2, 3)], ids=["image", "4x6", "2x3"])
def test_uwe_segmentation_matches_reference(jit, dtype, region):
    rng = np.random.default_rng(3)
    scores = (2 * rng.standard_normal((2, 3, 8, 12))).astype(dtype)
    feats = rng.standard_normal((2, 5, 4, 6)).astype(dtype)
    if region == (2, 3):
        scores = (2 * rng.standard_normal((1, 3, 4, 6))).astype(dtype)
        feats = rng.standard_normal((1, 5, 4, 6)).astype(dtype)
    s, f = _inputs(jit, scores, feats)
    got = uk.uwe_segmentation(s, f, region=region, tau=1.5, backend=jit)
    want = uk.uwe_segmentation(scores, feats, region=region, tau=1.5, backend="reference")
    _close(got, want, dtype)


@pytest.mark.parametrize("agg", ["max", "mean"])
def test_uwe_detection_matches_reference(jit, dtype, agg):
    rng = np.random.default_rng(4)
    scores = rng.random((31, 4)).astype(dtype)
    feats = rng.standard_normal((31, 3)).astype(dtype)
    ids = rng.integers(0, 5, 31)
    s, f, i = _inputs(jit, scores, feats, ids)
    got = uk.uwe_detection(s, f, i, 6, agg=agg, backend=jit)
    want = uk.uwe_detection(scores, feats, ids, 6, agg=agg, backend="reference")
    _close(got, want, dtype)
    assert not as_float64(got)[5].any()


def _embeddings(kind, dtype, n, d, k=4):
    feats = _pool(n, d, dtype, seed=5)
    scores = _scores(n, k, dtype, seed=6)
    if kind == "dense":
        return feats, feats, scores
    return None, feats, scores


def _emb(jit, kind, feats, scores, backend):
    f, s = _inputs(jit, feats, scores)
    if kind == "dense":
        return f
    if kind == "uwe":
        return uk.uwe_factored(s, f, backend=backend)
    return uk.badge_factored(s, f, backend=backend)


EMB_KINDS = ["dense", "uwe", "badge"]
LABELLED = {"none": None, "indices": [3, 17, 3, 40], "mask": "mask"}


def _labelled(spec, n):
    if spec == "mask":
        m = np.zeros(n, dtype=bool)
        m[[0, 9, n - 1]] = True
        return m
    return spec


@pytest.mark.parametrize("labelled", list(LABELLED), ids=list(LABELLED))
@pytest.mark.parametrize("kind", EMB_KINDS)
def test_kcenter_greedy_picks_equal_reference(jit, dtype, kind, labelled):
    n, d, budget = 53, 9, 7
    _, feats, scores = _embeddings(kind, dtype, n, d)
    lab = _labelled(LABELLED[labelled], n)
    got, dist = uk.kcenter_greedy(_emb(jit, kind, feats, scores, jit), lab, budget, backend=jit,
                                  return_distances=True)
    want, wdist = uk.kcenter_greedy(_emb("numba", kind, feats, scores, "reference"), lab, budget,
                                    backend="reference", return_distances=True)
    np.testing.assert_array_equal(_picks(got), want)
    finite = np.isfinite(as_float64(wdist))
    np.testing.assert_array_equal(np.isfinite(as_float64(dist)), finite)
    _close(as_float64(dist)[finite], as_float64(wdist)[finite], dtype)


@pytest.mark.parametrize("first", ["max_norm", "random", 11])
@pytest.mark.parametrize("kind", EMB_KINDS)
def test_kmeans_pp_picks_equal_reference(jit, dtype, kind, first):
    n, d, budget = 47, 8, 7
    _, feats, scores = _embeddings(kind, dtype, n, d)
    got = uk.kmeans_pp(_emb(jit, kind, feats, scores, jit), budget, seed=2024, first=first, backend=jit)
    want = uk.kmeans_pp(_emb("numba", kind, feats, scores, "reference"), budget, seed=2024, first=first,
                        backend="reference")
    np.testing.assert_array_equal(_picks(got), want)


def test_kmeans_pp_with_labelled_set_equals_reference(jit, dtype):
    feats = _pool(41, 6, dtype, seed=8)
    (f,) = _inputs(jit, feats)
    lab = [2, 30, 31]
    got = uk.kmeans_pp(f, 6, labelled_idx=lab, seed=99, backend=jit)
    want = uk.kmeans_pp(feats, 6, labelled_idx=lab, seed=99, backend="reference")
    np.testing.assert_array_equal(_picks(got), want)


def test_kmeans_pp_uniform_fallback_when_all_distances_are_zero(jit):
    feats = np.ones((12, 3), dtype=np.float32)
    (f,) = _inputs(jit, feats)
    got = uk.kmeans_pp(f, 12, seed=5, first="random", backend=jit)
    want = uk.kmeans_pp(feats, 12, seed=5, first="random", backend="reference")
    np.testing.assert_array_equal(_picks(got), want)
    assert sorted(_picks(got)) == list(range(12))


@pytest.mark.parametrize("kind", EMB_KINDS)
def test_min_distances_and_argmin_match_reference(jit, dtype, kind):
    _, feats, scores = _embeddings(kind, dtype, 45, 7)
    emb = _emb(jit, kind, feats, scores, jit)
    ref_emb = _emb("numba", kind, feats, scores, "reference")
    if kind == "dense":
        centres, ref_centres = emb[5:18], ref_emb[5:18]
    else:
        centres = type(emb)(emb.weights[5:18], emb.features[5:18])
        ref_centres = type(ref_emb)(ref_emb.weights[5:18], ref_emb.features[5:18])
    got, arg = uk.min_distances(emb, centres, return_argmin=True, backend=jit)
    want, warg = uk.min_distances(ref_emb, ref_centres, return_argmin=True, backend="reference")
    outside = np.setdiff1d(np.arange(45), np.arange(5, 18))
    np.testing.assert_array_equal(_picks(arg)[outside], warg[outside])
    np.testing.assert_allclose(as_float64(got), as_float64(want), rtol=8 * rtol(dtype),
                               atol=8 * rtol(dtype) * float(as_float64(want).max()))


@pytest.mark.parametrize("n,d,budget", [(1, 1, 1), (6, 1, 0), (6, 3, 6), (33, 1, 5)],
                         ids=["n1", "budget0", "budget_all", "d1"])
def test_odd_shapes_equal_reference(jit, n, d, budget):
    feats = _pool(n, d, np.float32, seed=12)
    (f,) = _inputs(jit, feats)
    np.testing.assert_array_equal(_picks(uk.kcenter_greedy(f, None, budget, backend=jit)),
                                  uk.kcenter_greedy(feats, None, budget, backend="reference"))
    np.testing.assert_array_equal(_picks(uk.kmeans_pp(f, budget, seed=3, backend=jit)),
                                  uk.kmeans_pp(feats, budget, seed=3, backend="reference"))


def test_selection_properties(jit):
    feats = _pool(60, 5, np.float32, seed=13)
    (f,) = _inputs(jit, feats)
    lab = [1, 2, 3, 59]
    picks, dist = uk.kcenter_greedy(f, lab, 20, backend=jit, return_distances=True)
    p = _picks(picks)
    assert len(set(p)) == 20 and p.min() >= 0 and p.max() < 60 and not set(p) & set(lab)
    assert np.all(np.diff(as_float64(dist)) <= 1e-6)
    km1 = _picks(uk.kmeans_pp(f, 15, labelled_idx=lab, seed=7, backend=jit))
    km2 = _picks(uk.kmeans_pp(f, 15, labelled_idx=lab, seed=7, backend=jit))
    np.testing.assert_array_equal(km1, km2)
    assert len(set(km1)) == 15 and not set(km1) & set(lab)


def test_pruned_runs_on_numba_and_is_refused_with_a_reason_elsewhere(jit):
    (f,) = _inputs(jit, _pool(20, 3, np.float32))
    if jit == "numba":  # exact: the picks of brute force
        np.testing.assert_array_equal(uk.kcenter_greedy(f, None, 3, algorithm="pruned", backend=jit),
                                      uk.kcenter_greedy(f, None, 3, algorithm="brute", backend=jit))
        np.testing.assert_array_equal(uk.kmeans_pp(f, 3, algorithm="pruned", backend=jit),
                                      uk.kmeans_pp(f, 3, algorithm="brute", backend=jit))
    else:
        with pytest.raises(uk.BackendUnavailable, match="pruned"):
            uk.kcenter_greedy(f, None, 3, algorithm="pruned", backend=jit)
        with pytest.raises(uk.BackendUnavailable, match="pruned"):
            uk.kmeans_pp(f, 3, algorithm="pruned", backend=jit)
    np.testing.assert_array_equal(_picks(uk.kcenter_greedy(f, None, 3, algorithm="auto", backend=jit)),
                                  uk.kcenter_greedy(_pool(20, 3, np.float32), None, 3, backend="reference"))


def test_inputs_are_not_modified_and_read_only_inputs_work(jit):
    scores, feats = _scores(30, 4, np.float32), _pool(30, 6, np.float32)
    s, f = _inputs(jit, scores, feats)
    before = [as_float64(s).copy(), as_float64(f).copy()]
    if jit == "numba":
        s.flags.writeable = False
        f.flags.writeable = False
    uk.uwe(s, f, backend=jit)
    uk.kcenter_greedy(f, [0], 5, backend=jit)
    uk.kmeans_pp(uk.badge_factored(s, f, backend=jit), 5, backend=jit)
    np.testing.assert_array_equal(as_float64(s), before[0])
    np.testing.assert_array_equal(as_float64(f), before[1])


def test_numba_strided_negative_and_zero_stride_inputs():
    base_s = _scores(80, 10, np.float32)
    base_f = _pool(80, 12, np.float64)
    s = base_s[::-2, 1::2]
    f = np.asfortranarray(base_f)[::-2, ::-3]
    np.testing.assert_allclose(uk.uwe(s, f, tau=0.5, backend="numba"),
                               uk.uwe(s, f, tau=0.5, backend="reference"), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(uk.kcenter_greedy(f, [1], 9, backend="numba"),
                                  uk.kcenter_greedy(f, [1], 9, backend="reference"))
    broadcast = np.broadcast_to(base_f[0], (40, 12))
    np.testing.assert_allclose(uk.uwe(s, broadcast, backend="numba"),
                               uk.uwe(s, broadcast, backend="reference"), rtol=1e-5, atol=1e-6)


def test_numba_memmap_input(tmp_path):
    feats = _pool(50, 4, np.float32, seed=21)
    mm = np.memmap(tmp_path / "pool.f32", dtype=np.float32, mode="w+", shape=feats.shape)
    mm[:] = feats
    mm.flush()
    ro = np.memmap(tmp_path / "pool.f32", dtype=np.float32, mode="r", shape=feats.shape)
    np.testing.assert_array_equal(uk.kcenter_greedy(ro, None, 6, backend="numba"),
                                  uk.kcenter_greedy(feats, None, 6, backend="reference"))


def test_numba_torch_bfloat16_round_trip():
    torch = pytest.importorskip("torch")
    scores = torch.from_numpy(_scores(25, 4, np.float32)).bfloat16()
    feats = torch.from_numpy(_pool(25, 5, np.float32)).bfloat16()
    got = uk.uwe(scores, feats, backend="numba")
    want = uk.uwe(scores, feats, backend="reference")
    assert got.dtype == torch.bfloat16 and isinstance(got, torch.Tensor)
    _close(got, want, BFLOAT16)
    np.testing.assert_array_equal(uk.kcenter_greedy(feats, None, 6, backend="numba").numpy(),
                                  uk.kcenter_greedy(feats, None, 6, backend="reference").numpy())


def test_numba_half_codecs_are_bit_exact():
    from numba import njit

    from uwe_kernels.numba import _runtime as rt

    @njit
    def widen_all(bits, out_h, out_b):
        for i in range(bits.shape[0]):
            out_h[i] = rt.f16_to_f32(bits[i])
            out_b[i] = rt.bf16_to_f32(bits[i])

    @njit
    def narrow_all(x, out_h, out_b):
        for i in range(x.shape[0]):
            out_h[i] = rt.f32_to_f16(x[i])
            out_b[i] = rt.f32_to_bf16(x[i])

    bits = np.arange(1 << 16, dtype=np.uint16)
    h, b = np.empty(1 << 16, np.float32), np.empty(1 << 16, np.float32)
    widen_all(bits, h, b)
    np.testing.assert_array_equal(h, bits.view(np.float16).astype(np.float32))
    np.testing.assert_array_equal(b, bits.view(BFLOAT16).astype(np.float32))
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.float32([0.0, -0.0, 65504, 65519.99, 65520, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, np.inf, -np.inf]),
        h[np.isfinite(h)] * np.float32(1.0000001),
    ])
    x = x[np.isfinite(x)]
    oh, ob = np.empty(len(x), np.uint16), np.empty(len(x), np.uint16)
    narrow_all(x, oh, ob)
    np.testing.assert_array_equal(oh, x.astype(np.float16).view(np.uint16))
    np.testing.assert_array_equal(ob, x.astype(BFLOAT16).view(np.uint16))


def test_numba_results_do_not_depend_on_thread_count():
    import numba

    feats = _pool(9000, 3, np.float32, seed=31)
    scores = _scores(9000, 4, np.float32, seed=32)
    runs = []
    old = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            runs.append((
                uk.kcenter_greedy(feats, [5, 6000], 25, backend="numba", return_distances=True),
                uk.kmeans_pp(uk.badge_factored(scores, feats, backend="numba"), 25, seed=4, backend="numba"),
                uk.uwe(scores, feats, backend="numba"),
            ))
    finally:
        numba.set_num_threads(old)
    (k1, d1), m1, u1 = runs[0]
    (k2, d2), m2, u2 = runs[-1]
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(k1, uk.kcenter_greedy(feats, [5, 6000], 25, backend="reference"))


def test_numba_progress_is_reported_and_ctrl_c_stops_between_picks(ctrl_c_raises):
    feats = _pool(60_000, 16, np.float32, seed=41)
    # Compile first with the call that is interrupted below: an interrupt that lands while
    # numba compiles is swallowed by its finalizers instead of reaching the caller.
    uk.kcenter_greedy(feats[:100], None, 3, backend="numba", algorithm="brute")
    seen = []
    from uwe_kernels.numba import select as nsel

    picks, _ = nsel.kcenter_greedy(feats[:3000], np.zeros(3000, bool), 400, None, algorithm="brute",
                                   progress=seen.append, accum_dtype=np.float32)
    assert seen and seen[-1] == 400 and seen == sorted(seen)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            uk.kcenter_greedy(feats, None, 59_000, backend="numba", algorithm="brute")
        stopped = time.monotonic() - start
    finally:
        timer.cancel()
    assert stopped < 1.5


@pytest.mark.skipif(TRITON_READY, reason="this process already interprets Triton")
def test_triton_cases_in_an_interpreter_process():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-rs", "-k", "triton", "-p", "no:cacheprovider"],
        env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)), timeout=900,
    )
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and "imported without TRITON_INTERPRET" not in run.stdout, tail


@pytest.mark.skipif(not TRITON_READY, reason=TRITON_WHY or "triton is not interpreting")
def test_triton_backend_reports_interpreter_mode():
    ok, why = registry.BACKENDS["triton"].availability()
    assert ok and "interpreter" in why
