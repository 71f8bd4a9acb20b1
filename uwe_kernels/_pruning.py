"""Backend-neutral parts of exact pruned selection: whether a pool is worth pruning.

Pure numpy, so every backend with a pruned kernel (cpp, numba) asks the same question and
`algorithm="auto"` picks the same algorithm whichever of them runs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .factored import FactoredArrays, FactoredEmbedding

SAMPLE_ROWS = 256
MIN_ROWS_FOR_PRUNING = 4096
NEAREST_TO_MEAN_RATIO = 0.6
DENSE_ONLY = "algorithm='pruned' runs on dense embeddings only (materialize the factored one)"


def _sample_sq_distances(emb: Any) -> np.ndarray:
    """Pairwise squared distances of about SAMPLE_ROWS evenly spaced rows, float64. Factored
    rows are never materialised: UWE |u_i f_i - u_j f_j|^2 and BADGE
    |a_i|^2|f_i|^2 + |a_j|^2|f_j|^2 - 2 (a_i . a_j)(f_i . f_j) come from the factors' Grams.

    The Grams run on one BLAS thread: a threaded BLAS leaves its workers spinning for a while
    after a call, and on a machine with few cores they would slow the selection that follows
    (measured: +40% on a 2-core machine)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _sample_sq_distances_one_thread(emb)


def _sample_sq_distances_one_thread(emb: Any) -> np.ndarray:
    if isinstance(emb, FactoredEmbedding):
        emb = emb.backend_arrays()
    step = max(1, emb.shape[0] // SAMPLE_ROWS)
    if isinstance(emb, FactoredArrays):
        f = np.asarray(emb.features[::step][:SAMPLE_ROWS], dtype=np.float64)
        w = np.asarray(emb.weights[::step][:SAMPLE_ROWS], dtype=np.float64)
        gram = f @ f.T
        gram *= w[:, None] * w[None, :] if w.ndim == 1 else w @ w.T
    else:
        x = np.asarray(emb[::step][:SAMPLE_ROWS], dtype=np.float64)
        gram = x @ x.T
    sq = np.diag(gram).copy()
    return np.asarray(np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))


def looks_clustered(emb: Any) -> bool:
    """True when a small sample of the pool (dense [n, d], or factored UWE / BADGE) looks
    clustered (nearest neighbours much closer than the average pair), so triangle-inequality
    skipping is likely to pay. Small pools answer False: the bookkeeping costs more than it
    saves there."""
    if emb.shape[0] < MIN_ROWS_FOR_PRUNING:
        return False
    d2 = _sample_sq_distances(emb)
    np.fill_diagonal(d2, np.inf)
    nearest = np.sqrt(d2.min(1)).mean()
    np.fill_diagonal(d2, 0.0)
    mean = np.sqrt(d2).sum() / max(1, len(d2) * (len(d2) - 1))
    return bool(mean > 0 and nearest < NEAREST_TO_MEAN_RATIO * mean)
