"""Finite pools far from unit scale: picks do not depend on the units, distances come back in
the caller's units, and what no dtype can hold raises a clear error instead of garbage."""
from __future__ import annotations

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels._arrays import BFLOAT16
from helpers import as_float64, gaussian_pool, rtol, to_device

# The registry ops these backend-parametrised tests call.
pytestmark = pytest.mark.ops("kcenter_greedy", "kmeans_pp", "min_distances", "uwe")

SCALES = [1e20, 1e-25]


def _pool(scale: float, dtype=np.float32) -> np.ndarray:
    return (gaussian_pool(2000, 32, seed=3, dtype=np.float64) * scale).astype(dtype)


@pytest.mark.parametrize("scale", SCALES)
def test_kcenter_greedy_picks_do_not_depend_on_scale(backend, device, scale, algorithm):
    pool = _pool(scale)
    unit = gaussian_pool(2000, 32, seed=3, dtype=np.float64)
    want, want_d = uk.kcenter_greedy(unit, None, 12, backend="reference", return_distances=True)
    picks, dists = uk.kcenter_greedy(to_device(pool, device), None, 12, algorithm=algorithm, backend=backend,
                                     return_distances=True)
    np.testing.assert_array_equal(as_float64(picks), want)
    assert np.isinf(as_float64(dists)[0])
    np.testing.assert_allclose(as_float64(dists)[1:], want_d[1:] * scale, rtol=1e-4)


@pytest.mark.parametrize("scale", SCALES)
def test_kmeans_pp_and_min_distances_do_not_depend_on_scale(backend, device, scale):
    pool, unit = _pool(scale), gaussian_pool(2000, 32, seed=3, dtype=np.float64)
    want = uk.kmeans_pp(unit, 12, seed=7, backend="reference")
    np.testing.assert_array_equal(as_float64(uk.kmeans_pp(to_device(pool, device), 12, seed=7, backend=backend)),
                                  want)
    d = uk.min_distances(to_device(pool, device), to_device(pool[:5], device), out_dtype=np.float64, backend=backend)
    ref = uk.min_distances(unit, unit[:5], backend="reference")
    np.testing.assert_allclose(as_float64(d), ref * scale * scale, rtol=1e-4)


@pytest.mark.parametrize("scale", [1e20, 1e-25])
def test_bfloat16_pool_far_from_unit_scale(backend, device, scale):
    if backend not in ("cpp", "numba", "reference"):
        pytest.skip("bfloat16 numpy pools are a CPU case")
    pool = _pool(scale, BFLOAT16)
    want = uk.kcenter_greedy(pool.astype(np.float64) / scale, None, 10, backend="reference")
    np.testing.assert_array_equal(as_float64(uk.kcenter_greedy(pool, None, 10, backend=backend)), want)


def test_factored_factors_far_apart_in_scale(backend, device):
    rng = np.random.default_rng(5)
    weights = (rng.uniform(0.5, 1.5, 400) * 1e-30).astype(np.float32)
    feats = (rng.standard_normal((400, 16)) * 1e30).astype(np.float32)
    fe = uk.FactoredEmbedding(to_device(weights, device), to_device(feats, device))
    explicit = weights.astype(np.float64)[:, None] * feats.astype(np.float64)
    want = uk.kcenter_greedy(explicit, None, 10, backend="reference")
    np.testing.assert_array_equal(as_float64(uk.kcenter_greedy(fe, None, 10, backend=backend)), want)


@pytest.mark.parametrize("scale", [1e160, 1e-160])
def test_float64_pool_beyond_float64_squares_raises(backend, device, scale):
    pool = to_device(gaussian_pool(50, 4, dtype=np.float64) * scale, device)
    for call in (lambda: uk.kcenter_greedy(pool, None, 3, backend=backend),
                 lambda: uk.kmeans_pp(pool, 3, backend=backend),
                 lambda: uk.min_distances(pool, pool[:2], backend=backend)):
        with pytest.raises(ValueError, match="Rescale"):
            call()


def test_float16_distance_beyond_float16_raises_not_inf(backend, device):
    pool = to_device(np.array([[6e4], [-6e4], [0.0]], dtype=np.float16), device)
    np.testing.assert_array_equal(as_float64(uk.kcenter_greedy(pool, None, 3, backend=backend)), [0, 1, 2])
    with pytest.raises(ValueError, match="float16's range"):
        uk.kcenter_greedy(pool, None, 3, backend=backend, return_distances=True)
    picks, dists = uk.kcenter_greedy(pool, None, 1, backend=backend, return_distances=True)
    assert np.isinf(as_float64(dists)[0])  # a first pick's inf is not an overflow
    with pytest.raises(ValueError, match="out_dtype"):
        uk.min_distances(pool, pool[:1], backend=backend)
    with np.errstate(over="ignore"):
        assert np.isinf(as_float64(uk.min_distances(pool, pool[:1], out_dtype=np.float16, backend=backend))[1])
    d = uk.min_distances(pool, pool[:1], out_dtype=np.float32, backend=backend)
    np.testing.assert_allclose(as_float64(d), [0.0, 1.44e10, 3.6e9], rtol=1e-3)


def test_uwe_beyond_its_output_dtype_raises_not_inf(backend, device):
    scores = to_device(np.tile(np.array([[0.0, 0.0, 0.0, 0.0]], dtype=np.float16), (4, 1)), device)
    feats = to_device(np.full((4, 3), 6e4, dtype=np.float16), device)  # u = log 4 > 1: rows reach 8.3e4
    with pytest.raises(ValueError, match="float16's range"):
        uk.uwe(scores, feats, "entropy", 1.0, backend=backend)
    wide = uk.uwe(scores, feats, "entropy", 1.0, out_dtype=np.float32, backend=backend)
    with np.errstate(over="ignore"):  # an explicit out_dtype rounds as numpy's astype: inf beyond range
        assert np.isinf(as_float64(uk.uwe(scores, feats, "entropy", 1.0, out_dtype=np.float16, backend=backend))).all()
    np.testing.assert_allclose(as_float64(wide), np.log(4) * 6e4, rtol=1e-3)
    huge_tau = to_device(np.ones((4, 3), dtype=np.float32), device)
    with pytest.raises(ValueError, match="float32's range"):
        uk.uwe(scores, huge_tau, "entropy", 1000.0, backend=backend)
    np.testing.assert_allclose(as_float64(uk.uwe(scores, huge_tau, "bvsb", 1000.0, backend=backend)), 1.0)


def _one_row_at(value: float, dtype, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, features): 1003 x 37 (odd), every u = log 5 (zero logits), feature row 611 at
    `value` and the rest unit-scale noise; 'strided' features are a column-strided view."""
    rng = np.random.default_rng(9)
    f = rng.uniform(-1.0, 1.0, (1003, 37))
    f[611, 5] = value
    f[611, 30] = -value
    features = f.astype(dtype)
    if layout == "strided":
        features = np.repeat(features, 2, axis=1)[:, ::2]
    return np.zeros((1003, 5), dtype=dtype), features


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_uwe_overflow_of_one_row_raises_on_every_dtype(backend, device, dtype, layout):
    """Only row 611 reaches beyond the output dtype (u = log 5 times a feature just below the
    dtype's largest value): the call raises; 1% lower it returns the reference's rows."""
    if layout == "strided" and device != "cpu":
        pytest.skip("strided views are built on host arrays")
    top = float(np.finfo(np.float32).max if dtype == BFLOAT16 else np.finfo(dtype).max)
    edge = top / np.log(5)
    scores, over = _one_row_at(edge * 1.01, dtype, layout)
    with pytest.raises(ValueError, match=f"exceeds {np.dtype(dtype).name}'s range"):
        uk.uwe(to_device(scores, device), to_device(over, device), "entropy", 1.0, backend=backend)
    scores, under = _one_row_at(edge * 0.99, dtype, layout)
    got = as_float64(uk.uwe(to_device(scores, device), to_device(under, device), "entropy", 1.0, backend=backend))
    want = np.log(5) * under.astype(np.float64)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=rtol(dtype))


@pytest.mark.parametrize("backend", ["cpp"])
def test_cpp_uwe_reports_overflow_without_reading_its_output(backend, monkeypatch):
    """The kernel knows each row's largest output as it writes it: no second pass over the
    result, for entropy (u up to log K > 1) on a pool large enough for streaming stores."""
    from uwe_kernels import _scale

    def no_second_pass(x):
        raise AssertionError("uwe re-read its output")

    monkeypatch.setattr(_scale, "has_inf", no_second_pass)
    scores = np.zeros((70_000, 10), dtype=np.float32)
    features = np.ones((70_000, 64), dtype=np.float32)  # 17.9 MB of output: streamed
    np.testing.assert_allclose(uk.uwe(scores, features, "entropy", 1.0, backend=backend)[::997], np.log(10),
                               rtol=1e-6)
    features[69_998, 63] = 3e38
    with pytest.raises(ValueError, match="exceeds float32's range"):
        uk.uwe(scores, features, "entropy", 1.0, backend=backend)
    with np.errstate(over="ignore"):
        wide = uk.uwe(scores, features, "entropy", 1.0, out_dtype=np.float32, backend=backend)
    assert np.isinf(wide[69_998, 63]) and np.isfinite(np.delete(wide, 69_998, axis=0)).all()


@pytest.mark.parametrize("seed", [0, 7, 2**64 - 1])
@pytest.mark.parametrize("form", ["dense", "uwe", "badge"])
def test_kmeans_pp_on_float32_accumulated_in_float64_matches_reference(backend, device, form, seed):
    """float32 rows near 1e19 go through the float64 accumulator (no copy): the same draws and
    picks as the reference on fixed seeds, with and without labelled rows, dense and factored."""
    rng = np.random.default_rng(seed % 1000)
    feats = (rng.standard_normal((601, 23)) * 1e19).astype(np.float32)
    scores = rng.standard_normal((601, 5)).astype(np.float32)
    pool = {"dense": lambda: feats,
            "uwe": lambda: uk.uwe_factored(scores, feats, tau=0.5, backend="reference"),
            "badge": lambda: uk.badge_factored(scores, feats, backend="reference")}[form]()
    for labelled in (None, np.arange(3, 601, 41)):
        want = uk.kmeans_pp(pool, 17, labelled_idx=labelled, seed=seed, backend="reference")
        dev = to_device(pool, device) if form == "dense" else pool
        got = uk.kmeans_pp(dev, 17, labelled_idx=labelled, seed=seed, backend=backend, algorithm="brute")
        np.testing.assert_array_equal(as_float64(got), want)
