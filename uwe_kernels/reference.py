"""The float64 reference: plain numpy loops that mirror each kernel, the ground truth every
fast backend is tested against (docs/internals.md, "Ops and their backend signatures").

Inputs are validated numpy arrays of any strides and any float dtype; they are read in chunks
of CHUNK rows converted to float64 (a half-precision input is never copied whole) and never
modified. Everything is computed in float64; `accum_dtype` is accepted and ignored. Float
results are cast to `out_dtype`, indices are int64. Lowest index wins every tie.
Distances use the exact form sum((x - c)**2), never the norm trick; factored BADGE rows use
|a_i|^2 |f_i|^2 + |a_j|^2 |f_j|^2 - 2 (a_i . a_j)(f_i . f_j) clamped at 0.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .rng import Draws

CHUNK = 4096
BLOCK = 1 << 21  # float64 elements in one [rows, centres, d] difference block
KINDS = ("entropy", "bvsb", "margin", "least_confidence", "bald")


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _out(x: np.ndarray, out_dtype: Any) -> np.ndarray:
    return x if out_dtype is None else x.astype(out_dtype, copy=False)


# ---------------------------------------------------------------- uncertainty


def softmax_stats(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable softmax of float64 logits [r, K]: (p [r, K], entropy [r] clamped at 0).

    entropy = lse - sum_c p_c (z_c - max), lse = log sum_c exp(z_c - max).
    """
    e = z - z.max(axis=1, keepdims=True)
    ex = np.exp(e)
    s = ex.sum(axis=1)
    p = ex / s[:, None]
    ent = np.log(s) - (p * e).sum(axis=1)
    return p, np.maximum(ent, 0.0)


def _top_two(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = np.sort(p, axis=1)
    return top[:, -1], top[:, -2]


def uncertainty_from_probs(p: np.ndarray, kind: str) -> np.ndarray:
    """Uncertainty [r] of float64 probabilities [r, K] taken as given (not renormalised)."""
    if kind == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return np.asarray(np.maximum(-terms.sum(axis=1), 0.0))
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    best, second = _top_two(p)
    if kind == "bvsb":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(best > 0, second / np.where(best > 0, best, 1.0), 1.0)
    if kind == "margin":
        return np.asarray(1.0 - (best - second))
    return 1.0 - best


def uncertainty_from_logits(z: np.ndarray, kind: str) -> np.ndarray:
    """Uncertainty [r] of float64 logits [r, K] through a stable softmax."""
    p, ent = softmax_stats(z)
    return ent if kind == "entropy" else uncertainty_from_probs(p, kind)


def probabilities(scores: np.ndarray, from_logits: bool) -> np.ndarray:
    """float64 p [r, K] of a float64 score block."""
    return softmax_stats(scores)[0] if from_logits else scores


def _entropy_terms(p: np.ndarray) -> np.ndarray:
    """-p log p elementwise, 0 where p = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0))


def mutual_information(scores: np.ndarray, from_logits: bool) -> np.ndarray:
    """BALD [r] of a float64 block [r, K, T] of T passes: H(mean_t p_t) - mean_t H(p_t).

    Logits are softmaxed over K per pass (log-sum-exp: H(p_t) = lse_t - sum_c p_ct z_ct);
    probabilities are taken as given. The difference cancels when the passes agree, so
    rounding can leave a tiny negative: it is clamped at 0 (the exact value is >= 0 by
    concavity of the entropy)."""
    if from_logits:
        z = scores - scores.max(axis=1, keepdims=True)
        ex = np.exp(z)
        s = ex.sum(axis=1, keepdims=True)
        p = ex / s
        h_passes = np.log(s[:, 0, :]) - (p * z).sum(axis=1)
    else:
        p = scores
        h_passes = _entropy_terms(p).sum(axis=1)
    h_mean = _entropy_terms(p.mean(axis=2)).sum(axis=1)
    return np.asarray(np.maximum(h_mean - h_passes.mean(axis=1), 0.0))


def uncertainty_block(scores: np.ndarray, kind: str, from_logits: bool) -> np.ndarray:
    """Uncertainty [r] of a float64 score block [r, K] ([r, K, T] for kind="bald")."""
    if kind == "bald":
        return mutual_information(scores, from_logits)
    return uncertainty_from_logits(scores, kind) if from_logits else uncertainty_from_probs(scores, kind)


def normalized(u: np.ndarray, norm: tuple[float, float] | None) -> np.ndarray:
    """u rescaled by a min-max pair norm = (lo, span): (u - lo) / span clipped to [0, 1], all ones
    when span = 0 (an all-equal pool); u itself when norm is None."""
    if norm is None:
        return u
    lo, span = float(norm[0]), float(norm[1])
    if span == 0:
        return np.ones_like(u)
    return np.clip((u - lo) / span, 0.0, 1.0)


def _weights(u: np.ndarray, tau: float, norm: tuple[float, float] | None = None) -> np.ndarray:
    return normalized(u, norm) ** float(tau)


# ---------------------------------------------------------------- embedding ops


def uncertainty(scores: Any, kind: str, from_logits: bool, *, out_dtype: Any = None,
                accum_dtype: Any = None) -> np.ndarray:
    """u [n] for scores [n, K] ([n, K, T] for kind="bald")."""
    n = scores.shape[0]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, CHUNK):
        out[s : s + CHUNK] = uncertainty_block(_f64(scores[s : s + CHUNK]), kind, from_logits)
    return _out(out, out_dtype)


def uwe(scores: Any, features: Any, kind: str, tau: float, from_logits: bool, *,
        out_dtype: Any = None, accum_dtype: Any = None, norm: tuple[float, float] | None = None) -> np.ndarray:
    """Rows u_i ** tau * features[i], [n, d]."""
    n, d = features.shape
    out = np.empty((n, d), dtype=np.float64 if out_dtype is None else out_dtype)
    for s in range(0, n, CHUNK):
        w = _weights(uncertainty_block(_f64(scores[s : s + CHUNK]), kind, from_logits), tau, norm)
        out[s : s + CHUNK] = w[:, None] * _f64(features[s : s + CHUNK])
    return out


def _badge_block(scores: np.ndarray, from_logits: bool) -> np.ndarray:
    w = probabilities(scores, from_logits).copy()
    w[np.arange(len(w)), np.argmax(scores, axis=1)] -= 1.0
    return np.asarray(w)


def badge_weights(scores: Any, from_logits: bool, *, out_dtype: Any = None,
                  accum_dtype: Any = None) -> np.ndarray:
    """p - onehot(argmax scores), [n, K] (argmax: lowest class on ties)."""
    n, k = scores.shape
    out = np.empty((n, k), dtype=np.float64 if out_dtype is None else out_dtype)
    for s in range(0, n, CHUNK):
        out[s : s + CHUNK] = _badge_block(_f64(scores[s : s + CHUNK]), from_logits)
    return out


def badge_embedding(scores: Any, features: Any, from_logits: bool, *, out_dtype: Any = None,
                    accum_dtype: Any = None) -> np.ndarray:
    """BADGE gradient embedding [n, K*d], class-major: block c of row i = w_ic * f_i."""
    n, d = features.shape
    k = scores.shape[1]
    out = np.empty((n, k * d), dtype=np.float64 if out_dtype is None else out_dtype)
    for s in range(0, n, CHUNK):
        w = _badge_block(_f64(scores[s : s + CHUNK]), from_logits)
        f = _f64(features[s : s + CHUNK])
        out[s : s + CHUNK] = (w[:, :, None] * f[:, None, :]).reshape(len(f), k * d)
    return out


def uwe_segmentation(scores: Any, features: Any, region: tuple[int, int], kind: str, tau: float,
                     from_logits: bool, *, out_dtype: Any = None, accum_dtype: Any = None,
                     norm: tuple[float, float] | None = None) -> np.ndarray:
    """Region UWEs [N*R, C]: (mean pixel u) ** tau * (mean feature over the region's cells).

    One band of rh score rows (rh/s feature rows) of one image at a time.
    """
    N, K, H, W = scores.shape
    _, C, h, w = features.shape
    rh, rw = int(region[0]), int(region[1])
    st = H // h
    nh, nw = H // rh, W // rw
    R = nh * nw
    out = np.empty((N * R, C), dtype=np.float64)
    for n in range(N):
        for i in range(nh):
            band = _f64(scores[n, :, i * rh : (i + 1) * rh, :])  # [K, rh, W]
            u = uncertainty_block(band.reshape(K, rh * W).T, kind, from_logits)
            u_r = u.reshape(rh, nw, rw).mean(axis=(0, 2))  # [nw]
            fb = _f64(features[n, :, i * (rh // st) : (i + 1) * (rh // st), :])  # [C, rh/s, w]
            f_r = fb.reshape(C, rh // st, nw, rw // st).mean(axis=(1, 3))  # [C, nw]
            row = n * R + i * nw
            out[row : row + nw] = _weights(u_r, tau, norm)[:, None] * f_r.T
    return _out(out, out_dtype)


def uwe_detection(box_scores: Any, box_features: Any, image_ids: Any, num_images: int, kind: str,
                  tau: float, agg: str, from_logits: bool, *, out_dtype: Any = None,
                  accum_dtype: Any = None, norm: tuple[float, float] | None = None) -> np.ndarray:
    """Class-wise aggregated box UWEs [num_images, K*d] (Eq. 9; agg "max" or "mean")."""
    B, K = box_scores.shape
    d = box_features.shape[1]
    ids = np.asarray(image_ids, dtype=np.int64)
    u = np.empty(B, dtype=np.float64)
    cls = np.empty(B, dtype=np.int64)
    for s in range(0, B, CHUNK):
        sc = _f64(box_scores[s : s + CHUNK])
        u[s : s + CHUNK] = uncertainty_block(sc, kind, from_logits)
        cls[s : s + CHUNK] = np.argmax(sc, axis=1)
    w = _weights(u, tau, norm)
    key = ids * K + cls  # row of the [num_images * K, d] view of the output
    out = np.zeros((int(num_images) * K, d), dtype=np.float64)
    if B == 0:
        return _out(out.reshape(int(num_images), K * d), out_dtype)
    if agg == "max":
        order = np.lexsort((np.arange(B), -u, key))
        first = np.ones(B, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        best = order[first]  # per occupied key: largest u, lowest box index on ties
        for s in range(0, len(best), CHUNK):
            b = best[s : s + CHUNK]
            out[key[b]] = w[b][:, None] * _f64(box_features[b])
    elif agg == "mean":
        count = np.bincount(key, minlength=out.shape[0]).astype(np.float64)
        for s in range(0, B, CHUNK):
            np.add.at(out, key[s : s + CHUNK], w[s : s + CHUNK, None] * _f64(box_features[s : s + CHUNK]))
        nz = count > 0
        out[nz] /= count[nz, None]
    else:
        raise ValueError(f"unknown agg {agg!r}; choose from max, mean")
    return _out(out.reshape(int(num_images), K * d), out_dtype)


# ---------------------------------------------------------------- distances


def factored_sq_dist(wa: Any, fa: Any, wb: Any, fb: Any) -> np.ndarray:
    """Squared distances [na, nb] between factored rows wa[i] (outer) fa[i] and wb[j] (outer) fb[j].

    1-D weights: sum((a_i f_i - b_j g_j)**2) exactly. 2-D weights:
    |a_i|^2 |f_i|^2 + |b_j|^2 |g_j|^2 - 2 (a_i . b_j)(f_i . g_j), clamped at 0.
    """
    wa, fa, wb, fb = _f64(wa), _f64(fa), _f64(wb), _f64(fb)
    if wa.ndim == 1:
        return _dense_sq_dist(wa[:, None] * fa, wb[:, None] * fb)
    # Norms and cross products summed alike (numpy's sum over a row), not by BLAS: a duplicate
    # row's cross product is then its norm bit for bit, and its distance exactly 0.
    na = (wa * wa).sum(1) * (fa * fa).sum(1)
    nb = (wb * wb).sum(1) * (fb * fb).sum(1)
    return np.asarray(np.maximum(na[:, None] + nb[None, :] - 2.0 * (_row_dots(wa, wb) * _row_dots(fa, fb)), 0.0))


def _row_dots(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x @ y.T [rx, ry], each entry summed like (x * x).sum(1), in blocks of at most BLOCK elements."""
    out = np.empty((len(x), len(y)), dtype=np.float64)
    step = max(1, BLOCK // max(1, len(y) * x.shape[1]))
    for s in range(0, len(x), step):
        out[s : s + step] = (x[s : s + step, None, :] * y[None, :, :]).sum(2)
    return out


def _dense_sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact squared distances [rx, rc] between float64 rows, in blocks of at most BLOCK elements."""
    out = np.empty((len(x), len(c)), dtype=np.float64)
    step = max(1, BLOCK // max(1, len(c) * x.shape[1]))
    for s in range(0, len(x), step):
        diff = x[s : s + step, None, :] - c[None, :, :]
        out[s : s + step] = np.einsum("ijk,ijk->ij", diff, diff)
    return out


class _Rows:
    """Read access to an embedding, dense [n, d] or factored, as float64 chunks.

    A chunk is a float64 [r, d] array (dense rows, or UWE rows a_i * f_i) or, for BADGE
    factors, a pair (a [r, K], f [r, d]).
    """

    def __init__(self, emb: Any, index: np.ndarray | None = None) -> None:
        if hasattr(emb, "weights"):
            self.w, self.f = emb.weights, emb.features
            self.badge = np.ndim(self.w) == 2
        else:
            self.w, self.f, self.badge = None, emb, False
        self.index = index  # rows taken in this order (gathered per chunk); None: all rows
        self.n = int(self.f.shape[0] if index is None else len(index))
        self.d = int(self.f.shape[1])

    def chunk(self, s: int, e: int) -> Any:
        sel = slice(s, e) if self.index is None else self.index[s:e]
        f = _f64(self.f[sel])
        if self.w is None:
            return f
        w = _f64(self.w[sel])
        return (w, f) if self.badge else w[:, None] * f

    def row(self, i: int) -> Any:
        return self.chunk(i, i + 1)

    def subset(self, index: np.ndarray) -> "_Rows":
        sub = _Rows.__new__(_Rows)
        sub.__dict__.update(self.__dict__, index=index, n=len(index))
        return sub

    def chunks(self, size: int = CHUNK) -> Any:
        for s in range(0, self.n, size):
            yield s, min(s + size, self.n), self.chunk(s, s + size)

    def sqnorms(self) -> np.ndarray:
        out = np.empty(self.n, dtype=np.float64)
        for s, e, x in self.chunks():
            out[s:e] = (x[0] ** 2).sum(1) * (x[1] ** 2).sum(1) if self.badge else (x * x).sum(1)
        return out

    def sq_dist_to(self, c: Any) -> np.ndarray:
        """Squared distances [n] from every row to the chunk `c` of one row."""
        out = np.empty(self.n, dtype=np.float64)
        for s, e, x in self.chunks():
            out[s:e] = _block_sq_dist(x, c, self.badge)[:, 0]
        return out


def _block_sq_dist(x: Any, c: Any, badge: bool) -> np.ndarray:
    if badge:
        return factored_sq_dist(x[0], x[1], c[0], c[1])
    return _dense_sq_dist(x, c)


def _nearest(rows: _Rows, centres: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """(min squared distance [n], argmin [n]) over centres; lowest centre index on ties."""
    d = np.full(rows.n, np.inf)
    arg = np.zeros(rows.n, dtype=np.int64)
    cstep = max(1, min(CHUNK, BLOCK // max(1, CHUNK * rows.d)))
    for s, e, x in rows.chunks():
        for cs, _, c in centres.chunks(cstep):
            blk = _block_sq_dist(x, c, rows.badge)
            j = np.argmin(blk, axis=1)
            v = blk[np.arange(len(j)), j]
            better = v < d[s:e]
            d[s:e][better] = v[better]
            arg[s:e][better] = cs + j[better]
    return d, arg


def min_distances(emb: Any, centers: Any, *, return_argmin: bool, out_dtype: Any = None,
                  accum_dtype: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Squared distance [n] from each row to its nearest centre (and the centre's index)."""
    d, arg = _nearest(_Rows(emb), _Rows(centers))
    return _out(d, out_dtype), (arg if return_argmin else None)


# ---------------------------------------------------------------- selection


def _labelled_distances(rows: _Rows, labelled: np.ndarray) -> np.ndarray:
    """D [n]: squared distance to the nearest labelled row (inf when none), 0 on labelled rows."""
    if not labelled.any():
        return np.full(rows.n, np.inf)
    D = _nearest(rows, rows.subset(np.flatnonzero(labelled)))[0]
    D[labelled] = 0.0
    return D


def _report(progress: Callable[[int], None] | None, done: int, budget: int) -> None:
    if progress is not None and (done % 1024 == 0 or done == budget):
        progress(done)


def kcenter_greedy(emb: Any, labelled_mask: np.ndarray, budget: int, first: int | None, *,
                   algorithm: str = "brute", progress: Callable[[int], None] | None = None,
                   accum_dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """K-center greedy: (picks [budget] int64, Euclidean distance at pick time [budget] float64)."""
    rows = _Rows(emb)
    budget = int(budget)
    picks = np.empty(budget, dtype=np.int64)
    dists = np.empty(budget, dtype=np.float64)
    if budget == 0:
        return picks, dists
    labelled = np.asarray(labelled_mask, dtype=bool)
    taken = labelled.copy()
    D = _labelled_distances(rows, labelled)
    t = 0
    if not labelled.any():
        i = int(first) if first is not None else int(np.argmax(rows.sqnorms()))
        picks[0], dists[0] = i, np.inf
        D = rows.sq_dist_to(rows.row(i))
        D[i] = 0.0
        taken[i] = True
        t = 1
    while t < budget:
        i = int(np.argmax(np.where(taken, -1.0, D)))
        picks[t], dists[t] = i, np.sqrt(D[i])
        np.minimum(D, rows.sq_dist_to(rows.row(i)), out=D)
        D[i] = 0.0
        taken[i] = True
        t += 1
        _report(progress, t, budget)
    return picks, dists


def _uniform_pick(taken: np.ndarray, r: float) -> int:
    free = np.flatnonzero(~taken)
    return int(free[min(int(r * len(free)), len(free) - 1)])


def kmeans_pp(emb: Any, labelled_mask: np.ndarray, budget: int, seed: int, first: Any, *,
              algorithm: str = "brute", progress: Callable[[int], None] | None = None,
              accum_dtype: Any = None) -> np.ndarray:
    """K-means++ seeding (D^2 sampling with SplitMix64 draws): picks [budget] int64.

    Each pick: P = sequential float64 prefix sums of D (index order), target = r_t * P[-1],
    pick the first i with P[i] > target (the last row with D > 0 if rounding leaves none);
    when P[-1] == 0, the floor(r_t * m)-th of the m unpicked, unlabelled rows.
    """
    rows = _Rows(emb)
    budget = int(budget)
    picks = np.empty(budget, dtype=np.int64)
    if budget == 0:
        return picks
    labelled = np.asarray(labelled_mask, dtype=bool)
    taken = labelled.copy()
    draws = Draws(seed)
    D = _labelled_distances(rows, labelled)
    t = 0
    if not labelled.any():
        if isinstance(first, str) and first == "max_norm":
            i = int(np.argmax(rows.sqnorms()))
        elif isinstance(first, str) and first == "random":
            i = _uniform_pick(taken, draws.next())
        else:
            i = int(first)
        picks[0] = i
        D = rows.sq_dist_to(rows.row(i))
        D[i] = 0.0
        taken[i] = True
        t = 1
    while t < budget:
        r = draws.next()
        P = np.cumsum(D)
        total = P[-1]
        if total > 0.0:
            i = int(np.searchsorted(P, r * total, side="right"))
            if i >= rows.n:
                i = int(np.flatnonzero(D > 0.0)[-1])
        else:
            i = _uniform_pick(taken, r)
        picks[t] = i
        np.minimum(D, rows.sq_dist_to(rows.row(i)), out=D)
        D[i] = 0.0
        taken[i] = True
        t += 1
        _report(progress, t, budget)
    return picks
