"""Digits pools and small shims shared by the framework-integration tests."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

N_ROWS = 240


def digits(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """240 rows of scikit-learn's digits: "int" is the raw 0..16 pixels (exact distance ties
    included), "float" is scaled to [0, 1] plus tiny noise (tie-free)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(X), N_ROWS, replace=False)
    X, y = X[rows].astype(np.int64), y[rows]
    if kind == "int":
        return X, y
    if kind == "float":
        return X / 16.0 + 1e-3 * rng.standard_normal(X.shape), y
    raise ValueError(kind)


def initial_labelled(n: int = N_ROWS) -> np.ndarray:
    """Every 8th row: all ten digits appear among them."""
    return np.arange(0, n, 8)


@contextlib.contextmanager
def modal_teach_on_new_sklearn() -> Iterator[None]:
    """modAL 0.4.2.1 passes check_X_y(force_all_finite=...), which scikit-learn 1.8 removed;
    map it to ensure_all_finite for the duration (the workaround docs/howto/frameworks.md shows)."""
    import inspect

    import modAL.models.learners as learners
    import sklearn.utils

    if "force_all_finite" in inspect.signature(sklearn.utils.check_X_y).parameters:
        yield
        return
    original = learners.check_X_y

    def check_X_y(*args: Any, force_all_finite: Any = True, **kwargs: Any) -> Any:
        return sklearn.utils.check_X_y(*args, ensure_all_finite=force_all_finite, **kwargs)

    learners.check_X_y = check_X_y
    try:
        yield
    finally:
        learners.check_X_y = original
