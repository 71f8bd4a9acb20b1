"""The exact pruning engine on numba: k-center greedy and k-means++ seeding over dense [n, d]
pools with the picks of the brute-force sweep, evaluating only rows whose nearest-centre
distance can change (triangle-inequality skips with a float-safety margin; rows that are
evaluated use rows.dense_dist, the brute sweep's own function). How and why it is exact:
docs/internals.md, "Pruned selection". With a sketch and labelled rows, k-center greedy leaves
rows whose D stays below the picks' out of every pass until they may matter (dormant rows:
docs/internals.md, "Dormant rows").
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numba import njit, prange

from .. import _driver, _threads
from .._pruning import DENSE_ONLY
from .._sketch import Sketch, build_sketch
from ..factored import FactoredArrays, FactoredEmbedding
from . import sketched
from ._runtime import BLOCK, acc_zero, load, parallel_kernel
from .rows import REASSOC, Rows, dense_dist
from .sweep import ARGMAX, NEAREST, NO_MASK, nearest_into, prefix_resume, prefix_search, sweep_rows

MODES = ("adaptive", "pruned", "plain")
SWITCH_FRACTION = 0.75
FIRST_PROBE = 32  # centres of the first pruned stretch before a switch
PROBE = 12  # centres of a later probe
FIRST_PLAIN_STRETCH = 48
SWITCH_SMOOTHING = 1.0 / 8.0
CHUNK = 64  # elements between early-exit checks of a centre-centre distance
PARALLEL_MIN = 4096  # candidate rows below which a centre is evaluated on one thread
EVAL_BLOCK = 1024  # candidate rows per parallel work item
SORT_BELOW = 64  # candidates are put in index order when more than n / SORT_BELOW
PROBE_RANK = 32  # the dormancy threshold's rank among the probe's D (fewer probe rows: noisier)
PROBE_MIN_ROWS = 1024
WAKE_SHRINK = 0.97  # a wake lowers the threshold at least this much (a bounded number of wakes)


def pruned_supported(emb: Any) -> list[str]:
    """Reasons the pruned kernels cannot run on `emb` (empty when they can)."""
    if isinstance(emb, (FactoredArrays, FactoredEmbedding)) or hasattr(emb, "weights"):
        return [DENSE_ONLY]
    if not hasattr(emb, "ndim"):
        return [f"algorithm='pruned' needs a 2-D [n, d] array, got {type(emb).__name__}"]
    if emb.ndim != 2:
        return [f"algorithm='pruned' needs a 2-D [n, d] embedding, got ndim={emb.ndim}"]
    return []


# ---------------------------------------------------------------- kernels


@njit(cache=True, fastmath=REASSOC)
def _chunk_sq(X, xcode, i, c, lo, hi, zero):  # type: ignore[no-untyped-def]
    s = zero
    for j in range(lo, hi):
        t = load(X, i, j, xcode, zero) - c[j]
        s += t * t
    return s


@njit(cache=True)
def _bounded_dist(X, xcode, i, c, bound, zero):  # type: ignore[no-untyped-def]
    """|x_i - c|^2 in float64, or a partial sum >= bound. Chunk sums are >= 0, so every
    partial sum is <= the full one: stopping early only ever under-estimates."""
    d = c.shape[0]
    total = 0.0
    for lo in range(0, d, CHUNK):
        total += np.float64(_chunk_sq(X, xcode, i, c, lo, min(d, lo + CHUNK), zero))
        if total >= bound:
            return total
    return total


@njit(cache=True)
def _skip_below(a, rel, absf):  # type: ignore[no-untyped-def]
    """Rows with D <= this cannot get closer to s, given a = computed |s - c|^2 (or a lower
    bound of it): exact |s - c|^2 >= 4 (D + absf) / (1 - rel) >= 4 exact |x - c|^2, so the
    exact |x - s|^2 >= (D + absf) / (1 - rel) and its computed value is >= D."""
    if not np.isfinite(a):  # overflow says nothing about the exact distance
        return -1.0
    return (a - absf) * (1.0 - rel) / (4.0 * (1.0 + rel)) - absf


@njit(cache=True)
def _group_bound(radius, rel, absf):  # type: ignore[no-untyped-def]
    """The a above which _skip_below(a) >= radius: where a centre-centre sum may stop."""
    return 4.0 * (1.0 + rel) * (radius + absf) / (1.0 - rel) + absf


@njit(cache=True)
def _refresh(g, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem):  # type: ignore[no-untyped-def]
    """Radius and argmax (lowest index on ties) of group g from its members' D."""
    r = 0.0
    bd = -1.0
    bi = -1
    for p in range(gstart[g], gstart[g] + gcount[g]):
        i = mem[p]
        v = D[i]
        if v > r:
            r = v
        if v > bd or (v == bd and i < bi):
            bd = v
            bi = i
    grad[g] = np.inf if gcentre[g] < 0 else r
    gbest_d[g] = bd
    gbest_i[g] = bi


@njit(cache=True)
def _rebuild(A, taken, G, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem):  # type: ignore[no-untyped-def]
    """Member lists (index order) of groups 0..G-1 from A by a counting sort; returns the
    buffer's fill. O(n + G)."""
    n = A.shape[0]
    for g in range(G):
        gcount[g] = 0
    for i in range(n):
        if not taken[i]:
            gcount[A[i]] += 1
    pos = 0
    for g in range(G):
        gstart[g] = pos
        pos += gcount[g]
        gcount[g] = 0
    for i in range(n):
        if not taken[i]:
            g = A[i]
            mem[gstart[g] + gcount[g]] = i
            gcount[g] += 1
    for g in range(G):
        _refresh(g, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem)
    return pos


@njit(cache=True)
def _touched_groups(X, xcode, c, s, G, A, taken, D, gcentre, gcount, grad, rel, absf, zero, sb, tg, counts):  # type: ignore[no-untyped-def]
    """Row s becomes centre G (c: its row in the accumulator). Which groups can change, with
    their row thresholds sb[g]; returns how many (listed in tg). counts[1] = centre distances."""
    old = A[s]
    taken[s] = True
    D[s] = 0.0
    nt = 0
    cdist = 0
    for g in range(G):
        if gcount[g] == 0:
            continue
        cg = gcentre[g]
        if cg < 0:
            sb[g] = -1.0  # rows without a centre yet (D = inf): all change
        else:
            forced = g == old  # s's own group: its members lose s and are always looked at
            bound = np.inf if forced else _group_bound(grad[g], rel, absf)
            a = _bounded_dist(X, xcode, cg, c, bound, zero)
            cdist += 1
            t = _skip_below(a, rel, absf)
            if not forced and grad[g] <= t:
                continue
            sb[g] = t
        tg[nt] = g
        nt += 1
    counts[1] = cdist
    return nt


@njit(cache=True)
def _candidates(nt, tg, sb, taken, D, gstart, gcount, mem, cand, flag):  # type: ignore[no-untyped-def]
    """Rows of the touched groups that may get closer to s (D above the group's threshold and
    above 0: a distance is never below 0); returns how many (listed in cand). Many of them are
    listed in index order (a flag per row, then one scan): rows of a group are scattered over
    the pool, and a forward walk lets the memory system fetch ahead."""
    m = 0
    for k in range(nt):
        g = tg[k]
        t = sb[g]
        for p in range(gstart[g], gstart[g] + gcount[g]):
            i = mem[p]
            di = D[i]
            if not taken[i] and di > t and di > 0.0:
                cand[m] = i
                m += 1
    n = D.shape[0]
    if m * SORT_BELOW > n:
        for k in range(m):
            flag[cand[k]] = True
        m = 0
        for i in range(n):
            if flag[i]:
                flag[i] = False
                cand[m] = i
                m += 1
    return m


@njit(cache=True)
def _eval_rows(lo, hi, X, xcode, W, wcode, has_w, c, s, cand, G, D, A, zero, on, z, r, slack, scale, cs):  # type: ignore[no-untyped-def]
    """D = min(D, |x - c|^2) on rows cand[lo:hi] with the plain pass's arithmetic, skipping
    rows the sketch (when `on`) proves unchanged; rows that get strictly closer join group G.
    Returns the number of full distances."""
    evaluated = 0
    for k in range(lo, hi):
        i = cand[k]
        if on and sketched.keeps(sketched.bound(z, r, i, s), D[i], scale, cs, slack[i]):
            continue
        evaluated += 1
        v = np.float64(dense_dist(X, xcode, W, wcode, has_w, i, c, zero))
        if v < D[i]:
            D[i] = v
            A[i] = G
    return evaluated


@parallel_kernel()
def _eval_parallel(m, X, xcode, W, wcode, has_w, c, s, cand, G, D, A, zero, on, z, r, slack, scale, cs, blk_n):  # type: ignore[no-untyped-def]
    nb = (m + EVAL_BLOCK - 1) // EVAL_BLOCK
    for b in prange(nb):
        blk_n[b] = _eval_rows(b * EVAL_BLOCK, min(m, (b + 1) * EVAL_BLOCK), X, xcode, W, wcode, has_w, c, s, cand, G,
                              D, A, zero, on, z, r, slack, scale, cs)
    return blk_n[:nb].sum()


@njit(cache=True)
def _compact(nt, tg, G, A, taken, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem, moved, counts):  # type: ignore[no-untyped-def]
    """Touched groups drop rows that were taken or moved to group G (in place, order kept);
    the movers are listed in moved (returns how many). counts[3] = lowest row that moved."""
    first_changed = D.shape[0]
    m = 0
    for k in range(nt):
        g = tg[k]
        kept = gstart[g]
        for p in range(gstart[g], gstart[g] + gcount[g]):
            i = mem[p]
            if taken[i]:
                continue
            if A[i] == G:
                moved[m] = i
                m += 1
                if i < first_changed:
                    first_changed = i
                continue
            mem[kept] = i
            kept += 1
        gcount[g] = kept - gstart[g]
        _refresh(g, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem)
    counts[3] = first_changed
    return m


@njit(cache=True)
def _place_group(G, s, fresh, A, taken, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem, top):  # type: ignore[no-untyped-def]
    """Rows `fresh` (the rows that moved to s, in index order: later passes stream forward)
    become group G; the buffer is rebuilt when they do not fit. Returns the buffer's fill."""
    gcentre[G] = s
    m = fresh.shape[0]
    if top + m > mem.shape[0]:
        return _rebuild(A, taken, G + 1, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem)
    mem[top : top + m] = fresh
    gstart[G] = top
    gcount[G] = m
    _refresh(G, D, gcentre, gstart, gcount, grad, gbest_d, gbest_i, mem)
    return top + m


@njit(cache=True)
def _groups_argmax(G, gcount, gbest_d, gbest_i):  # type: ignore[no-untyped-def]
    """argmax D over untaken rows from the group maxima (lowest index on ties); -1 if none."""
    bd = -1.0
    bi = -1
    for g in range(G):
        i = gbest_i[g]
        if gcount[g] == 0 or i < 0:
            continue
        v = gbest_d[g]
        if v > bd or (v == bd and i < bi):
            bd = v
            bi = i
    return bi


# ---------------------------------------------------------------- engine


class _Engine:
    """D, groups and member lists for one selection: the _driver state of the pruned path."""

    def __init__(self, emb: Any, labelled_mask: np.ndarray, accum_dtype: Any, mode: str,
                 sketch: Sketch | None = None, kcenter_budget: int = 0) -> None:
        reasons = pruned_supported(emb)
        if reasons:
            raise ValueError("; ".join(reasons))
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        zero = acc_zero(accum_dtype)
        self.rows = r = Rows(emb, zero)
        n, d = r.X.shape
        if sketch is not None:
            reasons = sketched.sketch_supported(emb, accum_dtype)
            if reasons or sketch.z.shape[0] != n or sketch.basis.shape[0] != d:
                raise ValueError("; ".join(reasons) or f"the sketch is of a pool of {sketch.z.shape[0]} rows "
                                 f"and {sketch.basis.shape[0]} columns, not [{n}, {d}]")
        self.sk = sketched.SketchArgs(sketch)
        self.mode = mode
        self.tuner = _threads.TeamTuner(_threads.numba_threads())
        self.taken = np.array(labelled_mask, dtype=np.bool_, copy=True)
        if self.taken.shape != (n,):
            raise ValueError(f"labelled_mask must have shape ({n},), got {self.taken.shape}")
        self.D = np.full(n, np.inf)
        self.A = np.zeros(n, dtype=np.int64)
        labelled = np.flatnonzero(self.taken)
        cap = max(64, 2 * len(labelled) + 16)
        self.gcentre = np.full(cap, -1, dtype=np.int64)
        self.gstart = np.zeros(cap, dtype=np.int64)
        self.gcount = np.zeros(cap, dtype=np.int64)
        self.grad = np.full(cap, np.inf)
        self.gbest_d = np.full(cap, -1.0)
        self.gbest_i = np.full(cap, -1, dtype=np.int64)
        self.sb = np.empty(cap)
        self.tg = np.empty(cap, dtype=np.int64)
        self.threshold = 0.0  # rows with D below it are dormant (k-center with a sketch)
        self.dormant = np.zeros(n, dtype=np.bool_)
        self.asleep = 0
        labelled_pairs = 0
        if len(labelled) and self.sk.on:
            # min over the same computed distances as the plain pass (skipped ones are >= it)
            labelled_pairs = self._seed_labelled(labelled, kcenter_budget)
        elif len(labelled):
            # The plain pass's own seeding: D equal bit for bit, A = position in `labelled`.
            nearest_into(r, r, labelled, self.D, self.A)
            labelled_pairs = n * len(labelled)
        if len(labelled):
            self.D[labelled] = 0.0
            self.gcentre[: len(labelled)] = labelled
            self.G = len(labelled)
        else:
            self.G = 1  # group 0: rows with no centre yet
        self.untaken = n - len(labelled)
        self.mem = np.empty(2 * n + 16, dtype=np.int64)
        self.moved = np.empty(max(1, n), dtype=np.int64)
        self.cand = np.empty(max(1, n), dtype=np.int64)
        self.flag = np.zeros(n, dtype=np.bool_)
        self.counts = np.zeros(4, dtype=np.int64)
        nb = (n + BLOCK - 1) // BLOCK
        self.blk_val = np.empty(nb, dtype=np.float64)
        self.blk_arg = np.empty(nb, dtype=np.int64)
        self.ck = np.zeros(nb + 1, dtype=np.float64)  # k-means++ prefix checkpoints
        eps, tiny = float(np.finfo(zero.dtype).eps), float(np.finfo(zero.dtype).tiny)
        # A computed squared distance is within (d + 3) u of the exact one (u = eps / 2); the
        # margin is 8x that, which also covers rounding in the float64 threshold formulas.
        self.rel = 4.0 * (d + 16) * eps
        self.absf = 64.0 * (d + 1) * tiny
        self.first_changed = 0  # lowest row whose D changed since the last prefix pass
        self.stats = {"n": n, "centres": len(labelled), "rows_touched": 0, "centre_distances": 0, "groups_touched": 0,
                      "switched_at": -1, "plain_centres": 0, "labelled_pairs": labelled_pairs, "sketch_tests": 0,
                      "sketch_width": sketch.k if sketch is not None else 0,
                      "sketch_build_seconds": sketch.build_seconds if sketch is not None else 0.0,
                      "dormant_rows": self.asleep, "woken_rows": 0, "wake_rounds": 0}
        self.next = -1  # the argmax found by the last sketch-filtered plain pass
        self.last_full = n  # full distances of the last sketch-filtered plain pass
        self.eval_n = np.zeros((n + EVAL_BLOCK - 1) // EVAL_BLOCK + 1, dtype=np.int64)
        self.plain = mode == "plain"
        self.average = 0.0
        self.probe_centres = 0
        self.plain_left = 0
        self.plain_stretch = FIRST_PLAIN_STRETCH
        self.top = 0
        if not self.plain:
            self._lists()

    def _seed_labelled(self, labelled: np.ndarray, kcenter_budget: int) -> int:
        """The sketched labelled pass; for k-center greedy (kcenter_budget > 0 picks to come)
        rows end DORMANT once their D is below a threshold that the picks will not reach
        (docs/internals.md, "Dormant rows"). Dormant rows are flagged in `taken` too, so that
        every pass and argmax leaves them out (their D, an upper bound, is not maintained), and
        group lists never hold them. Returns the full distances computed."""
        free = np.flatnonzero(~self.taken)
        threads = self.tuner.threads()
        if not 0 < kcenter_budget < len(free):
            return sketched.seed(self.rows, self.sk, labelled, free, self.D, self.A, threads)
        rows = min(len(free), max(PROBE_MIN_ROWS, -(-PROBE_RANK * len(free) // kcenter_budget)))
        in_probe = np.zeros(len(free), dtype=np.bool_)
        in_probe[np.arange(rows) * len(free) // rows] = True  # spread: pools are often sorted by class
        probe = free[in_probe]
        pairs = sketched.seed(self.rows, self.sk, labelled, probe, self.D, self.A, threads)
        threshold = _probe_threshold(self.D[probe], kcenter_budget, len(free))
        if not np.isfinite(threshold) or threshold <= 0.0:
            return pairs + sketched.seed(self.rows, self.sk, labelled, free[~in_probe], self.D, self.A, threads)
        pairs += sketched.seed(self.rows, self.sk, labelled, free[~in_probe], self.D, self.A, threads, threshold)
        self.threshold = threshold
        self.dormant[free] = self.D[free] < threshold
        self.taken |= self.dormant
        self.asleep = int(np.count_nonzero(self.dormant))
        return pairs

    def _wake(self, v: float) -> None:
        """The threshold drops to min(v, WAKE_SHRINK x threshold) and every dormant row whose
        bound reaches it searches all centres so far (labelled and picked, A = their group
        numbers), from its bound and the sketch as in the labelled pass: to its exact D, or
        until its D is below the new threshold, where it stays dormant with that smaller bound.
        The rows left dormant have D <= bound < threshold <= v: below the argmax, never tied."""
        self.threshold = min(v, WAKE_SHRINK * self.threshold)
        rows = np.flatnonzero(self.dormant & (self.D >= self.threshold))
        if len(rows):
            self.stats["rows_touched"] += sketched.seed(self.rows, self.sk, self.gcentre[: self.G], rows, self.D,
                                                        self.A, self.tuner.threads(), self.threshold)
            awake = rows[self.D[rows] >= self.threshold]
            self.dormant[awake] = False
            self.taken[awake] = False
            self.asleep -= len(awake)
        self.stats["woken_rows"] += len(rows)
        self.stats["wake_rounds"] += 1
        if not self.plain:
            # Group bounds keep dormant rows too: the lists are rebuilt, so every listed row's D
            # is its distance to its group's centre again and the radii cover the woken rows.
            self._lists()

    def _lists(self) -> None:
        self.top = int(_rebuild(self.A, self.taken, self.G, self.D, self.gcentre, self.gstart, self.gcount,
                                self.grad, self.gbest_d, self.gbest_i, self.mem))

    def _grow(self) -> None:
        if self.G + 1 <= len(self.gcentre):
            return
        cap = 2 * len(self.gcentre)
        for name, fill in (("gcentre", -1), ("gstart", 0), ("gcount", 0), ("grad", np.inf),
                           ("gbest_d", -1.0), ("gbest_i", -1), ("sb", 0.0), ("tg", 0)):
            old = getattr(self, name)
            new = np.full(cap, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def add_centre(self, s: int) -> None:
        """Row s becomes a centre: D = min(D, |x - s|^2), D(s) = 0, s never picked."""
        r = self.rows
        self._grow()
        c, ca, cn = r.gather(np.array([s], dtype=np.int64))
        live_before = self.untaken - self.asleep
        self.untaken -= 0 if self.taken[s] else 1
        self.stats["centres"] += 1
        if self.plain:
            self.taken[s] = True
            self.D[s] = 0.0
            self.gcentre[self.G] = s
            self.gcount[self.G] = 0
            if self.sk.on:  # the plain pass, a full distance only where the sketch test fails
                # values it will read, guessed from the last pass
                work = self.last_full * r.X.shape[1] + live_before * (self.sk.z.shape[1] + 3)
                threads = self.tuner.threads() if work >= PARALLEL_MIN * r.X.shape[1] else 1
                self.next, evaluated, first = sketched.update(r, self.sk, c[0], int(s), self.G, self.D, self.A,
                                                              self.taken, self.blk_val, self.blk_arg, threads)
                self.tuner.pick_done(float(work))
                self.last_full = evaluated
                self.first_changed = min(self.first_changed, first, int(s))
                self.stats["sketch_tests"] += live_before
            else:  # the plain sweep, recording the new group in A
                sweep_rows(r, c, ca, cn, self.G, self.D, self.A, NO_MASK, NEAREST, self.blk_val, self.blk_arg,
                           self.tuner.threads())
                self.tuner.pick_done(float(r.n))
                self.first_changed = 0
                evaluated = r.n
            self.G += 1
            self.stats["rows_touched"] += evaluated
            self.stats["plain_centres"] += 1
            if self.mode == "adaptive":
                self.plain_left -= 1
                if self.plain_left == 0:
                    self._go_pruned()
            return
        X, xcode, W, wcode, has_w, zero = r.X, r.xcode, r.W, r.wcode, r.has_w, r.zero
        nt = int(_touched_groups(X, xcode, c[0], int(s), self.G, self.A, self.taken, self.D, self.gcentre,
                                 self.gcount, self.grad, self.rel, self.absf, zero, self.sb, self.tg, self.counts))
        nc = int(_candidates(nt, self.tg, self.sb, self.taken, self.D, self.gstart, self.gcount, self.mem,
                             self.cand, self.flag))
        sk = self.sk
        sketch_args = (sk.on, sk.z, sk.r, sk.slack, sk.scale, sk.centre_slack(int(s)))
        if nc >= PARALLEL_MIN:
            full = _eval_parallel.launch(self.tuner.threads(), nc, X, xcode, W, wcode, has_w, c[0], int(s), self.cand,
                                         self.G, self.D, self.A, zero, *sketch_args, self.eval_n)
        else:  # waking the thread team costs more than a few thousand rows
            full = _eval_rows(0, nc, X, xcode, W, wcode, has_w, c[0], int(s), self.cand, self.G, self.D, self.A, zero,
                              *sketch_args)
        m = int(_compact(nt, self.tg, self.G, self.A, self.taken, self.D, self.gcentre, self.gstart, self.gcount,
                         self.grad, self.gbest_d, self.gbest_i, self.mem, self.moved, self.counts))
        self.counts[0] = nc
        self.counts[2] = nt
        # Sorted by numpy: inside a kernel np.sort would be compiled again per pool type.
        self.top = int(_place_group(self.G, int(s), np.sort(self.moved[:m]), self.A, self.taken, self.D,
                                    self.gcentre, self.gstart, self.gcount, self.grad, self.gbest_d,
                                    self.gbest_i, self.mem, self.top))
        self.G += 1
        evaluated, cdist, groups, first = (int(v) for v in self.counts)
        self.tuner.pick_done(float(evaluated + groups))
        self.first_changed = min(self.first_changed, first, int(s))
        self.stats["rows_touched"] += int(full)
        self.stats["sketch_tests"] += evaluated if sk.on else 0
        self.stats["centre_distances"] += cdist
        self.stats["groups_touched"] += groups
        if self.mode != "adaptive":
            return
        fraction = evaluated / live_before if live_before > 0 else 0.0
        self.average = fraction if self.probe_centres == 0 else \
            self.average + SWITCH_SMOOTHING * (fraction - self.average)
        self.probe_centres += 1
        probe = FIRST_PROBE if self.stats["switched_at"] < 0 else PROBE
        if self.probe_centres >= probe and self.average > SWITCH_FRACTION:
            self._go_plain()

    def _go_plain(self) -> None:
        self.plain = True
        if self.stats["switched_at"] < 0:
            self.stats["switched_at"] = self.stats["centres"]
        self.plain_left = self.plain_stretch
        self.plain_stretch *= 2
        self.gcount[: self.G] = 0

    def _go_pruned(self) -> None:
        self.plain = False
        self.next = -1
        self.probe_centres = 0
        self._lists()

    def argmax(self) -> tuple[int, float]:
        """Next k-center pick: argmax D over untaken rows, lowest index on ties, and its D.
        Dormant rows are woken first when the argmax over the others may not be above them."""
        i = self._live_argmax()
        while self.asleep and (i < 0 or self.D[i] < self.threshold):
            self._wake(float(self.D[i]) if i >= 0 else 0.0)
            i = self._live_argmax()
        return i, float(self.D[i])

    def _live_argmax(self) -> int:
        """argmax D over rows neither taken nor dormant, lowest index on ties; -1 if none."""
        if self.plain and self.next >= 0:
            i, self.next = self.next, -1
        elif self.plain:
            c = self.rows.gather(np.zeros(1, dtype=np.int64))
            i = sweep_rows(self.rows, *c, 0, self.D, self.A, self.taken, ARGMAX, self.blk_val, self.blk_arg,
                           self.tuner.threads())
        else:
            i = int(_groups_argmax(self.G, self.gcount, self.gbest_d, self.gbest_i))
        return int(i)

    def any_taken(self) -> bool:
        return bool(self.taken.any())

    def max_norm_row(self) -> int:
        return int(np.argmax(self.rows.sqnorms()))

    def sample(self, r: float) -> int:
        """The brute sweep's draw -> row rule over the maintained D; the prefix sums resume at
        the first block whose D changed since the last draw."""
        n = self.rows.n
        total = float(prefix_resume(self.D, self.ck, min(self.first_changed, n) // BLOCK))
        self.first_changed = n
        return int(prefix_search(self.D, self.ck, total, r * total)) if total > 0.0 else -1

    def nth_free(self, r: float) -> int:
        return _driver.nth_free(self.taken, r)

    def report(self, budget: int) -> dict[str, Any]:
        return {**self.stats, "budget": budget, "plain_at_end": self.plain}


def accum(accum_dtype: Any, emb: Any) -> Any:
    if accum_dtype is not None:
        return accum_dtype
    return np.float64 if np.dtype(emb.dtype) == np.float64 else np.float32


def _probe_threshold(probe_d: np.ndarray, budget: int, unlabelled: int) -> float:
    """The dormancy threshold: the probe's D of rank budget x probe / unlabelled from the top,
    an estimate of the budget-th largest D of the pool (what the last pick's D stays close to)."""
    rank = max(1, round(budget * len(probe_d) / unlabelled))
    return float(np.sort(probe_d)[len(probe_d) - rank])


def _engine(emb: Any, labelled_mask: np.ndarray, accum_dtype: Any, mode: str, sketch_width: int,
            directions: tuple[np.ndarray, np.ndarray] | None, kcenter_budget: int = 0) -> _Engine:
    """The engine, with a sketch of width sketch_width built first (its cost in the stats);
    kcenter_budget > 0: k-center greedy's picks to come (dormant rows, with a sketch)."""
    acc = accum(accum_dtype, emb)
    sketch = None
    if sketch_width:
        if pruned_supported(emb):
            raise ValueError("; ".join(pruned_supported(emb)))
        sketch = build_sketch(emb, int(sketch_width), acc_dtype=acc, directions=directions)
    return _Engine(emb, labelled_mask, acc, mode, sketch, kcenter_budget)


def _check_first(first: Any, n: int) -> None:
    if isinstance(first, str):
        if first not in ("max_norm", "random"):
            raise ValueError(f"first must be 'max_norm', 'random' or a row index, got {first!r}")
    elif first is not None and not 0 <= int(first) < n:
        raise ValueError(f"first must be a row index in [0, {n}), got {first}")


def _check_budget(budget: Any, free: int) -> int:
    budget = int(budget)
    if not 0 <= budget <= free:
        raise ValueError(f"budget must be in [0, {free}] (unlabelled rows), got {budget}")
    return budget


# ---------------------------------------------------------------- ops


def kcenter_greedy_stats(
    emb: Any,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    first: int | None,
    *,
    mode: str = "adaptive",
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
    sketch_width: int = 0,
    directions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """k-center greedy picks, distances at pick time and work statistics (rows_touched = full
    distances, labelled_pairs = those of the labelled seeding, centre_distances, sketch_tests,
    switched_at, ...). `mode`: 'adaptive' (pruned, plain pass once pruning stops paying),
    'pruned' (never falls back) or 'plain' (every row every pick). sketch_width > 0 adds sketch
    bounds of that width (directions: (mu, P) to use instead of the row sample's) to every
    pass: plain passes then compute a full distance only where the sketch test fails, and
    rows go dormant (stats: dormant_rows after the labelled pass, woken_rows, wake_rounds)."""
    eng = _engine(emb, labelled_mask, accum_dtype, mode, sketch_width, directions, int(budget))
    budget = _check_budget(budget, eng.untaken)
    _check_first(first, eng.rows.n)
    picks, dists = _driver.kcenter_greedy(eng, budget, first, progress)
    return picks, dists, eng.report(budget)


def kmeans_pp_stats(
    emb: Any,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    seed: int,
    first: Any,
    *,
    mode: str = "adaptive",
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
    sketch_width: int = 0,
    directions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """k-means++ picks and work statistics; `mode`, `sketch_width` and `directions` as for
    kcenter_greedy_stats. Draws and the draw -> row rule are those of the brute sweep
    (sweep.BruteState)."""
    eng = _engine(emb, labelled_mask, accum_dtype, mode, sketch_width, directions)
    budget = _check_budget(budget, eng.untaken)
    _check_first(first, eng.rows.n)
    return _driver.kmeans_pp(eng, budget, seed, first, progress), eng.report(budget)


def kcenter_greedy_pruned(emb: Any, labelled_mask: np.ndarray, budget: int, first: int | None, *,
                          progress: Callable[[int], None] | None = None, accum_dtype: Any = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The kcenter_greedy op (docs/internals.md) with algorithm='pruned'."""
    picks, dists, _ = kcenter_greedy_stats(emb, labelled_mask, budget, first, progress=progress,
                                           accum_dtype=accum_dtype)
    return picks, dists


def kmeans_pp_pruned(emb: Any, labelled_mask: np.ndarray, budget: int, seed: int, first: Any, *,
                     progress: Callable[[int], None] | None = None, accum_dtype: Any = None) -> np.ndarray:
    """The kmeans_pp op (docs/internals.md) with algorithm='pruned'."""
    picks, _ = kmeans_pp_stats(emb, labelled_mask, budget, seed, first, progress=progress,
                               accum_dtype=accum_dtype)
    return picks
