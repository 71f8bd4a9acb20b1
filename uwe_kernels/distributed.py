"""Exact k-center greedy and k-means++ seeding over a pool sharded across torch.distributed
ranks (gloo on CPUs, NCCL on GPUs).

Layout: rank q of the group holds rows [offset_q, offset_q + n_q) of the pool, shards in rank
order, sizes free (zero included). Labelled rows are given per rank as local indices or a
local bool mask. Every rank returns the same GLOBAL picks, equal to the single-process
`uwe_kernels.kcenter_greedy` / `kmeans_pp` on the concatenated pool.

Algorithm (per pick): every rank keeps D [n_q] (float64, squared distance to the nearest
labelled row or pick) and updates it with the registry's `min_distances` op against the new
centre; the global argmax is reduced from an all_gather of (value, global index) pairs
(lowest global index wins ties); the owner broadcasts the chosen row as raw bytes, so every
rank measures distances to bit-identical centres. Labelled rows seed D in blocks of
LABELLED_BLOCK rows broadcast by their owners (memory O(n_q + block * d)).
Communication per pick: O(world) floats (all_gather) + one row (broadcast). Compute per pick:
O(n_q d) on each rank.

KCG look-ahead: each round gathers the top `lookahead` candidates of every rank. After the
round's argmax is accepted, the next candidate c is accepted without a new all_gather when its
exact D after the updates (computed by its owner) is strictly above every other row's upper
bound: the stale values of the other candidates and each rank's bound for its unlisted rows.
D only decreases, so c is then provably the unique argmax: one broadcast per extra pick.

KM++ sampling: target = r_t * S, pick the smallest unpicked i with P_i > target, where P is the
sequential float64 prefix sum D_0 + D_1 + ... in global index order and S its last value (the
single-process rule). Shard totals summed in rank order are NOT that chain. Fast path: every
rank gathers the local chain totals, the approximate carries c^_q and the owner's prefix
values differ from the sequential ones by at most `_chain_error_bound` (Higham's gamma_n
bound, any summation order); the owner accepts its index only when the target falls more
than twice that bound inside the interval (P_{i-1}, P_i]. Otherwise the exact path runs the chain
rank by rank (one broadcast of the carry per non-empty shard) and picks with the exact
sequential values. Either way the pick is the one of the sequential chain, bit for bit, for the
same D values.
Failures: a local error is held and sent as a flag on the next collective, so every rank
raises DistributedSelectionError at the same point; a rank that never arrives is bounded by
the process group's timeout.
Ties: lowest global index. Accumulators: D in float64 (the kernel accumulates in float32, or
float64 for float64 input); prefix sums in float64.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from . import _arrays, rng
from .factored import FactoredArrays, FactoredEmbedding
from .registry import Call, resolve
from .validation import check_float, check_index, check_int, check_ndim, check_values, labelled_mask

__all__ = ["DistributedSelectionError", "kcenter_greedy", "kmeans_pp"]

LABELLED_BLOCK = 1024
SETTINGS_SHAPE = ("budget", "lookahead", "seed", "seed", "first")
DEFAULT_LOOKAHEAD = 8
_U = 2.0**-53
_NONE = -1.0


# torch renamed all_gather_into_tensor to all_gather_single; take whichever this torch has.
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class DistributedSelectionError(RuntimeError):
    """Raised on every rank when one rank failed (the message names it and its error)."""


@dataclass
class _Stats:
    """Counters a caller can ask for with `stats={}`."""

    picks: int = 0
    rounds: int = 0
    lookahead_accepted: int = 0
    lookahead_rejected: int = 0
    exact_prefix_picks: int = 0
    collectives: int = 0
    comm_s: float = 0.0
    total_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["comm_s_per_pick"] = self.comm_s / self.picks if self.picks else 0.0
        return out


class _Comm:
    """Collectives on one group, each timed, with errors turned into a raise on every rank."""

    def __init__(self, group: Any, device: torch.device, stats: _Stats, sync_timing: bool) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call dist.init_process_group first")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        nccl = dist.get_backend(group) == "nccl"
        self.device = device if nccl else torch.device("cpu")
        self.stats = stats
        self.sync = sync_timing and self.device.type == "cuda"

    def _timed(self, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        if self.sync:
            torch.cuda.synchronize(self.device)
        self.stats.comm_s += time.perf_counter() - t0
        self.stats.collectives += 1

    def gather(self, values: np.ndarray | list[float]) -> np.ndarray:
        """all_gather of a float64 vector of the same length on every rank -> [world, k]."""
        local = torch.as_tensor(np.asarray(values, dtype=np.float64)).to(self.device)
        out = torch.empty(self.world * local.numel(), dtype=torch.float64, device=self.device)
        self._timed(lambda: _all_gather(out, local, group=self.group))
        return out.cpu().numpy().reshape(self.world, -1)

    def broadcast(self, buf: torch.Tensor, src: int) -> torch.Tensor:
        buf = buf.to(self.device)
        self._timed(lambda: dist.broadcast(buf, group=self.group, group_src=src))
        return buf

    def raise_if_failed(self, error: BaseException | None) -> None:
        """Every rank calls this at the same point: all ranks raise if any rank failed."""
        flags = self.gather([1.0 if error is not None else 0.0])[:, 0]
        if not flags.any():
            return
        self.raise_failed(flags, error)

    def raise_failed(self, flags: np.ndarray, error: BaseException | None) -> None:
        messages: list[Any] = [None] * self.world
        mine = f"{type(error).__name__}: {error}" if error is not None else None
        dist.all_gather_object(messages, mine, group=self.group)
        failed = [q for q in range(self.world) if flags[q]]
        text = "; ".join(f"rank {q} failed: {messages[q]}" for q in failed)
        raise DistributedSelectionError(text) from error


class _Shard:
    """One rank's rows (dense or factored) and its distance kernel from the registry."""

    def __init__(self, local_emb: Any, backend: str) -> None:
        if isinstance(local_emb, FactoredEmbedding):
            pw, pf = local_emb.prepared()
            self.parts = [pw, pf]
            self.factored = True
            self.k = pw.shape[1] if pw.ndim == 2 else 0
        else:
            p = _arrays.prepare(local_emb, "local_emb")
            check_float(p, "local_emb")
            check_ndim(p, "local_emb", 2, "[n, d] (or a FactoredEmbedding)")
            self.parts = [p]
            self.factored = False
            self.k = 0
        self.like = self.parts[-1]
        self.n = self.like.shape[0]
        self.d = self.like.shape[1]
        self.device = torch.device("cpu") if self.like.on_cpu else self.like.data.device
        self.acc = _arrays.accum_dtype(*(p.dtype for p in self.parts))
        self.row_widths = [int(np.prod(p.shape[1:], dtype=np.int64)) for p in self.parts]
        self.row_nbytes = sum(w * p.dtype.itemsize for w, p in zip(self.row_widths, self.parts))
        self.fn: Callable[..., Any] | None = None
        self.backend = backend

    def signature(self) -> list[float]:
        codes = [float(_arrays.FLOAT_DTYPES.index(p.dtype)) for p in self.parts]
        return [float(self.factored), float(self.k), float(self.d), *(codes + [-1.0] * (2 - len(codes)))]

    def check_values(self) -> None:
        names = ["weights", "features"] if self.factored else ["local_emb"]
        for name, p in zip(names, self.parts):
            check_values(p, name)

    def resolve(self) -> None:
        if self.n == 0:
            return
        call = Call(
            op="min_distances",
            device=self.like.device,
            dtypes=tuple(p.dtype for p in self.parts) * 2,
            shapes={f"emb.{i}": p.shape for i, p in enumerate(self.parts)},
            options={"factored": self.factored, "n": self.n},
        )
        self.name, self.fn = resolve("min_distances", call, self.backend)

    def _data(self) -> Any:
        if self.factored:
            return FactoredArrays(self.parts[0].data, self.parts[1].data)
        return self.parts[0].data

    def rows_bytes(self, rows: np.ndarray) -> torch.Tensor:
        """Rows `rows` (local indices) as raw bytes: factor by factor, row-major."""
        chunks = []
        for p in self.parts:
            block = p.data[torch.as_tensor(rows) if not p.on_cpu else rows]
            if p.on_cpu:
                raw = np.ascontiguousarray(block).reshape(-1).view(np.uint8)
                chunks.append(torch.from_numpy(raw.copy()))
            else:
                chunks.append(block.contiguous().reshape(-1).view(torch.uint8))
        return torch.cat([c.to(self.device) for c in chunks]) if chunks else torch.empty(0, dtype=torch.uint8)

    def centres_from_bytes(self, raw: torch.Tensor, count: int) -> Any:
        """The inverse of rows_bytes for `count` rows, in the backend's array kind."""
        raw = raw.to(self.device)
        out: list[Any] = []
        start = 0
        for p, w in zip(self.parts, self.row_widths):
            nbytes = count * w * p.dtype.itemsize
            piece = raw[start : start + nbytes]
            start += nbytes
            shape = (count, *p.shape[1:])
            if p.on_cpu:
                out.append(piece.numpy().copy().view(p.dtype).reshape(shape))
            else:
                out.append(piece.clone().view(_arrays.torch_dtype(p.dtype)).reshape(shape))
        return FactoredArrays(out[0], out[1]) if self.factored else out[0]

    def zero_centre(self) -> Any:
        raw = torch.zeros(self.row_nbytes, dtype=torch.uint8)
        return self.centres_from_bytes(raw, 1)

    def sqdist(self, centres: Any) -> torch.Tensor:
        """Squared distance of every local row to its nearest centre, float64 [n]."""
        if self.n == 0:
            return torch.empty(0, dtype=torch.float64, device=self.device)
        assert self.fn is not None
        d, _ = self.fn(self._data(), centres, return_argmin=False, out_dtype=np.dtype(np.float64),
                       accum_dtype=self.acc)
        d = d if _arrays.is_torch(d) else torch.from_numpy(np.asarray(d))
        return d.to(device=self.device, dtype=torch.float64)


class _World:
    """What every rank knows about every shard after the opening exchange."""

    def __init__(self, table: np.ndarray) -> None:
        self.sizes = table[:, 0].astype(np.int64)
        self.labelled = table[:, 1].astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n = int(self.offsets[-1])
        self.total_labelled = int(self.labelled.sum())
        sig = table[:, 2:]
        if not (sig == sig[0]).all():
            kinds = ", ".join(f"rank {q}: {_describe(s)}" for q, s in enumerate(sig))
            raise ValueError(f"every rank must hold the same kind of embedding (kind, width, dtype); got {kinds}")

    def owner(self, global_index: int) -> int:
        return int(np.searchsorted(self.offsets, global_index, side="right") - 1)


def _describe(sig: np.ndarray) -> str:
    names = [str(_arrays.FLOAT_DTYPES[int(c)]) for c in sig[3:] if c >= 0]
    kind = ("factored BADGE K=%d" % sig[1]) if sig[0] and sig[1] else ("factored UWE" if sig[0] else "dense")
    return f"{kind}, d={int(sig[2])}, {'/'.join(names)}"


class _Selection:
    """State shared by both algorithms on one rank."""

    def __init__(self, local_emb: Any, local_labelled: Any, group: Any, backend: str,
                 stats: dict[str, Any] | None, settings: Callable[[], list[float]]) -> None:
        self.stats = _Stats()
        self.out_stats = stats
        self.t0 = time.perf_counter()
        error: BaseException | None = None
        self.shard: _Shard | None = None
        device = torch.device("cpu")
        try:
            self.shard = _Shard(local_emb, backend)
            device = self.shard.device
        except Exception as exc:
            error = exc
        if dist.is_available() and dist.is_initialized() and dist.get_backend(group) == "nccl" \
                and device.type != "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        self.comm = _Comm(group, device, self.stats, sync_timing=stats is not None)
        mask = np.zeros(0, dtype=bool)
        n_settings = len(SETTINGS_SHAPE)
        row = [0.0] * (7 + n_settings)
        if error is None:
            assert self.shard is not None
            try:
                values = settings()
                mask = labelled_mask(local_labelled, self.shard.n, "local_labelled")
                self.shard.check_values()
                self.shard.resolve()
                row = [float(self.shard.n), float(mask.sum()), *self.shard.signature(), *values]
            except Exception as exc:
                error = exc
        table = self.comm.gather([0.0 if error is None else 1.0, *row])
        if table[:, 0].any():
            self.comm.raise_failed(table[:, 0], error)
        assert self.shard is not None
        agreed = table[:, 8:]
        if not (agreed == agreed[0]).all():
            differ = [SETTINGS_SHAPE[j] for j in range(n_settings) if not (agreed[:, j] == agreed[0, j]).all()]
            raise ValueError(f"every rank must pass the same {', '.join(dict.fromkeys(differ))}; got "
                             + "; ".join(f"rank {q}: {agreed[q].tolist()}" for q in range(len(agreed))))
        self.world = _World(table[:, 1:8])
        self.mask = mask
        self.rank = self.comm.rank
        self.offset = int(self.world.offsets[self.rank])
        self.error: BaseException | None = None
        self.picks: list[int] = []

    # -- failure handling inside the pick loop: a local error is carried to the next
    # collective as a flag, so every rank leaves the loop at the same point.
    def guarded(self, fn: Callable[[], Any]) -> Any:
        if self.error is not None:
            return None
        try:
            return fn()
        except Exception as exc:
            self.error = exc
            return None

    def check_flags(self, flags: np.ndarray) -> None:
        if flags.any():
            self.comm.raise_failed(flags, self.error)

    def local_global(self, local: int) -> int:
        return self.offset + int(local)

    def broadcast_rows(self, owner: int, local_rows: np.ndarray | None, count: int,
                       header: list[float] | None = None) -> tuple[np.ndarray, Any]:
        """Owner sends a float64 header and `count` rows; every rank gets (header, centres)."""
        shard = self.shard
        assert shard is not None
        nhead = len(header) if header is not None else 0
        size = nhead * 8 + count * shard.row_nbytes
        if self.rank == owner:
            head = torch.from_numpy(np.asarray(header or [], dtype=np.float64).view(np.uint8).copy())
            body = shard.rows_bytes(local_rows) if count and local_rows is not None else torch.empty(
                0, dtype=torch.uint8)
            buf = torch.cat([head.to(self.comm.device), body.to(self.comm.device)])
        else:
            buf = torch.empty(size, dtype=torch.uint8, device=self.comm.device)
        buf = self.comm.broadcast(buf, owner)
        head_vals = buf[: nhead * 8].cpu().numpy().copy().view(np.float64)
        centres = shard.centres_from_bytes(buf[nhead * 8 :], count) if count else None
        return head_vals, centres

    def seed_from_labelled(self, D: torch.Tensor) -> torch.Tensor:
        """D = min over every rank's labelled rows, owners broadcasting blocks in rank order."""
        shard = self.shard
        assert shard is not None
        local_rows = np.flatnonzero(self.mask)
        for q in range(self.comm.world):
            count = int(self.world.labelled[q])
            for start in range(0, count, LABELLED_BLOCK):
                block = min(LABELLED_BLOCK, count - start)
                rows = local_rows[start : start + block] if q == self.rank else None
                _, centres = self.broadcast_rows(q, rows, block)
                upd = self.guarded(lambda: shard.sqdist(centres))
                if upd is not None:
                    D = torch.minimum(D, upd)
        return D

    def argmax_first(self) -> int:
        """Global argmax of |x|^2 (distance to the zero row), lowest global index on ties."""
        shard = self.shard
        assert shard is not None
        norms = self.guarded(lambda: shard.sqdist(shard.zero_centre()))
        if norms is not None and shard.n:
            local = int(torch.argmax(norms))
            entry = [float(norms[local]), float(self.local_global(local))]
        else:
            entry = [-math.inf, _NONE]
        table = self.comm.gather([0.0 if self.error is None else 1.0, *entry])
        self.check_flags(table[:, 0])
        return _best(table[:, 1], table[:, 2])

    def finish(self) -> None:
        self.stats.picks = len(self.picks)
        self.stats.total_s = time.perf_counter() - self.t0
        if self.out_stats is not None:
            self.out_stats.update(self.stats.as_dict())

    def result(self, values: list[int]) -> Any:
        picks = np.asarray(values, dtype=np.int64)
        shard = self.shard
        assert shard is not None
        if shard.like.lib == "torch":
            return torch.from_numpy(picks).to(shard.device)
        return picks


def _best(values: np.ndarray, indices: np.ndarray) -> int:
    """Index of the largest value; lowest index among equal values."""
    ok = indices >= 0
    top = values[ok].max()
    return int(indices[ok][values[ok] == top].min())


def _settings(budget: Any, lookahead: Any, seed: Any, first: Any) -> list[float]:
    """Arguments every rank must agree on, as exact floats (the seed in 32-bit halves)."""
    budget = check_int(budget, "budget")
    lookahead = check_int(lookahead, "lookahead")
    seed = rng.check_seed(seed)
    if first is None or (isinstance(first, str) and first == "max_norm"):
        code = -1.0
    elif isinstance(first, str) and first == "random":
        code = -2.0
    elif isinstance(first, str):
        raise ValueError(f"first must be 'max_norm', 'random' or an index, got {first!r}")
    else:
        code = float(check_int(first, "first"))
        if code < 0:
            raise ValueError(f"first={int(code)} is out of range (valid: 0..N-1, a GLOBAL index)")
    return [float(budget), float(lookahead), float(seed >> 32), float(seed & 0xFFFFFFFF), code]


def _check_budget(sel: _Selection, budget: int) -> None:
    world = sel.world
    available = world.n - world.total_labelled
    if not 0 <= budget <= available:
        raise ValueError(f"budget {budget} is outside [0, {available}]: {world.n} rows, "
                         f"{world.total_labelled} labelled over {sel.comm.world} ranks")


# ----------------------------------------------------------------------------- k-center greedy


def kcenter_greedy(
    local_emb: Any,  # [n_q, d] or FactoredEmbedding: this rank's contiguous shard
    local_labelled: Any,  # local indices, local bool mask [n_q], or None
    budget: int,
    group: Any = None,
    *,
    first: int | None = None,
    lookahead: int = DEFAULT_LOOKAHEAD,
    backend: str = "auto",
    return_distances: bool = False,
    stats: dict[str, Any] | None = None,
) -> Any:
    """K-center greedy over a pool sharded across the ranks of `group` (all ranks call it).

    Args:
        local_emb: this rank's rows, shards in rank order (an empty shard is fine).
        local_labelled: this rank's labelled rows as indices into its shard or a bool mask.
        budget: picks to make over the whole pool, 0 <= budget <= N - |labelled|.
        first: GLOBAL index of the first pick when nothing is labelled anywhere
            (default: the row of largest norm).
        lookahead: candidates per rank gathered per round; extra picks are accepted without a
            new all_gather when provably the argmax (1 disables).
        return_distances: also return each pick's Euclidean distance at pick time.
        stats: a dict to fill with counters and timings (collectives, comm_s, ...).
    Returns:
        GLOBAL picks [budget] int64 (and distances [budget]), identical on every rank and
        equal to `uwe_kernels.kcenter_greedy` on the concatenated pool.
    Raises:
        ValueError/TypeError (on every rank) for inconsistent or bad arguments;
        DistributedSelectionError on every rank when any rank failed.
    """
    sel = _Selection(local_emb, local_labelled, group, backend, stats,
                     lambda: _settings(budget, lookahead, 0, first))
    world = sel.world
    _check_budget(sel, budget)
    lookahead = max(1, int(lookahead))
    if first is not None:
        first = check_index(first, "first", world.n)
        if world.total_labelled:
            raise ValueError("first applies only when nothing is labelled (the labelled set seeds D)")
    shard = sel.shard
    assert shard is not None
    picks = sel.picks
    dists: list[float] = []
    D = torch.full((shard.n,), math.inf, dtype=torch.float64, device=shard.device)
    if budget and world.total_labelled:
        D = sel.seed_from_labelled(D)
        D[torch.as_tensor(sel.mask, device=shard.device)] = -math.inf
    elif budget:
        pick = first if first is not None else sel.argmax_first()
        D = _kcg_commit(sel, D, pick, math.inf, dists)
    while len(picks) < budget:
        D = _kcg_round(sel, D, budget, lookahead, dists)
    sel.finish()
    out = sel.result(picks)
    if not return_distances:
        return out
    d = np.asarray(dists, dtype=np.float64)
    if shard.like.on_cpu:
        return out, _arrays.restore(d.astype(shard.like.dtype), shard.like)
    return out, torch.as_tensor(d, device=shard.device).to(_arrays.torch_dtype(shard.like.dtype))


def _kcg_commit(sel: _Selection, D: torch.Tensor, pick: int, dist2: float, dists: list[float],
                centres: Any = None) -> torch.Tensor:
    """Record `pick` and fold it into D (owner broadcasts the row unless given)."""
    shard = sel.shard
    assert shard is not None
    owner = sel.world.owner(pick)
    if centres is None:
        local = np.array([pick - sel.world.offsets[owner]]) if owner == sel.rank else None
        _, centres = sel.broadcast_rows(owner, local, 1)
    sel.picks.append(int(pick))
    dists.append(math.sqrt(dist2))
    upd = sel.guarded(lambda: shard.sqdist(centres))
    if upd is not None:
        D = torch.minimum(D, upd)
    if owner == sel.rank:
        D[pick - sel.offset] = -math.inf
    return D


def _top_candidates(D: torch.Tensor, m: int) -> tuple[list[float], list[int], float, int]:
    """Local top-m (value, local index): entry 0 is the argmax with the lowest index; every
    unlisted row has D <= bound."""
    avail = int((D > -math.inf).sum()) if D.numel() else 0
    if avail == 0:
        return [], [], -math.inf, 0
    k = min(m, avail)
    vals, idx = torch.topk(D, k)
    vals_l, idx_l = vals.tolist(), idx.tolist()
    bound = vals_l[-1] if avail > k else -math.inf
    best = int(torch.argmax(D))
    if best in idx_l:
        j = idx_l.index(best)
        vals_l.pop(j)
        idx_l.pop(j)
    else:
        vals_l.pop()
        idx_l.pop()
    return [float(D[best])] + vals_l, [best] + idx_l, bound, avail


def _kcg_round(sel: _Selection, D: torch.Tensor, budget: int, m: int, dists: list[float]) -> torch.Tensor:
    """One all_gather of every rank's candidates, the argmax pick, then look-ahead picks."""
    sel.stats.rounds += 1
    world = sel.comm.world
    vals, idx, bound, _ = _top_candidates(D, m) if sel.error is None else ([], [], -math.inf, 0)
    gidx = [float(sel.local_global(i)) for i in idx]
    pad = m - len(vals)
    row = [0.0 if sel.error is None else 1.0, bound, *vals, *([-math.inf] * pad), *gidx, *([_NONE] * pad)]
    table = sel.comm.gather(row)
    sel.check_flags(table[:, 0])
    bounds = table[:, 1]
    cand_v, cand_i = table[:, 2 : 2 + m].reshape(-1), table[:, 2 + m :].reshape(-1)
    keep = cand_i >= 0
    order = np.lexsort((cand_i[keep], -cand_v[keep]))
    cand = list(zip(cand_v[keep][order].tolist(), cand_i[keep][order].astype(np.int64).tolist()))
    v0, i0 = cand.pop(0)
    D = _kcg_commit(sel, D, i0, v0, dists)
    ceiling = float(bounds.max()) if world else -math.inf
    while cand and len(sel.picks) < budget:
        v, i = cand[0]
        rest = max([ceiling] + [c[0] for c in cand[1:]])
        if not v > rest:
            break
        owner = sel.world.owner(i)
        header = None
        local = None
        if owner == sel.rank:
            now = float(D[i - sel.offset])
            ok = sel.error is None and now > rest
            header = [1.0 if ok else 0.0, now, 0.0 if sel.error is None else 1.0]
            local = np.array([i - sel.offset])
        head, centres = sel.broadcast_rows(owner, local, 1, header if owner == sel.rank else [0.0] * 3)
        if head[2]:
            sel.check_flags(np.eye(world)[owner])
        if not head[0]:
            sel.stats.lookahead_rejected += 1
            break
        sel.stats.lookahead_accepted += 1
        cand.pop(0)
        D = _kcg_commit(sel, D, i, float(head[1]), dists, centres)
    return D


# ----------------------------------------------------------------------------- k-means++


def kmeans_pp(
    local_emb: Any,  # [n_q, d] or FactoredEmbedding: this rank's contiguous shard
    budget: int,
    local_labelled: Any = None,
    seed: int = 0,
    first: Any = "max_norm",
    group: Any = None,
    *,
    backend: str = "auto",
    stats: dict[str, Any] | None = None,
) -> Any:
    """K-means++ seeding (BADGE) over a pool sharded across the ranks of `group`.

    Same draws and rules as `uwe_kernels.kmeans_pp` on the concatenated pool: SplitMix64 draw t
    from `seed`, target = r_t * sum(D), the smallest unpicked GLOBAL index whose sequential
    float64 prefix sum exceeds it (uniform among unpicked when sum(D) = 0). `first` is
    "max_norm", "random" or a GLOBAL index (ignored when any rank has labelled rows).
    Returns GLOBAL picks [budget] int64, identical on every rank.
    """
    sel = _Selection(local_emb, local_labelled, group, backend, stats,
                     lambda: _settings(budget, 1, seed, first))
    world = sel.world
    _check_budget(sel, budget)
    if not isinstance(first, str):
        first = check_index(first, "first", world.n)
        if world.total_labelled:
            raise ValueError("an explicit first index applies only when nothing is labelled")
    shard = sel.shard
    assert shard is not None
    D = torch.zeros(shard.n, dtype=torch.float64, device=shard.device)
    avail = torch.as_tensor(~sel.mask, device=shard.device)
    draw = 0
    if budget and world.total_labelled:
        D = sel.seed_from_labelled(torch.full_like(D, math.inf))
        D[~avail] = 0.0
    elif budget:
        if first == "max_norm":
            pick = sel.argmax_first()
        elif first == "random":
            counts = sel.comm.gather([0.0 if sel.error is None else 1.0, float(int(avail.sum()))])
            sel.check_flags(counts[:, 0])
            pick = _uniform_pick(sel, avail, counts[:, 1], rng.uniforms(seed, draw, 1)[0])
            draw += 1
        else:
            pick = int(first)
        D = _kmpp_commit(sel, D, avail, pick, D.new_full((shard.n,), math.inf))
    while len(sel.picks) < budget:
        r = float(rng.uniforms(seed, draw, 1)[0])
        draw += 1
        pick, centres = _prefix_pick(sel, D, avail, r)
        D = _kmpp_commit(sel, D, avail, pick, D, centres)
    sel.finish()
    return sel.result(sel.picks)


def _kmpp_commit(sel: _Selection, D: torch.Tensor, avail: torch.Tensor, pick: int, base: torch.Tensor,
                 centres: Any = None) -> torch.Tensor:
    shard = sel.shard
    assert shard is not None
    owner = sel.world.owner(pick)
    if centres is None:
        local = np.array([pick - sel.world.offsets[owner]]) if owner == sel.rank else None
        _, centres = sel.broadcast_rows(owner, local, 1)
    sel.picks.append(int(pick))
    upd = sel.guarded(lambda: shard.sqdist(centres))
    D = torch.minimum(base, upd) if upd is not None else base
    if owner == sel.rank:
        avail[pick - sel.offset] = False
    return torch.where(avail, D, torch.zeros_like(D))


def _uniform_pick(sel: _Selection, avail: torch.Tensor, counts: np.ndarray, r: float) -> int:
    """The floor(r * m)-th available row in global index order, m the available count."""
    m = int(counts.sum())
    k = min(int(r * m), m - 1)
    before = np.concatenate([[0], np.cumsum(counts.astype(np.int64))])
    owner = int(np.searchsorted(before, k, side="right") - 1)
    while counts[owner] == 0:
        owner += 1
    local = 0
    if owner == sel.rank:
        local = int(torch.nonzero(avail)[k - before[owner], 0])
    head, _ = sel.broadcast_rows(owner, None, 0, [float(local)] if owner == sel.rank else [0.0])
    return int(sel.world.offsets[owner] + head[0])


def _chain_error_bound(n_terms: int, total: float) -> float:
    """A bound on |any-order float64 sum - exact sum| for n_terms non-negative terms of exact
    sum <= total (Higham, gamma_n), doubled to cover two different orders, plus slack."""
    g = (n_terms + 4) * _U
    return 4.0 * g / (1.0 - g) * total + 4.0 * 2.0**-1074


def _host_chain(D: torch.Tensor, carry: float) -> np.ndarray:
    """The sequential float64 prefix chain carry + D_0, + D_1, ... (numpy add.accumulate
    is a left-to-right loop)."""
    x = np.empty(D.numel() + 1, dtype=np.float64)
    x[0] = carry
    x[1:] = D.cpu().numpy()
    return np.cumsum(x)


def _first_above(D: torch.Tensor, carry: float, target: float) -> tuple[int, float, float] | None:
    """(i, P_(i-1), P_i) for the first i with P_i > target, P = carry + prefix sums of D in any
    summation order (within the certified bound); None when there is none. On the GPU only
    two values come back to the host."""
    if D.device.type == "cpu":
        chain = _host_chain(D, carry)
        hit = np.flatnonzero(chain[1:] > target)
        return (int(hit[0]), float(chain[hit[0]]), float(chain[hit[0] + 1])) if hit.size else None
    dev_chain = torch.cumsum(torch.cat([D.new_tensor([carry]), D]), 0)
    above = dev_chain[1:] > target
    if not bool(above.any()):
        return None
    i = int(torch.argmax(above.to(torch.uint8)))
    before, after = dev_chain[i : i + 2].tolist()
    return i, float(before), float(after)


def _prefix_pick(sel: _Selection, D: torch.Tensor, avail: torch.Tensor, r: float,
                 force_exact: bool = False) -> tuple[int, Any]:
    """The k-means++ pick for draw r (see the module header) and its row, on every rank."""
    comm, world = sel.comm, sel.world
    n_local = D.numel()
    total = float(D.sum()) if n_local else 0.0
    navail = float(int(avail.sum())) if n_local else 0.0
    table = comm.gather([0.0 if sel.error is None else 1.0, total, navail])
    sel.check_flags(table[:, 0])
    totals, counts = table[:, 1], table[:, 2]
    carries = [0.0]
    for t in totals:
        carries.append(carries[-1] + float(t))
    s_hat = carries[-1]
    if s_hat == 0.0:
        pick = _uniform_pick(sel, avail, counts, r)
        return pick, None
    target = r * s_hat
    owner = next((q for q in range(comm.world) if carries[q + 1] > target), None)
    if owner is None:
        owner = max(q for q in range(comm.world) if totals[q] > 0)
    margin = _chain_error_bound(world.n + comm.world, s_hat)
    cert, local = 0.0, -1
    if owner == sel.rank and not force_exact:
        found = _first_above(D, carries[owner], target)
        if found is not None:
            i, before, after = found
            if after - target > 2 * margin and target - before > 2 * margin:
                cert, local = 1.0, i
    head, centres = sel.broadcast_rows(owner, np.array([max(local, 0)]), 1,
                                       [cert, float(local)] if owner == sel.rank else [0.0, 0.0])
    if head[0]:
        return int(world.offsets[owner] + int(head[1])), centres
    sel.stats.exact_prefix_picks += 1
    return _exact_prefix_pick(sel, D, r), None


def _exact_prefix_pick(sel: _Selection, D: torch.Tensor, r: float) -> int:
    """The sequential chain run rank by rank: carry c_{q+1} = chain(c_q, D_q), broadcast by q."""
    comm, world = sel.comm, sel.world
    carries = [0.0]
    chain = None
    for q in range(comm.world):
        if world.sizes[q] == 0:
            carries.append(carries[-1])
            continue
        value = [0.0]
        if q == sel.rank:
            chain = _host_chain(D, carries[-1])
            value = [float(chain[-1])]
        head, _ = sel.broadcast_rows(q, None, 0, value)
        carries.append(float(head[0]))
    total = carries[-1]
    target = r * total
    owner = next((q for q in range(comm.world) if carries[q + 1] > target), None)
    last_positive = owner is None
    if owner is None:
        owner = max(q for q in range(comm.world) if carries[q + 1] > carries[q])
    local = [0.0]
    if owner == sel.rank:
        assert chain is not None
        if last_positive:
            local = [float(np.flatnonzero(D.cpu().numpy() > 0)[-1])]
        else:
            local = [float(np.flatnonzero(chain[1:] > target)[0])]
    head, _ = sel.broadcast_rows(owner, None, 0, local)
    return int(world.offsets[owner] + head[0])
