from __future__ import annotations

import math
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import softmax
from scipy.stats import chi2

from uwe_kernels import reference as R
from uwe_kernels import rng

KINDS = ("entropy", "bvsb", "margin", "least_confidence")
HALF = (np.float16, ml_dtypes.bfloat16)


def gaussian(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def factored(weights, features):
    return SimpleNamespace(weights=weights, features=features)


def materialise(emb):
    w, f = np.asarray(emb.weights, np.float64), np.asarray(emb.features, np.float64)
    if w.ndim == 1:
        return w[:, None] * f
    return (w[:, :, None] * f[:, None, :]).reshape(len(f), -1)


def badge_factors(n, k, d, seed=0):
    g = np.random.default_rng(seed)
    return factored(R.badge_weights(g.standard_normal((n, k)), True), g.standard_normal((n, d)))


def uwe_factors(n, d, seed=0):
    g = np.random.default_rng(seed)
    return factored(g.uniform(0.1, 2.0, n), g.standard_normal((n, d)))


def kcg(emb, labelled=(), budget=1, first=None, n=None):
    n = len(emb.features if hasattr(emb, "weights") else emb) if n is None else n
    mask = np.zeros(n, bool)
    mask[list(labelled)] = True
    return R.kcenter_greedy(emb, mask, budget, first, algorithm="brute", progress=None, accum_dtype=np.float64)


def kmpp(emb, labelled=(), budget=1, seed=0, first="max_norm"):
    n = len(emb.features if hasattr(emb, "weights") else emb)
    mask = np.zeros(n, bool)
    mask[list(labelled)] = True
    return R.kmeans_pp(emb, mask, budget, seed, first, algorithm="brute", progress=None, accum_dtype=np.float64)


def unc(scores, kind, from_logits=True):
    return R.uncertainty(np.asarray(scores, np.float64), kind, from_logits, out_dtype=np.float64,
                         accum_dtype=np.float64)


def test_splitmix64_seed0_matches_reference_outputs():
    assert [rng.splitmix64(0, t) for t in range(3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_uniform_is_top_53_bits_of_splitmix64():
    assert rng.uniform(0, 0) == (0xE220A8397B1DCDAF >> 11) / 2.0 ** 53


@pytest.mark.parametrize("seed", [0, 1, 12345, 2 ** 63, 2 ** 64 - 1])
@pytest.mark.parametrize("start", [0, 7, 2 ** 40])
def test_vectorised_uniforms_match_scalar_draws(seed, start):
    r = rng.uniforms(seed, start, 50)
    assert r.dtype == np.float64
    assert r.tolist() == [rng.uniform(seed, start + t) for t in range(50)]
    assert np.all((r >= 0) & (r < 1))


def test_uniforms_of_zero_count_is_empty():
    assert rng.uniforms(3, 0, 0).shape == (0,)


def test_draws_counts_every_draw():
    d = rng.Draws(np.uint64(99))
    assert [d.next() for _ in range(4)] == [rng.uniform(99, t) for t in range(4)]
    assert d.t == 4


@pytest.mark.parametrize("seed", [0, 5, 2 ** 64 - 1, np.uint64(2 ** 64 - 1), np.int32(7)])
def test_check_seed_accepts_integers_in_range(seed):
    assert rng.check_seed(seed) == int(seed)
    assert type(rng.check_seed(seed)) is int


@pytest.mark.parametrize("seed", [-1, 2 ** 64, True, np.bool_(False), 1.0, "3", None])
def test_check_seed_rejects_everything_else(seed):
    with pytest.raises(ValueError):
        rng.check_seed(seed)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_entropy_of_uniform_logits_is_log_k(k):
    assert unc(np.full((2, k), 3.5), "entropy") == pytest.approx([math.log(k)] * 2, rel=1e-14)


def test_hand_computed_uncertainties_of_probabilities():
    p = [[0.5, 0.3, 0.2]]
    entropy = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert unc(p, "entropy", False)[0] == pytest.approx(entropy)
    assert unc(p, "bvsb", False)[0] == pytest.approx(0.6)
    assert unc(p, "margin", False)[0] == pytest.approx(0.8)
    assert unc(p, "least_confidence", False)[0] == pytest.approx(0.5)


def test_bvsb_zero_over_zero_is_one():
    assert unc([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]], "bvsb", False).tolist() == [1.0, 0.0]


def test_zero_log_zero_is_zero():
    assert unc([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], "entropy", False).tolist() == [0.0, 0.0]


def test_probabilities_are_not_renormalised():
    assert unc([[0.4, 0.1]], "least_confidence", False)[0] == pytest.approx(0.6)
    assert unc([[0.4, 0.1]], "margin", False)[0] == pytest.approx(0.7)


@pytest.mark.parametrize("kind", KINDS)
def test_logit_uncertainty_equals_that_of_softmax_probabilities(kind):
    z = gaussian(5000, 7, seed=1) * 3
    assert np.allclose(unc(z, kind), unc(softmax(z, axis=1), kind, False), rtol=1e-12, atol=1e-14)


def test_entropy_matches_scipy_over_several_chunks():
    z = gaussian(9000, 5, seed=2)
    p = softmax(z, axis=1)
    assert np.allclose(unc(z, "entropy"), -(p * np.log(p)).sum(1), rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_huge_logits_give_finite_exact_uncertainties(kind):
    z = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])
    u = unc(z, kind)
    expected = {"entropy": [0.0, math.log(2), math.log(3)], "bvsb": [0.0, 1.0, 1.0],
                "margin": [0.0, 1.0, 1.0], "least_confidence": [0.0, 0.5, 2 / 3]}[kind]
    assert np.all(np.isfinite(u)) and np.all(u >= 0)
    assert u == pytest.approx(expected, rel=1e-14, abs=1e-300)


def test_entropy_of_a_certain_row_is_never_negative_so_fractional_powers_stay_finite():
    z = np.array([[40.0, 0.0, 0.0], [700.0, -700.0, 0.0]])
    assert np.all(unc(z, "entropy") >= 0)
    out = R.uwe(z, np.ones((2, 3)), "entropy", 0.5, True, out_dtype=np.float64, accum_dtype=np.float64)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("kind", KINDS)
def test_uwe_rows_are_u_to_the_tau_times_features(kind, tau):
    z, f = gaussian(300, 4, seed=3), gaussian(300, 6, seed=4)
    out = R.uwe(z, f, kind, tau, True, out_dtype=np.float64, accum_dtype=np.float32)
    assert out.dtype == np.float64
    assert np.allclose(out, unc(z, kind)[:, None] ** tau * f, rtol=1e-13, atol=0)


def test_uwe_tau_zero_gives_plain_features_even_where_u_is_zero():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    f = gaussian(2, 3)
    assert np.array_equal(R.uwe(p, f, "entropy", 0.0, False, out_dtype=np.float64, accum_dtype=None), f)


def test_outputs_are_cast_to_out_dtype():
    z, f = gaussian(10, 3), gaussian(10, 2)
    assert R.uwe(z, f, "bvsb", 1.0, True, out_dtype=np.float16, accum_dtype=np.float32).dtype == np.float16
    assert R.uncertainty(z, "bvsb", True, out_dtype=ml_dtypes.bfloat16, accum_dtype=None).dtype == ml_dtypes.bfloat16
    assert R.badge_embedding(z, f, True, out_dtype=np.float32, accum_dtype=None).dtype == np.float32


def views_of(x):
    return [x, x[::-1], np.asfortranarray(x), x.repeat(2, axis=0)[::2]]


@pytest.mark.parametrize("dtype", HALF + (np.float32,))
def test_low_precision_strided_inputs_match_float64_of_the_rounded_inputs(dtype):
    z = (gaussian(5000, 5, seed=5) * 4).astype(dtype)
    f = gaussian(5000, 3, seed=6).astype(dtype)
    for zv, fv in zip(views_of(z), views_of(f)):
        before = (zv.copy(), fv.copy())
        z64, f64 = zv.astype(np.float64), fv.astype(np.float64)
        for kind in KINDS:
            got = R.uwe(zv, fv, kind, 1.0, True, out_dtype=np.float64, accum_dtype=np.float32)
            assert np.array_equal(got, R.uwe(z64, f64, kind, 1.0, True, out_dtype=np.float64, accum_dtype=None))
        got = R.badge_embedding(zv, fv, True, out_dtype=np.float64, accum_dtype=np.float32)
        assert np.array_equal(got, R.badge_embedding(z64, f64, True, out_dtype=np.float64, accum_dtype=None))
        assert np.array_equal(before[0], zv) and np.array_equal(before[1], fv)


def test_zero_stride_inputs_are_read_as_given():
    z = np.broadcast_to(np.array([1.0, 2.0, 0.5], np.float16), (6, 3))
    u = R.uncertainty(z, "entropy", True, out_dtype=np.float64, accum_dtype=None)
    assert np.all(u == u[0]) and u[0] == pytest.approx(unc([[1.0, 2.0, 0.5]], "entropy")[0])


def test_badge_weights_by_hand_with_lowest_class_on_ties():
    p = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    w = R.badge_weights(p, False, out_dtype=np.float64, accum_dtype=np.float64)
    assert np.allclose(w, [[0.2, -0.5, 0.3], [-0.6, 0.4, 0.2]], rtol=0, atol=1e-15)


def test_badge_weights_from_logits_are_softmax_minus_onehot_of_argmax():
    z = gaussian(50, 4, seed=7)
    w = R.badge_weights(z, True, out_dtype=np.float64, accum_dtype=None)
    expected = softmax(z, axis=1)
    expected[np.arange(50), z.argmax(1)] -= 1
    assert np.allclose(w, expected, rtol=1e-13, atol=1e-15)


def test_badge_embedding_is_class_major_outer_product():
    z, f = gaussian(20, 3, seed=8), gaussian(20, 5, seed=9)
    w = R.badge_weights(z, True, out_dtype=np.float64, accum_dtype=None)
    emb = R.badge_embedding(z, f, True, out_dtype=np.float64, accum_dtype=None)
    assert emb.shape == (20, 15)
    for i in range(20):
        for c in range(3):
            assert np.allclose(emb[i, c * 5 : (c + 1) * 5], w[i, c] * f[i], rtol=1e-15, atol=0)


def tiny_segmentation():
    p0 = np.array([[0.9, 0.9, 0.6, 0.6], [0.9, 0.9, 0.6, 0.6], [0.5, 0.5, 1.0, 1.0], [0.7, 0.7, 0.8, 0.8]])
    scores = np.stack([p0, 1 - p0])[None]
    features = np.array([[[1.0, 3.0], [5.0, 7.0]], [[2.0, 4.0], [6.0, 8.0]]])[None]
    return scores, features


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_segmentation_by_hand_with_stride_two(tau):
    scores, features = tiny_segmentation()
    out = R.uwe_segmentation(scores, features, (2, 2), "least_confidence", tau, False,
                             out_dtype=np.float64, accum_dtype=None)
    u = np.array([0.1, 0.4, 0.4, 0.1]) ** tau
    assert np.allclose(out, u[:, None] * [[1, 2], [3, 4], [5, 6], [7, 8]], rtol=1e-14)


def test_segmentation_whole_image_and_wide_regions_by_hand():
    scores, features = tiny_segmentation()
    whole = R.uwe_segmentation(scores, features, (4, 4), "least_confidence", 1.0, False,
                               out_dtype=np.float64, accum_dtype=None)
    assert np.allclose(whole, [[1.0, 1.25]], rtol=1e-14)
    rows = R.uwe_segmentation(scores, features, (2, 4), "least_confidence", 1.0, False,
                              out_dtype=np.float64, accum_dtype=None)
    assert np.allclose(rows, [[0.25 * 2, 0.25 * 3], [0.25 * 6, 0.25 * 7]], rtol=1e-14)


@pytest.mark.parametrize("dtype", (np.float64,) + HALF)
def test_segmentation_equals_regionwise_loop(dtype):
    g = np.random.default_rng(10)
    N, K, C, s, rh, rw = 2, 3, 4, 2, 4, 6
    scores = (g.standard_normal((N, K, 8, 12)) * 2).astype(dtype)
    features = g.standard_normal((N, C, 4, 6)).astype(dtype)
    out = R.uwe_segmentation(scores, features, (rh, rw), "margin", 0.7, True, out_dtype=np.float64,
                             accum_dtype=np.float32)
    s64, f64 = scores.astype(np.float64), features.astype(np.float64)
    expected = []
    for n in range(N):
        for i in range(8 // rh):
            for j in range(12 // rw):
                pix = s64[n, :, i * rh : (i + 1) * rh, j * rw : (j + 1) * rw].reshape(K, -1).T
                cells = f64[n, :, i * rh // s : (i + 1) * rh // s, j * rw // s : (j + 1) * rw // s]
                expected.append(unc(pix, "margin").mean() ** 0.7 * cells.reshape(C, -1).mean(1))
    assert np.allclose(out, expected, rtol=1e-13)


def detection_case():
    scores = np.array([[0.6, 0.4], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    features = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [10.0, 10.0], [4.0, 4.0], [1.0, 1.0]])
    ids = np.array([0, 2, 0, 0, 2, 2], np.int64)
    return scores, features, ids


def test_detection_max_by_hand_with_empty_image_and_tied_uncertainties():
    scores, features, ids = detection_case()
    out = R.uwe_detection(scores, features, ids, 3, "least_confidence", 1.0, "max", False,
                          out_dtype=np.float64, accum_dtype=None)
    assert np.allclose(out, [[0.4, 0.0, 0.0, 0.0], [0, 0, 0, 0], [0.5, 0.5, 0.0, 0.3]], rtol=1e-14, atol=0)


def test_detection_mean_by_hand():
    scores, features, ids = detection_case()
    out = R.uwe_detection(scores, features, ids, 4, "least_confidence", 1.0, "mean", False,
                          out_dtype=np.float64, accum_dtype=None)
    expected = [[2.2 / 3, 1.8 / 3, 0, 0], [0, 0, 0, 0], [0.5, 0.5, 0.4, 0.55], [0, 0, 0, 0]]
    assert np.allclose(out, expected, rtol=1e-14, atol=1e-16)


def test_detection_max_uses_u_to_pick_and_u_to_the_tau_to_weigh():
    scores, features, ids = detection_case()
    out = R.uwe_detection(scores, features, ids, 3, "least_confidence", 0.0, "max", False,
                          out_dtype=np.float64, accum_dtype=None)
    assert np.allclose(out[0], [1.0, 0.0, 0.0, 0.0]) and np.allclose(out[2], [1.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("agg", ["max", "mean"])
def test_detection_without_boxes_is_all_zero(agg):
    out = R.uwe_detection(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0, np.int64), 2, "bvsb", 1.0, agg,
                          False, out_dtype=np.float32, accum_dtype=None)
    assert out.shape == (2, 6) and out.dtype == np.float32 and not out.any()


def test_kcenter_greedy_three_points_by_hand():
    x = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    picks, dists = kcg(x, budget=3)
    assert picks.tolist() == [1, 2, 0] and picks.dtype == np.int64
    assert dists.tolist() == [np.inf, math.sqrt(10), 1.0] and dists.dtype == np.float64
    picks, dists = kcg(x, labelled=[0], budget=2)
    assert picks.tolist() == [1, 2] and dists.tolist() == [3.0, 1.0]
    picks, dists = kcg(x, budget=3, first=0)
    assert picks.tolist() == [0, 1, 2] and dists.tolist() == [np.inf, 3.0, 1.0]


def test_kcenter_greedy_ties_go_to_lowest_index_and_zeros_are_picked():
    x = np.array([[0.0], [1.0], [-1.0], [0.0], [0.0]])
    picks, dists = kcg(x, labelled=[0], budget=4)
    assert picks.tolist() == [1, 2, 3, 4] and dists.tolist() == [1.0, 1.0, 0.0, 0.0]
    picks, _ = kcg(np.array([[1.0], [-1.0], [0.5]]), budget=1)
    assert picks.tolist() == [0]


@pytest.mark.parametrize("labelled", [(), (0, 5, 17, 17, 99)])
def test_kcenter_greedy_properties(labelled):
    x = gaussian(120, 5, seed=11)
    picks, dists = kcg(x, labelled=labelled, budget=40)
    assert len(set(picks.tolist())) == 40 and picks.min() >= 0 and picks.max() < 120
    assert not set(picks.tolist()) & set(labelled)
    tail = dists if labelled else dists[1:]
    assert np.all(np.diff(tail) <= 0)
    for t, p in enumerate(picks):
        centres = list(labelled) + picks[:t].tolist()
        if centres:
            assert dists[t] == pytest.approx(np.sqrt(cdist(x[[p]], x[centres], "sqeuclidean").min()), rel=1e-12)


def test_kcenter_greedy_budget_zero_and_budget_all():
    x = gaussian(30, 3, seed=12)
    picks, dists = kcg(x, labelled=[2, 3], budget=0)
    assert picks.shape == (0,) and dists.shape == (0,) and picks.dtype == np.int64
    picks, dists = kcg(x, labelled=[2, 3], budget=28)
    assert sorted(picks.tolist()) == sorted(set(range(30)) - {2, 3})
    picks, _ = kcg(x, budget=30)
    assert sorted(picks.tolist()) == list(range(30))


def test_kcenter_greedy_single_row():
    picks, dists = kcg(np.zeros((1, 1)), budget=1)
    assert picks.tolist() == [0] and dists.tolist() == [np.inf]


@pytest.mark.parametrize("dtype", HALF)
def test_kcenter_greedy_on_half_precision_equals_float64_of_rounded_rows(dtype):
    x = gaussian(200, 6, seed=13).astype(dtype)[::-1]
    a = kcg(x, labelled=[1, 4], budget=30)
    b = kcg(x.astype(np.float64), labelled=[1, 4], budget=30)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("make", [lambda: uwe_factors(150, 5, seed=14), lambda: badge_factors(150, 4, 6, seed=15)])
def test_kcenter_greedy_on_factors_equals_materialised(make):
    emb = make()
    dense = materialise(emb)
    for labelled in [(), (3, 8)]:
        a, b = kcg(emb, labelled=labelled, budget=25), kcg(dense, labelled=labelled, budget=25)
        assert np.array_equal(a[0], b[0])
        assert np.allclose(a[1], b[1], rtol=1e-8)


def test_kmeans_pp_is_deterministic_per_seed_and_varies_with_seed():
    x = gaussian(300, 4, seed=16)
    a, b, c = kmpp(x, budget=20, seed=7), kmpp(x, budget=20, seed=7), kmpp(x, budget=20, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.dtype == np.int64


@pytest.mark.parametrize("first", ["max_norm", "random", 9])
def test_kmeans_pp_properties(first):
    x = gaussian(80, 3, seed=17)
    picks = kmpp(x, budget=80, seed=3, first=first)
    assert sorted(picks.tolist()) == list(range(80))
    picks = kmpp(x, labelled=[1, 2, 2, 50], budget=77, seed=3, first=first)
    assert sorted(picks.tolist()) == sorted(set(range(80)) - {1, 2, 50})
    assert kmpp(x, budget=0, first=first).shape == (0,)


def test_kmeans_pp_first_modes():
    x = gaussian(40, 3, seed=18)
    assert kmpp(x, first="max_norm")[0] == np.argmax((x * x).sum(1))
    assert kmpp(x, first=11)[0] == 11
    assert kmpp(x, seed=5, first="random")[0] == int(rng.uniform(5, 0) * 40)


def expected_pick(D, r):
    P = np.cumsum(D)
    return int(np.searchsorted(P, r * P[-1], side="right"))


def test_kmeans_pp_prefix_sum_rule_and_draw_counting():
    x = gaussian(40, 3, seed=19)
    picks = kmpp(x, budget=3, seed=21, first="random")
    D = ((x - x[picks[0]]) ** 2).sum(1)
    D[picks[0]] = 0
    assert picks[1] == expected_pick(D, rng.uniform(21, 1))
    D = np.minimum(D, ((x - x[picks[1]]) ** 2).sum(1))
    D[picks[1]] = 0
    assert picks[2] == expected_pick(D, rng.uniform(21, 2))
    picks = kmpp(x, labelled=[0, 1], budget=1, seed=21, first="random")
    D = cdist(x, x[[0, 1]], "sqeuclidean").min(1)
    D[[0, 1]] = 0
    assert picks[0] == expected_pick(D, rng.uniform(21, 0))


def test_kmeans_pp_first_pick_frequencies_follow_squared_distances():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.5, 1.5], [-1.0, -1.0], [3.0, 0.0]])
    D = (x ** 2).sum(1)
    seeds = 4000
    counts = np.bincount([kmpp(x, labelled=[0], budget=1, seed=s)[0] for s in range(seeds)], minlength=6)
    assert counts[0] == 0
    expected = seeds * D[1:] / D.sum()
    stat = ((counts[1:] - expected) ** 2 / expected).sum()
    assert chi2.sf(stat, df=4) > 1e-3


def test_kmeans_pp_falls_back_to_uniform_when_all_distances_are_zero():
    x = np.ones((7, 2))
    for seed in range(5):
        picks = kmpp(x, labelled=[2], budget=3, seed=seed)
        free = [0, 1, 3, 4, 5, 6]
        expected = []
        for t in range(3):
            expected.append(free.pop(int(rng.uniform(seed, t) * len(free))))
        assert picks.tolist() == expected
    firsts = {int(kmpp(x, labelled=[2], budget=1, seed=s)[0]) for s in range(200)}
    assert firsts == {0, 1, 3, 4, 5, 6}


def test_kmeans_pp_uniform_fallback_after_duplicates_are_exhausted():
    x = np.array([[0.0], [5.0], [5.0], [0.0]])
    picks = kmpp(x, budget=4, seed=2)
    assert picks[0] == 1 and picks[1] in (0, 3)
    assert sorted(picks.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("make", [lambda: uwe_factors(100, 5, seed=20), lambda: badge_factors(100, 3, 4, seed=21)])
def test_kmeans_pp_on_factors_equals_materialised(make):
    emb = make()
    dense = materialise(emb)
    for labelled in [(), (0, 7)]:
        assert np.array_equal(kmpp(emb, labelled=labelled, budget=30, seed=4),
                              kmpp(dense, labelled=labelled, budget=30, seed=4))


def test_factored_sq_dist_equals_materialised_distances():
    for emb in (uwe_factors(30, 4, seed=22), badge_factors(30, 5, 3, seed=23)):
        d = R.factored_sq_dist(emb.weights, emb.features, emb.weights[:9], emb.features[:9])
        dense = materialise(emb)
        assert np.allclose(d, cdist(dense, dense[:9], "sqeuclidean"), rtol=1e-10, atol=1e-12)
        assert np.all(d >= 0)


@pytest.mark.parametrize("m", [1, 13, 700])
def test_min_distances_equals_brute_force_cdist(m):
    x, c = gaussian(57, 4, seed=24), gaussian(m, 4, seed=25)
    d, arg = R.min_distances(x, c, return_argmin=True, out_dtype=np.float64, accum_dtype=None)
    full = cdist(x, c, "sqeuclidean")
    assert np.allclose(d, full.min(1), rtol=1e-12) and np.array_equal(arg, full.argmin(1))
    assert arg.dtype == np.int64


def test_min_distances_ties_go_to_lowest_centre_and_argmin_is_optional():
    x = np.array([[0.0], [2.0]])
    c = np.array([[1.0], [-1.0], [3.0], [1.0]])
    d, arg = R.min_distances(x, c, return_argmin=True, out_dtype=np.float64, accum_dtype=None)
    assert d.tolist() == [1.0, 1.0] and arg.tolist() == [0, 0]
    d, arg = R.min_distances(x.astype(np.float16), c, return_argmin=False, out_dtype=np.float16, accum_dtype=None)
    assert arg is None and d.dtype == np.float16


@pytest.mark.parametrize("make", [lambda s: uwe_factors(64, 5, seed=s), lambda s: badge_factors(64, 3, 4, seed=s)])
def test_min_distances_on_factors_equals_materialised(make):
    emb, centres = make(26), make(27)
    d, arg = R.min_distances(emb, centres, return_argmin=True, out_dtype=np.float64, accum_dtype=None)
    full = cdist(materialise(emb), materialise(centres), "sqeuclidean")
    assert np.allclose(d, full.min(1), rtol=1e-9, atol=1e-12) and np.array_equal(arg, full.argmin(1))


@pytest.mark.parametrize("dtype", HALF)
def test_min_distances_on_half_precision_equals_float64_of_rounded_rows(dtype):
    x, c = gaussian(5000, 3, seed=28).astype(dtype), gaussian(20, 3, seed=29).astype(dtype)[::2]
    a = R.min_distances(x, c, return_argmin=True, out_dtype=np.float64, accum_dtype=np.float32)
    b = R.min_distances(x.astype(np.float64), c.astype(np.float64), return_argmin=True, out_dtype=np.float64,
                        accum_dtype=None)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_selection_leaves_inputs_untouched():
    emb = badge_factors(40, 3, 2, seed=30)
    w, f = emb.weights.copy(), emb.features.copy()
    mask = np.zeros(40, bool)
    mask[[1, 2]] = True
    R.kmeans_pp(emb, mask, 10, 0, "max_norm", algorithm="brute", progress=None, accum_dtype=None)
    R.kcenter_greedy(emb, mask, 10, None, algorithm="pruned", progress=None, accum_dtype=None)
    assert np.array_equal(emb.weights, w) and np.array_equal(emb.features, f)
    assert mask.sum() == 2 and mask[1] and mask[2]


def test_progress_callback_reports_the_final_count():
    seen = []
    R.kcenter_greedy(gaussian(20, 2), np.zeros(20, bool), 5, None, algorithm="brute", progress=seen.append,
                     accum_dtype=None)
    assert seen[-1] == 5
