"""Sketch-filtered passes of the numba pruning engine: a row gets a full distance (rows.dense_dist,
the brute sweep's own) only when its projection bound cannot prove that the distance would
leave D unchanged. The sketch and the proof of the test's margin: uwe_kernels/_sketch.py and
docs/internals.md, "Sketch bounds".

Passes: one centre against every live row (the engine's plain stretches and sketch-only
selections), and the labelled seeding pass, where each row first takes the centre of smallest
bound and then skips every centre whose bound already reaches that distance.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from .._sketch import Sketch
from ._runtime import BLOCK, parallel_kernel
from .rows import REASSOC, Rows, dense_dist

FLT_MAX = np.float32(np.finfo(np.float32).max)
SEED_CENTRES = 4096  # labelled rows gathered at a time by the seeding pass


class SketchArgs:
    """A sketch as kernel arguments; `absent()` is the placeholder of engines without one (the
    same argument types, so one compiled specialisation serves both)."""

    def __init__(self, sketch: Sketch | None) -> None:
        self.sketch = sketch
        if sketch is None:
            self.z = np.zeros((1, 1), dtype=np.float32)
            self.r = self.slack = np.zeros(1, dtype=np.float32)
            self.scale = self.tau = np.float32(0.0)
        else:
            self.z, self.r, self.slack = sketch.z, sketch.r, sketch.slack
            self.scale, self.tau = np.float32(sketch.scale), np.float32(sketch.tau)
        self.on = sketch is not None

    def centre_slack(self, s: int) -> np.float32:
        """slack_c + tau in float32, added once per centre (as sketch_bound.h)."""
        return np.float32(self.slack[s] + self.tau) if self.on else np.float32(0.0)


@njit(cache=True, fastmath=REASSOC)
def bound(z, r, i, s):  # type: ignore[no-untyped-def]
    """|z_i - z_s|^2 + (r_i - r_s)^2 in float32 (any summation order is covered by the margin)."""
    b = np.float32(0.0)
    for j in range(z.shape[1]):
        t = z[i, j] - z[s, j]
        b += t * t
    t = r[i] - r[s]
    return b + t * t


@njit(cache=True)
def keeps(b, Di, scale, centre_slack, slack_i):  # type: ignore[no-untyped-def]
    """True when a row of bound b provably keeps Di: the brute distance cannot go below it.
    Di = inf, an overflowing right-hand side or a NaN bound never skip."""
    rhs = (scale * np.float32(Di) + centre_slack) + slack_i
    return b >= rhs and rhs <= FLT_MAX


@njit(cache=True)
def _update_rows(lo, hi, X, xcode, W, wcode, has_w, c, s, z, r, slack, scale, cs, G, D, A, taken, zero):  # type: ignore[no-untyped-def]
    """D = min(D, |x - c|^2) over live rows lo..hi-1, a full distance only where the sketch
    test fails; rows that get strictly closer join group G. Returns (max D, lowest index; full
    distances; first row whose D changed, n when none)."""
    best = -1.0
    arg = -1
    evaluated = 0
    first = D.shape[0]
    for i in range(lo, hi):
        if taken[i]:
            continue
        di = D[i]
        if di > 0.0 and not keeps(bound(z, r, i, s), di, scale, cs, slack[i]):
            evaluated += 1
            v = np.float64(dense_dist(X, xcode, W, wcode, has_w, i, c, zero))
            if v < di:
                di = v
                D[i] = v
                A[i] = G
                if first == D.shape[0]:
                    first = i
        if di > best:
            best = di
            arg = i
    return best, arg, evaluated, first


@parallel_kernel()
def _update(X, xcode, W, wcode, has_w, c, s, z, r, slack, scale, cs, G, D, A, taken, zero, blk_val, blk_arg, blk_n, blk_first):  # type: ignore[no-untyped-def]
    n = D.shape[0]
    nb = (n + BLOCK - 1) // BLOCK
    for b in prange(nb):
        v, a, m, f = _update_rows(b * BLOCK, min(n, (b + 1) * BLOCK), X, xcode, W, wcode, has_w, c, s, z, r, slack,
                                  scale, cs, G, D, A, taken, zero)
        blk_val[b] = v
        blk_arg[b] = a
        blk_n[b] = m
        blk_first[b] = f
    best = -1.0
    arg = -1
    evaluated = 0
    first = n
    for b in range(nb):
        if blk_val[b] > best:
            best = blk_val[b]
            arg = blk_arg[b]
        evaluated += blk_n[b]
        if blk_first[b] < first:
            first = blk_first[b]
    return arg, evaluated, first


def update(rows: Rows, sk: SketchArgs, c: np.ndarray, s: int, G: int, D: np.ndarray, A: np.ndarray,
           taken: np.ndarray, blk_val: np.ndarray, blk_arg: np.ndarray, threads: int) -> tuple[int, int, int]:
    """Centre s (c: its row in the accumulator) against every live row: (argmax D over live
    rows, lowest index on ties, -1 when none; full distances computed; first changed row).
    threads: the team size the engine's TeamTuner chose (1: the serial loop; the same rows in
    the same order either way, so the same results)."""
    if threads <= 1:
        _, arg, evaluated, first = _update_rows(0, rows.n, rows.X, rows.xcode, rows.W, rows.wcode, rows.has_w, c, s,
                                                sk.z, sk.r, sk.slack, sk.scale, sk.centre_slack(s), G, D, A, taken,
                                                rows.zero)
        return int(arg), int(evaluated), int(first)
    nb = len(blk_val)
    blk_n, blk_first = np.empty(nb, dtype=np.int64), np.empty(nb, dtype=np.int64)
    arg, evaluated, first = _update.launch(threads, rows.X, rows.xcode, rows.W, rows.wcode, rows.has_w, c, s, sk.z, sk.r,
                                    sk.slack, sk.scale, sk.centre_slack(s), G, D, A, taken, rows.zero,
                                    blk_val, blk_arg, blk_n, blk_first)
    return int(arg), int(evaluated), int(first)


@njit(cache=True)
def _seed_rows(lo, hi, order, X, xcode, W, wcode, has_w, C, idx, ZT, offset, z, r, slack, scale, tau, D, A, zero, stop):  # type: ignore[no-untyped-def]
    """Rows order[lo:hi] against centres C (rows idx of the pool, global numbers offset + k;
    ZT: their z and r columns, transposed, so that one row's bounds to every centre are
    vector operations across centres): the centre of smallest bound first, then only centres
    whose test fails. D ends as the min of the brute force's computed distances (every
    skipped one is >= it), or, once it is below `stop`, as the first computed distance below
    it (an upper bound of that min; rows already below `stop` are left alone). Returns the
    number of full distances."""
    m = C.shape[0]
    bounds = np.empty(m, dtype=np.float32)
    cslack = np.empty(m, dtype=np.float32)
    for k in range(m):
        cslack[k] = slack[idx[k]] + tau
    evaluated = 0
    for p in range(lo, hi):
        i = order[p]
        low = D[i]
        at = A[i]
        if low < stop:
            continue
        bounds[:] = 0.0
        for j in range(ZT.shape[0]):  # as `bound` sums: the z columns, then r
            zi = z[i, j] if j < z.shape[1] else r[i]
            for k in range(m):
                t = zi - ZT[j, k]
                bounds[k] += t * t
        near = 0
        for k in range(m):
            if bounds[k] < bounds[near]:
                near = k
        if m > 0 and not keeps(bounds[near], low, scale, cslack[near], slack[i]):
            evaluated += 1
            v = np.float64(dense_dist(X, xcode, W, wcode, has_w, i, C[near], zero))
            if v < low:
                low = v
                at = offset + near
        for k in range(m):
            if low < stop:
                break
            if k == near or keeps(bounds[k], low, scale, cslack[k], slack[i]):
                continue
            evaluated += 1
            v = np.float64(dense_dist(X, xcode, W, wcode, has_w, i, C[k], zero))
            if v < low or (v == low and offset + k < at):
                low = v
                at = offset + k
        D[i] = low
        A[i] = at
    return evaluated


@parallel_kernel()
def _seed(order, X, xcode, W, wcode, has_w, C, idx, ZT, offset, z, r, slack, scale, tau, D, A, zero, stop, blk_n):  # type: ignore[no-untyped-def]
    n = order.shape[0]
    for b in prange(blk_n.shape[0]):
        blk_n[b] = _seed_rows(b * BLOCK, min(n, (b + 1) * BLOCK), order, X, xcode, W, wcode, has_w, C, idx, ZT, offset,
                              z, r, slack, scale, tau, D, A, zero, stop)
    return blk_n.sum()


def seed(rows: Rows, sk: SketchArgs, centres: np.ndarray, order: np.ndarray, D: np.ndarray, A: np.ndarray,
         threads: int = 0, stop: float = 0.0) -> int:
    """D, A = min / argmin over the pool rows `centres` (A = position in `centres`, starting
    from the D, A given), filtered by the sketch, for rows `order`, on `threads` threads (0:
    the package's count); a row stops once its D is below `stop` (k-center's dormant rows:
    D is then an upper bound). Returns the number of full distances (the plain pass computes
    len(order) x len(centres))."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    blk_n = np.zeros((len(order) + BLOCK - 1) // BLOCK, dtype=np.int64)
    evaluated = 0
    for s in range(0, len(centres), SEED_CENTRES):
        idx = np.ascontiguousarray(centres[s : s + SEED_CENTRES], dtype=np.int64)
        C = rows.gather(idx)[0]
        ZT = np.ascontiguousarray(np.concatenate([sk.z[idx], sk.r[idx, None]], axis=1).T)
        evaluated += int(_seed.launch(threads, order, rows.X, rows.xcode, rows.W, rows.wcode, rows.has_w, C, idx, ZT, s,
                                      sk.z, sk.r, sk.slack, sk.scale, sk.tau, D, A, rows.zero, float(stop), blk_n))
    return evaluated


def sketch_supported(emb: Any, accum_dtype: Any) -> list[str]:
    """Reasons a sketch cannot bound the engine's distances on `emb` (empty when it can): the
    margin assumes the brute force reads the pool's values exactly (no float64 pool summed
    in float32)."""
    if np.dtype(emb.dtype) == np.float64 and np.dtype(accum_dtype) != np.float64:
        return ["a float64 pool summed in float32 rounds its rows; the sketch bounds the unrounded ones"]
    return []
