"""Exact pruned selection of the cpp backend: k-center greedy and k-means++ that return the
picks of the plain per-pick pass while reading only the rows whose nearest-centre distance can
change (triangle-inequality groups, early-exit distances; see csrc/cpu/pruned_engine.h).

Dense float16/bfloat16/float32/float64 pools of any row stride are read in place (a pool whose
elements are not contiguous within a row is copied once, in its own dtype). Factored
embeddings are turned down by `pruned_supported`.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _lazy
from .._arrays import BFLOAT16
from .._pruning import DENSE_ONLY, looks_clustered
from ..factored import FactoredArrays, FactoredEmbedding

DTYPE_CODES = {np.dtype(np.float16): 0, BFLOAT16: 1, np.dtype(np.float32): 2, np.dtype(np.float64): 3}
MODES = {"plain": 0, "pruned": 1, "adaptive": 2}
FIRST_MAX_NORM, FIRST_RANDOM = -1, -2


def _ext() -> Any:
    return _lazy.load("cpu")


def pruned_supported(emb: Any) -> list[str]:
    """Reasons the pruned kernels cannot run on `emb` (empty when they can)."""
    if isinstance(emb, (FactoredArrays, FactoredEmbedding)):
        return [DENSE_ONLY]
    reasons = []
    if not isinstance(emb, np.ndarray):
        reasons.append(f"algorithm='pruned' takes numpy arrays on the cpp backend, got {type(emb).__name__}")
    elif emb.ndim != 2:
        reasons.append(f"algorithm='pruned' needs a 2-D [n, d] embedding, got ndim={emb.ndim}")
    elif emb.dtype not in DTYPE_CODES:
        reasons.append(f"algorithm='pruned' does not run dtype {emb.dtype}")
    return reasons


def choose_algorithm(emb: Any) -> str:
    """'pruned' when a small sample looks clustered (uwe_kernels._pruning), else 'brute'. The
    kernel itself still falls back to the plain pass when the fraction of rows it touches
    stays high."""
    if pruned_supported(emb):
        return "brute"
    return "pruned" if looks_clustered(emb) else "brute"


def _pool(emb: Any) -> tuple[np.ndarray, int]:
    reasons = pruned_supported(emb)
    if reasons:
        raise ValueError("; ".join(reasons))
    code = DTYPE_CODES[emb.dtype]
    if emb.shape[1] > 1 and emb.strides[1] != emb.itemsize:
        emb = np.ascontiguousarray(emb)
    if code in (0, 1):
        emb = emb.view(np.uint16)
    return emb, code


def _double(accum_dtype: Any, emb: np.ndarray) -> bool:
    return np.dtype(accum_dtype if accum_dtype is not None else np.float32) == np.float64 or emb.dtype == np.float64


def kcenter_greedy_stats(
    emb: np.ndarray,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    first: int | None,
    *,
    mode: str = "adaptive",
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """k-center greedy picks, distances at pick time and work statistics (rows_touched,
    values_read, centre_distances, switched_at, ...). `mode`: 'adaptive' (pruned, plain pass
    once pruning stops paying), 'pruned' (never falls back) or 'plain' (every row every pick)."""
    pool, code = _pool(emb)
    picks, dists, stats = _ext().kcenter_greedy_pruned(
        pool, code, np.asarray(labelled_mask, dtype=bool), int(budget), -1 if first is None else int(first),
        _double(accum_dtype, emb), MODES[mode], progress)
    return picks, dists, dict(stats)


def kmeans_pp_stats(
    emb: np.ndarray,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    seed: int,
    first: Any,
    *,
    mode: str = "adaptive",
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """k-means++ picks and work statistics; `mode` as for kcenter_greedy_stats."""
    pool, code = _pool(emb)
    if isinstance(first, str):
        first_code = {"max_norm": FIRST_MAX_NORM, "random": FIRST_RANDOM}[first]
    else:
        first_code = int(first)
    picks, stats = _ext().kmeans_pp_pruned(
        pool, code, np.asarray(labelled_mask, dtype=bool), int(budget), int(seed), first_code,
        _double(accum_dtype, emb), MODES[mode], progress)
    return picks, dict(stats)


def kcenter_greedy_pruned(
    emb: np.ndarray,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    first: int | None,
    *,
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The kcenter_greedy op (docs/internals.md) with algorithm='pruned'."""
    picks, dists, _ = kcenter_greedy_stats(emb, labelled_mask, budget, first, progress=progress,
                                           accum_dtype=accum_dtype)
    return picks, dists


def kmeans_pp_pruned(
    emb: np.ndarray,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    seed: int,
    first: Any,
    *,
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
) -> np.ndarray:
    """The kmeans_pp op (docs/internals.md) with algorithm='pruned'."""
    picks, _ = kmeans_pp_stats(emb, labelled_mask, budget, seed, first, progress=progress,
                               accum_dtype=accum_dtype)
    return picks
