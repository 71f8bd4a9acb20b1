"""The cuda backend's embedding ops (docs/internals.md, "Ops and their backend signatures").

Adapters over `_ext_cuda`: they take torch tensors on one CUDA device, pass raw pointers,
shapes, element strides, dtype codes and the current stream as integers (no libtorch in the
compiled module), and allocate the outputs and scratch buffers with torch on the same device
and stream. The wrapper has already checked the inputs for NaN / inf.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _lazy
from .._abi import KIND_CODES, dtype_code
from .._arrays import numpy_dtype, torch_dtype



def _ext() -> Any:
    return _lazy.load("cuda")


def _torch() -> Any:
    return _lazy.load_module("torch")


def _code_of(t: Any) -> int:
    return dtype_code(numpy_dtype(t.dtype))


def _tensor(t: Any) -> tuple[int, tuple[int, ...], tuple[int, ...], int]:
    return t.data_ptr(), tuple(t.shape), tuple(t.stride()), _code_of(t)


def _acc64(accum_dtype: Any) -> bool:
    return bool(np.dtype(accum_dtype) == np.float64)


class _OnDevice:
    """The tensor's device made current, and its current stream as an integer."""

    def __init__(self, t: Any) -> None:
        self.guard = _torch().cuda.device(t.device)
        self.device = t.device

    def __enter__(self) -> int:
        self.guard.__enter__()
        return int(_torch().cuda.current_stream(self.device).cuda_stream)

    def __exit__(self, *exc: Any) -> None:
        self.guard.__exit__(*exc)


def _empty(shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
    return _torch().empty(shape, dtype=torch_dtype(np.dtype(dtype)), device=like.device)


def _scratch(scores: Any, kind: str, accum_dtype: Any) -> tuple[Any, int]:
    """kind="bald": an [n, 2T] accumulator buffer (each row's pass maxima and log-sums; at most
    the size of the scores, no [n, K] matrix) and its pointer; (None, 0) for the other kinds."""
    if kind != "bald":
        return None, 0
    buf = _empty((scores.shape[0], 2 * scores.shape[2]), accum_dtype, scores)
    return buf, buf.data_ptr()


def uncertainty(scores: Any, kind: str, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> Any:
    out = _empty((scores.shape[0],), out_dtype, scores)
    scratch, scratch_ptr = _scratch(scores, kind, accum_dtype)
    with _OnDevice(scores) as stream:
        _ext().uncertainty(*_tensor(scores), KIND_CODES[kind], bool(from_logits), out.data_ptr(), _code_of(out),
                           _acc64(accum_dtype), stream, scratch_ptr)
    del scratch  # freed after the launch on the tensor's stream (torch's caching allocator orders it)
    return out


def _norm_args(norm: tuple[float, float] | None) -> tuple[float, float]:
    """(lo, span) for the kernels; span -1 means no min-max normalisation."""
    return (0.0, -1.0) if norm is None else (float(norm[0]), float(norm[1]))


def uwe(scores: Any, features: Any, kind: str, tau: float, from_logits: bool, *, out_dtype: Any,
        accum_dtype: Any, norm: tuple[float, float] | None = None) -> Any:
    out = _empty(tuple(features.shape), out_dtype, features)
    scratch, scratch_ptr = _scratch(scores, kind, accum_dtype)
    with _OnDevice(features) as stream:
        _ext().uwe(*_tensor(scores), *_tensor(features), KIND_CODES[kind], float(tau), bool(from_logits),
                   out.data_ptr(), _code_of(out), _acc64(accum_dtype), stream, *_norm_args(norm), scratch_ptr)
    del scratch
    return out


def badge_weights(scores: Any, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> Any:
    out = _empty(tuple(scores.shape), out_dtype, scores)
    with _OnDevice(scores) as stream:
        _ext().badge_weights(*_tensor(scores), bool(from_logits), out.data_ptr(), _code_of(out),
                             _acc64(accum_dtype), stream)
    return out


def badge_embedding(scores: Any, features: Any, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> Any:
    n, k = scores.shape
    out = _empty((n, k * features.shape[1]), out_dtype, features)
    weights = _empty((n, k), accum_dtype, scores)
    with _OnDevice(features) as stream:
        _ext().badge_embedding(*_tensor(scores), *_tensor(features), bool(from_logits), weights.data_ptr(),
                               out.data_ptr(), _code_of(out), _acc64(accum_dtype), stream)
    return out


def uwe_segmentation(scores: Any, features: Any, region: tuple[int, int], kind: str, tau: float,
                     from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                     norm: tuple[float, float] | None = None) -> Any:
    N, _, H, W = scores.shape
    rh, rw = (int(v) for v in region)
    R = (H // rh) * (W // rw)
    out = _empty((N * R, features.shape[1]), out_dtype, features)
    pixel_u = _empty((N * H * W,), accum_dtype, scores)
    region_w = _empty((N * R,), accum_dtype, scores)
    with _OnDevice(features) as stream:
        _ext().uwe_segmentation(*_tensor(scores), *_tensor(features), rh, rw, KIND_CODES[kind], float(tau),
                                bool(from_logits), pixel_u.data_ptr(), region_w.data_ptr(), out.data_ptr(),
                                _code_of(out), _acc64(accum_dtype), stream, *_norm_args(norm))
    return out


def uwe_detection(box_scores: Any, box_features: Any, image_ids: Any, num_images: int, kind: str, tau: float,
                  agg: str, from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                  norm: tuple[float, float] | None = None) -> Any:
    torch = _torch()
    B, K = box_scores.shape
    d, M = box_features.shape[1], int(num_images)
    device = box_scores.device
    ids = image_ids.to(device=device, dtype=torch.int64)
    order = torch.sort(ids, stable=True).indices.contiguous()
    start = torch.zeros(M + 1, dtype=torch.int64, device=device)
    start[1:] = torch.cumsum(torch.bincount(ids, minlength=M), 0)
    out = _empty((M, K * d), out_dtype, box_features)
    scratch = _empty((2 * B,), accum_dtype, box_scores)
    cls = torch.empty(B, dtype=torch.int64, device=device)
    best = torch.empty(M * K, dtype=torch.int64, device=device)
    count = torch.empty(M * K, dtype=torch.int64, device=device)
    mean = agg == "mean"
    acc = (torch.zeros(M * K * d, dtype=torch_dtype(np.dtype(accum_dtype)), device=device) if mean
           else torch.empty(0, dtype=torch_dtype(np.dtype(accum_dtype)), device=device))
    with _OnDevice(box_features) as stream:
        _ext().uwe_detection(*_tensor(box_scores), *_tensor(box_features), order.data_ptr(), start.data_ptr(), M,
                             KIND_CODES[kind], float(tau), mean, bool(from_logits), scratch.data_ptr(),
                             cls.data_ptr(), best.data_ptr(), count.data_ptr(), acc.data_ptr(), out.data_ptr(),
                             _code_of(out), _acc64(accum_dtype), stream, *_norm_args(norm))
    return out
