"""Exact pruned selection of the cpp backend: k-center greedy and k-means++ that return the
picks of the plain per-pick pass while reading only the rows whose nearest-centre distance can
change (triangle-inequality groups, early-exit distances; see csrc/cpu/pruned_engine.h).

Dense float16/bfloat16/float32/float64 pools of any strides (memory maps included) are read in
place, as by brute force. Factored UWE ([n] weights) and BADGE ([n, K] weights) embeddings run
on the factors. Every row is evaluated by the brute-force kernels' own distance function
(csrc/cpu/pruned_rows.h): same picks, same distances.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _abi, _lazy
from .._sketch import build_sketches, choose_bounds
from .._spec import emb_spec
from ..factored import FactoredArrays, FactoredEmbedding

MODES = {"plain": 0, "pruned": 1, "adaptive": 2}


def _ext() -> Any:
    return _lazy.load("cpu")


def _factored(emb: Any) -> FactoredArrays | None:
    if isinstance(emb, FactoredEmbedding):
        return emb.backend_arrays()
    return emb if isinstance(emb, FactoredArrays) else None


def pruned_supported(emb: Any) -> list[str]:
    """Reasons the pruned kernels cannot run on `emb` (empty when they can)."""
    fa = _factored(emb)
    if fa is not None:
        reasons = []
        for name, a in (("weights", fa.weights), ("features", fa.features)):
            if not isinstance(a, np.ndarray):
                reasons.append(f"algorithm='pruned' takes numpy factors on the cpp backend, got {name} of type "
                               f"{type(a).__name__}")
            elif a.dtype.name not in _abi.DTYPE_CODES:
                reasons.append(f"algorithm='pruned' does not run {name} of dtype {a.dtype}")
        return reasons
    reasons = []
    if not isinstance(emb, np.ndarray):
        reasons.append(f"algorithm='pruned' takes numpy arrays on the cpp backend, got {type(emb).__name__}")
    elif emb.ndim != 2:
        reasons.append(f"algorithm='pruned' needs a 2-D [n, d] embedding, got ndim={emb.ndim}")
    elif emb.dtype.name not in _abi.DTYPE_CODES:
        reasons.append(f"algorithm='pruned' does not run dtype {emb.dtype}")
    return reasons


def sketch_supported(emb: Any) -> bool:
    """Sketch bounds cover dense pools and factored UWE (weights [n]), not BADGE."""
    fa = _factored(emb)
    return fa is None or fa.weights.ndim == 1


def choose_algorithm(emb: Any, centres: int | None = None, *, kcenter: bool = False, labelled: int = 0,
                     budget: int = 0) -> str:
    """Group bounds when a small sample looks clustered (uwe_kernels._pruning), a sketch when
    its measured traffic pays or k-center greedy's dormant rows do ('sketch': plain mode, where
    cpp's dormant rows run), both, or 'brute' (uwe_kernels._sketch.choose_bounds). The kernel
    itself still falls back to the plain pass when group bounds stop paying. centres: the
    selection's mean centre count (labelled rows plus half the budget)."""
    if pruned_supported(emb):
        return "brute"
    return choose_bounds(emb, centres, sketch_supported(emb), kcenter=kcenter,
                         labelled=labelled, budget=budget)


def _sketch_args(emb: Any, sketch_width: int, first_tier: int, directions: Any,
                 double: bool) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None, float]:
    """The compiled engine's sketches (z, r, slack, scale, tau), built here in one pass: (the
    first tier, the wider second tier or None, build seconds); (None, None, 0) for width 0.
    first_tier: the narrower first tier's width (0 or >= sketch_width: one tier)."""
    if not sketch_width:
        return None, None, 0.0
    if not sketch_supported(emb):
        raise ValueError("sketch bounds cover dense pools and factored UWE (weights [n]), not BADGE")
    widths = (int(first_tier), int(sketch_width)) if 0 < first_tier < sketch_width else (int(sketch_width),)
    built = build_sketches(emb, widths, acc_dtype=np.float64 if double else np.float32, directions=directions)
    tiers = [(sk.z, sk.r, sk.slack, sk.scale, sk.tau) for sk in built]
    return tiers[0], (tiers[1] if len(tiers) > 1 else None), built[0].build_seconds


def _check(emb: Any) -> None:
    reasons = pruned_supported(emb)
    if reasons:
        raise ValueError("; ".join(reasons))


def _spec(emb: Any) -> tuple[Any, ...]:
    """The compiled module's view of a dense pool or a factored embedding, read in place."""
    fa = _factored(emb)
    if fa is None:
        return emb_spec(emb)
    w, f = fa.weights, fa.features
    if w.ndim not in (1, 2) or f.ndim != 2 or w.shape[0] != f.shape[0]:
        raise ValueError(f"factored embedding needs weights [n] or [n, K] and features [n, d], got {w.shape} "
                         f"and {f.shape}")
    return emb_spec(fa)


def _double(accum_dtype: Any, *arrays: Any) -> bool:
    return (np.dtype(accum_dtype if accum_dtype is not None else np.float32) == np.float64
            or any(a.dtype == np.float64 for a in arrays))


def _arrays(emb: Any) -> tuple[Any, ...]:
    fa = _factored(emb)
    return (emb,) if fa is None else (fa.weights, fa.features)


def kcenter_greedy_stats(
    emb: Any,  # [n, d], FactoredArrays or FactoredEmbedding
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    first: int | None,
    *,
    mode: str = "adaptive",
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
    sketch_width: int = 0,
    first_tier: int = 0,
    directions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """k-center greedy picks, distances at pick time and work statistics (rows_touched,
    values_read, centre_distances, switched_at, labelled_pairs (of rows_touched, the factored
    one-off labelled-set pass), ...). `mode`: 'adaptive' (pruned, plain pass
    once pruning stops paying), 'pruned' (never falls back) or 'plain' (every row every pick).
    sketch_width > 0: sketch bounds of that width too (directions: (mu, P) to use instead of
    the row sample's), built here, its time in the stats as sketch_build_seconds; with
    0 < first_tier < sketch_width, a first tier of that width is read for every row and the
    wide one only where it does not settle the row."""
    _check(emb)
    mask = np.asarray(labelled_mask, dtype=bool)
    double = _double(accum_dtype, *_arrays(emb))
    sketch, wide, build_s = _sketch_args(emb, sketch_width, first_tier, directions, double)
    picks, dists, stats = _ext().kcenter_greedy_pruned(
        _spec(emb), mask, int(budget), _abi.first_code(first), double, MODES[mode], progress, sketch, wide)
    return picks, dists, {**stats, "sketch_width": int(sketch_width), "first_tier": int(first_tier) if wide else 0,
            "sketch_build_seconds": build_s}


def kmeans_pp_stats(
    emb: Any,  # [n, d], FactoredArrays or FactoredEmbedding
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    seed: int,
    first: Any,
    *,
    mode: str = "adaptive",
    progress: Callable[[int], None] | None = None,
    accum_dtype: Any = None,
    sketch_width: int = 0,
    first_tier: int = 0,
    directions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """k-means++ picks and work statistics; `mode`, `sketch_width`, `first_tier` and
    `directions` as for kcenter_greedy_stats."""
    _check(emb)
    mask = np.asarray(labelled_mask, dtype=bool)
    double = _double(accum_dtype, *_arrays(emb))
    sketch, wide, build_s = _sketch_args(emb, sketch_width, first_tier, directions, double)
    picks, stats = _ext().kmeans_pp_pruned(
        _spec(emb), mask, int(budget), int(seed), _abi.first_code(first), double, MODES[mode], progress, sketch, wide)
    return picks, {**stats, "sketch_width": int(sketch_width), "first_tier": int(first_tier) if wide else 0,
            "sketch_build_seconds": build_s}


def kcenter_greedy_pruned(
    emb: Any,  # [n, d], FactoredArrays or FactoredEmbedding
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
    emb: Any,  # [n, d], FactoredArrays or FactoredEmbedding
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
