"""K-center greedy over a pool sharded across processes, launched with torchrun.

    torchrun --standalone --nproc-per-node 4 examples/distributed_kcg.py --rows 20000 --dim 64 --budget 100

Each rank builds its own contiguous shard of a synthetic pool (on its GPU with NCCL when
CUDA is available, else on the CPU with gloo), marks a few of its rows as labelled and calls
`uwe_kernels.distributed.kcenter_greedy`. Every rank gets the same GLOBAL picks; rank 0
prints them with the communication statistics, and with --check compares them with the
single-process `uwe_kernels.kcenter_greedy` on the whole pool.
"""
from __future__ import annotations

import argparse
import datetime
import os

import numpy as np
import torch
import torch.distributed as dist

import uwe_kernels
from uwe_kernels import distributed as ud


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """Contiguous, near-equal shards in rank order."""
    edges = np.linspace(0, n, world + 1).round().astype(int)
    return int(edges[rank]), int(edges[rank + 1])


def make_rows(start: int, stop: int, d: int, seed: int) -> np.ndarray:
    """Rows [start, stop) of the synthetic pool, identical whoever builds them."""
    return np.stack([np.random.default_rng([seed, i]).standard_normal(d).astype(np.float32)
                     for i in range(start, stop)]) if stop > start else np.zeros((0, d), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--labelled-per-rank", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--check", action="store_true", help="compare with the single-process picks")
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    # The timeout bounds every collective: a rank that dies makes the others raise, not hang.
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=args.timeout_s))
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        start, stop = shard_bounds(args.rows, world, rank)
        rows = make_rows(start, stop, args.dim, args.seed)
        local_emb = torch.from_numpy(rows).cuda() if use_cuda else rows
        local_labelled = np.arange(min(args.labelled_per_rank, stop - start))
        stats: dict[str, float] = {}
        picks = ud.kcenter_greedy(local_emb, local_labelled, args.budget, stats=stats)
        if rank == 0:
            print(f"world {world}, pool {args.rows} x {args.dim}, budget {args.budget}")
            print("first picks:", np.asarray(picks.cpu() if use_cuda else picks)[:10].tolist())
            print(f"{stats['total_s']:.3f} s, {stats['rounds']} rounds, "
                  f"{stats['lookahead_accepted']} look-ahead picks, {stats['collectives']} collectives, {1e6 * stats['comm_s_per_pick']:.0f} us communication per pick")
            if args.check:
                pool = make_rows(0, args.rows, args.dim, args.seed)
                labelled = np.concatenate([np.arange(min(args.labelled_per_rank, b - a)) + a
                                           for a, b in (shard_bounds(args.rows, world, q) for q in range(world))])
                expected = uwe_kernels.kcenter_greedy(pool, labelled, args.budget)
                got = np.asarray(picks.cpu() if use_cuda else picks)
                print("single-process picks match:", bool(np.array_equal(got, expected)))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
