"""Sketch bounds inside the pruning engines (numba, cpp): the same picks (and, for k-center
greedy, the same distances bit for bit) as the backend's brute force on the inputs that
stress the test's margin, and `auto`'s choice among brute, group bounds and the sketch."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import uwe_kernels as uk  # noqa: E402
from uwe_kernels import _sketch  # noqa: E402
from uwe_kernels._arrays import BFLOAT16  # noqa: E402
from uwe_kernels.cpp import pruned as cpp_pruned  # noqa: E402
from uwe_kernels.cpp import select as cpp_select  # noqa: E402
from uwe_kernels.factored import FactoredArrays  # noqa: E402
from uwe_kernels.numba import pruned, sketched  # noqa: E402
from uwe_kernels.numba import select as nsel  # noqa: E402

from helpers import clustered_pool, gaussian_pool  # noqa: E402

DTYPES = {"float16": np.dtype(np.float16), "bfloat16": BFLOAT16, "float32": np.dtype(np.float32),
          "float64": np.dtype(np.float64)}
# (mode, sketch width): sketch only, sketch with group bounds, group bounds that never fall back
ENGINES = [("plain", 4), ("adaptive", 4), ("pruned", 8), ("plain", 1)]
# cpp also reads two tiers: (mode, wide tier, first tier) -- the first for every row, the wide
# one only where the first does not settle the row (labelled pass included)
TIERS = [("plain", 8, 2), ("adaptive", 6, 1), ("pruned", 8, 4)]


def acc(x: np.ndarray) -> type:
    return np.float64 if getattr(x, "features", x).dtype == np.float64 else np.float32


def low_rank(rng: np.random.Generator, n: int, d: int, rank: int, noise: float) -> np.ndarray:
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    return rng.standard_normal((n, rank)) * np.linspace(4, 1, rank) @ basis.T + noise * rng.standard_normal((n, d))


def near_ties(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """A low-rank pool, near copies (1e-4 apart) and exact copies of some of its rows."""
    rows = low_rank(rng, n, d, 5, 0.2)
    picks = rng.choice(n, n // 6, replace=False)
    return np.concatenate([rows, rows[picks] + 1e-4 * rng.standard_normal((len(picks), d)), rows[picks[:20]]])


def outside_twins(rng: np.random.Generator, n: int, d: int, k: int) -> np.ndarray:
    """Rows of rank k, and twins that differ from them only outside those k directions."""
    rows = low_rank(rng, n, d, k, 0.0)
    basis = np.linalg.svd(rows - rows.mean(0), full_matrices=True)[2].T
    twins = rows[: n // 4] + 1e-2 * rng.standard_normal((n // 4, d - k)) @ basis[:, k:].T
    return np.concatenate([rows, twins])


def zero_residuals(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Exactly rank 3 (every residual is rounding) with duplicates."""
    rows = low_rank(rng, n, d, 3, 0.0)
    return np.concatenate([rows, rows[:40]])


POOLS = {"near_ties": near_ties, "outside_twins": lambda rng, n, d: outside_twins(rng, n, d, 4),
         "zero_residuals": zero_residuals}


def mask_of(n: int, count: int, seed: int = 0) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, count, replace=False)] = True
    return mask


# backend -> (op module with a brute force, engine module with *_stats)
BACKENDS = {"numba": (nsel, pruned), "cpp": (cpp_select, cpp_pruned)}


def cpp_available() -> bool:
    return bool(uk.backends()["cpp"][0])


@pytest.fixture(params=list(BACKENDS))
def engine_name(request: pytest.FixtureRequest) -> str:
    if request.param == "cpp" and not cpp_available():
        pytest.skip("cpp: " + uk.backends()["cpp"][1])
    return str(request.param)


def engine_runs(backend: str) -> list[dict]:
    """The engine settings a backend is checked with: one tier, and two tiers on cpp."""
    runs = [{"mode": mode, "sketch_width": width} for mode, width in ENGINES]
    if backend == "cpp":
        runs += [{"mode": mode, "sketch_width": wide, "first_tier": tier} for mode, wide, tier in TIERS]
    return runs


def check_kcg(x: np.ndarray, mask: np.ndarray, budget: int, first: int | None = None,
              backend: str = "numba") -> list[dict]:
    ops, engine = BACKENDS[backend]
    want, want_d = ops.kcenter_greedy(x, mask, budget, first, algorithm="brute", progress=None, accum_dtype=acc(x))
    out = []
    for run in engine_runs(backend):
        picks, dists, stats = engine.kcenter_greedy_stats(x, mask, budget, first, accum_dtype=acc(x), **run)
        np.testing.assert_array_equal(picks, want, err_msg=str(run))
        np.testing.assert_array_equal(dists, want_d, err_msg=str(run))
        out.append(stats)
    return out


def check_kmpp(x: np.ndarray, mask: np.ndarray, budget: int, seed: int, first: object,
               backend: str = "numba") -> None:
    ops, engine = BACKENDS[backend]
    want = ops.kmeans_pp(x, mask, budget, seed, first, algorithm="brute", progress=None, accum_dtype=acc(x))
    for run in engine_runs(backend):
        picks, _ = engine.kmeans_pp_stats(x, mask, budget, seed, first, accum_dtype=acc(x), **run)
        np.testing.assert_array_equal(picks, want, err_msg=str(run))


@pytest.mark.parametrize("labelled", [0, 9])
@pytest.mark.parametrize("pool", list(POOLS))
def test_kcenter_with_a_sketch_matches_brute(pool: str, labelled: int, engine_name: str) -> None:
    x = POOLS[pool](np.random.default_rng(1), 360, 23).astype(np.float32)
    for stats in check_kcg(x, mask_of(len(x), labelled), 60, backend=engine_name):
        assert stats["sketch_width"] > 0 and stats["sketch_build_seconds"] > 0


@pytest.mark.parametrize("pool", list(POOLS))
def test_kmeans_with_a_sketch_matches_brute(pool: str, engine_name: str) -> None:
    x = POOLS[pool](np.random.default_rng(2), 330, 21).astype(np.float32)
    check_kmpp(x, np.zeros(len(x), bool), 50, 3, "max_norm", engine_name)
    check_kmpp(x, mask_of(len(x), 6), 50, 8, "random", engine_name)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_every_pool_dtype(dtype: str, engine_name: str) -> None:
    x = near_ties(np.random.default_rng(3), 300, 17).astype(DTYPES[dtype])
    check_kcg(x, mask_of(len(x), 5), 45, backend=engine_name)
    check_kmpp(x, mask_of(len(x), 5), 45, 2, "max_norm", engine_name)


def test_memory_mapped_pool(tmp_path, engine_name: str) -> None:  # type: ignore[no-untyped-def]
    rows = near_ties(np.random.default_rng(4), 300, 19).astype(np.float32)
    mapped = np.memmap(tmp_path / "pool.bin", dtype=np.float32, mode="w+", shape=rows.shape)
    mapped[:] = rows
    mapped.flush()
    pool = np.memmap(tmp_path / "pool.bin", dtype=np.float32, mode="r", shape=rows.shape)
    check_kcg(pool, mask_of(len(rows), 4), 40, backend=engine_name)
    check_kmpp(pool, np.zeros(len(rows), bool), 40, 5, "max_norm", engine_name)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_cpp_factored_uwe_with_a_sketch_matches_brute(dtype: str) -> None:
    if not cpp_available():
        pytest.skip("cpp: " + uk.backends()["cpp"][1])
    rng = np.random.default_rng(9)
    features = near_ties(rng, 300, 18).astype(DTYPES[dtype])
    weights = rng.uniform(0.2, 1.5, len(features)).astype(DTYPES[dtype])
    fa = FactoredArrays(weights, features)
    mask = mask_of(len(features), 6)
    check_kcg(fa, mask, 40, backend="cpp")  # type: ignore[arg-type]
    check_kmpp(fa, mask, 40, 4, "max_norm", "cpp")  # type: ignore[arg-type]


def test_cpp_badge_gets_no_sketch() -> None:
    if not cpp_available():
        pytest.skip("cpp: " + uk.backends()["cpp"][1])
    rng = np.random.default_rng(10)
    fa = FactoredArrays(rng.standard_normal((50, 3)).astype(np.float32), rng.standard_normal((50, 6)).astype(np.float32))
    with pytest.raises(ValueError, match="not BADGE"):
        cpp_pruned.kcenter_greedy_stats(fa, np.zeros(50, bool), 5, None, sketch_width=2)


def require_cpp() -> None:
    if not cpp_available():
        pytest.skip("cpp: " + uk.backends()["cpp"][1])


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_cpp_sketched_labelled_pass_matches_brute(dtype: str) -> None:
    """Enough rows for the labelled pass's probe and later units, on a pool the sketch settles
    (low rank, with near and exact copies of labelled rows), then many labelled rows."""
    require_cpp()
    rng = np.random.default_rng(11)
    rows = low_rank(rng, 2600, 24, 4, 0.02)
    copies = [rows[:60] + 1e-5 * rng.standard_normal((60, 24)), rows[:30]]
    x = np.concatenate([rows, *copies]).astype(DTYPES[dtype])
    for labelled in (40, 400):
        mask = mask_of(len(x), labelled, seed=labelled)
        mask[:30] = True  # rows with exact copies among the unlabelled ones: D = 0 there
        stats = check_kcg(x, mask, 25, backend="cpp")
        check_kmpp(x, mask, 25, 6, "max_norm", "cpp")
        m = int(mask.sum())
        assert all(st["labelled_pairs"] < 0.3 * m * (len(x) - m) for st in stats)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_cpp_labelled_pass_with_many_centres_per_row_matches_brute(dtype: str) -> None:
    """Rows wide enough for whole SIMD blocks, early-exit checks, leftover blocks and a scalar
    tail (d = 301), several centres per row left to a full distance (many stopping early):
    D, picks and distances stay the brute force's."""
    require_cpp()
    rng = np.random.default_rng(21)
    rows = low_rank(rng, 2400, 301, 6, 0.05)
    x = np.concatenate([rows, rows[:200] + 1e-4 * rng.standard_normal((200, 301)), rows[:20]]).astype(DTYPES[dtype])
    mask = mask_of(len(x), 300, seed=3)
    mask[:20] = True
    stats = check_kcg(x, mask, 25, backend="cpp")
    check_kmpp(x, mask, 25, 8, "max_norm", "cpp")
    m, rest = int(mask.sum()), len(x) - int(mask.sum())
    # some run's sketched pass left several centres per row, and did not hand over
    assert any(2 * rest < st["labelled_pairs"] < 0.3 * m * rest for st in stats)


def test_cpp_labelled_pass_hands_over_to_the_tile_pass_where_the_sketch_does_not_pay() -> None:
    """k-means++ (every D needed, no dormant rows): the probe's pairs, then every pair of the
    rows left."""
    require_cpp()
    x = gaussian_pool(3000, 32, seed=12)  # isotropic: a 2-wide sketch settles few pairs
    mask = mask_of(len(x), 50)
    check_kcg(x, mask, 20, backend="cpp")
    want = cpp_select.kmeans_pp(x, mask, 20, 4, "max_norm", algorithm="brute", progress=None, accum_dtype=np.float32)
    picks, stats = cpp_pruned.kmeans_pp_stats(x, mask, 20, 4, "max_norm", mode="plain", sketch_width=2)
    np.testing.assert_array_equal(picks, want)
    assert stats["dormant_rows"] == 0
    assert 0.9 * 50 * (len(x) - 50) < stats["labelled_pairs"] <= 50 * (len(x) - 50)


def test_cpp_two_tiers_read_the_wide_tier_only_for_rows_the_first_leaves() -> None:
    require_cpp()
    x = low_rank(np.random.default_rng(13), 4000, 48, 12, 0.01).astype(np.float32)
    mask = mask_of(len(x), 30)
    one = cpp_pruned.kcenter_greedy_stats(x, mask, 80, None, mode="plain", sketch_width=2)
    two = cpp_pruned.kcenter_greedy_stats(x, mask, 80, None, mode="plain", sketch_width=16, first_tier=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert two[2]["first_tier"] == 2 and two[2]["sketch_width"] == 16
    assert two[2]["rows_touched"] < 0.5 * one[2]["rows_touched"]
    with pytest.raises(ValueError, match="wider second tier"):
        cpp_pruned._ext().kcenter_greedy_pruned(cpp_pruned._spec(x), mask, 3, -1, False, 0, None,
                                                cpp_pruned._sketch_args(x, 4, 0, None, False)[0],
                                                cpp_pruned._sketch_args(x, 2, 0, None, False)[0])


def test_the_sketch_skips_most_rows_of_a_low_rank_pool() -> None:
    x = low_rank(np.random.default_rng(5), 3000, 64, 6, 0.01).astype(np.float32)
    mask = mask_of(len(x), 50)
    _, _, stats = pruned.kcenter_greedy_stats(x, mask, 100, None, mode="plain", sketch_width=8)
    assert stats["rows_touched"] < 0.2 * 99 * (len(x) - 50)
    assert stats["labelled_pairs"] < 0.2 * 50 * len(x)
    assert stats["sketch_tests"] >= stats["rows_touched"]


def test_serial_and_parallel_sketch_passes_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x = near_ties(np.random.default_rng(6), 500, 16).astype(np.float32)
    mask = mask_of(len(x), 7)
    monkeypatch.setattr(pruned, "PARALLEL_MIN", 0)  # every pass on the thread team
    parallel = pruned.kcenter_greedy_stats(x, mask, 60, None, mode="plain", sketch_width=4)
    monkeypatch.setattr(pruned, "PARALLEL_MIN", 1 << 40)  # every pass on one thread
    serial = pruned.kcenter_greedy_stats(x, mask, 60, None, mode="plain", sketch_width=4)
    np.testing.assert_array_equal(parallel[0], serial[0])
    np.testing.assert_array_equal(parallel[1], serial[1])
    assert parallel[2]["rows_touched"] == serial[2]["rows_touched"]


def test_given_directions_are_used() -> None:
    x = near_ties(np.random.default_rng(7), 300, 12).astype(np.float32)
    mu, basis, _ = _sketch.sample_directions(x, 3)
    mask = mask_of(len(x), 3)
    want = nsel.kcenter_greedy(x, mask, 30, None, algorithm="brute", progress=None, accum_dtype=np.float32)
    picks, dists, _ = pruned.kcenter_greedy_stats(x, mask, 30, None, mode="plain", sketch_width=3,
                                                  directions=(mu, basis))
    np.testing.assert_array_equal(picks, want[0])
    np.testing.assert_array_equal(dists, want[1])


def test_a_float64_pool_summed_in_float32_gets_no_sketch() -> None:
    x = gaussian_pool(200, 8, seed=1).astype(np.float64)
    assert sketched.sketch_supported(x, np.float32)
    assert not sketched.sketch_supported(x, np.float64)
    with pytest.raises(ValueError, match="float64 pool summed in float32"):
        pruned.kcenter_greedy_stats(x, np.zeros(200, bool), 5, None, sketch_width=2, accum_dtype=np.float32)


def power_law(n: int, d: int, exponent: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.arange(1, d + 1, dtype=np.float64) ** (-exponent / 2)
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return ((rng.standard_normal((n, d)) * scales) @ rotation).astype(np.float32)


def test_auto_chooses_a_sketch_on_a_decaying_spectrum_and_brute_force_on_noise() -> None:
    decaying = power_law(6000, 64, 2.5)
    choice = nsel.choose_algorithm(decaying, centres=400)
    assert choice in ("sketch", "pruned+sketch")
    assert isinstance(choice, _sketch.Algorithm) and choice.sketch.width in (8, 16)
    assert choice.sketch.traffic <= _sketch.MAX_TRAFFIC
    # k-means++ (and a caller that does not say which op): the bound prunes nothing on noise
    noise = gaussian_pool(6000, 64, seed=2)
    assert nsel.choose_algorithm(noise, centres=400) == "brute"
    assert nsel.choose_algorithm(noise, centres=400, kcenter=False, labelled=300, budget=200) == "brute"
    # too short a selection to repay the measurement, too small a pool, too narrow for k <= d / 4
    assert _sketch.choose_sketch(decaying, centres=1).width == 0
    assert _sketch.choose_sketch(decaying[:1000], centres=400).width == 0
    assert _sketch.choose_sketch(decaying[:, :16], centres=400).width == 0


def noise_selection() -> tuple[np.ndarray, int, int]:
    """Isotropic noise (the sketch bound prunes nothing), labelled rows and a budget where
    k-center greedy's dormant rows pay (_sketch.dormancy_pays)."""
    return gaussian_pool(24000, 256, seed=5), 100, 400


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_auto_chooses_dormant_rows_for_kcenter_greedy_on_noise(backend: str) -> None:
    if backend == "cpp" and not cpp_available():
        pytest.skip("cpp: " + uk.backends()["cpp"][1])
    ops, engine = BACKENDS[backend]
    x, labelled, budget = noise_selection()
    centres = labelled + budget // 2
    choice = ops.choose_algorithm(x, centres, kcenter=True, labelled=labelled, budget=budget)
    assert choice == "sketch"  # plain mode: cpp runs dormant rows there only
    assert choice.sketch.width == _sketch.DORMANT_WIDTH and choice.sketch.wide == 0
    assert choice.sketch.traffic > _sketch.MAX_TRAFFIC  # chosen for the dormant rows, not the bound
    options = _sketch.engine_options(x, choice, two_tier=backend == "cpp")
    assert options["mode"] == "plain"
    mask = mask_of(len(x), labelled, seed=6)
    _, _, stats = engine.kcenter_greedy_stats(x, mask, budget, None, **options)
    assert stats["dormant_rows"] > len(x) // 2
    # k-means++ never has dormant rows; nor does a selection without labelled rows. They do not
    # pay for a budget that is a large share of the pool, nor a small one against many
    # labelled rows, nor on narrow rows or a small pool
    assert ops.choose_algorithm(x, centres, kcenter=False, labelled=labelled, budget=budget) == "brute"
    assert ops.choose_algorithm(x, budget // 2, kcenter=True, labelled=0, budget=budget) == "brute"
    large = int(_sketch.DORMANT_SHARE * (len(x) - labelled)) + 1
    assert ops.choose_algorithm(x, labelled + large // 2, kcenter=True, labelled=labelled, budget=large) == "brute"
    cost = ops.dormant_labelled_cost(x.shape[1]) if backend == "numba" else _sketch.DORMANT_LABELLED_COST
    many = int(budget * x.shape[1] // cost) + 1
    assert ops.choose_algorithm(x, many + budget // 2, kcenter=True, labelled=many, budget=budget) == "brute"
    narrow = np.ascontiguousarray(x[:, : _sketch.DORMANT_MIN_D // 2])
    assert ops.choose_algorithm(narrow, centres, kcenter=True, labelled=labelled, budget=budget) == "brute"
    # nor on rows wider than measured (the rule alone: a pool that wide would be slow to test)
    assert _sketch.dormancy_pays(10**6, _sketch.DORMANT_MAX_D, True, 100, 10**4)
    assert not _sketch.dormancy_pays(10**6, _sketch.DORMANT_MAX_D + 1, True, 100, 10**4)
    assert ops.choose_algorithm(x[:8000], centres, kcenter=True, labelled=labelled, budget=budget) == "brute"
    # group bounds stay alone where the pool looks clustered
    clustered = clustered_pool(24000, 256, clusters=20, seed=4, spread=0.1)
    assert ops.choose_algorithm(clustered, centres, kcenter=True, labelled=labelled, budget=budget) \
        == ops.choose_algorithm(clustered, centres)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_auto_with_dormant_rows_gives_the_brute_picks(backend: str) -> None:
    if backend == "cpp" and not cpp_available():
        pytest.skip("cpp: " + uk.backends()["cpp"][1])
    x, labelled, budget = noise_selection()
    idx = np.flatnonzero(mask_of(len(x), labelled, seed=7))
    want = uk.kcenter_greedy(x, idx, budget, algorithm="brute", backend=backend, return_distances=True)
    got = uk.kcenter_greedy(x, idx, budget, algorithm="auto", backend=backend, return_distances=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    want_pp = uk.kmeans_pp(x, budget, labelled_idx=idx, seed=3, algorithm="brute", backend=backend)
    np.testing.assert_array_equal(uk.kmeans_pp(x, budget, labelled_idx=idx, seed=3, backend=backend), want_pp)


def test_auto_tells_the_backend_which_selection_it_chooses_for(monkeypatch: pytest.MonkeyPatch) -> None:
    told: list[dict] = []

    def choose(emb: object, centres: int | None = None, **selection: object) -> str:
        told.append({"centres": centres, **selection})
        return "brute"

    monkeypatch.setattr(nsel, "choose_algorithm", choose)
    x = gaussian_pool(500, 8, seed=1)
    uk.kcenter_greedy(x, [3, 9, 40], 20, backend="numba")
    uk.kmeans_pp(x, 20, labelled_idx=[3, 9, 40, 40], backend="numba")
    assert told == [{"centres": 13, "kcenter": True, "labelled": 3, "budget": 20},
                    {"centres": 13, "kcenter": False, "labelled": 3, "budget": 20}]


def test_auto_with_a_sketch_gives_the_brute_picks() -> None:
    x = power_law(6000, 64, 2.5, seed=3)
    labelled = np.arange(0, 6000, 40)
    for kw in ({}, {"return_distances": True}):
        want = uk.kcenter_greedy(x, labelled, 120, algorithm="brute", backend="numba", **kw)
        got = uk.kcenter_greedy(x, labelled, 120, algorithm="auto", backend="numba", **kw)
        for a, b in zip(np.atleast_2d(want), np.atleast_2d(got)):
            np.testing.assert_array_equal(a, b)
    want = uk.kmeans_pp(x, 120, labelled_idx=labelled, seed=4, algorithm="brute", backend="numba")
    np.testing.assert_array_equal(uk.kmeans_pp(x, 120, labelled_idx=labelled, seed=4, backend="numba"), want)


def test_sketch_by_name_without_a_measurement_uses_the_default_width() -> None:
    x = near_ties(np.random.default_rng(8), 300, 40).astype(np.float32)
    mask = mask_of(len(x), 5)
    want = nsel.kcenter_greedy(x, mask, 30, None, algorithm="brute", progress=None, accum_dtype=np.float32)
    for name in ("sketch", "pruned+sketch"):
        got = nsel.kcenter_greedy(x, mask, 30, None, algorithm=name, progress=None, accum_dtype=np.float32)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_numba_sketch_passes_take_their_team_from_the_one_tuner(monkeypatch: pytest.MonkeyPatch) -> None:
    from uwe_kernels import _threads

    x = low_rank(np.random.default_rng(14), 5000, 32, 6, 0.05).astype(np.float32)
    mask = mask_of(len(x), 20)
    monkeypatch.setattr(pruned, "PARALLEL_MIN", 0)  # every sketch pass asks the tuner
    reported: list[float] = []
    runs = []
    for team in (1, 2):
        monkeypatch.setattr(_threads.TeamTuner, "threads", lambda self, team=team: team)
        monkeypatch.setattr(_threads.TeamTuner, "pick_done", lambda self, work: reported.append(work))
        runs.append(pruned.kcenter_greedy_stats(x, mask, 40, None, mode="plain", sketch_width=4))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert len(reported) >= 2 * 39 and all(w > 0 for w in reported)


def dormant_stats(stats: list[dict]) -> list[tuple[int, int, int]]:
    """(dormant, woken, wake rounds) of check_kcg's plain-mode (sketch-only) runs; the group
    modes keep every row live (a woken row may change group), which this checks."""
    runs = engine_runs("cpp")
    assert all(st["dormant_rows"] == 0 for run, st in zip(runs, stats) if run["mode"] != "plain")
    return [(st["dormant_rows"], st["woken_rows"], st["wake_rounds"]) for run, st in zip(runs, stats)
            if run["mode"] == "plain"]


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
def test_cpp_dormant_rows_wake_as_the_picks_fall_to_them(dtype: str) -> None:
    """A power-law pool, ReLU-clipped: the labelled pass leaves most rows dormant, the picks'
    D falls below the threshold and rows wake in several rounds (some to sleep again below
    the lowered threshold); picks and distances stay the brute force's in every mode and
    tier."""
    require_cpp()
    x = np.maximum(power_law(4000, 48, 1.0, seed=3), 0).astype(DTYPES[dtype])
    mask = mask_of(len(x), 120, seed=4)
    stats = check_kcg(x, mask, 300, backend="cpp")
    for dormant, woken, rounds in dormant_stats(stats):
        assert 0 < woken <= dormant  # a row counts each time it falls asleep
        assert rounds >= 2
    picks, stats_pp = cpp_pruned.kmeans_pp_stats(x, mask, 30, 5, "max_norm", mode="plain", sketch_width=8)
    assert stats_pp["dormant_rows"] == 0  # k-means++ draws from every D


def test_cpp_dormant_rows_wake_when_the_live_rows_run_out() -> None:
    """Far clusters of exact copies are the only live rows; once a pick lands in each, every
    live D is 0 (or no live row is left) and each later pick wakes rows round after round,
    ties going to the lowest index as in brute force."""
    require_cpp()
    rng = np.random.default_rng(31)
    near = low_rank(rng, 2400, 16, 4, 0.05)
    far = np.repeat(near[:6] + rng.uniform(20, 30, (6, 1)) * rng.standard_normal((6, 16)), 40, axis=0)
    x = np.concatenate([near, far, near[:100]]).astype(np.float32)
    mask = np.zeros(len(x), dtype=bool)
    mask[:300] = True  # labelled: the near rows have close centres, their copies D = 0
    for dormant, woken, rounds in dormant_stats(check_kcg(x, mask, 40, backend="cpp")):
        assert 0 < woken < dormant
        assert rounds > 30


def test_cpp_no_dormant_rows_when_every_row_could_be_picked() -> None:
    require_cpp()
    x = low_rank(np.random.default_rng(32), 600, 12, 3, 0.1).astype(np.float32)
    mask = mask_of(len(x), 20)
    for st in check_kcg(x, mask, len(x) - 20, backend="cpp"):
        assert st["dormant_rows"] == 0
