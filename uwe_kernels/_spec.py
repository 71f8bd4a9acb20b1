"""The one description of a matrix and of an embedding handed to both compiled modules
(csrc/common/matrix_spec.h), for numpy arrays and torch tensors alike: nothing is copied, the
kernels read the caller's buffer in place with its strides.

matrix spec: (address, rows, cols, row stride, column stride in bytes, dtype code); a 1-D
array is one column. embedding spec: (kind, features spec, weights spec or None).
"""
from __future__ import annotations

from typing import Any

from . import _abi
from ._arrays import numpy_dtype
from .factored import FactoredArrays


def matrix_spec(a: Any) -> tuple[int, int, int, int, int, int]:
    """The spec of a 1-D or 2-D numpy array or torch tensor (the caller keeps it alive)."""
    if hasattr(a, "data_ptr"):  # torch
        item = a.element_size()
        address, strides, dtype = a.data_ptr(), [s * item for s in a.stride()], numpy_dtype(a.dtype)
    else:
        item = a.itemsize
        address, strides, dtype = a.__array_interface__["data"][0], list(a.strides), a.dtype
    if a.ndim not in (1, 2):
        raise ValueError(f"selection kernels take 1-D or 2-D arrays, got ndim={a.ndim}")
    rows = a.shape[0]
    cols = a.shape[1] if a.ndim == 2 else 1
    s1 = strides[1] if a.ndim == 2 else item
    return int(address), int(rows), int(cols), int(strides[0]), int(s1), _abi.dtype_code(dtype)


def emb_spec(emb: Any) -> tuple[Any, ...]:
    """The spec of a dense [n, d] array or of FactoredArrays (UWE [n] or BADGE [n, K] weights)."""
    if isinstance(emb, FactoredArrays):
        w = emb.weights
        kind = _abi.EMB_UWE if w.ndim == 1 else _abi.EMB_BADGE
        return kind, matrix_spec(emb.features), matrix_spec(w)
    return _abi.EMB_DENSE, matrix_spec(emb), None
