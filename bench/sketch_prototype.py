"""How many rows a sketch-bounded selection would still evaluate, per pick: a numpy model.

    python -m bench.sketch_prototype [pool ...]     pools: power1 power0.5 power1.5 noise digits
                                                    power1-1m (memory-mapped, 1,000,000 rows,
                                                    budget 10,000: build and estimate only)

For each pool it runs k-center greedy and k-means++ (the labelled pass first, one labelled
centre at a time, then `budget` picks) and, for every centre and every sketch width k, counts
the rows that the sketch test cannot skip, with the proven margin (`_sketch.sketch_keeps_all`)
and without one (bound >= D, plain). The picks do not depend on the bound (skipping is exact),
so one selection serves every k. Distances are float32 Grams of the centred pool: a model of
the traffic, not the kernel. Traffic per pick relative to brute force (d + 1 floats a row, D
included): (k + 3) / (d + 1) for the sketch (z, r, slack, D) plus the evaluated fraction.
Also prints the sample statistics that `auto` could read: energy captured by k directions,
the tail variance against the sample's nearest-neighbour distance, the clustering ratio of
`_pruning`, and `_sketch.predicted_fractions` (the evaluated fraction estimated on the row
sample) with its traffic.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from uwe_kernels import _pruning, _sketch

from . import _realistic

N, D_DIM, LABELLED, BUDGET = 50_000, 512, 1_000, 1_000
WIDTHS = _sketch.SKETCH_WIDTHS


def pool(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows, labelled indices, budget)."""
    if name == "digits":
        feats, known = _realistic.digits_features()
        return feats, known, 200
    if name.endswith("-1m"):
        rows = _realistic.power_law_memmap(1_000_000, D_DIM, float(name[5:-3]))
        known = np.sort(np.random.default_rng([2, len(rows)]).choice(len(rows), size=LABELLED, replace=False))
        return rows, known, 10_000
    if name == "noise":
        rows = np.abs(np.random.default_rng([6, N, D_DIM]).standard_normal((N, D_DIM), dtype=np.float32))
    else:
        rows = _realistic.power_law_pool(N, D_DIM, float(name.removeprefix("power")))
    known = np.sort(np.random.default_rng([2, N]).choice(len(rows), size=LABELLED, replace=False))
    return rows, known, BUDGET


def sample_statistics(rows: np.ndarray) -> dict[str, float]:
    queries, reference = _pruning._sample_rows(len(rows))
    d2 = _pruning._sq_distances(rows, queries, reference)
    same = queries[:, None] == reference[None, :]
    dist = np.sqrt(d2)
    mean = float(dist[~same].mean())
    d2[same] = np.inf
    nearest_sq = float(d2.min(axis=1).mean())
    stats = {"clustering_ratio": float(np.sqrt(d2.min(axis=1)).mean()) / mean}
    sample = rows[_sketch._sample_indices(len(rows))].astype(np.float64)
    spectrum = _sketch.principal_directions(sample, 1)[2]
    for k in WIDTHS:
        stats[f"energy{k}"] = _sketch.energy_captured(spectrum, k)
        stats[f"tail{k}/nn"] = 2 * float(spectrum[k:].sum()) / nearest_sq
    return stats


def run(rows: np.ndarray, known: np.ndarray, budget: int, algorithm: str, sketches: dict[int, _sketch.Sketch],
        seed: int = 0) -> dict[str, float]:
    n = len(rows)
    centred = rows - rows.mean(axis=0, dtype=np.float64).astype(np.float32)
    sq = np.einsum("ij,ij->i", centred, centred)
    D = np.full(n, np.inf, dtype=np.float32)
    counts = {phase: {(k, m): 0 for k in WIDTHS for m in (True, False)} for phase in ("labelled", "picks")}
    active_total = {"labelled": 0, "picks": 0}
    changed = {"labelled": 0, "picks": 0}
    rng = np.random.default_rng(seed)

    def add_centre(c: int, phase: str) -> None:
        d = np.maximum(sq + sq[c] - 2.0 * (centred @ centred[c]), 0.0)
        d[c] = 0.0
        active = D > 0
        active_total[phase] += int(active.sum())
        for k, sk in sketches.items():
            bound = _sketch.sketch_bounds(sk, c)
            counts[phase][(k, False)] += int((active & (bound < D)).sum())
            counts[phase][(k, True)] += int((active & ~_sketch.sketch_keeps_all(sk, c, D)).sum())
        changed[phase] += int((active & (d < D)).sum())
        np.minimum(D, d, out=D)

    for c in known:
        add_centre(int(c), "labelled")
    for _ in range(budget):
        if algorithm == "kcg":
            c = int(np.argmax(D))
        else:
            p = D.astype(np.float64)
            c = int(rng.choice(n, p=p / p.sum())) if p.sum() > 0 else int(np.argmax(D > 0))
        add_centre(c, "picks")
    out: dict[str, float] = {}
    for phase in ("labelled", "picks"):
        total = max(1, active_total[phase])
        out[f"{phase}:changed"] = changed[phase] / total
        for (k, margin), v in counts[phase].items():
            out[f"{phase}:k{k}:{'margin' if margin else 'plain'}"] = v / total
    return out


def main(names: list[str]) -> None:
    for name in names:
        rows, known, budget = pool(name)
        n, d = rows.shape
        with threadpool_limits(limits=1, user_api="blas"):
            stats = sample_statistics(rows)
            sketches = {k: _sketch.build_sketch(rows, k) for k in WIDTHS if k < d}
        print(f"\n## {name}: n={n} d={d} labelled={len(known)} budget={budget}")
        print("sample: clustering ratio %.3f; " % stats["clustering_ratio"]
              + "; ".join(f"k={k}: energy {stats[f'energy{k}']:.3f}, 2*tail/nn {stats[f'tail{k}/nn']:.2f}"
                          for k in sketches))
        predicted = _sketch.predicted_fractions(rows, len(known) + budget // 2, tuple(sketches))
        print("predicted from the sample (auto's estimate): " + "; ".join(
            f"k={k} {f:.4f} traffic {(k + 3) / (d + 1) + f:.3f}" for k, f in predicted.items()))
        print("build seconds: " + ", ".join(f"k={k} {sk.build_seconds:.2f}" for k, sk in sketches.items()))
        if n > 100_000:
            continue  # the numpy model of the selection would take hours
        for algorithm in ("kcg", "kmpp"):
            t = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"):
                res = run(rows, known, budget, algorithm, sketches)
            print(f"{algorithm} ({time.perf_counter() - t:.0f} s): rows whose D changes: labelled pass "
                  f"{res['labelled:changed']:.4f}, picks {res['picks:changed']:.4f}")
            for phase in ("labelled", "picks"):
                cells = []
                for k in sketches:
                    m, p = res[f"{phase}:k{k}:margin"], res[f"{phase}:k{k}:plain"]
                    cells.append(f"k={k} {m:.4f} ({p:.4f} plain) traffic {(k + 3) / (d + 1) + m:.3f}")
                print(f"  {phase:<8} evaluated fraction: " + "; ".join(cells))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:] or ["power1", "power0.5", "power1.5", "noise", "digits"])
