"""scikit-activeml query strategies backed by uwe_kernels.

``UWE``, ``CoreSet`` and ``Badge`` follow scikit-activeml's pool conventions: ``X`` holds
all samples, ``y`` their labels with ``missing_label`` marking the unlabelled ones (the
labelled rows are those whose y is not missing), ``candidates`` is None (every unlabelled
sample), an index array into X, or rows of their own, and ``query`` returns indices (and,
with ``return_utilities=True``, a ``[batch_size, n]`` utility matrix, NaN where a sample
cannot be picked).

Labelled rows are the k-center greedy centres of ``UWE`` and ``CoreSet``; ``Badge``, like
scikit-activeml's, runs k-means++ over the unlabelled candidates alone, first pick the
largest gradient norm. Ties go to the lowest index (in X, or in candidates when they are
rows of their own).

Example::

    from skactiveml.classifier import SklearnClassifier
    from uwe_kernels.integrations.skactiveml import UWE

    clf = SklearnClassifier(LogisticRegression(), classes=np.arange(10))
    idx = UWE(tau=1.0).query(X, y, clf, batch_size=32)
"""
from __future__ import annotations

from typing import Any

import numpy as np

import uwe_kernels as uk

from ._common import check_features, require, to_numpy

require("skactiveml", "scikit-activeml", "skactiveml")

from sklearn.base import clone  # noqa: E402
from skactiveml.base import SingleAnnotatorPoolQueryStrategy, SkactivemlClassifier  # noqa: E402
from skactiveml.utils import (  # noqa: E402
    MISSING_LABEL,
    check_equal_missing_label,
    check_scalar,
    check_type,
    is_labeled,
)

__all__ = ["UWE", "Badge", "CoreSet"]


class _Pool:
    """The rows a query works on: `X_pool` (labelled centres and candidates), which of them
    are labelled, and how a pool position maps to a returned index and a utility column."""

    def __init__(self, X_pool: Any, labelled: np.ndarray, out_index: np.ndarray, width: int) -> None:
        self.X_pool = X_pool
        self.labelled = labelled  # bool [len(X_pool)]
        self.out_index = out_index  # int [len(X_pool)], -1 for rows that are not candidates
        self.width = width  # columns of the utility matrix


def _kcenter_pool(X: np.ndarray, y: np.ndarray, candidates: Any, mapping: Any, missing_label: Any) -> _Pool:
    labelled = is_labeled(y, missing_label=missing_label)
    if mapping is None:  # candidates are rows of their own; labelled rows of X follow them
        n_cand = len(candidates)
        X_lab = X[labelled]
        X_pool = np.concatenate([np.asarray(candidates, dtype=np.result_type(candidates, X_lab)), X_lab])
        mask = np.arange(len(X_pool)) >= n_cand
        out = np.where(mask, -1, np.arange(len(X_pool)))
        return _Pool(X_pool, mask, out, n_cand)
    cand = np.zeros(len(X), dtype=bool)
    cand[np.asarray(mapping, dtype=np.int64)] = True
    cand &= ~labelled
    rows = np.flatnonzero(cand | labelled)
    X_pool = X if len(rows) == len(X) else X[rows]
    return _Pool(X_pool, labelled[rows], np.where(cand[rows], rows, -1), len(X))


def _badge_pool(X: np.ndarray, y: np.ndarray, candidates: Any, mapping: Any, missing_label: Any) -> _Pool:
    if mapping is None:
        n_cand = len(candidates)
        return _Pool(np.asarray(candidates), np.zeros(n_cand, dtype=bool), np.arange(n_cand), n_cand)
    cand = np.zeros(len(X), dtype=bool)
    cand[np.asarray(mapping, dtype=np.int64)] = True
    cand &= ~is_labeled(y, missing_label=missing_label)
    rows = np.flatnonzero(cand)
    X_pool = X if len(rows) == len(X) else X[rows]
    return _Pool(X_pool, np.zeros(len(rows), dtype=bool), rows, len(X))


def _scatter(values: np.ndarray, pool: _Pool, blocked: np.ndarray) -> np.ndarray:
    """One utility row: `values` at the candidates' columns, NaN elsewhere."""
    row = np.full(pool.width, np.nan)
    keep = (pool.out_index >= 0) & ~blocked
    row[pool.out_index[keep]] = values[keep]
    return row


def _kcenter_utilities(emb: Any, pool: _Pool, picks: np.ndarray, backend: str) -> np.ndarray:
    """Euclidean distance of every candidate to its nearest centre before each pick (the
    norm before a first pick with nothing labelled, which is what that pick maximises)."""
    emb_np = to_numpy(emb)
    centres = emb_np[pool.labelled] if pool.labelled.any() else np.zeros((1, emb_np.shape[1]), emb_np.dtype)
    d2 = to_numpy(uk.min_distances(emb_np, centres, backend=backend)).astype(np.float64)
    blocked = pool.labelled.copy()
    rows = []
    for p in picks:
        rows.append(_scatter(np.sqrt(d2), pool, blocked))
        blocked[p] = True
        d2 = np.minimum(d2, to_numpy(uk.min_distances(emb_np, emb_np[p : p + 1], backend=backend)))
    return np.array(rows).reshape(len(picks), pool.width)


def _badge_utilities(emb: uk.FactoredEmbedding, pool: _Pool, picks: np.ndarray, backend: str) -> np.ndarray:
    """k-means++ probabilities D / sum(D) over the candidates before each pick (D the
    squared gradient norm before the first, which that pick maximises; uniform when all D
    are zero)."""
    weights, features = to_numpy(emb.weights), to_numpy(emb.features)
    origin = uk.FactoredEmbedding(np.zeros((1, weights.shape[1]), weights.dtype),
                                  np.zeros((1, features.shape[1]), features.dtype))
    plain = uk.FactoredEmbedding(weights, features)
    d2 = to_numpy(uk.min_distances(plain, origin, backend=backend)).astype(np.float64)
    blocked = np.zeros(len(d2), dtype=bool)
    rows = []
    for p in picks:
        live = np.where(blocked, 0.0, d2)
        total = live.sum()
        probs = live / total if total > 0 else np.where(blocked, 0.0, 1.0 / max(1, (~blocked).sum()))
        rows.append(_scatter(probs, pool, blocked))
        blocked[p] = True
        centre = uk.FactoredEmbedding(weights[p : p + 1], features[p : p + 1])
        d2 = np.minimum(d2, to_numpy(uk.min_distances(plain, centre, backend=backend)))
    return np.array(rows).reshape(len(picks), pool.width)


def _seed(random_state: Any, random_state_: np.random.RandomState) -> int:
    """An int random_state is the SplitMix64 seed; otherwise draw one from the RandomState."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % 2**64
    return int(random_state_.randint(0, 2**31 - 1))


class _ClassifierStrategy(SingleAnnotatorPoolQueryStrategy):  # type: ignore[misc]
    """Shared `clf` handling: fitting, probabilities and embeddings as scikit-activeml's
    Badge takes them (``clf_embedding_flag_name``)."""

    def __init__(self, clf_embedding_flag_name: Any = None, missing_label: Any = MISSING_LABEL,
                 random_state: Any = None, backend: str = "auto") -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.clf_embedding_flag_name = clf_embedding_flag_name
        self.backend = backend

    def _fitted(self, clf: Any, X: np.ndarray, y: np.ndarray, fit_clf: bool, sample_weight: Any) -> Any:
        check_type(clf, "clf", SkactivemlClassifier)
        check_equal_missing_label(clf.missing_label, self.missing_label_)
        check_scalar(fit_clf, "fit_clf", bool)
        if not fit_clf:
            return clf
        return clone(clf).fit(X, y) if sample_weight is None else clone(clf).fit(X, y, sample_weight)

    def _proba_and_features(self, clf: Any, X_pool: Any) -> tuple[Any, Any]:
        flag = self.clf_embedding_flag_name
        if flag is None:
            out = clf.predict_proba(X_pool)
        else:
            check_type(flag, "clf_embedding_flag_name", dict, str)
            out = clf.predict_proba(X_pool, **({flag: True} if isinstance(flag, str) else flag))
        proba, features = out if isinstance(out, tuple) else (out, X_pool)
        check_features(features, len(X_pool), "clf.predict_proba embeddings")
        return proba, features


class UWE(_ClassifierStrategy):
    """Uncertainty-weighted embeddings: k-center greedy on ``u ** tau * features``, the
    labelled samples as centres.

    Args:
        kind: uncertainty of ``clf.predict_proba``: "entropy", "bvsb", "margin" or
            "least_confidence".
        tau: power on the uncertainty (0 gives plain core-set).
        clf_embedding_flag_name: as scikit-activeml's Badge: None uses X as the features
            (or the second output of ``predict_proba`` when it returns
            ``(proba, embeddings)``); a str or dict is passed to ``predict_proba`` to ask for
            ``(proba, embeddings)``.
        missing_label: value marking an unlabelled sample in y.
        random_state: as every scikit-activeml strategy (k-center greedy draws nothing).
        backend: uwe_kernels backend.
    """

    def __init__(self, kind: str = "entropy", tau: float = 1.0, clf_embedding_flag_name: Any = None,
                 missing_label: Any = MISSING_LABEL, random_state: Any = None, backend: str = "auto") -> None:
        super().__init__(clf_embedding_flag_name, missing_label, random_state, backend)
        self.kind = kind
        self.tau = tau

    def query(self, X: Any, y: Any, clf: Any, fit_clf: bool = True, sample_weight: Any = None,
              candidates: Any = None, batch_size: int = 1, return_utilities: bool = False) -> Any:
        """Indices of the samples to label, in selection order (into X, or into candidates
        when they are rows); with return_utilities also the [batch_size, n] distances to the
        nearest centre before each pick."""
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True
        )
        _, mapping = self._transform_candidates(candidates, X, y)
        clf = self._fitted(clf, X, y, fit_clf, sample_weight)
        pool = _kcenter_pool(X, y, candidates, mapping, self.missing_label_)
        proba, features = self._proba_and_features(clf, pool.X_pool)
        emb = uk.uwe(proba, features, self.kind, self.tau, from_logits=False, backend=self.backend)
        picks = to_numpy(uk.kcenter_greedy(emb, pool.labelled, batch_size, backend=self.backend))
        query_indices = pool.out_index[picks]
        if return_utilities:
            return query_indices, _kcenter_utilities(emb, pool, picks, self.backend)
        return query_indices


class CoreSet(SingleAnnotatorPoolQueryStrategy):  # type: ignore[misc]
    """Core-set (Sener & Savarese): exact k-center greedy on X, the labelled samples as
    centres. Same ``query(X, y, candidates=None, batch_size=1, return_utilities=False)`` as
    scikit-activeml's CoreSet with the Euclidean metric, on uwe_kernels' kernels."""

    def __init__(self, missing_label: Any = MISSING_LABEL, random_state: Any = None, backend: str = "auto") -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.backend = backend

    def query(self, X: Any, y: Any, candidates: Any = None, batch_size: int = 1,
              return_utilities: bool = False) -> Any:
        """Indices to label in selection order; with return_utilities also the
        [batch_size, n] distances to the nearest centre before each pick."""
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True
        )
        _, mapping = self._transform_candidates(candidates, X, y)
        pool = _kcenter_pool(X, y, candidates, mapping, self.missing_label_)
        picks = to_numpy(uk.kcenter_greedy(pool.X_pool, pool.labelled, batch_size, backend=self.backend))
        query_indices = pool.out_index[picks]
        if return_utilities:
            return query_indices, _kcenter_utilities(pool.X_pool, pool, picks, self.backend)
        return query_indices


class Badge(_ClassifierStrategy):
    """BADGE: k-means++ seeding on the gradient embedding ``(p - onehot(argmax p)) (x) f``,
    kept factored (n*(K+d) numbers instead of n*K*d), over the unlabelled candidates.

    Parameters as scikit-activeml's Badge, plus ``backend``. An int ``random_state`` is the
    SplitMix64 seed of the draws (same seed, same picks on every uwe_kernels backend);
    otherwise a seed is drawn from it.
    """

    def query(self, X: Any, y: Any, clf: Any, fit_clf: bool = True, sample_weight: Any = None,
              candidates: Any = None, batch_size: int = 1, return_utilities: bool = False) -> Any:
        """Indices to label in selection order; with return_utilities also the
        [batch_size, n] sampling probabilities before each pick."""
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True
        )
        _, mapping = self._transform_candidates(candidates, X, y)
        clf = self._fitted(clf, X, y, fit_clf, sample_weight)
        pool = _badge_pool(X, y, candidates, mapping, self.missing_label_)
        proba, features = self._proba_and_features(clf, pool.X_pool)
        emb = uk.badge_factored(proba, features, from_logits=False, backend=self.backend)
        seed = _seed(self.random_state, self.random_state_)
        picks = to_numpy(uk.kmeans_pp(emb, batch_size, seed=seed, backend=self.backend))
        query_indices = pool.out_index[picks]
        if return_utilities:
            return query_indices, _badge_utilities(emb, pool, picks, self.backend)
        return query_indices
