"""The cpp backend's embedding ops (docs/internals.md, "Ops and their backend signatures").

Thin adapters over `_ext_cpu`: they pass numpy buffers as they are (any strides, memmaps,
float16 / bfloat16 read 16 bits at a time), allocate the output, and turn the first bad rows
the kernels report into the errors `validation.check_values` would raise. The kernels check
NaN / inf (and negative probabilities) inside their own pass, hence CHECKS_FINITE; the fused
UWE kernel also reports whether an output rounded to inf, hence REPORTS_OVERFLOW (no pass over
the result afterwards).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _lazy, _scale
from .._abi import KIND_CODES, dtype_code
from ..errors import NonFiniteError
from ..validation import CHUNK_ROWS, _raise_negative

CHECKS_FINITE = True
REPORTS_OVERFLOW = True


def _ext() -> Any:
    return _lazy.load("cpu")


def _code(arr: np.ndarray) -> int:
    return dtype_code(arr.dtype)


def _acc64(accum_dtype: Any) -> bool:
    return bool(np.dtype(accum_dtype) == np.float64)


def _raise_bad(bad: tuple[int, int, int], scores: str, features: str | None = None) -> None:
    """Raise as `check_values` would: the scores first (non-finite before negative within a
    chunk of CHUNK_ROWS rows), then the features."""
    nonfinite, negative, bad_features = bad
    if nonfinite >= 0 and (negative < 0 or nonfinite // CHUNK_ROWS <= negative // CHUNK_ROWS):
        raise NonFiniteError(scores, nonfinite)
    if negative >= 0:
        _raise_negative(scores, negative)
    if bad_features >= 0 and features is not None:
        raise NonFiniteError(features, bad_features)


def uncertainty(scores: np.ndarray, kind: str, from_logits: bool, *, out_dtype: Any,
                accum_dtype: Any) -> np.ndarray:
    out = np.empty(scores.shape[0], dtype=out_dtype)
    bad = _ext().uncertainty(scores, _code(scores), KIND_CODES[kind], bool(from_logits), out, _code(out),
                             _acc64(accum_dtype))
    _raise_bad(bad, "scores")
    return out


def _norm_args(norm: tuple[float, float] | None) -> tuple[float, float]:
    """(lo, span) for the kernels; span -1 means no min-max normalisation."""
    return (0.0, -1.0) if norm is None else (float(norm[0]), float(norm[1]))


def uwe(scores: np.ndarray, features: np.ndarray, kind: str, tau: float, from_logits: bool, *,
        out_dtype: Any, accum_dtype: Any, norm: tuple[float, float] | None = None) -> np.ndarray:
    out = np.empty(features.shape, dtype=out_dtype)
    nonfinite, negative, bad_features, overflowed = _ext().uwe(
        scores, _code(scores), features, _code(features), KIND_CODES[kind], float(tau), bool(from_logits), out,
        _code(out), _acc64(accum_dtype), *_norm_args(norm))
    _raise_bad((nonfinite, negative, bad_features), "scores", "features")
    if overflowed:
        raise _scale.RowsOverflowed(out)
    return out


def badge_weights(scores: np.ndarray, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> np.ndarray:
    out = np.empty(scores.shape, dtype=out_dtype)
    bad = _ext().badge_weights(scores, _code(scores), bool(from_logits), out, _code(out), _acc64(accum_dtype))
    _raise_bad(bad, "scores")
    return out


def badge_embedding(scores: np.ndarray, features: np.ndarray, from_logits: bool, *, out_dtype: Any,
                    accum_dtype: Any) -> np.ndarray:
    n, k = scores.shape
    out = np.empty((n, k * features.shape[1]), dtype=out_dtype)
    bad = _ext().badge_embedding(scores, _code(scores), features, _code(features), bool(from_logits), out,
                                 _code(out), _acc64(accum_dtype))
    _raise_bad(bad, "scores", "features")
    return out


def uwe_segmentation(scores: np.ndarray, features: np.ndarray, region: tuple[int, int], kind: str, tau: float,
                     from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                     norm: tuple[float, float] | None = None) -> np.ndarray:
    N, _, H, W = scores.shape
    rh, rw = (int(v) for v in region)
    out = np.empty((N * (H // rh) * (W // rw), features.shape[1]), dtype=out_dtype)
    bad = _ext().uwe_segmentation(scores, _code(scores), features, _code(features), rh, rw, KIND_CODES[kind],
                                  float(tau), bool(from_logits), out, _code(out), _acc64(accum_dtype),
                                  *_norm_args(norm))
    _raise_bad(bad, "scores", "features")
    return out


def uwe_detection(box_scores: np.ndarray, box_features: np.ndarray, image_ids: np.ndarray, num_images: int,
                  kind: str, tau: float, agg: str, from_logits: bool, *, out_dtype: Any,
                  accum_dtype: Any, norm: tuple[float, float] | None = None) -> np.ndarray:
    k, d = box_scores.shape[1], box_features.shape[1]
    out = np.empty((int(num_images), k * d), dtype=out_dtype)
    ids = np.ascontiguousarray(image_ids, dtype=np.int64)
    bad = _ext().uwe_detection(box_scores, _code(box_scores), box_features, _code(box_features), ids,
                               int(num_images), KIND_CODES[kind], float(tau), agg == "mean", bool(from_logits),
                               out, _code(out), _acc64(accum_dtype), *_norm_args(norm))
    _raise_bad(bad, "box_scores", "box_features")
    return out
