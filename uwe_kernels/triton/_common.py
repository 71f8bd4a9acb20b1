"""What the Triton kernels share: per-row uncertainty arithmetic, dtype mapping, launch sizes.

Inputs arrive as torch tensors (CUDA tensors, or CPU tensors under TRITON_INTERPRET=1) of
any strides; kernels take their strides and load float16 / bfloat16 natively, converting each
tile to the accumulator (float32, float64 when any input is float64).
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import numpy as np
import torch
import triton
import triton.language as tl

from .._abi import KIND_CODES  # noqa: F401  (re-exported for the kernels' callers)
from .._arrays import BFLOAT16, torch_dtype

BLOCK_ROWS = 64  # rows per program
BLOCK_COLS = 64  # feature columns per tile


def acc_tl(accum_dtype: Any) -> Any:
    return tl.float64 if np.dtype(accum_dtype) == np.float64 else tl.float32


def acc_torch(accum_dtype: Any) -> torch.dtype:
    return torch.float64 if np.dtype(accum_dtype) == np.float64 else torch.float32


def out_torch(out_dtype: Any) -> torch.dtype:
    return torch_dtype(np.dtype(out_dtype))


def pow2(x: int, floor: int = 1) -> int:
    return max(floor, triton.next_power_of_2(max(1, int(x))))


def tau_mode(tau: float) -> int:
    """0: weight 1 (tau = 0); 1: weight u (tau = 1); 2: u ** tau."""
    return 0 if tau == 0.0 else 1 if tau == 1.0 else 2


@triton.jit
def row_uncertainty(z, cols, K, KIND: tl.constexpr, FROM_LOGITS: tl.constexpr):
    """Uncertainty [rows] of a score tile z [rows, BLOCK_K] (classes >= K masked; rows
    outside the input loaded as zeros, so no lane makes NaN) in z's dtype, and the top class
    (lowest index among equal maxima)."""
    neg_inf = float("-inf")
    km = (cols < K)[None, :]
    if FROM_LOGITS:
        zm = tl.where(km, z, neg_inf)
        mx = tl.max(zm, axis=1)
        top = tl.argmax(zm, axis=1, tie_break_left=True)
        e = tl.where(km, z - mx[:, None], 0.0)
        ex = tl.where(km, tl.exp(e), 0.0)
        tot = tl.sum(ex, axis=1)
        second = tl.max(tl.where((cols[None, :] == top[:, None]) | (cols[None, :] >= K), neg_inf, e), axis=1)
        if KIND == 0:
            wsum = tl.sum(ex * e, axis=1)
            u = tl.log(tot) - wsum / tot
            u = tl.where(u > 0, u, 0.0)
        elif KIND == 1:
            u = tl.exp(second)
        elif KIND == 2:
            u = 1.0 - (1.0 / tot - tl.exp(second) / tot)
        else:
            u = 1.0 - 1.0 / tot
    else:
        pm = tl.where(km, z, neg_inf)
        best = tl.max(pm, axis=1)
        top = tl.argmax(pm, axis=1, tie_break_left=True)
        second = tl.max(tl.where(cols[None, :] == top[:, None], neg_inf, pm), axis=1)
        if KIND == 0:
            pos = km & (z > 0)
            terms = tl.where(pos, z * tl.log(tl.where(pos, z, 1.0)), 0.0)
            u = -tl.sum(terms, axis=1)
            u = tl.where(u > 0, u, 0.0)
        elif KIND == 1:
            u = tl.where(best > 0, second / tl.where(best > 0, best, 1.0), 1.0)
        elif KIND == 2:
            u = 1.0 - (best - second)
        else:
            u = 1.0 - best
    return u, top


@triton.jit
def passes_mutual_information(ptrs, sst, mask, cols, K, T, FROM_LOGITS: tl.constexpr,
                              BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr):
    """kind="bald" of BLOCK_N rows: pass t's scores are the tile at ptrs + t * sst ([rows,
    BLOCK_K], classes >= K and rows outside the input masked). One read of each pass: its
    entropy (log-sum-exp for logits) and its probabilities added to a register sum, whose
    mean gives H(mean p). u = H(mean p) - mean H(p), clamped at 0 against rounding."""
    km = (cols < K)[None, :]
    pbar = tl.zeros([BLOCK_N, BLOCK_K], dtype=ACC)
    h = tl.zeros([BLOCK_N], dtype=ACC)
    for t in range(0, T):
        z = tl.load(ptrs + t * sst, mask=mask, other=0.0).to(ACC)
        if FROM_LOGITS:
            mx = tl.max(tl.where(km, z, float("-inf")), axis=1)
            e = tl.where(km, z - mx[:, None], 0.0)
            ex = tl.where(km, tl.exp(e), 0.0)
            tot = tl.sum(ex, axis=1)
            h += tl.log(tot) - tl.sum(ex * e, axis=1) / tot
            p = ex / tot[:, None]
        else:
            p = tl.where(km, z, 0.0)
            h -= tl.sum(tl.where(p > 0, p * tl.log(tl.where(p > 0, p, 1.0)), 0.0), axis=1)
        pbar += p
    pbar = pbar / T  # divided in ACC: a float32 1 / T would round float64 sums
    h_mean = -tl.sum(tl.where(pbar > 0, pbar * tl.log(tl.where(pbar > 0, pbar, 1.0)), 0.0), axis=1)
    u = (h_mean - h / T).to(ACC)
    return tl.where(u > 0, u, 0.0)


@triton.jit
def weight(u, tau, TAU_MODE: tl.constexpr):
    if TAU_MODE == 0:
        return u * 0.0 + 1.0
    elif TAU_MODE == 1:
        return u
    else:
        return tl.where(u > 0, tl.exp(tau * tl.log(tl.where(u > 0, u, 1.0))), 0.0).to(u.dtype)


def _to_tensor(x: Any) -> Any:
    if isinstance(x, np.ndarray) and x.dtype != np.bool_:  # a labelled mask stays on the host
        if any(s < 0 for s in x.strides):  # torch.from_numpy refuses negative strides
            x = x.copy()
        with warnings.catch_warnings():  # read-only arrays (memmaps): kernels never write inputs
            warnings.simplefilter("ignore", UserWarning)
            if x.dtype == BFLOAT16:
                return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
            return torch.from_numpy(x)
    if hasattr(x, "weights") and hasattr(x, "features"):
        return type(x)(_to_tensor(x.weights), _to_tensor(x.features))
    return x


def _to_host(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        return t.view(torch.int16).numpy().view(BFLOAT16) if t.dtype == torch.bfloat16 else t.numpy()
    if isinstance(x, tuple):
        return tuple(_to_host(v) for v in x)
    return x


def host_interop(op: Callable[..., Any]) -> Callable[..., Any]:
    """Let an op take host numpy arrays too (the interpreter's test path): they run as CPU
    tensors and the results come back as numpy. Tensors pass through untouched."""

    @functools.wraps(op)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        host = any(isinstance(a, np.ndarray) or isinstance(getattr(a, "features", None), np.ndarray)
                   for a in args[:2])
        if not host:
            return op(*args, **kwargs)
        return _to_host(op(*(_to_tensor(a) if i < 3 else a for i, a in enumerate(args)), **kwargs))

    return wrapper


@triton.jit
def cast_out(v, out_ptr):
    """v in the element type of out_ptr. bfloat16 is rounded to nearest even here, on the
    float32 bits, so the result does not depend on how the target (or the interpreter, which
    truncates) rounds the final conversion."""
    if v.dtype == out_ptr.dtype.element_ty:
        return v
    elif out_ptr.dtype.element_ty == tl.bfloat16:
        bits = v.to(tl.float32).to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(tl.bfloat16)
    else:
        return v.to(out_ptr.dtype.element_ty)
