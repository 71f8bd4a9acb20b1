"""cpp's brute force, pruned and auto are one algorithm: the same picks and bit-identical
distances on every input, near-ties and exact duplicates included, because every path evaluates
a row with the same function and the labelled-set pass sums in the per-row pass's order."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import reference
from uwe_kernels._arrays import BFLOAT16
from uwe_kernels.cpp import pruned

DTYPES = [np.dtype(np.float16), BFLOAT16, np.dtype(np.float32), np.dtype(np.float64)]
ALGORITHMS = ("brute", "pruned", "auto")
MODES = ("adaptive", "pruned", "plain")


def near_tie_pool(n: int, d: int, seed: int, dtype: np.dtype) -> np.ndarray:
    """Clusters of nearly equal rows, each repeated: distances that differ in the last bits."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 20, 2), d))
    rows = centres[rng.integers(0, len(centres), n)] + 1e-6 * rng.standard_normal((n, d))
    rows[rng.integers(0, n, n // 5)] = rows[rng.integers(0, n, n // 5)]  # exact duplicates
    return rows.astype(dtype)


def kcg(pool: np.ndarray, labelled: np.ndarray | None, budget: int, algorithm: str, first: int | None = None):
    return uk.kcenter_greedy(pool, labelled, budget, first=first, backend="cpp", algorithm=algorithm,
                             return_distances=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("d", [1, 7, 19, 33, 70])
@pytest.mark.parametrize("with_labelled", [False, True])
def test_kcenter_greedy_picks_and_distances_are_bit_identical(dtype, d, with_labelled) -> None:
    pool = near_tie_pool(400, d, seed=d, dtype=dtype)
    labelled = np.arange(0, 400, 37) if with_labelled else None
    picks, dists = kcg(pool, labelled, 60, "brute")
    for algorithm in ALGORITHMS[1:]:
        p, q = kcg(pool, labelled, 60, algorithm)
        np.testing.assert_array_equal(p, picks, err_msg=algorithm)
        assert np.asarray(q).tobytes() == np.asarray(dists).tobytes(), algorithm
    for mode in MODES:  # every engine mode, the labelled rows given as a mask
        mask = np.zeros(400, dtype=bool)
        if labelled is not None:
            mask[labelled] = True
        p, q, _ = pruned.kcenter_greedy_stats(pool, mask, 60, None, mode=mode)
        np.testing.assert_array_equal(p, picks, err_msg=mode)
        assert q.astype(dists.dtype).tobytes() == np.asarray(dists).tobytes(), mode


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("first", ["max_norm", "random", 5])
def test_kmeans_pp_picks_are_identical(dtype, first) -> None:
    pool = near_tie_pool(500, 21, seed=3, dtype=dtype)
    # An explicit first index applies only when nothing is labelled.
    for labelled in (None,) if isinstance(first, int) else (None, np.arange(0, 500, 41)):
        picks = uk.kmeans_pp(pool, 40, labelled_idx=labelled, seed=11, first=first, backend="cpp",
                             algorithm="brute")
        for algorithm in ALGORITHMS[1:]:
            other = uk.kmeans_pp(pool, 40, labelled_idx=labelled, seed=11, first=first, backend="cpp",
                                 algorithm=algorithm)
            np.testing.assert_array_equal(other, picks, err_msg=algorithm)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("d", [5, 8, 19, 40, 129])
def test_labelled_pass_sums_in_the_per_row_order(dtype, d) -> None:
    # One labelled row c: D from the labelled pass must be the bits the per-row pass gives when
    # c is the first pick instead.
    rng = np.random.default_rng(d)
    pool = (rng.standard_normal((300, d)) * rng.uniform(0.1, 10, (300, 1))).astype(dtype)
    for algorithm in ALGORITHMS:
        p_lab, d_lab = kcg(pool, [17], 6, algorithm)
        p_row, d_row = kcg(pool, None, 7, algorithm, first=17)
        np.testing.assert_array_equal(p_lab, p_row[1:], err_msg=algorithm)
        assert np.asarray(d_lab).tobytes() == np.asarray(d_row[1:]).tobytes(), algorithm


def exact_tie_pool(seed: int) -> np.ndarray:
    """7 x 19 float32 rows; row 4 is row 2 with coordinates l and 8 + l swapped: the same squared
    norm exactly (float64 sums of these squares are exact), float32 sums that round by order."""
    rng = np.random.default_rng(seed)
    pool = (rng.integers(-2**8, 2**8, (7, 19)) / 2**10).astype(np.float32)
    pool[0] = 0
    pool[2] = rng.integers(2**19, 2**20, 19) * rng.choice([-1, 1], 19) / 2**10
    swapped = pool[2].copy()
    swapped[[0, 8, 3, 11, 5, 13]] = swapped[[8, 0, 11, 3, 13, 5]]
    pool[4] = swapped
    return pool


@pytest.mark.parametrize("seed", range(12))
def test_exact_tie_lowest_index_wins_on_every_path(seed) -> None:
    pool = exact_tie_pool(seed)
    exact = (pool.astype(np.float64) ** 2).sum(axis=1)
    assert exact[2] == exact[4]
    expected = reference.kcenter_greedy(pool, np.array([True] + [False] * 6), 3, None)[0]
    assert int(expected[0]) == 2
    for algorithm in ALGORITHMS:
        picks, _ = kcg(pool, [0], 3, algorithm)
        assert int(picks[0]) == 2, algorithm
        np.testing.assert_array_equal(picks, expected, err_msg=algorithm)


def test_factored_near_ties_are_bit_identical() -> None:
    rng = np.random.default_rng(5)
    base_f = rng.standard_normal((40, 13)).astype(np.float32)
    base_s = rng.standard_normal((40, 4)).astype(np.float32)
    order = rng.integers(0, 40, 300)
    features, scores = base_f[order], base_s[order]
    for emb in (uk.uwe_factored(scores, features), uk.badge_factored(scores, features)):
        picks, dists = kcg(emb, [0, 1, 2], 30, "brute")
        for algorithm in ALGORITHMS[1:]:
            p, q = kcg(emb, [0, 1, 2], 30, algorithm)
            np.testing.assert_array_equal(p, picks, err_msg=algorithm)
            assert np.asarray(q).tobytes() == np.asarray(dists).tobytes(), algorithm


# ------------------------------------------------------------------ pools read in place
def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("algorithm", ["pruned", "auto"])
def test_strided_pool_is_read_in_place(algorithm) -> None:
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((100000, 128)).astype(np.float32)
    view = wide[:, ::2]  # 25.6 MB of rows with element stride 8 bytes
    picks = uk.kcenter_greedy(view, None, 20, backend="cpp", algorithm="brute")
    got = {}
    peak = peak_bytes(lambda: got.setdefault("picks", uk.kcenter_greedy(view, None, 20, backend="cpp",
                                                                       algorithm=algorithm)))
    np.testing.assert_array_equal(got["picks"], picks)
    assert peak < view.nbytes // 4, f"{peak} bytes allocated for a {view.nbytes}-byte pool"


def test_memmap_pool_is_read_in_place(tmp_path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "pool.npy"
    np.save(path, rng.standard_normal((20000, 96)).astype(np.float32))
    pool = np.load(path, mmap_mode="r")[:, 1::3]
    picks = uk.kmeans_pp(pool, 15, seed=2, backend="cpp", algorithm="brute")
    got = {}
    peak = peak_bytes(lambda: got.setdefault("picks", uk.kmeans_pp(pool, 15, seed=2, backend="cpp",
                                                                  algorithm="pruned")))
    np.testing.assert_array_equal(got["picks"], picks)
    assert peak < pool.shape[0] * pool.shape[1] * 4 // 4


def test_empty_pool_behaves_as_brute_force() -> None:
    pool = np.zeros((0, 5), dtype=np.float32)
    outcomes = []
    for algorithm in ALGORITHMS:
        try:
            outcomes.append(("ok", np.asarray(uk.kcenter_greedy(pool, None, 0, backend="cpp",
                                                                algorithm=algorithm)).tolist()))
        except Exception as exc:  # the message must be brute force's, whatever it is
            outcomes.append((type(exc).__name__, str(exc)))
    assert outcomes[1:] == outcomes[:1] * 2
    assert "unit element stride" not in str(outcomes)
