"""loop.kmeanspp_near_tie proves a factored/explicit k-means++ difference a rounding near-tie only
when the exact float64 target lies within one accumulation ulp of a prefix boundary; the demo's
check says NO for any difference without that proof."""
from __future__ import annotations

import numpy as np

from uwe_kernels import demo, loop, rng

SEED = 7


def _straddling_pool(rel_gap: float) -> np.ndarray:
    """Row 0 labelled at the origin; rows 1 and 2 with D1 / (D1 + D2) = r_0 * (1 - rel_gap), so the
    exact first draw lands just past the boundary between them (exact pick: row 2)."""
    r = rng.uniform(SEED, 0) * (1 - rel_gap)
    d1 = r / (1 - r)  # with D2 = 1
    return np.array([[0.0], [np.sqrt(d1)], [1.0]])


def _labelled() -> np.ndarray:
    return np.array([True, False, False])


def test_equal_picks_need_no_explanation():
    assert loop.kmeanspp_near_tie(_straddling_pool(1e-9), _labelled(), SEED, [2, 1], [2, 1]) == ""


def test_a_target_within_one_float32_ulp_of_the_boundary_is_a_near_tie():
    why = loop.kmeanspp_near_tie(_straddling_pool(1e-9), _labelled(), SEED, [2, 1], [1, 2])
    assert why.startswith("step 0: 2 vs 1") and "float32 ulp" in why


def test_a_clear_gap_is_not_a_near_tie():
    assert loop.kmeanspp_near_tie(_straddling_pool(1e-3), _labelled(), SEED, [2, 1], [1, 2]) == ""


def test_a_tie_in_float32_is_a_difference_in_float64():
    assert loop.kmeanspp_near_tie(_straddling_pool(1e-9), _labelled(), SEED, [2, 1], [1, 2], np.float64) == ""


def _check(equal: bool, near_tie: str, cycle: int) -> loop.CheckRecord:
    return loop.CheckRecord("d", "uwe", 0, cycle, 0.9, 0.9, 0.3, equal, near_tie)


def test_the_demo_says_no_for_an_unproven_difference():
    lines = demo._check_lines(loop.Results(checks=[_check(True, "", 0), _check(False, "", 1)]))
    assert any("explicit BADGE picks: NO (1 of 2 cycles identical)" in line for line in lines)


def test_the_demo_names_each_proven_near_tie():
    why = "step 12: 774 vs 772, ..."
    lines = demo._check_lines(loop.Results(checks=[_check(True, "", 0), _check(False, why, 1)]))
    assert any("yes, but for proven near-ties (1 of 2 cycles identical)" in line for line in lines)
    assert any("seed 0 cycle 1 near-tie, " + why in line for line in lines)
