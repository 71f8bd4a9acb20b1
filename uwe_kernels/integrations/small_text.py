"""small-text query strategies backed by uwe_kernels.

``UWE``, ``Coreset`` and ``Badge`` implement small-text's
``query(clf, dataset, indices_unlabeled, indices_labeled, y, n=10)`` and return indices
relative to ``dataset`` in selection order. Embeddings and probabilities come from
``clf.embed(dataset, return_proba=True)`` where the classifier has ``embed`` (small-text's
neural classifiers), else from ``features(clf, dataset) -> [n, d]`` and
``clf.predict_proba(dataset)``. Only the labelled and unlabelled rows are embedded, in
dataset order, so ties go to the lowest dataset index.

Example::

    from small_text import PoolBasedActiveLearner
    from uwe_kernels.integrations.small_text import UWE

    learner = PoolBasedActiveLearner(clf_factory, UWE(tau=1.0), train)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import uwe_kernels as uk

from .. import _arrays
from ._common import check_features, require, to_numpy

require("small_text", "small-text", "small-text")

from small_text.query_strategies import QueryStrategy  # noqa: E402
from small_text.query_strategies.exceptions import EmptyPoolException, PoolExhaustedException  # noqa: E402

FeatureFn = Callable[[Any, Any], Any]

__all__ = ["UWE", "Badge", "Coreset"]


def _l2_normalize(x: Any) -> Any:
    """Rows scaled to unit norm (zero rows stay zero), as small-text's normalize=True."""
    if _arrays.is_torch(x):
        return _arrays._torch().nn.functional.normalize(x, dim=1)
    x = np.asarray(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms).astype(x.dtype)


class _EmbeddingStrategy(QueryStrategy):  # type: ignore[misc]
    """Shared plumbing: input checks, which rows to embed, and where embeddings come from."""

    def __init__(self, features: FeatureFn | None, normalize: bool, backend: str) -> None:
        self.features = features
        self.normalize = normalize
        self.backend = backend

    @staticmethod
    def _check(indices_unlabeled: Any, n: int) -> None:
        if len(indices_unlabeled) == 0:
            raise EmptyPoolException("No unlabeled indices available. Cannot query an empty pool.")
        if n > len(indices_unlabeled):
            raise PoolExhaustedException(f"Pool exhausted: {len(indices_unlabeled)} available / {n} requested")

    def _embed(self, clf: Any, dataset: Any, rows: np.ndarray, need_proba: bool) -> tuple[Any, Any]:
        subset = dataset[rows]
        if self.features is None and hasattr(clf, "embed"):
            try:
                emb, proba = clf.embed(subset, return_proba=True)
            except TypeError as exc:
                if "return_proba" not in str(exc):
                    raise
                emb, proba = clf.embed(subset), None
        elif self.features is not None:
            emb, proba = self.features(clf, subset), None
        else:
            raise ValueError(
                f"{type(clf).__name__} has no embed(); pass features=lambda clf, dataset: ... "
                "returning [n, d] features"
            )
        check_features(emb, len(rows), "the embeddings")
        if need_proba and proba is None:
            proba = clf.predict_proba(subset)
        return (_l2_normalize(emb) if self.normalize else emb), proba


class _KCenter(_EmbeddingStrategy):
    weighted = False
    kind = "entropy"
    tau = 0.0

    def query(self, clf: Any, dataset: Any, indices_unlabeled: Any, indices_labeled: Any, y: Any,
              n: int = 10) -> np.ndarray:
        self._check(indices_unlabeled, n)
        unlabelled = np.asarray(indices_unlabeled, dtype=np.int64)
        rows = np.unique(np.concatenate([unlabelled, np.asarray(indices_labeled, dtype=np.int64)]))
        labelled = ~np.isin(rows, unlabelled)
        emb, proba = self._embed(clf, dataset, rows, need_proba=self.weighted)
        if self.weighted:
            emb = uk.uwe(proba, emb, self.kind, self.tau, from_logits=False, backend=self.backend)
        picks = to_numpy(uk.kcenter_greedy(emb, labelled, n, backend=self.backend))
        chosen: np.ndarray = rows[picks]
        return chosen


class UWE(_KCenter):
    """Uncertainty-weighted embeddings: k-center greedy on ``u ** tau * embedding``, the
    labelled rows as centres.

    Args:
        kind: uncertainty of the class probabilities ("entropy", "bvsb", "margin",
            "least_confidence").
        tau: power on the uncertainty (0 gives plain core-set).
        features: ``features(clf, dataset) -> [n, d]`` for classifiers without ``embed``.
        normalize: L2-normalise the embeddings before weighting them.
        backend: uwe_kernels backend.
    """

    weighted = True

    def __init__(self, kind: str = "entropy", tau: float = 1.0, features: FeatureFn | None = None,
                 normalize: bool = False, backend: str = "auto") -> None:
        super().__init__(features, normalize, backend)
        self.kind = kind
        self.tau = tau

    def __str__(self) -> str:
        return f"UWE(kind={self.kind}, tau={self.tau}, normalize={self.normalize})"


class Coreset(_KCenter):
    """Greedy core-set (Sener & Savarese) on the embeddings with the Euclidean distance,
    the labelled rows as centres: small-text's GreedyCoreset(distance_metric="euclidean"),
    exact and on uwe_kernels' kernels.

    Args:
        features: ``features(clf, dataset) -> [n, d]`` for classifiers without ``embed``.
        normalize: L2-normalise the embeddings first (GreedyCoreset's default).
    """

    def __init__(self, features: FeatureFn | None = None, normalize: bool = True, backend: str = "auto") -> None:
        super().__init__(features, normalize, backend)

    def __str__(self) -> str:
        return f"Coreset(normalize={self.normalize})"


class Badge(_EmbeddingStrategy):
    """BADGE: k-means++ seeding on the gradient embedding ``(p - onehot(argmax p)) (x) f``,
    kept factored, over the unlabelled rows (first pick: the largest gradient norm).

    Args:
        seed: SplitMix64 seed of the k-means++ draws (same seed, same picks).
        features: ``features(clf, dataset) -> [n, d]`` for classifiers without ``embed``.
        normalize: L2-normalise the embeddings first.
    """

    def __init__(self, seed: int = 0, features: FeatureFn | None = None, normalize: bool = False,
                 backend: str = "auto") -> None:
        super().__init__(features, normalize, backend)
        self.seed = seed

    def query(self, clf: Any, dataset: Any, indices_unlabeled: Any, indices_labeled: Any, y: Any,
              n: int = 10) -> np.ndarray:
        self._check(indices_unlabeled, n)
        rows = np.unique(np.asarray(indices_unlabeled, dtype=np.int64))
        emb, proba = self._embed(clf, dataset, rows, need_proba=True)
        factored = uk.badge_factored(proba, emb, from_logits=False, backend=self.backend)
        picks = to_numpy(uk.kmeans_pp(factored, n, seed=self.seed, backend=self.backend))
        chosen: np.ndarray = rows[picks]
        return chosen

    def __str__(self) -> str:
        return f"Badge(seed={self.seed}, normalize={self.normalize})"
