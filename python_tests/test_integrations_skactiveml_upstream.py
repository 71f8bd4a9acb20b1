"""scikit-activeml's own CoreSet and Badge test modules, run against our classes.

Those modules and the template they build on (``skactiveml/tests/template_query_strategy.py``)
ship in the scikit-activeml 0.6.1 wheel and in no later wheel or sdist (0.6.2, 1.0.0 and 1.0.1
leave ``tests/`` out). The pinned wheel is fetched from PyPI at test time (upstream_wheel.py),
its template is made importable as ``skactiveml.tests`` beside the installed scikit-activeml,
and each test module is loaded with its ``CoreSet`` / ``Badge`` rebound to ours, so every
upstream test method (setUp, the template's parameter, reproducibility, AL-cycle, batch and
candidate checks, and the module's ``test_query``) constructs our class.

Deviations, each named in UPSTREAM_NOT_RUN or OUR_PARAMETER_TESTS:

- test_core_set.py's ``TestKGreedyCenter`` tests scikit-activeml's module-level
  ``k_greedy_center`` function, which we do not replace: not run.
- The template's ``test_param_test_availability`` requires a ``test_init_param_<name>`` for
  every ``__init__`` parameter. Ours add ``backend`` (and UWE its own parameters): their tests
  are added here in the template's style; every upstream test runs unchanged.

UWE has no upstream module; ``TestUWE`` holds it to the same template with a module in the
style of test_badge.py.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("skactiveml")
skal = importlib.import_module("uwe_kernels.integrations.skactiveml")

import skactiveml  # noqa: E402
from skactiveml.classifier import SklearnClassifier  # noqa: E402
from skactiveml.pool import CoreSet as NativeCoreSet  # noqa: E402
from skactiveml.utils import MISSING_LABEL  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from upstream_wheel import extract  # noqa: E402

WHEEL = "scikit_activeml-0.6.1-py3-none-any.whl"
WHEEL_SHA256 = "50b213116e0c940e2e9b879766f656693309676c7b57122bc06ac97480c50475"
TEMPLATE = "skactiveml/tests/template_query_strategy.py"
TEMPLATE_UTILS = "skactiveml/tests/utils.py"
CORE_SET_TESTS = "skactiveml/pool/tests/test_core_set.py"
BADGE_TESTS = "skactiveml/pool/tests/test_badge.py"

# Upstream test classes that are not run, with the reason.
UPSTREAM_NOT_RUN = {
    "test_core_set.py::TestKGreedyCenter": "tests scikit-activeml's k_greedy_center function, which we do not replace",
}
# Tests added for parameters scikit-activeml's classes do not have (the template requires one each).
OUR_PARAMETER_TESTS = {
    "CoreSet": ["test_init_param_backend"],
    "Badge": ["test_init_param_backend"],
    "UWE": ["test_init_param_backend", "test_init_param_kind", "test_init_param_tau", "test_init_param_selection",
            "test_init_param_clf_embedding_flag_name"],
}

root = extract("scikit-activeml==0.6.1", WHEEL, WHEEL_SHA256, [TEMPLATE, TEMPLATE_UTILS, CORE_SET_TESTS, BADGE_TESTS])


@contextmanager
def _template_importable(folder: Path) -> Iterator[None]:
    """``skactiveml.tests`` served from `folder` while the upstream modules import it; the
    installed scikit-activeml (which has no ``tests``) is left as it was afterwards."""
    package = types.ModuleType("skactiveml.tests")
    package.__path__ = [str(folder)]
    saved = {name: mod for name, mod in sys.modules.items() if name.startswith("skactiveml.tests")}
    sys.modules["skactiveml.tests"] = package
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n.startswith("skactiveml.tests")]:
            del sys.modules[name]
        sys.modules.update(saved)
        if "skactiveml.tests" not in saved and hasattr(skactiveml, "tests"):
            delattr(skactiveml, "tests")


def _load(relative: str) -> types.ModuleType:
    name = "skactiveml_0_6_1_" + Path(relative).stem
    spec = importlib.util.spec_from_file_location(name, root / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


with _template_importable(root / "skactiveml" / "tests"):
    template = importlib.import_module("skactiveml.tests.template_query_strategy")
    template_utils = importlib.import_module("skactiveml.tests.utils")
    upstream_core_set = _load(CORE_SET_TESTS)
    upstream_badge = _load(BADGE_TESTS)

# Every name the upstream modules construct their strategy by now means ours.
upstream_core_set.CoreSet = skal.CoreSet
upstream_badge.Badge = skal.Badge
assert set(UPSTREAM_NOT_RUN) == {"test_core_set.py::TestKGreedyCenter"} and hasattr(upstream_core_set, "TestKGreedyCenter")


class _BackendParameter:
    """The template's test for the ``backend`` parameter every class of ours adds."""

    def test_init_param_backend(self: Any) -> None:
        cases = [(name, None) for name in ("auto", "cpp", "numba", "reference")]
        self._test_param("init", "backend", cases + [("nope", ValueError), (1, ValueError)])


class TestCoreSet(_BackendParameter, upstream_core_set.TestCoreSet):
    """test_core_set.py's TestCoreSet, constructing our CoreSet."""


class TestBadge(_BackendParameter, upstream_badge.TestBadge):
    """test_badge.py's TestBadge, constructing our Badge."""


class TestUWE(_BackendParameter, template.TemplateSingleAnnotatorPoolQueryStrategy, unittest.TestCase):
    """Our UWE on the template, with a module in the style of test_badge.py."""

    def setUp(self) -> None:
        self.classes = [0, 1]
        X = np.array([[1, 2], [5, 8], [8, 4], [5, 4]])
        y = np.array([0, 1, MISSING_LABEL, MISSING_LABEL])
        self.query_default_params_clf = {
            "X": X, "y": y,
            "clf": SklearnClassifier(LogisticRegression(random_state=0), classes=self.classes, random_state=0),
        }
        self.query_default_params_embedding_clf = {
            "X": X, "y": y,
            "clf": template_utils.ParzenWindowClassifierEmbedding(classes=self.classes, random_state=42),
        }
        super().setUp(qs_class=skal.UWE, init_default_params={"random_state": 42},
                      query_default_params_clf=self.query_default_params_clf)

    def test_query_param_clf(self, test_cases: Any = None) -> None:
        cases = [
            (SVC(), TypeError),
            (SklearnClassifier(SVC()), AttributeError),
            (SklearnClassifier(SVC(probability=True)), None),
            (SklearnClassifier(LogisticRegression(), classes=self.classes), None),
        ]
        super().test_query_param_clf(test_cases=cases)

    def test_init_param_clf_embedding_flag_name(self) -> None:
        cases = [(1, TypeError), (None, None), (False, TypeError), (True, TypeError), ("return_embeddings", None)]
        self._test_param("init", "clf_embedding_flag_name", cases,
                         replace_query_params=self.query_default_params_embedding_clf)

    def test_init_param_kind(self) -> None:
        cases = [(kind, None) for kind in ("entropy", "bvsb", "margin", "least_confidence")]
        # "bald" takes [n, K, T] MC-dropout probabilities; predict_proba gives [n, K]
        self._test_param("init", "kind", cases + [("bald", ValueError), ("nope", ValueError), (1, ValueError)])

    def test_init_param_tau(self) -> None:
        cases = [(0.0, None), (1, None), (2.5, None), (-1.0, ValueError), (np.nan, ValueError), ("1", TypeError)]
        self._test_param("init", "tau", cases)

    def test_init_param_selection(self) -> None:
        self._test_param("init", "selection", [("kcenter", None), ("kmeans++", None), ("kmeans", ValueError)])

    def test_query(self) -> None:
        X = np.random.RandomState(42).rand(30, 3)
        y = np.hstack([[0, 1], np.full(28, MISSING_LABEL)])
        clf = SklearnClassifier(LogisticRegression(), classes=self.classes)

        # same random state, same picks; cycles from an int random_state are reproducible
        self.assertEqual(list(skal.UWE(random_state=42).query(X, y, clf, batch_size=3)),
                         list(skal.UWE(random_state=42).query(X, y, clf, batch_size=3)))

        # tau=0 weighs every row by 1: scikit-activeml's own CoreSet on X, picks and utilities
        ours, u_ours = skal.UWE(tau=0.0, random_state=0).query(X, y, clf, batch_size=4, return_utilities=True)
        native, u_native = NativeCoreSet(random_state=0).query(X, y, batch_size=4, return_utilities=True)
        np.testing.assert_array_equal(ours, native)
        np.testing.assert_allclose(u_ours, u_native, rtol=1e-10, atol=1e-12)

        # k-center utilities are distances (>= 0, NaN for labelled and picked)
        picks, u = skal.UWE(random_state=0).query(X, y, clf, batch_size=3, return_utilities=True)
        self.assertTrue(np.isnan(u[:, :2]).all() and (u[~np.isnan(u)] >= 0).all())
        for t in range(1, 3):
            self.assertTrue(np.isnan(u[t, picks[:t]]).all())

        # k-means++ utilities are the sampling probabilities before each pick
        _, u_pp = skal.UWE(selection="kmeans++", random_state=0).query(X, y, clf, batch_size=2,
                                                                        return_utilities=True)
        for row in u_pp:
            self.assertAlmostEqual(float(np.nansum(row)), 1.0)

        # candidates given as rows of their own: indices into them, one utility column each
        X_cand = np.random.RandomState(1).rand(5, 3)
        idx, u_cand = skal.UWE(random_state=0).query(X, y, clf, batch_size=2, candidates=X_cand,
                                                       return_utilities=True)
        self.assertEqual(u_cand.shape, (2, 5))
        self.assertTrue(((0 <= idx) & (idx < 5)).all())


def test_added_tests_are_exactly_the_named_ones() -> None:
    """The deviation list stays precise: each class adds exactly the parameter tests named."""
    added = {
        "CoreSet": _added_tests(TestCoreSet, upstream_core_set.TestCoreSet),
        "Badge": _added_tests(TestBadge, upstream_badge.TestBadge),
        "UWE": _added_tests(TestUWE, template.TemplateSingleAnnotatorPoolQueryStrategy, "test_init_param_"),
    }
    assert added == {name: sorted(tests) for name, tests in OUR_PARAMETER_TESTS.items()}


def _added_tests(ours: type, upstream: type, prefix: str = "test_") -> list[str]:
    return sorted(n for n in dir(ours) if n.startswith(prefix) and not hasattr(upstream, n))
