"""Distributed k-means++ seeding with the certified prefix, on the Python pick driver.

Sampling: target = r_t * S, pick the smallest unpicked i with P_i > target, where P is the
sequential float64 prefix sum D_0 + D_1 + ... in global index order and S its last value (the
single-process rule). Shard totals summed in rank order are NOT that chain. Fast path: every
rank gathers the local chain totals; the approximate carries c^_q and the owner's prefix
values differ from the sequential ones by at most `chain_error_bound` (Higham's gamma_n
bound, any summation order); the owner accepts its index only when the target falls more
than twice that bound inside the interval (P_{i-1}, P_i]. Otherwise the exact path runs the
chain rank by rank (one broadcast of the carry per non-empty shard) and picks with the exact
sequential values. Either way the pick is the one of the sequential chain, bit for bit, for
the same D values.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _driver
from .._certified_draw import chain_error_bound
from ..validation import check_index
from .session import Session, ShardState, settings

class _KMeansState(ShardState):
    """_driver.KMeansState over the shards: D is 0 on taken rows; `avail` [n_q] marks the
    rows still free."""

    def __init__(self, session: Session, budget: int) -> None:
        super().__init__(session, budget)
        self.avail = torch.as_tensor(~session.mask, device=self.shard.device)
        if budget and session.world.total_labelled:
            self.D[~self.avail] = 0.0

    def add_centre(self, i: int) -> None:
        local = self.fold_centre(i)
        if local is not None:
            self.avail[local] = False
        self.D = torch.where(self.avail, self.D, torch.zeros_like(self.D))

    def sample(self, r: float) -> int:
        pick, centres = prefix_pick(self.s, self.D, r)
        if pick >= 0 and centres is not None:
            self.sent = (pick, centres)
        return pick

    def nth_free(self, r: float) -> int:
        counts = self.s.comm.gather([self.s.flag(), float(int(self.avail.sum()))])
        self.s.check_flags(counts[:, 0])
        return _uniform_pick(self.s, self.avail, counts[:, 1], r)


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
    sel = Session(local_emb, local_labelled, group, backend, stats,
                  lambda: settings("kmeans_pp", budget, 1, seed, first))
    sel.check_budget(budget)
    if not isinstance(first, str):
        first = check_index(first, "first", sel.world.n)
        if sel.world.total_labelled:
            raise ValueError("an explicit first index applies only when nothing is labelled")
    picks = _driver.kmeans_pp(_KMeansState(sel, budget), budget, int(seed), first)
    sel.finish(len(picks))
    return sel.result(picks)


def _uniform_pick(sel: Session, avail: torch.Tensor, counts: np.ndarray, r: float) -> int:
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


def prefix_pick(sel: Session, D: torch.Tensor, r: float,
                 force_exact: bool = False) -> tuple[int, Any]:
    """The k-means++ pick for draw r (see the module header) and its row (None when not sent
    with it) on every rank; (-1, None) when every D is 0."""
    comm, world = sel.comm, sel.world
    n_local = D.numel()
    table = comm.gather([sel.flag(), float(D.sum()) if n_local else 0.0])
    sel.check_flags(table[:, 0])
    totals = table[:, 1]
    carries = [0.0]
    for t in totals:
        carries.append(carries[-1] + float(t))
    s_hat = carries[-1]
    if s_hat == 0.0:
        return -1, None  # every D is 0: the driver's uniform fallback
    target = r * s_hat
    owner = next((q for q in range(comm.world) if carries[q + 1] > target), None)
    if owner is None:
        owner = max(q for q in range(comm.world) if totals[q] > 0)
    margin = chain_error_bound(world.n + comm.world, s_hat)
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


def _exact_prefix_pick(sel: Session, D: torch.Tensor, r: float) -> int:
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
