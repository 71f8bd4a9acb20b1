"""Selection ops of the cpp backend: k-center greedy, k-means++ and nearest-centre distances
on numpy arrays (any strides, float16/bfloat16/float32/float64, np.memmap streamed in place),
dense or factored, computed by the compiled module with the GIL released.

algorithm='brute' reads every row per pick; 'pruned' hands dense pools and factored UWE / BADGE
embeddings to the exact pruned kernels in `pruned.py` (same picks) with group bounds,
'sketch' with sketch bounds, 'pruned+sketch' with both (dense and factored UWE); 'auto' lets
`pruned.choose_algorithm` look at the pool."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _abi, _lazy
from .._sketch import engine_options
from .._spec import emb_spec
from . import pruned

ALGORITHMS = ("brute", "pruned", "sketch", "pruned+sketch")


def _ext() -> Any:
    return _lazy.load("cpu")


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
                if np.dtype(dt).name not in _abi.DTYPE_CODES]
    return [f"algorithm={algorithm!r} is not implemented by cpp"]


def choose_algorithm(emb: Any, centres: int | None = None, *, kcenter: bool = False, labelled: int = 0,
                     budget: int = 0) -> str:
    return pruned.choose_algorithm(emb, centres, kcenter=kcenter, labelled=labelled, budget=budget)


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
    if algorithm != "brute":
        picks, dists, _ = pruned.kcenter_greedy_stats(emb, labelled_mask, budget, first, progress=progress,
                                                      accum_dtype=accum_dtype, **engine_options(emb, algorithm, two_tier=True))
        return picks, dists
    return tuple(_ext().kcenter_greedy(
        emb_spec(emb), labelled_mask, int(budget), _abi.first_code(first),
        _double(accum_dtype), progress,
    ))


def kcenter_greedy_history(emb: np.ndarray, labelled_mask: np.ndarray, budget: int,
                           first: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k-center greedy (float64 accumulation) on a dense pool that also keeps D:
    picks [budget] and, per pick, every row's squared distance to its nearest centre just
    before it ([budget, n] float64; 0 for taken rows, inf before a first pick made with nothing
    labelled). Integrations report these as utilities without a second pass over the pool."""
    picks, _, history = _ext().kcenter_greedy_history(emb_spec(emb), labelled_mask, int(budget),
                                                      _abi.first_code(first), True)
    return picks, history


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
    if algorithm != "brute":
        picks, _ = pruned.kmeans_pp_stats(emb, labelled_mask, budget, seed, first, progress=progress,
                                          accum_dtype=accum_dtype, **engine_options(emb, algorithm, two_tier=True))
        return np.asarray(picks)
    return np.asarray(_ext().kmeans_pp(
        emb_spec(emb), labelled_mask, int(budget), int(seed), _abi.first_code(first), _double(accum_dtype), progress,
    ))


def min_distances(
    emb: Any,  # [n, d] or FactoredArrays
    centers: Any,  # [m, d] or FactoredArrays
    *,
    return_argmin: bool,
    out_dtype: Any,
    accum_dtype: Any,
) -> tuple[np.ndarray, np.ndarray | None]:
    d, argmin = _ext().min_distances(emb_spec(emb), emb_spec(centers), _double(accum_dtype))
    return d.astype(out_dtype, copy=False), (argmin if return_argmin else None)
