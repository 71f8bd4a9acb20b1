import ctypes
import dataclasses
import pathlib
import shutil
import subprocess

import ml_dtypes
import numpy as np
import pytest

from uwe_kernels import _sketch
from uwe_kernels.factored import FactoredArrays


def brute_sq_distances(rows32, centre):
    """The brute force's float32 (or float64) distances, in two summation orders; the
    smaller of the two, so that the skip test meets its hardest case."""
    diff = rows32 - rows32[centre]
    pairwise = np.einsum("ij,ij->i", diff, diff)
    sequential = np.cumsum(diff * diff, axis=1, dtype=diff.dtype)[:, -1]
    return np.minimum(pairwise, sequential)


def assert_never_skips_a_lowering_row(sketch, rows_acc, centres):
    """For every row and centre: with D one ulp above the computed distance (the smallest D
    that the distance would lower), the test must not skip; and the bound, margin removed,
    never exceeds the exact squared distance."""
    acc = rows_acc.dtype
    exact = rows_acc.astype(np.float64)
    for c in centres:
        d_hat = brute_sq_distances(rows_acc, c)
        just_above = np.nextafter(d_hat, np.array(np.inf, dtype=acc))
        assert not _sketch.sketch_keeps_all(sketch, c, just_above).any()
        true_sq = ((exact - exact[c]) ** 2).sum(axis=1)
        bound = _sketch.sketch_bounds(sketch, c).astype(np.float64)
        margin = sketch.slack.astype(np.float64) + float(sketch.slack[c]) + sketch.tau
        assert (bound - margin <= sketch.scale * true_sq).all()


def low_rank_pool(rng, n, d, rank, noise):
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    return rng.standard_normal((n, rank)) * np.linspace(4, 1, rank) @ basis.T + noise * rng.standard_normal((n, d))


def near_pairs(rows, rng, count):
    """Rows followed by near copies of earlier rows, so that computed distances get close to D."""
    picks = rng.choice(len(rows), count, replace=False)
    near = rows[picks] + 1e-3 * rng.standard_normal((count, rows.shape[1]))
    return np.concatenate([rows, near, rows[picks[: count // 2]]])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 4, 16])
def test_bound_is_safe_on_random_pools(seed, k):
    rng = np.random.default_rng(seed)
    rows = near_pairs(low_rank_pool(rng, 300, 37, 6, 0.3), rng, 40).astype(np.float32)
    sketch = _sketch.build_sketch(rows, k)
    assert_never_skips_a_lowering_row(sketch, rows, range(0, len(rows), 7))


def test_bound_is_safe_on_rows_differing_only_outside_the_top_directions():
    rng = np.random.default_rng(10)
    d, k = 24, 4
    rows = low_rank_pool(rng, 400, d, k, 0.0)
    sketch0 = _sketch.build_sketch(rows, k)
    outside = np.linalg.qr(np.concatenate([sketch0.basis, rng.standard_normal((d, 3))], axis=1))[0][:, k:]
    twins = rows[:50] + (rng.standard_normal((50, 3)) * 1e-2) @ outside.T
    pool = np.concatenate([rows, twins]).astype(np.float32)
    sketch = _sketch.build_sketch(pool, k)
    assert_never_skips_a_lowering_row(sketch, pool, [*range(0, 50, 3), *range(400, 450, 3)])


def test_bound_is_safe_with_zero_residuals_and_exact_duplicates():
    rng = np.random.default_rng(11)
    rows = low_rank_pool(rng, 200, 16, 3, 0.0)
    pool = np.concatenate([rows, rows[:30], rows[:30]]).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 8)
    assert float(np.median(sketch.r)) < 1e-5
    assert_never_skips_a_lowering_row(sketch, pool, [0, 1, 2, 200, 230, 259])


def test_the_margin_is_needed_and_costs_little():
    rng = np.random.default_rng(11)
    pool = low_rank_pool(rng, 200, 16, 3, 0.0).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 8)
    plain = dataclasses.replace(sketch, scale=1.0, slack=np.zeros_like(sketch.slack), tau=0.0)
    d_hat = brute_sq_distances(pool, 0)
    just_above = np.nextafter(d_hat, np.float32(np.inf))
    assert _sketch.sketch_keeps_all(plain, 0, just_above).sum() > 20
    assert not _sketch.sketch_keeps_all(sketch, 0, just_above).any()
    assert _sketch.sketch_keeps_all(sketch, 0, d_hat * np.float32(0.999))[1:].all()


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32])
def test_bound_is_safe_on_half_precision_pools(dtype):
    rng = np.random.default_rng(12)
    pool = near_pairs(np.abs(low_rank_pool(rng, 300, 40, 5, 0.5)), rng, 40).astype(dtype)
    sketch = _sketch.build_sketch(pool, 8)
    assert_never_skips_a_lowering_row(sketch, pool.astype(np.float32), range(0, 340, 9))


@pytest.mark.parametrize("scale", [1e-17, 1e-6, 1e6, 1e17])
def test_bound_is_safe_at_extreme_magnitudes(scale):
    rng = np.random.default_rng(13)
    pool = (near_pairs(low_rank_pool(rng, 200, 20, 4, 0.2), rng, 30) * scale).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 4)
    assert_never_skips_a_lowering_row(sketch, pool, range(0, 230, 11))


def test_bound_is_safe_with_mixed_magnitudes_and_float64_pools():
    rng = np.random.default_rng(14)
    pool = low_rank_pool(rng, 200, 20, 4, 0.2)
    pool[::17] *= 1e12
    pool[5::23] *= 1e-12
    pool = near_pairs(pool, rng, 30)
    for acc in (np.float32, np.float64):
        rows = pool.astype(acc)
        sketch = _sketch.build_sketch(rows, 4, acc_dtype=acc)
        assert_never_skips_a_lowering_row(sketch, rows, [0, 5, 17, 28, 34, *range(200, 230, 6)])


def test_bound_skips_most_far_rows():
    rng = np.random.default_rng(15)
    pool = low_rank_pool(rng, 2000, 64, 4, 0.01).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 8)
    d_hat = brute_sq_distances(pool, 0)
    assert _sketch.sketch_keeps_all(sketch, 0, 0.5 * d_hat)[1:].mean() > 0.99


def test_no_row_is_skipped_while_its_distance_is_unknown():
    rng = np.random.default_rng(16)
    pool = low_rank_pool(rng, 100, 8, 2, 0.1).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 2)
    assert not _sketch.sketch_keeps_all(sketch, 3, np.full(100, np.inf, dtype=np.float32)).any()
    huge = np.full(100, np.finfo(np.float32).max, dtype=np.float32)
    assert not _sketch.sketch_keeps_all(sketch, 3, huge).any()


def factored_uwe(rng, n, d):
    weights = rng.uniform(0.1, 2.0, n).astype(np.float32)
    features = np.abs(low_rank_pool(rng, n, d, 5, 0.3)).astype(np.float32)
    return weights, features


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_factored_and_dense_sketches_agree_within_the_proven_error(dtype):
    rng = np.random.default_rng(17)
    w, f = (a.astype(dtype) for a in factored_uwe(rng, 500, 33))
    dense = w[:, None] * f  # the brute's rows: fl(w f) in the accumulator's precision
    sk_dense = _sketch.build_sketch(dense, 6, acc_dtype=dtype)
    sk_fact = _sketch.build_sketch(FactoredArrays(w, f), 6, acc_dtype=dtype,
                                   directions=(sk_dense.mu, sk_dense.basis))
    gap = np.linalg.norm(sk_dense.z.astype(np.float64) - sk_fact.z, axis=1) + np.abs(
        sk_dense.r.astype(np.float64) - sk_fact.r)
    assert (gap <= _sketch.error_radius(sk_dense, dtype) + _sketch.error_radius(sk_fact, dtype)).all()


def test_factored_bound_is_safe():
    rng = np.random.default_rng(18)
    w, f = factored_uwe(rng, 300, 29)
    w = np.concatenate([w, w[:20] * np.float32(1.0001)])
    f = np.concatenate([f, f[:20]])
    sketch = _sketch.build_sketch(FactoredArrays(w, f), 5)
    assert_never_skips_a_lowering_row(sketch, w[:, None] * f, [0, 1, 7, 300, 310])


def test_memory_mapped_and_strided_pools_give_the_same_sketch(tmp_path):
    rng = np.random.default_rng(19)
    rows = low_rank_pool(rng, 3000, 48, 6, 0.1).astype(np.float32)
    mapped = np.memmap(tmp_path / "pool.bin", dtype=np.float32, mode="w+", shape=(3000, 96))
    mapped[:, ::2] = rows
    mapped.flush()
    view = np.memmap(tmp_path / "pool.bin", dtype=np.float32, mode="r", shape=(3000, 96))[:, ::2]
    want = _sketch.build_sketch(rows, 8)
    got = _sketch.build_sketch(view, 8)
    np.testing.assert_array_equal(got.z, want.z)
    np.testing.assert_array_equal(got.r, want.r)
    np.testing.assert_array_equal(got.slack, want.slack)


@pytest.mark.parametrize("factored", [False, True])
def test_chunks_built_side_by_side_give_the_one_thread_sketch(monkeypatch, factored):
    rng = np.random.default_rng(23)
    rows = low_rank_pool(rng, 5000, 40, 5, 0.1).astype(np.float32)
    pool = FactoredArrays(rng.uniform(0.5, 2.0, 5000).astype(np.float32), rows) if factored else rows
    monkeypatch.setattr(_sketch, "BUILD_CHUNK_BYTES", 8 * 40 * 300)  # 17 chunks
    monkeypatch.setattr(_sketch._threads, "get_num_threads", lambda: 1)
    want = _sketch.build_sketches(pool, (4, 12))
    monkeypatch.setattr(_sketch._threads, "get_num_threads", lambda: 3)
    got = _sketch.build_sketches(pool, (4, 12))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a.z, b.z)
        np.testing.assert_array_equal(a.r, b.r)
        np.testing.assert_array_equal(a.slack, b.slack)


def test_numba_compiled_test_agrees_with_the_vectorised_one():
    numba = pytest.importorskip("numba")
    keeps = numba.njit(_sketch.sketch_keeps)
    rng = np.random.default_rng(20)
    pool = near_pairs(low_rank_pool(rng, 200, 16, 3, 0.2), rng, 20).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 4)
    for c in (0, 50, 210):
        d_hat = brute_sq_distances(pool, c)
        for D in (d_hat, np.nextafter(d_hat, np.float32(np.inf)), 0.5 * d_hat, 2 * d_hat):
            want = _sketch.sketch_keeps_all(sketch, c, D)
            got = [keeps(sketch.z, sketch.r, sketch.slack, i, c, sketch.scale, sketch.tau, D[i]) for i in range(len(D))]
            plain = [_sketch.sketch_keeps(sketch.z, sketch.r, sketch.slack, i, c, sketch.scale, sketch.tau, D[i])
                     for i in range(0, len(D), 9)]
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(plain, want[::9])


def test_energy_grows_with_the_width_and_is_reported():
    rng = np.random.default_rng(21)
    pool = low_rank_pool(rng, 1000, 32, 8, 0.05).astype(np.float32)
    energies = [_sketch.build_sketch(pool, k).energy for k in (1, 4, 8, 16)]
    assert energies == sorted(energies) and energies[2] > 0.99


def test_bad_inputs_are_named():
    rng = np.random.default_rng(22)
    with pytest.raises(ValueError, match="BADGE"):
        _sketch.build_sketch(FactoredArrays(rng.random((10, 3)), rng.random((10, 4))), 2)
    with pytest.raises(ValueError, match="sketch width"):
        _sketch.build_sketch(rng.random((10, 4)), 5)
    with pytest.raises(ValueError, match="directions"):
        _sketch.build_sketch(rng.random((10, 4)), 2, directions=(np.zeros(4), np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        _sketch.build_sketch(rng.random(10), 2)


def compile_header_probe(tmp_path_factory, *flags):
    compiler = shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the csrc/common/sketch_bound.h probe")
    root = pathlib.Path(__file__).resolve().parents[1] / "csrc"
    lib = tmp_path_factory.mktemp("sketch_capi") / "sketch_capi.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", *flags, f"-I{root}", str(root / "tests" / "sketch_bound_capi.cpp"),
                    "-o", str(lib)], check=True)
    probe = ctypes.CDLL(str(lib)).sketch_keeps_rows
    probe.restype = None

    def keeps(sketch, c, D):
        n, k = sketch.z.shape
        out = np.zeros(n, dtype=np.uint8)
        probe(*(np.ctypeslib.as_ctypes(np.ascontiguousarray(a)) for a in (sketch.z, sketch.r, sketch.slack)),
              ctypes.c_int64(n), ctypes.c_int64(k), ctypes.c_int64(c), ctypes.c_float(sketch.scale),
              ctypes.c_float(sketch.tau), np.ctypeslib.as_ctypes(np.ascontiguousarray(D, dtype=np.float64)),
              np.ctypeslib.as_ctypes(out))
        return out.astype(bool)

    return keeps


@pytest.fixture(scope="module")
def header_native(tmp_path_factory):
    return compile_header_probe(tmp_path_factory, "-march=native")


@pytest.fixture(scope="module")
def header_uncontracted(tmp_path_factory):
    return compile_header_probe(tmp_path_factory, "-ffp-contract=off")


def test_cpp_header_never_skips_a_lowering_row(header_native):
    rng = np.random.default_rng(23)
    pool = np.concatenate([low_rank_pool(rng, 150, 16, 3, 0.0), low_rank_pool(rng, 150, 16, 5, 0.3)])
    pool = near_pairs(pool, rng, 30).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 8)
    for c in range(0, len(pool), 5):
        d_hat = brute_sq_distances(pool, c)
        assert not header_native(sketch, c, np.nextafter(d_hat, np.float32(np.inf))).any()
        np.testing.assert_array_equal(header_native(sketch, c, np.full(len(pool), np.inf)), False)
        assert header_native(sketch, c, 0.5 * d_hat).sum() > len(pool) // 2


def test_cpp_header_decides_as_the_python_test(header_uncontracted):
    rng = np.random.default_rng(24)
    pool = near_pairs(low_rank_pool(rng, 200, 12, 3, 0.05), rng, 20).astype(np.float32)
    sketch = _sketch.build_sketch(pool, 4)
    for c in (0, 33, 210):
        d_hat = brute_sq_distances(pool, c)
        for D in (d_hat, np.nextafter(d_hat, np.float32(np.inf)), 0.9 * d_hat, d_hat.astype(np.float64) * (1 - 1e-9)):
            want = [_sketch.sketch_keeps(sketch.z, sketch.r, sketch.slack, i, c, sketch.scale, sketch.tau, D[i])
                    for i in range(len(D))]
            np.testing.assert_array_equal(header_uncontracted(sketch, c, D), want)


def test_predicted_fractions_separate_low_rank_pools_from_noise():
    rng = np.random.default_rng(25)
    low_rank = low_rank_pool(rng, 5000, 64, 4, 0.01).astype(np.float32)
    noise = rng.standard_normal((5000, 64)).astype(np.float32)
    low = _sketch.predicted_fractions(low_rank, 200, widths=(8, 16))
    high = _sketch.predicted_fractions(noise, 200, widths=(8, 16))
    assert max(low.values()) < 0.05 and min(high.values()) > 0.5
    mu, basis, spectrum = _sketch.sample_directions(low_rank, 16)
    assert _sketch.predicted_fractions(low_rank, 200, widths=(8, 16), directions=(mu, basis)) == low
    assert _sketch.energy_captured(spectrum, 8) > 0.99
    reused = _sketch.build_sketch(low_rank, 8, directions=(mu, basis[:, :8]))
    np.testing.assert_array_equal(reused.z, _sketch.build_sketch(low_rank, 8).z)
    w, f = factored_uwe(rng, 3000, 40)
    fact = _sketch.predicted_fractions(FactoredArrays(w, f), 100, widths=(4, 64))
    assert set(fact) == {4} and 0.0 <= fact[4] <= 1.0


def test_best_width_weighs_sketch_bytes_against_evaluated_rows():
    assert _sketch.best_width({8: 0.28, 16: 0.076, 32: 0.056, 64: 0.035}, 512) == pytest.approx((16, 19 / 513 + 0.076))
    assert _sketch.best_width({8: 1.0, 16: 1.0}, 512)[0] == 8
    assert _sketch.best_width({8: 0.0, 16: 0.0}, 64) == pytest.approx((8, 11 / 65))
