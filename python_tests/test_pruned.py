from __future__ import annotations

import numpy as np
import pytest

import uwe_kernels
from uwe_kernels import _pruning, reference
from uwe_kernels._arrays import BFLOAT16
from uwe_kernels.cpp import pruned, select
from uwe_kernels.factored import FactoredArrays

from helpers import clustered_pool, gaussian_pool

DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BFLOAT16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
MODES = ("adaptive", "pruned", "plain")


def make_pool(kind: str, n: int, d: int, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    if kind == "clustered":
        return clustered_pool(n, d, clusters=25, seed=seed, dtype=dtype)
    if kind == "isotropic":
        return gaussian_pool(n, d, seed=seed, dtype=dtype)
    if kind == "duplicates":
        base = clustered_pool(n // 3, d, clusters=8, seed=seed, dtype=dtype)
        order = np.random.default_rng(seed).permutation(n) % len(base)
        return base[order]
    raise AssertionError(kind)


def labelled(n: int, count: int, seed: int = 0) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed + 7).choice(n, count, replace=False)] = True
    return mask


@pytest.mark.parametrize("n_labelled", [0, 6], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("kind", ["clustered", "isotropic", "duplicates"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_kcenter_matches_reference(dtype: str, kind: str, n_labelled: int) -> None:
    x = make_pool(kind, 901, 41, DTYPES[dtype], seed=3)
    mask = labelled(len(x), n_labelled)
    want_picks, want_dists = reference.kcenter_greedy(x, mask, 90, None)
    plain_picks, plain_dists, _ = pruned.kcenter_greedy_stats(x, mask, 90, None, mode="plain")
    np.testing.assert_array_equal(plain_picks, want_picks)
    np.testing.assert_allclose(plain_dists, want_dists, rtol=1e-4 if dtype != "float64" else 1e-12, atol=1e-6)
    for mode in ("pruned", "adaptive"):
        picks, dists, stats = pruned.kcenter_greedy_stats(x, mask, 90, None, mode=mode)
        np.testing.assert_array_equal(picks, plain_picks, err_msg=mode)
        np.testing.assert_array_equal(dists, plain_dists, err_msg=mode)
        assert stats["centres"] == 89 + n_labelled


@pytest.mark.parametrize("kind", ["clustered", "isotropic", "duplicates"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_kcenter_matches_public_reference_backend(dtype: str, kind: str) -> None:
    x = make_pool(kind, 777, 24, DTYPES[dtype], seed=5)
    mask = labelled(len(x), 4, seed=1)
    want = uwe_kernels.kcenter_greedy(x, np.flatnonzero(mask), 90, backend="reference")
    got = pruned.kcenter_greedy_pruned(x, mask, 90, None, progress=None, accum_dtype=np.float32)[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("first", ["max_norm", "random", 17])
@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5])
@pytest.mark.parametrize("n_labelled", [0, 5], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_kmeans_pp_matches_reference(dtype: str, n_labelled: int, seed: int, first: object) -> None:
    x = make_pool("clustered", 603, 29, DTYPES[dtype], seed=11)
    mask = labelled(len(x), n_labelled, seed=seed % 97)
    want = reference.kmeans_pp(x, mask, 50, seed, first)
    for mode in MODES:
        got, _ = pruned.kmeans_pp_stats(x, mask, 50, seed, first, mode=mode)
        np.testing.assert_array_equal(got, want, err_msg=mode)


@pytest.mark.parametrize("seed", [0, 3, 12345])
def test_kmeans_pp_matches_public_reference_backend(seed: int) -> None:
    x = make_pool("isotropic", 640, 18, DTYPES["float32"], seed=seed)
    want = uwe_kernels.kmeans_pp(x, 70, seed=seed, first="random", backend="reference")
    got = pruned.kmeans_pp_pruned(x, np.zeros(len(x), bool), 70, seed, "random", progress=None,
                                  accum_dtype=np.float32)
    np.testing.assert_array_equal(got, want)


def test_kmeans_pp_all_duplicates_draws_uniformly_like_reference() -> None:
    x = np.repeat(gaussian_pool(1, 5, seed=2), 50, axis=0)
    for seed in (0, 9):
        want = reference.kmeans_pp(x, np.zeros(50, bool), 20, seed, "random")
        got, _ = pruned.kmeans_pp_stats(x, np.zeros(50, bool), 20, seed, "random", mode="pruned")
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["pruned", "adaptive"])
def test_kcenter_clustered_touches_few_rows(mode: str) -> None:
    x = clustered_pool(20000, 64, clusters=40, seed=1, spread=0.2)
    budget = 400
    want, _ = pruned.kcenter_greedy_stats(x, np.zeros(len(x), bool), budget, None, mode="plain")[:2]
    picks, _, stats = pruned.kcenter_greedy_stats(x, np.zeros(len(x), bool), budget, None, mode=mode)
    np.testing.assert_array_equal(picks, want)
    assert stats["plain_centres"] == 0
    assert stats["rows_touched"] < 0.2 * len(x) * budget
    assert stats["values_read"] < 0.2 * len(x) * budget * x.shape[1]


def test_kmeans_pp_clustered_touches_few_rows() -> None:
    x = clustered_pool(20000, 64, clusters=40, seed=2, spread=0.2)
    want, _ = pruned.kmeans_pp_stats(x, np.zeros(len(x), bool), 300, 4, "max_norm", mode="plain")
    picks, stats = pruned.kmeans_pp_stats(x, np.zeros(len(x), bool), 300, 4, "max_norm", mode="adaptive")
    np.testing.assert_array_equal(picks, want)
    assert stats["rows_touched"] < 0.3 * len(x) * 300


def test_adaptive_goes_plain_on_isotropic_noise() -> None:
    x = gaussian_pool(4000, 256, seed=4)
    want = reference.kcenter_greedy(x, np.zeros(len(x), bool), 100, None)[0]
    picks, _, stats = pruned.kcenter_greedy_stats(x, np.zeros(len(x), bool), 100, None, mode="adaptive")
    np.testing.assert_array_equal(picks, want)
    assert 0 < stats["switched_at"] <= 40
    assert 0.5 * stats["centres"] < stats["plain_centres"] < stats["centres"] - 32


def test_plain_mode_touches_every_live_row() -> None:
    x = gaussian_pool(500, 8, seed=1)
    _, _, stats = pruned.kcenter_greedy_stats(x, np.zeros(500, bool), 10, None, mode="plain")
    assert stats["rows_touched"] == sum(500 - k for k in range(1, 10))


@pytest.mark.parametrize(
    "view",
    [
        lambda x: x[::2],
        lambda x: x[::-1],
        lambda x: x[:, ::2],
        lambda x: np.asfortranarray(x),
        lambda x: np.broadcast_to(x[:1], (40, x.shape[1])),
    ],
    ids=["row_step", "reversed", "column_step", "fortran", "zero_stride"],
)
def test_any_strides(view) -> None:
    x = view(clustered_pool(600, 33, clusters=9, seed=8))
    mask = np.zeros(len(x), bool)
    want = reference.kcenter_greedy(x, mask, 30, None)[0]
    got = pruned.kcenter_greedy_pruned(x, mask, 30, None)[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(pruned.kmeans_pp_pruned(x, mask, 30, 5, "random"),
                                  reference.kmeans_pp(x, mask, 30, 5, "random"))


@pytest.mark.parametrize(
    "n, d, budget, n_labelled",
    [(1, 1, 1, 0), (1, 7, 0, 0), (123, 1, 123, 0), (123, 5, 118, 5), (9, 300, 4, 2), (2, 17, 1, 1)],
)
def test_odd_shapes(n: int, d: int, budget: int, n_labelled: int) -> None:
    x = gaussian_pool(n, d, seed=n + d)
    mask = labelled(n, n_labelled)
    picks, dists = pruned.kcenter_greedy_pruned(x, mask, budget, None)
    want_picks, want_dists = reference.kcenter_greedy(x, mask, budget, None)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_allclose(dists, want_dists, rtol=1e-4)
    assert picks.dtype == np.int64 and dists.dtype == np.float64
    np.testing.assert_array_equal(pruned.kmeans_pp_pruned(x, mask, budget, 1, "max_norm"),
                                  reference.kmeans_pp(x, mask, budget, 1, "max_norm"))


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_properties(dtype: str) -> None:
    x = make_pool("clustered", 2000, 48, DTYPES[dtype], seed=21)
    mask = labelled(len(x), 10, seed=3)
    picks, dists = pruned.kcenter_greedy_pruned(x, mask, 300, None)
    assert len(np.unique(picks)) == 300
    assert not mask[picks].any()
    assert ((picks >= 0) & (picks < len(x))).all()
    assert np.all(np.diff(dists) <= 0)
    kpicks = pruned.kmeans_pp_pruned(x, mask, 300, 8, "max_norm")
    assert len(np.unique(kpicks)) == 300 and not mask[kpicks].any()
    np.testing.assert_array_equal(kpicks, pruned.kmeans_pp_pruned(x, mask, 300, 8, "max_norm"))


def test_first_pick_given_and_infinite_distance() -> None:
    x = clustered_pool(300, 12, clusters=5, seed=2)
    picks, dists = pruned.kcenter_greedy_pruned(x, np.zeros(300, bool), 25, 42)
    assert picks[0] == 42 and np.isinf(dists[0])
    np.testing.assert_array_equal(picks, reference.kcenter_greedy(x, np.zeros(300, bool), 25, 42)[0])


def test_float64_accumulation_on_float32_pool_matches_reference() -> None:
    x = clustered_pool(800, 40, clusters=12, seed=6)
    want = reference.kcenter_greedy(x, np.zeros(800, bool), 100, None)[0]
    got = pruned.kcenter_greedy_pruned(x, np.zeros(800, bool), 100, None, accum_dtype=np.float64)[0]
    np.testing.assert_array_equal(got, want)


def test_inputs_not_modified() -> None:
    x = clustered_pool(500, 16, clusters=6, seed=3, dtype=np.float16)
    mask = labelled(500, 4)
    x_before, mask_before = x.copy(), mask.copy()
    pruned.kcenter_greedy_pruned(x, mask, 50, None)
    pruned.kmeans_pp_pruned(x, mask, 50, 0, "random")
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(mask, mask_before)


def test_progress_reports_the_budget() -> None:
    seen: list[int] = []
    pruned.kcenter_greedy_pruned(gaussian_pool(300, 8), np.zeros(300, bool), 40, None, progress=seen.append)
    assert seen and seen[-1] == 40 and all(0 <= s <= 40 for s in seen)


def test_factored_is_accepted_and_unreadable_factors_are_refused_with_a_reason() -> None:
    emb = uwe_kernels.FactoredEmbedding(np.ones(10, np.float32), gaussian_pool(10, 4))
    assert pruned.pruned_supported(emb) == []
    picks, _ = pruned.kcenter_greedy_pruned(emb, np.zeros(10, bool), 2, None)
    np.testing.assert_array_equal(picks, reference.kcenter_greedy(emb.materialize(), np.zeros(10, bool), 2, None)[0])
    bad = FactoredArrays(np.ones(10, np.int32), gaussian_pool(10, 4))
    reasons = pruned.pruned_supported(bad)
    assert reasons and "weights" in reasons[0] and "int32" in reasons[0]
    with pytest.raises(ValueError, match="int32"):
        pruned.kcenter_greedy_pruned(bad, np.zeros(10, bool), 2, None)
    listed = FactoredArrays([1.0] * 10, gaussian_pool(10, 4))  # type: ignore[arg-type]
    assert "numpy" in pruned.pruned_supported(listed)[0]


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((4, 3), np.int32), "dtype"),
        (np.zeros(12, np.float32), "2-D"),
    ],
    ids=["int32", "one_dimensional"],
)
def test_bad_pools_are_refused(x: np.ndarray, match: str) -> None:
    assert pruned.pruned_supported(x)
    with pytest.raises(ValueError, match=match):
        pruned.kcenter_greedy_pruned(x, np.zeros(len(x), bool), 1, None)


def test_bad_budget_and_first_are_refused() -> None:
    x = gaussian_pool(10, 3)
    with pytest.raises(ValueError, match="budget"):
        pruned.kcenter_greedy_pruned(x, np.zeros(10, bool), 11, None)
    with pytest.raises(ValueError, match="first"):
        pruned.kmeans_pp_pruned(x, np.zeros(10, bool), 2, 0, 10)
    with pytest.raises(ValueError, match="labelled_mask"):
        pruned.kcenter_greedy_pruned(x, np.zeros(9, bool), 2, None)


GROUPS = ("pruned", "pruned+sketch")


def test_choose_algorithm() -> None:
    # group bounds, with a sketch when the sample says it pays too (uwe_kernels._sketch.choose_bounds)
    assert pruned.choose_algorithm(clustered_pool(20000, 64, clusters=30, seed=1, spread=0.1)) in GROUPS
    assert pruned.choose_algorithm(gaussian_pool(20000, 256, seed=1)) == "brute"
    assert pruned.choose_algorithm(gaussian_pool(100, 8, seed=1)) == "brute"
    emb = uwe_kernels.FactoredEmbedding(np.ones(10, np.float32), gaussian_pool(10, 4))
    assert pruned.choose_algorithm(emb) == "brute"  # too small to pay


def test_choose_algorithm_on_factored_embeddings() -> None:
    for badge in (False, True):
        clustered = factored_pool(8000, 6, 32, badge=badge, clusters=20, spread=0.05, seed=1)
        assert pruned.choose_algorithm(clustered) in GROUPS
        assert pruned.choose_algorithm(clustered.backend_arrays()) in GROUPS
        rng = np.random.default_rng(2)
        w = rng.standard_normal((8000, 6) if badge else 8000).astype(np.float32)
        noise = uwe_kernels.FactoredEmbedding(w, gaussian_pool(8000, 256, seed=3))
        assert pruned.choose_algorithm(noise) == "brute"


def test_factored_sample_distances_match_the_materialised_rows() -> None:
    queries, reference = np.array([0, 7, 300]), np.arange(0, 600, 3)
    for badge in (False, True):
        emb = factored_pool(600, 5, 9, badge=badge, clusters=4, seed=4, dtype=np.float64)
        x = emb.materialize()
        want = ((x[queries][:, None, :] - x[reference][None, :, :]) ** 2).sum(-1)
        got = _pruning._sq_distances(emb, queries, reference)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(_pruning._sq_distances(x, queries, reference), want, rtol=1e-9, atol=1e-9)


def test_float32_sample_distances_survive_a_large_common_offset() -> None:
    # float32 Grams of rows near 1e4: without centring, |x|^2 ~ 5e9 would swamp distances of ~100
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((600, 48)) + 1e4).astype(np.float32)
    queries, reference = np.array([1, 50, 599]), np.arange(0, 600, 2)
    exact = x.astype(np.float64)
    want = ((exact[queries][:, None, :] - exact[reference][None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(_pruning._sq_distances(x, queries, reference), want, rtol=1e-4, atol=1e-3)


def test_many_clusters_still_look_clustered() -> None:
    # 1,000 clusters: a small self-sample has almost no pair from one cluster and looks like
    # noise; the reference rows must be many enough to find each query a cluster mate.
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((1000, 128)) * 4.0
    x = (centres[rng.integers(0, 1000, 40_000)] + 0.3 * rng.standard_normal((40_000, 128))).astype(np.float32)
    assert _pruning.looks_clustered(x)
    assert not _pruning.looks_clustered(rng.standard_normal((40_000, 32)).astype(np.float32))


def test_sample_rows_are_spread_and_never_pair_a_row_with_itself() -> None:
    for n in (4096, 5000, 1_000_000):
        queries, reference = _pruning._sample_rows(n)
        assert queries.min() > 0 and queries.max() < n - 1 and len(queries) == _pruning.QUERY_ROWS
        assert reference[0] == 0 and reference[-1] == n - 1 and len(reference) == min(n, _pruning.REFERENCE_ROWS)
    dup = np.repeat(gaussian_pool(2048, 64, seed=6), 2, axis=0)  # every row twice: nearest is 0
    assert _pruning.looks_clustered(dup)


# ---------------------------------------------------------------- through the public functions


@pytest.mark.parametrize("algorithm", ["pruned", "auto"])
def test_public_functions_route_to_the_pruned_kernels(algorithm: str) -> None:
    x = clustered_pool(6000, 32, clusters=20, seed=4, spread=0.1)
    lab = np.arange(0, 6000, 997)
    want_kcg = uwe_kernels.kcenter_greedy(x, lab, 60, algorithm="brute", backend="cpp")
    got_kcg = uwe_kernels.kcenter_greedy(x, lab, 60, algorithm=algorithm, backend="cpp")
    np.testing.assert_array_equal(got_kcg, want_kcg)
    want_kmpp = uwe_kernels.kmeans_pp(x, 60, labelled_idx=lab, seed=9, algorithm="brute", backend="cpp")
    got_kmpp = uwe_kernels.kmeans_pp(x, 60, labelled_idx=lab, seed=9, algorithm=algorithm, backend="cpp")
    np.testing.assert_array_equal(got_kmpp, want_kmpp)


def test_public_pruned_on_a_factored_embedding_runs_the_factored_kernels() -> None:
    emb = uwe_kernels.FactoredEmbedding(np.ones(10, np.float32), gaussian_pool(10, 4))
    want = uwe_kernels.kcenter_greedy(emb, None, 3, algorithm="brute", backend="cpp")
    np.testing.assert_array_equal(uwe_kernels.kcenter_greedy(emb, None, 3, algorithm="pruned", backend="cpp"), want)
    want = uwe_kernels.kmeans_pp(emb, 3, algorithm="brute", backend="cpp")
    np.testing.assert_array_equal(uwe_kernels.kmeans_pp(emb, 3, algorithm="pruned", backend="cpp"), want)


# ---------------------------------------------------------------- factored embeddings (UWE, BADGE)


def factored_pool(n: int, k: int, d: int, *, badge: bool, clusters: int = 12, spread: float = 0.3, seed: int = 0,
                  dtype: np.dtype = np.dtype(np.float32), from_scores: bool = True) -> uwe_kernels.FactoredEmbedding:
    """UWE / BADGE factors of a clustered pool: features around cluster centres, class logits
    that depend on the cluster (so the weights are clustered too)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, n)
    feats = (4.0 * rng.standard_normal((clusters, d))[labels] + spread * rng.standard_normal((n, d))).astype(dtype)
    scores = (3.0 * rng.standard_normal((clusters, k))[labels] + spread * rng.standard_normal((n, k)))
    if from_scores:
        make = uwe_kernels.badge_factored if badge else uwe_kernels.uwe_factored
        return make(scores.astype(np.float32), feats, backend="cpp")
    w = scores if badge else np.abs(scores[:, 0]) + 0.1
    return uwe_kernels.FactoredEmbedding(w.astype(dtype), feats)


def brute_kcenter(emb: uwe_kernels.FactoredEmbedding, mask: np.ndarray, budget: int,
                  first: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    fa = emb.backend_arrays()
    return select.kcenter_greedy(fa, mask, budget, first, algorithm="brute", progress=None,
                                 accum_dtype=_accum(fa))


def brute_kmeans_pp(emb: uwe_kernels.FactoredEmbedding, mask: np.ndarray, budget: int, seed: int,
                    first: object) -> np.ndarray:
    fa = emb.backend_arrays()
    return select.kmeans_pp(fa, mask, budget, seed, first, algorithm="brute", progress=None,
                            accum_dtype=_accum(fa))


def _accum(fa: FactoredArrays) -> np.dtype:
    return np.dtype(np.float64 if np.float64 in (fa.weights.dtype, fa.features.dtype) else np.float32)


KINDS = ("uwe", "badge")


@pytest.mark.parametrize("n_labelled", [0, 6], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("kind", KINDS)
def test_factored_kcenter_matches_brute_and_reference(kind: str, dtype: str, n_labelled: int) -> None:
    emb = factored_pool(700, 5, 23, badge=kind == "badge", seed=3, dtype=DTYPES[dtype])
    mask = labelled(len(emb), n_labelled)
    want_picks, want_dists = brute_kcenter(emb, mask, 80)
    for mode in MODES:
        picks, dists, stats = pruned.kcenter_greedy_stats(emb, mask, 80, None, mode=mode)
        np.testing.assert_array_equal(picks, want_picks, err_msg=mode)
        np.testing.assert_array_equal(dists, want_dists, err_msg=mode)
        assert stats["centres"] == 79 + n_labelled
    ref = uwe_kernels.kcenter_greedy(emb, np.flatnonzero(mask), 80, backend="reference")
    np.testing.assert_array_equal(want_picks, ref)


@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5])
@pytest.mark.parametrize("n_labelled", [0, 5], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("kind", KINDS)
def test_factored_kmeans_pp_matches_brute(kind: str, dtype: str, n_labelled: int, seed: int) -> None:
    emb = factored_pool(500, 4, 19, badge=kind == "badge", seed=11, dtype=DTYPES[dtype], from_scores=False)
    mask = labelled(len(emb), n_labelled, seed=seed % 97)
    for first in ("max_norm", "random", 17):
        want = brute_kmeans_pp(emb, mask, 45, seed, first)
        for mode in MODES:
            got, _ = pruned.kmeans_pp_stats(emb, mask, 45, seed, first, mode=mode)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} {first}")


@pytest.mark.parametrize("kind", KINDS)
def test_factored_public_api_matches_brute_and_reference(kind: str) -> None:
    emb = factored_pool(900, 6, 31, badge=kind == "badge", seed=5)
    lab = np.array([3, 400, 899])
    for labelled_idx in (None, lab):
        brute = uwe_kernels.kcenter_greedy(emb, labelled_idx, 70, algorithm="brute", backend="cpp")
        got = uwe_kernels.kcenter_greedy(emb, labelled_idx, 70, algorithm="pruned", backend="cpp")
        ref = uwe_kernels.kcenter_greedy(emb, labelled_idx, 70, backend="reference")
        np.testing.assert_array_equal(got, brute)
        np.testing.assert_array_equal(got, ref)
        for seed in (0, 7, 123):
            kw = dict(labelled_idx=labelled_idx, seed=seed, first="random")
            brute = uwe_kernels.kmeans_pp(emb, 60, algorithm="brute", backend="cpp", **kw)
            got = uwe_kernels.kmeans_pp(emb, 60, algorithm="pruned", backend="cpp", **kw)
            np.testing.assert_array_equal(got, brute)


@pytest.mark.parametrize("kind", KINDS)
def test_factored_duplicate_rows(kind: str) -> None:
    base = factored_pool(120, 4, 11, badge=kind == "badge", seed=6, clusters=5)
    order = np.random.default_rng(1).permutation(600) % 120
    w, f = base.backend_arrays().weights, base.backend_arrays().features
    emb = uwe_kernels.FactoredEmbedding(w[order], f[order])
    for n_labelled in (0, 4):
        mask = labelled(600, n_labelled, seed=2)
        want_picks, want_dists = brute_kcenter(emb, mask, 130)  # past the 120 distinct rows
        for mode in MODES:
            picks, dists, _ = pruned.kcenter_greedy_stats(emb, mask, 130, None, mode=mode)
            np.testing.assert_array_equal(picks, want_picks, err_msg=mode)
            np.testing.assert_array_equal(dists, want_dists, err_msg=mode)
        assert (want_dists[-10:] == 0).all()
        for seed in (0, 5):
            want = brute_kmeans_pp(emb, mask, 130, seed, "random")
            got, _ = pruned.kmeans_pp_stats(emb, mask, 130, seed, "random", mode="pruned")
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "n, k, d, budget, n_labelled",
    [(1, 1, 1, 1, 0), (1, 3, 7, 0, 0), (123, 1, 1, 123, 0), (123, 2, 5, 118, 5), (9, 40, 300, 4, 2),
     (2, 1, 17, 1, 1), (257, 17, 3, 60, 1)],
)
def test_factored_odd_shapes(kind: str, n: int, k: int, d: int, budget: int, n_labelled: int) -> None:
    rng = np.random.default_rng(n + k + d)
    w = rng.standard_normal((n, k) if kind == "badge" else n).astype(np.float32)
    emb = uwe_kernels.FactoredEmbedding(w, gaussian_pool(n, d, seed=n + d))
    mask = labelled(n, n_labelled)
    want_picks, want_dists = brute_kcenter(emb, mask, budget)
    picks, dists = pruned.kcenter_greedy_pruned(emb, mask, budget, None)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_array_equal(dists, want_dists)
    assert picks.dtype == np.int64 and dists.dtype == np.float64
    np.testing.assert_array_equal(pruned.kmeans_pp_pruned(emb, mask, budget, 1, "max_norm"),
                                  brute_kmeans_pp(emb, mask, budget, 1, "max_norm"))


@pytest.mark.parametrize(
    "view",
    [lambda a: a[::2], lambda a: a[::-1], lambda a: np.asfortranarray(a)],
    ids=["row_step", "reversed", "fortran"],
)
def test_factored_any_strides_and_mixed_dtypes(view) -> None:
    base = factored_pool(800, 5, 24, badge=True, seed=8)
    w, f = base.backend_arrays().weights, base.backend_arrays().features
    for weights, features in ((view(w), view(f)), (view(w), view(f).astype(np.float16)), (view(w[:, 0]), view(f))):
        emb = uwe_kernels.FactoredEmbedding(weights, features)
        mask = labelled(len(features), 3)
        np.testing.assert_array_equal(pruned.kcenter_greedy_pruned(emb, mask, 40, None)[0],
                                      brute_kcenter(emb, mask, 40)[0])
        np.testing.assert_array_equal(pruned.kmeans_pp_pruned(emb, mask, 40, 5, "random"),
                                      brute_kmeans_pp(emb, mask, 40, 5, "random"))


def test_factored_first_pick_given_and_float64_accumulation() -> None:
    emb = factored_pool(400, 4, 12, badge=True, seed=9)
    mask = np.zeros(400, bool)
    picks, dists = pruned.kcenter_greedy_pruned(emb, mask, 25, 42)
    assert picks[0] == 42 and np.isinf(dists[0])
    np.testing.assert_array_equal(picks, brute_kcenter(emb, mask, 25, 42)[0])
    fa = emb.backend_arrays()
    want = select.kcenter_greedy(fa, mask, 60, None, algorithm="brute", progress=None, accum_dtype=np.float64)
    got = pruned.kcenter_greedy_pruned(emb, mask, 60, None, accum_dtype=np.float64)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_factored_inputs_not_modified() -> None:
    emb = factored_pool(500, 5, 16, badge=True, seed=3, dtype=np.dtype(np.float16), from_scores=False)
    w, f = emb.backend_arrays().weights, emb.backend_arrays().features
    mask = labelled(500, 4)
    before = (w.copy(), f.copy(), mask.copy())
    pruned.kcenter_greedy_pruned(emb, mask, 50, None)
    pruned.kmeans_pp_pruned(emb, mask, 50, 0, "random")
    for a, b in zip((w, f, mask), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_factored_clustered_touches_few_rows(kind: str) -> None:
    emb = factored_pool(20000, 10, 48, badge=kind == "badge", clusters=40, spread=0.05, seed=1)
    mask = np.zeros(len(emb), bool)
    want = brute_kcenter(emb, mask, 300)
    picks, dists, stats = pruned.kcenter_greedy_stats(emb, mask, 300, None, mode="adaptive")
    np.testing.assert_array_equal(picks, want[0])
    np.testing.assert_array_equal(dists, want[1])
    assert stats["plain_centres"] == 0
    assert stats["rows_touched"] < 0.3 * len(emb) * 300
    kpicks, kstats = pruned.kmeans_pp_stats(emb, mask, 200, 4, "max_norm", mode="adaptive")
    np.testing.assert_array_equal(kpicks, brute_kmeans_pp(emb, mask, 200, 4, "max_norm"))
    assert kstats["rows_touched"] < 0.4 * len(emb) * 200


@pytest.mark.parametrize("offset", [0.0, 1000.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_factored_badge_near_duplicates_under_cancellation(seed: int, offset: float) -> None:
    # Tight clusters far from the origin: the expanded BADGE formula's rounding error (relative
    # to the norms) dwarfs the distances, so skip tests without the norm slack go wrong.
    rng = np.random.default_rng(seed)
    n, k, d, clusters = 1000, 10, 42, 12
    labels = rng.integers(0, clusters, n)
    f = (offset + rng.standard_normal((clusters, d))[labels] + 1e-4 * rng.standard_normal((n, d))).astype(np.float32)
    w = (rng.standard_normal((clusters, k))[labels] + 1e-4 * rng.standard_normal((n, k))).astype(np.float32)
    emb = uwe_kernels.FactoredEmbedding(w, f)
    for n_labelled in (0, 3):
        mask = labelled(n, n_labelled, seed=seed)
        want_picks, want_dists = brute_kcenter(emb, mask, 120)
        picks, dists, _ = pruned.kcenter_greedy_stats(emb, mask, 120, None, mode="pruned")
        np.testing.assert_array_equal(picks, want_picks)
        np.testing.assert_array_equal(dists, want_dists)
        for s in (seed, seed + 10):
            want = brute_kmeans_pp(emb, mask, 120, s, "random")
            got, _ = pruned.kmeans_pp_stats(emb, mask, 120, s, "random", mode="pruned")
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_factored_auto_routes_clustered_pools_to_the_pruned_kernels(kind: str) -> None:
    emb = factored_pool(6000, 6, 24, badge=kind == "badge", clusters=20, spread=0.05, seed=4)
    fa = emb.backend_arrays()
    assert select.choose_algorithm(fa) in GROUPS
    lab = np.arange(0, 6000, 997)
    want = uwe_kernels.kcenter_greedy(emb, lab, 60, algorithm="brute", backend="cpp")
    np.testing.assert_array_equal(uwe_kernels.kcenter_greedy(emb, lab, 60, algorithm="auto", backend="cpp"), want)
    want = uwe_kernels.kmeans_pp(emb, 60, labelled_idx=lab, seed=9, algorithm="brute", backend="cpp")
    got = uwe_kernels.kmeans_pp(emb, 60, labelled_idx=lab, seed=9, algorithm="auto", backend="cpp")
    np.testing.assert_array_equal(got, want)


def test_cpp_accepts_pruned_on_factored_calls_and_refuses_unknown_dtypes() -> None:
    from uwe_kernels.registry import Call

    f32 = np.dtype(np.float32)
    call = Call(op="kcenter_greedy", device="cpu", dtypes=(f32, f32),
                options={"algorithm": "pruned", "factored": True, "n": 10})
    assert select.not_supported_reasons("kcenter_greedy", call) == []
    odd = Call(op="kmeans_pp", device="cpu", dtypes=(np.dtype(np.float32), np.dtype(np.complex64)),
               options={"algorithm": "pruned", "factored": True, "n": 10})
    reasons = select.not_supported_reasons("kmeans_pp", odd)
    assert reasons and "complex64" in reasons[0]
