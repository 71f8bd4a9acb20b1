"""Distributed selection against world size: k-center greedy (with and without look-ahead)
and k-means++ on a gloo world of 1, 2 and 4 CPU processes started once per world size.

    python -m pytest bench/bench_distributed.py --benchmark-only

The pool is split into near-equal shards; the timed call is one selection on every rank,
started by the benchmark process and finished when every rank has answered. extra_info
carries the per-pick time, the communication time per pick (time inside collectives,
including waits for slower ranks), collectives per pick and the look-ahead acceptance.
On a machine with fewer cores than ranks the ranks share cores: read the communication
column, not the speed-up.
"""
from __future__ import annotations

import datetime
import os
import socket
from typing import Any

import numpy as np
import pytest

from bench._data import pick

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is unavailable", allow_module_level=True)

N_ROWS = int(os.environ.get("UWE_BENCH_DIST_ROWS", pick(40_000, 40_000, 2_000)))
DIM = int(os.environ.get("UWE_BENCH_DIST_DIM", 64))
BUDGET = int(os.environ.get("UWE_BENCH_DIST_BUDGET", pick(64, 64, 8)))
WORLDS = pick((1, 2, 4), (1, 2, 4), (1, 2))
COLLECTIVE_REPEATS = pick(300, 300, 20)
ROUNDS = pick(3, 3, 1)


def _pool_shard(rank: int, world: int) -> np.ndarray:
    edges = np.linspace(0, N_ROWS, world + 1).round().astype(int)
    pool = np.random.default_rng(0).standard_normal((N_ROWS, DIM)).astype(np.float32)
    return np.ascontiguousarray(pool[edges[rank] : edges[rank + 1]])


def _serve(rank: int, world: int, port: int, commands: Any, answers: Any) -> None:
    """A rank that runs selections on request until told to stop."""
    from uwe_kernels import distributed as ud

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    shard = _pool_shard(rank, world)
    labelled = np.arange(min(3, len(shard)))
    while True:
        command = commands.get()
        if command is None:
            break
        algo, lookahead = command
        stats: dict[str, Any] = {}
        if algo == "latency":
            stats = _pick_collectives(lookahead, world)
        elif algo == "kcg":
            ud.kcenter_greedy(shard, labelled, BUDGET, lookahead=lookahead, stats=stats)
        else:
            ud.kmeans_pp(shard, BUDGET, labelled, seed=1, stats=stats)
        answers.put((rank, stats))
    dist.destroy_process_group()


def _pick_collectives(reps: int, world: int) -> dict[str, Any]:
    """The collectives of one KCG pick without compute: all_gather of 2 + 2 * 8 float64 per
    rank, then a broadcast of one float32 row of DIM values. Median seconds of each."""
    import time

    local = torch.zeros(18, dtype=torch.float64)
    gathered = torch.empty(18 * world, dtype=torch.float64)
    row = torch.zeros(DIM * 4, dtype=torch.uint8)
    gathers, casts = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        dist.all_gather_into_tensor(gathered, local)
        t1 = time.perf_counter()
        dist.broadcast(row, src=0)
        casts.append(time.perf_counter() - t1)
        gathers.append(t1 - t0)
    return {"all_gather_s": float(np.median(gathers)), "broadcast_s": float(np.median(casts))}


class _World:
    def __init__(self, world: int) -> None:
        ctx = torch.multiprocessing.get_context("spawn")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.world = world
        self.commands = [ctx.Queue() for _ in range(world)]
        self.answers = ctx.Queue()
        self.procs = [ctx.Process(target=_serve, args=(q, world, port, self.commands[q], self.answers))
                      for q in range(world)]
        for p in self.procs:
            p.start()

    def run(self, algo: str, lookahead: int) -> dict[str, Any]:
        for q in self.commands:
            q.put((algo, lookahead))
        stats = dict(self.answers.get(timeout=600) for _ in range(self.world))
        return stats[0]

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(timeout=60)


@pytest.fixture(scope="module", params=WORLDS, ids=[f"world{w}" for w in WORLDS])
def world(request: pytest.FixtureRequest) -> Any:
    w = _World(request.param)
    w.run("kcg", 8)
    yield w
    w.close()


@pytest.mark.parametrize("algo,lookahead", [("kcg", 8), ("kcg", 1), ("kmpp", 1)],
                         ids=["kcg-lookahead8", "kcg-no-lookahead", "kmeans_pp"])
def bench_distributed_selection(benchmark: Any, world: _World, algo: str, lookahead: int) -> None:
    last: dict[str, Any] = {}

    def once() -> None:
        last.update(world.run(algo, lookahead))

    benchmark.group = f"distributed {algo} {N_ROWS}x{DIM} budget {BUDGET}"
    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    picks = max(1, last["picks"])
    benchmark.extra_info.update({
        "world": world.world,
        "rows_per_rank": N_ROWS // world.world,
        "ms_per_pick": 1e3 * last["total_s"] / picks,
        "comm_us_per_pick": 1e6 * last["comm_s_per_pick"],
        "collectives_per_pick": last["collectives"] / picks,
        "lookahead_accepted": last["lookahead_accepted"],
        "exact_prefix_picks": last["exact_prefix_picks"],
        "bytes_read_per_pick": N_ROWS * DIM * 4 // world.world,
        "shard_gb_per_s": N_ROWS * DIM * 4 / world.world * picks / last["total_s"] / 1e9,
    })


def bench_pick_collectives(benchmark: Any, world: _World) -> None:
    last: dict[str, Any] = {}

    def once() -> None:
        last.update(world.run("latency", COLLECTIVE_REPEATS))

    benchmark.group = "distributed: collectives of one pick (no compute)"
    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update({
        "world": world.world,
        "all_gather_us": 1e6 * last["all_gather_s"],
        "broadcast_us": 1e6 * last["broadcast_s"],
        "row_bytes": DIM * 4,
    })
