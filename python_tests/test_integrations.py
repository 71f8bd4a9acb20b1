from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk

FRAMEWORKS = {
    "modal": ("modAL", "modal"),
    "skactiveml": ("skactiveml", "skactiveml"),
    "small_text": ("small_text", "small-text"),
    "baal": ("baal", "baal"),
}


def _framework(module: str, extra: str) -> Any:
    return pytest.importorskip(module, reason=f"{module} not installed: pip install \"uwe_kernels[{extra}]\"")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(X), 240, replace=False)
    X = X[rows] / 16.0 + 1e-3 * rng.standard_normal((240, X.shape[1]))
    return X, y[rows]


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, np.ndarray]:
    labelled = np.arange(0, 240, 8)
    return labelled, np.setdiff1d(np.arange(240), labelled)


def _first_query_seed(seed: int) -> int:
    """The SplitMix64 seed of a Badge strategy's first query: the first draw of a RandomState
    started at `seed` (documented in each adapter)."""
    return int(np.random.RandomState(seed).randint(0, 2**63 - 1, dtype=np.int64))


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=400)


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_missing_framework_names_the_extra(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module, extra = FRAMEWORKS[name]
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, f"uwe_kernels.integrations.{name}", raising=False)
    with pytest.raises(ImportError, match=rf'pip install "uwe_kernels\[{extra}\]"'):
        importlib.import_module(f"uwe_kernels.integrations.{name}")


def test_importing_the_package_imports_no_framework() -> None:
    code = (
        "import sys, uwe_kernels, uwe_kernels.integrations; "
        "print(sorted(m for m in ('modAL', 'skactiveml', 'small_text', 'baal') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(uk.__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def modal() -> Any:
    _framework("modAL", "modal")
    return importlib.import_module("uwe_kernels.integrations.modal")


@pytest.fixture(scope="module")
def learner(digits: Any, split: Any) -> Any:
    from modAL.models import ActiveLearner

    X, y = digits
    labelled, _ = split
    return lambda strategy: ActiveLearner(
        estimator=_logreg(), query_strategy=strategy, X_training=X[labelled], y_training=y[labelled]
    )


@pytest.mark.parametrize("n_instances", [1, 2, 7])
@pytest.mark.parametrize("method", ["uwe", "badge", "coreset"])
def test_modal_learner_query_equals_direct_call(modal: Any, learner: Any, digits: Any, split: Any,
                                                method: str, n_instances: int) -> None:
    X, _ = digits
    labelled, pool = split
    strategy = {"uwe": modal.uwe_strategy(), "badge": modal.badge_strategy(seed=5),
                "coreset": modal.coreset_strategy()}[method]
    al = learner(strategy)
    idx, rows = al.query(X[pool], n_instances=n_instances)
    emb_rows = np.concatenate([X[pool], X[labelled]])
    centres = np.arange(len(pool), len(emb_rows))
    if method == "uwe":
        proba = np.concatenate([al.predict_proba(X[pool]), al.predict_proba(X[labelled])])
        want = uk.kcenter_greedy(uk.uwe(proba, emb_rows, from_logits=False), centres, n_instances)
    elif method == "badge":
        want = uk.kmeans_pp(uk.badge_factored(al.predict_proba(X[pool]), X[pool], from_logits=False),
                            n_instances, seed=_first_query_seed(5))
    else:
        want = uk.kcenter_greedy(emb_rows, centres, n_instances)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(rows, X[pool][want])


def test_modal_feature_function_kind_and_metrics(modal: Any, learner: Any, digits: Any, split: Any) -> None:
    X, _ = digits
    labelled, pool = split

    def features(clf: Any, rows: np.ndarray) -> np.ndarray:
        return clf.estimator.decision_function(rows)

    al = learner(modal.uwe_strategy(features, kind="bvsb", tau=0.1))
    idx, rows, metrics = al.query(X[pool], n_instances=6, return_metrics=True)
    emb = uk.uwe(np.concatenate([al.predict_proba(X[pool]), al.predict_proba(X[labelled])]),
                 np.concatenate([features(al, X[pool]), features(al, X[labelled])]),
                 "bvsb", 0.1, from_logits=False)
    want, dists = uk.kcenter_greedy(emb, np.arange(len(pool), len(emb)), 6, return_distances=True)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(metrics, dists)
    assert np.all(np.diff(metrics) <= 0)


def test_modal_plain_estimator_has_no_centres(modal: Any, digits: Any) -> None:
    X, y = digits
    clf = _logreg().fit(X[:50], y[:50])
    idx, dists = modal.coreset_strategy()(clf, X[50:], 4)
    np.testing.assert_array_equal(idx, uk.kcenter_greedy(X[50:], None, 4))
    assert np.isinf(dists[0])


def test_modal_torch_features_give_numpy_indices(modal: Any, learner: Any, digits: Any, split: Any) -> None:
    torch = pytest.importorskip("torch")
    X, _ = digits
    _, pool = split
    al = learner(modal.uwe_strategy(lambda clf, rows: torch.from_numpy(rows)))
    idx, _ = al.query(X[pool], n_instances=5)
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, learner(modal.uwe_strategy()).query(X[pool], n_instances=5)[0])


@pytest.mark.parametrize("n_instances", [0, 400, 2.0])
def test_modal_rejects_bad_n_instances(modal: Any, learner: Any, digits: Any, split: Any,
                                       n_instances: Any) -> None:
    X, _ = digits
    _, pool = split
    with pytest.raises(ValueError, match="n_instances"):
        modal.uwe_strategy()(learner(modal.uwe_strategy()), X[pool], n_instances)


def test_modal_unknown_keyword_raises(modal: Any, learner: Any, digits: Any, split: Any) -> None:
    X, _ = digits
    _, pool = split
    for strategy in (modal.uwe_strategy(), modal.coreset_strategy(), modal.badge_strategy(seed=1)):
        with pytest.raises(TypeError, match="sede"):
            learner(strategy).query(X[pool], n_instances=3, sede=5)


def test_modal_sparse_pool_equals_dense(modal: Any, learner: Any, digits: Any, split: Any) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    X, _ = digits
    _, pool = split
    for make in (modal.uwe_strategy, modal.coreset_strategy, lambda: modal.badge_strategy(seed=2)):
        dense_idx, _ = learner(make()).query(X[pool], n_instances=5)
        sparse_idx, _ = learner(make()).query(sparse.csr_matrix(X[pool]), n_instances=5)
        np.testing.assert_array_equal(sparse_idx, dense_idx)


def test_modal_integer_and_bool_pools_are_their_float64_values(modal: Any, digits: Any) -> None:
    X, y = digits
    clf = _logreg().fit(X[:60], y[:60])
    for pool in ((X[60:] * 16).round().astype(np.int32), X[60:] > 0.3):
        got = modal.coreset_strategy()(clf, pool, 6)
        want = modal.coreset_strategy()(clf, pool.astype(np.float64), 6)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_modal_on_transformed_selects_in_the_pipeline_space(modal: Any, digits: Any, split: Any) -> None:
    from modAL.models import ActiveLearner
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    labelled, pool = split
    learners = {flag: ActiveLearner(estimator=make_pipeline(StandardScaler(), _logreg()),
                                    query_strategy=modal.coreset_strategy(), on_transformed=flag,
                                    X_training=X[labelled], y_training=y[labelled]) for flag in (False, True)}
    scaled = learners[True].estimator[0].transform(np.concatenate([X[pool], X[labelled]]))
    centres = np.arange(len(pool), len(scaled))
    idx, _ = learners[True].query(X[pool], n_instances=6)
    np.testing.assert_array_equal(idx, uk.kcenter_greedy(scaled, centres, 6))
    plain, _ = learners[False].query(X[pool], n_instances=6)
    np.testing.assert_array_equal(plain, uk.kcenter_greedy(np.concatenate([X[pool], X[labelled]]), centres, 6))
    assert not np.array_equal(idx, plain)


def test_modal_badge_seed_advances_per_query(modal: Any, learner: Any, digits: Any, split: Any) -> None:
    X, _ = digits
    _, pool = split
    strategy = modal.badge_strategy(seed=7)
    al = learner(strategy)
    first, second = al.query(X[pool], n_instances=8)[0], al.query(X[pool], n_instances=8)[0]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(learner(modal.badge_strategy(seed=7)).query(X[pool], n_instances=8)[0], first)
    state = np.random.RandomState(7)
    picks = learner(modal.badge_strategy(seed=state)).query(X[pool], n_instances=8)[0]
    np.testing.assert_array_equal(picks, first)
    assert state.randint(2**31) != np.random.RandomState(7).randint(2**31), "a RandomState must advance"


def test_modal_howto_penultimate_features_are_hidden_activations(modal: Any, digits: Any, split: Any) -> None:
    from modAL.models import ActiveLearner
    from sklearn.neural_network import MLPClassifier

    def penultimate(learner: Any, X: np.ndarray) -> np.ndarray:  # as docs/howto/frameworks.md
        mlp = learner.estimator
        h = X
        for W, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
            h = np.maximum(h @ W + b, 0.0)
        return h

    X, y = digits
    labelled, pool = split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        al = ActiveLearner(estimator=MLPClassifier(hidden_layer_sizes=(24,), max_iter=60, random_state=0),
                           query_strategy=modal.uwe_strategy(penultimate, tau=1.0),
                           X_training=X[labelled], y_training=y[labelled])
    feats = penultimate(al, X[pool])
    assert feats.shape == (len(pool), 24)
    idx, _ = al.query(X[pool], n_instances=5)
    emb = uk.uwe(np.concatenate([al.predict_proba(X[pool]), al.predict_proba(X[labelled])]),
                 np.concatenate([feats, penultimate(al, X[labelled])]), from_logits=False)
    np.testing.assert_array_equal(idx, uk.kcenter_greedy(emb, np.arange(len(pool), len(emb)), 5))


@pytest.fixture(scope="module")
def skal() -> Any:
    _framework("skactiveml", "skactiveml")
    return importlib.import_module("uwe_kernels.integrations.skactiveml")


def _partial_labels(y: np.ndarray, labelled: np.ndarray, missing: Any = np.nan) -> np.ndarray:
    out = np.full(len(y), missing, dtype=float if missing is np.nan else y.dtype)
    out[labelled] = y[labelled]
    return out


def _skactiveml_query_seed(random_state: Any, n_unlabelled: int) -> int:
    """Badge's SplitMix64 seed: one draw from scikit-activeml's per-query random state."""
    from skactiveml.utils import check_random_state

    return int(check_random_state(random_state, n_unlabelled + 1).randint(0, 2**63 - 1, dtype=np.int64))


def _sk_clf(missing: Any = np.nan) -> Any:
    from skactiveml.classifier import SklearnClassifier

    return SklearnClassifier(_logreg(), classes=np.arange(10), missing_label=missing)


def test_skactiveml_uwe_equals_direct_call(skal: Any, digits: Any, split: Any) -> None:
    X, y = digits
    labelled, _ = split
    y_part = _partial_labels(y, labelled)
    clf = _sk_clf()
    idx = skal.UWE(kind="margin", tau=0.5).query(X, y_part, clf, batch_size=9)
    proba = _sk_clf().fit(X, y_part).predict_proba(X)
    mask = np.zeros(len(X), dtype=bool)
    mask[labelled] = True
    np.testing.assert_array_equal(idx, uk.kcenter_greedy(uk.uwe(proba, X, "margin", 0.5, from_logits=False), mask, 9))


def test_skactiveml_uwe_utilities_lead_to_picks(skal: Any, digits: Any, split: Any) -> None:
    X, y = digits
    labelled, _ = split
    idx, utilities = skal.UWE().query(X, _partial_labels(y, labelled), _sk_clf(), batch_size=5,
                                      return_utilities=True)
    assert utilities.shape == (5, len(X))
    np.testing.assert_array_equal(np.nanargmax(utilities, axis=1), idx)
    assert np.isnan(utilities[:, labelled]).all()
    for step, pick in enumerate(idx):
        assert np.isnan(utilities[step + 1 :, pick]).all()


@pytest.mark.parametrize("candidates", ["all", "indices", "rows"])
def test_skactiveml_coreset_equals_skactiveml_coreset(skal: Any, digits: Any, split: Any, candidates: str) -> None:
    from skactiveml.pool import CoreSet as SkCoreSet

    X, y = digits
    labelled, pool = split
    y_part = _partial_labels(y, labelled)
    cand = {"all": None, "indices": np.concatenate([pool[::3], labelled[:4]]), "rows": X[pool[:60]] + 0.01}[candidates]
    got, got_u = skal.CoreSet().query(X, y_part, candidates=cand, batch_size=8, return_utilities=True)
    want, want_u = SkCoreSet().query(X, y_part, candidates=cand, batch_size=8, return_utilities=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.isnan(got_u), np.isnan(want_u))
    np.testing.assert_allclose(got_u, want_u, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("candidates", ["all", "indices", "rows"])
@pytest.mark.parametrize("n_labelled", [0, 30])
def test_skactiveml_kcenter_picks_and_utilities_equal_native_coreset(skal: Any, digits: Any, n_labelled: int,
                                                                   candidates: str) -> None:
    """Tie-free float data: CoreSet and UWE(tau=0) (whose embedding is X) return scikit-activeml
    CoreSet's picks and utilities, the random first pick with nothing labelled included."""
    from skactiveml.pool import CoreSet as SkCoreSet

    X, y = digits
    y_part = _partial_labels(y, np.arange(0, 8 * n_labelled, 8))
    cand = {"all": None, "indices": np.arange(1, len(X), 3), "rows": X[100:160] + 0.01}[candidates]
    want, want_u = SkCoreSet(random_state=11).query(X, y_part, candidates=cand, batch_size=7, return_utilities=True)
    for ours in (skal.CoreSet(random_state=11).query(X, y_part, candidates=cand, batch_size=7, return_utilities=True),
                 skal.UWE(tau=0.0, random_state=11).query(X, y_part, _sk_clf(), candidates=cand, batch_size=7,
                                                          return_utilities=True)):
        np.testing.assert_array_equal(ours[0], want)
        np.testing.assert_array_equal(np.isnan(ours[1]), np.isnan(want_u))
        np.testing.assert_allclose(ours[1], want_u, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("candidates", ["all", "indices", "rows"])
@pytest.mark.parametrize("n_labelled", [0, 30])
def test_skactiveml_utilities_from_the_selection_equal_the_second_pass(skal: Any, digits: Any, n_labelled: int,
                                                                      candidates: str) -> None:
    """On cpp, CoreSet's and UWE's utilities are the selection kernel's own distances; on the
    other backends a second pass computes them: same picks, same utilities."""
    X, y = digits
    y_part = _partial_labels(y, np.arange(0, 8 * n_labelled, 8))
    cand = {"all": None, "indices": np.arange(1, len(X), 3), "rows": X[100:160] + 0.01}[candidates]
    for make, args in ((skal.CoreSet, ()), (skal.UWE, (_sk_clf(),))):
        kernel, second = (make(random_state=5, backend=b).query(X, y_part, *args, candidates=cand, batch_size=9,
                                                                  return_utilities=True) for b in ("cpp", "reference"))
        np.testing.assert_array_equal(kernel[0], second[0])
        np.testing.assert_array_equal(np.isnan(kernel[1]), np.isnan(second[1]))
        np.testing.assert_allclose(kernel[1], second[1], rtol=1e-9, atol=1e-12)


def test_skactiveml_coreset_utilities_restart_as_native_on_every_backend(skal: Any) -> None:
    """Every candidate a copy of a labelled row: all utilities 0, where scikit-activeml's
    CoreSet restarts D from the next pick alone. The cpp kernel keeps D; the utilities follow
    native's rule there too."""
    rows = np.random.default_rng(0).random((4, 3))
    X = np.repeat(rows, 3, axis=0)
    y = np.full(len(X), np.nan)
    y[::3] = 0.0
    kernel, second = (skal.CoreSet(backend=b).query(X, y, batch_size=5, return_utilities=True)
                      for b in ("cpp", "reference"))
    np.testing.assert_array_equal(kernel[0], second[0])
    np.testing.assert_array_equal(kernel[1], second[1])
    assert not np.nansum(kernel[1][0]) and np.nansum(kernel[1][2]) > 0


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_skactiveml_utilities_on_pools_the_public_call_rescales_or_refuses(skal: Any, scale: float) -> None:
    """Squared distances beyond float64 (overflow or underflow): the utilities take the public
    call's way, so picks and errors are those without return_utilities."""
    X = np.random.default_rng(1).random((20, 3)) * scale
    y = np.full(20, np.nan)
    y[:2] = 0.0
    for backend in ("cpp", "reference"):
        qs = skal.CoreSet(backend=backend)
        try:
            want = qs.query(X, y, batch_size=3)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc)[:20]):
                qs.query(X, y, batch_size=3, return_utilities=True)
        else:
            np.testing.assert_array_equal(qs.query(X, y, batch_size=3, return_utilities=True)[0], want)


def test_skactiveml_integer_x_is_its_float64_values(skal: Any, digits: Any, split: Any) -> None:
    X, y = digits
    labelled, _ = split
    y_part = _partial_labels(y, labelled)
    X_int = (X * 16).round().astype(np.int64)
    for qs in (skal.CoreSet(random_state=0), skal.UWE(random_state=0), skal.Badge(random_state=0)):
        args = () if isinstance(qs, skal.CoreSet) else (_sk_clf(),)
        got = qs.query(X_int, y_part, *args, batch_size=6, return_utilities=True)
        want = qs.query(X_int.astype(np.float64), y_part, *args, batch_size=6, return_utilities=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_skactiveml_badge_utilities_are_native_probabilities(skal: Any, digits: Any, split: Any) -> None:
    """Row 0 is scikit-activeml Badge's own; every row is D^2 / sum D^2 of the gradient
    embedding given our picks, recomputed here with plain numpy."""
    from skactiveml.pool import Badge as SkBadge

    X, y = digits
    labelled, pool = split
    y_part = _partial_labels(y, labelled)
    idx, utilities = skal.Badge(random_state=2).query(X, y_part, _sk_clf(), batch_size=6, return_utilities=True)
    _, native = SkBadge(random_state=2).query(X, y_part, _sk_clf(), batch_size=1, return_utilities=True)
    np.testing.assert_allclose(utilities[0], native[0], rtol=1e-9, atol=1e-15)
    emb = uk.badge_embedding(_sk_clf().fit(X, y_part).predict_proba(X[pool]), X[pool], from_logits=False)
    d2 = (emb**2).sum(axis=1)
    column = {row: k for k, row in enumerate(pool)}
    for step, pick in enumerate(idx):
        want = np.full(len(X), np.nan)
        want[pool] = d2 / d2.sum()
        want[idx[:step]] = np.nan
        np.testing.assert_allclose(utilities[step], want, rtol=1e-9, atol=1e-15)
        d2 = np.minimum(d2, ((emb - emb[column[pick]]) ** 2).sum(axis=1))


@pytest.mark.parametrize("n_labelled", [0, 30])
def test_skactiveml_uwe_kmeanspp_selection(skal: Any, digits: Any, n_labelled: int) -> None:
    """selection="kmeans++": k-means++ on the UWE rows, D from the labelled rows, the seed
    drawn from the per-query random state; utilities are D^2 / sum D^2 before each pick."""
    X, y = digits
    labelled = np.arange(0, 8 * n_labelled, 8)
    y_part = _partial_labels(y, labelled)
    idx, utilities = skal.UWE(tau=0.5, selection="kmeans++", random_state=4).query(
        X, y_part, _sk_clf(), batch_size=6, return_utilities=True)
    emb = uk.uwe(_sk_clf().fit(X, y_part).predict_proba(X), X, "entropy", 0.5, from_logits=False)
    mask = np.zeros(len(X), dtype=bool)
    mask[labelled] = True
    seed = _skactiveml_query_seed(4, len(X) - n_labelled)
    np.testing.assert_array_equal(idx, uk.kmeans_pp(emb, 6, labelled_idx=mask, seed=seed))
    d2 = ((emb[:, None, :] - emb[None, labelled, :]) ** 2).sum(-1).min(1) if n_labelled else (emb**2).sum(1)
    for step, pick in enumerate(idx):
        want = np.where(mask, 0.0, d2)
        want = want / want.sum()
        want[mask] = np.nan
        want[idx[:step]] = np.nan
        np.testing.assert_allclose(utilities[step], want, rtol=1e-7, atol=1e-12)
        d2 = np.minimum(d2, ((emb - emb[pick]) ** 2).sum(1))
    with pytest.raises(ValueError, match="selection"):
        skal.UWE(selection="greedy").query(X, y_part, _sk_clf(), batch_size=2)


def test_skactiveml_seeds_follow_the_per_query_random_state(skal: Any, digits: Any, split: Any) -> None:
    X, y = digits
    labelled, pool = split
    y_part = _partial_labels(y, labelled)
    qs = skal.Badge(random_state=5)
    first = qs.query(X, y_part, _sk_clf(), batch_size=8)
    np.testing.assert_array_equal(qs.query(X, y_part, _sk_clf(), batch_size=8), first)
    y_next = y_part.copy()
    y_next[first] = y[first]
    rest = np.setdiff1d(pool, first)
    proba = _sk_clf().fit(X, y_next).predict_proba(X[rest])
    want = rest[uk.kmeans_pp(uk.badge_factored(proba, X[rest], from_logits=False), 8,
                             seed=_skactiveml_query_seed(5, len(rest)))]
    np.testing.assert_array_equal(qs.query(X, y_next, _sk_clf(), batch_size=8), want)


def test_skactiveml_uwe_candidate_rows_index_the_candidates(skal: Any, digits: Any, split: Any) -> None:
    X, y = digits
    labelled, pool = split
    y_part = _partial_labels(y, labelled)
    rows = X[pool[:50]]
    idx = skal.UWE().query(X, y_part, _sk_clf(), candidates=rows, batch_size=6)
    fitted = _sk_clf().fit(X, y_part)
    emb_rows = np.concatenate([rows, X[labelled]])
    emb = uk.uwe(fitted.predict_proba(emb_rows), emb_rows, from_logits=False)
    np.testing.assert_array_equal(idx, uk.kcenter_greedy(emb, np.arange(50, len(emb_rows)), 6))
    assert idx.max() < 50


def test_skactiveml_badge_equals_direct_call_and_first_pick_of_skactiveml(skal: Any, digits: Any,
                                                                          split: Any) -> None:
    from skactiveml.pool import Badge as SkBadge

    X, y = digits
    labelled, pool = split
    y_part = _partial_labels(y, labelled)
    idx = skal.Badge(random_state=3).query(X, y_part, _sk_clf(), batch_size=10)
    proba = _sk_clf().fit(X, y_part).predict_proba(X[pool])
    seed = _skactiveml_query_seed(3, len(pool))
    np.testing.assert_array_equal(idx, pool[uk.kmeans_pp(uk.badge_factored(proba, X[pool], from_logits=False), 10, seed=seed)])
    assert idx[0] == SkBadge(random_state=3).query(X, y_part, _sk_clf(), batch_size=1)[0]
    np.testing.assert_array_equal(idx, skal.Badge(random_state=3).query(X, y_part, _sk_clf(), batch_size=10))


def test_skactiveml_badge_utilities_are_probabilities(skal: Any, digits: Any, split: Any) -> None:
    X, y = digits
    labelled, _ = split
    idx, utilities = skal.Badge(random_state=1).query(X, _partial_labels(y, labelled), _sk_clf(), batch_size=4,
                                                      return_utilities=True)
    assert utilities.shape == (4, len(X))
    np.testing.assert_allclose(np.nansum(utilities, axis=1), 1.0)
    assert np.nanargmax(utilities[0]) == idx[0]
    assert np.isnan(utilities[:, labelled]).all()
    assert np.isnan(utilities[1:, idx[0]]).all()


def test_skactiveml_uwe_embeddings_from_predict_proba_flag(skal: Any, digits: Any, split: Any) -> None:
    from skactiveml.classifier import SklearnClassifier

    projection = np.linspace(-1, 1, 64 * 8).reshape(64, 8)

    class EmbeddingClassifier(SklearnClassifier):  # type: ignore[misc]
        def predict_proba(self, X: Any, return_embeddings: bool = False) -> Any:
            proba = super().predict_proba(X)
            return (proba, np.tanh(X @ projection)) if return_embeddings else proba

    X, y = digits
    labelled, _ = split
    y_part = _partial_labels(y, labelled)
    clf = EmbeddingClassifier(_logreg(), classes=np.arange(10))
    idx = skal.UWE(kind="bvsb", clf_embedding_flag_name="return_embeddings").query(X, y_part, clf, batch_size=7)
    proba, emb = EmbeddingClassifier(_logreg(), classes=np.arange(10)).fit(X, y_part).predict_proba(
        X, return_embeddings=True)
    mask = np.zeros(len(X), dtype=bool)
    mask[labelled] = True
    np.testing.assert_array_equal(idx, uk.kcenter_greedy(uk.uwe(proba, emb, "bvsb", from_logits=False), mask, 7))


def test_skactiveml_integer_missing_label_and_small_pool(skal: Any, digits: Any) -> None:
    X, y = digits
    y_part = np.full(len(y), -1)
    y_part[:-5] = y[:-5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = skal.UWE(missing_label=-1).query(X, y_part, _sk_clf(-1), batch_size=10)
    assert sorted(idx.tolist()) == list(range(len(X) - 5, len(X)))


@pytest.fixture(scope="module")
def stal() -> Any:
    _framework("small_text", "small-text")
    return importlib.import_module("uwe_kernels.integrations.small_text")


@pytest.fixture(scope="module")
def text_setup(stal: Any, digits: Any, split: Any) -> Any:
    from small_text import SklearnClassifier, SklearnClassifierFactory, SklearnDataset

    class EmbeddingClassifier(SklearnClassifier):  # type: ignore[misc]
        def embed(self, dataset: Any, return_proba: bool = False, pbar: Any = None) -> Any:
            emb = np.tanh(dataset.x @ np.linspace(-1, 1, 64 * 12).reshape(64, 12))
            return (emb, self.predict_proba(dataset)) if return_proba else emb

    class Factory(SklearnClassifierFactory):  # type: ignore[misc]
        def new(self) -> Any:
            return EmbeddingClassifier(_logreg(), 10)

    X, y = digits
    return SklearnDataset(X, y, target_labels=np.arange(10)), Factory(_logreg(), 10), SklearnClassifierFactory(_logreg(), 10)


def _text_learner(text_setup: Any, split: Any, strategy: Any, with_embed: bool = True) -> Any:
    from small_text import PoolBasedActiveLearner

    dataset, factory, plain = text_setup
    labelled, _ = split
    al = PoolBasedActiveLearner(factory if with_embed else plain, strategy, dataset)
    al.initialize_data(labelled, dataset.y[labelled])
    return al


@pytest.mark.parametrize("method", ["uwe", "badge", "coreset"])
def test_small_text_query_equals_direct_call(stal: Any, text_setup: Any, split: Any, method: str) -> None:
    """Rows are embedded unlabelled first, then labelled, as small-text's
    EmbeddingBasedQueryStrategy does; picks map back to dataset indices."""
    strategy = {"uwe": stal.UWE(kind="entropy", tau=2.0), "badge": stal.Badge(seed=9),
                "coreset": stal.Coreset(normalize=False)}[method]
    al = _text_learner(text_setup, split, strategy)
    got = al.query(num_samples=8)
    dataset = text_setup[0]
    labelled, pool = split
    rows = np.concatenate([pool, labelled])
    emb, proba = al.classifier.embed(dataset[rows], return_proba=True)
    centres = np.arange(len(pool), len(rows))
    if method == "uwe":
        want = rows[uk.kcenter_greedy(uk.uwe(proba, emb, "entropy", 2.0, from_logits=False), centres, 8)]
    elif method == "badge":
        want = pool[uk.kmeans_pp(uk.badge_factored(proba[: len(pool)], emb[: len(pool)], from_logits=False), 8,
                                 seed=_first_query_seed(9))]
    else:
        want = rows[uk.kcenter_greedy(emb, centres, 8)]
    np.testing.assert_array_equal(got, want)


def test_small_text_precomputed_embeddings_pbar_and_embed_kwargs(stal: Any, text_setup: Any, split: Any) -> None:
    dataset = text_setup[0]
    labelled, pool = split
    al = _text_learner(text_setup, split, stal.Coreset())
    emb = al.classifier.embed(dataset[np.concatenate([pool, labelled])])
    strategy = stal.Coreset()
    direct = strategy.query(al.classifier, dataset, pool, labelled, dataset.y[labelled], n=6, embeddings=emb)
    np.testing.assert_array_equal(direct, al.query(num_samples=6))
    seen: dict[str, Any] = {}
    original = al.classifier.embed

    def embed(data: Any, return_proba: bool = False, pbar: Any = None, **kwargs: Any) -> Any:
        seen.update(pbar=pbar, **kwargs)
        return original(data, return_proba=return_proba)

    al.classifier.embed = embed
    got = stal.UWE().query(al.classifier, dataset, pool, labelled, dataset.y[labelled], n=4, pbar=None,
                           embed_kwargs={"batch_size": 16})
    assert seen == {"pbar": None, "batch_size": 16} and len(got) == 4


def test_small_text_refuses_multi_label_as_native_badge(stal: Any, text_setup: Any, split: Any) -> None:
    from scipy.sparse import csr_matrix

    dataset = text_setup[0]
    labelled, pool = split
    al = _text_learner(text_setup, split, stal.Coreset())
    y_multi = csr_matrix(np.eye(10, dtype=np.int64)[dataset.y[labelled]])
    for strategy in (stal.UWE(), stal.Badge(seed=0)):
        with pytest.raises(RuntimeError, match="multi-label"):
            strategy.query(al.classifier, dataset, pool, labelled, y_multi, n=3)
    assert len(stal.Coreset().query(al.classifier, dataset, pool, labelled, y_multi, n=3)) == 3


def test_small_text_badge_seed_advances_per_query(stal: Any, text_setup: Any, split: Any) -> None:
    dataset = text_setup[0]
    labelled, pool = split
    al = _text_learner(text_setup, split, stal.Coreset())
    strategy = stal.Badge(seed=3)
    first = strategy.query(al.classifier, dataset, pool, labelled, dataset.y[labelled], n=8)
    second = strategy.query(al.classifier, dataset, pool, labelled, dataset.y[labelled], n=8)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(
        stal.Badge(seed=3).query(al.classifier, dataset, pool, labelled, dataset.y[labelled], n=8), first)


def test_small_text_howto_uwe_with_sklearn_classifier_factory(stal: Any, digits: Any, split: Any) -> None:
    from small_text import PoolBasedActiveLearner, SklearnClassifierFactory, SklearnDataset

    X, y = digits
    labelled, _ = split
    train = SklearnDataset(X, y, target_labels=np.arange(10))
    # as docs/howto/frameworks.md: scikit-learn classifiers have no embed(), so pass features=
    learner = PoolBasedActiveLearner(SklearnClassifierFactory(_logreg(), 10),
                                     stal.UWE(tau=1.0, features=lambda clf, dataset: dataset.x), train)
    learner.initialize_data(labelled, y[labelled])
    indices = learner.query(num_samples=20)
    assert len(np.unique(indices)) == 20 and not np.isin(indices, labelled).any()


@pytest.mark.parametrize("normalize", [True, False])
def test_small_text_coreset_equals_greedy_coreset(stal: Any, text_setup: Any, split: Any, normalize: bool) -> None:
    from small_text.query_strategies import GreedyCoreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _text_learner(text_setup, split, GreedyCoreset(distance_metric="euclidean", normalize=normalize))
    ours = _text_learner(text_setup, split, stal.Coreset(normalize=normalize))
    np.testing.assert_array_equal(ours.query(num_samples=10), theirs.query(num_samples=10))


def test_small_text_feature_function_without_embed(stal: Any, text_setup: Any, split: Any) -> None:
    al = _text_learner(text_setup, split, stal.UWE(kind="bvsb", features=lambda clf, data: data.x), with_embed=False)
    got = al.query(num_samples=5)
    dataset = text_setup[0]
    labelled, pool = split
    rows = np.concatenate([pool, labelled])
    proba = al.classifier.predict_proba(dataset[rows])
    emb = uk.uwe(proba, dataset.x[rows], "bvsb", from_logits=False)
    np.testing.assert_array_equal(got, rows[uk.kcenter_greedy(emb, np.arange(len(pool), len(rows)), 5)])


def test_small_text_without_embed_or_features_says_what_to_pass(stal: Any, text_setup: Any, split: Any) -> None:
    al = _text_learner(text_setup, split, stal.UWE(), with_embed=False)
    with pytest.raises(ValueError, match="features="):
        al.query(num_samples=3)


def test_small_text_pool_errors(stal: Any, text_setup: Any, split: Any) -> None:
    from small_text.query_strategies.exceptions import EmptyPoolException, PoolExhaustedException

    labelled, pool = split
    al = _text_learner(text_setup, split, stal.Coreset())
    with pytest.raises(PoolExhaustedException):
        stal.Coreset().query(al.classifier, text_setup[0], pool, labelled, None, n=len(pool) + 1)
    with pytest.raises(EmptyPoolException):
        stal.Badge().query(al.classifier, text_setup[0], np.array([], dtype=int), labelled, None, n=1)
