"""Selection ops on numba: k-center greedy, k-means++ seeding and min distances over dense
[n, d] rows or factored rows (docs/internals.md, "Selection family").

This module only chooses the algorithm: 'brute' runs sweep.BruteState (one fused parallel
sweep per pick, O(n d) per pick, O(n (K + d)) for BADGE factors), 'pruned' (dense pools) runs
the pruning engine of pruned.py (the same picks, reading only rows whose nearest-centre
distance can change) with group bounds; 'sketch' runs it with sketch (projection) bounds
only, 'pruned+sketch' with both. 'auto' measures a row sample: group bounds when it looks
clustered, a sketch when its predicted traffic is at most half of brute force's (or, for
k-center greedy, when its dormant rows pay: _sketch.dormancy_pays). The pick loops
are _driver's; distances are rows.py's (float32 accumulator, float64 for float64 inputs; D
and prefix sums float64). Ties: lowest index wins, independent of the thread count.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _driver
from .._pruning import DENSE_ONLY
from .._sketch import choose_bounds, engine_options
from . import pruned, sketched
from ._runtime import acc_zero
from .rows import Rows
from .sweep import BruteState, nearest_into

CHECKS_FINITE = False
ALGORITHMS = ("brute", "pruned", "sketch", "pruned+sketch")


# numba's sketched labelled pass costs less per labelled row than cpp's (_sketch.dormancy_pays)
# up to d = 512, more above, measured on isotropic noise: at d = 512 1.32x brute force's time
# at budget = labelled / 10, 0.47x at labelled / 8, 0.26-0.28x at labelled / 5; at d = 256
# 1.0x at labelled / 5, 0.25x at labelled / 2.5; at d = 1024 1.36x at labelled / 10, 1.11x at
# labelled / 5, 0.84x at labelled / 4, 0.24x at labelled / 2.5 (hence the cost grows as d^2
# above 512).
DORMANT_LABELLED_COST = 100.0


def dormant_labelled_cost(d: int) -> float:
    return DORMANT_LABELLED_COST * max(1.0, d / 512) ** 2


def choose_algorithm(emb: Any, centres: int | None = None, *, kcenter: bool = False, labelled: int = 0,
                     budget: int = 0) -> str:
    """Group bounds ('pruned') for dense pools whose row sample looks clustered (the same test
    as cpp), a sketch when _sketch.choose_sketch says it pays (or k-center greedy's dormant
    rows do: _sketch.dormancy_pays), both when both; else 'brute'. centres: the selection's
    mean centre count (labelled rows plus half the budget)."""
    if pruned.pruned_supported(emb):
        return "brute"
    return choose_bounds(emb, centres, not sketched.sketch_supported(emb, pruned.accum(None, emb)), kcenter=kcenter,
                         labelled=labelled, budget=budget, labelled_cost=dormant_labelled_cost(emb.shape[1]))


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"the numba backend runs algorithms {ALGORITHMS}, got {algorithm!r}")


def not_supported_reasons(op: str, call: Any) -> list[str]:
    if op != "min_distances" and call.options.get("algorithm") == "pruned" and call.options.get("factored"):
        return [DENSE_ONLY]
    return []


def kcenter_greedy(emb: Any, labelled_mask: np.ndarray, budget: int, first: int | None, *,
                   algorithm: str, progress: Callable[[int], None] | None, accum_dtype: Any
                   ) -> tuple[np.ndarray, np.ndarray]:
    _check_algorithm(algorithm)
    if algorithm != "brute":
        picks, dists, _ = pruned.kcenter_greedy_stats(emb, labelled_mask, budget, first, progress=progress,
                                                      accum_dtype=accum_dtype, **engine_options(emb, algorithm))
        return picks, dists
    if int(budget) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    return _driver.kcenter_greedy(BruteState(emb, labelled_mask, accum_dtype), budget, first, progress)


def kmeans_pp(emb: Any, labelled_mask: np.ndarray, budget: int, seed: int, first: Any, *,
              algorithm: str, progress: Callable[[int], None] | None, accum_dtype: Any) -> np.ndarray:
    _check_algorithm(algorithm)
    if algorithm != "brute":
        picks, _ = pruned.kmeans_pp_stats(emb, labelled_mask, budget, seed, first, progress=progress,
                                          accum_dtype=accum_dtype, **engine_options(emb, algorithm))
        return picks
    if int(budget) == 0:
        return np.empty(0, dtype=np.int64)
    return _driver.kmeans_pp(BruteState(emb, labelled_mask, accum_dtype), budget, seed, first, progress)


def min_distances(emb: Any, centers: Any, *, return_argmin: bool, out_dtype: Any, accum_dtype: Any
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    zero = acc_zero(accum_dtype)
    rows = Rows(emb, zero)
    centres = Rows(centers, zero)
    D = np.full(rows.n, np.inf)
    A = np.zeros(rows.n, dtype=np.int64)
    nearest_into(rows, centres, None, D, A)
    return D.astype(out_dtype, copy=False), (A if return_argmin else None)
