"""Peer selection methods, each written or called the way its users run it.

k-center greedy: google/active-learning style (sklearn pairwise_distances to each new
centre), a torch.cdist loop, scikit-activeml CoreSet and fpsample. k-means++: scikit-learn
kmeans_plusplus, BADGE's own init_centers (scipy rv_discrete over pairwise distances) and
scikit-activeml Badge. None of them is called with anything they would not get in use.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def google_kcenter(features: np.ndarray, labelled: np.ndarray, budget: int) -> np.ndarray:
    """The kcenter_greedy.py loop of google/active-learning: min distances to the labelled
    set from one pairwise_distances call, then one pairwise_distances to each new centre."""
    from sklearn.metrics import pairwise_distances

    n = features.shape[0]
    already = list(labelled)
    if already:
        dist = pairwise_distances(features, features[already], metric="euclidean")
        min_distances = np.min(dist, axis=1).reshape(-1, 1)
    else:
        min_distances = None
    batch = []
    for _ in range(budget):
        if min_distances is None:
            ind = int(np.random.choice(np.arange(n)))
        else:
            ind = int(np.argmax(min_distances))
        assert ind not in already
        dist = pairwise_distances(features, features[[ind]], metric="euclidean")
        min_distances = dist if min_distances is None else np.minimum(min_distances, dist)
        batch.append(ind)
        already.append(ind)
    return np.asarray(batch, dtype=np.int64)


def torch_cdist_kcenter(features: Any, labelled: Any, budget: int) -> Any:
    """The torch.cdist loop: distances to the labelled set in one cdist, then one cdist per pick."""
    import torch

    if len(labelled):
        min_dist = torch.cdist(features, features[labelled]).min(dim=1).values
    else:
        min_dist = features.norm(dim=1)
    picks = torch.empty(budget, dtype=torch.int64, device=features.device)
    for t in range(budget):
        idx = torch.argmax(min_dist)
        picks[t] = idx
        new = torch.cdist(features, features[idx].unsqueeze(0)).squeeze(1)
        min_dist = torch.minimum(min_dist, new)
    return picks


def skactiveml_coreset(features: np.ndarray, labelled: np.ndarray, budget: int) -> np.ndarray:
    """scikit-activeml's CoreSet.query with the labelled rows marked by a label, the rest NaN."""
    from skactiveml.pool import CoreSet

    y = np.full(features.shape[0], np.nan)
    y[labelled] = 0
    return np.asarray(CoreSet(random_state=0).query(features, y, batch_size=budget), dtype=np.int64)


def fpsample_fps(features: np.ndarray, labelled: np.ndarray, budget: int, first: int | None = None) -> np.ndarray:
    """fpsample.fps_sampling, the labelled rows (or `first`) given as start indices; the
    returned starts are dropped so that only the new picks remain."""
    import fpsample

    starts = [int(i) for i in labelled] if len(labelled) else [int(first if first is not None else 0)]
    picks = fpsample.fps_sampling(features, len(starts) + budget - (0 if len(labelled) else 1), start_idx=starts)
    return np.asarray(picks[len(labelled):], dtype=np.int64)


def sklearn_kmeans_plusplus(emb: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """scikit-learn's kmeans_plusplus seeding (greedy, 2 + log k local trials per pick)."""
    from sklearn.cluster import kmeans_plusplus

    _, indices = kmeans_plusplus(emb, n_clusters=budget, random_state=seed)
    return np.asarray(indices, dtype=np.int64)


def badge_init_centers(X: np.ndarray, K: int, seed: int = 0) -> np.ndarray:
    """BADGE's init_centers procedure: start at the largest norm, keep the Euclidean distance
    of every row to its nearest centre, sample the next centre from an rv_discrete over the
    squared distances, redraw while the draw is already a centre."""
    from scipy import stats
    from sklearn.metrics import pairwise_distances

    np.random.seed(seed)
    ind = int(np.argmax([np.linalg.norm(s, 2) for s in X]))
    mu = [X[ind]]
    inds_all = [ind]
    cent_inds = [0.0] * len(X)
    cent = 0
    D2 = None
    while len(mu) < K:
        if len(mu) == 1:
            D2 = pairwise_distances(X, mu).ravel().astype(float)
        else:
            new_d = pairwise_distances(X, [mu[-1]]).ravel().astype(float)
            for i in range(len(X)):
                if D2[i] > new_d[i]:
                    cent_inds[i] = cent
                    D2[i] = new_d[i]
        D2 = D2.ravel().astype(float)
        d_dist = (D2**2) / sum(D2**2)
        custom = stats.rv_discrete(name="custm", values=(np.arange(len(D2)), d_dist))
        ind = int(custom.rvs(size=1)[0])
        while ind in inds_all:
            ind = int(custom.rvs(size=1)[0])
        mu.append(X[ind])
        inds_all.append(ind)
        cent += 1
    return np.asarray(inds_all, dtype=np.int64)


def _outputs_classifier() -> Any:
    """A scikit-activeml classifier over precomputed model outputs: each row of X is
    [features | logits]; predict_proba returns the softmax (and the features when asked
    for the embedding), which is how a trained network is wrapped for Badge."""
    from skactiveml.base import SkactivemlClassifier

    class PrecomputedOutputs(SkactivemlClassifier):
        def __init__(self, n_features: int = 0, classes: Any = None, missing_label: Any = np.nan,
                     cost_matrix: Any = None, random_state: Any = None) -> None:
            super().__init__(classes=classes, missing_label=missing_label, cost_matrix=cost_matrix,
                             random_state=random_state)
            self.n_features = n_features

        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "PrecomputedOutputs":
            return self

        def predict_proba(self, X: np.ndarray, return_embeddings: bool = False) -> Any:
            z = X[:, self.n_features:]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            return (p, X[:, : self.n_features]) if return_embeddings else p

    return PrecomputedOutputs


def skactiveml_badge(scores: np.ndarray, features: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """scikit-activeml's Badge.query on a pool with nothing labelled, the network's outputs
    wrapped as a classifier (fit_clf=False: the model is already trained)."""
    from skactiveml.pool import Badge

    K, d = scores.shape[1], features.shape[1]
    X = np.hstack([features, scores]).astype(np.float64)
    y = np.full(len(X), np.nan)
    clf = _outputs_classifier()(n_features=d, classes=np.arange(K))
    query = Badge(clf_embedding_flag_name="return_embeddings", random_state=seed)
    return np.asarray(query.query(X, y, clf, fit_clf=False, batch_size=budget), dtype=np.int64)
