"""Embedding extraction: fused UWE against the numpy and torch compositions a user would
write, and BADGE explicit against factored, at the paper's dataset shapes."""
from __future__ import annotations

import numpy as np
import pytest

import uwe_kernels
from bench import _data
from bench._data import CIFAR10, CIFAR10_BADGE, CIFAR100, CIFAR100_BADGE, CITYSCAPES, VOC
from bench.conftest import backend_params, nbytes_of, on_device, optional_peer, require_backend

CLASSIFICATION = [pytest.param(CIFAR10, id="cifar10"), pytest.param(CIFAR100, id="cifar100")]
BADGE_SHAPES = [pytest.param(CIFAR10_BADGE, id="cifar10"), pytest.param(CIFAR100_BADGE, id="cifar100")]


def numpy_uwe(scores: np.ndarray, feats: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    u = -(p * np.log(p)).sum(axis=1)
    return u[:, None] * feats


def torch_uwe(scores, feats):
    import torch

    p = torch.softmax(scores, dim=1)
    u = -(p * torch.log(p)).sum(dim=1)
    return u[:, None] * feats


def numpy_badge(scores: np.ndarray, feats: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(p)), p.argmax(axis=1)] -= 1.0
    return (p[:, :, None] * feats[:, None, :]).reshape(len(p), -1)


def _classification(shape):
    return _data.logits(shape.n, shape.K), _data.features(shape.n, shape.d)


def _uwe_bytes(scores, feats) -> int:
    return nbytes_of(scores, feats) + feats.nbytes


@pytest.mark.parametrize("shape", CLASSIFICATION)
@pytest.mark.parametrize("backend", backend_params())
def bench_uwe_fused(measure, benchmark, shape, backend):
    scores, feats = _classification(shape)
    device = require_backend(backend, work=shape.n * (shape.K + shape.d))
    s, f = on_device(scores, device), on_device(feats, device)
    benchmark.group = f"embed:{shape.name}"
    measure(lambda: uwe_kernels.uwe(s, f, backend=backend), provider=f"uwe[{backend}]", shape=shape.label,
            bytes_moved=_uwe_bytes(scores, feats), device=device, op="uwe")


@pytest.mark.parametrize("shape", CLASSIFICATION)
def bench_uwe_numpy_composition(measure, benchmark, shape):
    scores, feats = _classification(shape)
    benchmark.group = f"embed:{shape.name}"
    measure(lambda: numpy_uwe(scores, feats), provider="uwe[numpy composition]", role="baseline",
            shape=shape.label, bytes_moved=_uwe_bytes(scores, feats), op="uwe")


TORCH_DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda")]


def torch_device_or_skip(device: str):
    torch = optional_peer("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch composition on cuda: no CUDA device is visible")
    return torch


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("shape", CLASSIFICATION)
def bench_uwe_torch_composition(measure, benchmark, shape, device):
    torch = torch_device_or_skip(device)
    scores, feats = _classification(shape)
    s, f = (torch.from_numpy(x).to(device) for x in (scores, feats))
    benchmark.group = f"embed:{shape.name}"
    measure(lambda: torch_uwe(s, f), provider=f"uwe[torch composition, {device}]", role="baseline",
            shape=shape.label, bytes_moved=_uwe_bytes(scores, feats), device=device, op="uwe")


@pytest.mark.parametrize("shape", BADGE_SHAPES)
@pytest.mark.parametrize("backend", backend_params())
def bench_badge_explicit(measure, benchmark, shape, backend):
    scores, feats = _classification(shape)
    device = require_backend(backend, work=shape.n * shape.K * shape.d)
    s, f = on_device(scores, device), on_device(feats, device)
    benchmark.group = f"embed-badge:{shape.name}"
    out_bytes = shape.n * shape.K * shape.d * feats.itemsize
    measure(lambda: uwe_kernels.badge_embedding(s, f, backend=backend), provider=f"badge explicit[{backend}]",
            shape=shape.label, bytes_moved=nbytes_of(scores, feats) + out_bytes, device=device,
            op="badge_embedding", embedding_dim=shape.K * shape.d)


@pytest.mark.parametrize("shape", BADGE_SHAPES)
def bench_badge_numpy_composition(measure, benchmark, shape):
    scores, feats = _classification(shape)
    benchmark.group = f"embed-badge:{shape.name}"
    out_bytes = shape.n * shape.K * shape.d * feats.itemsize
    measure(lambda: numpy_badge(scores, feats), provider="badge explicit[numpy composition]", role="baseline",
            shape=shape.label, bytes_moved=nbytes_of(scores, feats) + out_bytes, op="badge_embedding",
            embedding_dim=shape.K * shape.d)


@pytest.mark.parametrize("shape", BADGE_SHAPES)
@pytest.mark.parametrize("backend", backend_params())
def bench_badge_factored(measure, benchmark, shape, backend):
    scores, feats = _classification(shape)
    device = require_backend(backend, work=shape.n * shape.K)
    s, f = on_device(scores, device), on_device(feats, device)
    benchmark.group = f"embed-badge:{shape.name}"
    measure(lambda: uwe_kernels.badge_factored(s, f, backend=backend), provider=f"badge factored[{backend}]",
            shape=shape.label, bytes_moved=nbytes_of(scores) + shape.n * shape.K * 4, device=device,
            op="badge_factored", embedding_dim=shape.K * shape.d)


@pytest.mark.parametrize("shape", BADGE_SHAPES)
@pytest.mark.parametrize("backend", backend_params())
def bench_uwe_at_badge_shape(measure, benchmark, shape, backend):
    scores, feats = _classification(shape)
    device = require_backend(backend, work=shape.n * (shape.K + shape.d))
    s, f = on_device(scores, device), on_device(feats, device)
    benchmark.group = f"embed-badge:{shape.name}"
    measure(lambda: uwe_kernels.uwe(s, f, backend=backend), provider=f"uwe[{backend}]", shape=shape.label,
            bytes_moved=_uwe_bytes(scores, feats), device=device, op="uwe", embedding_dim=shape.d)


def numpy_uwe_segmentation(scores: np.ndarray, feats: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    u = -(p * np.log(p)).sum(axis=1).mean(axis=(1, 2))
    return u[:, None] * feats.mean(axis=(2, 3))


def torch_uwe_segmentation(scores, feats):
    import torch

    p = torch.softmax(scores, dim=1)
    u = -(p * torch.log(p)).sum(dim=1).mean(dim=(1, 2))
    return u[:, None] * feats.mean(dim=(2, 3))


SEGMENTATION = [pytest.param(s, id=f"cityscapes-stride{s.stride}") for s in CITYSCAPES]


def _segmentation_bytes(scores, feats) -> int:
    return nbytes_of(scores, feats) + feats.shape[0] * feats.shape[1] * feats.itemsize


@pytest.mark.parametrize("shape", SEGMENTATION)
@pytest.mark.parametrize("backend", backend_params())
def bench_uwe_segmentation(measure, benchmark, shape, backend):
    scores, feats = _data.segmentation(shape)
    device = require_backend(backend, work=scores.size)
    s, f = on_device(scores, device), on_device(feats, device)
    benchmark.group = f"embed-seg:stride{shape.stride}"
    measure(lambda: uwe_kernels.uwe_segmentation(s, f, backend=backend), provider=f"uwe[{backend}]",
            shape=shape.label, bytes_moved=_segmentation_bytes(scores, feats), device=device,
            op="uwe_segmentation", embedding_dim=shape.C)


@pytest.mark.parametrize("shape", SEGMENTATION)
def bench_uwe_segmentation_numpy_composition(measure, benchmark, shape):
    scores, feats = _data.segmentation(shape)
    benchmark.group = f"embed-seg:stride{shape.stride}"
    measure(lambda: numpy_uwe_segmentation(scores, feats), provider="uwe[numpy composition]", role="baseline",
            shape=shape.label, bytes_moved=_segmentation_bytes(scores, feats), op="uwe_segmentation",
            embedding_dim=shape.C)


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("shape", SEGMENTATION)
def bench_uwe_segmentation_torch_composition(measure, benchmark, shape, device):
    torch = torch_device_or_skip(device)
    scores, feats = _data.segmentation(shape)
    s, f = (torch.from_numpy(x).to(device) for x in (scores, feats))
    benchmark.group = f"embed-seg:stride{shape.stride}"
    measure(lambda: torch_uwe_segmentation(s, f), provider=f"uwe[torch composition, {device}]", role="baseline",
            shape=shape.label, bytes_moved=_segmentation_bytes(scores, feats), device=device,
            op="uwe_segmentation", embedding_dim=shape.C)


def numpy_uwe_detection(scores: np.ndarray, feats: np.ndarray, ids: np.ndarray, num_images: int) -> np.ndarray:
    K, d = scores.shape[1], feats.shape[1]
    top2 = np.sort(scores, axis=1)[:, -2:]
    u = top2[:, 0] / top2[:, 1]
    cls = scores.argmax(axis=1)
    order = np.lexsort((-u, cls, ids))
    key = ids[order] * K + cls[order]
    first = order[np.r_[True, key[1:] != key[:-1]]]
    out = np.zeros((num_images, K, d), dtype=feats.dtype)
    out[ids[first], cls[first]] = u[first, None] * feats[first]
    return out.reshape(num_images, K * d)


DETECTION = [pytest.param(s, id=f"voc-d{s.d}") for s in VOC]


def _detection_bytes(shape, scores, feats) -> int:
    return nbytes_of(scores, feats) + shape.images * shape.K * shape.d * feats.itemsize


@pytest.mark.parametrize("shape", DETECTION)
@pytest.mark.parametrize("backend", backend_params())
def bench_uwe_detection(measure, benchmark, shape, backend):
    scores, feats, ids = _data.detection(shape)
    device = require_backend(backend, work=feats.size)
    s, f, i = on_device(scores, device), on_device(feats, device), on_device(ids, device)
    benchmark.group = f"embed-det:d{shape.d}"
    measure(lambda: uwe_kernels.uwe_detection(s, f, i, shape.images, backend=backend),
            provider=f"uwe[{backend}]", shape=shape.label, bytes_moved=_detection_bytes(shape, scores, feats),
            device=device, op="uwe_detection", embedding_dim=shape.K * shape.d)


@pytest.mark.parametrize("shape", DETECTION)
def bench_uwe_detection_numpy_composition(measure, benchmark, shape):
    scores, feats, ids = _data.detection(shape)
    benchmark.group = f"embed-det:d{shape.d}"
    measure(lambda: numpy_uwe_detection(scores, feats, ids, shape.images), provider="uwe[numpy composition]",
            role="baseline", shape=shape.label, bytes_moved=_detection_bytes(shape, scores, feats),
            op="uwe_detection", embedding_dim=shape.K * shape.d)
