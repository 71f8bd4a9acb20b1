"""The pick loops of k-center greedy and k-means++ seeding, written once for every Python
backend (numba brute and pruned, triton, distributed) over a small state interface.

A backend supplies a `KCenterState` / `KMeansState`: the min-distance vector D lives there, in whatever
storage and on whatever device the backend likes; this module owns the rules of API.md that
must agree everywhere: the first pick, the draw counter, the D^2 sampling target, the uniform
fallback when every D is 0, progress reports and the Ctrl-C checkpoint between picks (the loop
is plain Python, so KeyboardInterrupt lands between two kernel calls).
The float64 reference does not use this module: it is the independent oracle.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Protocol

import numpy as np

from . import rng

PROGRESS_EVERY_S = 0.1


class KCenterState(Protocol):
    """One k-center selection's state: D lives here. Row indices are those of the whole pool."""

    def any_taken(self) -> bool:
        """True when some row is labelled (the labelled rows seeded D)."""

    def max_norm_row(self) -> int:
        """The row of largest squared norm, lowest index on ties."""

    def add_centre(self, i: int) -> None:
        """Row i becomes a centre: D = min(D, |x - x_i|^2), row i never picked again."""

    def argmax(self) -> tuple[int, float]:
        """(unpicked row of largest D, lowest index on ties; its D)."""


class KMeansState(Protocol):
    """One k-means++ selection's state; any_taken, max_norm_row, add_centre as KCenterState."""

    def any_taken(self) -> bool: ...

    def max_norm_row(self) -> int: ...

    def add_centre(self, i: int) -> None: ...

    def sample(self, r: float) -> int:
        """The first row whose index-order float64 prefix sum of D exceeds r * sum(D);
        -1 when sum(D) is 0."""

    def nth_free(self, r: float) -> int:
        """The floor(r * m)-th of the m rows neither labelled nor picked, in index order."""


class Progress:
    """Calls `progress(done)` at most every PROGRESS_EVERY_S seconds, and always when final."""

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


def kcenter_greedy(state: KCenterState, budget: int, first: int | None,
                   progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Picks [budget] int64 and their Euclidean distances at pick time [budget] float64 (inf for
    a first pick made with nothing labelled)."""
    budget = int(budget)
    picks = np.empty(budget, dtype=np.int64)
    dists = np.empty(budget, dtype=np.float64)
    if budget == 0:
        return picks, dists
    report = Progress(progress)
    if state.any_taken():
        nxt, d2 = state.argmax()
    else:
        nxt, d2 = (int(first) if first is not None else state.max_norm_row()), math.inf
    for t in range(budget):
        picks[t], dists[t] = nxt, math.sqrt(d2)
        if t + 1 < budget:
            state.add_centre(nxt)
            nxt, d2 = state.argmax()
        report(t + 1)
    report(budget, final=True)
    return picks, dists


def kmeans_pp(state: KMeansState, budget: int, seed: int, first: Any,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
    """k-means++ picks [budget] int64: draw t is rng.uniform(seed, t); the first pick follows
    rng.first_pick when nothing is labelled; then each draw r picks state.sample(r), or the
    uniform free row state.nth_free(r) when every D is 0."""
    budget = int(budget)
    picks = np.empty(budget, dtype=np.int64)
    if budget == 0:
        return picks
    report = Progress(progress)
    draw = 0
    t = 0
    if not state.any_taken():
        picks[0], draw = rng.first_pick(first, seed, state.max_norm_row, state.nth_free)
        t = 1
        if budget > 1:
            state.add_centre(int(picks[0]))
        report(t)
    while t < budget:
        r = rng.uniform(seed, draw)
        draw += 1
        i = state.sample(r)
        picks[t] = i if i >= 0 else state.nth_free(r)
        t += 1
        if t < budget:
            state.add_centre(int(picks[t - 1]))
        report(t)
    report(t, final=True)
    return picks


def nth_free(taken: np.ndarray, r: float) -> int:
    """The floor(r * m)-th False entry of `taken` [n] bool, m the number of False entries."""
    free = np.flatnonzero(~taken)
    return int(free[min(int(r * len(free)), len(free) - 1)])


def prefix_pick(D: np.ndarray, r: float) -> int:
    """The exact-prefix rule on the host: the first i with D_0 + ... + D_i > r * sum(D),
    summed left to right in float64 (numpy's cumsum is a sequential loop, as the reference's);
    the last i with D_i > 0 when rounding leaves none; -1 when sum(D) is 0."""
    P = np.cumsum(np.asarray(D, dtype=np.float64))
    total = float(P[-1]) if len(P) else 0.0
    if not total > 0.0:
        return -1
    i = int(np.searchsorted(P, r * total, side="right"))
    return i if i < len(P) else int(np.flatnonzero(D > 0.0)[-1])
