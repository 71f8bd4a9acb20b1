"""Synthetic model outputs at the shapes of the paper's experiments, and the size switch
(UWE_BENCH_SIZE=smoke|quick|full). Data are Gaussian (tie-free), seeded, and cached for the
session."""
from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

SIZE_ENV = "UWE_BENCH_SIZE"
SIZES = ("smoke", "quick", "full")
T = TypeVar("T")


def size_mode() -> str:
    """smoke: tiny shapes that check every benchmark runs and picks agree (CI, with
    --benchmark-disable, which selects it unless UWE_BENCH_SIZE is set); quick (default): a few
    minutes; full: the paper's shapes."""
    mode = os.environ.get(SIZE_ENV, "quick").strip().lower() or "quick"
    if mode not in SIZES:
        raise ValueError(f"{SIZE_ENV} must be one of {', '.join(SIZES)}, got {mode!r}")
    return mode


FULL = size_mode() == "full"
SMOKE = size_mode() == "smoke"


def pick(quick: T, full: T, smoke: T | None = None) -> T:
    """The value for the current size: quick by default, full under UWE_BENCH_SIZE=full, smoke
    (quick when not given) under UWE_BENCH_SIZE=smoke."""
    if FULL:
        return full
    if SMOKE and smoke is not None:
        return smoke
    return quick


@dataclass(frozen=True)
class Classification:
    """A pool of n images with K-class logits and d-dim penultimate features."""

    name: str
    n: int
    K: int
    d: int
    labelled: int
    budget: int

    @property
    def label(self) -> str:
        return f"{self.name} n={self.n} K={self.K} d={self.d}"


CIFAR10 = Classification("cifar10", pick(50_000, 50_000, 2_000), 10, 512, pick(1_000, 1_000, 50), pick(50, 1_000, 10))
CIFAR100 = Classification("cifar100", pick(50_000, 50_000, 2_000), 100, 512, pick(1_000, 1_000, 50), pick(50, 1_000, 10))
# Explicit BADGE embeddings are n x K*d: the quick run scales the pool so that they fit in
# about 400 MB of float32 (the float64 reference makes twice that), and labels fewer rows (the
# labelled pass, n x labelled x K*d, dominated the quick run at 1,000 and 400).
CIFAR10_BADGE = Classification("cifar10", pick(10_000, 50_000, 1_000), 10, 512, pick(200, 1_000, 50), pick(50, 1_000, 10))
CIFAR100_BADGE = Classification("cifar100", pick(2_000, 20_000, 200), 100, 512, pick(100, 400, 20), pick(50, 1_000, 10))


@dataclass(frozen=True)
class Segmentation:
    """Cityscapes-like: 19 classes, logits at 1/4 of 1024x2048, 128-d features at `stride`."""

    images: int
    stride: int
    K: int = 19
    C: int = 128
    H: int = 256
    W: int = 512

    @property
    def label(self) -> str:
        return f"cityscapes N={self.images} K={self.K} {self.H}x{self.W} C={self.C} stride={self.stride}"


CITYSCAPES = [Segmentation(pick(4, 64, 1), 4), Segmentation(pick(4, 64, 1), 8)]


@dataclass(frozen=True)
class Detection:
    """VOC-like: 20 classes, sigmoid box scores, `boxes_per_image` detections per image."""

    images: int
    d: int
    K: int = 20
    boxes_per_image: int = 100

    @property
    def boxes(self) -> int:
        return self.images * self.boxes_per_image

    @property
    def label(self) -> str:
        return f"voc images={self.images} boxes={self.boxes} K={self.K} d={self.d}"


VOC = [Detection(pick(500, 5_000, 20), 256), Detection(pick(500, 5_000, 20), 1024)]


@functools.lru_cache(maxsize=4)
def logits(n: int, K: int, dtype: str = "float32", seed: int = 0) -> np.ndarray:
    return (3.0 * np.random.default_rng([seed, n, K]).standard_normal((n, K), dtype=np.float32)).astype(dtype)


@functools.lru_cache(maxsize=4)
def features(n: int, d: int, dtype: str = "float32", seed: int = 1) -> np.ndarray:
    """ReLU-like non-negative features with continuous values (no ties)."""
    x = np.abs(np.random.default_rng([seed, n, d]).standard_normal((n, d), dtype=np.float32))
    return x.astype(dtype, copy=False)


def labelled(n: int, count: int, seed: int = 2) -> np.ndarray:
    return np.sort(np.random.default_rng([seed, n, count]).choice(n, size=count, replace=False)).astype(np.int64)


@functools.lru_cache(maxsize=2)
def segmentation(shape: Segmentation) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng([3, shape.images, shape.stride])
    scores = 3.0 * g.standard_normal((shape.images, shape.K, shape.H, shape.W), dtype=np.float32)
    h, w = shape.H // shape.stride, shape.W // shape.stride
    feats = np.abs(g.standard_normal((shape.images, shape.C, h, w), dtype=np.float32))
    return scores, feats


@functools.lru_cache(maxsize=2)
def detection(shape: Detection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = np.random.default_rng([4, shape.images, shape.d])
    scores = g.random((shape.boxes, shape.K), dtype=np.float32)
    feats = np.abs(g.standard_normal((shape.boxes, shape.d), dtype=np.float32))
    ids = np.repeat(np.arange(shape.images, dtype=np.int64), shape.boxes_per_image)
    return scores, feats, ids


@functools.lru_cache(maxsize=1)
def memmap_pool(n: int, d: int, dtype: str = "float32", chunk: int = 65_536) -> np.memmap:
    """A pool of n x d rows in a temporary file, written in chunks (never whole in memory)."""
    fd, path = tempfile.mkstemp(suffix=".bin", prefix="uwe_bench_pool_")
    os.close(fd)
    pool = np.memmap(path, dtype=dtype, mode="w+", shape=(n, d))
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        pool[s:e] = np.random.default_rng([5, s]).standard_normal((e - s, d), dtype=np.float32)
    pool.flush()
    os.unlink(path)  # the mapping keeps the data alive; the file goes with the process
    return pool


@functools.lru_cache(maxsize=2)
def uwe_pool(n: int, K: int, d: int, dtype: str = "float32") -> np.ndarray:
    """The entropy-weighted embedding u_i * f_i of the synthetic outputs, in plain numpy
    (selection benchmarks time the selection only)."""
    z = logits(n, K).astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = -(p * np.log(p)).sum(axis=1)
    return (u[:, None] * features(n, d)).astype(dtype)


@functools.lru_cache(maxsize=2)
def badge_weights(n: int, K: int) -> np.ndarray:
    """p - onehot(argmax p), float32 [n, K]."""
    z = logits(n, K).astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), p.argmax(axis=1)] -= 1.0
    return p.astype(np.float32)


@functools.lru_cache(maxsize=1)
def badge_explicit(n: int, K: int, d: int) -> np.ndarray:
    """The materialised n x K*d gradient embedding, float32."""
    w = badge_weights(n, K)
    return (w[:, :, None] * features(n, d)[:, None, :]).reshape(n, K * d)


@functools.lru_cache(maxsize=2)
def gaussian_pool(n: int, d: int, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng([6, n, d]).standard_normal((n, d), dtype=np.float32).astype(dtype, copy=False)
