"""Input checks, in one place, run once before dispatch. Every message names the argument
and, for values, the first bad row. Nothing here copies or modifies an input."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._arrays import FLOAT_NAMES, Prepared, cast_hint, is_float, prepare
from .errors import NonFiniteError

KINDS = ("entropy", "bvsb", "margin", "least_confidence", "bald")
# Kinds of one score row [K]; "bald" reads the T stochastic passes [K, T] of a row.
ROW_KINDS = KINDS[:4]
PASS_KINDS = ("bald",)
CHUNK_ROWS = 8192


def check_float(p: Prepared, name: str) -> None:
    if not is_float(p.dtype):
        raise TypeError(
            f"{name} has dtype {p.dtype}; uwe_kernels takes floating arrays ({FLOAT_NAMES}): "
            f"cast it first, e.g. {cast_hint(p, name)}"
        )


def check_ndim(p: Prepared, name: str, ndim: int, layout: str) -> None:
    if p.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {p.shape}")


def check_same_device(*named: tuple[str, Prepared]) -> None:
    devices = {p.device for _, p in named}
    if len(devices) > 1:
        where = ", ".join(f"{n} on {p.device}" for n, p in named)
        raise ValueError(f"inputs must be on one device, got {where} (no silent device transfers)")


def check_kind(kind: Any, kinds: tuple[str, ...] = KINDS) -> str:
    """The kind as a str; ValueError listing `kinds` (and saying where a known kind that is
    not among them applies) otherwise."""
    if kind in kinds:
        return str(kind)
    if kind in KINDS:
        raise ValueError(f"kind={kind!r} takes [n, K, T] scores of T stochastic passes and applies to "
                         f"uncertainty, uwe and uwe_factored only; choose from {', '.join(kinds)} here")
    raise ValueError(f"unknown uncertainty kind {kind!r}; choose from {', '.join(kinds)}")


def check_tau(tau: Any) -> float:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a real number >= 0, got {type(tau).__name__}")
    tau = float(tau)
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite number >= 0, got {tau}")
    return float(tau)


def check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _first_bad_row(bad_rows: Any) -> int | None:
    idx = np.flatnonzero(bad_rows)
    return int(idx[0]) if idx.size else None


def check_values(p: Prepared, name: str, *, nonnegative: bool = False) -> float:
    """Raise NonFiniteError for NaN/inf (naming the first bad row along axis 0) and, with
    `nonnegative`, ValueError for negative values. Reads the input in row chunks and returns
    its largest magnitude max |x| (0.0 when empty), which the same pass finds for free."""
    if p.shape and p.shape[0] == 0 or 0 in p.shape:
        return 0.0
    if not p.on_cpu:
        t = p.data
        flat = t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(-1, 1)
        torch = __import__("torch")
        bad = ~torch.isfinite(flat).all(dim=1)
        if bool(bad.any()):
            raise NonFiniteError(name, int(torch.nonzero(bad)[0, 0]))
        if nonnegative:
            neg = (flat < 0).any(dim=1)
            if bool(neg.any()):
                _raise_negative(name, int(torch.nonzero(neg)[0, 0]))
        return float(flat.abs().max())
    arr = p.data
    biggest = 0.0
    for start in range(0, arr.shape[0], CHUNK_ROWS):
        chunk = np.asarray(arr[start : start + CHUNK_ROWS])
        if chunk.dtype.itemsize < 4:
            chunk = chunk.astype(np.float32)
        flat = chunk.reshape(chunk.shape[0], -1)
        high, low = float(flat.max()), float(flat.min())  # NaN propagates: finite extremes mean a clean chunk
        if not (np.isfinite(high) and np.isfinite(low)):
            row = _first_bad_row(~np.isfinite(flat).all(axis=1))
            raise NonFiniteError(name, start + (row or 0))
        if nonnegative and low < 0:
            row = _first_bad_row((flat < 0).any(axis=1))
            _raise_negative(name, start + (row or 0))
        biggest = max(biggest, high, -low)
    return biggest


def _raise_negative(name: str, row: int) -> None:
    raise ValueError(
        f"{name} has a negative value in row {row}; with from_logits=False scores must be "
        "probabilities (or per-class sigmoid scores) >= 0 — pass from_logits=True for logits"
    )


def scores_2d(scores: Any, name: str = "scores") -> Prepared:
    p = prepare(scores, name)
    check_float(p, name)
    if p.ndim == 3:
        raise ValueError(f"{name} must be 2-D [n, K] for this kind, got shape {p.shape}; 3-D [n, K, T] "
                         "scores of T stochastic passes take kind='bald'")
    check_ndim(p, name, 2, "[n, K]")
    if p.shape[1] < 2:
        raise ValueError(f"{name} must have K >= 2 classes (got shape {p.shape})")
    return p


def scores_of_kind(scores: Any, kind: str, name: str = "scores") -> Prepared:
    """[n, K] scores for the row kinds, [n, K, T] (K >= 2, T >= 1 passes) for kind="bald"."""
    if kind not in PASS_KINDS:
        return scores_2d(scores, name)
    p = prepare(scores, name)
    check_float(p, name)
    if p.ndim != 3:
        raise ValueError(f"kind={kind!r} takes 3-D {name} [n, K, T] (T stochastic forward passes), "
                         f"got shape {p.shape}")
    if p.shape[1] < 2 or p.shape[2] < 1:
        raise ValueError(f"{name} [n, K, T] must have K >= 2 classes and T >= 1 passes (got shape {p.shape})")
    return p


def features_2d(features: Any, n: int, name: str = "features") -> Prepared:
    p = prepare(features, name)
    check_float(p, name)
    check_ndim(p, name, 2, "[n, d]")
    if p.shape[0] != n:
        raise ValueError(f"{name} has {p.shape[0]} rows but scores has {n}; they must match")
    return p


def labelled_mask(labelled_idx: Any, n: int, name: str = "labelled_idx") -> np.ndarray:
    """A host bool mask [n] from indices (duplicates allowed) or a bool mask of length n.
    Out-of-range indices raise (negative indices do not wrap around)."""
    mask = np.zeros(n, dtype=bool)
    if labelled_idx is None:
        return mask
    if isinstance(labelled_idx, (set, frozenset)):
        labelled_idx = sorted(labelled_idx)
    p = prepare(labelled_idx, name)
    arr = p.data if p.on_cpu else p.data.cpu().numpy()  # indices are small: read on the host
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"{name} as a boolean mask must have shape ({n},), got {arr.shape}")
        mask[:] = arr
        return mask
    if arr.size == 0:
        return mask
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices or be a boolean mask, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    bad = np.flatnonzero((arr < 0) | (arr >= n))
    if bad.size:
        raise ValueError(
            f"{name} holds {int(arr[bad[0]])} at position {int(bad[0])}, out of range for a pool of "
            f"{n} rows (valid: 0..{n - 1}; negative indices do not wrap around)"
        )
    mask[arr] = True
    return mask


def check_budget(budget: Any, available: int, n: int, labelled: int) -> int:
    budget = check_int(budget, "budget")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if budget > available:
        raise ValueError(
            f"budget {budget} is larger than the unlabelled pool: {n} rows, {labelled} labelled, "
            f"{available} left to pick"
        )
    return int(budget)


def check_index(value: Any, name: str, n: int) -> int:
    value = check_int(value, name)
    if not 0 <= value < n:
        raise ValueError(f"{name}={value} is out of range for a pool of {n} rows (valid: 0..{n - 1})")
    return int(value)
