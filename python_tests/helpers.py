"""Data generators, conversions and tolerances shared by the tests."""
from __future__ import annotations

from typing import Any

import numpy as np

from uwe_kernels._arrays import BFLOAT16

RTOL = {
    np.dtype(np.float64): 1e-10,
    np.dtype(np.float32): 2e-5,
    np.dtype(np.float16): 2e-3,
    BFLOAT16: 2e-2,
}


def rtol(dtype: Any) -> float:
    return RTOL[np.dtype(dtype)]


def to_device(x: np.ndarray, device: str) -> Any:
    """numpy for "cpu"; a torch tensor on the GPU for "cuda" (bfloat16 preserved)."""
    if device == "cpu":
        return x
    import torch

    if x.dtype == BFLOAT16:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16).to(device)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    import torch

    t = x.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(BFLOAT16)
    return t.numpy()


def as_float64(x: Any) -> np.ndarray:
    return to_numpy(x).astype(np.float64)


def gaussian_pool(n: int, d: int, seed: int = 0, dtype: Any = np.float32) -> np.ndarray:
    """Continuous random rows: no exact ties, and distance gaps far above rounding."""
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def clustered_pool(n: int, d: int, clusters: int = 10, seed: int = 0, dtype: Any = np.float32,
                   spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) * 4
    labels = rng.integers(0, clusters, n)
    return (centres[labels] + spread * rng.standard_normal((n, d))).astype(dtype)


def logits(n: int, k: int, seed: int = 0, scale: float = 3.0, dtype: Any = np.float32) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal((n, k))).astype(dtype)
