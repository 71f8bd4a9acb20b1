"""Each framework adapter beside that framework's own strategy, both called as the
framework's users call them, on one pool (UWE_BENCH_SIZE=full: 50,000 x 256, 10 classes,
1,000 labelled, batch 100). Pairs share a group; `report.py` or `--benchmark-group-by=group`
shows the ratio. Natives draw their own random numbers, so only the deterministic pairs
record `same_picks`; timing asserts nothing.

- modAL: `uwe_strategy` / `coreset_strategy` vs modAL's ranked batch
  (`uncertainty_batch_sampling`), its diversity-aware batch strategy.
- scikit-activeml: `CoreSet` vs `skactiveml.pool.CoreSet` (with and without
  `return_utilities`, which the gallery template asks for) and `Badge` vs its `Badge`.
- small-text: `Coreset` vs `GreedyCoreset(distance_metric="euclidean")` on precomputed
  embeddings.
- baal: `UWE(kind="bald")` vs `BALD` (top-k) and, on a 5,000-row slice with batch 100 (its
  joint-entropy draws grow with rows and batch; quick: 500 rows, batch 10), `BatchBALD`.

`python -m bench.bench_adapters` runs the goal measurement: every pair at 50,000 x 256, 1,000
labelled, batch 100, alternated in one process (ours best of --rounds after an untimed call,
natives --native-rounds), one JSON line per pair with the load average before and after.
small-text's `GreedyCoreset` (about 20 s per pick there: every pick re-measures all labelled
rows) and baal's `BatchBALD` (a [rows, 5,000, K] float64 array per pick: 20 GB at 50,000 rows)
cannot run the goal case here: they are timed at the cases given (`--small-text-budgets` on the
goal pool; `--batchbald-points` ROWSxBUDGET), fitted by least squares in their cost model's
terms and extrapolated; the row reports the coefficients, the largest residual and the ratio
measured at each case.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import time
import warnings
from typing import Any, Callable

import numpy as np
import pytest

import uwe_kernels as uk
from bench import _data
from bench._data import pick
from bench.conftest import optional_peer

# Quick: small-text's GreedyCoreset recomputes every distance to the labelled set and the
# picks so far for every pick (~90 CPU seconds at 10,000 rows, 200 labelled, batch 100).
N, D, K = pick(5_000, 50_000, smoke=2_000), 256, 10
LABELLED, BATCH = pick(100, 1_000, smoke=50), pick(50, 100, smoke=20)
T_PASSES = 10
# baal's BatchBALD grows with rows and faster than linearly with the batch: 5,000 rows and a
# batch of 100 take many minutes on 2 cores (full only), 500 rows and a batch of 10 about 15 s;
# the smoke run only checks that both sides run.
BATCHBALD_ROWS, BATCHBALD_BATCH = pick((500, 10), (5_000, BATCH), smoke=(100, 5))
SHAPE = f"{N}x{D}, K={K}, {LABELLED} labelled, batch {BATCH}"


@functools.lru_cache(maxsize=2)
def _pool(n: int = N, n_labelled: int = LABELLED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 features (the natives compute in float64), class probabilities, labelled rows."""
    X = _data.features(n, D, dtype="float64")
    logits = _data.logits(n, K, dtype="float64")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return X, e / e.sum(axis=1, keepdims=True), _data.labelled(n, n_labelled)


def _bytes() -> float:
    return float(BATCH * N * D * 8)


def _record(measure: Any, benchmark: Any, group: str, fn: Any, provider: str, role: str) -> Any:
    benchmark.group = f"adapters:{group}"
    return measure(fn, provider=provider, role=role, warmup=role == "ours", shape=SHAPE, bytes_moved=_bytes(),
                   op=group, budget=BATCH, labelled=LABELLED)


class _FixedModel:
    """An already-trained model: predict_proba returns the pool's probabilities by row, so
    both strategies of a pair see the same outputs and no training is timed."""

    def __init__(self, X: np.ndarray, proba: np.ndarray, labelled: np.ndarray) -> None:
        self._rows = {id(X): proba}
        self.X_training = X[labelled]
        self._rows[id(self.X_training)] = proba[labelled]
        self.on_transformed = False

    def register(self, X: np.ndarray, proba: np.ndarray) -> None:
        self._rows[id(X)] = proba

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._rows[id(X)]


def _modal_inputs(n: int = N, n_labelled: int = LABELLED) -> tuple[_FixedModel, np.ndarray]:
    X, proba, labelled = _pool(n, n_labelled)
    pool = np.setdiff1d(np.arange(n), labelled)
    model = _FixedModel(X, proba, labelled)
    X_pool = X[pool]
    model.register(X_pool, proba[pool])
    return model, X_pool


@pytest.mark.parametrize("strategy", ["uwe", "coreset"])
def bench_modal_ours(measure, benchmark, strategy):
    optional_peer("modAL", "modAL-python")
    from uwe_kernels.integrations import modal

    model, X_pool = _modal_inputs()
    fn = {"uwe": modal.uwe_strategy(), "coreset": modal.coreset_strategy()}[strategy]
    _record(measure, benchmark, "modal", lambda: fn(model, X_pool, BATCH), f"uwe_kernels {strategy}_strategy", "ours")


def bench_modal_ranked_batch(measure, benchmark):
    optional_peer("modAL", "modAL-python")
    from modAL.batch import uncertainty_batch_sampling

    model, X_pool = _modal_inputs()
    _record(measure, benchmark, "modal", lambda: uncertainty_batch_sampling(model, X_pool, BATCH),
            "modAL uncertainty_batch_sampling", "peer")


def _skactiveml_inputs(n: int = N, n_labelled: int = LABELLED) -> tuple[np.ndarray, np.ndarray, Any]:
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    X, _, labelled = _pool(n, n_labelled)
    y = np.full(n, np.nan)
    y[labelled] = np.arange(n_labelled) % K
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SklearnClassifier(LogisticRegression(max_iter=50), classes=np.arange(K)).fit(X, y)
    return X, y, clf


@pytest.mark.parametrize("utilities", [False, True], ids=["picks", "utilities"])
@pytest.mark.parametrize("side", ["ours", "peer"])
def bench_skactiveml_coreset(measure, benchmark, side, utilities):
    optional_peer("skactiveml", "scikit-activeml")
    from skactiveml.pool import CoreSet as Native

    from uwe_kernels.integrations.skactiveml import CoreSet as Ours

    X, y, _ = _skactiveml_inputs()
    qs = (Ours if side == "ours" else Native)(random_state=0)
    out = _record(measure, benchmark, f"skactiveml-coreset-{'utilities' if utilities else 'picks'}",
                  lambda: qs.query(X, y, batch_size=BATCH, return_utilities=utilities),
                  f"{'uwe_kernels' if side == 'ours' else 'scikit-activeml'} CoreSet", side)
    picks = out[0] if utilities else out
    benchmark.extra_info["picks"] = [int(i) for i in picks[:10]]


@pytest.mark.parametrize("side", ["ours", "peer"])
def bench_skactiveml_badge(measure, benchmark, side):
    optional_peer("skactiveml", "scikit-activeml")
    from skactiveml.pool import Badge as Native

    from uwe_kernels.integrations.skactiveml import Badge as Ours

    X, y, clf = _skactiveml_inputs()
    qs = (Ours if side == "ours" else Native)(random_state=0)
    _record(measure, benchmark, "skactiveml-badge", lambda: qs.query(X, y, clf, fit_clf=False, batch_size=BATCH),
            f"{'uwe_kernels' if side == 'ours' else 'scikit-activeml'} Badge", side)


@pytest.mark.parametrize("side", ["ours", "peer"])
def bench_small_text_coreset(measure, benchmark, side):
    optional_peer("small_text", "small-text")
    from small_text.query_strategies import GreedyCoreset

    from uwe_kernels.integrations.small_text import Coreset

    qs = Coreset(normalize=True) if side == "ours" else GreedyCoreset(distance_metric="euclidean", normalize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        picks = _record(measure, benchmark, "small-text-coreset", _small_text_query(qs, N, LABELLED, BATCH),
                        f"{'uwe_kernels Coreset' if side == 'ours' else 'small-text GreedyCoreset'}", side)
    benchmark.extra_info["picks"] = [int(i) for i in picks[:10]]


def _small_text_query(qs: Any, n: int, n_labelled: int, budget: int) -> Callable[[], Any]:
    """small-text's query call on precomputed embeddings (unlabelled rows first, as its
    dataset order would be): a call returning the picks."""
    X, _, labelled = _pool(n, n_labelled)
    unlabelled = np.setdiff1d(np.arange(n), labelled)
    emb = X[np.concatenate([unlabelled, labelled])]
    return lambda: qs.query(None, np.arange(n), unlabelled, labelled, None, n=budget, embeddings=emb)


@functools.lru_cache(maxsize=4)
def _mc_dropout(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """[rows, K, T] probabilities (T noisy copies of the pool's logits) and [rows, D] features."""
    X, _, _ = _pool(max(rows, N))
    logits = _data.logits(rows, K, dtype="float64")[:, :, None] + np.random.default_rng(5).standard_normal(
        (rows, K, T_PASSES))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), X[:rows]


@pytest.mark.parametrize("heuristic", ["uwe-bald", "BALD"])
def bench_baal(measure, benchmark, heuristic):
    optional_peer("baal")
    from baal.active.heuristics import BALD

    from uwe_kernels.integrations.baal import UWE, PoolOutputs

    probs, feats = _mc_dropout(N)
    if heuristic == "BALD":
        _record(measure, benchmark, "baal", lambda: BALD().get_ranks(probs), "baal BALD (top-k)", "peer")
    else:
        h = UWE(query_size=BATCH, kind="bald")
        _record(measure, benchmark, "baal", lambda: h.get_ranks(PoolOutputs(probs, feats)),
                "uwe_kernels UWE(kind='bald')", "ours")


@pytest.mark.parametrize("heuristic", ["uwe-bald", "BatchBALD"])
def bench_baal_batchbald_slice(measure, benchmark, heuristic):
    optional_peer("baal")
    from baal.active.heuristics import BatchBALD

    from uwe_kernels.integrations.baal import UWE, PoolOutputs

    probs, feats = _mc_dropout(BATCHBALD_ROWS)
    if heuristic == "BatchBALD":
        h = BatchBALD(num_samples=BATCHBALD_BATCH)
        _record(measure, benchmark, "baal-batchbald", lambda: h.get_ranks(probs), "baal BatchBALD", "peer")
    else:
        ours = UWE(query_size=BATCHBALD_BATCH, kind="bald")
        _record(measure, benchmark, "baal-batchbald", lambda: ours.get_ranks(PoolOutputs(probs, feats)),
                "uwe_kernels UWE(kind='bald')", "ours")
    benchmark.extra_info.update(rows=BATCHBALD_ROWS, budget=BATCHBALD_BATCH)


# ---------------------------------------------------------------- the goal measurement


GOAL_N, GOAL_LABELLED, GOAL_BATCH = 50_000, 1_000, 100


def _timed(fn: Callable[[], Any], into: list[float]) -> Any:
    t = time.perf_counter()
    out = fn()
    into.append(time.perf_counter() - t)
    return out


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _pair(group: str, ours: Callable[[], Any], native: Callable[[], Any], rounds: int, native_rounds: int,
          same: Callable[[Any, Any], bool] | None = None, **info: Any) -> dict[str, Any]:
    """Both sides at the goal size, alternated in one process: ours after one untimed call
    (compilation, page faults), best of `rounds`; the native (which compiles nothing) best of
    `native_rounds`."""
    load_before = _load()
    ours()
    times: dict[str, list[float]] = {"ours": [], "native": []}
    out: dict[str, Any] = {}
    for r in range(max(rounds, native_rounds)):
        if r < rounds:
            out["ours"] = _timed(ours, times["ours"])
        if r < native_rounds:
            out["native"] = _timed(native, times["native"])
    best = {k: min(v) for k, v in times.items()}
    row = {"group": group, "ours_s": best["ours"], "native_s": best["native"],
           "speedup": best["native"] / best["ours"], "native_measured_at": "goal size", "times": times,
           "load_before": load_before, "load_after": _load(), **info}
    if same is not None:
        row["same_picks"] = bool(same(out["ours"], out["native"]))
    return row


def _fitted(group: str, ours: Callable[[int, int], Callable[[], Any]],
            native: Callable[[int, int], Callable[[], Any]], points: list[tuple[int, int]], rounds: int,
            native_rounds: int, terms: Callable[[int, int], list[float]], same: Callable[[Any, Any], bool] | None = None,
            **info: Any) -> dict[str, Any]:
    """A native that cannot run the goal case here (too slow, or too much memory): timed at
    each (rows, budget) in `points` (best of `native_rounds`, after one untimed warm-up call),
    fitted by least squares as native_s = sum_i c_i * terms(rows, budget)_i and extrapolated to
    the goal case. Ours runs the goal case itself (best of `rounds`) and each point, so the
    ratio measured at equal sizes is reported beside the extrapolated one."""
    load_before = _load()
    ours(GOAL_N, GOAL_BATCH)()
    full: list[float] = []
    for _ in range(rounds):
        _timed(ours(GOAL_N, GOAL_BATCH), full)
    native(*points[0])()
    measured: list[dict[str, Any]] = []
    for n, budget in points:
        t_ours: list[float] = []
        t_native: list[float] = []
        for _ in range(native_rounds):
            picks_ours = _timed(ours(n, budget), t_ours)
            picks_native = _timed(native(n, budget), t_native)
        point = {"rows": n, "budget": budget, "ours_s": min(t_ours), "native_s": min(t_native),
                 "ratio": min(t_native) / min(t_ours)}
        if same is not None:
            point["same_picks"] = bool(same(picks_ours, picks_native))
        measured.append(point)
    A = np.array([terms(p["rows"], p["budget"]) for p in measured])
    y = np.array([p["native_s"] for p in measured])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    predicted = float(np.dot(coef, terms(GOAL_N, GOAL_BATCH)))
    residual = float(np.max(np.abs(A @ coef - y) / y))
    return {"group": group, "ours_s": min(full), "native_s": predicted, "speedup": predicted / min(full),
            "native_measured_at": f"(rows, budget) {points}, extrapolated to ({GOAL_N}, {GOAL_BATCH})",
            "fit": {"coefficients": [float(c) for c in coef], "max_rel_residual": residual},
            "points": measured, "times": {"ours": full}, "load_before": load_before, "load_after": _load(), **info}


def _same_prefix(ours: Any, native: Any) -> bool:
    a, b = np.asarray(ours).ravel(), np.asarray(native).ravel()
    return len(a) == len(b) and bool(np.array_equal(a, b))


def goal_modal(rounds: int, native_rounds: int) -> list[dict[str, Any]]:
    from modAL.batch import uncertainty_batch_sampling

    from uwe_kernels.integrations import modal

    model, X_pool = _modal_inputs(GOAL_N, GOAL_LABELLED)
    native = functools.partial(uncertainty_batch_sampling, model, X_pool, GOAL_BATCH)
    return [_pair(f"modal {name} vs uncertainty_batch_sampling", functools.partial(fn, model, X_pool, GOAL_BATCH),
                  native, rounds, native_rounds)
            for name, fn in (("uwe_strategy", modal.uwe_strategy()), ("coreset_strategy", modal.coreset_strategy()))]


def goal_skactiveml(rounds: int, native_rounds: int) -> list[dict[str, Any]]:
    from skactiveml.pool import Badge as NativeBadge
    from skactiveml.pool import CoreSet as NativeCoreSet

    from uwe_kernels.integrations.skactiveml import Badge, CoreSet

    X, y, clf = _skactiveml_inputs(GOAL_N, GOAL_LABELLED)
    rows = []
    for utilities in (False, True):
        def query(cls: Any, utilities: bool = utilities) -> Callable[[], Any]:
            return lambda: cls(random_state=0).query(X, y, batch_size=GOAL_BATCH, return_utilities=utilities)

        def same(a: Any, b: Any, utilities: bool = utilities) -> bool:
            if not utilities:
                return bool(np.array_equal(a, b))
            return bool(np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], rtol=1e-6, atol=1e-9, equal_nan=True))

        rows.append(_pair(f"skactiveml CoreSet{' return_utilities' if utilities else ''}", query(CoreSet),
                          query(NativeCoreSet), rounds, native_rounds, same))
    for utilities in (False, True):
        def badge(cls: Any, utilities: bool = utilities) -> Callable[[], Any]:
            return lambda: cls(random_state=0).query(X, y, clf, fit_clf=False, batch_size=GOAL_BATCH,
                                                     return_utilities=utilities)

        rows.append(_pair(f"skactiveml Badge{' return_utilities' if utilities else ''}", badge(Badge),
                          badge(NativeBadge), rounds, native_rounds))
    return rows


def goal_small_text(rounds: int, native_rounds: int, budgets: tuple[int, ...]) -> list[dict[str, Any]]:
    from small_text.query_strategies import GreedyCoreset

    from uwe_kernels.integrations.small_text import Coreset

    def ours(n: int, b: int) -> Callable[[], Any]:
        return _small_text_query(Coreset(normalize=True), n, GOAL_LABELLED, b)

    def native(n: int, b: int) -> Callable[[], Any]:
        return _small_text_query(GreedyCoreset(distance_metric="euclidean", normalize=True), n, GOAL_LABELLED, b)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # GreedyCoreset's pick t measures every unlabelled row against all labelled rows and
        # the t earlier picks
        return [_fitted("small-text Coreset vs GreedyCoreset", ours, native, [(GOAL_N, b) for b in budgets], rounds,
                        native_rounds, lambda n, b: [1.0, (n - GOAL_LABELLED) * (b * GOAL_LABELLED + b * (b - 1) / 2)],
                        _same_prefix, cost_model="a + c * unlabelled rows x sum over picks t < b of (labelled + t)")]


def goal_baal(rounds: int, native_rounds: int, fit_rounds: int, points: list[tuple[int, int]]) -> list[dict[str, Any]]:
    from baal.active.heuristics import BALD, BatchBALD

    from uwe_kernels.integrations.baal import UWE, PoolOutputs

    def ours(n: int, b: int) -> Callable[[], Any]:
        probs, feats = _mc_dropout(n)
        h = UWE(query_size=b, kind="bald")
        return lambda: h.get_ranks(PoolOutputs(probs, feats))

    def native(n: int, b: int) -> Callable[[], Any]:
        probs, _ = _mc_dropout(n)
        h = BatchBALD(num_samples=b)
        return lambda: h.get_ranks(probs)

    probs, _ = _mc_dropout(GOAL_N)
    return [
        _pair("baal UWE(kind='bald') vs BALD (top-k, no diversity)", ours(GOAL_N, GOAL_BATCH),
              lambda: BALD().get_ranks(probs), rounds, native_rounds),
        # Every BatchBALD step scores each row against num_draw * T sampled joint configurations
        # ([rows, 5000, K] float64: 20 GB at the goal size), so a step costs rows x constant.
        _fitted("baal UWE(kind='bald') vs BatchBALD", ours, native, points, rounds, fit_rounds,
                lambda n, b: [1.0, float(n), float(n * b)],
                cost_model="a + b * rows (scores before the first pick) + c * rows x picks (a joint-entropy pass "
                           "over every row per pick)"),
    ]


def main() -> None:
    global GOAL_N
    parser = argparse.ArgumentParser(description="each adapter against its framework's native strategy, "
                                                 f"{GOAL_N:,} x {D}, {GOAL_LABELLED:,} labelled, batch {GOAL_BATCH}")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls of ours (best is kept)")
    parser.add_argument("--native-rounds", type=int, default=1, help="timed calls of a native strategy")
    parser.add_argument("--fit-rounds", type=int, default=2,
                        help="timed calls of each side at each point an extrapolated native is fitted to")
    parser.add_argument("--frameworks", nargs="*", default=["skactiveml", "modal", "baal", "small-text"])
    parser.add_argument("--small-text-budgets", type=int, nargs="*", default=[1, 2, 3, 4])
    parser.add_argument("--batchbald-points", nargs="*", default=["1000x1", "1000x4", "2000x1", "2000x4", "4000x1", "4000x4"],
                        help="ROWSxBUDGET cases BatchBALD is timed at")
    parser.add_argument("--n", type=int, default=GOAL_N, help="pool rows (a smaller pool checks the script)")
    args = parser.parse_args()
    GOAL_N = args.n
    print(json.dumps({"pool": f"{GOAL_N}x{D}, K={K}, {GOAL_LABELLED} labelled, batch {GOAL_BATCH}",
                      "threads": uk.get_num_threads(), "cpus": os.cpu_count(), "load": os.getloadavg()}), flush=True)
    runs = {
        "skactiveml": lambda: goal_skactiveml(args.rounds, args.native_rounds),
        "modal": lambda: goal_modal(args.rounds, args.native_rounds),
        "baal": lambda: goal_baal(args.rounds, args.native_rounds, args.fit_rounds,
                                  [(int(r), int(b)) for r, b in (p.split("x") for p in args.batchbald_points)]),
        "small-text": lambda: goal_small_text(args.rounds, args.fit_rounds, tuple(args.small_text_budgets)),
    }
    for name in args.frameworks:
        for row in runs[name]():
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
