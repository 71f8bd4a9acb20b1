"""Embedding ops in Triton: uncertainty, UWE, BADGE weights and embeddings, segmentation and
detection aggregation (docs/internals.md, "Embedding family").

Algorithm: a program takes BLOCK_ROWS rows, loads their scores as one [rows, BLOCK_K] tile,
computes the stable-softmax statistics and the uncertainty in registers, then streams the
features in [rows, BLOCK_COLS] tiles and writes w * f. No [n, K] probability matrix.
Segmentation: one program per sample (region), looping over its pixels and feature cells.
Detection: per-box uncertainty and class in a kernel; the per-(image, class) aggregation
with torch ops in chunks of boxes.
Complexity: O(n K) for the uncertainty, O(n K d) for BADGE embeddings, O(n d) otherwise.
Shapes: scores [n, K] (K <= MAX_CLASSES), features [n, d]; segmentation [N, K, H, W] / [N, C, h, w].
kind="bald" takes scores [n, K, T]: the program reads the T pass tiles of its rows once,
summing the probabilities in a [rows, BLOCK_K] register tile (passes_mutual_information).
Accumulator: float32, float64 when any input is float64; half inputs load natively.
Ties: top class = lowest index among equal maxima; detection "max" keeps the lowest box index.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from .._abi import KIND_CODES
from ._common import (
    cast_out,
    host_interop,
    BLOCK_COLS,
    BLOCK_ROWS,
    acc_tl,
    acc_torch,
    out_torch,
    passes_mutual_information,
    pow2,
    row_uncertainty,
    tau_mode,
    weight,
)

CHECKS_FINITE = False
MAX_CLASSES = 4096  # one score row lives in registers
BOX_CHUNK = 1 << 16


def not_supported_reasons(op: str, call: Any) -> list[str]:
    key = "box_scores" if op == "uwe_detection" else "scores"
    shape = call.shapes.get(key)
    if shape is not None and len(shape) >= 2 and shape[1] > MAX_CLASSES:
        return [f"triton keeps a score row in registers: K = {shape[1]} > {MAX_CLASSES} classes"]
    return []


NORM_OFF, NORM_MINMAX, NORM_FLAT = 0, 1, 2


@triton.jit
def _normalized(u, norm_ptr, NORM: tl.constexpr):
    """Min-max map of u by norm = [lo, span] (accumulator dtype): (u - lo) / span clipped to
    [0, 1] (NORM_MINMAX), 1 for an all-equal pool (NORM_FLAT), u itself (NORM_OFF)."""
    if NORM == 1:
        lo = tl.load(norm_ptr)
        span = tl.load(norm_ptr + 1)
        return tl.minimum(tl.maximum((u - lo) / span, 0.0), 1.0).to(u.dtype)
    elif NORM == 2:
        return u * 0.0 + 1.0
    else:
        return u


def _norm_args(norm: tuple[float, float] | None, accum_dtype: Any, device: Any) -> tuple[torch.Tensor | None, int]:
    """(the [lo, span] tensor or None, NORM mode) for a kernel launch."""
    if norm is None:
        return None, NORM_OFF
    lo, span = float(norm[0]), float(norm[1])
    mode = NORM_FLAT if span == 0 else NORM_MINMAX
    return torch.tensor([lo, span], dtype=acc_torch(accum_dtype), device=device), mode


@triton.jit
def _rows_kernel(s_ptr, ssn, ssk, sst, f_ptr, sfn, sfd, out_ptr, son, sod, u_ptr, cls_ptr, norm_ptr, n, K, T, d, tau,
                 KIND: tl.constexpr, FROM_LOGITS: tl.constexpr, TAU_MODE: tl.constexpr, MODE: tl.constexpr,
                 NORM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
                 ACC: tl.constexpr):
    """MODE 0: out[i] = u_i. MODE 1: out[i, :] = w_i * f[i, :]. MODE 2: u[i] = u_i, out = w_i,
    cls[i] = top class (detection boxes). KIND 4 (bald): scores [n, K, T], pass stride sst."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < n
    cols = tl.arange(0, BLOCK_K)
    m2 = rmask[:, None] & (cols < K)[None, :]
    if KIND == 4:
        u = passes_mutual_information(s_ptr + rows[:, None] * ssn + cols[None, :] * ssk, sst, m2, cols, K, T,
                                      FROM_LOGITS, BLOCK_N, BLOCK_K, ACC)
        top = rows * 0
    else:
        z = tl.load(s_ptr + rows[:, None] * ssn + cols[None, :] * ssk, mask=m2, other=0.0).to(ACC)
        u, top = row_uncertainty(z, cols, K, KIND, FROM_LOGITS)
        u = u.to(ACC)
    if MODE == 0:
        tl.store(out_ptr + rows * son, cast_out(u, out_ptr), mask=rmask)
    elif MODE == 1:
        w = weight(_normalized(u, norm_ptr, NORM), tau, TAU_MODE)
        for d0 in range(0, d, BLOCK_D):
            dc = d0 + tl.arange(0, BLOCK_D)
            fm = rmask[:, None] & (dc < d)[None, :]
            f = tl.load(f_ptr + rows[:, None] * sfn + dc[None, :] * sfd, mask=fm, other=0.0)
            if TAU_MODE == 0:  # the features themselves, bit-exact (no multiply that could flush subnormals)
                v = cast_out(f, out_ptr)
            else:
                v = cast_out(w[:, None] * f.to(ACC), out_ptr)
            tl.store(out_ptr + rows[:, None] * son + dc[None, :] * sod, v, mask=fm)
    else:
        tl.store(u_ptr + rows, u, mask=rmask)
        tl.store(out_ptr + rows, weight(_normalized(u, norm_ptr, NORM), tau, TAU_MODE), mask=rmask)
        tl.store(cls_ptr + rows, top.to(tl.int64), mask=rmask)


@triton.jit
def _badge_kernel(s_ptr, ssn, ssk, f_ptr, sfn, sfd, out_ptr, son, sod, n, K, d,
                  FROM_LOGITS: tl.constexpr, EMBED: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    """Weights p - onehot(top) (EMBED False: out [n, K]) or class-major w_c * f (out [n, K*d])."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < n
    cols = tl.arange(0, BLOCK_K)
    m2 = rmask[:, None] & (cols < K)[None, :]
    z = tl.load(s_ptr + rows[:, None] * ssn + cols[None, :] * ssk, mask=m2, other=0.0).to(ACC)
    km = (cols < K)[None, :]
    zm = tl.where(km, z, float("-inf"))
    top = tl.argmax(zm, axis=1, tie_break_left=True)
    if FROM_LOGITS:
        mx = tl.max(zm, axis=1)
        ex = tl.where(km, tl.exp(tl.where(km, z - mx[:, None], 0.0)), 0.0)
        p = ex / tl.sum(ex, axis=1)[:, None]
    else:
        p = z
    w = tl.where(cols[None, :] == top[:, None], p - 1.0, p).to(ACC)
    if EMBED:
        for c in range(0, K):
            wc = tl.sum(tl.where(cols[None, :] == c, w, 0.0), axis=1)
            for d0 in range(0, d, BLOCK_D):
                dc = d0 + tl.arange(0, BLOCK_D)
                fm = rmask[:, None] & (dc < d)[None, :]
                f = tl.load(f_ptr + rows[:, None] * sfn + dc[None, :] * sfd, mask=fm, other=0.0).to(ACC)
                tl.store(out_ptr + rows[:, None] * son + (c * d + dc)[None, :] * sod,
                         cast_out(wc[:, None] * f, out_ptr), mask=fm)
    else:
        tl.store(out_ptr + rows[:, None] * son + cols[None, :] * sod, cast_out(w, out_ptr), mask=m2)


@triton.jit
def _segmentation_kernel(s_ptr, ssn, ssk, ssh, ssw, f_ptr, sfn, sfc, sfh, sfw, out_ptr, son, soc, norm_ptr,
                         K, C, rh, rw, ch, cw, nw, R, tau,
                         KIND: tl.constexpr, FROM_LOGITS: tl.constexpr, TAU_MODE: tl.constexpr, NORM: tl.constexpr,
                         BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
                         ACC: tl.constexpr):
    """One program per sample: mean pixel uncertainty over the region (pixels of a score row
    in tiles of BLOCK_P, classes along the tile's second axis) times the mean feature."""
    sample = tl.program_id(0)
    img = sample // R
    i = (sample % R) // nw
    j = sample % nw
    cols = tl.arange(0, BLOCK_K)
    usum = tl.zeros([BLOCK_P], dtype=ACC)
    for y in range(i * rh, (i + 1) * rh):
        for x0 in range(j * rw, (j + 1) * rw, BLOCK_P):
            px = x0 + tl.arange(0, BLOCK_P)
            pm = px < (j + 1) * rw
            m2 = pm[:, None] & (cols < K)[None, :]
            z = tl.load(s_ptr + img * ssn + y * ssh + px[:, None] * ssw + cols[None, :] * ssk,
                        mask=m2, other=0.0).to(ACC)
            u, top = row_uncertainty(z, cols, K, KIND, FROM_LOGITS)
            usum += tl.where(pm, u.to(ACC), 0.0)
    u_r = tl.sum(usum, axis=0) / (rh * rw)
    w = weight(_normalized(u_r, norm_ptr, NORM), tau, TAU_MODE)
    for c0 in range(0, C, BLOCK_C):
        cc = c0 + tl.arange(0, BLOCK_C)
        cm = cc < C
        fsum = tl.zeros([BLOCK_C], dtype=ACC)
        for y in range(i * ch, (i + 1) * ch):
            for x in range(j * cw, (j + 1) * cw):
                fsum += tl.load(f_ptr + img * sfn + cc * sfc + y * sfh + x * sfw, mask=cm, other=0.0).to(ACC)
        tl.store(out_ptr + sample * son + cc * soc, cast_out(w * (fsum / (ch * cw)), out_ptr),
                 mask=cm)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(max(n, 1), BLOCK_ROWS),)


def _launch_rows(scores: torch.Tensor, features: torch.Tensor | None, out: torch.Tensor, mode: int,
                 kind: str, tau: float, from_logits: bool, accum_dtype: Any,
                 u: torch.Tensor | None = None, cls: torch.Tensor | None = None,
                 norm: tuple[float, float] | None = None) -> None:
    n, K = scores.shape[:2]
    T, sst = (scores.shape[2], scores.stride(2)) if scores.dim() == 3 else (1, 0)
    f = features if features is not None else scores
    d = f.shape[1] if features is not None else 0
    so = out.stride() if out.dim() == 2 else (out.stride(0), 0)
    if n == 0:
        return
    norm_t, norm_mode = _norm_args(norm, accum_dtype, scores.device)
    _rows_kernel[_grid(n)](
        scores, scores.stride(0), scores.stride(1), sst, f, f.stride(0), f.stride(1), out, so[0], so[1],
        u if u is not None else out, cls if cls is not None else out, norm_t if norm_t is not None else out,
        n, K, T, d, float(tau),
        KIND=KIND_CODES[kind], FROM_LOGITS=bool(from_logits), TAU_MODE=tau_mode(tau), MODE=mode, NORM=norm_mode,
        BLOCK_N=BLOCK_ROWS, BLOCK_K=pow2(K, 2), BLOCK_D=BLOCK_COLS, ACC=acc_tl(accum_dtype))


@host_interop
def uncertainty(scores: Any, kind: str, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> torch.Tensor:
    out = torch.empty(scores.shape[0], dtype=out_torch(out_dtype), device=scores.device)
    _launch_rows(scores, None, out, 0, kind, 1.0, from_logits, accum_dtype)
    return out


@host_interop
def uwe(scores: Any, features: Any, kind: str, tau: float, from_logits: bool, *, out_dtype: Any,
        accum_dtype: Any, norm: tuple[float, float] | None = None) -> torch.Tensor:
    out = torch.empty(features.shape, dtype=out_torch(out_dtype), device=features.device)
    _launch_rows(scores, features, out, 1, kind, tau, from_logits, accum_dtype, norm=norm)
    return out


def _badge(scores: Any, features: Any, from_logits: bool, embed: bool, out_dtype: Any,
           accum_dtype: Any) -> torch.Tensor:
    n, K = scores.shape
    f = features if embed else scores
    d = f.shape[1] if embed else 0
    out = torch.empty((n, K * d if embed else K), dtype=out_torch(out_dtype), device=scores.device)
    if n == 0 or out.numel() == 0:
        return out
    _badge_kernel[_grid(n)](
        scores, scores.stride(0), scores.stride(1), f, f.stride(0), f.stride(1), out, out.stride(0),
        out.stride(1), n, K, d, FROM_LOGITS=bool(from_logits), EMBED=embed, BLOCK_N=BLOCK_ROWS,
        BLOCK_K=pow2(K, 2), BLOCK_D=BLOCK_COLS, ACC=acc_tl(accum_dtype))
    return out


@host_interop
def badge_weights(scores: Any, from_logits: bool, *, out_dtype: Any, accum_dtype: Any) -> torch.Tensor:
    return _badge(scores, None, from_logits, False, out_dtype, accum_dtype)


@host_interop
def badge_embedding(scores: Any, features: Any, from_logits: bool, *, out_dtype: Any,
                    accum_dtype: Any) -> torch.Tensor:
    return _badge(scores, features, from_logits, True, out_dtype, accum_dtype)


@host_interop
def uwe_segmentation(scores: Any, features: Any, region: tuple[int, int], kind: str, tau: float,
                     from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                     norm: tuple[float, float] | None = None) -> torch.Tensor:
    N, K, H, W = scores.shape
    _, C, h, w = features.shape
    rh, rw = int(region[0]), int(region[1])
    st = H // h
    nw = W // rw
    R = (H // rh) * nw
    out = torch.empty((N * R, C), dtype=out_torch(out_dtype), device=features.device)
    if out.numel() == 0:
        return out
    norm_t, norm_mode = _norm_args(norm, accum_dtype, scores.device)
    _segmentation_kernel[(N * R,)](
        scores, *scores.stride(), features, *features.stride(), out, out.stride(0), out.stride(1),
        norm_t if norm_t is not None else out, K, C, rh, rw, rh // st, rw // st, nw, R, float(tau),
        KIND=KIND_CODES[kind], FROM_LOGITS=bool(from_logits), TAU_MODE=tau_mode(tau), NORM=norm_mode,
        BLOCK_P=min(64, pow2(rw)), BLOCK_K=pow2(K, 2), BLOCK_C=min(64, pow2(C)), ACC=acc_tl(accum_dtype))
    return out


@host_interop
def uwe_detection(box_scores: Any, box_features: Any, image_ids: Any, num_images: int, kind: str,
                  tau: float, agg: str, from_logits: bool, *, out_dtype: Any, accum_dtype: Any,
                  norm: tuple[float, float] | None = None) -> torch.Tensor:
    B, K = box_scores.shape
    d = box_features.shape[1]
    dev = box_features.device
    acc = acc_torch(accum_dtype)
    keys = int(num_images) * K
    sums = torch.zeros((keys, d), dtype=acc, device=dev)
    if B == 0 or sums.numel() == 0:
        return sums.reshape(int(num_images), K * d).to(out_torch(out_dtype))
    u = torch.empty(B, dtype=acc, device=dev)
    w = torch.empty(B, dtype=acc, device=dev)
    cls = torch.empty(B, dtype=torch.int64, device=dev)
    _launch_rows(box_scores, None, w, 2, kind, tau, from_logits, accum_dtype, u=u, cls=cls, norm=norm)
    key = image_ids.to(device=dev, dtype=torch.int64) * K + cls
    if agg == "max":
        # largest u first, then key, both stable: the first box of each key group has the
        # largest u and, among equal u, the lowest box index
        order = torch.sort(u, descending=True, stable=True).indices
        order = order[torch.sort(key[order], stable=True).indices]
        k_sorted = key[order]
        first = torch.ones_like(k_sorted, dtype=torch.bool)
        first[1:] = k_sorted[1:] != k_sorted[:-1]
        best = order[first]
        for s in range(0, len(best), BOX_CHUNK):
            b = best[s : s + BOX_CHUNK]
            sums[key[b]] = w[b, None] * box_features[b].to(acc)
    else:
        count = torch.bincount(key, minlength=keys).to(acc)
        for s in range(0, B, BOX_CHUNK):
            e = min(B, s + BOX_CHUNK)
            sums.index_add_(0, key[s:e], w[s:e, None] * box_features[s:e].to(acc))
        sums /= count.clamp(min=1)[:, None]
    return sums.reshape(int(num_images), K * d).to(out_torch(out_dtype))
