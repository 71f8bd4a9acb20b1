"""What the Triton kernels share: per-row uncertainty arithmetic, dtype mapping, launch sizes.

Inputs arrive as torch tensors (CUDA tensors, or CPU tensors under TRITON_INTERPRET=1) of
any strides; kernels take their strides and load float16 / bfloat16 natively, converting each
tile to the accumulator (float32, float64 when any input is float64).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from .._arrays import torch_dtype

KIND_CODES = {"entropy": 0, "bvsb": 1, "margin": 2, "least_confidence": 3}
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
def row_uncertainty(z, m2, cols, KIND: tl.constexpr, FROM_LOGITS: tl.constexpr):
    """Uncertainty [rows] of a score tile z [rows, BLOCK_K] (masked by m2) in z's dtype, and
    the top class (lowest index among equal maxima)."""
    neg_inf = float("-inf")
    if FROM_LOGITS:
        zm = tl.where(m2, z, neg_inf)
        mx = tl.max(zm, axis=1)
        top = tl.argmax(zm, axis=1, tie_break_left=True)
        e = tl.where(m2, zm - mx[:, None], neg_inf)
        ex = tl.where(m2, tl.exp(e), 0.0)
        tot = tl.sum(ex, axis=1)
        second = tl.max(tl.where(cols[None, :] == top[:, None], neg_inf, e), axis=1)
        if KIND == 0:
            wsum = tl.sum(tl.where(m2, ex * e, 0.0), axis=1)
            u = tl.log(tot) - wsum / tot
            u = tl.where(u > 0, u, 0.0)
        elif KIND == 1:
            u = tl.exp(second)
        elif KIND == 2:
            u = 1.0 - (1.0 / tot - tl.exp(second) / tot)
        else:
            u = 1.0 - 1.0 / tot
    else:
        pm = tl.where(m2, z, neg_inf)
        best = tl.max(pm, axis=1)
        top = tl.argmax(pm, axis=1, tie_break_left=True)
        second = tl.max(tl.where(cols[None, :] == top[:, None], neg_inf, pm), axis=1)
        if KIND == 0:
            pos = m2 & (z > 0)
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
def weight(u, tau, TAU_MODE: tl.constexpr):
    if TAU_MODE == 0:
        return u * 0.0 + 1.0
    elif TAU_MODE == 1:
        return u
    else:
        return tl.where(u > 0, tl.exp(tau * tl.log(tl.where(u > 0, u, 1.0))), 0.0).to(u.dtype)
