"""Pools shaped like real penultimate-layer features, and real ones.

Synthetic: 10 class means plus within-class noise whose covariance has a power-law spectrum
lambda_i ~ i^-exponent (exponent near 1 is typical of trained networks), under a random
rotation, shifted so that the ReLU clips about a third of the entries, float32. Generated
chunk by chunk, so the 1,000,000-row pool can go to a memory-mapped file.

Real: the demo network's penultimate features (uwe_kernels.demo.MLPLearner, trained on a
labelled part of scikit-learn's digits, the demo's own data path).
"""
from __future__ import annotations

import functools
import os
import tempfile

import numpy as np

CLASSES = 10
CHUNK_ROWS = 65_536


def _structure(d: int, exponent: float, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class means [classes, d], rotation [d, d], within-class standard deviations [d]).
    Within-class variance sums to d (one per coordinate on average); the class means spread
    with the same total variance, so classes are separated but overlap, as in a trained
    network's features."""
    rng = np.random.default_rng([7, d, classes, seed])
    spectrum = np.arange(1, d + 1, dtype=np.float64) ** -float(exponent)
    spectrum *= d / spectrum.sum()
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    means = rng.standard_normal((classes, d)) + 0.5  # the offset sets how much the ReLU clips
    return means, rotation, np.sqrt(spectrum)


def _fill_power_law(out: np.ndarray, exponent: float, classes: int, seed: int) -> np.ndarray:
    n, d = out.shape
    means, rotation, std = _structure(d, exponent, classes, seed)
    for s in range(0, n, CHUNK_ROWS):
        e = min(n, s + CHUNK_ROWS)
        rng = np.random.default_rng([8, seed, s])
        labels = rng.integers(0, classes, e - s)
        noise = rng.standard_normal((e - s, d)) * std
        out[s:e] = np.maximum(means[labels] + noise @ rotation.T, 0.0)
    return out


@functools.lru_cache(maxsize=4)
def power_law_pool(n: int, d: int, exponent: float, classes: int = CLASSES, seed: int = 0) -> np.ndarray:
    """n x d float32 realistic-embedding pool (in memory)."""
    return _fill_power_law(np.empty((n, d), dtype=np.float32), exponent, classes, seed)


@functools.lru_cache(maxsize=1)
def power_law_memmap(n: int, d: int, exponent: float, classes: int = CLASSES, seed: int = 0) -> np.memmap:
    """The same family in a temporary memory-mapped file (1,000,000 x 512 is 2 GB)."""
    fd, path = tempfile.mkstemp(suffix=".bin", prefix="uwe_bench_realistic_")
    os.close(fd)
    pool = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    _fill_power_law(pool, exponent, classes, seed)
    pool.flush()
    os.unlink(path)  # the mapping keeps the data alive; the file goes with the process
    return pool


@functools.lru_cache(maxsize=1)
def digits_features(labelled: int = 100, hidden: int = 64, epochs: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features [1297, hidden] float32 of the digits train pool, labelled indices [labelled]):
    the demo's MLP trained on a random labelled part of the pool, as one active-learning
    cycle would leave it."""
    from uwe_kernels import demo

    torch = demo._torch()
    torch.set_num_threads(1)
    data = demo.digits_dataset(seed=seed)
    n_classes = int(data.y_train.max()) + 1
    known = np.sort(np.random.default_rng([9, seed]).choice(len(data.X_train), size=labelled, replace=False))
    model = demo.MLPLearner(data.X_train.shape[1], n_classes, seed, hidden=hidden, epochs=epochs)
    model.fit(data.X_train[known], data.y_train[known])
    return np.ascontiguousarray(model.features(data.X_train), dtype=np.float32), known.astype(np.int64)
