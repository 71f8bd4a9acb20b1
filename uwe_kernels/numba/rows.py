"""Rows as the numba kernels see them, and the one distance function of every numba selection
path (brute sweep, pruned engine, min distances).

Distances: exact sum((x - c)^2) for dense and UWE rows (row i = w_i f_i, formed in the
accumulator, rounded like the gathered centre, so a duplicate of a centre is at exactly 0);
BADGE rows use |a_i|^2|f_i|^2 + |a_c|^2|f_c|^2 - 2 (a_i.a_c)(f_i.f_c), clamped at 0, with the
dot products summed in the same order as the norms (a duplicate again gives exactly 0).
Accumulator: float32, float64 for float64 inputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from ._runtime import BLOCK, NATIVE, load, parallel_kernel, storage

# Reassociation lets LLVM vectorise the per-row sums; each row's order is still fixed by the
# compiled code, so results do not depend on the thread count. No "contract": a fused
# multiply-add would keep the unrounded w_i f_i (or a_i.a_c f_i.f_c) of a row whose centre copy
# was rounded, and a duplicate of a centre would come out a rounding error away from 0.
# No nnan/ninf: D holds inf.
REASSOC = {"reassoc"}


# ---------------------------------------------------------------- rows as the kernels see them


class Rows:
    """An embedding as kernel arguments: X [n, d] (dense rows or features), W (weights:
    [0, 0] for dense, [n, 1] for UWE, [n, K] for BADGE), element codes, and for BADGE the row norms
    |a_i|^2 |f_i|^2 in the accumulator."""

    def __init__(self, emb: Any, zero: Any) -> None:
        self.zero = zero
        if hasattr(emb, "weights"):
            self.src_w, self.src_x = emb.weights, emb.features
            self.X, self.xcode = storage(emb.features)
            self.W, self.wcode = storage(emb.weights)
            self.badge = self.W.ndim == 2
            if not self.badge:  # kernels take weights as [n, 1] so every branch types alike
                self.W = self.W[:, None]
        else:
            self.src_w, self.src_x = None, emb
            self.X, self.xcode = storage(emb)
            self.W, self.wcode = storage(np.zeros((0, 0), dtype=zero.dtype))
            self.badge = False
        self.has_w = self.src_w is not None
        self.n = self.X.shape[0]
        self.norms = np.empty(self.n, dtype=zero.dtype)
        if self.badge:
            _norms(self.X, self.xcode, self.W, self.wcode, True, True, self.norms, zero)

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre block for rows idx: (c [m, d] rows or features, ca [m, K] BADGE weights,
        cn [m] BADGE norms), in the accumulator type."""
        dt = self.zero.dtype
        x = np.asarray(self.src_x[idx], dtype=dt)
        if not self.has_w:
            return x, np.zeros((0, 0), dtype=dt), np.zeros(0, dtype=dt)
        w = np.asarray(self.src_w[idx], dtype=dt)
        if not self.badge:
            return (w[:, None] * x).astype(dt), np.zeros((0, 0), dtype=dt), np.zeros(0, dtype=dt)
        return x, w, self.norms[idx]

    def sqnorms(self) -> np.ndarray:
        if self.badge:
            return self.norms.astype(np.float64)
        out = np.empty(self.n, dtype=self.zero.dtype)
        _norms(self.X, self.xcode, self.W, self.wcode, self.has_w, False, out, self.zero)
        return out.astype(np.float64)


# ---------------------------------------------------------------- distance arithmetic


@njit(cache=True, fastmath=REASSOC)
def _plain_dist(X, xcode, i, c, zero):  # type: ignore[no-untyped-def]
    s = zero
    for j in range(c.shape[0]):
        t = load(X, i, j, xcode, zero) - c[j]
        s += t * t
    return s


@njit(cache=True, fastmath=REASSOC)
def _weighted_dist(X, xcode, W, wcode, i, c, zero):  # type: ignore[no-untyped-def]
    wi = load(W, i, 0, wcode, zero)
    s = zero
    for j in range(c.shape[0]):
        t = wi * load(X, i, j, xcode, zero) - c[j]
        s += t * t
    return s


# The dispatchers below are inlined into their callers' row loops (numba IR, inline="always"):
# the branch on has_w / badge is then loop-invariant there and LLVM hoists it, where a call per
# row to a dispatcher kept out of line cost as much as the vectorised loop itself (1.5x on
# float64-accumulated k-means++). The loops stay in their own functions with their own flags, so
# the arithmetic, and every pick, is unchanged.


@njit(cache=True, inline="always")
def dense_dist(X, xcode, W, wcode, has_w, i, c, zero):  # type: ignore[no-untyped-def]
    """|x_i - c|^2 with x_i = w_i f_i for UWE factors (has_w)."""
    if has_w:
        return _weighted_dist(X, xcode, W, wcode, i, c, zero)
    return _plain_dist(X, xcode, i, c, zero)


@njit(cache=True)
def _dot(A, acode, i, B, bcode, j, zero):  # type: ignore[no-untyped-def]
    """sum_k A[i, k] B[j, k] in one fixed order (eight running sums, then a fixed tree; no
    fastmath), whatever the arrays' types and layouts: a row's product with a copy of itself
    is then its squared norm bit for bit, and the BADGE norm form gives a duplicate exactly 0.
    The eight independent sums still let LLVM vectorise."""
    m = A.shape[1]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    k = 0
    while k + 8 <= m:
        s0 += load(A, i, k, acode, zero) * load(B, j, k, bcode, zero)
        s1 += load(A, i, k + 1, acode, zero) * load(B, j, k + 1, bcode, zero)
        s2 += load(A, i, k + 2, acode, zero) * load(B, j, k + 2, bcode, zero)
        s3 += load(A, i, k + 3, acode, zero) * load(B, j, k + 3, bcode, zero)
        s4 += load(A, i, k + 4, acode, zero) * load(B, j, k + 4, bcode, zero)
        s5 += load(A, i, k + 5, acode, zero) * load(B, j, k + 5, bcode, zero)
        s6 += load(A, i, k + 6, acode, zero) * load(B, j, k + 6, bcode, zero)
        s7 += load(A, i, k + 7, acode, zero) * load(B, j, k + 7, bcode, zero)
        k += 8
    t = zero
    while k < m:
        t += load(A, i, k, acode, zero) * load(B, j, k, bcode, zero)
        k += 1
    return (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) + t


@njit(cache=True)
def _badge_dist(X, xcode, W, wcode, norms, i, ca, cf, cn, k, zero):  # type: ignore[no-untyped-def]
    """|a_i|^2|f_i|^2 + |a_k|^2|f_k|^2 - 2 (a_i.a_k)(f_i.f_k), clamped at 0; the norms are
    _dot's products too, so the terms cancel exactly for a duplicate."""
    da = _dot(W, wcode, i, ca, NATIVE, k, zero)
    df = _dot(X, xcode, i, cf, NATIVE, k, zero)
    v = norms[i] + cn[k] - 2 * (da * df)
    return v if v > 0 else zero


@njit(cache=True, inline="always")
def row_dist(X, xcode, W, wcode, has_w, badge, norms, i, c, ca, cn, k, zero):  # type: ignore[no-untyped-def]
    """Squared distance from row i to centre k of a gathered block."""
    if badge:
        return _badge_dist(X, xcode, W, wcode, norms, i, ca, c, cn, k, zero)
    return dense_dist(X, xcode, W, wcode, has_w, i, c[k], zero)


@njit(cache=True)
def _norms_rows(lo, hi, X, xcode, W, wcode, has_w, badge, out, zero):  # type: ignore[no-untyped-def]
    """Squared row norms: |x|^2 (dense), |w x|^2 (UWE), |a|^2 |f|^2 (BADGE, by _dot)."""
    for i in range(lo, hi):
        if badge:
            out[i] = _dot(W, wcode, i, W, wcode, i, zero) * _dot(X, xcode, i, X, xcode, i, zero)
            continue
        wi = load(W, i, 0, wcode, zero) if has_w else zero + 1
        sf = zero
        for j in range(X.shape[1]):
            f = wi * load(X, i, j, xcode, zero)
            sf += f * f
        out[i] = sf


@parallel_kernel()
def _norms(X, xcode, W, wcode, has_w, badge, out, zero):  # type: ignore[no-untyped-def]
    n = X.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        _norms_rows(b * BLOCK, min(n, (b + 1) * BLOCK), X, xcode, W, wcode, has_w, badge, out, zero)

