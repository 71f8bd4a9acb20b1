"""Peers side by side with our kernels at the CIFAR-10 shape, each called as its users call
it, with its picks compared to ours (`same_picks` in extra_info; timing asserts nothing).
The test_* functions check pick equality at small shapes where the rule is the same."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import uwe_kernels
from bench import _data, _peers
from bench._data import CIFAR10, CIFAR10_BADGE, FULL, pick
from bench.conftest import REFERENCE_MAX_WORK, backend_params, on_device, optional_peer, require_backend

KCG_GROUP = "peers-kcg:cifar10"
# scikit-learn's kmeans_plusplus upcasts float32 to float64 per chunk (~1 s per pick at this
# shape on 2 cores): the quick run times fewer picks.
KMPP_BUDGET = pick(10, CIFAR10_BADGE.budget, CIFAR10_BADGE.budget)
KMPP_GROUP = "peers-kmpp:cifar10"
CPU_ORDER = ("cpp", "numba", "reference")


def _kcg_inputs():
    shape = CIFAR10
    return _data.uwe_pool(shape.n, shape.K, shape.d), _data.labelled(shape.n, shape.labelled), shape.budget


def _kcg_bytes(emb, budget) -> float:
    return float(budget * emb.shape[0] * emb.shape[1] * emb.dtype.itemsize)


@functools.lru_cache(maxsize=None)
def our_kcg_picks() -> tuple[str, np.ndarray] | None:
    """Our picks at the peers' shape from the first CPU backend that runs it in reasonable
    time, for the same_picks comparison; None when none does."""
    emb, labelled, budget = _kcg_inputs()
    for name in CPU_ORDER:
        if not uwe_kernels.backends()[name][0]:
            continue
        if name == "reference" and emb.size * (budget + len(labelled)) > REFERENCE_MAX_WORK:
            continue
        try:
            return name, np.asarray(uwe_kernels.kcenter_greedy(emb, labelled, budget, backend=name))
        except uwe_kernels.BackendUnavailable:
            continue
    return None


def _same_picks(picks) -> dict[str, object]:
    ours = our_kcg_picks()
    if ours is None:
        return {"same_picks": None, "same_picks_against": "no CPU backend of ours runs this shape yet"}
    picks = np.asarray(picks.cpu() if hasattr(picks, "cpu") else picks)
    # After many picks two candidates can lie closer than float32 rounding (a near-tie that
    # float32 peers and float32 accumulation may break either way): say how far they agree.
    differ = np.flatnonzero(picks != ours[1]) if picks.shape == ours[1].shape else np.array([0])
    # Below the full sizes the budget is small enough for no near-tie: a difference is a bug.
    assert FULL or not len(differ), f"picks differ from ours ({ours[0]}) from pick {differ[0]} on"
    return {"same_picks": not len(differ), "same_picks_against": ours[0],
            "same_leading_picks": int(differ[0]) if len(differ) else len(picks)}


@pytest.mark.parametrize("backend", backend_params())
def bench_ours_kcg(measure, benchmark, backend):
    emb, labelled, budget = _kcg_inputs()
    device = require_backend(backend, work=emb.size * (budget + len(labelled)))
    x, lab = on_device(emb, device), on_device(labelled, device)
    benchmark.group = KCG_GROUP
    measure(lambda: uwe_kernels.kcenter_greedy(x, lab, budget, backend=backend), provider=f"uwe_kernels[{backend}]",
            shape=CIFAR10.label, device=device, bytes_moved=_kcg_bytes(emb, budget), op="kcenter_greedy",
            budget=budget, labelled=len(labelled), labelled_madds=emb.size * len(labelled))


def bench_google_kcenter(measure, benchmark):
    optional_peer("sklearn", "scikit-learn")
    emb, labelled, budget = _kcg_inputs()
    benchmark.group = KCG_GROUP
    picks = measure(lambda: _peers.google_kcenter(emb, labelled, budget), provider="google kcenter_greedy (sklearn)",
                    role="peer", warmup=False, shape=CIFAR10.label, bytes_moved=_kcg_bytes(emb, budget),
                    op="kcenter_greedy", budget=budget, labelled=len(labelled))
    benchmark.extra_info.update(_same_picks(picks))


def bench_torch_cdist_kcenter(measure, benchmark):
    torch = optional_peer("torch")
    emb, labelled, budget = _kcg_inputs()
    x, lab = torch.from_numpy(emb), torch.from_numpy(labelled)
    benchmark.group = KCG_GROUP
    picks = measure(lambda: _peers.torch_cdist_kcenter(x, lab, budget), provider="torch.cdist loop", role="peer",
                    warmup=False, shape=CIFAR10.label, bytes_moved=_kcg_bytes(emb, budget), op="kcenter_greedy",
                    budget=budget, labelled=len(labelled))
    benchmark.extra_info.update(_same_picks(picks))


def bench_skactiveml_coreset(measure, benchmark):
    optional_peer("skactiveml", "scikit-activeml")
    emb, labelled, budget = _kcg_inputs()
    benchmark.group = KCG_GROUP
    picks = measure(lambda: _peers.skactiveml_coreset(emb, labelled, budget), provider="scikit-activeml CoreSet",
                    role="peer", warmup=False, shape=CIFAR10.label, bytes_moved=_kcg_bytes(emb, budget),
                    op="kcenter_greedy", budget=budget, labelled=len(labelled))
    benchmark.extra_info.update(_same_picks(picks))


def bench_fpsample(measure, benchmark):
    optional_peer("fpsample")
    emb, labelled, budget = _kcg_inputs()
    benchmark.group = KCG_GROUP
    picks = measure(lambda: _peers.fpsample_fps(emb, labelled, budget), provider="fpsample.fps_sampling",
                    role="peer", warmup=False, shape=CIFAR10.label, bytes_moved=_kcg_bytes(emb, budget),
                    op="kcenter_greedy", budget=budget, labelled=len(labelled))
    benchmark.extra_info.update(_same_picks(picks))


def _kmpp_inputs():
    shape = CIFAR10_BADGE
    return _data.logits(shape.n, shape.K), _data.features(shape.n, shape.d), KMPP_BUDGET


def _kmpp_bytes(width: int, itemsize: int = 4) -> float:
    shape = CIFAR10_BADGE
    return float(KMPP_BUDGET * shape.n * width * itemsize)


@functools.lru_cache(maxsize=None)
def our_first_kmpp_pick() -> int:
    """BADGE starts at the largest gradient-embedding norm; ours with first="max_norm" too."""
    scores, feats, _ = _kmpp_inputs()
    return int(np.argmax(np.square(_data.badge_explicit(len(feats), scores.shape[1], feats.shape[1])).sum(axis=1)))


def _same_first(picks) -> dict[str, object]:
    return {"same_first_pick": bool(int(np.asarray(picks)[0]) == our_first_kmpp_pick()),
            "same_picks": None, "same_picks_against": "different random streams: only the first pick is comparable"}


@pytest.mark.parametrize("backend", backend_params())
def bench_ours_kmeans_pp_factored(measure, benchmark, backend):
    shape = CIFAR10_BADGE
    weights, feats = _data.badge_weights(shape.n, shape.K), _data.features(shape.n, shape.d)
    device = require_backend(backend, work=shape.n * (shape.K + shape.d) * KMPP_BUDGET)
    emb = uwe_kernels.FactoredEmbedding(on_device(weights, device), on_device(feats, device))
    benchmark.group = KMPP_GROUP
    picks = measure(lambda: uwe_kernels.kmeans_pp(emb, KMPP_BUDGET, backend=backend),
                    provider=f"uwe_kernels factored[{backend}]", shape=shape.label, device=device,
                    bytes_moved=_kmpp_bytes(shape.K + shape.d), op="kmeans_pp", budget=KMPP_BUDGET)
    first = int(np.asarray(picks.cpu() if hasattr(picks, "cpu") else picks)[0])
    assert first == our_first_kmpp_pick(), "k-means++ starts at the largest gradient-embedding norm"
    benchmark.extra_info["same_first_pick"] = True


@pytest.mark.parametrize("backend", backend_params())
def bench_ours_kmeans_pp_explicit(measure, benchmark, backend):
    shape = CIFAR10_BADGE
    emb = _data.badge_explicit(shape.n, shape.K, shape.d)
    device = require_backend(backend, work=emb.size * KMPP_BUDGET)
    x = on_device(emb, device)
    benchmark.group = KMPP_GROUP
    measure(lambda: uwe_kernels.kmeans_pp(x, KMPP_BUDGET, backend=backend), provider=f"uwe_kernels explicit[{backend}]",
            shape=shape.label, device=device, bytes_moved=_kmpp_bytes(emb.shape[1]), op="kmeans_pp",
            budget=KMPP_BUDGET)


def bench_sklearn_kmeans_plusplus(measure, benchmark):
    optional_peer("sklearn", "scikit-learn")
    shape = CIFAR10_BADGE
    emb = _data.badge_explicit(shape.n, shape.K, shape.d)
    benchmark.group = KMPP_GROUP
    picks = measure(lambda: _peers.sklearn_kmeans_plusplus(emb, KMPP_BUDGET), provider="sklearn kmeans_plusplus",
                    role="peer", warmup=False, shape=shape.label, bytes_moved=_kmpp_bytes(emb.shape[1]),
                    op="kmeans_pp", budget=KMPP_BUDGET)
    benchmark.extra_info.update(_same_first(picks))


def bench_badge_init_centers(measure, benchmark):
    optional_peer("scipy")
    shape = CIFAR10_BADGE
    emb = _data.badge_explicit(shape.n, shape.K, shape.d)
    benchmark.group = KMPP_GROUP
    picks = measure(lambda: _peers.badge_init_centers(emb, KMPP_BUDGET), provider="BADGE init_centers",
                    role="peer", warmup=False, shape=shape.label, bytes_moved=_kmpp_bytes(emb.shape[1]),
                    op="kmeans_pp", budget=KMPP_BUDGET)
    benchmark.extra_info.update(_same_first(picks))


def bench_skactiveml_badge(measure, benchmark):
    optional_peer("skactiveml", "scikit-activeml")
    scores, feats, budget = _kmpp_inputs()
    benchmark.group = KMPP_GROUP
    picks = measure(lambda: _peers.skactiveml_badge(scores, feats, budget), provider="scikit-activeml Badge",
                    role="peer", warmup=False, shape=CIFAR10_BADGE.label,
                    bytes_moved=_kmpp_bytes(scores.shape[1] * feats.shape[1]), op="kmeans_pp", budget=budget)
    benchmark.extra_info.update(_same_first(picks))


SMALL_N, SMALL_D, SMALL_K, SMALL_BUDGET = 321, 17, 5, 25


@pytest.fixture(scope="module")
def small_pool():
    emb = np.random.default_rng(7).standard_normal((SMALL_N, SMALL_D)).astype(np.float32)
    return emb, np.array([4, 60, 61, 200], dtype=np.int64)


@pytest.fixture(scope="module")
def small_reference_picks(small_pool):
    emb, labelled = small_pool
    return np.asarray(uwe_kernels.kcenter_greedy(emb, labelled, SMALL_BUDGET, backend="reference"))


def test_google_kcenter_picks_match_reference(small_pool, small_reference_picks):
    optional_peer("sklearn", "scikit-learn")
    np.testing.assert_array_equal(_peers.google_kcenter(*small_pool, SMALL_BUDGET), small_reference_picks)


def test_torch_cdist_kcenter_picks_match_reference(small_pool, small_reference_picks):
    torch = optional_peer("torch")
    emb, labelled = small_pool
    picks = _peers.torch_cdist_kcenter(torch.from_numpy(emb), torch.from_numpy(labelled), SMALL_BUDGET)
    np.testing.assert_array_equal(picks.numpy(), small_reference_picks)


def test_skactiveml_coreset_picks_match_reference(small_pool, small_reference_picks):
    optional_peer("skactiveml", "scikit-activeml")
    np.testing.assert_array_equal(_peers.skactiveml_coreset(*small_pool, SMALL_BUDGET), small_reference_picks)


def test_fpsample_picks_match_reference_with_labelled_starts(small_pool, small_reference_picks):
    optional_peer("fpsample")
    np.testing.assert_array_equal(_peers.fpsample_fps(*small_pool, SMALL_BUDGET), small_reference_picks)


def test_fpsample_picks_match_reference_from_a_first_index(small_pool):
    optional_peer("fpsample")
    emb, _ = small_pool
    ours = uwe_kernels.kcenter_greedy(emb, None, SMALL_BUDGET, first=9, backend="reference")
    np.testing.assert_array_equal(_peers.fpsample_fps(emb, np.empty(0, np.int64), SMALL_BUDGET, first=9), ours)


@pytest.fixture(scope="module")
def small_badge():
    g = np.random.default_rng(8)
    scores = (3 * g.standard_normal((SMALL_N, SMALL_K))).astype(np.float32)
    feats = np.abs(g.standard_normal((SMALL_N, SMALL_D))).astype(np.float32)
    return scores, feats, np.asarray(uwe_kernels.badge_embedding(scores, feats, backend="reference"))


def test_badge_init_centers_starts_at_our_max_norm_pick_and_never_repeats(small_badge):
    optional_peer("scipy")
    _, _, emb = small_badge
    picks = _peers.badge_init_centers(emb, SMALL_BUDGET)
    ours = np.asarray(uwe_kernels.kmeans_pp(emb, SMALL_BUDGET, backend="reference"))
    assert picks[0] == ours[0]
    assert len(set(picks.tolist())) == SMALL_BUDGET


def test_skactiveml_badge_starts_at_our_max_norm_pick_and_never_repeats(small_badge):
    optional_peer("skactiveml", "scikit-activeml")
    scores, feats, emb = small_badge
    picks = _peers.skactiveml_badge(scores, feats, SMALL_BUDGET)
    ours = np.asarray(uwe_kernels.kmeans_pp(emb, SMALL_BUDGET, backend="reference"))
    assert picks[0] == ours[0]
    assert len(set(picks.tolist())) == SMALL_BUDGET
