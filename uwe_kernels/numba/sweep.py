"""The one parallel sweep of the numba selection kernels, and the brute-force selection state
that runs it once per pick.

Seeding (NEAREST), a pick's update (UPDATE) and a plain argmax (ARGMAX) share one launcher,
so one compiled specialisation per input type serves every selection op. Rows are cut into
chunks of about CHUNK_WORK values, which the team's threads take one at a time as they come
free (a thread that lost its core to another process holds up only its current chunk); chunk
maxima are reduced in index order with strict comparisons, so the lowest index wins ties and
nothing depends on the thread count. A sweep of fewer than SERIAL_WORK values runs on one thread.
Labelled rows and min_distances centres are swept in blocks of CENTRES (never an
[n, |labelled|] matrix). The k-means++ prefix sums are sequential float64 sums in index order
with a checkpoint at every block start, so a search rescans one block.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from .. import _threads
from .._driver import nth_free
from ._runtime import BLOCK, acc_zero, claim, parallel_kernel
from .rows import Rows, row_dist

CENTRES = 256  # labelled rows / centres per block when seeding D
NEAREST, UPDATE, ARGMAX = 0, 1, 2
NO_MASK = np.zeros(0, dtype=np.bool_)
CHUNK_WORK = 1 << 17  # row values per chunk of a sweep: many chunks per thread, each worth a launch
SERIAL_WORK = 1 << 16  # below this many row values a team costs more than it saves


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
                v = np.float64(row_dist(X, xcode, W, wcode, has_w, badge, norms, i, c, ca, cn, k, zero))
                if v < low:
                    low = v
                    at = offset + k
            D[i] = low
            A[i] = at
            continue
        if taken[i]:
            continue
        if mode == UPDATE:
            v = np.float64(row_dist(X, xcode, W, wcode, has_w, badge, norms, i, c, ca, cn, 0, zero))
            if v < D[i]:
                D[i] = v
        if D[i] > best:
            best = D[i]
            arg = i
    return best, arg


@parallel_kernel()
def sweep(X, xcode, W, wcode, has_w, badge, norms, c, ca, cn, offset, D, A, taken, mode, zero, blk_val, blk_arg,  # type: ignore[no-untyped-def]
          chunk, team, counter):
    """Chunks of `chunk` rows, each taken by the next free one of `team` threads (counter [1]:
    the next chunk), then their partial maxima in index order (strict >)."""
    n = D.shape[0]
    nb = (n + chunk - 1) // chunk
    counter[0] = 0
    for _ in prange(min(team, nb)):
        b = claim(counter)
        while b < nb:
            v, a = _sweep_rows(b * chunk, min(n, (b + 1) * chunk), X, xcode, W, wcode, has_w, badge, norms,
                               c, ca, cn, offset, D, A, taken, mode, zero)
            blk_val[b] = v
            blk_arg[b] = a
            b = claim(counter)
    best = -1.0
    arg = -1
    for b in range(nb):
        if blk_val[b] > best:
            best = blk_val[b]
            arg = blk_arg[b]
    return arg


@njit(cache=True)
def prefix_resume(D, ck, b0):  # type: ignore[no-untyped-def]
    """Sequential float64 sum of D in index order, ck[b] = the prefix before block b, ck[nb] =
    the total (ck [nb + 1]). Recomputed from block b0 on (ck[b0] still valid): the same sums in
    the same order, so the same bits as a pass from block 0."""
    n = D.shape[0]
    nb = ck.shape[0] - 1
    s = ck[b0] if b0 > 0 else 0.0
    for b in range(b0, nb):
        ck[b] = s
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            s += D[i]
    ck[nb] = s
    return s


@njit(cache=True)
def prefix_search(D, ck, total, target):  # type: ignore[no-untyped-def]
    """First i with D_0 + ... + D_i > target (the same sequential sums as prefix_resume),
    or the last i with D_i > 0 when rounding leaves none."""
    n = D.shape[0]
    nb = ck.shape[0] - 1
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



def _width(rows: Rows) -> int:
    """Values of one row as a sweep reads them (BADGE: K weights and d features)."""
    return int(rows.X.shape[1] + (rows.W.shape[1] if rows.has_w else 0))


def sweep_chunks(rows: Rows) -> int:
    """Chunks of a sweep over `rows`: the length of its blk_val / blk_arg."""
    chunk = min(BLOCK, max(64, CHUNK_WORK // max(1, _width(rows))))
    return max(1, (rows.n + chunk - 1) // chunk)


def sweep_rows(rows: Rows, c: np.ndarray, ca: np.ndarray, cn: np.ndarray, offset: int, D: np.ndarray,
               A: np.ndarray, taken: np.ndarray, mode: int, blk_val: np.ndarray, blk_arg: np.ndarray,
               threads: int = 0) -> int:
    """`sweep` over `rows` with centres (c, ca, cn) from Rows.gather, on `threads` threads (0: the
    package's count; one below SERIAL_WORK), in len(blk_val) chunks or fewer."""
    chunk = max(1, (rows.n + len(blk_val) - 1) // len(blk_val))
    team = 1 if rows.n * _width(rows) * len(c) < SERIAL_WORK else threads or _threads.numba_threads()
    return int(sweep.launch(team, rows.X, rows.xcode, rows.W, rows.wcode, rows.has_w, rows.badge, rows.norms,
                            c, ca, cn, offset, D, A, taken, mode, rows.zero, blk_val, blk_arg, chunk, team,
                            np.zeros(1, dtype=np.int64)))


def nearest_into(rows: Rows, centres: Rows, idx: np.ndarray | None, D: np.ndarray, A: np.ndarray) -> None:
    """D, A = min / argmin over the centres (rows idx of `centres`, or all), in blocks of CENTRES."""
    m = centres.n if idx is None else len(idx)
    nb = sweep_chunks(rows)
    blk_val, blk_arg = np.empty(nb, dtype=np.float64), np.empty(nb, dtype=np.int64)
    for s in range(0, m, CENTRES):
        sel = np.arange(s, min(m, s + CENTRES)) if idx is None else idx[s : s + CENTRES]
        c, ca, cn = centres.gather(sel)
        sweep_rows(rows, c, ca, cn, s, D, A, NO_MASK, NEAREST, blk_val, blk_arg)


class BruteState:
    """_driver.KCenterState and KMeansState by full sweeps: D [n] float64 and the picked/labelled mask; one
    fused sweep per centre updates D and finds the next argmax."""

    def __init__(self, emb: Any, labelled_mask: np.ndarray, accum_dtype: Any) -> None:
        self.rows = Rows(emb, acc_zero(accum_dtype))
        n = self.rows.n
        self.taken = np.array(labelled_mask, dtype=np.bool_, copy=True)
        self.D = np.full(n, np.inf)
        nb = sweep_chunks(self.rows)
        self.blk_val = np.empty(nb, dtype=np.float64)
        self.blk_arg = np.empty(nb, dtype=np.int64)
        self.ck = np.zeros((n + BLOCK - 1) // BLOCK + 1, dtype=np.float64)
        self.no_arg = np.zeros(0, dtype=np.int64)
        self.next = -1  # the argmax found by the last add_centre's sweep
        self.tuner = _threads.TeamTuner(_threads.numba_threads())
        if self.taken.any():
            nearest_into(self.rows, self.rows, np.flatnonzero(self.taken), self.D, np.zeros(n, dtype=np.int64))
            self.D[self.taken] = 0.0

    def any_taken(self) -> bool:
        return bool(self.taken.any())

    def max_norm_row(self) -> int:
        return int(np.argmax(self.rows.sqnorms()))

    def _sweep(self, c: tuple[np.ndarray, np.ndarray, np.ndarray], mode: int) -> int:
        return sweep_rows(self.rows, *c, 0, self.D, self.no_arg, self.taken, mode, self.blk_val, self.blk_arg,
                          self.tuner.threads())

    def add_centre(self, i: int) -> None:
        self.taken[i] = True
        self.D[i] = 0.0
        self.next = self._sweep(self.rows.gather(np.array([i], dtype=np.int64)), UPDATE)
        self.tuner.pick_done(float(self.rows.n))

    def argmax(self) -> tuple[int, float]:
        if self.next < 0:
            self.next = self._sweep(self.rows.gather(np.zeros(1, dtype=np.int64)), ARGMAX)
        i, self.next = self.next, -1
        return i, float(self.D[i])

    def sample(self, r: float) -> int:
        total = prefix_resume(self.D, self.ck, 0)
        return int(prefix_search(self.D, self.ck, total, r * total)) if total > 0.0 else -1

    def nth_free(self, r: float) -> int:
        return nth_free(self.taken, r)
