"""The paper's Table 2 rows (embedding dimension, extraction time, selection time for BADGE
and UWE) measured with our fastest CPU (or CUDA) backend that runs each op.

Extraction here is the embedding computation from model outputs (the paper's includes the
network's forward pass). Segmentation and detection extraction is measured on a slice of the
dataset and scaled linearly to its image count (`table2_scale`); selection always runs on
the whole dataset's pool. `bench/report.py` prints the table beside the published seconds.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pytest

import uwe_kernels
from bench import _data
from bench._data import pick
from bench.conftest import DEVICE_BACKENDS, REFERENCE_MAX_WORK, on_device

CITYSCAPES_IMAGES = 2_975
VOC_IMAGES = 16_551
SELECTION_BUDGET = pick(100, 1_000, 10)
SEGMENTATION = _data.Segmentation(pick(4, 64, 1), 8)
DETECTION = _data.Detection(pick(500, 5_000, 20), 256)
# Selection pools: one row per image of the dataset (a few hundred under smoke sizes).
CITYSCAPES_POOL = pick(CITYSCAPES_IMAGES, CITYSCAPES_IMAGES, 300)
VOC_POOL = pick(VOC_IMAGES, VOC_IMAGES, 300)
CLASSIFICATION_N, CLASSIFICATION_LABELLED = pick(50_000, 50_000, 2_000), pick(1_000, 1_000, 50)


def _candidates() -> list[tuple[str, str]]:
    """(backend, device) in the order we would pick them for speed."""
    import importlib.util

    out = []
    available = uwe_kernels.backends()
    for name in ("cuda", "triton", "cpp", "numba", "reference"):
        if not available[name][0]:
            continue
        if name in DEVICE_BACKENDS:
            if importlib.util.find_spec("torch") is None:
                continue
            import torch

            if not torch.cuda.is_available():
                continue
            out.append((name, "cuda"))
        else:
            out.append((name, "cpu"))
    return out


def _run_fastest(measure, benchmark, make_call: Callable[[str, str], Callable[[], Any]], *, work: float,
                 dataset: str, method: str, column: str, dim: int, shape: str, bytes_moved: float,
                 scale: float = 1.0) -> None:
    """Time the first backend (fastest first) that runs the call; skip with every reason if none."""
    reasons = []
    for name, device in _candidates():
        if name == "reference" and work > REFERENCE_MAX_WORK:
            reasons.append(f"reference: timed only up to {REFERENCE_MAX_WORK:.0e} multiply-adds ({work:.1e} here)")
            continue
        call = make_call(name, device)
        t0 = time.perf_counter()
        try:
            call()
        except uwe_kernels.BackendUnavailable as exc:
            reasons.append(str(exc).replace("\n", " "))
            continue
        first = time.perf_counter() - t0
        benchmark.group = f"table2:{dataset}"
        measure(call, provider=f"{method} {column}[{name}]", shape=shape, device=device, warmup=False,
                bytes_moved=bytes_moved, table2_dataset=dataset, table2_method=method, table2_column=column,
                table2_dim=dim, table2_scale=scale, backend=name, first_call_s=first)
        return
    pytest.skip("no backend runs this row yet: " + "; ".join(reasons))


CLASSIFICATION = [pytest.param(_data.Classification(name, CLASSIFICATION_N, K, 512, CLASSIFICATION_LABELLED,
                                                    SELECTION_BUDGET), id=name)
                  for name, K in (("cifar10", 10), ("cifar100", 100))]


@pytest.mark.parametrize("shape", CLASSIFICATION)
def bench_table2_classification_uwe_extraction(measure, benchmark, shape):
    scores, feats = _data.logits(shape.n, shape.K), _data.features(shape.n, shape.d)

    def make(name, device):
        s, f = on_device(scores, device), on_device(feats, device)
        return lambda: uwe_kernels.uwe(s, f, backend=name)

    _run_fastest(measure, benchmark, make, work=shape.n * (shape.K + shape.d), dataset=shape.name, method="UWE",
                 column="extraction", dim=shape.d, shape=shape.label,
                 bytes_moved=scores.nbytes + 2 * feats.nbytes)


@pytest.mark.parametrize("shape", CLASSIFICATION)
def bench_table2_classification_badge_extraction(measure, benchmark, shape):
    scores, feats = _data.logits(shape.n, shape.K), _data.features(shape.n, shape.d)

    def make(name, device):
        s, f = on_device(scores, device), on_device(feats, device)
        return lambda: uwe_kernels.badge_factored(s, f, backend=name)

    _run_fastest(measure, benchmark, make, work=shape.n * shape.K, dataset=shape.name, method="BADGE",
                 column="extraction", dim=shape.K * shape.d, shape=shape.label + " (factored)",
                 bytes_moved=2 * scores.nbytes)


@pytest.mark.parametrize("shape", CLASSIFICATION)
def bench_table2_classification_uwe_selection(measure, benchmark, shape):
    emb = _data.uwe_pool(shape.n, shape.K, shape.d)
    labelled = _data.labelled(shape.n, shape.labelled)

    def make(name, device):
        x, lab = on_device(emb, device), on_device(labelled, device)
        return lambda: uwe_kernels.kcenter_greedy(x, lab, shape.budget, backend=name)

    _run_fastest(measure, benchmark, make, work=emb.size * (shape.budget + shape.labelled), dataset=shape.name,
                 method="UWE", column="selection", dim=shape.d, shape=f"{shape.label} budget={shape.budget}",
                 bytes_moved=shape.budget * emb.nbytes)


@pytest.mark.parametrize("shape", CLASSIFICATION)
def bench_table2_classification_badge_selection(measure, benchmark, shape):
    weights, feats = _data.badge_weights(shape.n, shape.K), _data.features(shape.n, shape.d)
    labelled = _data.labelled(shape.n, shape.labelled)

    def make(name, device):
        emb = uwe_kernels.FactoredEmbedding(on_device(weights, device), on_device(feats, device))
        lab = on_device(labelled, device)
        return lambda: uwe_kernels.kmeans_pp(emb, shape.budget, labelled_idx=lab, backend=name)

    _run_fastest(measure, benchmark, make, work=shape.n * (shape.K + shape.d) * (shape.budget + shape.labelled),
                 dataset=shape.name, method="BADGE", column="selection", dim=shape.K * shape.d,
                 shape=f"{shape.label} budget={shape.budget} (factored)",
                 bytes_moved=shape.budget * (weights.nbytes + feats.nbytes))


def bench_table2_cityscapes_uwe_extraction(measure, benchmark):
    scores, feats = _data.segmentation(SEGMENTATION)

    def make(name, device):
        s, f = on_device(scores, device), on_device(feats, device)
        return lambda: uwe_kernels.uwe_segmentation(s, f, backend=name)

    _run_fastest(measure, benchmark, make, work=scores.size, dataset="cityscapes", method="UWE",
                 column="extraction", dim=SEGMENTATION.C, shape=SEGMENTATION.label,
                 bytes_moved=scores.nbytes + feats.nbytes, scale=CITYSCAPES_IMAGES / SEGMENTATION.images)


def numpy_badge_segmentation(scores: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Per-image BADGE: the gradient embedding of every feature cell (class probabilities
    averaged over the cell's pixels), averaged over the image: [N, K*C]."""
    N, K, H, W = scores.shape
    _, C, h, w = feats.shape
    s = H // h
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p = p.reshape(N, K, h, s, w, s).mean(axis=(3, 5)).reshape(N, K, h * w)
    cls = p.argmax(axis=1)
    np.put_along_axis(p, cls[:, None, :], np.take_along_axis(p, cls[:, None, :], axis=1) - 1.0, axis=1)
    return np.einsum("nkp,ncp->nkc", p, feats.reshape(N, C, h * w)).reshape(N, K * C) / (h * w)


def bench_table2_cityscapes_badge_extraction(measure, benchmark):
    scores, feats = _data.segmentation(SEGMENTATION)
    benchmark.group = "table2:cityscapes"
    measure(lambda: numpy_badge_segmentation(scores, feats), provider="BADGE extraction[numpy]", role="baseline",
            shape=SEGMENTATION.label, bytes_moved=scores.nbytes + feats.nbytes, table2_dataset="cityscapes",
            table2_method="BADGE", table2_column="extraction", table2_dim=SEGMENTATION.K * SEGMENTATION.C,
            table2_scale=CITYSCAPES_IMAGES / SEGMENTATION.images, backend="numpy")


@pytest.mark.parametrize("method,dim", [("UWE", SEGMENTATION.C), ("BADGE", SEGMENTATION.K * SEGMENTATION.C)],
                         ids=["uwe", "badge"])
def bench_table2_cityscapes_selection(measure, benchmark, method, dim):
    emb = np.abs(_data.gaussian_pool(CITYSCAPES_POOL, dim))

    def make(name, device):
        x = on_device(emb, device)
        if method == "UWE":
            return lambda: uwe_kernels.kcenter_greedy(x, None, SELECTION_BUDGET, backend=name)
        return lambda: uwe_kernels.kmeans_pp(x, SELECTION_BUDGET, backend=name)

    _run_fastest(measure, benchmark, make, work=emb.size * SELECTION_BUDGET, dataset="cityscapes", method=method,
                 column="selection", dim=dim, shape=f"cityscapes n={CITYSCAPES_POOL} d={dim} budget={SELECTION_BUDGET}",
                 bytes_moved=SELECTION_BUDGET * emb.nbytes)


def bench_table2_voc_uwe_extraction(measure, benchmark):
    scores, feats, ids = _data.detection(DETECTION)

    def make(name, device):
        s, f, i = on_device(scores, device), on_device(feats, device), on_device(ids, device)
        return lambda: uwe_kernels.uwe_detection(s, f, i, DETECTION.images, backend=name)

    _run_fastest(measure, benchmark, make, work=feats.size, dataset="voc", method="UWE", column="extraction",
                 dim=DETECTION.K * DETECTION.d, shape=DETECTION.label,
                 bytes_moved=scores.nbytes + feats.nbytes + DETECTION.images * DETECTION.K * feats.shape[1] * 4,
                 scale=VOC_IMAGES / DETECTION.images)


def bench_table2_voc_uwe_selection(measure, benchmark):
    dim = DETECTION.K * DETECTION.d
    emb = np.abs(_data.gaussian_pool(VOC_POOL, dim))

    def make(name, device):
        x = on_device(emb, device)
        return lambda: uwe_kernels.kcenter_greedy(x, None, SELECTION_BUDGET, backend=name)

    _run_fastest(measure, benchmark, make, work=emb.size * SELECTION_BUDGET, dataset="voc", method="UWE",
                 column="selection", dim=dim, shape=f"voc n={VOC_POOL} d={dim} budget={SELECTION_BUDGET}",
                 bytes_moved=SELECTION_BUDGET * emb.nbytes)
