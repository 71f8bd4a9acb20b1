"""baal heuristics backed by uwe_kernels: UWE, core-set and BADGE for Bayesian (MC-dropout)
active learning.

baal's ``ActiveLearningLoop`` calls ``get_probabilities(pool, **kwargs)`` and hands the result
to ``heuristic.get_ranks(...)``, which returns ``(ranks, scores)``; the loop labels
``ranks[:query_size]``. These heuristics need penultimate features next to the MC-dropout
probabilities, so wrap the loop's ``get_probabilities`` with `with_features`, which returns a
`PoolOutputs` (probabilities ``[n, C, T]`` or, for segmentation, ``[n, C, H, W, T]``;
features ``[n, d]`` or ``[n, D, h, w]``; optionally the same for the labelled set, whose rows
become k-center centres). Like baal's ``BatchBALD``, ``get_ranks`` puts the batch first, in
selection order (then the other pool rows by index), and the scores are zero except at the
batch.

Uncertainty ``kind="bald"`` is the mutual information between prediction and weights,
``H(mean_t p_t) - mean_t H(p_t)``: ``uwe_kernels.uncertainty(..., kind="bald")`` on the
``[n, C, T]`` probabilities (`mutual_information` for any ``[n, C, ..., T]``), applied as the
factored weights ``u ** tau`` of a `uwe_kernels.FactoredEmbedding`. The other kinds ("entropy", "bvsb",
"margin", "least_confidence") are those of ``uwe_kernels.uncertainty`` on the mean over the T
passes. Inputs that are not probabilities (logits) are softmaxed over axis 1, as baal's
heuristics do.

Example::

    from baal.active import ActiveLearningLoop
    from uwe_kernels.integrations.baal import UWE, with_features

    get_probabilities = with_features(wrapper.predict_on_dataset, penultimate, labelled=active_set)
    loop = ActiveLearningLoop(active_set, get_probabilities, heuristic=UWE(query_size=32, kind="bald"),
                              query_size=32, iterations=20)
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

import uwe_kernels as uk

from ._common import SeedStream, as_float_rows, require, to_numpy

require("baal", "baal", "baal")

from baal.active.heuristics import AbstractHeuristic  # noqa: E402
from baal.active.heuristics.heuristics import to_prob  # noqa: E402

__all__ = ["Badge", "CoreSet", "PoolOutputs", "UWE", "mutual_information", "with_features"]

KINDS = ("bald", "entropy", "bvsb", "margin", "least_confidence")


class PoolOutputs(NamedTuple):
    """What the heuristics rank: MC-dropout probabilities and features of the pool, and
    optionally of the labelled set (None: the pool alone, as baal's own heuristics)."""

    probabilities: Any
    features: Any
    labelled_probabilities: Any = None
    labelled_features: Any = None


def with_features(get_probabilities: Callable[..., Any], get_features: Callable[[Any], Any],
                  labelled: Any = None) -> Callable[..., PoolOutputs]:
    """Wrap ``get_probabilities(dataset, **kwargs)`` (e.g. ``ModelWrapper.predict_on_dataset``)
    so it also returns ``get_features(dataset)``, and both for ``labelled`` (a dataset, e.g.
    the ``ActiveLearningDataset`` itself) when given."""

    def outputs(pool: Any, **kwargs: Any) -> PoolOutputs:
        if labelled is None or len(labelled) == 0:
            return PoolOutputs(get_probabilities(pool, **kwargs), get_features(pool))
        return PoolOutputs(get_probabilities(pool, **kwargs), get_features(pool),
                           get_probabilities(labelled, **kwargs), get_features(labelled))

    return outputs


def mutual_information(probabilities: Any, backend: str = "auto") -> np.ndarray:
    """BALD: ``H(mean_t p_t) - mean_t H(p_t)`` over ``[n, C, ..., T]`` probabilities (natural
    log, 0 log 0 = 0), float64 ``[n, ...]``: ``uwe_kernels.uncertainty(kind="bald")`` with the
    extra axes (segmentation pixels) taken as rows."""
    p = np.asarray(to_numpy(probabilities), dtype=np.float64)
    if p.ndim < 3:
        raise ValueError(f"mutual information needs [n, C, ..., T] probabilities, got shape {p.shape}")
    rows = p if p.ndim == 3 else np.moveaxis(p, 1, -2).reshape(-1, p.shape[1], p.shape[-1])
    u = uk.uncertainty(rows, "bald", from_logits=False, backend=backend)
    out: np.ndarray = np.asarray(u).reshape((p.shape[0],) + p.shape[2:-1])
    return out


def _probabilities(predictions: Any) -> np.ndarray:
    p = np.asarray(to_numpy(predictions))
    if p.ndim not in (3, 5):
        raise ValueError(f"predictions must be [n, C, T] (classification) or [n, C, H, W, T] "
                         f"(segmentation), got shape {p.shape}")
    probs: np.ndarray = to_prob(p)
    return probs


class _Heuristic(AbstractHeuristic):  # type: ignore[misc]
    """Shared ranking: unpack `PoolOutputs`, select a batch, return it first."""

    def __init__(self, query_size: int, backend: str) -> None:
        super().__init__(reverse=True)
        if not isinstance(query_size, (int, np.integer)) or isinstance(query_size, bool) or query_size < 1:
            raise ValueError(f"query_size must be a positive int, got {query_size!r}")
        self.query_size = int(query_size)
        self.backend = backend

    def get_ranks(self, predictions: Any, target_predictions: Any = None) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(predictions, PoolOutputs):
            raise TypeError("this heuristic needs features next to the probabilities: wrap the loop's "
                            "get_probabilities with uwe_kernels.integrations.baal.with_features, got "
                            f"{type(predictions).__name__}")
        probs = _probabilities(predictions.probabilities)
        n = probs.shape[0]
        budget = min(self.query_size, n)
        picks, scores = self._select(predictions, probs, budget)
        picks = np.asarray(picks, dtype=np.int64)
        rest = np.setdiff1d(np.arange(n), picks)
        out = np.zeros(n)
        out[picks] = scores
        return np.concatenate([picks, rest]), out

    def compute_score(self, predictions: Any, target_predictions: Any = None) -> np.ndarray:
        raise TypeError(f"{type(self).__name__} ranks whole batches: call get_ranks")

    def _select(self, outputs: PoolOutputs, probs: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _labelled(self, outputs: PoolOutputs) -> tuple[np.ndarray | None, Any]:
        if outputs.labelled_features is None or len(outputs.labelled_features) == 0:
            return None, None
        return _probabilities(outputs.labelled_probabilities), outputs.labelled_features


def _uwe_rows(probs: np.ndarray, features: Any, kind: str, tau: float, backend: str) -> Any:
    """The UWE rows of one set: dense for segmentation kinds other than BALD, else factored."""
    features = as_float_rows(features, "features") if probs.ndim == 3 else features
    if probs.ndim == 5:
        mean = probs.mean(axis=-1)
        if kind != "bald":
            return uk.uwe_segmentation(mean, features, kind=kind, tau=tau, from_logits=False, backend=backend)
        pooled = uk.uwe_segmentation(mean, features, tau=0.0, from_logits=False, backend=backend)
        weights = mutual_information(probs, backend).mean(axis=(1, 2)) ** tau
        return uk.FactoredEmbedding(weights.astype(to_numpy(pooled).dtype), pooled)
    if kind != "bald":
        return uk.uwe_factored(probs.mean(axis=-1), features, kind, tau, from_logits=False, backend=backend)
    return uk.uwe_factored(probs, features, "bald", tau, from_logits=False, backend=backend)


def _stack(pool: Any, labelled: Any) -> Any:
    """Pool rows then labelled rows of two embeddings of the same kind."""
    if isinstance(pool, uk.FactoredEmbedding):
        return uk.FactoredEmbedding(np.concatenate([to_numpy(pool.weights), to_numpy(labelled.weights)]),
                                    np.concatenate([to_numpy(pool.features), to_numpy(labelled.features)]))
    return np.concatenate([to_numpy(pool), to_numpy(labelled)])


class UWE(_Heuristic):
    """Uncertainty-weighted embeddings: k-center greedy on ``u ** tau * features``, labelled
    rows (when `PoolOutputs` has them) as centres.

    Args:
        query_size: how many rows to select per step (the loop's ``query_size``).
        kind: "bald" (mutual information over the T passes: epistemic uncertainty) or one of
            ``uwe_kernels.uncertainty``'s kinds on the mean probabilities.
        tau: power on the uncertainty (0 gives plain core-set).
        backend: uwe_kernels backend of the selection.
    Scores: each pick's distance to its nearest centre when picked (inf for a first pick with
    nothing labelled).
    """

    def __init__(self, query_size: int, kind: str = "bald", tau: float = 1.0, backend: str = "auto") -> None:
        super().__init__(query_size, backend)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.tau = tau

    def _select(self, outputs: PoolOutputs, probs: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        emb = _uwe_rows(probs, outputs.features, self.kind, self.tau, self.backend)
        lab_probs, lab_features = self._labelled(outputs)
        labelled = None
        if lab_probs is not None:
            emb = _stack(emb, _uwe_rows(lab_probs, lab_features, self.kind, self.tau, self.backend))
            labelled = np.arange(len(probs), emb.shape[0])
        picks, dists = uk.kcenter_greedy(emb, labelled, budget, return_distances=True, backend=self.backend)
        return to_numpy(picks), to_numpy(dists)


class CoreSet(_Heuristic):
    """Core-set (Sener & Savarese): k-center greedy on the features (segmentation: the
    features averaged over each image), labelled rows as centres when given.
    Scores: each pick's distance to its nearest centre when picked."""

    def __init__(self, query_size: int, backend: str = "auto") -> None:
        super().__init__(query_size, backend)

    def _select(self, outputs: PoolOutputs, probs: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        rows = _uwe_rows(probs, outputs.features, "entropy", 0.0, self.backend)
        lab_probs, lab_features = self._labelled(outputs)
        labelled = None
        if lab_probs is not None:
            rows = _stack(rows, _uwe_rows(lab_probs, lab_features, "entropy", 0.0, self.backend))
            labelled = np.arange(len(probs), rows.shape[0])
        picks, dists = uk.kcenter_greedy(rows, labelled, budget, return_distances=True, backend=self.backend)
        return to_numpy(picks), to_numpy(dists)


class Badge(_Heuristic):
    """BADGE: k-means++ seeding on the gradient embedding of the mean MC-dropout
    probabilities, ``(p - onehot(argmax p)) (x) f``, kept factored, over the pool
    (classification only; labelled rows play no part, as BADGE).

    Args:
        query_size: how many rows to select per step.
        seed: None, an int or a numpy RandomState; each step draws its SplitMix64 seed from
            it (steps differ, a run with an int seed is reproducible).
    Scores: each pick's gradient-embedding norm.
    """

    def __init__(self, query_size: int, seed: Any = None, backend: str = "auto") -> None:
        super().__init__(query_size, backend)
        self.seed = seed
        self._seeds = SeedStream(seed)

    def _select(self, outputs: PoolOutputs, probs: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        if probs.ndim != 3:
            raise ValueError(f"BADGE is defined for classification [n, C, T] predictions, got shape {probs.shape}")
        features = as_float_rows(outputs.features, "features")
        emb = uk.badge_factored(probs.mean(axis=-1), features, from_logits=False, backend=self.backend)
        picks = to_numpy(uk.kmeans_pp(emb, budget, seed=self._seeds.next(), backend=self.backend))
        weights = to_numpy(emb.weights)[picks].astype(np.float64)
        rows = to_numpy(emb.features)[picks].astype(np.float64)
        return picks, np.linalg.norm(weights, axis=1) * np.linalg.norm(rows, axis=1)
