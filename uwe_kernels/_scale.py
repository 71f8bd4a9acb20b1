"""Whether a pool's squared distances fit the accumulation dtype, judged from its largest
magnitude (which validation finds in its own pass), so that picks do not depend on units.

A pool whose values are finite can still have squared distances that overflow (|x| ~ 1e20
in float32) or underflow to zero (|x| ~ 1e-25): the kernels would then return garbage
picks. Such a pool is accumulated in float64 instead (no copy: the kernels convert per
chunk); where even float64 cannot hold it, the call raises a ValueError asking for a rescale.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _arrays

FLOAT64 = np.dtype(np.float64)
CHUNK_ROWS = 8192
# Headroom for sums of several such terms (norm-trick cross terms, D sums in k-means++).
MARGIN = 16.0


class Factor:
    """One factor of the rows: `width` values per row, none larger than `magnitude`."""

    def __init__(self, name: str, magnitude: float, width: int) -> None:
        self.name, self.magnitude, self.width = name, float(magnitude), max(int(width), 1)

    def problem(self, acc: np.dtype, count: int) -> str | None:
        """'overflow' or 'underflow' when squared distances of these values do not fit `acc`."""
        info = np.finfo(acc)
        big = self.magnitude * self.magnitude  # inf rather than OverflowError in Python floats
        if big * 4.0 * self.width * count * MARGIN > float(info.max):
            return "overflow"
        # Below tiny/eps a square loses bits to subnormals that the sums' rounding keeps.
        if 0.0 < big < float(info.tiny) / float(info.eps):
            return "underflow"
        return None


def dense(name: str, magnitude: float, width: int) -> list[Factor]:
    return [Factor(name, magnitude, width)]


def factored(weights: float, k: int, features: float, d: int) -> list[Factor]:
    """The factors of a FactoredEmbedding and the rows they make (the norm trick squares each)."""
    return [Factor("weights", weights, k), Factor("features", features, d),
            Factor("the embedding", weights * features, k * d)]


def accumulation(acc: np.dtype, factors: Sequence[Factor], count: int = 1) -> np.dtype:
    """`acc` when every factor's squared distances fit it, else float64 when they fit that;
    otherwise a ValueError naming the factor and its scale. `count`: how many squared
    distances are summed (n for k-means++'s D total)."""
    acc = np.dtype(acc)
    if all(f.problem(acc, count) is None for f in factors):
        return acc
    for f in factors:
        problem = f.problem(FLOAT64, count)
        if problem is not None:
            raise ValueError(
                f"{f.name} has values up to {f.magnitude:.3g} in magnitude: its squared distances "
                f"{problem} even in float64. Rescale it first (e.g. divide by {f.magnitude:.3g}); "
                "the picks do not depend on the scale"
            )
    return FLOAT64


def distance_bound(factors: Sequence[Factor]) -> float:
    """An upper bound on any Euclidean distance between two rows (of the last, full factor)."""
    f = factors[-1]
    return 2.0 * float(np.sqrt(f.width)) * f.magnitude


def weighted_rows_may_overflow(kind: str, classes: int, tau: float, features: float, out: np.dtype) -> bool:
    """Whether u ** tau * features can exceed `out`'s range: u <= log K for entropy and bald
    (mutual information is at most H(mean p)), <= 1 for the other kinds. Compared in logs
    (u ** tau itself may overflow a Python float)."""
    if features == 0.0:
        return False
    log_u = float(np.log(np.log(classes))) if kind in ("entropy", "bald") and classes > 2 else 0.0
    return tau * log_u + float(np.log(features)) > float(np.log(np.finfo(out).max))


class RowsOverflowed(Exception):
    """Raised by an op module that sets REPORTS_OVERFLOW (its kernel knows, as it writes, whether
    an output of u ** tau * features rounded to inf) when one did; `result` is the op's output,
    the answer when the caller chose the output dtype."""

    def __init__(self, result: Any) -> None:
        super().__init__("an output rounded to inf")
        self.result = result


def has_inf(x: Any) -> bool:
    """Whether an op's result holds an inf (numpy read in row chunks, or a torch tensor)."""
    if _arrays.is_torch(x):
        return bool(__import__("torch").isinf(x).any())
    for s in range(0, len(x), CHUNK_ROWS):
        chunk = x[s : s + CHUNK_ROWS]
        if chunk.size and not (np.isfinite(chunk.max()) and np.isfinite(chunk.min())):  # no bool temporaries
            return True
    return False
