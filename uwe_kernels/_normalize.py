"""Min-max normalisation of the uncertainty (``normalize="minmax"``, as the authors' code does).

u' = (u - lo) / span with lo, span = min u, max u - min u over the pool rows (all rows when no
pool is given), clipped to [0, 1] so that rows outside the pool stay in range; span = 0 (every
pool row equally uncertain) gives u' = 1 for every row. The pair (lo, span) is found here in one
pass over u; the kernels then apply it to each row's weight inside their single feature pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays
from .validation import labelled_mask

NORMALIZATIONS = ("minmax",)

Norm = tuple[float, float]


def check(normalize: Any, pool: Any) -> str | None:
    """The validated `normalize` (None or "minmax"); a pool without it is an error."""
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalize {normalize!r}; choose None or {', '.join(map(repr, NORMALIZATIONS))}")
    if normalize is None and pool is not None:
        raise ValueError("pool applies only with normalize='minmax'")
    return None if normalize is None else str(normalize)


def pool_mask(pool: Any, n: int, rows: str = "rows") -> np.ndarray | None:
    """The pool as a host bool mask [n] (None for every row); an empty pool is an error."""
    if pool is None:
        return None
    mask = labelled_mask(pool, n, "pool")
    if n and not mask.any():
        raise ValueError(f"pool selects none of the {n} {rows}; min-max needs at least one")
    return mask


def minmax(u: Any, mask: np.ndarray | None) -> Norm:
    """(lo, span) of u [n] (numpy or torch) over the mask's rows; (0, 0) for no rows."""
    if _arrays.is_torch(u):
        torch = __import__("torch")
        sel = u if mask is None else u[torch.as_tensor(mask, device=u.device)]
        if sel.numel() == 0:
            return 0.0, 0.0
        lo, hi = float(sel.min()), float(sel.max())
    else:
        sel = np.asarray(u) if mask is None else np.asarray(u)[mask]
        if sel.size == 0:
            return 0.0, 0.0
        lo, hi = float(sel.min()), float(sel.max())
    return lo, hi - lo


def apply(u: Any, norm: Norm) -> Any:
    """u' for u [n] (numpy or torch), in u's dtype and library."""
    lo, span = norm
    if span == 0:
        return u * 0 + 1
    return ((u - lo) / span).clip(0, 1)
