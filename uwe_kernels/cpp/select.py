"""Selection ops of the cpp backend: k-center greedy, k-means++ and nearest-centre distances
on numpy arrays (any strides, float16/bfloat16/float32/float64, np.memmap streamed in place),
dense or factored, computed by the compiled module with the GIL released.

algorithm='brute' reads every row per pick; 'pruned' hands dense pools and factored UWE / BADGE
embeddings to the exact pruned kernels in `pruned.py` (same picks); 'auto' lets
`pruned.choose_algorithm` look at the pool."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _lazy
from .._arrays import BFLOAT16
from ..factored import FactoredArrays
from . import pruned

ALGORITHMS = ("brute", "pruned")
DTYPE_CODES = {np.dtype(np.float16): 0, BFLOAT16: 1, np.dtype(np.float32): 2, np.dtype(np.float64): 3}
DENSE, UWE, BADGE = 0, 1, 2
FIRST_MAX_NORM, FIRST_RANDOM = -1, -2


def _ext() -> Any:
    return _lazy.load("cpu")


def _emb_spec(emb: Any) -> tuple[Any, ...]:
    """(kind, features, dtype code, weights or None, dtype code): the compiled module's view."""
    if isinstance(emb, FactoredArrays):
        w, f = emb.weights, emb.features
        kind = UWE if w.ndim == 1 else BADGE
        return kind, f, DTYPE_CODES[f.dtype], w, DTYPE_CODES[w.dtype]
    return DENSE, emb, DTYPE_CODES[emb.dtype], None, -1


def _double(accum_dtype: Any) -> bool:
    return bool(np.dtype(accum_dtype) == np.float64)


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"the cpp backend runs algorithms {ALGORITHMS}, got {algorithm!r}")


def not_supported_reasons(op: str, call: Any) -> list[str]:
    algorithm = call.options.get("algorithm", "auto")
    if op == "min_distances" or algorithm in ("auto", "brute"):
        return []
    if algorithm == "pruned":
        # Dense pools and factored UWE / BADGE embeddings alike; only element types it cannot read.
        return [f"algorithm='pruned' does not run dtype {dt}" for dt in call.dtypes
                if np.dtype(dt) not in pruned.DTYPE_CODES]
    return [f"algorithm={algorithm!r} is not implemented by cpp"]


def choose_algorithm(emb: Any, centres: int | None = None) -> str:
    return pruned.choose_algorithm(emb)


def kcenter_greedy(
    emb: Any,  # [n, d] or FactoredArrays
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    first: int | None,
    *,
    algorithm: str,
    progress: Callable[[int], None] | None,
    accum_dtype: Any,
) -> tuple[np.ndarray, np.ndarray]:
    _check_algorithm(algorithm)
    if algorithm == "pruned":
        return pruned.kcenter_greedy_pruned(emb, labelled_mask, budget, first, progress=progress,
                                            accum_dtype=accum_dtype)
    return tuple(_ext().kcenter_greedy(
        _emb_spec(emb), labelled_mask, int(budget), -1 if first is None else int(first),
        _double(accum_dtype), progress,
    ))


def kmeans_pp(
    emb: Any,  # [n, d] or FactoredArrays
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    seed: int,
    first: Any,
    *,
    algorithm: str,
    progress: Callable[[int], None] | None,
    accum_dtype: Any,
) -> np.ndarray:
    _check_algorithm(algorithm)
    if algorithm == "pruned":
        return pruned.kmeans_pp_pruned(emb, labelled_mask, budget, seed, first, progress=progress,
                                       accum_dtype=accum_dtype)
    code = {"max_norm": FIRST_MAX_NORM, "random": FIRST_RANDOM}.get(first, None) if isinstance(first, str) else int(first)
    return np.asarray(_ext().kmeans_pp(
        _emb_spec(emb), labelled_mask, int(budget), int(seed), code, _double(accum_dtype), progress,
    ))


def min_distances(
    emb: Any,  # [n, d] or FactoredArrays
    centers: Any,  # [m, d] or FactoredArrays
    *,
    return_argmin: bool,
    out_dtype: Any,
    accum_dtype: Any,
) -> tuple[np.ndarray, np.ndarray | None]:
    d, argmin = _ext().min_distances(_emb_spec(emb), _emb_spec(centers), _double(accum_dtype))
    return d.astype(out_dtype, copy=False), (argmin if return_argmin else None)
