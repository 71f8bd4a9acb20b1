"""scikit-activeml's conventions for pool query strategies, checked on our UWE, CoreSet and
Badge: parameter validation, reproducibility from a RandomState, batch and candidate
variations, AL cycles from zero labels, missing-label types, integer samples. scikit-activeml's
own template and test modules run against our classes in test_integrations_skactiveml_upstream.py
(fetched from PyPI); these tests restate the template's conventions without a download."""
from __future__ import annotations

import importlib
import inspect
import warnings
from copy import deepcopy
from typing import Any

import numpy as np
import pytest

pytest.importorskip("skactiveml")
skal = importlib.import_module("uwe_kernels.integrations.skactiveml")

from skactiveml.classifier import SklearnClassifier  # noqa: E402
from skactiveml.utils import MISSING_LABEL, is_labeled, unlabeled_indices  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

NAMES = ["UWE", "CoreSet", "Badge"]


def _query_params(name: str, X: Any = None, y: Any = None, missing: Any = MISSING_LABEL,
                  classes: Any = (0, 1)) -> dict[str, Any]:
    X = np.linspace(0, 1, 20).reshape(10, 2) ** 1.3 if X is None else X
    y = np.hstack([[0, 1], np.full(8, MISSING_LABEL)]) if y is None else y
    params: dict[str, Any] = {"X": X, "y": y}
    if name != "CoreSet":
        params["clf"] = SklearnClassifier(LogisticRegression(), classes=list(classes), missing_label=missing,
                                          random_state=0)
    return params


def _strategy(name: str, **init: Any) -> Any:
    return getattr(skal, name)(**{"random_state": 42, **init})


def _query(qs: Any, params: dict[str, Any], **extra: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return qs.query(**{**deepcopy(params), **extra})


@pytest.mark.parametrize("name", NAMES)
def test_init_parameters_are_stored_unchanged(name: str) -> None:
    marker = object()
    for param in inspect.signature(getattr(skal, name).__init__).parameters:
        if param != "self":
            assert getattr(getattr(skal, name)(**{param: marker}), param) is marker


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("param, value, error", [
    ("random_state", np.nan, ValueError), ("random_state", "state", ValueError),
    ("missing_label", type, TypeError),
])
def test_bad_init_parameters_raise_at_query(name: str, param: str, value: Any, error: type) -> None:
    with pytest.raises(error):
        _query(_strategy(name, **{param: value}), _query_params(name))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("param, value, error", [
    ("X", "string", (ValueError, TypeError)), ("X", np.zeros((20, 2)), ValueError),
    ("y", np.nan, TypeError), ("y", np.zeros((2, 10)), ValueError),
    ("candidates", np.nan, ValueError), ("batch_size", 0, ValueError), ("batch_size", 1.2, TypeError),
    ("return_utilities", "string", TypeError),
])
def test_bad_query_parameters_raise(name: str, param: str, value: Any, error: Any) -> None:
    with pytest.raises(error):
        _query(_strategy(name), _query_params(name), **{param: value})


@pytest.mark.parametrize("name", ["UWE", "Badge"])
def test_clf_must_be_a_skactiveml_classifier(name: str) -> None:
    for clf in (np.nan, "state", LogisticRegression()):
        with pytest.raises(TypeError):
            _query(_strategy(name), _query_params(name), clf=clf)


@pytest.mark.parametrize("name", ["UWE", "Badge"])
def test_clf_is_left_untouched(name: str) -> None:
    params = _query_params(name)
    for fit_clf in (True, False):
        clf = SklearnClassifier(LogisticRegression(), classes=[0, 1], random_state=0)
        if not fit_clf:
            clf.fit(params["X"], params["y"])
        before = sorted(vars(clf))
        _query(_strategy(name), {**params, "clf": clf}, fit_clf=fit_clf)
        assert sorted(vars(clf)) == before


@pytest.mark.parametrize("name", NAMES)
def test_same_random_state_same_picks_and_utilities(name: str) -> None:
    qs = _strategy(name, random_state=np.random.RandomState(0))
    params = _query_params(name)
    first, u1 = _query(qs, params, return_utilities=True)
    second, u2 = _query(qs, params, return_utilities=True)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(u1, u2)
    assert u1.shape[1] == len(params["X"])


@pytest.mark.parametrize("name", NAMES)
def test_batch_variation(name: str) -> None:
    qs, params = _strategy(name), _query_params(name)
    idx, utilities = _query(qs, params, batch_size=5, return_utilities=True)
    assert len(idx) == 5 and utilities.shape == (5, 10)
    assert np.isnan(utilities[0]).sum() == is_labeled(params["y"]).sum()
    with pytest.warns(Warning):
        qs.query(**deepcopy(params), batch_size=9)
    assert len(_query(qs, params, batch_size=9)) == 8


@pytest.mark.parametrize("name", NAMES)
def test_candidate_variation(name: str) -> None:
    qs, params = _strategy(name), _query_params(name)
    unlabelled = unlabeled_indices(params["y"])
    _, u_all = _query(qs, params, return_utilities=True)
    _, u_idx = _query(qs, params, candidates=unlabelled, return_utilities=True)
    np.testing.assert_allclose(u_all, u_idx)
    _, u_one = _query(qs, params, candidates=unlabelled[:1], return_utilities=True)
    assert np.isnan(np.delete(u_one[0], unlabelled[:1])).all() and not np.isnan(u_one[0, unlabelled[0]])
    idx_rows, u_rows = _query(qs, params, candidates=params["X"][unlabelled], return_utilities=True)
    np.testing.assert_allclose(u_all[0][unlabelled], u_rows[0])
    assert u_rows.shape == (1, len(unlabelled)) and 0 <= idx_rows[0] < len(unlabelled)


@pytest.mark.parametrize("name", NAMES)
def test_al_cycles_from_zero_one_and_all_but_one_labels(name: str) -> None:
    qs = _strategy(name)
    base = _query_params(name)
    y_true = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    for n_init in (0, 1, 9):
        y = np.full(10, MISSING_LABEL)
        y[:n_init] = y_true[:n_init]
        for _ in range(2 if n_init < 9 else 1):
            idx = _query(qs, {**base, "y": y})
            assert not is_labeled(y)[idx].any()
            y[idx] = y_true[idx]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("missing, classes, dtype", [
    (np.nan, [1.0, 2.0], float), (0, [1, 2], int), (None, [1, 2], object), (None, ["A", "B"], object),
    ("", ["A", "B"], str),
])
def test_missing_label_types(name: str, missing: Any, classes: list[Any], dtype: Any) -> None:
    y = np.full(10, missing, dtype=dtype)
    y[0], y[1] = classes
    params = _query_params(name, y=y, missing=missing, classes=classes)
    idx, utilities = _query(_strategy(name, missing_label=missing), params, batch_size=2, return_utilities=True)
    assert set(idx.tolist()) <= set(range(2, 10)) and np.isnan(utilities[:, :2]).all()


@pytest.mark.parametrize("name", NAMES)
def test_integer_samples_and_candidates(name: str) -> None:
    rng = np.random.RandomState(42)
    X = rng.choice(5, size=(10, 2))
    params = _query_params(name, X=X)
    qs = _strategy(name)
    np.testing.assert_array_equal(_query(qs, params), _query(qs, params))
    _, utilities = _query(qs, params, batch_size=2, return_utilities=True)
    assert (utilities[~np.isnan(utilities)] >= 0).all()
    _, u_cand = _query(qs, params, batch_size=2, candidates=rng.choice(5, size=(5, 2)), return_utilities=True)
    assert u_cand.shape == (2, 5)


def test_badge_utilities_sum_to_one_even_for_a_one_class_model() -> None:
    X = np.random.RandomState(42).choice(5, size=(10, 2))
    for y in (np.hstack([[0, 1], np.full(8, MISSING_LABEL)]), np.hstack([[0], np.full(9, MISSING_LABEL)])):
        _, utilities = _query(_strategy("Badge"), _query_params("Badge", X=X, y=y), batch_size=2,
                              return_utilities=True)
        np.testing.assert_allclose(np.nansum(utilities, axis=1), 1.0)
