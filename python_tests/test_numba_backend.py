"""What only the numba backend has: its float16 / bfloat16 codecs, its thread pool, and Ctrl-C
between the picks of its Python-driven loop. Its results are tested in the shared matrix."""
from __future__ import annotations

import _thread
import threading
import time

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels._arrays import BFLOAT16

from helpers import gaussian_pool, logits

numba = pytest.importorskip("numba")


def test_half_codecs_are_bit_exact():
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


def test_results_do_not_depend_on_thread_count():
    feats = gaussian_pool(9000, 3, seed=31, dtype=np.float64).astype(np.float32)
    scores = logits(9000, 4, seed=32, dtype=np.float64).astype(np.float32)
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


def test_progress_is_reported_and_ctrl_c_stops_between_picks(ctrl_c_raises):
    feats = gaussian_pool(60_000, 16, seed=41, dtype=np.float64).astype(np.float32)
    # Compile first with the call that is interrupted below: an interrupt that lands while
    # numba compiles is swallowed by its finalizers instead of reaching the caller.
    uk.kcenter_greedy(feats[:100], None, 3, backend="numba", algorithm="brute")
    seen: list[int] = []
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
