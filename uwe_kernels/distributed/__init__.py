"""Exact k-center greedy and k-means++ seeding over a pool sharded across torch.distributed
ranks (gloo on CPUs, NCCL on GPUs); docs/distributed.md.

Layout: rank q of the group holds rows [offset_q, offset_q + n_q) of the pool, shards in rank
order, sizes free (zero included). Labelled rows are given per rank as local indices or a
local bool mask. Every rank returns the same GLOBAL picks, equal to the single-process
`uwe_kernels.kcenter_greedy` / `kmeans_pp` on the concatenated pool.

Per pick every rank updates D [n_q] (float64) with the registry's `min_distances` op against
the new centre, whose row its owner broadcasts as raw bytes (shard.py); the pick loops are
uwe_kernels._driver's. Modules: comm (collectives, error propagation), shard (rows, kernel,
byte format), session (handshake, shared collectives), kcenter (look-ahead), kmeans
(certified prefix). Ties: lowest global index.
"""
from __future__ import annotations

from .comm import DistributedSelectionError
from .kcenter import kcenter_greedy
from .kmeans import kmeans_pp

__all__ = ["DistributedSelectionError", "kcenter_greedy", "kmeans_pp"]
