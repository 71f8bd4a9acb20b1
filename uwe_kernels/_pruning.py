"""Backend-neutral parts of exact pruned selection: whether a pool is worth pruning.

Pure numpy, so every backend with a pruned kernel (cpp, numba) asks the same question and
`algorithm="auto"` picks the same algorithm whichever of them runs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .factored import FactoredArrays, FactoredEmbedding

# A few query rows against many reference rows: the reference set must be large enough that a
# row of a pool with a thousand clusters still finds a neighbour of its own cluster in it
# (a small self-sample of a many-cluster pool looks like noise), while the query set keeps the
# cost at about QUERY_ROWS * REFERENCE_ROWS * d multiply-adds (tens of ms at d = 2048).
QUERY_ROWS = 64
REFERENCE_ROWS = 4096
MIN_ROWS_FOR_PRUNING = 4096
# Mean nearest-reference distance over mean query-reference distance. Measured with the sizes
# above: Gaussian mixtures of 10 to 1,000 clusters of intrinsic dimension 8 to 64 in d = 128 to
# 2,048 give 0.10-0.25; isotropic Gaussian noise gives 0.48 (d = 16) to 0.90 (d = 512).
NEAREST_TO_MEAN_RATIO = 0.4
DENSE_ONLY = "algorithm='pruned' runs on dense embeddings only (materialize the factored one)"


def _sample_rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced query and reference row indices (they may share rows)."""
    reference = np.unique(np.linspace(0, n - 1, min(n, REFERENCE_ROWS)).astype(np.int64))
    queries = np.unique(np.linspace(0, n - 1, QUERY_ROWS + 2)[1:-1].astype(np.int64))
    return queries, reference


def _sq_distances(emb: Any, queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Squared distances [queries, reference], computed and returned in the pool's precision
    (at least float32: the answer feeds a coarse ratio test, and float32 Grams cost half).
    Dense rows are centred on the reference mean first, which leaves distances unchanged and
    keeps the norm trick's cancellation small. Factored rows are never materialised: UWE
    |u_i f_i - u_j f_j|^2 and BADGE |a_i|^2|f_i|^2 + |a_j|^2|f_j|^2 - 2 (a_i . a_j)(f_i . f_j)
    come from the factors."""
    if isinstance(emb, FactoredEmbedding):
        emb = emb.backend_arrays()
    if isinstance(emb, FactoredArrays):
        work = np.result_type(emb.features.dtype, emb.weights.dtype, np.float32)
        fq, fr = (np.asarray(emb.features[i], dtype=work) for i in (queries, reference))
        wq, wr = (np.asarray(emb.weights[i], dtype=work) for i in (queries, reference))
        gram = fq @ fr.T
        gram *= np.outer(wq, wr) if wq.ndim == 1 else wq @ wr.T
        sq_q = np.einsum("ij,ij->i", fq, fq) * np.square(wq).reshape(len(wq), -1).sum(1)
        sq_r = np.einsum("ij,ij->i", fr, fr) * np.square(wr).reshape(len(wr), -1).sum(1)
    else:
        work = np.result_type(emb.dtype, np.float32)
        xq, xr = (np.asarray(emb[i], dtype=work) for i in (queries, reference))
        centre = xr.mean(axis=0)
        xq, xr = xq - centre, xr - centre
        gram = xq @ xr.T
        sq_q, sq_r = np.einsum("ij,ij->i", xq, xq), np.einsum("ij,ij->i", xr, xr)
    gram *= -2.0
    gram += sq_q[:, None]
    gram += sq_r[None, :]
    return np.asarray(np.maximum(gram, 0.0, out=gram))


def looks_clustered(emb: Any) -> bool:
    """True when a sample of the pool (dense [n, d], or factored UWE / BADGE) looks clustered:
    rows' nearest sampled neighbours are much closer than the average sampled row, so
    triangle-inequality skipping is likely to pay. Small pools answer False: the bookkeeping
    costs more than it saves there.

    The Grams run on one BLAS thread: a threaded BLAS leaves its workers spinning for a while
    after a call, and on a machine with few cores they would slow the selection that follows
    (measured: +40% on a 2-core machine)."""
    n = emb.shape[0]
    if n < MIN_ROWS_FOR_PRUNING:
        return False
    queries, reference = _sample_rows(n)
    with threadpool_limits(limits=1, user_api="blas"):
        d2 = _sq_distances(emb, queries, reference)
    dist = np.sqrt(d2, out=d2)
    rows, cols = np.nonzero(queries[:, None] == reference[None, :])
    dist[rows, cols] = 0.0  # a row's distance to itself: left out of the mean ...
    mean = float(dist.sum(dtype=np.float64)) / (dist.size - len(rows))
    dist[rows, cols] = np.inf  # ... and never its own nearest neighbour
    nearest = float(dist.min(axis=1).mean(dtype=np.float64))
    return bool(mean > 0 and nearest < NEAREST_TO_MEAN_RATIO * mean)
