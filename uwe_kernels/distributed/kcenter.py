"""Distributed k-center greedy with look-ahead, on the Python pick driver.

Per round, every rank's top `lookahead` candidates (value, global index) and a bound on its
unlisted rows are all_gathered; the argmax (lowest global index on ties) is the pick. After it
is taken, the next candidate c is accepted without a new all_gather when its exact D after the
updates (computed by its owner) is strictly above every other row's upper bound: the stale
values of the other candidates and each rank's bound for its unlisted rows. D only decreases,
so c is then provably the unique argmax: one broadcast per extra pick.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import _arrays, _driver
from ..validation import check_index
from .session import NO_INDEX, Session, ShardState, settings

DEFAULT_LOOKAHEAD = 8


def _top_candidates(D: torch.Tensor, m: int) -> tuple[list[float], list[int], float]:
    """Local top-m (value, local index): entry 0 is the argmax with the lowest index; every
    unlisted row has D <= bound."""
    avail = int((D > -math.inf).sum()) if D.numel() else 0
    if avail == 0:
        return [], [], -math.inf
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
    return [float(D[best])] + vals_l, [best] + idx_l, bound


class _KCenterState(ShardState):
    """_driver.KCenterState over the shards: D is -inf on taken rows."""

    def __init__(self, session: Session, lookahead: int, budget: int) -> None:
        super().__init__(session, budget)
        self.m = lookahead
        self.candidates: list[tuple[float, int]] = []  # the round's rest, best first
        self.ceiling = -math.inf  # the largest bound on any rank's unlisted rows
        if budget and session.world.total_labelled:
            self.D[torch.as_tensor(session.mask, device=self.shard.device)] = -math.inf

    def add_centre(self, i: int) -> None:
        local = self.fold_centre(i)
        if local is not None:
            self.D[local] = -math.inf

    def argmax(self) -> tuple[int, float]:
        picked = self._look_ahead()
        return picked if picked is not None else self._round()

    def _round(self) -> tuple[int, float]:
        """One all_gather of every rank's candidates; the best is the pick."""
        s, m = self.s, self.m
        s.stats.rounds += 1
        vals, idx, bound = _top_candidates(self.D, m) if s.error is None else ([], [], -math.inf)
        gidx = [float(s.local_global(i)) for i in idx]
        pad = m - len(vals)
        table = s.comm.gather([s.flag(), bound, *vals, *([-math.inf] * pad), *gidx, *([NO_INDEX] * pad)])
        s.check_flags(table[:, 0])
        cand_v, cand_i = table[:, 2 : 2 + m].reshape(-1), table[:, 2 + m :].reshape(-1)
        keep = cand_i >= 0
        order = np.lexsort((cand_i[keep], -cand_v[keep]))
        cand = list(zip(cand_v[keep][order].tolist(), cand_i[keep][order].astype(np.int64).tolist()))
        self.ceiling = float(table[:, 1].max())
        v0, i0 = cand.pop(0)
        self.candidates = cand
        return int(i0), float(v0)

    def _look_ahead(self) -> tuple[int, float] | None:
        """The round's next candidate when its owner proves it is the argmax, else None."""
        s, cand = self.s, self.candidates
        if not cand:
            return None
        v, i = cand[0]
        rest = max([self.ceiling] + [c[0] for c in cand[1:]])
        if not v > rest:
            self.candidates = []
            return None
        owner = s.world.owner(i)
        header, local = [0.0] * 3, None
        if owner == s.rank:
            now = float(self.D[i - s.offset])
            header = [1.0 if s.error is None and now > rest else 0.0, now, s.flag()]
            local = np.array([i - s.offset])
        head, centres = s.broadcast_rows(owner, local, 1, header)
        if head[2]:
            s.check_flags(np.eye(s.comm.world)[owner])
        if not head[0]:
            s.stats.lookahead_rejected += 1
            self.candidates = []
            return None
        s.stats.lookahead_accepted += 1
        cand.pop(0)
        self.sent = (i, centres)
        return i, float(head[1])


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
    sel = Session(local_emb, local_labelled, group, backend, stats,
                  lambda: settings("kcenter_greedy", budget, lookahead, 0, first))
    world = sel.world
    sel.check_budget(budget)
    if first is not None:
        first = check_index(first, "first", world.n)
        if world.total_labelled:
            raise ValueError("first applies only when nothing is labelled (the labelled set seeds D)")
    state = _KCenterState(sel, max(1, int(lookahead)), budget)
    picks, dists = _driver.kcenter_greedy(state, budget, first)
    sel.finish(len(picks))
    out = sel.result(picks)
    if not return_distances:
        return out
    like = state.shard.like
    if like.on_cpu:
        return out, _arrays.restore(dists.astype(like.dtype), like)
    return out, torch.as_tensor(dists, device=state.shard.device).to(_arrays.torch_dtype(like.dtype))
