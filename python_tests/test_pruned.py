"""Exact pruned selection on every backend that declares a pruned engine (registry): the same
picks and distances as the backend's brute force and the reference, in every engine mode
('plain' every row every pick, 'pruned', 'adaptive'). Engine-specific tuning (how few rows a
clustered pool touches, when adaptive mode switches) is tested per engine at the end."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import uwe_kernels
from uwe_kernels import _pruning, reference, registry
from uwe_kernels.factored import FactoredArrays

from conftest import DTYPES, backends_with
from helpers import clustered_pool, gaussian_pool

PRUNED = backends_with("pruned")
PRUNED_FACTORED = backends_with("pruned", factored=True)
PRUNED_DENSE_ONLY = [p for p in PRUNED if p.values[0] not in {q.values[0] for q in PRUNED_FACTORED}]
MODES = ("adaptive", "pruned", "plain")
DTYPE_IDS = list(DTYPES)


def engine(backend: str) -> ModuleType:
    """The backend's pruned engine: kcenter_greedy_stats / kmeans_pp_stats (with a mode and
    work statistics), kcenter_greedy_pruned / kmeans_pp_pruned, pruned_supported."""
    return importlib.import_module(f"uwe_kernels.{backend}.pruned")


def _accum(emb: Any) -> np.dtype:
    arrays = (emb.weights, emb.features) if hasattr(emb, "weights") else (emb,)
    return np.dtype(np.float64 if any(np.dtype(a.dtype) == np.float64 for a in arrays) else np.float32)


def _backend_view(emb: Any) -> Any:
    return emb.backend_arrays() if isinstance(emb, uwe_kernels.FactoredEmbedding) else emb


def brute_kcenter(backend: str, emb: Any, mask: np.ndarray, budget: int, first: int | None = None,
                  accum_dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The backend's kcenter_greedy op with algorithm='brute'."""
    emb = _backend_view(emb)
    return registry.BACKENDS[backend].op("kcenter_greedy")(
        emb, mask, budget, first, algorithm="brute", progress=None, accum_dtype=accum_dtype or _accum(emb))


def brute_kmeans_pp(backend: str, emb: Any, mask: np.ndarray, budget: int, seed: int, first: object) -> np.ndarray:
    emb = _backend_view(emb)
    return registry.BACKENDS[backend].op("kmeans_pp")(
        emb, mask, budget, seed, first, algorithm="brute", progress=None, accum_dtype=_accum(emb))


def check_kcenter(backend: str, emb: Any, mask: np.ndarray, budget: int, first: int | None = None) -> dict[str, Any]:
    """Every mode gives brute force's picks and distances, bit for bit; returns adaptive's stats."""
    want, want_d = brute_kcenter(backend, emb, mask, budget, first)
    out = {}
    for mode in MODES:
        picks, dists, stats = engine(backend).kcenter_greedy_stats(emb, mask, budget, first, mode=mode)
        np.testing.assert_array_equal(picks, want, err_msg=mode)
        np.testing.assert_array_equal(dists, want_d, err_msg=mode)
        out[mode] = stats
    return out["adaptive"]


def check_kmeans_pp(backend: str, emb: Any, mask: np.ndarray, budget: int, seed: int, first: object) -> np.ndarray:
    want = brute_kmeans_pp(backend, emb, mask, budget, seed, first)
    for mode in MODES:
        got, _ = engine(backend).kmeans_pp_stats(emb, mask, budget, seed, first, mode=mode)
        np.testing.assert_array_equal(got, want, err_msg=f"{mode} {first}")
    return want


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


# ---------------------------------------------------------------- dense pools, every pruned engine


@pytest.mark.parametrize("n_labelled", [0, 6], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("kind", ["clustered", "isotropic", "duplicates"])
@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("backend", PRUNED)
def test_kcenter_matches_brute_and_reference(backend: str, dtype: str, kind: str, n_labelled: int) -> None:
    x = make_pool(kind, 901, 41, DTYPES[dtype], seed=3)
    mask = labelled(len(x), n_labelled)
    stats = check_kcenter(backend, x, mask, 90)
    assert stats["centres"] == 89 + n_labelled
    want_picks, want_dists = reference.kcenter_greedy(x, mask, 90, None)
    picks, dists = engine(backend).kcenter_greedy_pruned(x, mask, 90, None)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_allclose(dists, want_dists, rtol=1e-4 if dtype != "float64" else 1e-12, atol=1e-6)


@pytest.mark.parametrize("kind", ["clustered", "isotropic", "duplicates"])
@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("backend", PRUNED)
def test_kcenter_matches_public_reference_backend(backend: str, dtype: str, kind: str) -> None:
    x = make_pool(kind, 777, 24, DTYPES[dtype], seed=5)
    lab = np.flatnonzero(labelled(len(x), 4, seed=1))
    want = uwe_kernels.kcenter_greedy(x, lab, 90, backend="reference")
    np.testing.assert_array_equal(uwe_kernels.kcenter_greedy(x, lab, 90, algorithm="pruned", backend=backend), want)


@pytest.mark.parametrize("first", ["max_norm", "random", 17])
@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5])
@pytest.mark.parametrize("n_labelled", [0, 5], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("backend", PRUNED)
def test_kmeans_pp_matches_brute_and_reference(backend: str, dtype: str, n_labelled: int, seed: int,
                                               first: object) -> None:
    x = make_pool("clustered", 603, 29, DTYPES[dtype], seed=11)
    mask = labelled(len(x), n_labelled, seed=seed % 97)
    want = reference.kmeans_pp(x, mask, 50, seed, first)
    np.testing.assert_array_equal(check_kmeans_pp(backend, x, mask, 50, seed, first), want)


@pytest.mark.parametrize("seed", [0, 3, 12345])
@pytest.mark.parametrize("backend", PRUNED)
def test_kmeans_pp_matches_public_reference_backend(backend: str, seed: int) -> None:
    x = make_pool("isotropic", 640, 18, DTYPES["float32"], seed=seed)
    want = uwe_kernels.kmeans_pp(x, 70, seed=seed, first="random", backend="reference")
    got = uwe_kernels.kmeans_pp(x, 70, seed=seed, first="random", algorithm="pruned", backend=backend)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["isotropic", "duplicates"])
@pytest.mark.parametrize("backend", PRUNED)
def test_kmeans_pp_other_pools(backend: str, kind: str) -> None:
    x = make_pool(kind, 450, 12, np.dtype(np.float32), seed=6)
    for seed in (3, 11):
        check_kmeans_pp(backend, x, labelled(len(x), 4 * (seed % 2)), 25, seed, "random")


@pytest.mark.parametrize("backend", PRUNED)
def test_all_rows_identical(backend: str) -> None:
    x = np.full((40, 5), 0.25, np.float32)
    check_kcenter(backend, x, np.zeros(40, bool), 40)
    check_kcenter(backend, x, labelled(40, 3), 20)
    check_kmeans_pp(backend, x, np.zeros(40, bool), 40, 3, "random")
    x = np.repeat(gaussian_pool(1, 5, seed=2), 50, axis=0)
    for seed in (0, 9):  # every D is 0 after the first pick: uniform draws, as the reference
        want = reference.kmeans_pp(x, np.zeros(50, bool), 20, seed, "random")
        np.testing.assert_array_equal(check_kmeans_pp(backend, x, np.zeros(50, bool), 20, seed, "random"), want)




ODD_SHAPES = [  # n, d, budget, labelled, pool
    (1, 1, 1, 0, "gaussian"), (1, 7, 0, 0, "gaussian"), (123, 1, 123, 0, "gaussian"), (123, 5, 118, 5, "gaussian"),
    (9, 300, 4, 2, "gaussian"), (2, 17, 1, 1, "gaussian"), (1, 3, 1, 0, "ones"), (1, 3, 0, 0, "ones"), (2, 1, 1, 1, "clustered"),
    (50, 4, 50, 0, "clustered"), (50, 4, 44, 6, "clustered"), (300, 1, 30, 0, "clustered"),
    (200, 129, 20, 3, "clustered"),
]


@pytest.mark.parametrize("n,d,budget,n_labelled,pool", ODD_SHAPES)
@pytest.mark.parametrize("backend", PRUNED)
def test_odd_shapes(backend: str, n: int, d: int, budget: int, n_labelled: int, pool: str) -> None:
    x = {"gaussian": lambda: gaussian_pool(n, d, seed=n + d), "ones": lambda: np.ones((n, d), np.float32),
         "clustered": lambda: clustered_pool(n, d, clusters=5, seed=n + d)}[pool]()
    mask = labelled(n, n_labelled)
    check_kcenter(backend, x, mask, budget)
    picks, dists = engine(backend).kcenter_greedy_pruned(x, mask, budget, None)
    want_picks, want_dists = reference.kcenter_greedy(x, mask, budget, None)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_allclose(dists, want_dists, rtol=1e-4)
    assert picks.dtype == np.int64 and dists.dtype == np.float64
    for seed, first in ((1, "max_norm"), (2, "random")):
        np.testing.assert_array_equal(check_kmeans_pp(backend, x, mask, budget, seed, first),
                                      reference.kmeans_pp(x, mask, budget, seed, first))


VIEWS = {
    "row_step": lambda x: x[::2],
    "reversed": lambda x: x[::-1],
    "column_step": lambda x: x[:, ::2],
    "fortran": lambda x: np.asfortranarray(x),
    "zero_stride": lambda x: np.broadcast_to(x[:1], (40, x.shape[1])),
    "row_and_column_step": lambda x: x[::2, ::3],
    "reversed_row_step": lambda x: x[::-2],
}


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("backend", PRUNED)
def test_any_strides(backend: str, view: str) -> None:
    x = VIEWS[view](clustered_pool(1200, 33, clusters=9, seed=8))
    mask = np.zeros(len(x), bool)
    np.testing.assert_array_equal(engine(backend).kcenter_greedy_pruned(x, mask, 30, None)[0],
                                  reference.kcenter_greedy(x, mask, 30, None)[0])
    np.testing.assert_array_equal(engine(backend).kmeans_pp_pruned(x, mask, 30, 5, "random"),
                                  reference.kmeans_pp(x, mask, 30, 5, "random"))
    check_kcenter(backend, x, labelled(len(x), 3), 25)
    check_kmeans_pp(backend, x, mask, 25, 4, "random")


@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("backend", PRUNED)
def test_properties(backend: str, dtype: str) -> None:
    x = make_pool("clustered", 2000, 48, DTYPES[dtype], seed=21)
    mask = labelled(len(x), 10, seed=3)
    pruned = engine(backend)
    picks, dists = pruned.kcenter_greedy_pruned(x, mask, 300, None)
    assert len(np.unique(picks)) == 300
    assert not mask[picks].any()
    assert ((picks >= 0) & (picks < len(x))).all()
    assert np.all(np.diff(dists) <= 0)
    np.testing.assert_array_equal(picks, pruned.kcenter_greedy_pruned(x, mask, 300, None)[0])
    kpicks = pruned.kmeans_pp_pruned(x, mask, 300, 8, "max_norm")
    assert len(np.unique(kpicks)) == 300 and not mask[kpicks].any()
    np.testing.assert_array_equal(kpicks, pruned.kmeans_pp_pruned(x, mask, 300, 8, "max_norm"))


@pytest.mark.parametrize("backend", PRUNED)
def test_properties_on_duplicate_rows(backend: str) -> None:
    x = make_pool("duplicates", 500, 9, np.dtype(np.float32), seed=2)
    mask = labelled(len(x), 20)
    lab = set(np.flatnonzero(mask))
    pruned = engine(backend)
    picks, dists, _ = pruned.kcenter_greedy_stats(x, mask, 200, None)
    assert len(set(picks)) == 200 and picks.min() >= 0 and picks.max() < len(x) and not set(picks) & lab
    assert np.all(np.diff(dists) <= 0)
    np.testing.assert_array_equal(picks, pruned.kcenter_greedy_stats(x, mask, 200, None)[0])
    km = pruned.kmeans_pp_stats(x, mask, 200, 9, "random")[0]
    assert len(set(km)) == 200 and not set(km) & lab
    np.testing.assert_array_equal(km, pruned.kmeans_pp_stats(x, mask, 200, 9, "random")[0])


@pytest.mark.parametrize("backend", PRUNED)
def test_first_pick_given_and_infinite_distance(backend: str) -> None:
    x = clustered_pool(300, 12, clusters=5, seed=2)
    picks, dists = engine(backend).kcenter_greedy_pruned(x, np.zeros(300, bool), 25, 42)
    assert picks[0] == 42 and np.isinf(dists[0])
    np.testing.assert_array_equal(picks, reference.kcenter_greedy(x, np.zeros(300, bool), 25, 42)[0])
    check_kcenter(backend, make_pool("clustered", 300, 8, np.dtype(np.float32)), np.zeros(300, bool), 25, first=77)


@pytest.mark.parametrize("backend", PRUNED)
def test_float64_accumulation_on_float32_pool_matches_reference(backend: str) -> None:
    x = clustered_pool(800, 40, clusters=12, seed=6)
    want = reference.kcenter_greedy(x, np.zeros(800, bool), 100, None)[0]
    got = engine(backend).kcenter_greedy_pruned(x, np.zeros(800, bool), 100, None, accum_dtype=np.float64)[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", PRUNED)
def test_inputs_not_modified_and_read_only(backend: str) -> None:
    for dtype in (np.float16, np.float32):
        x = make_pool("clustered", 500, 16, np.dtype(dtype), seed=3)
        mask = labelled(500, 4)
        x_before, mask_before = x.copy(), mask.copy()
        x.flags.writeable = False
        engine(backend).kcenter_greedy_stats(x, mask, 50, None)
        engine(backend).kmeans_pp_stats(x, mask, 50, 0, "random")
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(mask, mask_before)


@pytest.mark.parametrize("backend", PRUNED)
def test_progress_reports_the_budget(backend: str) -> None:
    seen: list[int] = []
    engine(backend).kcenter_greedy_pruned(gaussian_pool(300, 8), np.zeros(300, bool), 40, None, progress=seen.append)
    assert seen and seen[-1] == 40 and all(0 <= s <= 40 for s in seen) and seen == sorted(seen)
    seen.clear()
    engine(backend).kmeans_pp_pruned(gaussian_pool(300, 8), np.zeros(300, bool), 30, 0, "max_norm",
                                     progress=seen.append)
    assert seen and seen[-1] == 30 and seen == sorted(seen)


@pytest.mark.parametrize("backend", PRUNED)
def test_bad_input_is_refused(backend: str) -> None:
    x = make_pool("clustered", 50, 4, np.dtype(np.float32))
    pruned = engine(backend)
    with pytest.raises(ValueError, match="budget"):
        pruned.kcenter_greedy_pruned(x, np.zeros(50, bool), 51, None)
    with pytest.raises(ValueError, match="first"):
        pruned.kmeans_pp_stats(x, np.zeros(50, bool), 3, 0, 50)
    with pytest.raises(ValueError, match="labelled_mask"):
        pruned.kcenter_greedy_pruned(x, np.zeros(49, bool), 2, None)
    for bad in (x[:, 0], np.zeros(12, np.float32)):
        assert pruned.pruned_supported(bad)
        with pytest.raises(ValueError, match="2-D"):
            pruned.kcenter_greedy_stats(bad, np.zeros(len(bad), bool), 1, None)


# Group bounds, with a sketch when the row sample says it pays too (uwe_kernels._sketch.choose_bounds).
GROUPS = ("pruned", "pruned+sketch")


@pytest.mark.parametrize("algorithm", ["pruned", "auto"])
@pytest.mark.parametrize("backend", PRUNED)
def test_public_functions_route_to_the_pruned_engine(backend: str, algorithm: str) -> None:
    x = clustered_pool(6000, 32, clusters=20, seed=4, spread=0.1)
    assert importlib.import_module(registry.BACKENDS[backend].module_name("kcenter_greedy")).choose_algorithm(x) \
        in GROUPS
    lab = np.arange(0, 6000, 997)
    want, want_d = uwe_kernels.kcenter_greedy(x, lab, 60, algorithm="brute", backend=backend, return_distances=True)
    got, got_d = uwe_kernels.kcenter_greedy(x, lab, 60, algorithm=algorithm, backend=backend, return_distances=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_d, want_d)
    np.testing.assert_array_equal(got, uwe_kernels.kcenter_greedy(x, lab, 60, backend="reference"))
    for first in ("max_norm", "random", 7):
        kw = dict(seed=9, first=first) if first == "max_norm" else dict(seed=2, first=first)
        want_kmpp = uwe_kernels.kmeans_pp(x, 60, **kw, algorithm="brute", backend=backend)
        np.testing.assert_array_equal(uwe_kernels.kmeans_pp(x, 60, **kw, algorithm=algorithm, backend=backend),
                                      want_kmpp)
    want_kmpp = uwe_kernels.kmeans_pp(x, 60, labelled_idx=lab, seed=9, algorithm="brute", backend=backend)
    got_kmpp = uwe_kernels.kmeans_pp(x, 60, labelled_idx=lab, seed=9, algorithm=algorithm, backend=backend)
    np.testing.assert_array_equal(got_kmpp, want_kmpp)


@pytest.mark.parametrize("backend", PRUNED)
def test_choose_algorithm(backend: str) -> None:
    choose = importlib.import_module(registry.BACKENDS[backend].module_name("kcenter_greedy")).choose_algorithm
    assert choose(clustered_pool(20000, 64, clusters=30, seed=1, spread=0.1)) in GROUPS
    assert choose(clustered_pool(8000, 16, clusters=30, seed=1, spread=0.1)) in GROUPS
    assert choose(gaussian_pool(20000, 256, seed=1)) == "brute"
    assert choose(gaussian_pool(8000, 64, seed=1)) == "brute"
    assert choose(gaussian_pool(100, 8, seed=1)) == "brute"
    emb = uwe_kernels.FactoredEmbedding(np.ones(10, np.float32), gaussian_pool(10, 4))
    assert choose(emb.backend_arrays()) == "brute"  # too small to pay (or dense-only engine)


@pytest.mark.parametrize("backend", PRUNED_DENSE_ONLY)
def test_factored_is_refused_naming_dense_and_auto_runs_brute(backend: str) -> None:
    scores = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    emb = uwe_kernels.badge_factored(scores, gaussian_pool(40, 5), backend=backend)
    with pytest.raises(uwe_kernels.BackendUnavailable, match="dense"):
        uwe_kernels.kmeans_pp(emb, 5, algorithm="pruned", backend=backend)
    assert engine(backend).pruned_supported(emb.backend_arrays())
    np.testing.assert_array_equal(uwe_kernels.kmeans_pp(emb, 5, algorithm="auto", backend=backend),
                                  uwe_kernels.kmeans_pp(emb, 5, algorithm="brute", backend=backend))


# ---------------------------------------------------------------- the shared "is it clustered" test


def test_factored_sample_distances_match_the_materialised_rows() -> None:
    queries, reference_rows = np.array([0, 7, 300]), np.arange(0, 600, 3)
    for badge in (False, True):
        emb = factored_pool(600, 5, 9, badge=badge, clusters=4, seed=4, dtype=np.float64)
        x = emb.materialize()
        want = ((x[queries][:, None, :] - x[reference_rows][None, :, :]) ** 2).sum(-1)
        got = _pruning._sq_distances(emb, queries, reference_rows)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(_pruning._sq_distances(x, queries, reference_rows), want, rtol=1e-9, atol=1e-9)


def test_float32_sample_distances_survive_a_large_common_offset() -> None:
    # float32 Grams of rows near 1e4: without centring, |x|^2 ~ 5e9 would swamp distances of ~100
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((600, 48)) + 1e4).astype(np.float32)
    queries, reference_rows = np.array([1, 50, 599]), np.arange(0, 600, 2)
    exact = x.astype(np.float64)
    want = ((exact[queries][:, None, :] - exact[reference_rows][None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(_pruning._sq_distances(x, queries, reference_rows), want, rtol=1e-4, atol=1e-3)


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
        queries, reference_rows = _pruning._sample_rows(n)
        assert queries.min() > 0 and queries.max() < n - 1 and len(queries) == _pruning.QUERY_ROWS
        assert reference_rows[0] == 0 and reference_rows[-1] == n - 1
        assert len(reference_rows) == min(n, _pruning.REFERENCE_ROWS)
    dup = np.repeat(gaussian_pool(2048, 64, seed=6), 2, axis=0)  # every row twice: nearest is 0
    assert _pruning.looks_clustered(dup)


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


KINDS = ("uwe", "badge")


@pytest.mark.parametrize("n_labelled", [0, 6], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_kcenter_matches_brute_and_reference(backend: str, kind: str, dtype: str, n_labelled: int) -> None:
    emb = factored_pool(700, 5, 23, badge=kind == "badge", seed=3, dtype=DTYPES[dtype])
    mask = labelled(len(emb), n_labelled)
    stats = check_kcenter(backend, emb, mask, 80)
    assert stats["centres"] == 79 + n_labelled
    ref = uwe_kernels.kcenter_greedy(emb, np.flatnonzero(mask), 80, backend="reference")
    np.testing.assert_array_equal(brute_kcenter(backend, emb, mask, 80)[0], ref)


@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5])
@pytest.mark.parametrize("n_labelled", [0, 5], ids=["unlabelled", "labelled"])
@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_kmeans_pp_matches_brute(backend: str, kind: str, dtype: str, n_labelled: int, seed: int) -> None:
    emb = factored_pool(500, 4, 19, badge=kind == "badge", seed=11, dtype=DTYPES[dtype], from_scores=False)
    mask = labelled(len(emb), n_labelled, seed=seed % 97)
    for first in ("max_norm", "random", 17):
        check_kmeans_pp(backend, emb, mask, 45, seed, first)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_public_api_matches_brute_and_reference(backend: str, kind: str) -> None:
    emb = factored_pool(900, 6, 31, badge=kind == "badge", seed=5)
    lab = np.array([3, 400, 899])
    for labelled_idx in (None, lab):
        brute = uwe_kernels.kcenter_greedy(emb, labelled_idx, 70, algorithm="brute", backend=backend)
        got = uwe_kernels.kcenter_greedy(emb, labelled_idx, 70, algorithm="pruned", backend=backend)
        ref = uwe_kernels.kcenter_greedy(emb, labelled_idx, 70, backend="reference")
        np.testing.assert_array_equal(got, brute)
        np.testing.assert_array_equal(got, ref)
        for seed in (0, 7, 123):
            kw = dict(labelled_idx=labelled_idx, seed=seed, first="random")
            brute = uwe_kernels.kmeans_pp(emb, 60, algorithm="brute", backend=backend, **kw)
            got = uwe_kernels.kmeans_pp(emb, 60, algorithm="pruned", backend=backend, **kw)
            np.testing.assert_array_equal(got, brute)
    small = uwe_kernels.FactoredEmbedding(np.ones(10, np.float32), gaussian_pool(10, 4))
    for fn, args in ((uwe_kernels.kcenter_greedy, (None, 3)), (uwe_kernels.kmeans_pp, (3,))):
        np.testing.assert_array_equal(fn(small, *args, algorithm="pruned", backend=backend),
                                      fn(small, *args, algorithm="brute", backend=backend))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_duplicate_rows(backend: str, kind: str) -> None:
    base = factored_pool(120, 4, 11, badge=kind == "badge", seed=6, clusters=5)
    order = np.random.default_rng(1).permutation(600) % 120
    w, f = base.backend_arrays().weights, base.backend_arrays().features
    emb = uwe_kernels.FactoredEmbedding(w[order], f[order])
    for n_labelled in (0, 4):
        mask = labelled(600, n_labelled, seed=2)
        check_kcenter(backend, emb, mask, 130)  # past the 120 distinct rows
        assert (brute_kcenter(backend, emb, mask, 130)[1][-10:] == 0).all()
        for seed in (0, 5):
            check_kmeans_pp(backend, emb, mask, 130, seed, "random")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "n, k, d, budget, n_labelled",
    [(1, 1, 1, 1, 0), (1, 3, 7, 0, 0), (123, 1, 1, 123, 0), (123, 2, 5, 118, 5), (9, 40, 300, 4, 2),
     (2, 1, 17, 1, 1), (257, 17, 3, 60, 1)],
)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_odd_shapes(backend: str, kind: str, n: int, k: int, d: int, budget: int, n_labelled: int) -> None:
    rng = np.random.default_rng(n + k + d)
    w = rng.standard_normal((n, k) if kind == "badge" else n).astype(np.float32)
    emb = uwe_kernels.FactoredEmbedding(w, gaussian_pool(n, d, seed=n + d))
    mask = labelled(n, n_labelled)
    want_picks, want_dists = brute_kcenter(backend, emb, mask, budget)
    picks, dists = engine(backend).kcenter_greedy_pruned(emb, mask, budget, None)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_array_equal(dists, want_dists)
    assert picks.dtype == np.int64 and dists.dtype == np.float64
    np.testing.assert_array_equal(engine(backend).kmeans_pp_pruned(emb, mask, budget, 1, "max_norm"),
                                  brute_kmeans_pp(backend, emb, mask, budget, 1, "max_norm"))


@pytest.mark.parametrize(
    "view",
    [lambda a: a[::2], lambda a: a[::-1], lambda a: np.asfortranarray(a)],
    ids=["row_step", "reversed", "fortran"],
)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_any_strides_and_mixed_dtypes(backend: str, view: Any) -> None:
    base = factored_pool(800, 5, 24, badge=True, seed=8)
    w, f = base.backend_arrays().weights, base.backend_arrays().features
    for weights, features in ((view(w), view(f)), (view(w), view(f).astype(np.float16)), (view(w[:, 0]), view(f))):
        emb = uwe_kernels.FactoredEmbedding(weights, features)
        mask = labelled(len(features), 3)
        np.testing.assert_array_equal(engine(backend).kcenter_greedy_pruned(emb, mask, 40, None)[0],
                                      brute_kcenter(backend, emb, mask, 40)[0])
        np.testing.assert_array_equal(engine(backend).kmeans_pp_pruned(emb, mask, 40, 5, "random"),
                                      brute_kmeans_pp(backend, emb, mask, 40, 5, "random"))


@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_first_pick_given_and_float64_accumulation(backend: str) -> None:
    emb = factored_pool(400, 4, 12, badge=True, seed=9)
    mask = np.zeros(400, bool)
    picks, dists = engine(backend).kcenter_greedy_pruned(emb, mask, 25, 42)
    assert picks[0] == 42 and np.isinf(dists[0])
    np.testing.assert_array_equal(picks, brute_kcenter(backend, emb, mask, 25, 42)[0])
    want = brute_kcenter(backend, emb, mask, 60, accum_dtype=np.float64)
    got = engine(backend).kcenter_greedy_pruned(emb, mask, 60, None, accum_dtype=np.float64)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_inputs_not_modified(backend: str) -> None:
    emb = factored_pool(500, 5, 16, badge=True, seed=3, dtype=np.dtype(np.float16), from_scores=False)
    w, f = emb.backend_arrays().weights, emb.backend_arrays().features
    mask = labelled(500, 4)
    before = (w.copy(), f.copy(), mask.copy())
    engine(backend).kcenter_greedy_pruned(emb, mask, 50, None)
    engine(backend).kmeans_pp_pruned(emb, mask, 50, 0, "random")
    for a, b in zip((w, f, mask), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_is_accepted_and_unreadable_factors_are_refused_with_a_reason(backend: str) -> None:
    pruned = engine(backend)
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


@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_choose_algorithm_on_factored_embeddings(backend: str) -> None:
    choose = importlib.import_module(registry.BACKENDS[backend].module_name("kcenter_greedy")).choose_algorithm
    for badge in (False, True):
        clustered = factored_pool(8000, 6, 32, badge=badge, clusters=20, spread=0.05, seed=1)
        assert choose(clustered.backend_arrays()) in GROUPS
        assert engine(backend).choose_algorithm(clustered) in GROUPS  # the FactoredEmbedding itself
        rng = np.random.default_rng(2)
        w = rng.standard_normal((8000, 6) if badge else 8000).astype(np.float32)
        noise = uwe_kernels.FactoredEmbedding(w, gaussian_pool(8000, 256, seed=3))
        assert choose(noise.backend_arrays()) == "brute"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_auto_routes_clustered_pools_to_the_pruned_engine(backend: str, kind: str) -> None:
    emb = factored_pool(6000, 6, 24, badge=kind == "badge", clusters=20, spread=0.05, seed=4)
    lab = np.arange(0, 6000, 997)
    want = uwe_kernels.kcenter_greedy(emb, lab, 60, algorithm="brute", backend=backend)
    np.testing.assert_array_equal(uwe_kernels.kcenter_greedy(emb, lab, 60, algorithm="auto", backend=backend), want)
    want = uwe_kernels.kmeans_pp(emb, 60, labelled_idx=lab, seed=9, algorithm="brute", backend=backend)
    got = uwe_kernels.kmeans_pp(emb, 60, labelled_idx=lab, seed=9, algorithm="auto", backend=backend)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("backend", PRUNED_FACTORED)
def test_factored_badge_near_duplicates_under_cancellation(backend: str, seed: int, offset: float) -> None:
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
        want_picks, want_dists = brute_kcenter(backend, emb, mask, 120)
        picks, dists, _ = engine(backend).kcenter_greedy_stats(emb, mask, 120, None, mode="pruned")
        np.testing.assert_array_equal(picks, want_picks)
        np.testing.assert_array_equal(dists, want_dists)
        for s in (seed, seed + 10):
            want = brute_kmeans_pp(backend, emb, mask, 120, s, "random")
            got, _ = engine(backend).kmeans_pp_stats(emb, mask, 120, s, "random", mode="pruned")
            np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- per engine: how much work pruning saves


@pytest.mark.parametrize("mode", ["pruned", "adaptive"])
def test_cpp_kcenter_clustered_touches_few_rows(mode: str) -> None:
    x = clustered_pool(20000, 64, clusters=40, seed=1, spread=0.2)
    budget = 400
    want, _ = engine("cpp").kcenter_greedy_stats(x, np.zeros(len(x), bool), budget, None, mode="plain")[:2]
    picks, _, stats = engine("cpp").kcenter_greedy_stats(x, np.zeros(len(x), bool), budget, None, mode=mode)
    np.testing.assert_array_equal(picks, want)
    assert stats["plain_centres"] == 0
    assert stats["rows_touched"] < 0.2 * len(x) * budget
    assert stats["values_read"] < 0.2 * len(x) * budget * x.shape[1]


def test_cpp_kmeans_pp_clustered_touches_few_rows() -> None:
    x = clustered_pool(20000, 64, clusters=40, seed=2, spread=0.2)
    pruned = engine("cpp")
    want, _ = pruned.kmeans_pp_stats(x, np.zeros(len(x), bool), 300, 4, "max_norm", mode="plain")
    picks, stats = pruned.kmeans_pp_stats(x, np.zeros(len(x), bool), 300, 4, "max_norm", mode="adaptive")
    np.testing.assert_array_equal(picks, want)
    assert stats["rows_touched"] < 0.3 * len(x) * 300


def test_cpp_plain_mode_touches_every_live_row() -> None:
    x = gaussian_pool(500, 8, seed=1)
    _, _, stats = engine("cpp").kcenter_greedy_stats(x, np.zeros(500, bool), 10, None, mode="plain")
    assert stats["rows_touched"] == sum(500 - k for k in range(1, 10))


def test_cpp_adaptive_goes_plain_on_isotropic_noise() -> None:
    x = gaussian_pool(4000, 256, seed=4)
    want = reference.kcenter_greedy(x, np.zeros(len(x), bool), 100, None)[0]
    picks, _, stats = engine("cpp").kcenter_greedy_stats(x, np.zeros(len(x), bool), 100, None, mode="adaptive")
    np.testing.assert_array_equal(picks, want)
    assert 0 < stats["switched_at"] <= 40
    assert 0.5 * stats["centres"] < stats["plain_centres"] < stats["centres"] - 32


@pytest.mark.parametrize("kind", KINDS)
def test_cpp_factored_clustered_touches_few_rows(kind: str) -> None:
    emb = factored_pool(20000, 10, 48, badge=kind == "badge", clusters=40, spread=0.05, seed=1)
    mask = np.zeros(len(emb), bool)
    pruned = engine("cpp")
    want = brute_kcenter("cpp", emb, mask, 300)
    picks, dists, stats = pruned.kcenter_greedy_stats(emb, mask, 300, None, mode="adaptive")
    np.testing.assert_array_equal(picks, want[0])
    np.testing.assert_array_equal(dists, want[1])
    assert stats["plain_centres"] == 0
    assert stats["rows_touched"] < 0.3 * len(emb) * 300
    kpicks, kstats = pruned.kmeans_pp_stats(emb, mask, 200, 4, "max_norm", mode="adaptive")
    np.testing.assert_array_equal(kpicks, brute_kmeans_pp("cpp", emb, mask, 200, 4, "max_norm"))
    assert kstats["rows_touched"] < 0.4 * len(emb) * 200


def test_cpp_refuses_unknown_dtypes() -> None:
    from uwe_kernels.cpp import select
    from uwe_kernels.registry import Call

    odd = Call(op="kmeans_pp", device="cpu", dtypes=(np.dtype(np.float32), np.dtype(np.complex64)),
               options={"algorithm": "pruned", "factored": True, "n": 10})
    reasons = select.not_supported_reasons("kmeans_pp", odd)
    assert reasons and "complex64" in reasons[0]
    assert engine("cpp").pruned_supported(np.zeros((4, 3), np.int32))
    with pytest.raises(ValueError, match="dtype"):
        engine("cpp").kcenter_greedy_pruned(np.zeros((4, 3), np.int32), np.zeros(4, bool), 1, None)


def test_numba_adaptive_switches_on_noise_and_back() -> None:
    # Isotropic noise in many dimensions: pruning touches nearly every row, so adaptive mode
    # goes plain after the first probe, rebuilds its lists after the stretch and probes again.
    pruned = engine("numba")
    x = gaussian_pool(400, 48, seed=9)
    budget = pruned.FIRST_PROBE + pruned.FIRST_PLAIN_STRETCH + pruned.PROBE + 10
    stats = check_kcenter("numba", x, np.zeros(len(x), bool), budget)
    assert stats["switched_at"] >= pruned.FIRST_PROBE
    assert stats["plain_centres"] >= pruned.FIRST_PLAIN_STRETCH
    check_kmeans_pp("numba", x, np.zeros(len(x), bool), budget, 7, "max_norm")


def test_numba_parallel_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pools here are small; force the parallel row evaluation of large pools.
    monkeypatch.setattr(engine("numba"), "PARALLEL_MIN", 0)
    for x in (make_pool("clustered", 700, 21, np.dtype(np.float32), seed=2), gaussian_pool(500, 21, seed=2)):
        check_kcenter("numba", x, labelled(len(x), 2), 40)
        check_kmeans_pp("numba", x, np.zeros(len(x), bool), 40, 5, "random")


def test_numba_clustered_pool_touches_few_rows() -> None:
    x = clustered_pool(3000, 16, clusters=30, seed=2, spread=0.1)
    stats = check_kcenter("numba", x, np.zeros(len(x), bool), 60)
    assert stats["switched_at"] == -1
    assert stats["rows_touched"] < 0.5 * 59 * len(x)


def test_numba_progress_is_time_based(monkeypatch: pytest.MonkeyPatch) -> None:
    from uwe_kernels import _driver

    x = make_pool("clustered", 400, 6, np.dtype(np.float32))
    calls: list[int] = []
    engine("numba").kcenter_greedy_stats(x, np.zeros(len(x), bool), 100, None, progress=calls.append)
    assert calls and calls[-1] == 100 and len(calls) < 100
    calls.clear()
    monkeypatch.setattr(_driver, "PROGRESS_EVERY_S", 0.0)
    engine("numba").kmeans_pp_stats(x, np.zeros(len(x), bool), 50, 0, "max_norm", progress=calls.append)
    assert calls[-1] == 50 and calls == sorted(calls)


def test_numba_refuses_an_unknown_mode_and_a_budget_past_the_unlabelled_rows() -> None:
    x = make_pool("clustered", 50, 4, np.dtype(np.float32))
    with pytest.raises(ValueError, match="budget"):
        engine("numba").kcenter_greedy_stats(x, labelled(50, 5), 46, None)
    with pytest.raises(ValueError, match="mode"):
        engine("numba").kcenter_greedy_stats(x, np.zeros(50, bool), 3, None, mode="fast")
