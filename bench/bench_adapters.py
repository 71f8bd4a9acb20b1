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
"""
from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest

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


@functools.lru_cache(maxsize=None)
def _pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 features (the natives compute in float64), class probabilities, labelled rows."""
    X = _data.features(N, D, dtype="float64")
    logits = _data.logits(N, K, dtype="float64")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return X, e / e.sum(axis=1, keepdims=True), _data.labelled(N, LABELLED)


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


def _modal_inputs() -> tuple[_FixedModel, np.ndarray]:
    X, proba, labelled = _pool()
    pool = np.setdiff1d(np.arange(N), labelled)
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


def _skactiveml_inputs() -> tuple[np.ndarray, np.ndarray, Any]:
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    X, _, labelled = _pool()
    y = np.full(N, np.nan)
    y[labelled] = np.arange(LABELLED) % K
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

    X, _, labelled = _pool()
    unlabelled = np.setdiff1d(np.arange(N), labelled)
    rows = np.concatenate([unlabelled, labelled])
    emb = X[rows]
    qs = Coreset(normalize=True) if side == "ours" else GreedyCoreset(distance_metric="euclidean", normalize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        picks = _record(measure, benchmark, "small-text-coreset",
                        lambda: qs.query(None, np.arange(N), unlabelled, labelled, None, n=BATCH, embeddings=emb),
                        f"{'uwe_kernels Coreset' if side == 'ours' else 'small-text GreedyCoreset'}", side)
    benchmark.extra_info["picks"] = [int(i) for i in picks[:10]]


@functools.lru_cache(maxsize=None)
def _mc_dropout(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """[rows, K, T] probabilities (T noisy copies of the pool's logits) and [rows, D] features."""
    X, _, _ = _pool()
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
