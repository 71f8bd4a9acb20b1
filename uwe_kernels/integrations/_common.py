"""Helpers shared by the framework adapters: importing the framework with an actionable
error, and row-wise array plumbing that keeps torch tensors as torch."""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .. import _arrays


def require(module: str, framework: str, extra: str) -> Any:
    """Import `module`, or raise ImportError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this adapter needs {framework}, which is not installed ({exc}); "
            f'install it with: pip install "uwe_kernels[{extra}]"'
        ) from exc


def concat_rows(first: Any, second: Any) -> Any:
    """Rows of `first` then `second`: torch.cat for tensors, numpy otherwise."""
    if _arrays.is_torch(first):
        return _arrays._torch().cat([first, second.to(first.device)])
    return np.concatenate([np.asarray(first), np.asarray(second)])


def take_rows(x: Any, rows: np.ndarray) -> Any:
    """x[rows] for numpy, torch (indexed on its device) and anything numpy can read."""
    if _arrays.is_torch(x):
        return x[_arrays._torch().as_tensor(rows, device=x.device)]
    return np.asarray(x)[rows]


def to_numpy(x: Any) -> np.ndarray:
    """Host numpy, a view where possible (picks and metrics for the frameworks)."""
    if _arrays.is_torch(x):
        x = x.detach().cpu()
        x = x.float() if x.dtype == _arrays._torch().bfloat16 else x
    host: np.ndarray = x.numpy() if _arrays.is_torch(x) else np.asarray(x)
    return host


def check_features(features: Any, n: int, what: str) -> None:
    shape = getattr(features, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != n:
        raise ValueError(f"{what} must return [n, d] features for the {n} rows it was given, got shape {shape}")
