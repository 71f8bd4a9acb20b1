"""What both selections share on one rank: the opening handshake, the picture of every shard
it yields, and the collectives of a selection (row broadcasts, seeding D from the labelled
rows, the max-norm first pick), with a local error held until the next collective."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from .. import _abi, rng
from ..validation import check_int, labelled_mask
from .comm import Comm, Stats
from .shard import Shard, describe

LABELLED_BLOCK = 1024
OPERATIONS = ("kcenter_greedy", "kmeans_pp")
NO_INDEX = -1.0


@dataclass(frozen=True)
class Handshake:
    """What one rank sends in the opening all_gather: the same number of exact float64 values
    whatever the operation (a 64-bit seed as two 32-bit halves), so ranks that disagree about
    anything, even the operation, get through the gather and all raise the same error."""

    failed: bool = False
    rows: int = 0
    labelled: int = 0
    # the shard's kind (Shard.kind): every rank must hold the same
    factored: bool = False
    classes: int = 0
    width: int = 0
    dtypes: tuple[int, int] = (-1, -1)
    # the call's settings: every rank must pass the same
    operation: int = -1
    budget: int = 0
    lookahead: int = 0
    seed: int = 0
    first: int = _abi.FIRST_MAX_NORM

    KIND = ("factored", "classes", "width", "dtypes")
    SETTINGS = ("operation", "budget", "lookahead", "seed", "first")

    def pack(self) -> list[float]:
        out: list[float] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "seed":
                out += [float(value >> 32), float(value & 0xFFFFFFFF)]
            elif f.name == "dtypes":
                out += [float(c) for c in value]
            else:
                out.append(float(value))
        return out

    @classmethod
    def unpack(cls, row: np.ndarray) -> "Handshake":
        values = iter(row.tolist())
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "seed":
                kwargs[f.name] = (int(next(values)) << 32) | int(next(values))
            elif f.name == "dtypes":
                kwargs[f.name] = (int(next(values)), int(next(values)))
            else:
                kwargs[f.name] = (bool if f.type == "bool" else int)(next(values))
        return cls(**kwargs)

    def settings(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.SETTINGS}
        out["operation"] = OPERATIONS[self.operation] if 0 <= self.operation < len(OPERATIONS) else "?"
        return out


def settings(operation: str, budget: Any, lookahead: Any, seed: Any, first: Any) -> dict[str, Any]:
    """A call's settings as Handshake fields, validated (ValueError names the bad one)."""
    if first is None or isinstance(first, str):
        if first not in (None, "max_norm", "random"):
            raise ValueError(f"first must be 'max_norm', 'random' or an index, got {first!r}")
        code = _abi.first_code(first)
    else:
        code = check_int(first, "first")
        if code < 0:
            raise ValueError(f"first={code} is out of range (valid: 0..N-1, a GLOBAL index)")
    return {"operation": OPERATIONS.index(operation), "budget": check_int(budget, "budget"),
            "lookahead": check_int(lookahead, "lookahead"), "seed": rng.check_seed(seed), "first": code}


class World:
    """What every rank knows about every shard after the handshake."""

    def __init__(self, hands: list[Handshake]) -> None:
        self.sizes = np.array([h.rows for h in hands], dtype=np.int64)
        self.labelled = np.array([h.labelled for h in hands], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n = int(self.offsets[-1])
        self.total_labelled = int(self.labelled.sum())

    def owner(self, global_index: int) -> int:
        return int(np.searchsorted(self.offsets, global_index, side="right") - 1)


def _agree(hands: list[Handshake]) -> None:
    """ValueError (the same on every rank) unless every rank passed the same settings and holds
    the same kind of embedding."""
    differ = [name for name in Handshake.SETTINGS if len({getattr(h, name) for h in hands}) > 1]
    if differ:
        raise ValueError(f"every rank must pass the same {', '.join(differ)}; got "
                         + "; ".join(f"rank {q}: {h.settings()}" for q, h in enumerate(hands)))
    kinds = [tuple(getattr(h, name) for name in Handshake.KIND) for h in hands]
    if len(set(kinds)) > 1:
        text = ", ".join(f"rank {q}: {describe(*k)}" for q, k in enumerate(kinds))
        raise ValueError(f"every rank must hold the same kind of embedding (kind, width, dtype); got {text}")


class Session:
    """One rank's side of one selection: the handshake on construction, then collectives."""

    def __init__(self, local_emb: Any, local_labelled: Any, group: Any, backend: str,
                 stats: dict[str, Any] | None, call_settings: Callable[[], dict[str, Any]]) -> None:
        self.stats = Stats()
        self.out_stats = stats
        self.t0 = time.perf_counter()
        error: BaseException | None = None
        self.shard: Shard | None = None
        device = torch.device("cpu")
        try:
            self.shard = Shard(local_emb, backend)
            device = self.shard.device
        except Exception as exc:
            error = exc
        if dist.is_available() and dist.is_initialized() and dist.get_backend(group) == "nccl" \
                and device.type != "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        self.comm = Comm(group, device, self.stats, sync_timing=stats is not None)
        mask = np.zeros(0, dtype=bool)
        mine = Handshake(failed=True)
        if error is None:
            assert self.shard is not None
            try:
                values = call_settings()
                mask = labelled_mask(local_labelled, self.shard.n, "local_labelled")
                self.shard.check_values()
                self.shard.resolve()
                mine = Handshake(rows=self.shard.n, labelled=int(mask.sum()), **self.shard.kind(), **values)
            except Exception as exc:
                error = exc
        table = self.comm.gather(mine.pack())
        if table[:, 0].any():
            self.comm.raise_failed(table[:, 0], error)
        hands = [Handshake.unpack(row) for row in table]
        _agree(hands)
        assert self.shard is not None
        self.world = World(hands)
        self.mask = mask
        self.rank = self.comm.rank
        self.offset = int(self.world.offsets[self.rank])
        self.error: BaseException | None = None

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

    def flag(self) -> float:
        """This rank's failure flag, the first value of every gathered row."""
        return 0.0 if self.error is None else 1.0

    def check_flags(self, flags: np.ndarray) -> None:
        if flags.any():
            self.comm.raise_failed(flags, self.error)

    def check_budget(self, budget: int) -> None:
        world = self.world
        available = world.n - world.total_labelled
        if not 0 <= budget <= available:
            raise ValueError(f"budget {budget} is outside [0, {available}]: {world.n} rows, "
                             f"{world.total_labelled} labelled over {self.comm.world} ranks")

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

    def centre_row(self, pick: int) -> Any:
        """Row `pick` (a global index) on every rank, broadcast by its owner."""
        owner = self.world.owner(pick)
        local = np.array([pick - self.world.offsets[owner]]) if owner == self.rank else None
        return self.broadcast_rows(owner, local, 1)[1]

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
            entry = [-math.inf, NO_INDEX]
        table = self.comm.gather([self.flag(), *entry])
        self.check_flags(table[:, 0])
        return _best(table[:, 1], table[:, 2])

    def finish(self, picks: int) -> None:
        self.stats.picks = picks
        self.stats.total_s = time.perf_counter() - self.t0
        if self.out_stats is not None:
            self.out_stats.update(self.stats.as_dict())

    def result(self, values: Any) -> Any:
        picks = np.asarray(values, dtype=np.int64)
        shard = self.shard
        assert shard is not None
        if shard.like.lib == "torch":
            return torch.from_numpy(picks).to(shard.device)
        return picks


class ShardState:
    """What both selections' driver states hold: D [n_q] float64 (inf until a centre or a
    labelled row is folded in) and a pick's row when it already came with the message that
    chose it."""

    def __init__(self, session: Session, budget: int) -> None:
        self.s = session
        shard = session.shard
        assert shard is not None
        self.shard = shard
        self.D = torch.full((shard.n,), math.inf, dtype=torch.float64, device=shard.device)
        self.sent: tuple[int, Any] | None = None
        if budget and session.world.total_labelled:
            self.D = session.seed_from_labelled(self.D)

    def any_taken(self) -> bool:
        return self.s.world.total_labelled > 0

    def max_norm_row(self) -> int:
        return self.s.argmax_first()

    def fold_centre(self, i: int) -> int | None:
        """D = min(D, distance to row i); returns i's local index when this rank owns it."""
        s = self.s
        centres = self.sent[1] if self.sent is not None and self.sent[0] == i else s.centre_row(i)
        self.sent = None
        upd = s.guarded(lambda: self.shard.sqdist(centres))
        if upd is not None:
            self.D = torch.minimum(self.D, upd)
        return i - s.offset if s.world.owner(i) == s.rank else None


def _best(values: np.ndarray, indices: np.ndarray) -> int:
    """Index of the largest value; lowest index among equal values."""
    ok = indices >= 0
    top = values[ok].max()
    return int(indices[ok][values[ok] == top].min())
