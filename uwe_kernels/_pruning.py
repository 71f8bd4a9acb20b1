"""Backend-neutral parts of exact pruned selection: whether a pool is worth pruning.

Pure numpy, so every backend with a pruned kernel (cpp, numba) asks the same question and
`algorithm="auto"` picks the same algorithm whichever of them runs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

SAMPLE_ROWS = 256
MIN_ROWS_FOR_PRUNING = 4096
NEAREST_TO_MEAN_RATIO = 0.6
DENSE_ONLY = "algorithm='pruned' runs on dense embeddings only (materialize the factored one)"


def looks_clustered(emb: Any) -> bool:
    """True when a small sample of a dense [n, d] pool looks clustered (nearest neighbours much
    closer than the average pair), so triangle-inequality skipping is likely to pay. Small
    pools answer False: the bookkeeping costs more than it saves there."""
    if emb.shape[0] < MIN_ROWS_FOR_PRUNING:
        return False
    step = max(1, emb.shape[0] // SAMPLE_ROWS)
    x = np.asarray(emb[::step][:SAMPLE_ROWS], dtype=np.float64)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(d2, np.inf)
    nearest = np.sqrt(d2.min(1)).mean()
    np.fill_diagonal(d2, 0.0)
    mean = np.sqrt(d2).sum() / max(1, len(x) * (len(x) - 1))
    return bool(mean > 0 and nearest < NEAREST_TO_MEAN_RATIO * mean)
