from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import uwe_kernels as uk  # noqa: E402
from uwe_kernels import _driver, reference  # noqa: E402
from uwe_kernels._arrays import BFLOAT16  # noqa: E402
from uwe_kernels.numba import pruned  # noqa: E402
from uwe_kernels.numba import select as nsel  # noqa: E402

from helpers import clustered_pool, gaussian_pool  # noqa: E402

DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BFLOAT16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


def acc(x: np.ndarray) -> type:
    return np.float64 if x.dtype == np.float64 else np.float32


def make_pool(kind: str, n: int, d: int, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    if kind == "clustered":
        return clustered_pool(n, d, clusters=12, seed=seed, dtype=dtype)
    if kind == "isotropic":
        return gaussian_pool(n, d, seed=seed, dtype=dtype)
    if kind == "duplicates":
        base = clustered_pool(n // 3, d, clusters=6, seed=seed, dtype=dtype)
        return base[np.random.default_rng(seed).permutation(n) % len(base)]
    raise AssertionError(kind)


def labelled(n: int, count: int, seed: int = 0) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed + 7).choice(n, count, replace=False)] = True
    return mask


def brute_kcg(x: np.ndarray, mask: np.ndarray, budget: int, first: int | None = None):  # type: ignore[no-untyped-def]
    return nsel.kcenter_greedy(x, mask, budget, first, algorithm="brute", progress=None, accum_dtype=acc(x))


def brute_kmpp(x: np.ndarray, mask: np.ndarray, budget: int, seed: int, first: object):  # type: ignore[no-untyped-def]
    return nsel.kmeans_pp(x, mask, budget, seed, first, algorithm="brute", progress=None, accum_dtype=acc(x))


def check_kcg(x: np.ndarray, mask: np.ndarray, budget: int, first: int | None = None) -> dict:
    """Every mode gives brute's picks and bit-identical distances; returns adaptive's stats."""
    want, want_d = brute_kcg(x, mask, budget, first)
    out = {}
    for mode in pruned.MODES:
        picks, dists, stats = pruned.kcenter_greedy_stats(x, mask, budget, first, mode=mode)
        np.testing.assert_array_equal(picks, want, err_msg=mode)
        np.testing.assert_array_equal(dists, want_d, err_msg=mode)
        out[mode] = stats
    return out["adaptive"]


def check_kmpp(x: np.ndarray, mask: np.ndarray, budget: int, seed: int, first: object) -> np.ndarray:
    want = brute_kmpp(x, mask, budget, seed, first)
    for mode in pruned.MODES:
        picks, _ = pruned.kmeans_pp_stats(x, mask, budget, seed, first, mode=mode)
        np.testing.assert_array_equal(picks, want, err_msg=mode)
    return want


CASES = [("clustered", 0), ("isotropic", 6), ("duplicates", 0), ("duplicates", 5)]


@pytest.mark.parametrize("kind,n_labelled", CASES, ids=[f"{k}-{m}" for k, m in CASES])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_kcenter_matches_brute_and_reference(dtype: str, kind: str, n_labelled: int) -> None:
    x = make_pool(kind, 600, 19, DTYPES[dtype], seed=3)
    mask = labelled(len(x), n_labelled)
    stats = check_kcg(x, mask, 40)
    ref_picks, ref_dists = reference.kcenter_greedy(x, mask, 40, None)
    picks, dists = pruned.kcenter_greedy_pruned(x, mask, 40, None)
    np.testing.assert_array_equal(picks, ref_picks)
    np.testing.assert_allclose(dists, ref_dists, rtol=1e-4 if dtype != "float64" else 1e-12, atol=1e-6)
    assert stats["centres"] == 39 + n_labelled


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_kmeans_matches_brute_and_reference(dtype: str) -> None:
    x = make_pool("clustered", 500, 17, DTYPES[dtype], seed=4)
    for seed, first in ((0, "max_norm"), (1, "random"), (2, 123)):
        want = check_kmpp(x, np.zeros(len(x), bool), 30, seed, first)
        np.testing.assert_array_equal(want, reference.kmeans_pp(x, np.zeros(len(x), bool), 30, seed, first))
    mask = labelled(len(x), 7)
    want = check_kmpp(x, mask, 30, 5, "max_norm")
    np.testing.assert_array_equal(want, reference.kmeans_pp(x, mask, 30, 5, "max_norm"))


@pytest.mark.parametrize("kind", ["isotropic", "duplicates"])
def test_kmeans_other_pools(kind: str) -> None:
    x = make_pool(kind, 450, 12, np.dtype(np.float32), seed=6)
    for seed in (3, 11):
        check_kmpp(x, labelled(len(x), 4 * (seed % 2)), 25, seed, "random")


def test_adaptive_switches_on_noise_and_back() -> None:
    # Isotropic noise in many dimensions: pruning touches nearly every row, so adaptive mode
    # goes plain after the first probe, rebuilds its lists after the stretch and probes again.
    x = gaussian_pool(400, 48, seed=9)
    budget = pruned.FIRST_PROBE + pruned.FIRST_PLAIN_STRETCH + pruned.PROBE + 10
    stats = check_kcg(x, np.zeros(len(x), bool), budget)
    assert stats["switched_at"] >= pruned.FIRST_PROBE
    assert stats["plain_centres"] >= pruned.FIRST_PLAIN_STRETCH
    check_kmpp(x, np.zeros(len(x), bool), budget, 7, "max_norm")


def test_parallel_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pools here are small; force the parallel row evaluation of large pools.
    monkeypatch.setattr(pruned, "PARALLEL_MIN", 0)
    for x in (make_pool("clustered", 700, 21, np.dtype(np.float32), seed=2), gaussian_pool(500, 21, seed=2)):
        check_kcg(x, labelled(len(x), 2), 40)
        check_kmpp(x, np.zeros(len(x), bool), 40, 5, "random")


def test_clustered_pool_touches_few_rows() -> None:
    x = clustered_pool(3000, 16, clusters=30, seed=2, spread=0.1)
    stats = check_kcg(x, np.zeros(len(x), bool), 60)
    assert stats["switched_at"] == -1
    assert stats["rows_touched"] < 0.5 * 59 * len(x)


@pytest.mark.parametrize("n,d,budget,n_labelled", [
    (1, 3, 1, 0), (1, 3, 0, 0), (2, 1, 1, 1), (50, 4, 50, 0), (50, 4, 44, 6), (300, 1, 30, 0), (200, 129, 20, 3),
], ids=["n1", "n1-b0", "n2-lab", "all", "all-lab", "d1", "d129"])
def test_odd_shapes(n: int, d: int, budget: int, n_labelled: int) -> None:
    x = clustered_pool(n, d, clusters=5, seed=n + d) if n > 1 else np.ones((n, d), np.float32)
    mask = labelled(n, n_labelled)
    check_kcg(x, mask, budget)
    if budget:
        check_kmpp(x, mask, budget, 1, "max_norm")
        check_kmpp(x, mask, budget, 2, "random")


def test_all_rows_identical() -> None:
    x = np.full((40, 5), 0.25, np.float32)
    check_kcg(x, np.zeros(40, bool), 40)
    check_kcg(x, labelled(40, 3), 20)
    check_kmpp(x, np.zeros(40, bool), 40, 3, "random")


def test_first_index() -> None:
    x = make_pool("clustered", 300, 8, np.dtype(np.float32))
    check_kcg(x, np.zeros(len(x), bool), 25, first=77)


def test_strided_inputs() -> None:
    base = make_pool("clustered", 1200, 30, np.dtype(np.float32), seed=8)
    for x in (base[::2, ::3], base[::-2]):
        assert not x.flags.c_contiguous
        check_kcg(x, labelled(len(x), 3), 25)
        check_kmpp(x, np.zeros(len(x), bool), 25, 4, "random")
        np.testing.assert_array_equal(pruned.kcenter_greedy_pruned(x, np.zeros(len(x), bool), 25, None)[0],
                                      reference.kcenter_greedy(x, np.zeros(len(x), bool), 25, None)[0])


def test_inputs_not_modified_and_read_only() -> None:
    x = make_pool("clustered", 400, 10, np.dtype(np.float32), seed=1)
    mask = labelled(len(x), 4)
    x0, mask0 = x.copy(), mask.copy()
    x.flags.writeable = False
    pruned.kcenter_greedy_stats(x, mask, 30, None)
    pruned.kmeans_pp_stats(x, mask, 30, 0, "max_norm")
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(mask, mask0)


def test_properties() -> None:
    x = make_pool("duplicates", 500, 9, np.dtype(np.float32), seed=2)
    mask = labelled(len(x), 20)
    lab = set(np.flatnonzero(mask))
    for _ in range(2):
        picks, dists, _ = pruned.kcenter_greedy_stats(x, mask, 200, None)
        assert len(set(picks)) == 200 and picks.min() >= 0 and picks.max() < len(x) and not set(picks) & lab
        assert np.all(np.diff(dists) <= 0)
        again = pruned.kcenter_greedy_stats(x, mask, 200, None)[0]
        np.testing.assert_array_equal(picks, again)
        km = pruned.kmeans_pp_stats(x, mask, 200, 9, "random")[0]
        assert len(set(km)) == 200 and not set(km) & lab
        np.testing.assert_array_equal(km, pruned.kmeans_pp_stats(x, mask, 200, 9, "random")[0])


def test_progress_is_time_based(monkeypatch: pytest.MonkeyPatch) -> None:
    x = make_pool("clustered", 400, 6, np.dtype(np.float32))
    calls: list[int] = []
    pruned.kcenter_greedy_stats(x, np.zeros(len(x), bool), 100, None, progress=calls.append)
    assert calls and calls[-1] == 100 and len(calls) < 100
    calls.clear()
    monkeypatch.setattr(_driver, "PROGRESS_EVERY_S", 0.0)
    pruned.kmeans_pp_stats(x, np.zeros(len(x), bool), 50, 0, "max_norm", progress=calls.append)
    assert calls[-1] == 50 and calls == sorted(calls)


def test_bad_input() -> None:
    x = make_pool("clustered", 50, 4, np.dtype(np.float32))
    with pytest.raises(ValueError, match="budget"):
        pruned.kcenter_greedy_stats(x, labelled(50, 5), 46, None)
    with pytest.raises(ValueError, match="first"):
        pruned.kmeans_pp_stats(x, np.zeros(50, bool), 3, 0, 50)
    with pytest.raises(ValueError, match="mode"):
        pruned.kcenter_greedy_stats(x, np.zeros(50, bool), 3, None, mode="fast")
    with pytest.raises(ValueError, match="2-D"):
        pruned.kcenter_greedy_stats(x[:, 0], np.zeros(50, bool), 3, None)


def test_public_api() -> None:
    x = make_pool("clustered", 700, 12, np.dtype(np.float32), seed=5)
    lab = [3, 99, 500]
    want, want_d = uk.kcenter_greedy(x, lab, 30, algorithm="brute", backend="numba", return_distances=True)
    got, got_d = uk.kcenter_greedy(x, lab, 30, algorithm="pruned", backend="numba", return_distances=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_d, want_d)
    np.testing.assert_array_equal(uk.kcenter_greedy(x, lab, 30, algorithm="pruned", backend="numba"),
                                  uk.kcenter_greedy(x, lab, 30, backend="reference"))
    for first in ("max_norm", "random", 7):
        np.testing.assert_array_equal(
            uk.kmeans_pp(x, 25, seed=2, first=first, algorithm="pruned", backend="numba"),
            uk.kmeans_pp(x, 25, seed=2, first=first, algorithm="brute", backend="numba"))


def test_factored_is_refused_naming_dense() -> None:
    scores = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    feats = gaussian_pool(40, 5)
    emb = uk.badge_factored(scores, feats, backend="numba")
    with pytest.raises(uk.BackendUnavailable, match="dense"):
        uk.kmeans_pp(emb, 5, algorithm="pruned", backend="numba")
    # auto still runs it (brute) on numba
    np.testing.assert_array_equal(uk.kmeans_pp(emb, 5, algorithm="auto", backend="numba"),
                                  uk.kmeans_pp(emb, 5, algorithm="brute", backend="numba"))


def test_choose_algorithm() -> None:
    assert nsel.choose_algorithm(clustered_pool(8000, 16, clusters=30, seed=1, spread=0.1)) == "pruned"
    assert nsel.choose_algorithm(gaussian_pool(8000, 64, seed=1)) == "brute"
    assert nsel.choose_algorithm(gaussian_pool(100, 8, seed=1)) == "brute"
