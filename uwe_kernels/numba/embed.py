"""Embedding ops on numba: uncertainty, UWE, BADGE weights and embeddings, segmentation and
detection aggregation (docs/internals.md, "Embedding family").

Algorithm: one pass over rows (prange over fixed blocks of ROWS rows), each row's
uncertainty from a stable softmax (m = max z, s = sum exp(z - m), entropy = log s -
sum exp(z - m) (z - m) / s) or from the probabilities as given, then the row is written
scaled by u ** tau. No [n, K] probability matrix is built. kind="bald" reads a row's [K, T]
passes twice: per pass its max and log-sum (kept in a [2, T] scratch per work item) and
entropy, then per class the mean probability over the passes.
Complexity: O(n K) for the uncertainty, O(n K d) for BADGE embeddings, O(n d) otherwise.
Shapes: scores [n, K] ([n, K, T] for bald), features [n, d]; segmentation [N, K, H, W] / [N, C, h, w].
Accumulator: float32, float64 when any input is float64 (the type of the `zero` argument).
Ties: the top class (BADGE's yhat, the detection box class) is the lowest index among
equal maxima; a detection "max" keeps the lowest box index among equal uncertainties.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from .._abi import KIND_CODES
from ._runtime import acc_zero, like, load, load1, narrow, parallel_kernel, storage

CHECKS_FINITE = False
ROWS = 1024  # rows per parallel work item


# ---------------------------------------------------------------- per-row arithmetic


@njit(cache=True)
def _row_uncertainty(s, code, kind, from_logits, zero):  # type: ignore[no-untyped-def]
    """Uncertainty of one score row s [K] (any strides) in the accumulator type."""
    K = s.shape[0]
    one = like(1.0, zero)
    if from_logits:
        m = load1(s, 0, code, zero)
        for c in range(1, K):
            v = load1(s, c, code, zero)
            if v > m:
                m = v
        tot = zero
        wsum = zero
        second = like(-np.inf, zero)
        seen_top = False
        for c in range(K):
            e = load1(s, c, code, zero) - m
            ex = like(np.exp(e), zero)
            tot += ex
            wsum += ex * e
            if e == 0 and not seen_top:
                seen_top = True
            elif e > second:
                second = e
        if kind == 0:
            ent = like(np.log(tot), zero) - wsum / tot
            return ent if ent > 0 else zero
        p_best = one / tot
        p_second = like(np.exp(second), zero) / tot
        if kind == 1:
            return like(np.exp(second), zero)
        if kind == 2:
            return one - (p_best - p_second)
        return one - p_best
    best = load1(s, 0, code, zero)
    second = like(-np.inf, zero)
    ent = zero
    for c in range(K):
        p = load1(s, c, code, zero)
        if p > 0:
            ent -= p * like(np.log(p), zero)
        if c > 0:
            if p > best:
                second = best
                best = p
            elif p > second:
                second = p
    if kind == 0:
        return ent if ent > 0 else zero
    if kind == 1:
        return second / best if best > 0 else one
    if kind == 2:
        return one - (best - second)
    return one - best


@njit(cache=True)
def _row_bald(s, code, from_logits, scratch, zero):  # type: ignore[no-untyped-def]
    """Mutual information H(mean_t p_t) - mean_t H(p_t) of one row's passes s [K, T] (any
    strides), clamped at 0 against the rounding of the difference when the passes agree.
    scratch [2, T]: each pass's max and log sum exp(z - max)."""
    K, T = s.shape
    h_passes = zero
    for t in range(T):
        if from_logits:
            m = load(s, 0, t, code, zero)
            for c in range(1, K):
                v = load(s, c, t, code, zero)
                if v > m:
                    m = v
            tot = zero
            wsum = zero
            for c in range(K):
                e = load(s, c, t, code, zero) - m
                ex = like(np.exp(e), zero)
                tot += ex
                wsum += ex * e
            log_tot = like(np.log(tot), zero)
            scratch[0, t] = m
            scratch[1, t] = log_tot
            h_passes += log_tot - wsum / tot
        else:
            for c in range(K):
                p = load(s, c, t, code, zero)
                if p > 0:
                    h_passes -= p * like(np.log(p), zero)
    inv_t = like(1.0 / T, zero)
    h_mean = zero
    for c in range(K):
        pbar = zero
        for t in range(T):
            v = load(s, c, t, code, zero)
            pbar += like(np.exp((v - scratch[0, t]) - scratch[1, t]), zero) if from_logits else v
        pbar *= inv_t
        if pbar > 0:
            h_mean -= pbar * like(np.log(pbar), zero)
    u = h_mean - h_passes * inv_t
    return u if u > 0 else zero


@njit(cache=True)
def _normalized(u: Any, lo: float, span: float, zero: Any) -> Any:
    """Min-max map (u - lo) / span clipped to [0, 1]; 1 when span == 0; u when span < 0."""
    if span < 0:
        return u
    if span == 0:
        return like(1.0, zero)
    v = (u - like(lo, zero)) / like(span, zero)
    return zero if v < 0 else (like(1.0, zero) if v > 1 else v)


@njit(cache=True)
def _weight(u: Any, rule: Any, zero: Any) -> Any:
    """u's weight by rule = [tau, lo, span]: the min-max map (span >= 0), then the power tau."""
    tau = rule[0]
    u = _normalized(u, rule[1], rule[2], zero)
    if tau == 1.0:
        return u
    if tau == 0.0:
        return like(1.0, zero)
    return like(u ** like(tau, zero), zero)


@njit(cache=True)
def _softmax_stats(s: Any, code: int, from_logits: bool, zero: Any) -> tuple[Any, Any, int]:
    """(max, 1 / sum exp(z - max), argmax) of a score row; for probabilities (0, 1, argmax)."""
    K = s.shape[0]
    m = load1(s, 0, code, zero)
    top = 0
    for c in range(1, K):
        v = load1(s, c, code, zero)
        if v > m:
            m = v
            top = c
    if not from_logits:
        return zero, like(1.0, zero), top
    tot = zero
    for c in range(K):
        tot += like(np.exp(load1(s, c, code, zero) - m), zero)
    return m, like(1.0, zero) / tot, top


@njit(cache=True)
def _prob(s: Any, c: int, code: int, from_logits: bool, m: Any, inv: Any, zero: Any) -> Any:
    v = load1(s, c, code, zero)
    return like(np.exp(v - m), zero) * inv if from_logits else v


# ---------------------------------------------------------------- row kernels
# Each op is a serial, cached kernel over rows [lo, hi) and a thin prange launcher over
# fixed blocks of rows: the heavy code compiles once per machine, only the launcher per process.


UNCERTAINTY, UWE, BOXES = 0, 1, 2


@njit(cache=True)
def _write_row(i, ui, F, fcode, out, ocode, rule, zero, mode):  # type: ignore[no-untyped-def]
    """Row i of an UNCERTAINTY op (out[i, 0] = u_i) or of a UWE op (out[i, :] = w_i f_i, w_i the
    weight of u_i by rule), whatever kind gave u_i."""
    if mode == UNCERTAINTY:
        out[i, 0] = narrow(ui, out, ocode)
        return
    wi = _weight(ui, rule, zero)
    for j in range(F.shape[1]):
        out[i, j] = narrow(wi * load(F, i, j, fcode, zero), out, ocode)


@njit(cache=True)
def _uwe_rows(lo, hi, S, scode, F, fcode, out, ocode, u, w, cls, kind, rule, from_logits, zero, mode):  # type: ignore[no-untyped-def]
    """UNCERTAINTY: out[i, 0] = u_i. UWE: out[i, :] = w_i f_i. BOXES: u[i], w[i] and the top
    class cls[i] (detection)."""
    for i in range(lo, hi):
        ui = _row_uncertainty(S[i], scode, kind, from_logits, zero)
        if mode == BOXES:
            u[i] = ui
            w[i] = _weight(ui, rule, zero)
            cls[i] = _softmax_stats(S[i], scode, False, zero)[2]
            continue
        _write_row(i, ui, F, fcode, out, ocode, rule, zero, mode)


@parallel_kernel(cache=False)
def _uwe_kernel(S, scode, F, fcode, out, ocode, u, w, cls, kind, rule, from_logits, zero, mode):  # type: ignore[no-untyped-def]
    """One launcher for the three row ops, so they share a compiled specialisation."""
    n = S.shape[0]
    for b in prange((n + ROWS - 1) // ROWS):
        _uwe_rows(b * ROWS, min(n, (b + 1) * ROWS), S, scode, F, fcode, out, ocode, u, w, cls, kind, rule,
                  from_logits, zero, mode)


@njit(cache=True)
def _bald_rows(lo, hi, S, scode, F, fcode, out, ocode, scratch, rule, from_logits, zero, mode):  # type: ignore[no-untyped-def]
    """kind="bald" over scores [n, K, T]. UNCERTAINTY: out[i, 0] = u_i. UWE: out[i, :] = w_i f_i."""
    for i in range(lo, hi):
        _write_row(i, _row_bald(S[i], scode, from_logits, scratch, zero), F, fcode, out, ocode, rule, zero, mode)


@parallel_kernel(cache=False)
def _bald_kernel(S, scode, F, fcode, out, ocode, scratch, rule, from_logits, zero, mode):  # type: ignore[no-untyped-def]
    n = S.shape[0]
    for b in prange((n + ROWS - 1) // ROWS):
        _bald_rows(b * ROWS, min(n, (b + 1) * ROWS), S, scode, F, fcode, out, ocode, scratch[b], rule, from_logits,
                   zero, mode)


@njit(cache=True)
def _badge_rows(lo, hi, S, scode, F, fcode, out, ocode, from_logits, zero, embed):  # type: ignore[no-untyped-def]
    """BADGE weights p - onehot (embed=False, out [n, K]) or their product with the
    features, class-major (embed=True, out [n, K*d])."""
    K = S.shape[1]
    d = F.shape[1]
    for i in range(lo, hi):
        m, inv, top = _softmax_stats(S[i], scode, from_logits, zero)
        for c in range(K):
            p = _prob(S[i], c, scode, from_logits, m, inv, zero)
            w = p - 1 if c == top else p
            if not embed:
                out[i, c] = narrow(w, out, ocode)
                continue
            for j in range(d):
                out[i, c * d + j] = narrow(w * load(F, i, j, fcode, zero), out, ocode)


@parallel_kernel(cache=False)
def _badge_kernel(S, scode, F, fcode, out, ocode, from_logits, zero, embed):  # type: ignore[no-untyped-def]
    n = S.shape[0]
    for b in prange((n + ROWS - 1) // ROWS):
        _badge_rows(b * ROWS, min(n, (b + 1) * ROWS), S, scode, F, fcode, out, ocode, from_logits, zero, embed)


@njit(cache=True)
def _segmentation_sample(sample, S, scode, F, fcode, rh, rw, out, ocode, kind, rule, from_logits, zero):  # type: ignore[no-untyped-def]
    N, _, H, W = S.shape
    C, h = F.shape[1], F.shape[2]
    st = H // h
    nw = W // rw
    R = (H // rh) * nw
    ch, cw = rh // st, rw // st
    n = sample // R
    i = (sample % R) // nw
    j = sample % nw
    usum = zero
    for y in range(i * rh, (i + 1) * rh):
        for x in range(j * rw, (j + 1) * rw):
            usum += _row_uncertainty(S[n, :, y, x], scode, kind, from_logits, zero)
    w = _weight(usum / like(rh * rw, zero), rule, zero)
    for c in range(C):
        fsum = zero
        for y in range(i * ch, (i + 1) * ch):
            for x in range(j * cw, (j + 1) * cw):
                fsum += load(F[n, c], y, x, fcode, zero)
        out[sample, c] = narrow(w * (fsum / like(ch * cw, zero)), out, ocode)


@parallel_kernel(cache=False)
def _segmentation_kernel(S, scode, F, fcode, rh, rw, out, ocode, kind, rule, from_logits, zero):  # type: ignore[no-untyped-def]
    for sample in prange(out.shape[0]):
        _segmentation_sample(sample, S, scode, F, fcode, rh, rw, out, ocode, kind, rule, from_logits, zero)


@njit(cache=True)
def _best_boxes(u, cls, ids, K, best):  # type: ignore[no-untyped-def]
    """best[key] = box of key image*K + class with the largest u, lowest index on ties."""
    best[:] = -1
    for b in range(u.shape[0]):
        key = ids[b] * K + cls[b]
        if best[key] < 0 or u[b] > u[best[key]]:
            best[key] = b


@njit(cache=True)
def _detection_sums(F, fcode, w, cls, ids, K, sums, count, zero):  # type: ignore[no-untyped-def]
    """Per key image*K + class: the sum of w * f over its boxes (box order) and their count."""
    d = F.shape[1]
    for b in range(F.shape[0]):
        key = ids[b] * K + cls[b]
        count[key] += 1
        for j in range(d):
            sums[key, j] += w[b] * load(F, b, j, fcode, zero)


@njit(cache=True)
def _detection_write(F, fcode, w, best, sums, count, out, ocode, zero, use_max):  # type: ignore[no-untyped-def]
    """Block c of image m: w_b * f_b of the best box (use_max) or sums / count; zeros if none."""
    d = F.shape[1]
    K = out.shape[1] // d
    for key in range(count.shape[0]):
        row, col = key // K, (key % K) * d
        b = best[key]
        inv = like(1.0, zero) / like(max(count[key], 1), zero)
        for j in range(d):
            if use_max:
                v = w[b] * load(F, b, j, fcode, zero) if b >= 0 else zero
            else:
                v = sums[key, j] * inv
            out[row, col + j] = narrow(v, out, ocode)


# ---------------------------------------------------------------- ops


def _output(shape: tuple[int, ...], out_dtype: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """(result array, the view kernels write, code)."""
    out = np.empty(shape, dtype=np.dtype(out_dtype))
    view, code = storage(out, writable=True)
    return out, view, code


def _rule(tau: float, norm: tuple[float, float] | None) -> np.ndarray:
    """[tau, lo, span] for the kernels; span -1 means no min-max normalisation."""
    lo, span = (0.0, -1.0) if norm is None else norm
    return np.array([tau, lo, span], dtype=np.float64)


def _run_rows(scores: Any, features: Any, out_shape: tuple[int, ...], kind: str, tau: float,
              from_logits: bool, out_dtype: Any, accum_dtype: Any, mode: int,
              u: Any = None, w: Any = None, cls: Any = None, norm: tuple[float, float] | None = None) -> np.ndarray:
    S, scode = storage(scores)
    F, fcode = storage(features)
    zero = acc_zero(accum_dtype)
    out, view, ocode = _output(out_shape, out_dtype)
    none_f, none_i = np.zeros(0, dtype=zero.dtype), np.zeros(0, dtype=np.int64)
    if kind == "bald":
        scratch = np.empty(((S.shape[0] + ROWS - 1) // ROWS, 2, S.shape[2]), dtype=zero.dtype)
        _bald_kernel(S, scode, F if F.ndim == 2 else F[:, :, 0], fcode, view[:, None] if view.ndim == 1 else view,
                     ocode, scratch, _rule(float(tau), norm), bool(from_logits), zero, mode)
        return out
    _uwe_kernel(S, scode, F, fcode, view[:, None] if view.ndim == 1 else view, ocode,
                none_f if u is None else u, none_f if w is None else w, none_i if cls is None else cls,
                KIND_CODES[kind], _rule(float(tau), norm), bool(from_logits), zero, mode)
    return out


def uncertainty(scores: Any, kind: str, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> np.ndarray:
    return _run_rows(scores, scores, (scores.shape[0],), kind, 1.0, from_logits, out_dtype, accum_dtype,
                     UNCERTAINTY)


def uwe(scores: Any, features: Any, kind: str, tau: float, from_logits: bool, *, out_dtype: Any,
        accum_dtype: Any, norm: tuple[float, float] | None = None) -> np.ndarray:
    return _run_rows(scores, features, tuple(features.shape), kind, tau, from_logits, out_dtype, accum_dtype, UWE,
                     norm=norm)


def badge_weights(scores: Any, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> np.ndarray:
    S, scode = storage(scores)
    out, view, ocode = _output(S.shape, out_dtype)
    _badge_kernel(S, scode, S, scode, view, ocode, bool(from_logits), acc_zero(accum_dtype), False)
    return out


def badge_embedding(scores: Any, features: Any, from_logits: bool, *, out_dtype: Any,
                    accum_dtype: Any) -> np.ndarray:
    S, scode = storage(scores)
    F, fcode = storage(features)
    out, view, ocode = _output((F.shape[0], S.shape[1] * F.shape[1]), out_dtype)
    _badge_kernel(S, scode, F, fcode, view, ocode, bool(from_logits), acc_zero(accum_dtype), True)
    return out


def uwe_segmentation(scores: Any, features: Any, region: tuple[int, int], kind: str, tau: float,
                     from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                     norm: tuple[float, float] | None = None) -> np.ndarray:
    S, scode = storage(scores)
    F, fcode = storage(features)
    rh, rw = int(region[0]), int(region[1])
    N, _, H, W = S.shape
    out, view, ocode = _output((N * (H // rh) * (W // rw), F.shape[1]), out_dtype)
    _segmentation_kernel(S, scode, F, fcode, rh, rw, view, ocode, KIND_CODES[kind], _rule(float(tau), norm),
                         bool(from_logits), acc_zero(accum_dtype))
    return out


def uwe_detection(box_scores: Any, box_features: Any, image_ids: Any, num_images: int, kind: str,
                  tau: float, agg: str, from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                  norm: tuple[float, float] | None = None) -> np.ndarray:
    S, scode = storage(box_scores)
    F, fcode = storage(box_features)
    ids = np.ascontiguousarray(image_ids, dtype=np.int64)
    B, K = S.shape
    d = F.shape[1]
    zero = acc_zero(accum_dtype)
    out, view, ocode = _output((int(num_images), K * d), out_dtype)
    u = np.empty(B, dtype=zero.dtype)
    w = np.empty(B, dtype=zero.dtype)
    cls = np.empty(B, dtype=np.int64)
    keys = int(num_images) * K
    best = np.full(keys, -1, dtype=np.int64)
    sums = np.zeros((keys if agg == "mean" else 0, d), dtype=zero.dtype)
    count = np.zeros(keys, dtype=np.int64)
    if out.size == 0:
        return out
    _run_rows(box_scores, box_scores, (0, 1), kind, tau, from_logits, zero.dtype, accum_dtype, BOXES, u, w, cls,
              norm=norm)
    if agg == "max":
        _best_boxes(u, cls, ids, K, best)
    else:
        _detection_sums(F, fcode, w, cls, ids, K, sums, count, zero)
    _detection_write(F, fcode, w, best, sums, count, view, ocode, zero, agg == "max")
    return out
