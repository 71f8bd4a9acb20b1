"""Selection ops on numba: k-center greedy, k-means++ seeding and min distances over dense
[n, d] rows or factored rows (docs/internals.md, "Selection family").

Algorithm: one min-distance vector D [n] (float64), updated once per pick by a fused kernel
(distance to the new centre, D = min(D, dist), argmax over unpicked rows) that runs in
parallel over fixed blocks of rows; a Python loop drives the picks, so Ctrl-C raises
KeyboardInterrupt between picks and the progress callback is called every ~100 ms.
Labelled rows seed D as pre-existing centres, gathered in blocks of CENTRES rows (never an
[n, |labelled|] matrix). K-means++ draws r_t from SplitMix64 (uwe_kernels.rng); the pick is
the first unpicked i whose sequential float64 prefix sum D_0 + ... + D_i exceeds r_t sum(D),
summed in index order by one thread, with checkpoints at block starts so the search rescans
one block; when sum(D) = 0 the floor(r_t m)-th of the m unpicked rows.
Complexity: O(n d) per pick (dense, UWE factors), O(n (K + d)) for BADGE factors;
O(n |labelled| d) to seed D. Extra memory: O(n) plus one block of centres.
Distances: exact sum((x - c)^2) for dense and UWE rows (row i = w_i f_i, formed in the
accumulator); BADGE rows use |a_i|^2|f_i|^2 + |a_c|^2|f_c|^2 - 2 (a_i.a_c)(f_i.f_c), clamped at 0.
Accumulator: float32, float64 for float64 inputs; D and prefix sums are float64.
Ties: lowest index wins (strict comparisons in index order within blocks, blocks in order),
so results never depend on the thread count.
algorithm='pruned' (dense pools) runs pruned.py: the same picks, reading only rows whose
nearest-centre distance can change; 'auto' picks it when a row sample looks clustered.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from numba import njit, prange

from .. import rng
from .._pruning import DENSE_ONLY, looks_clustered
from ._runtime import BLOCK, acc_zero, load, parallel_section, storage

CHECKS_FINITE = False
CENTRES = 256  # labelled rows / centres per block when seeding D
PROGRESS_EVERY_S = 0.1
# Reassociation lets LLVM vectorise the per-row sums; each row's order is still fixed by the
# compiled code, so results do not depend on the thread count. No nnan/ninf: D holds inf.
_REASSOC = {"reassoc", "contract"}


ALGORITHMS = ("brute", "pruned")


def choose_algorithm(emb: Any) -> str:
    """'pruned' for dense pools whose row sample looks clustered (the same test as cpp)."""
    from . import pruned  # imports this module: resolved at call time

    if pruned.pruned_supported(emb):
        return "brute"
    return "pruned" if looks_clustered(emb) else "brute"


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"the numba backend runs algorithms {ALGORITHMS}, got {algorithm!r}")


def not_supported_reasons(op: str, call: Any) -> list[str]:
    if op != "min_distances" and call.options.get("algorithm") == "pruned" and call.options.get("factored"):
        return [DENSE_ONLY]
    return []


# ---------------------------------------------------------------- rows as the kernels see them


class _Rows:
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
            with parallel_section():
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
        with parallel_section():
            _norms(self.X, self.xcode, self.W, self.wcode, self.has_w, False, out, self.zero)
        return out.astype(np.float64)


# ---------------------------------------------------------------- distance arithmetic


@njit(cache=True, fastmath=_REASSOC)
def _dense_dist(X, xcode, W, wcode, has_w, i, c, zero):  # type: ignore[no-untyped-def]
    """|x_i - c|^2 with x_i = w_i f_i for UWE factors (has_w)."""
    s = zero
    if has_w:
        wi = load(W, i, 0, wcode, zero)
        for j in range(c.shape[0]):
            t = wi * load(X, i, j, xcode, zero) - c[j]
            s += t * t
    else:
        for j in range(c.shape[0]):
            t = load(X, i, j, xcode, zero) - c[j]
            s += t * t
    return s


@njit(cache=True, fastmath=_REASSOC)
def _badge_dist(X, xcode, W, wcode, norms, i, ca, cf, cn, zero):  # type: ignore[no-untyped-def]
    da = zero
    for k in range(ca.shape[0]):
        da += load(W, i, k, wcode, zero) * ca[k]
    df = zero
    for j in range(cf.shape[0]):
        df += load(X, i, j, xcode, zero) * cf[j]
    v = norms[i] + cn - 2 * da * df
    return v if v > 0 else zero


@njit(cache=True)
def _dist(X, xcode, W, wcode, has_w, badge, norms, i, c, ca, cn, k, zero):  # type: ignore[no-untyped-def]
    """Squared distance from row i to centre k of a gathered block."""
    if badge:
        return _badge_dist(X, xcode, W, wcode, norms, i, ca[k], c[k], cn[k], zero)
    return _dense_dist(X, xcode, W, wcode, has_w, i, c[k], zero)


@njit(cache=True)
def _norms_rows(lo, hi, X, xcode, W, wcode, has_w, badge, out, zero):  # type: ignore[no-untyped-def]
    """Squared row norms: |x|^2 (dense), |w x|^2 (UWE), |a|^2 |f|^2 (BADGE)."""
    for i in range(lo, hi):
        sa = zero + 1
        if badge:
            sa = zero
            for k in range(W.shape[1]):
                a = load(W, i, k, wcode, zero)
                sa += a * a
        wi = load(W, i, 0, wcode, zero) if has_w and not badge else zero + 1
        sf = zero
        for j in range(X.shape[1]):
            f = wi * load(X, i, j, xcode, zero)
            sf += f * f
        out[i] = sa * sf


@njit(parallel=True)
def _norms(X, xcode, W, wcode, has_w, badge, out, zero):  # type: ignore[no-untyped-def]
    n = X.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        _norms_rows(b * BLOCK, min(n, (b + 1) * BLOCK), X, xcode, W, wcode, has_w, badge, out, zero)


# ---------------------------------------------------------------- the one parallel sweep
# Seeding (NEAREST), a pick's update (UPDATE) and a plain argmax (ARGMAX) share one launcher,
# so one compiled specialisation per input type serves every selection op.

NEAREST, UPDATE, ARGMAX = 0, 1, 2


@njit(cache=True)
def _sweep_rows(lo, hi, X, xcode, W, wcode, has_w, badge, norms, c, ca, cn, offset, D, A, taken, mode, zero):  # type: ignore[no-untyped-def]
    """NEAREST: D = min(D, dist to each centre of the block), A = its global index (centres
    in order, strict <, so the lowest wins). UPDATE: D = min(D, dist to centre 0) on unpicked
    rows. UPDATE and ARGMAX return (max D, lowest index) over unpicked rows, (-1, -1) if none."""
    best = -1.0
    arg = -1
    for i in range(lo, hi):
        if mode == NEAREST:
            low = D[i]
            at = A[i]
            for k in range(c.shape[0]):
                v = np.float64(_dist(X, xcode, W, wcode, has_w, badge, norms, i, c, ca, cn, k, zero))
                if v < low:
                    low = v
                    at = offset + k
            D[i] = low
            A[i] = at
            continue
        if taken[i]:
            continue
        if mode == UPDATE:
            v = np.float64(_dist(X, xcode, W, wcode, has_w, badge, norms, i, c, ca, cn, 0, zero))
            if v < D[i]:
                D[i] = v
        if D[i] > best:
            best = D[i]
            arg = i
    return best, arg


@njit(parallel=True)
def _sweep(X, xcode, W, wcode, has_w, badge, norms, c, ca, cn, offset, D, A, taken, mode, zero, blk_val, blk_arg):  # type: ignore[no-untyped-def]
    """Blocks of rows in parallel, then their partial maxima in index order (strict >)."""
    n = D.shape[0]
    nb = (n + BLOCK - 1) // BLOCK
    for b in prange(nb):
        v, a = _sweep_rows(b * BLOCK, min(n, (b + 1) * BLOCK), X, xcode, W, wcode, has_w, badge, norms,
                           c, ca, cn, offset, D, A, taken, mode, zero)
        blk_val[b] = v
        blk_arg[b] = a
    best = -1.0
    arg = -1
    for b in range(nb):
        if blk_val[b] > best:
            best = blk_val[b]
            arg = blk_arg[b]
    return arg


@njit(cache=True)
def _prefix_checkpoints(D, ck):  # type: ignore[no-untyped-def]
    """Sequential float64 sum of D in index order; ck[b] = the prefix before block b."""
    s = 0.0
    n = D.shape[0]
    for b in range(ck.shape[0]):
        ck[b] = s
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            s += D[i]
    return s


@njit(cache=True)
def _prefix_search(D, ck, total, target):  # type: ignore[no-untyped-def]
    """First i with D_0 + ... + D_i > target (the same sequential sums as _prefix_checkpoints),
    or the last i with D_i > 0 when rounding leaves none."""
    n = D.shape[0]
    nb = ck.shape[0]
    b = 0
    while b + 1 < nb and ck[b + 1] <= target:  # ck[b + 1] is the prefix through block b
        b += 1
    s = ck[b]
    for i in range(b * BLOCK, n):
        s += D[i]
        if s > target:
            return i
    for i in range(n - 1, -1, -1):
        if D[i] > 0:
            return i
    return -1


@njit(cache=True)
def _kth_free(taken, k):  # type: ignore[no-untyped-def]
    """The k-th (0-based) index with taken False, in index order."""
    for i in range(taken.shape[0]):
        if not taken[i]:
            if k == 0:
                return i
            k -= 1
    return -1


# ---------------------------------------------------------------- drivers

_NO_MASK = np.zeros(0, dtype=np.bool_)


class _Selection:
    """D, the picked/labelled mask and the per-pick kernel calls for one selection."""

    def __init__(self, emb: Any, labelled_mask: np.ndarray, accum_dtype: Any) -> None:
        self.rows = _Rows(emb, acc_zero(accum_dtype))
        n = self.rows.n
        self.taken = np.array(labelled_mask, dtype=np.bool_, copy=True)
        self.D = np.full(n, np.inf)
        nb = (n + BLOCK - 1) // BLOCK
        self.blk_val = np.empty(nb, dtype=np.float64)
        self.blk_arg = np.empty(nb, dtype=np.int64)
        self.no_arg = np.zeros(0, dtype=np.int64)
        if self.taken.any():
            labelled = np.flatnonzero(self.taken)
            nearest_into(self.rows, self.rows, labelled, self.D, np.zeros(n, dtype=np.int64))
            self.D[self.taken] = 0.0

    def step(self, pick: int | None) -> int:
        """Take `pick` (None: no new centre), update D and return the next argmax (-1: none)."""
        r = self.rows
        if pick is None:
            c, ca, cn = r.gather(np.zeros(1, dtype=np.int64))
        else:
            self.taken[pick] = True
            self.D[pick] = 0.0
            c, ca, cn = r.gather(np.array([pick], dtype=np.int64))
        with parallel_section():
            return int(_sweep(r.X, r.xcode, r.W, r.wcode, r.has_w, r.badge, r.norms, c, ca, cn, 0, self.D,
                              self.no_arg, self.taken, ARGMAX if pick is None else UPDATE, r.zero,
                              self.blk_val, self.blk_arg))


def nearest_into(rows: _Rows, centres: _Rows, idx: np.ndarray | None, D: np.ndarray, A: np.ndarray) -> None:
    """D, A = min / argmin over the centres (rows idx of `centres`, or all), in blocks of CENTRES."""
    m = centres.n if idx is None else len(idx)
    nb = (rows.n + BLOCK - 1) // BLOCK
    blk_val, blk_arg = np.empty(nb, dtype=np.float64), np.empty(nb, dtype=np.int64)
    for s in range(0, m, CENTRES):
        sel = np.arange(s, min(m, s + CENTRES)) if idx is None else idx[s : s + CENTRES]
        c, ca, cn = centres.gather(sel)
        with parallel_section():
            _sweep(rows.X, rows.xcode, rows.W, rows.wcode, rows.has_w, rows.badge, rows.norms,
                   c, ca, cn, s, D, A, _NO_MASK, NEAREST, rows.zero, blk_val, blk_arg)


class _Progress:
    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.last = time.monotonic()

    def __call__(self, done: int, final: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if final or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.progress(done)


def kcenter_greedy(emb: Any, labelled_mask: np.ndarray, budget: int, first: int | None, *,
                   algorithm: str, progress: Callable[[int], None] | None, accum_dtype: Any
                   ) -> tuple[np.ndarray, np.ndarray]:
    _check_algorithm(algorithm)
    if algorithm == "pruned":
        from . import pruned

        return pruned.kcenter_greedy_pruned(emb, labelled_mask, budget, first, progress=progress,
                                            accum_dtype=accum_dtype)
    budget = int(budget)
    picks = np.empty(budget, dtype=np.int64)
    dists = np.empty(budget, dtype=np.float64)
    if budget == 0:
        return picks, dists
    sel = _Selection(emb, labelled_mask, accum_dtype)
    report = _Progress(progress)
    t = 0
    if sel.taken.any():
        nxt = sel.step(None)
    else:
        nxt = int(first) if first is not None else int(np.argmax(sel.rows.sqnorms()))
        sel.D[nxt] = np.inf
    while t < budget:
        picks[t], dists[t] = nxt, np.sqrt(sel.D[nxt])
        t += 1
        if t < budget:
            nxt = sel.step(picks[t - 1])
        report(t)
    report(t, final=True)
    return picks, dists


def kmeans_pp(emb: Any, labelled_mask: np.ndarray, budget: int, seed: int, first: Any, *,
              algorithm: str, progress: Callable[[int], None] | None, accum_dtype: Any) -> np.ndarray:
    _check_algorithm(algorithm)
    if algorithm == "pruned":
        from . import pruned

        return pruned.kmeans_pp_pruned(emb, labelled_mask, budget, seed, first, progress=progress,
                                       accum_dtype=accum_dtype)
    budget = int(budget)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    sel = _Selection(emb, labelled_mask, accum_dtype)
    ck = np.empty(len(sel.blk_val), dtype=np.float64)

    def sample(r: float) -> int:
        total = _prefix_checkpoints(sel.D, ck)
        return int(_prefix_search(sel.D, ck, total, r * total)) if total > 0.0 else -1

    return kmeans_pp_loop(budget, seed, first, sel.taken, sel.rows.sqnorms, sel.step, sample, progress)


def kmeans_pp_loop(budget: int, seed: int, first: Any, taken: np.ndarray, sqnorms: Callable[[], np.ndarray],
                   add_centre: Callable[[int], Any], sample: Callable[[float], int],
                   progress: Callable[[int], None] | None) -> np.ndarray:
    """The k-means++ draws of API.md over a selection state (the plain and the pruned kernels):
    `add_centre(i)` makes row i a centre (D and `taken` [n] bool updated in place); `sample(r)`
    is the row where the index-order prefix sum of D first exceeds r * sum(D), or -1 when every
    D is 0, and then the pick is uniform over the free rows."""
    picks = np.empty(budget, dtype=np.int64)
    report = _Progress(progress)
    free = len(taken) - int(taken.sum())
    draw = 0
    t = 0

    def uniform_free(r: float) -> int:  # the floor(r * free)-th free row, free counted now
        return int(_kth_free(taken, min(int(r * free), free - 1)))

    if not taken.any():
        i, draw = rng.first_pick(first, seed, lambda: int(np.argmax(sqnorms())), uniform_free)
        picks[0] = i
        t = 1
        if budget > 1:
            add_centre(i)
        free -= 1
        report(t)
    while t < budget:
        r = rng.uniform(seed, draw)
        draw += 1
        i = sample(r)
        if i < 0:
            i = uniform_free(r)
        picks[t] = i
        t += 1
        free -= 1
        if t < budget:
            add_centre(i)
        report(t)
    report(t, final=True)
    return picks


def min_distances(emb: Any, centers: Any, *, return_argmin: bool, out_dtype: Any, accum_dtype: Any
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    zero = acc_zero(accum_dtype)
    rows = _Rows(emb, zero)
    centres = _Rows(centers, zero)
    D = np.full(rows.n, np.inf)
    A = np.zeros(rows.n, dtype=np.int64)
    nearest_into(rows, centres, None, D, A)
    return D.astype(out_dtype, copy=False), (A if return_argmin else None)
