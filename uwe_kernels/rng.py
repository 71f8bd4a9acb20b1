"""SplitMix64 draws (Steele, Lea and Flood 2014), the one random stream of every backend.

Draw t (t = 0, 1, ...) of the stream started at state `seed`:
    z = seed + (t + 1) * 0x9E3779B97F4A7C15            (mod 2**64)
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9            (mod 2**64)
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB            (mod 2**64)
    z = z ^ (z >> 31)
    r_t = (z >> 11) * 2**-53                            in [0, 1)
Every draw is a pure function of (seed, t), so backends and threads agree by construction.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1
TWO_POW_M53 = 2.0 ** -53


def check_seed(seed: Any) -> int:
    """The seed as a Python int; ValueError unless an integer (not bool) in [0, 2**64)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r} ({type(seed).__name__})")
    value = int(seed)
    if not 0 <= value <= MASK64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {value}")
    return value


def splitmix64(seed: int, t: int) -> int:
    """The 64-bit output of draw t of the stream started at `seed`."""
    z = (int(seed) + (int(t) + 1) * GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def uniform(seed: int, t: int) -> float:
    """r_t in [0, 1): the top 53 bits of draw t."""
    return (splitmix64(seed, t) >> 11) * TWO_POW_M53


def uniforms(seed: int, start: int, count: int) -> np.ndarray:
    """Draws start, ..., start + count - 1 as float64 [count] (numpy uint64, wrapping)."""
    count = int(count)
    if count <= 0:
        return np.empty(0, dtype=np.float64)
    t1 = np.arange(count, dtype=np.uint64) + np.uint64((int(start) + 1) & MASK64)
    with np.errstate(over="ignore"):
        z = np.uint64(int(seed) & MASK64) + t1 * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    z = z ^ (z >> np.uint64(31))
    return np.asarray((z >> np.uint64(11)).astype(np.float64) * TWO_POW_M53)


def first_pick(first: Any, seed: int, max_norm_row: Callable[[], int],
               nth_free: Callable[[float], int]) -> tuple[int, int]:
    """k-means++'s first pick when nothing is labelled: the row of largest norm ("max_norm"),
    the unlabelled row that draw r_0 lands on ("random"; `nth_free` maps r in [0, 1) to it),
    or the given index. Returns (row, draws used) so the later picks continue at that t."""
    if isinstance(first, str) and first == "max_norm":
        return int(max_norm_row()), 0
    if isinstance(first, str) and first == "random":
        return int(nth_free(uniform(seed, 0))), 1
    return int(first), 0


class Draws:
    """A counter over one stream: `.next()` returns r_t and advances t."""

    def __init__(self, seed: int, t: int = 0) -> None:
        self.seed = check_seed(seed)
        self.t = int(t)

    def next(self) -> float:
        r = uniform(self.seed, self.t)
        self.t += 1
        return r

    def __repr__(self) -> str:
        return f"Draws(seed={self.seed}, t={self.t})"
