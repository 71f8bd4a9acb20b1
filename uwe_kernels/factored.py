"""Embeddings kept as factors: row i = weights[i] (outer) features[i], never materialised.

UWE: weights [n] (u_i ** tau), an n x d embedding. BADGE: weights [n, K] (p_i - onehot_i),
an n x K*d embedding held in n*(K+d) numbers instead of n*K*d.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _arrays
from ._arrays import Prepared, prepare
from .validation import CHUNK_ROWS, check_float, check_ndim, check_same_device


@dataclass(frozen=True)
class FactoredArrays:
    """What a backend receives for a FactoredEmbedding: backend arrays, no user objects."""

    weights: Any  # [n] or [n, K]
    features: Any  # [n, d]

    @property
    def shape(self) -> tuple[int, int]:
        n, d = self.features.shape
        k = 1 if self.weights.ndim == 1 else self.weights.shape[1]
        return n, k * d


def of_embedding(weights: Any, features: Any, rows_dtype: np.dtype) -> "FactoredEmbedding":
    """A FactoredEmbedding whose rows have the dtype the explicit embedding would have (the
    weights are kept in accumulation precision, wider than that for half-precision inputs)."""
    fe = FactoredEmbedding(weights, features)
    fe._rows_dtype = np.dtype(rows_dtype)
    return fe


class FactoredEmbedding:
    """Rows `weights[i] (outer) features[i]`, stored as the two factors.

    Args:
        weights: [n] (uncertainty weights) or [n, K] (BADGE's p - onehot).
        features: [n, d].

    Squared distance between rows i and j:
    |a_i|^2 |f_i|^2 + |a_j|^2 |f_j|^2 - 2 (a_i . a_j)(f_i . f_j).
    """

    def __init__(self, weights: Any, features: Any) -> None:
        pw, pf = prepare(weights, "weights"), prepare(features, "features")
        for p, name in ((pw, "weights"), (pf, "features")):
            check_float(p, name)
        check_ndim(pf, "features", 2, "[n, d]")
        if pw.ndim not in (1, 2):
            raise ValueError(f"weights must be [n] or [n, K], got shape {pw.shape}")
        if pw.shape[0] != pf.shape[0]:
            raise ValueError(f"weights has {pw.shape[0]} rows but features has {pf.shape[0]}")
        check_same_device(("weights", pw), ("features", pf))
        self.weights = weights
        self.features = features
        self._pw, self._pf = pw, pf
        # dtype of the rows: the factors' common one, or the scores' and features' common one
        # when uwe_factored / badge_factored keep the weights in accumulation precision.
        self._rows_dtype = _arrays.result_dtype(pw.dtype, pf.dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return FactoredArrays(self._pw.data, self._pf.data).shape

    @property
    def dtype(self) -> np.dtype:
        """dtype of the materialised rows (numpy dtype; bfloat16 as ml_dtypes.bfloat16)."""
        return self._rows_dtype

    @property
    def is_badge(self) -> bool:
        return self._pw.ndim == 2

    @property
    def device(self) -> str:
        return self._pf.device

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        kind = f"BADGE, K={self._pw.shape[1]}" if self.is_badge else "UWE"
        return f"FactoredEmbedding({kind}, shape={self.shape}, dtype={self.dtype}, device={self.device})"

    def backend_arrays(self) -> FactoredArrays:
        return FactoredArrays(self._pw.data, self._pf.data)

    def prepared(self) -> tuple[Prepared, Prepared]:
        return self._pw, self._pf

    def materialize(self) -> Any:
        """The explicit [n, d] or [n, K*d] rows in the caller's library and device, in `dtype`:
        each product formed in accumulation precision and rounded once, as `uwe()` does."""
        pw, pf = self._pw, self._pf
        out_dtype = self.dtype
        acc = _arrays.accum_dtype(pw.dtype, pf.dtype)
        n, width = self.shape
        if not pf.on_cpu:
            torch = __import__("torch")
            w = pw.data.to(_arrays.torch_dtype(acc))
            f = pf.data.to(_arrays.torch_dtype(acc))
            rows = w[:, None] * f if w.ndim == 1 else (w[:, :, None] * f[:, None, :]).reshape(n, width)
            return rows.to(_arrays.torch_dtype(out_dtype))
        out = np.empty((n, width), dtype=out_dtype)
        for s in range(0, n, CHUNK_ROWS):
            w = np.asarray(pw.data[s : s + CHUNK_ROWS], dtype=acc)
            f = np.asarray(pf.data[s : s + CHUNK_ROWS], dtype=acc)
            rows = w[:, None] * f if w.ndim == 1 else (w[:, :, None] * f[:, None, :]).reshape(len(f), width)
            out[s : s + CHUNK_ROWS] = rows
        return _arrays.restore(out, pf)
