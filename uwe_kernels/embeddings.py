"""Public embedding functions: uncertainty, UWE, BADGE gradient embeddings, segmentation
and detection aggregation (API.md, "Uncertainty and embeddings")."""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _arrays, _normalize, _scale
from ._arrays import FLOAT_NAMES, Prepared, prepare
from ._dispatch import run
from .factored import FactoredEmbedding, of_embedding
from .validation import (
    ROW_KINDS,
    check_float,
    check_int,
    check_kind,
    check_ndim,
    check_tau,
    check_values,
    features_2d,
    scores_2d,
    scores_of_kind,
)

AGGREGATIONS = ("max", "mean")


def _out_dtype(out_dtype: Any, *inputs: Prepared) -> np.dtype:
    if out_dtype is None:
        return _arrays.result_dtype(*(p.dtype for p in inputs))
    dt = np.dtype(_arrays.numpy_dtype(out_dtype) if _arrays.is_torch_dtype(out_dtype) else out_dtype)
    if not _arrays.is_float(dt):
        raise TypeError(f"out_dtype must be {FLOAT_NAMES}, got {dt}")
    return dt


def _score_checks(p: Prepared, from_logits: bool, name: str = "scores") -> list[tuple[str, Prepared, bool]]:
    return [(name, p, not from_logits)]


def uncertainty(
    scores: Any,  # [n, K], or [n, K, T] for kind="bald"
    kind: str = "entropy",
    *,
    from_logits: bool = True,
    normalize: str | None = None,
    pool: Any = None,
    out_dtype: Any = None,
    backend: str = "auto",
) -> Any:
    """Per-row uncertainty of class scores.

    Args:
        scores: [n, K] logits (from_logits=True) or probabilities / per-class scores >= 0;
            for kind="bald" [n, K, T], T stochastic forward passes (MC dropout, an ensemble),
            softmaxed over K per pass (from_logits=True) or probabilities as given.
        kind: "entropy" (natural log), "bvsb" (p_second / p_best, 1 = most uncertain),
            "margin" (1 - (p_best - p_second)), "least_confidence" (1 - p_best) or "bald"
            (mutual information H(mean_t p_t) - mean_t H(p_t), natural log; rounding that
            would make it negative when the passes agree is clamped to 0).
        normalize: None, or "minmax" (as the authors' code): u' = (u - min u) / (max u - min u)
            with min and max over the `pool` rows (all rows when pool is None), clipped to
            [0, 1]; when every pool row has the same u, u' = 1 for every row.
        pool: row indices or a bool mask [n] that min and max run over; only with normalize.
    Returns:
        [n] in the scores' dtype (or out_dtype), in the caller's library and device.
    Raises:
        TypeError for non-float scores; ValueError for K < 2, scores not 2-D (3-D [n, K, T], T >= 1,
        for kind="bald"), NaN/inf (naming the row),
        negative probabilities, an unknown kind. BackendUnavailable when no backend can run.
    """
    kind = check_kind(kind)
    p = scores_of_kind(scores, kind)
    normalize = _normalize.check(normalize, pool)
    mask = _normalize.pool_mask(pool, p.shape[0])
    out = _out_dtype(out_dtype, p)
    acc = _arrays.accum_dtype(p.dtype)
    result = _uncertainty_of(p, kind, from_logits, acc if normalize else out, acc, backend)
    if normalize:
        result = _cast(_normalize.apply(result, _normalize.minmax(result, mask)), out)
    return _arrays.restore(result, p)


def _uncertainty_of(p: Prepared, kind: str, from_logits: bool, out: np.dtype, acc: np.dtype, backend: str) -> Any:
    _, result = run(
        "uncertainty", backend, [("scores", p)],
        lambda fn: fn(p.data, kind, bool(from_logits), out_dtype=out, accum_dtype=acc),
        value_checks=_score_checks(p, from_logits),
        options={"kind": kind},
    )
    return result


def _cast(x: Any, dtype: np.dtype) -> Any:
    if _arrays.is_torch(x):
        return x.to(_arrays.torch_dtype(dtype))
    return np.asarray(x).astype(dtype, copy=False)


def _norm_of_rows(p: Prepared, kind: str, from_logits: bool, acc: np.dtype, backend: str, normalize: str | None,
                  pool: Any, rows: str = "rows") -> dict[str, Any]:
    """{"norm": (lo, span)} for a backend op when normalize is set (one pass over the scores for
    the uncertainty, none over the features), else {}."""
    if not normalize:
        return {}
    mask = _normalize.pool_mask(pool, p.shape[0], rows)
    u = _uncertainty_of(p, kind, from_logits, acc, acc, backend)
    return {"norm": _normalize.minmax(u, mask)}


def _scores_and_features(scores: Any, features: Any, kind: str | None = None) -> tuple[Prepared, Prepared]:
    ps = scores_2d(scores) if kind is None else scores_of_kind(scores, kind)
    pf = features_2d(features, ps.shape[0])
    return ps, pf


def uwe(
    scores: Any,  # [n, K], or [n, K, T] for kind="bald"
    features: Any,  # [n, d]
    kind: str = "entropy",
    tau: float = 1.0,
    *,
    from_logits: bool = True,
    normalize: str | None = None,
    pool: Any = None,
    out_dtype: Any = None,
    backend: str = "auto",
) -> Any:
    """Uncertainty-weighted embedding (paper Eq. 4 with Section 5.2's power):
    row i = u_i ** tau * features[i], in one fused pass.

    normalize="minmax" uses u' of `uncertainty(..., normalize="minmax", pool=pool)` in place of
    u (as the authors' code does); min and max take one extra pass over the scores only.

    Returns:
        [n, d] in the common dtype of scores and features (or out_dtype).
    Raises:
        as `uncertainty`, plus ValueError for mismatched rows, tau < 0, and rows beyond the
        default output dtype's range (e.g. float16 features near 6e4 times u > 1): pass a
        wider out_dtype. An explicit out_dtype rounds as numpy's astype (inf beyond range).
    """
    kind, tau = check_kind(kind), check_tau(tau)
    ps, pf = _scores_and_features(scores, features, kind)
    normalize = _normalize.check(normalize, pool)
    out = _out_dtype(out_dtype, ps, pf)
    acc = _arrays.accum_dtype(ps.dtype, pf.dtype)
    norm = _norm_of_rows(ps, kind, from_logits, acc, backend, normalize, pool)

    def call(fn: Any) -> Any:
        module = sys.modules[fn.__module__]
        # The features' largest magnitude comes free with their check, unless the op checks
        # values in its own pass: then the bound uses the dtype's limit and reads the result,
        # unless the op reports an overflow as it writes (REPORTS_OVERFLOW).
        largest = float(np.finfo(pf.dtype).max)
        if not getattr(module, "CHECKS_FINITE", False):
            check_values(ps, "scores", nonnegative=not from_logits)
            largest = check_values(pf, "features")
        overflowed = False
        with np.errstate(over="ignore"):  # an overflow is reported below, not warned about
            try:
                result = fn(ps.data, pf.data, kind, tau, bool(from_logits), out_dtype=out, accum_dtype=acc,
                            **norm)
            except _scale.RowsOverflowed as seen:
                result, overflowed = seen.result, True
        if (out_dtype is None and not overflowed and not getattr(module, "REPORTS_OVERFLOW", False)
                and _scale.weighted_rows_may_overflow(kind, ps.shape[1], tau, largest, out)):
            overflowed = _scale.has_inf(result)
        # An explicit out_dtype rounds as numpy's astype does (inf beyond its range); the
        # default dtype is not one the caller chose to overflow in, so that raises.
        if out_dtype is None and overflowed:
            raise ValueError(f"u ** tau * features exceeds {out.name}'s range (the inputs are finite): "
                             "pass out_dtype=np.float32 (or float64), or a smaller tau")
        return result

    _, result = run("uwe", backend, [("scores", ps), ("features", pf)], call, options={"kind": kind})
    return _arrays.restore(result, pf)


def badge_embedding(
    scores: Any,  # [n, K]
    features: Any,  # [n, d]
    *,
    from_logits: bool = True,
    out_dtype: Any = None,
    backend: str = "auto",
) -> Any:
    """BADGE's gradient embedding (paper Eq. 1), class-major: block c of row i is
    (p_ic - [c == yhat_i]) * features[i], yhat_i = argmax (lowest class on ties).

    Memory: n * K * d values. Prefer `badge_factored` (n * (K + d)) for selection.
    """
    ps, pf = _scores_and_features(scores, features)
    out = _out_dtype(out_dtype, ps, pf)
    acc = _arrays.accum_dtype(ps.dtype, pf.dtype)
    _, result = run(
        "badge_embedding", backend, [("scores", ps), ("features", pf)],
        lambda fn: fn(ps.data, pf.data, bool(from_logits), out_dtype=out, accum_dtype=acc),
        value_checks=_score_checks(ps, from_logits) + [("features", pf, False)],
    )
    return _arrays.restore(result, pf)


def uwe_factored(
    scores: Any,  # [n, K], or [n, K, T] for kind="bald"
    features: Any,  # [n, d]
    kind: str = "entropy",
    tau: float = 1.0,
    *,
    from_logits: bool = True,
    normalize: str | None = None,
    pool: Any = None,
    backend: str = "auto",
) -> FactoredEmbedding:
    """UWE kept as factors: weights u ** tau ([n], accumulation precision) and the features
    as given (not copied). Its dtype and `.materialize()` equal `uwe(...)`'s (normalize and pool
    as there). Selection reads the unrounded products, i.e. the rows of
    `uwe(..., out_dtype=np.float32)` for half inputs.
    Memory: n extra values."""
    kind, tau = check_kind(kind), check_tau(tau)
    ps, pf = _scores_and_features(scores, features, kind)
    acc = _arrays.accum_dtype(ps.dtype, pf.dtype)
    u = uncertainty(scores, kind, from_logits=from_logits, normalize=normalize, pool=pool, out_dtype=acc,
                    backend=backend)
    weights = u ** tau if tau != 1.0 else u
    return of_embedding(weights, features, _out_dtype(None, ps, pf))


def badge_factored(
    scores: Any,  # [n, K]
    features: Any,  # [n, d]
    *,
    from_logits: bool = True,
    backend: str = "auto",
) -> FactoredEmbedding:
    """BADGE's gradient embedding kept as factors: weights p - onehot ([n, K], accumulation
    precision) and the features as given. `.materialize()` equals `badge_embedding(...)`.
    Memory: n * K extra values instead of n * K * d."""
    ps, pf = _scores_and_features(scores, features)
    acc = _arrays.accum_dtype(ps.dtype, pf.dtype)
    _, weights = run(
        "badge_weights", backend, [("scores", ps)],
        lambda fn: fn(ps.data, bool(from_logits), out_dtype=acc, accum_dtype=acc),
        value_checks=_score_checks(ps, from_logits),
    )
    return of_embedding(_arrays.restore(weights, ps), features, _out_dtype(None, ps, pf))


def _resolve_region(region: Any, H: int, W: int, stride: int) -> tuple[int, int]:
    if region is None:
        return H, W
    try:
        sizes = [check_int(v, "region") for v in region]
    except TypeError:
        raise TypeError(f"region must be None or a pair of ints (rh, rw), got {region!r}") from None
    if len(sizes) != 2:
        raise ValueError(f"region must be a pair (rh, rw) of score pixels, got {len(sizes)} values: {region!r}")
    rh, rw = sizes
    problems = []
    if rh <= 0 or rw <= 0:
        problems.append("both sizes must be positive")
    else:
        if H % rh or W % rw:
            problems.append(f"it must divide the {H}x{W} score map")
        if rh % stride or rw % stride:
            problems.append(f"both sizes must be multiples of the feature stride {stride}")
    if problems:
        raise ValueError(f"region {rh}x{rw} does not fit: " + "; ".join(problems))
    return rh, rw


def uwe_segmentation(
    scores: Any,  # [N, K, H, W]
    features: Any,  # [N, C, h, w]
    *,
    region: tuple[int, int] | None = None,
    kind: str = "entropy",
    tau: float = 1.0,
    from_logits: bool = True,
    normalize: str | None = None,
    pool: Any = None,
    out_dtype: Any = None,
    backend: str = "auto",
) -> Any:
    """Per-image or per-region UWE for segmentation (paper Eq. 6-7).

    Mean pixel uncertainty over each region times the mean feature over the region's cells
    at feature resolution, to the power tau. H = s*h, W = s*w for an integer stride s.
    normalize="minmax" rescales the region uncertainties u_r as `uncertainty` does, min and max
    over the `pool` samples (indices or a bool mask over the N*R output rows; all when None).
    Returns:
        [N*R, C]; sample n*R + i*(W//rw) + j covers rows [i*rh, (i+1)*rh), cols [j*rw, (j+1)*rw).
    """
    ps, pf = prepare(scores, "scores"), prepare(features, "features")
    check_float(ps, "scores")
    check_float(pf, "features")
    check_ndim(ps, "scores", 4, "[N, K, H, W]")
    check_ndim(pf, "features", 4, "[N, C, h, w]")
    N, K, H, W = ps.shape
    Nf, _, h, w = pf.shape
    if K < 2:
        raise ValueError(f"scores must have K >= 2 classes (got shape {ps.shape})")
    if Nf != N:
        raise ValueError(f"features has {Nf} images but scores has {N}; they must match")
    if h == 0 or w == 0 or H % h or W % w or H // h != W // w:
        raise ValueError(
            f"features of size {h}x{w} must tile the {H}x{W} score map at one integer stride "
            "(H = s*h and W = s*w)"
        )
    stride = H // h
    rh, rw = _resolve_region(region, H, W, stride)
    kind, tau = check_kind(kind, ROW_KINDS), check_tau(tau)
    normalize = _normalize.check(normalize, pool)
    out = _out_dtype(out_dtype, ps, pf)
    acc = _arrays.accum_dtype(ps.dtype, pf.dtype)
    norm = _region_norm(ps, (rh, rw), kind, from_logits, acc, backend, pool) if normalize else {}
    _, result = run(
        "uwe_segmentation", backend, [("scores", ps), ("features", pf)],
        lambda fn: fn(ps.data, pf.data, (rh, rw), kind, tau, bool(from_logits), out_dtype=out, accum_dtype=acc,
                      **norm),
        value_checks=_score_checks(ps, from_logits) + [("features", pf, False)],
        options={"region": (rh, rw), "stride": stride},
    )
    return _arrays.restore(result, pf)


def _region_norm(ps: Prepared, region: tuple[int, int], kind: str, from_logits: bool, acc: np.dtype,
                 backend: str, pool: Any) -> dict[str, Any]:
    """{"norm": (lo, span)} of the region uncertainties: pixel u from one pass over the scores
    (as [N*H*W, K] rows), averaged per region."""
    N, K, H, W = ps.shape
    rh, rw = region
    mask = _normalize.pool_mask(pool, N * (H // rh) * (W // rw), "samples")
    data = ps.data
    pixels = (data.permute(0, 2, 3, 1) if _arrays.is_torch(data) else np.moveaxis(data, 1, 3)).reshape(-1, K)
    u = _uncertainty_of(prepare(pixels, "scores"), kind, from_logits, acc, acc, backend)
    u_r = u.reshape(N, H // rh, rh, W // rw, rw).mean((2, 4)).reshape(-1)
    return {"norm": _normalize.minmax(u_r, mask)}


def _image_ids(image_ids: Any, n_boxes: int, num_images: int, like: Prepared) -> Any:
    p = prepare(image_ids, "image_ids")
    if p.ndim != 1 or p.shape[0] != n_boxes:
        raise ValueError(f"image_ids must be [B] with B = {n_boxes} boxes, got shape {p.shape}")
    if p.device != like.device:
        raise ValueError(f"image_ids is on {p.device} but box_scores is on {like.device}")
    if p.on_cpu:
        ids = np.asarray(p.data)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"image_ids must hold integers, got dtype {ids.dtype}")
        bad = np.flatnonzero((ids < 0) | (ids >= num_images))
        if bad.size:
            raise ValueError(
                f"image_ids[{int(bad[0])}] = {int(ids[bad[0]])} is out of range for num_images={num_images}"
            )
        return ids.astype(np.int64, copy=False)
    torch = __import__("torch")
    t = p.data
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"image_ids must hold integers, got dtype {t.dtype}")
    bad = torch.nonzero((t < 0) | (t >= num_images))
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(f"image_ids[{i}] = {int(t[i])} is out of range for num_images={num_images}")
    return t.to(torch.int64)


def uwe_detection(
    box_scores: Any,  # [B, K]
    box_features: Any,  # [B, d]
    image_ids: Any,  # [B] ints in [0, num_images)
    num_images: int,
    *,
    kind: str = "bvsb",
    tau: float = 1.0,
    agg: str = "max",
    from_logits: bool = False,
    normalize: str | None = None,
    pool: Any = None,
    out_dtype: Any = None,
    backend: str = "auto",
) -> Any:
    """Class-wise aggregated box UWEs per image (paper Eq. 9; agg="mean" is Appendix 7.2).

    Returns:
        [num_images, K*d]: block c of image m is u_b**tau * f_b for the box of class c with the
        largest u (agg="max", lowest box index on ties) or the mean over those boxes
        (agg="mean"); zeros when the image has no box of class c.
    normalize="minmax" rescales the box uncertainties as `uncertainty` does, min and max over
    the `pool` boxes (indices or a bool mask over the B boxes; all when None); the box kept by
    agg="max" is still the one of largest u.
    """
    ps = scores_2d(box_scores, "box_scores")
    pf = features_2d(box_features, ps.shape[0], "box_features")
    num_images = check_int(num_images, "num_images")
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    if agg not in AGGREGATIONS:
        raise ValueError(f"unknown agg {agg!r}; choose from {', '.join(AGGREGATIONS)}")
    ids = _image_ids(image_ids, ps.shape[0], num_images, ps)
    kind, tau = check_kind(kind, ROW_KINDS), check_tau(tau)
    normalize = _normalize.check(normalize, pool)
    out = _out_dtype(out_dtype, ps, pf)
    acc = _arrays.accum_dtype(ps.dtype, pf.dtype)
    norm = _norm_of_rows(ps, kind, from_logits, acc, backend, normalize, pool, "boxes")
    _, result = run(
        "uwe_detection", backend, [("box_scores", ps), ("box_features", pf)],
        lambda fn: fn(ps.data, pf.data, ids, num_images, kind, tau, agg, bool(from_logits),
                      out_dtype=out, accum_dtype=acc, **norm),
        value_checks=_score_checks(ps, from_logits, "box_scores") + [("box_features", pf, False)],
        options={"agg": agg},
    )
    return _arrays.restore(result, pf)
