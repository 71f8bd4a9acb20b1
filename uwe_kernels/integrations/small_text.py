"""small-text query strategies backed by uwe_kernels.

``UWE``, ``Coreset`` and ``Badge`` are small-text ``EmbeddingBasedQueryStrategy``
subclasses: ``query(clf, dataset, indices_unlabeled, indices_labeled, y, n=10, pbar="tqdm",
embeddings=None, embed_kwargs={})`` embeds the unlabelled then the labelled rows with
``clf.embed(..., return_proba=True, pbar=pbar, **embed_kwargs)`` (small-text's neural
classifiers), takes precomputed ``embeddings`` in that row order, or, for classifiers
without ``embed``, calls ``features(clf, dataset) -> [n, d]``; probabilities not returned
by ``embed`` come from ``clf.predict_proba``. Indices come back relative to ``dataset`` in
selection order; distance ties go to the earliest row in that unlabelled-then-labelled
order, as small-text's GreedyCoreset. Integer and bool embeddings are cast to float64.

``UWE`` and ``Badge`` refuse multi-label data as small-text's BADGE does (``@constraints``).

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
from ._common import SeedStream, as_float_rows, check_features, require, to_numpy

require("small_text", "small-text", "small-text")

from small_text.query_strategies import EmbeddingBasedQueryStrategy, constraints  # noqa: E402

FeatureFn = Callable[[Any, Any], Any]

__all__ = ["UWE", "Badge", "Coreset"]


def _l2_normalize(x: Any) -> Any:
    """Rows scaled to unit norm (zero rows stay zero), as small-text's normalize=True."""
    if _arrays.is_torch(x):
        return _arrays._torch().nn.functional.normalize(x, dim=1)
    x = np.asarray(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms).astype(x.dtype)


class _EmbeddingStrategy(EmbeddingBasedQueryStrategy):  # type: ignore[misc]
    """Shared plumbing: where embeddings come from, and their checks."""

    def __init__(self, features: FeatureFn | None, normalize: bool, backend: str) -> None:
        self.features = features
        self.normalize = normalize
        self.backend = backend

    def query(self, clf: Any, dataset: Any, indices_unlabeled: Any, indices_labeled: Any, y: Any, n: int = 10,
              pbar: Any = "tqdm", embeddings: Any = None, embed_kwargs: Any = None) -> np.ndarray:
        rows = np.concatenate([np.asarray(indices_unlabeled, dtype=np.int64),
                               np.asarray(indices_labeled, dtype=np.int64)])
        if embeddings is None and self.features is not None and len(indices_unlabeled) > n:
            embeddings = self.features(clf, dataset[rows])
        elif embeddings is None and not hasattr(clf, "embed"):
            raise ValueError(f"{type(clf).__name__} has no embed(); pass features=lambda clf, dataset: ... "
                             "returning [n, d] features, or precomputed embeddings=")
        chosen: np.ndarray = super().query(clf, dataset, np.asarray(indices_unlabeled), np.asarray(indices_labeled),
                                           y, n=n, pbar=pbar, embeddings=embeddings,
                                           embed_kwargs={} if embed_kwargs is None else embed_kwargs)
        return chosen

    def _prepared(self, clf: Any, dataset: Any, embeddings: Any, embeddings_proba: Any,
                  need_proba: bool) -> tuple[Any, Any]:
        emb = as_float_rows(embeddings, "the embeddings")
        check_features(emb, len(dataset), "the embeddings")
        proba = embeddings_proba
        if need_proba and proba is None:
            proba = clf.predict_proba(dataset)
        return (_l2_normalize(emb) if self.normalize else emb), proba


class _KCenter(_EmbeddingStrategy):
    weighted = False
    kind = "entropy"
    tau = 0.0

    def sample(self, clf: Any, dataset: Any, indices_unlabeled: Any, indices_labeled: Any, y: Any, n: int,
               embeddings: Any, embeddings_proba: Any = None) -> np.ndarray:
        emb, proba = self._prepared(clf, dataset, embeddings, embeddings_proba, self.weighted)
        if self.weighted:
            emb = uk.uwe(proba, emb, self.kind, self.tau, from_logits=False, backend=self.backend)
        picks: np.ndarray = to_numpy(uk.kcenter_greedy(emb, np.asarray(indices_labeled), n, backend=self.backend))
        return picks


@constraints(classification_type="single-label")
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


@constraints(classification_type="single-label")
class Badge(_EmbeddingStrategy):
    """BADGE: k-means++ seeding on the gradient embedding ``(p - onehot(argmax p)) (x) f``,
    kept factored, over the unlabelled rows (first pick: the largest gradient norm).

    Args:
        seed: None, an int or a numpy RandomState; each query draws its SplitMix64 seed from
            it (rounds differ, a run with an int seed is reproducible, a RandomState
            advances). small-text's BADGE is unseeded, as ``seed=None`` here.
        features: ``features(clf, dataset) -> [n, d]`` for classifiers without ``embed``.
        normalize: L2-normalise the embeddings first.
    """

    def __init__(self, seed: Any = None, features: FeatureFn | None = None, normalize: bool = False,
                 backend: str = "auto") -> None:
        super().__init__(features, normalize, backend)
        self.seed = seed
        self._seeds = SeedStream(seed)

    def sample(self, clf: Any, dataset: Any, indices_unlabeled: Any, indices_labeled: Any, y: Any, n: int,
               embeddings: Any, embeddings_proba: Any = None) -> np.ndarray:
        emb, proba = self._prepared(clf, dataset, embeddings, embeddings_proba, True)
        unlabelled = np.asarray(indices_unlabeled, dtype=np.int64)
        factored = uk.badge_factored(proba[unlabelled], emb[unlabelled], from_logits=False, backend=self.backend)
        picks = to_numpy(uk.kmeans_pp(factored, n, seed=self._seeds.next(), backend=self.backend))
        chosen: np.ndarray = unlabelled[picks]
        return chosen

    def __str__(self) -> str:
        return f"Badge(seed={self.seed}, normalize={self.normalize})"
