"""Selection ops in Triton: k-center greedy, k-means++ seeding and min distances over dense
[n, d] rows or factored rows (docs/internals.md, "Selection family").

Algorithm: one min-distance vector D [n] (float64) on the device. Per pick a kernel computes
each row's distance to the new centre, D = min(D, dist) on unpicked rows and a partial
(max, lowest argmax) per block of BLOCK_ROWS rows; the few partials are reduced with torch
(first block holding the maximum, so the lowest index wins). A Python loop drives the picks
(uwe_kernels._driver: Ctrl-C between picks, progress every ~100 ms). Labelled rows seed D in
blocks of CENTRES centres (never [n, |labelled|]). K-means++: the pick is the one of the
sequential float64 prefix sums in index order (API.md); uwe_kernels._certified_draw forms them
in any order from chunk sums on the device and proves the pick unchanged, so only n / 2,048 + 2,048
values come to the host per pick (all of D, for _driver.prefix_pick, on a rare close call).
Complexity: O(n d) per pick (dense, UWE factors), O(n (K + d)) for BADGE factors.
Distances: exact sum((x - c)^2) for dense and UWE rows (w_i f_i formed in the accumulator);
BADGE rows |a_i|^2|f_i|^2 + |a_c|^2|f_c|^2 - 2 (a_i.a_c)(f_i.f_c), clamped at 0.
Accumulator: float32, float64 for float64 inputs; D is float64.
Ties: lowest index wins everywhere.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import triton
import triton.language as tl

from .. import _certified_draw, _driver
from .._abi import EMB_BADGE, EMB_DENSE, EMB_UWE
from ..errors import BackendUnavailable
from ._common import BLOCK_COLS, BLOCK_ROWS, acc_tl, acc_torch, host_interop, out_torch, pow2

CHECKS_FINITE = False
CENTRES = 256
MAX_CLASSES = 4096
PRUNED = "algorithm='pruned' is not implemented by triton yet; use algorithm='brute' (same picks)"


def choose_algorithm(emb: Any, centres: int | None = None, *, kcenter: bool = False, labelled: int = 0,
                     budget: int = 0) -> str:
    return "brute"


def not_supported_reasons(op: str, call: Any) -> list[str]:
    reasons = []
    if call.options.get("algorithm") == "pruned":
        reasons.append(PRUNED)
    w = call.shapes.get("weights")
    if w is not None and len(w) == 2 and w[1] > MAX_CLASSES:
        reasons.append(f"triton keeps a BADGE weight row in registers: K = {w[1]} > {MAX_CLASSES}")
    return reasons


@triton.jit
def _row_dist(rows, rmask, x_ptr, sxn, sxd, w_ptr, swn, swk, norms_ptr, c_ptr, ca_ptr, cn_ptr, k, d, K,
              MODE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr,
              ACC: tl.constexpr):
    """Squared distance [BLOCK_N] from rows to centre k. MODE (_abi.EMB_*) 0 dense, 1 UWE
    (row = w f), 2 BADGE (norm form with precomputed row norms)."""
    acc = tl.zeros([BLOCK_N], dtype=ACC)
    if MODE == 1:
        wv = tl.load(w_ptr + rows * swn, mask=rmask, other=0.0).to(ACC)
    for d0 in range(0, d, BLOCK_D):
        dc = d0 + tl.arange(0, BLOCK_D)
        dm = dc < d
        m2 = rmask[:, None] & dm[None, :]
        x = tl.load(x_ptr + rows[:, None] * sxn + dc[None, :] * sxd, mask=m2, other=0.0).to(ACC)
        c = tl.load(c_ptr + k * d + dc, mask=dm, other=0.0)
        if MODE == 2:
            acc += tl.sum(x * c[None, :], axis=1)
        else:
            if MODE == 1:
                x = x * wv[:, None]
            t = tl.where(m2, x - c[None, :], 0.0)
            acc += tl.sum(t * t, axis=1)
    if MODE == 2:
        kc = tl.arange(0, BLOCK_K)
        km = kc < K
        a = tl.load(w_ptr + rows[:, None] * swn + kc[None, :] * swk, mask=rmask[:, None] & km[None, :],
                    other=0.0).to(ACC)
        ca = tl.load(ca_ptr + k * K + kc, mask=km, other=0.0)
        da = tl.sum(a * ca[None, :], axis=1)
        nr = tl.load(norms_ptr + rows, mask=rmask, other=0.0)
        v = nr + tl.load(cn_ptr + k) - 2.0 * da * acc
        acc = tl.where(v > 0, v, 0.0)
    return acc


@triton.jit
def _step_kernel(x_ptr, sxn, sxd, w_ptr, swn, swk, norms_ptr, c_ptr, ca_ptr, cn_ptr, D_ptr, taken_ptr,
                 blk_val_ptr, blk_arg_ptr, n, d, K, UPDATE: tl.constexpr, MODE: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < n
    free = rmask & (tl.load(taken_ptr + rows, mask=rmask, other=1) == 0)
    Dv = tl.load(D_ptr + rows, mask=rmask, other=0.0)
    if UPDATE:
        dist = _row_dist(rows, rmask, x_ptr, sxn, sxd, w_ptr, swn, swk, norms_ptr, c_ptr, ca_ptr, cn_ptr,
                         0, d, K, MODE, BLOCK_N, BLOCK_D, BLOCK_K, ACC).to(tl.float64)
        Dv = tl.where(free & (dist < Dv), dist, Dv)
        tl.store(D_ptr + rows, Dv, mask=rmask)
    vals = tl.where(free, Dv, -1.0)
    best = tl.max(vals, axis=0)
    arg = tl.argmax(vals, axis=0, tie_break_left=True)
    tl.store(blk_val_ptr + pid, best)
    tl.store(blk_arg_ptr + pid, (pid * BLOCK_N + arg).to(tl.int64))


@triton.jit
def _nearest_kernel(x_ptr, sxn, sxd, w_ptr, swn, swk, norms_ptr, c_ptr, ca_ptr, cn_ptr, D_ptr, A_ptr,
                    m, offset, n, d, K, MODE: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr):
    """D = min(D, distance to each of the m centres of the block), A = the lowest index."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < n
    best = tl.load(D_ptr + rows, mask=rmask, other=0.0)
    arg = tl.load(A_ptr + rows, mask=rmask, other=0)
    for k in range(0, m):
        v = _row_dist(rows, rmask, x_ptr, sxn, sxd, w_ptr, swn, swk, norms_ptr, c_ptr, ca_ptr, cn_ptr,
                      k, d, K, MODE, BLOCK_N, BLOCK_D, BLOCK_K, ACC).to(tl.float64)
        better = v < best
        best = tl.where(better, v, best)
        arg = tl.where(better, offset + k, arg)
    tl.store(D_ptr + rows, best, mask=rmask)
    tl.store(A_ptr + rows, arg, mask=rmask)


@triton.jit
def _norms_kernel(x_ptr, sxn, sxd, w_ptr, swn, swk, out_ptr, n, d, K, MODE: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr):
    """Squared row norms: |x|^2 (dense), |w x|^2 (UWE), |a|^2 |f|^2 (BADGE)."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < n
    acc = tl.zeros([BLOCK_N], dtype=ACC)
    if MODE == 1:
        wv = tl.load(w_ptr + rows * swn, mask=rmask, other=0.0).to(ACC)
    for d0 in range(0, d, BLOCK_D):
        dc = d0 + tl.arange(0, BLOCK_D)
        m2 = rmask[:, None] & (dc < d)[None, :]
        x = tl.load(x_ptr + rows[:, None] * sxn + dc[None, :] * sxd, mask=m2, other=0.0).to(ACC)
        if MODE == 1:
            x = x * wv[:, None]
        acc += tl.sum(x * x, axis=1)
    if MODE == 2:
        kc = tl.arange(0, BLOCK_K)
        a = tl.load(w_ptr + rows[:, None] * swn + kc[None, :] * swk, mask=rmask[:, None] & (kc < K)[None, :],
                    other=0.0).to(ACC)
        acc = acc * tl.sum(a * a, axis=1)
    tl.store(out_ptr + rows, acc, mask=rmask)


# ---------------------------------------------------------------- rows as kernel arguments


class _Rows:
    """An embedding as kernel arguments; for BADGE also the row norms in the accumulator."""

    def __init__(self, emb: Any, accum_dtype: Any) -> None:
        self.acc = acc_torch(accum_dtype)
        self.ACC = acc_tl(accum_dtype)
        if hasattr(emb, "weights"):
            self.x, self.w = emb.features, emb.weights
            self.mode = EMB_BADGE if self.w.dim() == 2 else EMB_UWE
        else:
            self.x, self.w = emb, emb
            self.mode = EMB_DENSE
        self.n, self.d = self.x.shape
        self.K = self.w.shape[1] if self.mode == EMB_BADGE else 1
        self.device = self.x.device
        wst = self.w.stride()
        self.wstrides = (wst[0], wst[1] if self.mode == EMB_BADGE else 0)
        self.norms = self._norms() if self.mode == EMB_BADGE else None

    @property
    def blocks(self) -> dict[str, int]:
        return dict(BLOCK_N=BLOCK_ROWS, BLOCK_D=min(BLOCK_COLS, pow2(self.d)), BLOCK_K=pow2(self.K), ACC=self.ACC)

    def args(self) -> tuple[Any, ...]:
        return (self.x, self.x.stride(0), self.x.stride(1), self.w, *self.wstrides,
                self.norms if self.norms is not None else self.x)

    def _norms(self) -> torch.Tensor:
        out = torch.empty(self.n, dtype=self.acc, device=self.device)
        if self.n:
            _norms_kernel[(triton.cdiv(self.n, BLOCK_ROWS),)](
                self.x, self.x.stride(0), self.x.stride(1), self.w, *self.wstrides, out, self.n, self.d,
                self.K, MODE=self.mode, **self.blocks)
        return out

    def sqnorms(self) -> torch.Tensor:
        return self.norms if self.norms is not None else self._norms()

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centre block (c [m, d], ca [m, K], cn [m]) in the accumulator, contiguous."""
        x = self.x[idx].to(self.acc)
        empty = torch.zeros(1, dtype=self.acc, device=self.device)
        if self.mode == EMB_DENSE:
            return x.contiguous(), empty, empty
        if self.mode == EMB_UWE:
            return (self.w[idx].to(self.acc)[:, None] * x).contiguous(), empty, empty
        assert self.norms is not None  # mode 2 always has them
        return x.contiguous(), self.w[idx].to(self.acc).contiguous(), self.norms[idx].contiguous()


def _nearest_into(rows: _Rows, centres: _Rows, idx: torch.Tensor, D: torch.Tensor, A: torch.Tensor) -> None:
    for s in range(0, len(idx), CENTRES):
        sel = idx[s : s + CENTRES]
        c, ca, cn = centres.gather(sel)
        _nearest_kernel[(triton.cdiv(rows.n, BLOCK_ROWS),)](
            *rows.args(), c, ca, cn, D, A, len(sel), s, rows.n, rows.d, rows.K, MODE=rows.mode, **rows.blocks)


class _Selection:
    """_driver.KCenterState and KMeansState on the device: D and the picked/labelled mask (the mask also on
    the host), one kernel per centre that updates D and finds the next argmax."""

    def __init__(self, emb: Any, labelled_mask: np.ndarray, accum_dtype: Any) -> None:
        self.rows = _Rows(emb, accum_dtype)
        dev = self.rows.device
        n = self.rows.n
        self.host_taken = np.array(labelled_mask, dtype=bool, copy=True)
        self.taken = torch.from_numpy(self.host_taken.astype(np.uint8)).to(dev)
        self.D = torch.full((n,), float("inf"), dtype=torch.float64, device=dev)
        nb = triton.cdiv(max(n, 1), BLOCK_ROWS)
        self.blk_val = torch.empty(nb, dtype=torch.float64, device=dev)
        self.blk_arg = torch.empty(nb, dtype=torch.int64, device=dev)
        self.fresh = False  # blk_val / blk_arg hold the argmax of the current D
        if self.host_taken.any():
            labelled = torch.from_numpy(np.flatnonzero(self.host_taken)).to(dev)
            _nearest_into(self.rows, self.rows, labelled, self.D, torch.zeros(n, dtype=torch.int64, device=dev))
            self.D[self.taken.bool()] = 0.0

    def _step(self, pick: int | None) -> None:
        """Take `pick` (None: no new centre), update D and the block maxima over unpicked rows."""
        r = self.rows
        if pick is None:
            c = ca = cn = self.D
        else:
            self.host_taken[pick] = True
            self.taken[pick] = 1
            self.D[pick] = 0.0
            c, ca, cn = r.gather(torch.tensor([pick], device=r.device))
        _step_kernel[(len(self.blk_val),)](
            *r.args(), c, ca, cn, self.D, self.taken, self.blk_val, self.blk_arg, r.n, r.d, r.K,
            UPDATE=pick is not None, MODE=r.mode, **r.blocks)
        self.fresh = True

    def any_taken(self) -> bool:
        return bool(self.host_taken.any())

    def max_norm_row(self) -> int:
        return int(torch.argmax(self.rows.sqnorms().to(torch.float64)))

    def add_centre(self, i: int) -> None:
        self._step(i)

    def argmax(self) -> tuple[int, float]:
        if not self.fresh:
            self._step(None)
        self.fresh = False
        best = self.blk_val.max()
        b = torch.argmax((self.blk_val == best).to(torch.uint8))  # first block with the maximum
        return int(self.blk_arg[b]), float(best)

    def sample(self, r: float) -> int:
        # Chunk sums on the device, certified; the whole of D comes to the host only on a close call.
        return _certified_draw.certified_pick(self.D, r, _driver.prefix_pick)[0]

    def nth_free(self, r: float) -> int:
        return _driver.nth_free(self.host_taken, r)


def _device(emb: Any) -> Any:
    return (emb.features if hasattr(emb, "weights") else emb).device


@host_interop
def kcenter_greedy(emb: Any, labelled_mask: np.ndarray, budget: int, first: int | None, *,
                   algorithm: str, progress: Callable[[int], None] | None, accum_dtype: Any
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    if algorithm != "brute":
        raise BackendUnavailable("kcenter_greedy", {"triton": [PRUNED]})
    picks, dists = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if int(budget):
        sel = _Selection(emb, labelled_mask, accum_dtype)
        picks, dists = _driver.kcenter_greedy(sel, budget, first, progress)
    return torch.from_numpy(picks).to(_device(emb)), torch.from_numpy(dists).to(_device(emb))


@host_interop
def kmeans_pp(emb: Any, labelled_mask: np.ndarray, budget: int, seed: int, first: Any, *,
              algorithm: str, progress: Callable[[int], None] | None, accum_dtype: Any) -> torch.Tensor:
    if algorithm != "brute":
        raise BackendUnavailable("kmeans_pp", {"triton": [PRUNED]})
    picks = np.empty(0, dtype=np.int64)
    if int(budget):
        picks = _driver.kmeans_pp(_Selection(emb, labelled_mask, accum_dtype), budget, seed, first, progress)
    return torch.from_numpy(picks).to(_device(emb))


@host_interop
def min_distances(emb: Any, centers: Any, *, return_argmin: bool, out_dtype: Any, accum_dtype: Any
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    rows = _Rows(emb, accum_dtype)
    centres = _Rows(centers, accum_dtype)
    D = torch.full((rows.n,), float("inf"), dtype=torch.float64, device=rows.device)
    A = torch.zeros(rows.n, dtype=torch.int64, device=rows.device)
    if rows.n:
        _nearest_into(rows, centres, torch.arange(centres.n, device=rows.device), D, A)
    return D.to(out_torch(out_dtype)), (A if return_argmin else None)
