"""The k-means++ draw for a D vector that lives on a device, without the sequential chain over
all n values per pick (csrc/common/certified_prefix.h has the argument).

Chunk sums of D are formed on the device in any order (float64) and only they come to the host
(n / CHUNK values); their prefix finds the chunk holding the target, whose CHUNK values come next,
and the pick is accepted when the target lies more than twice `chain_error_bound` inside its
interval. Then the sequential float64 chain of API.md picks the same row. Otherwise (a close call)
the caller's exact rule decides on the whole of D. Host traffic per pick: O(n / CHUNK + CHUNK)
values instead of n.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

CHUNK = 2048
_U = 2.0**-53


def chain_error_bound(n_terms: int, total: float) -> float:
    """|any-order float64 prefix - sequential float64 prefix| for n_terms non-negative terms of
    computed total `total` (Higham's gamma_n, doubled for two orders, plus slack); the same
    bound as the C++ header's and the distributed module's."""
    g = (n_terms + 4) * _U
    return 4.0 * g / (1.0 - g) * total + 4.0 * 2.0**-1074


def certified_pick(D: Any, r: float, exact_pick: Callable[[np.ndarray, float], int]) -> tuple[int, bool]:
    """(pick, exact) for draw r over D [n] (a torch tensor, any device): pick -1 when sum(D) is
    0 (the caller draws uniformly); exact True when `exact_pick(D on the host, r)` decided."""
    import torch

    n = int(D.numel())
    full = n // CHUNK
    parts = [D[: full * CHUNK].reshape(full, CHUNK).sum(1, dtype=torch.float64)]
    if n > full * CHUNK:
        parts.append(D[full * CHUNK :].sum(dtype=torch.float64).reshape(1))
    sums = torch.cat(parts).cpu().numpy()
    run = np.cumsum(sums)
    total = float(run[-1]) if len(run) else 0.0
    if not total > 0.0:  # non-negative terms: 0 (or NaN) in every summation order
        return -1, False
    target = r * total
    margin = chain_error_bound(n, total)
    c = int(np.searchsorted(run, target, side="right"))  # first chunk whose end exceeds target
    if c < len(run) and math.isfinite(margin):
        start = float(run[c - 1]) if c else 0.0
        prefix = start + np.cumsum(D[c * CHUNK : (c + 1) * CHUNK].to(torch.float64).cpu().numpy())
        i = int(np.searchsorted(prefix, target, side="right"))
        if i < len(prefix):
            before = float(prefix[i - 1]) if i else start
            if prefix[i] - target > 2 * margin and target - before > 2 * margin:
                return c * CHUNK + i, False
    return exact_pick(D.cpu().numpy(), r), True
