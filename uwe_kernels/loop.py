"""The pool-based active-learning loop (the paper's Algorithm 1) on top of the public API.

Start from a random labelled batch; each cycle trains a fresh model on the labelled set,
evaluates it on the test set, extracts scores and features over the whole train pool and
selects the next `budget` unlabelled rows with a strategy. Every strategy starts from the
same initial batch for a given seed, so strategies differ only in what they pick.

Also here: the checks of UWE against BADGE made on the same model outputs (Fig. 1's
correlation of embedding norm with uncertainty, overlap of picks, factored BADGE picking
exactly what the explicit gradient embedding picks) and the pairwise penalty matrix.
"""
from __future__ import annotations

import abc
import csv
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from . import embeddings, rng, selection

UNCERTAINTY_KINDS = ("entropy", "margin", "bvsb", "least_confidence")


# ----------------------------------------------------------------- model interface


@runtime_checkable
class Learner(Protocol):
    """What the loop needs from a model: plug in any classifier that has these three."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Train from the current state on rows X [m, ...] with integer labels y [m]."""

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Class scores [n, K] (logits, softmax applied by the loop)."""

    def features(self, X: np.ndarray) -> np.ndarray:
        """Penultimate-layer features [n, d]."""


class LearnerBase(abc.ABC):
    """Convenience base for a `Learner`: subclass and fill in the three methods."""

    @abc.abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> None: ...

    @abc.abstractmethod
    def logits(self, X: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def features(self, X: np.ndarray) -> np.ndarray: ...


# The loop builds a fresh learner every cycle ("train from scratch"); the factory gets a
# seed derived from (run seed, cycle) so that runs reproduce.
LearnerFactory = Callable[[int], Learner]


@dataclass(frozen=True)
class Dataset:
    """A train pool and a test set. X rows may be any shape the learner accepts."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        if len(self.X_train) != len(self.y_train) or len(self.X_test) != len(self.y_test):
            raise ValueError(f"dataset {self.name!r}: rows and labels differ in length")
        if len(self.X_train) == 0:
            raise ValueError(f"dataset {self.name!r}: empty train pool")


# ----------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Strategy:
    """How to pick a batch. `method` is one of random, uncertainty, coreset, badge, uwe,
    uwe_kmpp; `kind` is the uncertainty measure for uncertainty/uwe/uwe_kmpp.

    normalize ("minmax" or None, uwe/uwe_kmpp) min-max normalises u over the unlabelled rows;
    start ("labelled" or "pool", uwe only) is where k-center greedy's distances start: the
    labelled set (Algorithm 1) or nothing, among the unlabelled rows alone (the authors' code).
    """

    name: str
    method: str
    kind: str = "entropy"
    tau: float = 1.0
    normalize: str | None = None
    start: str = "labelled"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown strategy method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.kind not in UNCERTAINTY_KINDS:
            raise ValueError(f"unknown uncertainty kind {self.kind!r}; choose from {', '.join(UNCERTAINTY_KINDS)}")
        if not self.tau >= 0:
            raise ValueError(f"tau must be >= 0, got {self.tau}")
        if self.normalize not in (None, "minmax"):
            raise ValueError(f"unknown normalize {self.normalize!r}; choose None or 'minmax'")
        if self.start not in selection.STARTS:
            raise ValueError(f"unknown start {self.start!r}; choose from {', '.join(selection.STARTS)}")
        if self.normalize is not None and self.method not in ("uwe", "uwe_kmpp"):
            raise ValueError(f"normalize applies to methods uwe and uwe_kmpp, not {self.method!r}")
        if self.start != "labelled" and self.method != "uwe":
            raise ValueError(f"start applies to method uwe, not {self.method!r}")


METHODS = ("random", "uncertainty", "coreset", "badge", "uwe", "uwe_kmpp")


def authors_uwe(name: str = "uwe_authors") -> Strategy:
    """UWE as the authors' published code runs it: u min-max normalised over the unlabelled
    rows, tau = 1, k-center greedy among the unlabelled rows alone from the largest-norm one."""
    return Strategy(name, "uwe", normalize="minmax", start="pool")


def default_strategies(tau: float = 1.0) -> list[Strategy]:
    """Every strategy the paper compares: random, top-k uncertainty with each measure,
    coreset, BADGE, UWE (KCG, Algorithm 1), UWE with k-means++, and UWE as the authors'
    code runs it (`authors_uwe`)."""
    out = [Strategy("random", "random")]
    out += [Strategy(f"uncertainty-{k}", "uncertainty", kind=k) for k in UNCERTAINTY_KINDS]
    out += [
        Strategy("coreset", "coreset"),
        Strategy("badge", "badge"),
        Strategy("uwe", "uwe", tau=tau),
        Strategy("uwe_kmpp", "uwe_kmpp", tau=tau),
        authors_uwe(),
    ]
    return out


# Table 1's ablation: U (top-k uncertainty), F (KCG on plain features), U+F (KCG on UWE) as the
# paper's text describes it and as the authors' code runs it.
ABLATION = {"U": "uncertainty-entropy", "F": "coreset", "U+F": "uwe", "U+F (authors' code)": "uwe_authors"}


def select_batch(
    strategy: Strategy,
    logits: Any,  # [n, K]
    features: Any,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    *,
    seed: int = 0,
    backend: str = "auto",
    progress: bool = False,
) -> np.ndarray:
    """Indices [budget] of unlabelled rows chosen by `strategy`, in selection order."""
    m = strategy.method
    if m in ("random", "uncertainty"):
        kind = strategy.kind if m == "uncertainty" else None
        picks = selection.select(logits, features, budget, method=m, labelled_idx=labelled_mask,
                                 kind=kind, seed=seed, backend=backend)
    elif m == "coreset":
        picks = selection.kcenter_greedy(features, labelled_mask, budget, backend=backend, progress=progress)
    elif m == "badge":
        emb = embeddings.badge_factored(logits, features, backend=backend)
        picks = selection.kmeans_pp(emb, budget, labelled_idx=labelled_mask, seed=seed, backend=backend,
                                    progress=progress)
    elif m == "uwe" and strategy.start == "pool":
        picks = selection.select(logits, features, budget, method="uwe", labelled_idx=labelled_mask,
                                 kind=strategy.kind, tau=strategy.tau, normalize=strategy.normalize,
                                 start="pool", backend=backend)
    else:
        pool = ~labelled_mask if strategy.normalize else None
        emb = embeddings.uwe(logits, features, strategy.kind, strategy.tau, normalize=strategy.normalize, pool=pool,
                             backend=backend)
        if m == "uwe":
            picks = selection.kcenter_greedy(emb, labelled_mask, budget, backend=backend, progress=progress)
        else:
            picks = selection.kmeans_pp(emb, budget, labelled_idx=labelled_mask, seed=seed, backend=backend,
                                        progress=progress)
    return np.asarray(picks, dtype=np.int64)


# ----------------------------------------------------------------- checks against BADGE


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two equal-length vectors in float64; nan when either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pearson needs equal lengths, got {a.size} and {b.size}")
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt((da @ da) * (db @ db))
    return float((da @ db) / denom) if denom > 0 else float("nan")


def kmeanspp_near_tie(rows: Any, labelled_mask: np.ndarray, seed: int, a: Any, b: Any,
                      accum_dtype: Any = np.float32) -> str:
    """Why two k-means++ pick sequences on one embedding (same seed, first="max_norm") differ,
    when the difference is a proven near-tie: "" when it is not proven (or they are equal).

    At the first step where they differ, D and the prefix sums are recomputed exactly in float64
    from `rows`. The difference is a near-tie when the exact pick is one of the two and moving
    the target by one `accum_dtype` ulp of the total reaches both: rounding D in that dtype can
    then decide either way. Later picks follow from the earlier ones and are not compared.
    """
    a, b = np.asarray(a), np.asarray(b)
    diff = np.flatnonzero(a != b)
    if len(a) != len(b) or diff.size == 0:
        return ""
    step = int(diff[0])
    X = np.asarray(rows, dtype=np.float64)
    labelled = np.asarray(labelled_mask, dtype=bool)
    if step == 0 and not labelled.any():
        return ""  # the max-norm first pick draws nothing: no prefix to straddle
    D = np.full(len(X), np.inf)
    for c in np.flatnonzero(labelled):
        np.minimum(D, ((X - X[c]) ** 2).sum(1), out=D)
    D[labelled] = 0.0
    for p in a[:step]:
        np.minimum(D, ((X - X[p]) ** 2).sum(1), out=D)
        D[p] = 0.0
    P = np.cumsum(D)
    total = float(P[-1])
    r = rng.uniform(seed, step if labelled.any() else step - 1)
    target = r * total
    ulp = float(np.finfo(accum_dtype).eps) * total
    exact = int(np.searchsorted(P, target, side="right"))
    lo, hi = sorted((int(a[step]), int(b[step])))
    low, high = int(np.searchsorted(P, target - ulp, side="right")), int(np.searchsorted(P, target + ulp, side="right"))
    if total <= 0.0 or exact not in (lo, hi) or low > lo or high < hi:
        return ""
    boundary = float(P[hi - 1] if exact == hi else P[lo])
    return (f"step {step}: {a[step]} vs {b[step]}, exact float64 target {abs(target - boundary) / total:.1e} x total "
            f"from the prefix boundary, under one {np.dtype(accum_dtype).name} ulp ({ulp / total:.1e} x total)")


def badge_checks(
    logits: Any,  # [n, K]
    features: Any,  # [n, d]
    labelled_mask: np.ndarray,  # [n] bool
    budget: int,
    *,
    kind: str = "entropy",
    tau: float = 1.0,
    seed: int = 0,
    backend: str = "auto",
    strategy: Strategy | None = None,
) -> dict[str, Any]:
    """UWE against BADGE on one set of model outputs over the unlabelled pool.

    corr_uwe / corr_badge: Pearson correlation of the embedding norm with the uncertainty
    (Fig. 1); overlap: |UWE picks & BADGE picks| / budget; factored_equal: k-means++ on the
    factored gradient embedding picks exactly what it picks on the explicit one, same seed.
    The UWE is `strategy`'s (a "uwe" one; default: Algorithm 1 with kind and tau).
    The explicit embedding is materialised ([n, K*d]): meant for demo-sized pools.
    """
    strategy = strategy or Strategy("uwe", "uwe", kind=kind, tau=tau)
    unl = ~labelled_mask
    u = np.asarray(embeddings.uncertainty(logits, strategy.kind, backend=backend), dtype=np.float64)[unl]
    pool = unl if strategy.normalize else None
    uwe_dense = embeddings.uwe(logits, features, strategy.kind, strategy.tau, normalize=strategy.normalize, pool=pool,
                               backend=backend)
    uwe_norm = np.linalg.norm(np.asarray(uwe_dense, dtype=np.float64), axis=1)[unl]
    badge_dense = embeddings.badge_embedding(logits, features, backend=backend)
    badge_norm = np.linalg.norm(np.asarray(badge_dense, dtype=np.float64), axis=1)[unl]
    uwe_picks = select_batch(strategy, logits, features, labelled_mask, budget, seed=seed, backend=backend)
    factored = selection.kmeans_pp(embeddings.badge_factored(logits, features, backend=backend), budget,
                                   labelled_idx=labelled_mask, seed=seed, backend=backend)
    explicit = selection.kmeans_pp(badge_dense, budget, labelled_idx=labelled_mask, seed=seed, backend=backend)
    factored, explicit = np.asarray(factored), np.asarray(explicit)
    overlap = len(set(uwe_picks.tolist()) & set(factored.tolist())) / budget if budget else float("nan")
    return {
        "corr_uwe": pearson(uwe_norm, u),
        "corr_badge": pearson(badge_norm, u),
        "overlap": overlap,
        "factored_equal": bool(np.array_equal(factored, explicit)),
        "near_tie": kmeanspp_near_tie(badge_dense, labelled_mask, seed, factored, explicit,
                                      np.float64 if np.asarray(badge_dense).dtype == np.float64 else np.float32),
    }


# ----------------------------------------------------------------- pairwise penalty matrix


def penalty_matrix(
    acc: dict[str, dict[str, np.ndarray]],
    *,
    alpha: float = 0.05,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pairwise penalty matrix (PPM) and its column means Phi (Ash et al. 2020; Ji et al. 2023).

    acc[dataset][method] is an accuracy array [seeds, cycles]; every method of a dataset has the
    same shape. For each dataset, each cycle and each ordered pair (i, j), i != j: run a two-sided
    Student t-test (scipy.stats.ttest_ind, equal variances assumed) of i's accuracies against j's
    over the seeds; when p < alpha and i's mean is higher, i beats j there and P[i, j] gains
    1 / (cycles of that dataset). P is then divided by the number of datasets, so P[i, j] in [0, 1]
    is the (dataset-weighted) fraction of cycles in which i significantly beats j.
    Phi[j] = mean over i != j of P[i, j]: how often j is beaten; lower is better.
    An undefined test (fewer than 2 seeds, or both samples constant and equal) is no win.

    Returns (method names, P [M, M], Phi [M]); methods in the order first met.
    """
    from scipy import stats

    if not acc:
        raise ValueError("penalty_matrix needs at least one dataset")
    methods: list[str] = []
    for per_method in acc.values():
        methods += [m for m in per_method if m not in methods]
    M = len(methods)
    P = np.zeros((M, M))
    for name, per_method in acc.items():
        arrays = {m: np.asarray(a, dtype=np.float64) for m, a in per_method.items()}
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"dataset {name!r}: every method needs one [seeds, cycles] array of the same shape")
        cycles = next(iter(shapes))[1]
        for i, mi in enumerate(methods):
            for j, mj in enumerate(methods):
                if i == j or mi not in arrays or mj not in arrays:
                    continue
                a, b = arrays[mi], arrays[mj]
                for c in range(cycles):
                    # Constant samples make scipy warn; the nan/inf result is handled below.
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        res = stats.ttest_ind(a[:, c], b[:, c])
                    if np.isfinite(res.pvalue) and res.pvalue < alpha and a[:, c].mean() > b[:, c].mean():
                        P[i, j] += 1.0 / cycles
    P /= len(acc)
    Phi = P.sum(axis=0) / (M - 1) if M > 1 else np.zeros(M)
    return methods, P, Phi


# ----------------------------------------------------------------- the loop


@dataclass
class CycleRecord:
    dataset: str
    strategy: str
    seed: int
    cycle: int
    n_labelled: int
    accuracy: float
    train_s: float
    extract_s: float
    select_s: float
    picks: list[int] = field(default_factory=list)


@dataclass
class CheckRecord:
    dataset: str
    strategy: str
    seed: int
    cycle: int
    corr_uwe: float
    corr_badge: float
    overlap: float
    factored_equal: bool
    near_tie: str = ""  # the proof when factored and explicit picks differ at a rounding near-tie


@dataclass
class Results:
    records: list[CycleRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)

    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.records))

    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.records))

    def table(self, dataset: str, strategy: str, key: str = "accuracy") -> np.ndarray:
        """`key` of every record of (dataset, strategy) as [seeds, cycles]."""
        rows = [r for r in self.records if r.dataset == dataset and r.strategy == strategy]
        seeds = sorted({r.seed for r in rows})
        cycles = sorted({r.cycle for r in rows})
        out = np.full((len(seeds), len(cycles)), np.nan)
        for r in rows:
            out[seeds.index(r.seed), cycles.index(r.cycle)] = getattr(r, key)
        return out

    def accuracy_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        return {d: {s: self.table(d, s) for s in self.strategies()} for d in self.datasets()}

    def to_json(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump({"records": [asdict(r) for r in self.records],
                       "checks": [asdict(c) for c in self.checks]}, fh, indent=1)

    def to_csv(self, path: str) -> None:
        names = [f for f in CycleRecord.__dataclass_fields__ if f != "picks"]
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for r in self.records:
                writer.writerow([getattr(r, f) for f in names])


def _accuracy(learner: Learner, X: np.ndarray, y: np.ndarray) -> float:
    pred = np.asarray(learner.logits(X)).argmax(axis=1)
    return float((pred == np.asarray(y)).mean())


def initial_batch(n: int, size: int, seed: int) -> np.ndarray:
    """The seed's shared starting labelled set: `size` distinct rows of [0, n)."""
    if not 0 < size <= n:
        raise ValueError(f"initial batch size must be in 1..{n}, got {size}")
    empty = np.zeros((n, 2), dtype=np.float32)
    return np.asarray(selection.select(empty, empty, size, method="random", seed=seed), dtype=np.int64)


def run_loop(
    data: Dataset,
    make_learner: LearnerFactory,
    strategies: Sequence[Strategy],
    *,
    seeds: Iterable[int] = (0, 1, 2),
    initial: int = 20,
    budget: int = 20,
    cycles: int = 5,
    checks: bool = True,
    backend: str = "auto",
    progress: Callable[[Iterable[Any], str], Iterable[Any]] | None = None,
    results: Results | None = None,
) -> Results:
    """Run every strategy for every seed: `cycles` rounds of train, evaluate, extract, select.

    The labelled set grows from `initial` by `budget` per cycle; accuracy is recorded after
    each training, so cycle c has initial + c * budget labels. The last cycle trains and
    evaluates but selects nothing. With `checks`, each seed's run of every "uwe" strategy (the
    paper's and the authors' variant) records `badge_checks` on its own model outputs every
    cycle that selects.
    `progress(iterable, description)` wraps the cycle loop (e.g. a tqdm bar).
    """
    strategies = list(strategies)
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError(f"strategy names must be unique, got {names}")
    if cycles < 1 or budget < 0 or initial < 1:
        raise ValueError(f"need cycles >= 1, budget >= 0, initial >= 1; got {cycles}, {budget}, {initial}")
    n = len(data.X_train)
    if initial + (cycles - 1) * budget > n:
        raise ValueError(f"{initial} + {cycles - 1} x {budget} labels exceed the pool of {n}")
    results = results if results is not None else Results()
    wrap = progress or (lambda it, desc: it)
    y_train = np.asarray(data.y_train)
    for seed in seeds:
        start = initial_batch(n, initial, seed)
        for strat in strategies:
            labelled = np.zeros(n, dtype=bool)
            labelled[start] = True
            for cycle in wrap(range(cycles), f"{data.name} {strat.name} seed {seed}"):
                t0 = time.perf_counter()
                learner = make_learner(seed * 1_000_003 + cycle)
                idx = np.flatnonzero(labelled)
                learner.fit(data.X_train[idx], y_train[idx])
                t1 = time.perf_counter()
                acc = _accuracy(learner, data.X_test, data.y_test)
                picks = np.zeros(0, dtype=np.int64)
                extract_s = select_s = 0.0
                if cycle < cycles - 1:
                    t2 = time.perf_counter()
                    logits = np.asarray(learner.logits(data.X_train), dtype=np.float32)
                    feats = np.asarray(learner.features(data.X_train), dtype=np.float32)
                    t3 = time.perf_counter()
                    picks = select_batch(strat, logits, feats, labelled, budget, seed=seed * 1_000_003 + cycle,
                                         backend=backend)
                    t4 = time.perf_counter()
                    extract_s, select_s = t3 - t2, t4 - t3
                    if checks and strat.method == "uwe":
                        c = badge_checks(logits, feats, labelled, budget, seed=seed, backend=backend, strategy=strat)
                        results.checks.append(CheckRecord(data.name, strat.name, seed, cycle, **c))
                    if labelled[picks].any() or len(np.unique(picks)) != len(picks):
                        raise RuntimeError(f"strategy {strat.name} relabelled or repeated a row")
                    labelled[picks] = True
                results.records.append(CycleRecord(
                    data.name, strat.name, seed, cycle, int(idx.size), acc, t1 - t0, extract_s, select_s,
                    picks.tolist()))
    return results
