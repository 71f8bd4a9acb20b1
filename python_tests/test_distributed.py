from __future__ import annotations

import datetime
import os
import pickle
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from conftest import DTYPES
from helpers import as_float64, gaussian_pool, rtol

import uwe_kernels
from uwe_kernels._arrays import BFLOAT16

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)



@dataclass(frozen=True)
class Case:
    name: str
    algo: str
    sizes: tuple[int, ...]
    d: int = 5
    dtype: str = "float32"
    factored: str = ""
    labelled: tuple[int, ...] = ()
    budget: int = 5
    seed: int = 0
    first: Any = None
    lookahead: int = 8
    as_mask: bool = False
    as_torch: bool = False
    backend: str = "reference"
    pool_seed: int = 0
    distinct: int = 0
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def make_pool(case: Case) -> Any:
    n = sum(case.sizes)
    dtype = DTYPES[case.dtype]
    if case.distinct:
        base = gaussian_pool(case.distinct, case.d, case.pool_seed, dtype)
        return base[np.random.default_rng(case.pool_seed).integers(0, case.distinct, n)]
    if not case.factored:
        return gaussian_pool(n, case.d, case.pool_seed, dtype)
    rng = np.random.default_rng(case.pool_seed + 1000)
    features = gaussian_pool(n, case.d, case.pool_seed, dtype)
    if case.factored == "uwe":
        weights = rng.uniform(0.2, 1.5, n).astype(dtype)
    else:
        weights = rng.standard_normal((n, 3)).astype(dtype)
    return weights, features


def shard_of(case: Case, pool: Any, rank: int) -> Any:
    start = sum(case.sizes[:rank])
    stop = start + case.sizes[rank]
    if case.factored:
        w, f = pool[0][start:stop], pool[1][start:stop]
        if case.as_torch:
            w, f = _torch(w), _torch(f)
        return uwe_kernels.FactoredEmbedding(w, f)
    return _torch(pool[start:stop]) if case.as_torch else pool[start:stop]


def _torch(x: np.ndarray) -> Any:
    if x.dtype == BFLOAT16:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(x.copy())


def local_labelled(case: Case, rank: int) -> Any:
    start = sum(case.sizes[:rank])
    local = [g - start for g in case.labelled if start <= g < start + case.sizes[rank]]
    if case.as_mask:
        mask = np.zeros(case.sizes[rank], dtype=bool)
        mask[local] = True
        return mask
    return np.asarray(local, dtype=np.int64)


def single_process(case: Case, return_distances: bool = False) -> Any:
    pool = make_pool(case)
    emb = uwe_kernels.FactoredEmbedding(*pool) if case.factored else pool
    labelled = list(case.labelled)
    if case.algo == "kcg":
        out = uwe_kernels.kcenter_greedy(emb, labelled, case.budget, first=case.first, backend=case.backend,
                                         return_distances=return_distances)
        return out if return_distances else np.asarray(out)
    first = "max_norm" if case.first is None else case.first
    return np.asarray(uwe_kernels.kmeans_pp(emb, case.budget, labelled_idx=labelled, seed=case.seed,
                                            first=first, backend=case.backend))


def sequential_prefix_pick(values: np.ndarray, r: float) -> int:
    chain = np.cumsum(values)
    hit = np.flatnonzero(chain > r * chain[-1])
    return int(hit[0]) if hit.size else int(np.flatnonzero(values > 0)[-1])


def prefix_values(sizes: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    values = rng.uniform(0.0, 1.0, n) * 10.0 ** rng.integers(-3, 4, n)
    values[rng.random(n) < 0.2] = 0.0
    return values


def run_case(case: Case, rank: int) -> Any:
    from uwe_kernels.distributed.shard import Shard

    if case.algo == "prefix":
        return run_prefix_case(case, rank)
    if case.algo == "fail_midway":
        calls = {"n": 0}
        original = Shard.sqdist

        def failing(self: Any, centres: Any) -> Any:
            calls["n"] += 1
            if rank == case.extra["rank"] and calls["n"] == case.extra["after"]:
                raise RuntimeError("injected kernel failure")
            return original(self, centres)

        Shard.sqdist = failing
        try:
            return run_selection(case, rank)
        finally:
            Shard.sqdist = original
    if case.algo == "rank_dies":
        if rank == case.extra["rank"]:
            raise KeyError("rank left before selecting")
        return run_selection(Case(case.name, "kcg", case.sizes, budget=case.budget), rank)
    return run_selection(case, rank)


def run_selection(case: Case, rank: int) -> Any:
    from uwe_kernels import distributed as ud

    pool = make_pool(case)
    emb = shard_of(case, pool, rank)
    labelled = local_labelled(case, rank)
    budget = case.extra.get("budget_of", {}).get(rank, case.budget)
    if "bad_labelled" in case.extra and rank == case.extra["bad_labelled"]:
        labelled = np.array([case.sizes[rank] + 3])
    stats: dict[str, Any] = {}
    if case.algo == "kcg" or (case.algo == "fail_midway" and "kmpp" not in case.extra):
        picks, dists = ud.kcenter_greedy(emb, labelled, budget, first=case.first, lookahead=case.lookahead,
                                         backend=case.backend, return_distances=True, stats=stats)
        return {"picks": picks, "dists": dists, "stats": stats}
    first = "max_norm" if case.first is None else case.first
    picks = ud.kmeans_pp(emb, budget, labelled, seed=case.seed, first=first, backend=case.backend,
                         stats=stats)
    return {"picks": picks, "stats": stats}


def run_prefix_case(case: Case, rank: int) -> Any:
    from uwe_kernels.distributed import kmeans, session

    values = prefix_values(case.sizes, case.seed)
    start = sum(case.sizes[:rank])
    local = torch.from_numpy(values[start : start + case.sizes[rank]].copy())
    emb = np.zeros((case.sizes[rank], 1))
    sel = session.Session(emb, None, None, "reference", None, lambda: session.settings("kmeans_pp", 0, 1, 0, None))
    draws = np.concatenate([np.random.default_rng(case.seed).random(15), case.extra["draws"]])
    fast = [kmeans.prefix_pick(sel, local, float(r))[0] for r in draws]
    exact = [kmeans.prefix_pick(sel, local, float(r), force_exact=True)[0] for r in draws]
    return {"fast": fast, "exact": exact, "draws": draws, "exact_picks": sel.stats.exact_prefix_picks}


def _worker(rank: int, world: int, port: int, cases: list[Case], outdir: str, timeout_s: float) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    results = {}
    for case in cases:
        t0 = time.perf_counter()
        try:
            value = ("ok", _plain(run_case(case, rank)))
        except Exception as exc:
            value = ("error", type(exc).__name__, str(exc))
        results[case.name] = (value, time.perf_counter() - t0)
        if case.algo == "rank_dies":
            break
    with open(os.path.join(outdir, f"{rank}.pkl"), "wb") as fh:
        pickle.dump(results, fh)
    if not any(c.algo == "rank_dies" for c in cases):
        dist.destroy_process_group()
    elif world > 1:
        # A group that lost a rank cannot be torn down cleanly: gloo's threads may abort the
        # interpreter's shutdown. The results are on disk, so leave without finalising.
        os._exit(0)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return ("torch", value.float().numpy() if value.is_floating_point() else value.numpy())
    return value


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(world: int, cases: list[Case], tmp: Any, timeout_s: float = 60.0) -> tuple[list[dict[str, Any]], float]:
    outdir = str(tmp)
    t0 = time.perf_counter()
    mp.start_processes(_worker, args=(world, _free_port(), cases, outdir, timeout_s), nprocs=world,
                       join=True, start_method="spawn")
    elapsed = time.perf_counter() - t0
    out = []
    for rank in range(world):
        with open(os.path.join(outdir, f"{rank}.pkl"), "rb") as fh:
            out.append(pickle.load(fh))
    return out, elapsed


def run_in_this_process(cases: list[Case], tmp: Any) -> tuple[list[dict[str, Any]], float]:
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        _worker(0, 1, _free_port(), cases, str(tmp), 60.0)
    finally:
        torch.set_num_threads(threads)
        if dist.is_initialized():
            dist.destroy_process_group()
    with open(os.path.join(str(tmp), "0.pkl"), "rb") as fh:
        return [pickle.load(fh)], time.perf_counter() - t0


def selection_cases(world: int) -> list[Case]:
    sizes = {1: [(23,)], 2: [(13, 10)], 4: [(5, 0, 17, 9)]}[world]
    cases = []
    for s_i, sizes_w in enumerate(sizes):
        n = sum(sizes_w)
        lab_rank = max(range(world), key=lambda q: sizes_w[q])
        start = sum(sizes_w[:lab_rank])
        lab = (start + 1, start + 3, start + 3)
        big = max(sizes_w) + 2 if max(sizes_w) + 2 <= n - 2 else n - 2
        for dtype in DTYPES:
            cases.append(Case(f"kcg-dense-{dtype}-s{s_i}", "kcg", sizes_w, dtype=dtype, labelled=lab,
                              budget=big, pool_seed=s_i))
        cases += [
            Case(f"kcg-nolab-s{s_i}", "kcg", sizes_w, budget=n, pool_seed=s_i + 7),
            Case(f"kcg-first-s{s_i}", "kcg", sizes_w, budget=4, first=n - 1, pool_seed=s_i, lookahead=1),
            Case(f"kcg-mask-torch-s{s_i}", "kcg", sizes_w, labelled=lab, budget=6, as_mask=True,
                 as_torch=True, dtype="bfloat16", pool_seed=s_i + 3),
            Case(f"kcg-uwe-factored-s{s_i}", "kcg", sizes_w, factored="uwe", labelled=lab[:1], budget=7,
                 dtype="float64", pool_seed=s_i),
            Case(f"kcg-badge-factored-s{s_i}", "kcg", sizes_w, d=3, factored="badge", budget=8,
                 dtype="float32", pool_seed=s_i, as_torch=True),
            Case(f"kcg-d1-s{s_i}", "kcg", sizes_w, d=1, budget=min(n, 9), pool_seed=s_i + 11,
                 dtype="float64"),
            Case(f"kcg-budget0-s{s_i}", "kcg", sizes_w, labelled=lab, budget=0),
        ]
        if world == 1:
            cases.append(Case(f"kcg-auto-s{s_i}", "kcg", sizes_w, labelled=lab, budget=big, backend="auto"))
        for seed in (0, 1, 2, 2**64 - 1):
            cases.append(Case(f"kmpp-seed{seed}-s{s_i}", "kmpp", sizes_w, labelled=lab if seed % 2 else (),
                              budget=big, seed=seed, dtype="float64", pool_seed=s_i))
        cases += [
            Case(f"kmpp-random-first-s{s_i}", "kmpp", sizes_w, budget=6, seed=5, first="random"),
            Case(f"kmpp-index-first-s{s_i}", "kmpp", sizes_w, budget=6, seed=6, first=n - 2, dtype="float16"),
            Case(f"kmpp-badge-factored-s{s_i}", "kmpp", sizes_w, d=4, factored="badge", labelled=lab,
                 budget=big, seed=3, dtype="float64", pool_seed=s_i),
            Case(f"kmpp-uwe-factored-s{s_i}", "kmpp", sizes_w, factored="uwe", budget=5, seed=4,
                 dtype="bfloat16", as_torch=True),
            Case(f"kmpp-all-s{s_i}", "kmpp", sizes_w, budget=n - 3, labelled=lab, seed=9, dtype="float64"),
            Case(f"kmpp-duplicates-s{s_i}", "kmpp", sizes_w, budget=n - 2, labelled=lab[:1], seed=10, distinct=4),
            Case(f"kcg-duplicates-s{s_i}", "kcg", sizes_w, budget=n - 2, labelled=lab[:1], distinct=4),
            Case(f"kcg-duplicates-nolab-s{s_i}", "kcg", sizes_w, budget=n, distinct=3, lookahead=3),
        ]
    return cases


def prefix_cases(world: int) -> list[Case]:
    sizes = {1: (40,), 2: (25, 31), 4: (9, 0, 30, 14)}[world]
    values = prefix_values(sizes, 3)
    chain = np.cumsum(values)
    near = [np.nextafter(chain[i] / chain[-1], k) for i in (3, 10, len(chain) // 2) for k in (0.0, 1.0)]
    return [Case(f"prefix-w{world}", "prefix", sizes, seed=3,
                 extra={"draws": np.array(near + [0.0, 1.0 - 2.0**-53])})]


WORLDS = (1, 2, 4)
_RESULTS: dict[int, tuple[list[dict[str, Any]], list[Case]]] = {}


FAILURE_WORLD = 4
_ELAPSED: dict[int, float] = {}


def world_results(world: int, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[Case]]:
    if world not in _RESULTS:
        cases = selection_cases(world) + prefix_cases(world)
        if world == FAILURE_WORLD:
            cases += failure_cases()
        if world == 1:
            out, _ELAPSED[world] = run_in_this_process(cases, tmp_path_factory.mktemp("world1"))
        else:
            out, _ELAPSED[world] = run_world(world, cases, tmp_path_factory.mktemp(f"world{world}"),
                                             timeout_s=20.0)
        _RESULTS[world] = (out, cases)
    return _RESULTS[world]


def _ok(result: Any, rank: int, name: str) -> dict[str, Any]:
    value, _ = result
    assert value[0] == "ok", f"rank {rank} failed on {name}: {value[1:]}"
    return value[1]


def _array(x: Any) -> np.ndarray:
    return x[1] if isinstance(x, tuple) and x and x[0] == "torch" else np.asarray(x)


@pytest.mark.parametrize("world", WORLDS)
def test_selection_equals_single_process(world: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    out, cases = world_results(world, tmp_path_factory)
    failures = []
    for case in cases:
        if case.algo not in ("kcg", "kmpp") or case.extra:
            continue
        expected = single_process(case)
        got = [_ok(out[rank][case.name], rank, case.name) for rank in range(world)]
        for rank, res in enumerate(got):
            picks = _array(res["picks"])
            if not np.array_equal(picks, expected):
                failures.append(f"{case.name} rank {rank}: {picks.tolist()} != {expected.tolist()}")
        if case.as_torch:
            assert all(isinstance(r["picks"], tuple) and r["picks"][0] == "torch" for r in got)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("world", WORLDS)
def test_kcg_distances_and_properties(world: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    out, cases = world_results(world, tmp_path_factory)
    for case in (c for c in cases if c.algo == "kcg" and not c.extra):
        res = [_ok(out[rank][case.name], rank, case.name) for rank in range(world)]
        picks = _array(res[0]["picks"])
        dists = _array(res[0]["dists"]).astype(np.float64)
        assert len(set(picks.tolist())) == len(picks) == case.budget
        assert not set(picks.tolist()) & set(case.labelled)
        assert ((picks >= 0) & (picks < sum(case.sizes))).all()
        finite = dists[np.isfinite(dists)]
        assert (np.diff(finite) <= finite[:-1] * 1e-2 + 1e-6).all(), case.name
        if case.labelled or case.budget == 0:
            assert np.isfinite(dists).all()
        else:
            assert np.isinf(dists[0])
        for other in res[1:]:
            np.testing.assert_array_equal(_array(other["dists"]), _array(res[0]["dists"]))
        _, expected = single_process(case, return_distances=True)
        np.testing.assert_allclose(dists, as_float64(expected), rtol=rtol(DTYPES[case.dtype]), err_msg=case.name)


@pytest.mark.parametrize("world", WORLDS)
def test_kmpp_prefix_rule_is_the_sequential_chain(world: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    out, cases = world_results(world, tmp_path_factory)
    case = next(c for c in cases if c.algo == "prefix")
    values = prefix_values(case.sizes, case.seed)
    for rank in range(world):
        res = _ok(out[rank][case.name], rank, case.name)
        expected = [sequential_prefix_pick(values, float(r)) for r in res["draws"]]
        assert res["fast"] == expected
        assert res["exact"] == expected
        assert res["exact_picks"] > len(res["draws"])


@pytest.mark.parametrize("sizes", [(25, 31), (9, 0, 30, 14)], ids=["2-shards", "4-shards"])
def test_chained_shard_totals_differ_from_the_sequential_sum(sizes: tuple[int, ...]) -> None:
    values = prefix_values(sizes, 3)
    by_shard = 0.0
    for part in np.split(values, np.cumsum(sizes)[:-1]):
        by_shard += float(np.cumsum(part)[-1]) if part.size else 0.0
    assert by_shard != float(np.cumsum(values)[-1])


@pytest.mark.parametrize("world", (2, 4))
def test_lookahead_accepts_extra_picks(world: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    out, cases = world_results(world, tmp_path_factory)
    stats = [_ok(out[0][c.name], 0, c.name)["stats"] for c in cases if c.name.startswith("kcg-nolab")]
    assert sum(s["lookahead_accepted"] for s in stats) > 0
    assert all(s["rounds"] + s["lookahead_accepted"] == s["picks"] - 1 for s in stats)
    assert all(s["comm_s_per_pick"] > 0 for s in stats)


def failure_cases() -> list[Case]:
    sizes = (9, 12, 0, 6)
    return [
        Case("bad-labelled-one-rank", "kcg", sizes, budget=3, extra={"bad_labelled": 1}),
        Case("budgets-disagree", "kcg", sizes, budget=3, extra={"budget_of": {2: 4}}),
        Case("budget-too-large", "kmpp", sizes, budget=27, labelled=(1,), extra={"expect": "outside [0, 26]"}),
        Case("first-out-of-range", "kcg", sizes, budget=2, first=27, extra={"expect": "out of range"}),
        Case("kernel-fails-midway-kcg", "fail_midway", sizes, budget=8, labelled=(2,),
             extra={"rank": 1, "after": 4}),
        Case("kernel-fails-midway-kmpp", "fail_midway", sizes, budget=8, extra={"rank": 3, "after": 3, "kmpp": 1}),
        Case("still-works-after-failures", "kcg", sizes, budget=6, labelled=(4, 10), extra={"after_failures": 1}),
        Case("rank-dies-before-selecting", "rank_dies", sizes, budget=3, extra={"rank": 2}),
    ]


@pytest.fixture(scope="module")
def failure_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], float]:
    out, _ = world_results(FAILURE_WORLD, tmp_path_factory)
    return out, _ELAPSED[FAILURE_WORLD]


def _errors(out: list[dict[str, Any]], name: str) -> list[tuple[str, str]]:
    return [(r[name][0][1], r[name][0][2]) if r[name][0][0] == "error" else ("ok", "") for r in out]


@pytest.mark.parametrize("name,text", [
    ("bad-labelled-one-rank", "rank 1 failed: ValueError"),
    ("kernel-fails-midway-kcg", "rank 1 failed: RuntimeError: injected kernel failure"),
    ("kernel-fails-midway-kmpp", "rank 3 failed: RuntimeError: injected kernel failure"),
])
def test_a_failing_rank_makes_every_rank_raise(failure_world: tuple[list[dict[str, Any]], float],
                                               name: str, text: str) -> None:
    out, _ = failure_world
    errors = _errors(out, name)
    assert all(kind == "DistributedSelectionError" and text in msg for kind, msg in errors), errors


@pytest.mark.parametrize("name,text", [
    ("budgets-disagree", "same budget"),
    ("budget-too-large", "outside [0, 26]"),
    ("first-out-of-range", "out of range"),
])
def test_inconsistent_arguments_raise_the_same_error_everywhere(
        failure_world: tuple[list[dict[str, Any]], float], name: str, text: str) -> None:
    out, _ = failure_world
    errors = _errors(out, name)
    assert all(k == "ValueError" and text in msg for k, msg in errors), errors


def test_group_stays_usable_after_reported_failures(failure_world: tuple[list[dict[str, Any]], float]) -> None:
    out, _ = failure_world
    case = next(c for c in failure_cases() if c.name == "still-works-after-failures")
    expected = single_process(case)
    for rank, r in enumerate(out):
        np.testing.assert_array_equal(_array(_ok(r[case.name], rank, case.name)["picks"]), expected)


def test_a_rank_that_never_arrives_raises_within_the_timeout(failure_world: tuple[list[dict[str, Any]], float]) -> None:
    out, elapsed = failure_world
    name = "rank-dies-before-selecting"
    errors = _errors(out, name)
    assert errors[2][0] == "KeyError"
    others = [errors[q] for q in (0, 1, 3)]
    assert all(kind in ("RuntimeError", "DistributedSelectionError", "DistBackendError") for kind, _ in others), others
    assert max(out[q][name][1] for q in (0, 1, 3)) < 30.0
    assert elapsed < 120.0


def test_importing_the_package_does_not_import_torch_distributed() -> None:
    import subprocess
    import sys

    code = "import sys, uwe_kernels; print('torch.distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(uwe_kernels.__file__)))
    assert out.stdout.strip() == "False"
