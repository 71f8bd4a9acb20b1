from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import loop
from helpers import gaussian_pool, logits

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")
from uwe_kernels import demo  # noqa: E402

STRATEGIES = {s.name: s for s in loop.default_strategies(tau=1.0)}


class NearestCentroid(loop.LearnerBase):
    def fit(self, X, y):
        self.classes = np.arange(10)
        self.centroids = np.stack([X[y == c].mean(0) if (y == c).any() else np.full(X.shape[1], 1e3)
                                   for c in self.classes])

    def features(self, X):
        return np.asarray(X, dtype=np.float32)[:, :16]

    def logits(self, X):
        return -((X[:, None, :] - self.centroids[None]) ** 2).sum(-1)


@pytest.fixture(scope="module")
def tiny_digits():
    torch.set_num_threads(1)
    return demo.digits_dataset(pool=240)


def tiny_mlp(data):
    return lambda seed: demo.MLPLearner(data.X_train.shape[1], 10, seed, hidden=16, epochs=8)


def run_tiny(data, names, seeds=(0,), cycles=2, budget=12):
    return loop.run_loop(data, tiny_mlp(data), [STRATEGIES[n] for n in names], seeds=seeds, initial=10,
                         budget=budget, cycles=cycles)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_loop_end_to_end_grows_labelled_set_without_relabelling(tiny_digits, name):
    res = run_tiny(tiny_digits, [name], cycles=3)
    recs = sorted(res.records, key=lambda r: r.cycle)
    assert [r.n_labelled for r in recs] == [10, 22, 34]
    start = loop.initial_batch(len(tiny_digits.X_train), 10, 0)
    labelled = set(start.tolist())
    for r in recs[:-1]:
        assert len(r.picks) == 12 and len(set(r.picks)) == 12
        assert labelled.isdisjoint(r.picks)
        assert all(0 <= p < len(tiny_digits.X_train) for p in r.picks)
        labelled |= set(r.picks)
        assert 0.0 <= r.accuracy <= 1.0 and r.select_s >= 0 and r.extract_s >= 0
    assert recs[-1].picks == []


def test_every_strategy_starts_from_the_same_batch_per_seed(tiny_digits):
    res = run_tiny(tiny_digits, ["random", "uwe", "badge"], seeds=(0, 1))
    for seed in (0, 1):
        first = {r.accuracy for r in res.records if r.seed == seed and r.cycle == 0}
        assert len(first) == 1
    assert not np.array_equal(loop.initial_batch(240, 10, 0), loop.initial_batch(240, 10, 1))


def test_seeds_reproduce(tiny_digits):
    a = run_tiny(tiny_digits, ["uwe", "badge", "random"], seeds=(3,))
    b = run_tiny(tiny_digits, ["uwe", "badge", "random"], seeds=(3,))
    key = lambda r: (r.strategy, r.cycle, r.n_labelled, r.accuracy, r.picks)  # noqa: E731
    assert [key(r) for r in a.records] == [key(r) for r in b.records]
    assert [(c.corr_uwe, c.overlap) for c in a.checks] == [(c.corr_uwe, c.overlap) for c in b.checks]


def test_uwe_runs_record_badge_checks(tiny_digits):
    res = run_tiny(tiny_digits, ["uwe"], seeds=(0, 1), cycles=3)
    assert len(res.checks) == 4
    for c in res.checks:
        assert -1 <= c.corr_uwe <= 1 and -1 <= c.corr_badge <= 1
        assert 0 <= c.overlap <= 1
        assert c.factored_equal


def test_custom_learner_plugs_in(tiny_digits):
    assert isinstance(NearestCentroid(), loop.Learner)
    res = loop.run_loop(tiny_digits, lambda seed: NearestCentroid(), [STRATEGIES["coreset"]], seeds=(0,),
                        initial=30, budget=10, cycles=3, checks=False)
    assert [r.n_labelled for r in res.records] == [30, 40, 50]
    assert res.records[-1].accuracy > 0.5


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_select_batch_sizes_and_never_labelled(name):
    scores, feats = logits(123, 7, seed=4), gaussian_pool(123, 5, seed=5)
    mask = np.zeros(123, dtype=bool)
    mask[::3] = True
    scores_before, feats_before = scores.copy(), feats.copy()
    picks = loop.select_batch(STRATEGIES[name], scores, feats, mask, 17, seed=2)
    assert picks.dtype == np.int64 and picks.shape == (17,)
    assert len(np.unique(picks)) == 17 and not mask[picks].any()
    np.testing.assert_array_equal(scores, scores_before)
    np.testing.assert_array_equal(feats, feats_before)


def test_select_batch_matches_public_select():
    scores, feats = logits(90, 4, seed=6), gaussian_pool(90, 6, seed=7)
    mask = np.zeros(90, dtype=bool)
    mask[[3, 50]] = True
    for name, method, kind in [("uwe", "uwe", "entropy"), ("badge", "badge", None), ("coreset", "coreset", None),
                               ("uncertainty-margin", "uncertainty", "margin"), ("random", "random", None)]:
        got = loop.select_batch(STRATEGIES[name], scores, feats, mask, 9, seed=11)
        np.testing.assert_array_equal(got, uk.select(scores, feats, 9, method=method, kind=kind,
                                                     labelled_idx=mask, seed=11))


def test_uwe_kmpp_is_kmeans_pp_on_uwe():
    scores, feats = logits(70, 3, seed=8), gaussian_pool(70, 4, seed=9)
    mask = np.zeros(70, dtype=bool)
    got = loop.select_batch(loop.Strategy("x", "uwe_kmpp", tau=0.5), scores, feats, mask, 6, seed=5)
    want = uk.kmeans_pp(uk.uwe(scores, feats, "entropy", 0.5), 6, seed=5)
    np.testing.assert_array_equal(got, want)


def test_strategy_rejects_bad_method_kind_and_tau():
    with pytest.raises(ValueError, match="unknown strategy method"):
        loop.Strategy("x", "kmeans")
    with pytest.raises(ValueError, match="unknown uncertainty kind"):
        loop.Strategy("x", "uwe", kind="variance")
    with pytest.raises(ValueError, match="tau"):
        loop.Strategy("x", "uwe", tau=-1.0)


def test_run_loop_rejects_bad_sizes_and_duplicate_names(tiny_digits):
    make = tiny_mlp(tiny_digits)
    with pytest.raises(ValueError, match="exceed the pool"):
        loop.run_loop(tiny_digits, make, [STRATEGIES["random"]], initial=200, budget=50, cycles=3)
    with pytest.raises(ValueError, match="unique"):
        loop.run_loop(tiny_digits, make, [STRATEGIES["random"]] * 2, cycles=1)
    with pytest.raises(ValueError, match="cycles"):
        loop.run_loop(tiny_digits, make, [STRATEGIES["random"]], cycles=0)


def test_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        loop.Dataset("d", np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), np.zeros(1))


def test_initial_batch_is_distinct_in_range_and_seeded():
    a = loop.initial_batch(50, 20, 7)
    assert len(np.unique(a)) == 20 and a.min() >= 0 and a.max() < 50
    np.testing.assert_array_equal(a, loop.initial_batch(50, 20, 7))
    with pytest.raises(ValueError):
        loop.initial_batch(5, 6, 0)


def test_pearson_matches_numpy_and_edge_cases():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=101), rng.normal(size=101)
    assert loop.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert loop.pearson(a, 3 * a + 1) == pytest.approx(1.0)
    assert loop.pearson(a, -a) == pytest.approx(-1.0)
    assert np.isnan(loop.pearson(a, np.ones(101)))
    assert np.isnan(loop.pearson([1.0], [2.0]))
    with pytest.raises(ValueError, match="equal lengths"):
        loop.pearson(a, b[:-1])


def test_badge_checks_on_random_outputs():
    scores, feats = logits(150, 5, seed=1), gaussian_pool(150, 6, seed=2)
    mask = np.zeros(150, dtype=bool)
    mask[:10] = True
    c = loop.badge_checks(scores, feats, mask, 12, seed=4)
    assert c["factored_equal"] is True
    assert 0 <= c["overlap"] <= 1
    u = uk.uncertainty(scores, "entropy")[10:]
    norm = np.linalg.norm(uk.uwe(scores, feats, "entropy", 1.0)[10:], axis=1)
    assert c["corr_uwe"] == pytest.approx(np.corrcoef(norm, u)[0, 1], abs=1e-5)


def test_penalty_matrix_hand_checked_single_dataset():
    a = np.array([[0.90, 0.50], [0.91, 0.60], [0.92, 0.55]])
    b = np.array([[0.50, 0.50], [0.51, 0.60], [0.52, 0.55]])
    names, P, Phi = loop.penalty_matrix({"d": {"A": a, "B": b}})
    assert names == ["A", "B"]
    np.testing.assert_allclose(P, [[0.0, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(Phi, [0.0, 0.5])


def test_penalty_matrix_hand_checked_two_datasets_three_methods():
    a1 = np.array([[0.90, 0.50], [0.91, 0.60], [0.92, 0.55]])
    b1 = np.array([[0.50, 0.50], [0.51, 0.60], [0.52, 0.55]])
    c1 = np.array([[0.70, 0.51], [0.50, 0.59], [0.90, 0.56]])
    a2 = np.array([[0.1], [0.2], [0.15]])
    b2 = np.array([[0.8], [0.9], [0.85]])
    c2 = np.array([[0.8], [0.9], [0.85]])
    names, P, Phi = loop.penalty_matrix({"d1": {"A": a1, "B": b1, "C": c1}, "d2": {"A": a2, "B": b2, "C": c2}})
    assert names == ["A", "B", "C"]
    np.testing.assert_allclose(P, [[0.0, 0.25, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    np.testing.assert_allclose(Phi, [0.5, 0.125, 0.0])


def test_penalty_matrix_one_seed_or_equal_constants_is_no_win():
    names, P, Phi = loop.penalty_matrix({"d": {"A": np.array([[0.9, 0.8]]), "B": np.array([[0.1, 0.2]])}})
    assert not P.any() and not Phi.any()
    _, P, _ = loop.penalty_matrix({"d": {"A": np.full((3, 2), 0.5), "B": np.full((3, 2), 0.5)}})
    assert not P.any()


def test_penalty_matrix_rejects_ragged_input():
    with pytest.raises(ValueError, match="same shape"):
        loop.penalty_matrix({"d": {"A": np.zeros((3, 2)), "B": np.zeros((2, 2))}})
    with pytest.raises(ValueError):
        loop.penalty_matrix({})


def test_results_tables_and_files(tiny_digits, tmp_path):
    res = run_tiny(tiny_digits, ["random", "uwe"], seeds=(0, 1))
    assert res.strategies() == ["random", "uwe"] and res.datasets() == ["digits"]
    assert res.table("digits", "uwe").shape == (2, 2)
    np.testing.assert_array_equal(res.table("digits", "uwe", "n_labelled"), [[10, 22], [10, 22]])
    res.to_json(tmp_path / "r.json")
    res.to_csv(tmp_path / "r.csv")
    import json
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["records"]) == 8 and len(data["checks"]) == 2
    assert (tmp_path / "r.csv").read_text().count("\n") == 9


def test_demo_report_and_plot(tiny_digits, tmp_path):
    cfg = dataclasses.replace(demo.DemoConfig(), seeds=2, cycles=2, initial=10, budget=10, epochs=5, hidden=8,
                              strategies=("random", "uwe", "badge"), progress=False)
    res = demo.run_demo(cfg, tiny_digits)
    text = demo.report(res)
    for part in ("Test accuracy on digits", "Pairwise penalty matrix", "Phi", "corr(|UWE|, u)",
                 "factored BADGE picks == explicit BADGE picks: yes", "Seconds per cycle", "U+F"):
        assert part in text
    demo.plot(res, str(tmp_path / "a.png"))
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_rejects_unknown_strategy(tiny_digits):
    cfg = dataclasses.replace(demo.DemoConfig(), strategies=("nope",), progress=False)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        demo.run_demo(cfg, tiny_digits)


def test_digits_dataset_split():
    full = demo.digits_dataset()
    assert full.X_train.shape == (1297, 64) and full.X_test.shape == (500, 64)
    assert 0 <= full.X_train.min() and full.X_train.max() <= 1
    small = demo.digits_dataset(pool=200)
    assert small.X_train.shape == (200, 64) and len(np.unique(small.y_train)) == 10
