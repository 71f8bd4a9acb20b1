"""Sketch (projection) bounds on realistic embeddings: the numba pruning engine with a sketch vs
its brute force, and what `algorithm="auto"` makes of each pool.

Pools (bench/_realistic.py): power-law spectra (exponents 0.5, 1, 1.5) with 10 classes,
ReLU-clipped; isotropic Gaussian noise (nothing pays there: auto must stay near brute force);
the demo network's penultimate features on scikit-learn's digits. Per case, extra_info has the
rows fully evaluated per pick (and its fraction of the live rows), the labelled pass's fraction,
the sketch's width and build time, auto's choice, and the floor fraction (brute-force floor:
budget x n x row bytes / read bandwidth, over the measured time). Picks are checked equal to
brute force in every case.

Quick sizes by default (200 labelled, budgets 100-200); UWE_BENCH_SIZE=full runs the goal
sizes (1,000 labelled, budgets 200-1,000); UWE_BENCH_SIZE=smoke (implied by `--benchmark-disable`)
shrinks the pools to a few thousand rows. `python -m bench.bench_sketch [--backend cpp|numba]` runs the
issue's goal measurement: alternating public calls (brute, auto) on the 50,000 x 512
exponent-1 pool, isotropic noise and exponent 0.5, best of several, with the read bandwidth
measured in the same run (cpp, the default CPU backend, unless told). `--large`: auto (cpp) on
the 1,000,000 x 512 memory-mapped exponent-1 pool, budget 10,000, against the bandwidth floor
(brute force would take hours: its first picks are checked instead).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable

import numpy as np
import pytest

import uwe_kernels as uk
from bench import _realistic, _roofline
from bench._data import pick

pytest.importorskip("numba")

from uwe_kernels.numba import pruned  # noqa: E402
from uwe_kernels.numba import select as nsel  # noqa: E402
from uwe_kernels._sketch import engine_options  # noqa: E402

# (name, n, d, exponent (0: isotropic noise), labelled, budget)
GOAL = [
    ("power-1.0", 50_000, 512, 1.0, 1_000, 1_000),
    ("power-0.5", 50_000, 512, 0.5, 1_000, 300),
    ("power-1.5", 50_000, 512, 1.5, 1_000, 300),
    ("isotropic", 50_000, 512, 0.0, 1_000, 200),
]
# The quick run: the same pools, fewer labelled rows and picks (brute force at the goal sizes
# took 25-40 CPU seconds per case, and each auto case runs it twice more for its checks).
QUICK = [
    ("power-1.0", 50_000, 512, 1.0, 200, 200),
    ("power-0.5", 50_000, 512, 0.5, 200, 100),
    ("power-1.5", 50_000, 512, 1.5, 200, 100),
    ("isotropic", 50_000, 512, 0.0, 200, 100),
]
SMOKE = [
    ("power-1.0", 6_000, 64, 1.0, 100, 20),
    ("isotropic", 6_000, 64, 0.0, 100, 20),
]
DIGITS_BUDGET = 100


def realistic_pool(n: int, d: int, exponent: float) -> np.ndarray:
    if exponent == 0.0:
        return np.random.default_rng([5, n, d]).standard_normal((n, d), dtype=np.float32)
    return _realistic.power_law_pool(n, d, exponent)


def labelled_rows(n: int, count: int) -> np.ndarray:
    return np.sort(np.random.default_rng([6, n]).choice(n, count, replace=False))


def _engine(backend: str) -> tuple[Any, Any, bool]:
    """(op module, engine module with *_stats, whether the engine reads two sketch tiers)."""
    if backend == "cpp":
        from uwe_kernels.cpp import pruned as cpp_pruned
        from uwe_kernels.cpp import select as cpp_select
        return cpp_select, cpp_pruned, True
    return nsel, pruned, False


def dormancy(stats: dict[str, Any]) -> dict[str, Any]:
    """k-center greedy's dormant rows, as the engine reports them: rows that fell asleep, rows
    woken, wake rounds."""
    return {k: stats[k] for k in ("dormant_rows", "woken_rows", "wake_rounds") if k in stats}


def sketch_report(x: np.ndarray, labelled: np.ndarray, budget: int, backend: str = "numba",
                  want_picks: np.ndarray | None = None) -> dict[str, Any]:
    """auto's choice, and the work of a sketch-bounded k-center selection (auto's widths, or 16
    when auto turns the sketch down), its picks (and distances) checked against brute force
    (`want_picks`: brute force's picks when already known; distances are then not checked)."""
    n = len(x)
    mask = np.zeros(n, dtype=bool)
    mask[labelled] = True
    ops, engine, two_tier = _engine(backend)
    choice = ops.choose_algorithm(x, centres=len(labelled) + budget // 2, kcenter=True, labelled=len(labelled),
                                  budget=budget)
    sketch = getattr(choice, "sketch", None)
    options = {"sketch_width": min(16, x.shape[1] // 4), "mode": "plain"}
    if sketch is not None:
        options = {k: v for k, v in engine_options(x, choice, two_tier=two_tier).items() if k != "mode"}
        options["mode"] = "plain"
    width = options["sketch_width"]
    picks, dists, stats = engine.kcenter_greedy_stats(x, mask, budget, None, **options)
    if want_picks is None:
        want = ops.kcenter_greedy(x, mask, budget, None, algorithm="brute", progress=None, accum_dtype=np.float32)
        np.testing.assert_array_equal(dists, want[1])
        want_picks = want[0]
    np.testing.assert_array_equal(picks, want_picks)
    live = n - len(labelled) - np.arange(1, budget)  # rows a pass looks at, pick by pick
    # cpp counts the labelled pass's pairs in rows_touched too, numba apart
    per_pick = stats["rows_touched"] - (stats["labelled_pairs"] if backend == "cpp" else 0)
    return {"auto_choice": str(choice), "sketch_width": width, "first_tier": stats.get("first_tier", 0),
            "sketch_build_s": stats["sketch_build_seconds"],
            "rows_evaluated_per_pick": per_pick / max(1, budget - 1),
            "evaluated_fraction": per_pick / max(1, int(live.sum())),
            "labelled_pass_fraction": stats["labelled_pairs"] / max(1, n * len(labelled)),
            **dormancy(stats),
            "predicted_traffic": sketch.traffic if sketch is not None else None}


CASES = pick(QUICK, GOAL, smoke=SMOKE)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}x{c[2]}" for c in CASES])
@pytest.mark.parametrize("algorithm", ["brute", "auto"])
def test_realistic_pool(case: tuple[str, int, int, float, int, int], algorithm: str,
                        measure: Callable[..., Any], benchmark: Any) -> None:
    name, n, d, exponent, n_labelled, budget = case
    benchmark.group = f"sketch-kcg:{name}"
    x = realistic_pool(n, d, exponent)
    labelled = labelled_rows(n, n_labelled)
    info = sketch_report(x, labelled, budget) if algorithm == "auto" else {}
    picks = measure(lambda: uk.kcenter_greedy(x, labelled, budget, algorithm=algorithm, backend="numba"),
                    provider=f"numba-{algorithm}", shape=f"{name} {n}x{d} m={n_labelled} b={budget}",
                    bytes_moved=budget * x.nbytes, **info)
    np.testing.assert_array_equal(picks, uk.kcenter_greedy(x, labelled, budget, algorithm="brute",
                                                           backend="numba"))


@pytest.mark.parametrize("algorithm", ["brute", "auto"])
def test_digits_features(algorithm: str, measure: Callable[..., Any], benchmark: Any) -> None:
    benchmark.group = "sketch-kcg:digits"
    x, labelled = _realistic.digits_features(epochs=pick(60, 60, smoke=5))
    info = sketch_report(x, labelled, DIGITS_BUDGET) if algorithm == "auto" else {}
    measure(lambda: uk.kcenter_greedy(x, labelled, DIGITS_BUDGET, algorithm=algorithm, backend="numba"),
            provider=f"numba-{algorithm}", shape=f"digits {x.shape[0]}x{x.shape[1]} m={len(labelled)}",
            bytes_moved=DIGITS_BUDGET * x.nbytes, **info)


# ---------------------------------------------------------------- the goal measurement


def _best(fn: Callable[[], Any], out: list[float]) -> Any:
    t = time.perf_counter()
    result = fn()
    out.append(time.perf_counter() - t)
    return result


def goal(name: str, n: int, d: int, exponent: float, n_labelled: int, budget: int, rounds: int,
         bandwidth: float, backend: str = "numba") -> dict[str, Any]:
    """brute and auto (public calls) alternated `rounds` times; best of each."""
    x = realistic_pool(n, d, exponent)
    labelled = labelled_rows(n, n_labelled)
    times: dict[str, list[float]] = {"brute": [], "auto": []}
    picks: dict[str, np.ndarray] = {}
    uk.kcenter_greedy(x[:8192], labelled[labelled < 8192], 4, algorithm="auto", backend=backend)  # compile
    for _ in range(rounds):
        for algorithm in ("brute", "auto"):
            picks[algorithm] = _best(lambda: uk.kcenter_greedy(x, labelled, budget, algorithm=algorithm,
                                                               backend=backend, return_distances=True),
                                     times[algorithm])
    floor = budget * x.nbytes / bandwidth
    best = {k: min(v) for k, v in times.items()}
    return {"pool": name, "backend": backend, "n": n, "d": d, "labelled": n_labelled, "budget": budget,
            "load_average": os.getloadavg()[0],
            "same_picks": bool(np.array_equal(picks["brute"][0], picks["auto"][0])
                               and np.array_equal(picks["brute"][1], picks["auto"][1])),
            "brute_s": best["brute"], "auto_s": best["auto"], "floor_s": floor,
            "auto_vs_brute": best["brute"] / best["auto"], "auto_below_floor": floor / best["auto"],
            "times": times, **sketch_report(x, labelled, budget, backend, picks["brute"][0])}


def goal_large(n: int, d: int, n_labelled: int, budget: int, bandwidth: float, check: int) -> dict[str, Any]:
    """The large goal: auto (its choice, then the cpp engine with that choice, as the public
    call runs them) on a memory-mapped exponent-1 pool; brute force is not run in full (hours):
    the floor comes from the measured bandwidth, and the first `check` picks are compared with
    a brute-force run of that budget (k-center greedy's picks are a prefix of a longer run's)."""
    from uwe_kernels.cpp import pruned as cpp_pruned
    from uwe_kernels.cpp import select as cpp_select

    start = time.perf_counter()
    x = _realistic.power_law_memmap(n, d, 1.0)
    made = time.perf_counter() - start
    labelled = labelled_rows(n, n_labelled)
    mask = np.zeros(n, dtype=bool)
    mask[labelled] = True
    start = time.perf_counter()
    choice = cpp_select.choose_algorithm(x, centres=n_labelled + budget // 2, kcenter=True, labelled=n_labelled,
                                         budget=budget)
    if "sketch" in choice:
        options = engine_options(x, choice, two_tier=True)
    else:  # the plain pass without a sketch reads every row, as brute force does
        options = {"mode": "plain" if choice == "brute" else "adaptive"}
    choose_s = time.perf_counter() - start
    picks, _, stats = cpp_pruned.kcenter_greedy_stats(x, mask, budget, None, **options)
    auto_s = time.perf_counter() - start
    start = time.perf_counter()
    want = uk.kcenter_greedy(x, labelled, check, algorithm="brute", backend="cpp")
    brute_prefix_s = time.perf_counter() - start
    floor = budget * x.nbytes / bandwidth
    return {"pool": "power-1.0 memmap", "backend": "cpp", "n": n, "d": d, "labelled": n_labelled, "budget": budget,
            "load_average": os.getloadavg()[0], "pool_seconds": made, "auto_choice": str(choice),
            "sketch_width": stats.get("sketch_width"), "first_tier": stats.get("first_tier"),
            "choose_s": choose_s, "sketch_build_s": stats.get("sketch_build_seconds"), "auto_s": auto_s,
            "floor_s": floor, "auto_below_floor": floor / auto_s,
            "rows_evaluated_per_pick": (stats["rows_touched"] - stats["labelled_pairs"]) / max(1, budget - 1),
            "labelled_pass_fraction": stats["labelled_pairs"] / max(1, (n - n_labelled) * n_labelled),
            **dormancy(stats),
            f"first_{check}_picks_equal_brute": bool(np.array_equal(picks[:check], want)),
            "brute_prefix_s": brute_prefix_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pools", nargs="*", default=[c[0] for c in GOAL])
    parser.add_argument("--backend", default="cpp", choices=("cpp", "numba"))
    parser.add_argument("--large", action="store_true",
                        help="the 1,000,000 x 512 memory-mapped pool, budget 10,000 (cpp auto only)")
    args = parser.parse_args()
    bandwidth = _roofline.cpu_read_bandwidth(repeats=5)
    print(json.dumps({"read_bandwidth": bandwidth}), flush=True)
    if args.large:
        print(json.dumps(goal_large(1_000_000, 512, 1_000, 10_000, bandwidth["best"], check=200)), flush=True)
        return
    for name, n, d, exponent, _, budget in GOAL:
        if name in args.pools:
            row = goal(name, n, d, exponent, 1_000, 1_000 if name == "power-1.0" else budget, args.rounds,
                       bandwidth["best"], args.backend)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
