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


def as_float_rows(x: Any, what: str) -> Any:
    """`x` as a float matrix the kernels take, as the frameworks' native strategies accept it:
    integer and bool arrays become float64 (numpy) or float32 (torch, whose default float);
    scipy sparse matrices are densified (the kernels are dense); floats pass through as given."""
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # scipy.sparse, without importing scipy
        x = x.toarray()
    if _arrays.is_torch(x):
        return x if x.is_floating_point() else x.to(_arrays._torch().float32)
    if isinstance(x, np.ndarray) and x.dtype.kind in "fV":  # float, and ml_dtypes' bfloat16
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    if arr.dtype.kind == "f":
        return arr
    raise TypeError(f"{what} must hold numbers (float, int or bool), got dtype {arr.dtype}")


class SeedStream:
    """One SplitMix64 seed per query, drawn from a numpy RandomState, so an int seed gives a
    reproducible run whose rounds differ, and a RandomState passed in advances as in
    scikit-learn (None: fresh OS entropy)."""

    def __init__(self, seed: Any) -> None:
        if isinstance(seed, np.random.RandomState):
            self.random_state = seed
        elif seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
            self.random_state = np.random.RandomState(None if seed is None else int(seed) % 2**32)
        else:
            raise TypeError(f"seed must be None, an int or a numpy RandomState, got {seed!r}")

    def next(self) -> int:
        return draw_seed(self.random_state)


def draw_seed(random_state: np.random.RandomState) -> int:
    """A 63-bit SplitMix64 seed drawn from `random_state` (advancing it)."""
    return int(random_state.randint(0, 2**63 - 1, dtype=np.int64))
