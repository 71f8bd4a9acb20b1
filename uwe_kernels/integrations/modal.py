"""modAL query strategies backed by uwe_kernels.

modAL calls a query strategy as ``strategy(classifier, X_pool, n_instances)`` and, since
modAL 0.4.2, expects ``(indices, metrics)`` back (``ActiveLearner.query`` then returns
``(indices, X_pool[indices])``). The factories here build such strategies from a feature
function ``features(classifier, X) -> [n, d]`` (None: the rows of X themselves, after the
learner's pipeline when it was built with ``on_transformed=True``) and the classifier's
``predict_proba``.

As modAL's own strategies, X may be a float, integer or bool array (integers and bools are
cast to float64) or a scipy sparse matrix (densified: the kernels are dense).

Example::

    from modAL.models import ActiveLearner
    from uwe_kernels.integrations.modal import uwe_strategy

    learner = ActiveLearner(estimator=clf, query_strategy=uwe_strategy(tau=1.0),
                            X_training=X0, y_training=y0)
    idx, rows = learner.query(X_pool, n_instances=32)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import uwe_kernels as uk

from ._common import SeedStream, as_float_rows, check_features, concat_rows, require, to_numpy

require("modAL", "modAL (modAL-python)", "modal")

FeatureFn = Callable[[Any, Any], Any]
QueryStrategy = Callable[..., "tuple[np.ndarray, np.ndarray]"]

__all__ = ["badge_strategy", "coreset_strategy", "uwe_strategy"]


def _n_rows(X: Any) -> int:
    """Row count of an array, tensor, scipy sparse matrix (no len()) or list."""
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


def _features(features: FeatureFn | None, classifier: Any, X: Any) -> Any:
    """The feature rows of X: `features(classifier, X)`, or X itself (through the learner's
    pipeline when modAL's on_transformed is set, as modAL's batch strategies do)."""
    if features is None:
        if getattr(classifier, "on_transformed", False):
            X = classifier.transform_without_estimating(X)
        out = as_float_rows(X, "X_pool")
    else:
        out = as_float_rows(features(classifier, X), "features(classifier, X)")
    check_features(out, _n_rows(X), "features(classifier, X)")
    return out


def _training_rows(classifier: Any) -> Any:
    """The learner's labelled rows (modAL keeps them in X_training), or None."""
    X_training = getattr(classifier, "X_training", None)
    return X_training if X_training is not None and _n_rows(X_training) else None


def _check_budget(n_instances: Any, n_pool: int) -> int:
    if not isinstance(n_instances, (int, np.integer)) or isinstance(n_instances, bool) or n_instances < 1:
        raise ValueError(f"n_instances must be a positive int, got {n_instances!r}")
    if n_instances > n_pool:
        raise ValueError(f"n_instances={n_instances} exceeds the {n_pool} rows of X_pool")
    return int(n_instances)


def _kcenter_strategy(features: FeatureFn | None, weighted: bool, kind: str, tau: float,
                      use_training: bool, backend: str) -> QueryStrategy:
    def embed(classifier: Any, X: Any) -> Any:
        f = _features(features, classifier, X)
        if not weighted:
            return f
        return uk.uwe(classifier.predict_proba(X), f, kind, tau, from_logits=False, backend=backend)

    def strategy(classifier: Any, X_pool: Any, n_instances: int = 1) -> tuple[np.ndarray, np.ndarray]:
        n_pool = _n_rows(X_pool)
        budget = _check_budget(n_instances, n_pool)
        emb = embed(classifier, X_pool)
        X_training = _training_rows(classifier) if use_training else None
        labelled = None
        if X_training is not None:
            emb = concat_rows(emb, embed(classifier, X_training))
            labelled = np.arange(n_pool, emb.shape[0])
        picks, dists = uk.kcenter_greedy(emb, labelled, budget, backend=backend, return_distances=True)
        return to_numpy(picks), to_numpy(dists)

    return strategy


def uwe_strategy(features: FeatureFn | None = None, *, kind: str = "entropy", tau: float = 1.0,
                 use_training: bool = True, backend: str = "auto") -> QueryStrategy:
    """k-center greedy on the uncertainty-weighted embedding ``u ** tau * features``.

    Args:
        features: ``features(classifier, X) -> [n, d]`` (numpy or torch); None uses X (after
            the learner's pipeline with ``on_transformed=True``).
        kind: uncertainty of ``classifier.predict_proba(X)`` ("entropy", "bvsb", "margin",
            "least_confidence").
        tau: power on the uncertainty (0 gives plain coreset).
        use_training: treat the learner's ``X_training`` as already-selected centres.
    Returns:
        ``strategy(classifier, X_pool, n_instances=1) -> (indices, distances)``: indices into
        X_pool in selection order and each pick's distance to its nearest centre. Ties go to
        the lowest index; other keyword arguments raise TypeError.
    """
    return _kcenter_strategy(features, True, kind, tau, use_training, backend)


def coreset_strategy(features: FeatureFn | None = None, *, use_training: bool = True,
                     backend: str = "auto") -> QueryStrategy:
    """Core-set (Sener & Savarese): k-center greedy on ``features(classifier, X)``.
    Returns a strategy like `uwe_strategy`'s."""
    return _kcenter_strategy(features, False, "entropy", 0.0, use_training, backend)


def badge_strategy(features: FeatureFn | None = None, *, seed: Any = None,
                   backend: str = "auto") -> QueryStrategy:
    """BADGE: k-means++ seeding on the gradient embedding ``(p - onehot(argmax p)) (x) f``,
    kept factored, over X_pool (as BADGE, labelled rows play no part).

    Args:
        features: ``features(classifier, X) -> [n, d]``; None uses X.
        seed: None, an int or a numpy RandomState. Each query draws its SplitMix64 seed from
            it, so rounds differ while a run with an int seed is reproducible, and a
            RandomState advances.
    Returns:
        ``strategy(classifier, X_pool, n_instances=1) -> (indices, norms)``: indices into
        X_pool in selection order and the gradient-embedding norm of each pick.
    """
    seeds = SeedStream(seed)

    def strategy(classifier: Any, X_pool: Any, n_instances: int = 1) -> tuple[np.ndarray, np.ndarray]:
        budget = _check_budget(n_instances, _n_rows(X_pool))
        emb = uk.badge_factored(classifier.predict_proba(X_pool), _features(features, classifier, X_pool),
                                from_logits=False, backend=backend)
        picks = to_numpy(uk.kmeans_pp(emb, budget, seed=seeds.next(), backend=backend))
        weights = to_numpy(emb.weights)[picks].astype(np.float64)
        rows = to_numpy(emb.features)[picks].astype(np.float64)
        return picks, np.linalg.norm(weights, axis=1) * np.linalg.norm(rows, axis=1)

    return strategy
