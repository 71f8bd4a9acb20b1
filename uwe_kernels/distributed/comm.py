"""The communicator: timed collectives on one process group, and error propagation.

A local error is held and sent as a flag on the next collective, so every rank raises
DistributedSelectionError at the same point; a rank that never arrives is bounded by the
process group's timeout.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

# torch renamed all_gather_into_tensor to all_gather_single; take whichever this torch has.
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class DistributedSelectionError(RuntimeError):
    """Raised on every rank when one rank failed (the message names it and its error)."""


@dataclass
class Stats:
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


class Comm:
    """Collectives on one group, each timed, with errors turned into a raise on every rank."""

    def __init__(self, group: Any, device: torch.device, stats: Stats, sync_timing: bool) -> None:
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

    def raise_failed(self, flags: np.ndarray, error: BaseException | None) -> None:
        """Every rank calls this at the same point when a gathered flag is set: all ranks raise."""
        messages: list[Any] = [None] * self.world
        mine = f"{type(error).__name__}: {error}" if error is not None else None
        dist.all_gather_object(messages, mine, group=self.group)
        failed = [q for q in range(self.world) if flags[q]]
        text = "; ".join(f"rank {q} failed: {messages[q]}" for q in failed)
        raise DistributedSelectionError(text) from error
