"""Each framework's own idiom runs three active-learning rounds on digits through our
strategies, with integer and float X: modAL's ActiveLearner (query, teach), scikit-activeml's
gallery loop (call_func, utilities), small-text's PoolBasedActiveLearner (query, update).
baal's ActiveLearningLoop is in test_integrations_baal.py."""
from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np
import pytest

from integration_data import digits, initial_labelled, modal_teach_on_new_sklearn

ROUNDS, BATCH = 3, 6


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300)


def _check_round(picks: np.ndarray, available: np.ndarray, batch: int) -> None:
    picks = np.asarray(picks)
    assert picks.shape == (batch,) and picks.dtype.kind == "i"
    assert len(np.unique(picks)) == batch
    assert np.isin(picks, available).all(), "picked a labelled or out-of-pool row"


def _modal_rounds(strategy: Any, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    from modAL.models import ActiveLearner

    start = initial_labelled(len(X))
    pool = np.setdiff1d(np.arange(len(X)), start)
    learner = ActiveLearner(estimator=_logreg(), query_strategy=strategy, X_training=X[start], y_training=y[start])
    history = []
    with modal_teach_on_new_sklearn():
        for _ in range(ROUNDS):
            idx, rows = learner.query(X[pool], n_instances=BATCH)
            _check_round(idx, np.arange(len(pool)), BATCH)
            np.testing.assert_array_equal(rows, X[pool][idx])
            learner.teach(X[pool][idx], y[pool][idx])
            history.append(pool[idx])
            pool = np.delete(pool, idx)
    assert len(learner.X_training) == len(start) + ROUNDS * BATCH
    return history


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("method", ["uwe", "coreset", "badge"])
def test_modal_active_learner_three_rounds(kind: str, method: str) -> None:
    pytest.importorskip("modAL")
    modal = importlib.import_module("uwe_kernels.integrations.modal")
    make = {"uwe": lambda: modal.uwe_strategy(), "coreset": lambda: modal.coreset_strategy(),
            "badge": lambda: modal.badge_strategy(seed=3)}[method]
    X, y = digits(kind)
    history = _modal_rounds(make(), X, y)
    assert len(np.unique(np.concatenate(history))) == ROUNDS * BATCH
    for again, first in zip(_modal_rounds(make(), X, y), history):
        np.testing.assert_array_equal(again, first)
    if kind == "int":  # integers are the float64 values they hold
        for got, want in zip(history, _modal_rounds(make(), X.astype(np.float64), y)):
            np.testing.assert_array_equal(got, want)


def _skactiveml_rounds(qs: Any, X: np.ndarray, y_true: np.ndarray) -> list[np.ndarray]:
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.utils import MISSING_LABEL, call_func, unlabeled_indices

    clf = SklearnClassifier(_logreg(), classes=np.arange(10))
    y = np.full(y_true.shape, MISSING_LABEL)  # the gallery starts with nothing labelled
    clf.fit(X, y)
    history = []
    for _ in range(ROUNDS):
        available = unlabeled_indices(y)
        query_idx, utilities = call_func(qs.query, X=X, y=y, clf=clf, fit_clf=False, batch_size=BATCH,
                                         return_utilities=True)
        _check_round(query_idx, available, BATCH)
        assert utilities.shape == (BATCH, len(X))
        assert np.isnan(np.delete(utilities, available, axis=1)).all()
        for step, pick in enumerate(query_idx):
            assert not np.isnan(utilities[step, pick])
            assert np.isnan(utilities[step + 1 :, pick]).all()
        y[query_idx] = y_true[query_idx]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        history.append(np.asarray(query_idx))
    return history


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("name", ["UWE", "CoreSet", "Badge"])
def test_skactiveml_gallery_loop_three_rounds(kind: str, name: str) -> None:
    pytest.importorskip("skactiveml")
    skal = importlib.import_module("uwe_kernels.integrations.skactiveml")
    X, y = digits(kind)
    history = _skactiveml_rounds(getattr(skal, name)(random_state=0), X, y)
    assert len(np.unique(np.concatenate(history))) == ROUNDS * BATCH
    for again, first in zip(_skactiveml_rounds(getattr(skal, name)(random_state=0), X, y), history):
        np.testing.assert_array_equal(again, first)


def _small_text_rounds(strategy: Any, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    from small_text import PoolBasedActiveLearner, SklearnClassifierFactory, SklearnDataset

    dataset = SklearnDataset(X, y, target_labels=np.arange(10))
    learner = PoolBasedActiveLearner(SklearnClassifierFactory(_logreg(), 10), strategy, dataset)
    start = initial_labelled(len(X))
    learner.initialize_data(start, y[start])
    history = []
    for _ in range(ROUNDS):
        available = np.setdiff1d(np.arange(len(X)), learner.indices_labeled)
        picks = learner.query(num_samples=BATCH)
        _check_round(picks, available, BATCH)
        learner.update(y[picks])
        history.append(np.asarray(picks))
    assert len(learner.indices_labeled) == len(start) + ROUNDS * BATCH
    return history


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("name", ["UWE", "Coreset", "Badge"])
def test_small_text_pool_based_active_learner_three_rounds(kind: str, name: str) -> None:
    pytest.importorskip("small_text")
    stal = importlib.import_module("uwe_kernels.integrations.small_text")
    kwargs = {"seed": 4} if name == "Badge" else {}

    def make() -> Any:
        return getattr(stal, name)(features=lambda clf, dataset: dataset.x, **kwargs)

    X, y = digits(kind)
    history = _small_text_rounds(make(), X, y)
    assert len(np.unique(np.concatenate(history))) == ROUNDS * BATCH
    for again, first in zip(_small_text_rounds(make(), X, y), history):
        np.testing.assert_array_equal(again, first)
