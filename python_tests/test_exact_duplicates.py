"""A duplicate of a centre is at distance exactly 0 on every backend, for dense and factored
(UWE and BADGE) embeddings and every dtype: fused multiply-adds and the norm trick must not
leave a rounding error behind."""
from __future__ import annotations

import numpy as np
import pytest

import uwe_kernels as uk

from conftest import DTYPES
from helpers import gaussian_pool, logits

BACKENDS = [b for b in ("reference", "numba", "cpp") if uk.backends().get(b, (False,))[0]]


def _embedding(kind: str, dtype: object, n: int = 5, k: int = 7, d: int = 37) -> object:
    """n distinct rows, then the same n rows again."""
    scores = np.concatenate([logits(n, k, seed=3, dtype=dtype)] * 2)
    features = np.concatenate([gaussian_pool(n, d, seed=4, dtype=dtype)] * 2)
    if kind == "uwe":
        return uk.uwe_factored(scores, features, backend="reference")
    if kind == "badge":
        return uk.badge_factored(scores, features, backend="reference")
    return features


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("kind", ["dense", "uwe", "badge"])
def test_duplicates_of_labelled_rows_are_at_zero(kind: str, dtype: object, backend: str) -> None:
    emb = _embedding(kind, dtype)
    picks, dists = uk.kcenter_greedy(emb, [0, 1, 2, 3, 4], 4, backend=backend, return_distances=True)
    np.testing.assert_array_equal(np.asarray(picks), [5, 6, 7, 8])
    assert np.all(np.asarray(dists, dtype=np.float64) == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("kind", ["dense", "uwe", "badge"])
def test_min_distances_to_a_copy_are_zero(kind: str, dtype: object, backend: str) -> None:
    emb = _embedding(kind, dtype)
    if kind == "dense":
        centres = emb[:5]  # type: ignore[index]
    else:  # the first five rows as factors
        centres = uk.FactoredEmbedding(emb.weights[:5], emb.features[:5])  # type: ignore[attr-defined]
    d, arg = uk.min_distances(emb, centres, backend=backend, return_argmin=True)
    assert np.all(np.asarray(d, dtype=np.float64) == 0.0)
    np.testing.assert_array_equal(np.asarray(arg), np.tile(np.arange(5), 2))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_brute_and_pruned_agree_on_duplicates(dtype: object, backend: str) -> None:
    """Every row three times over: the labelled rows' copies are at 0, ties go to the lowest index."""
    x = np.concatenate([gaussian_pool(40, 9, seed=5, dtype=dtype)] * 3)
    runs = [uk.kcenter_greedy(x, np.arange(10), 60, backend=backend, algorithm=algorithm, return_distances=True)
            for algorithm in ("brute", "pruned")]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    picks, dists = np.asarray(runs[0][0]), np.asarray(runs[0][1], dtype=np.float64)
    # 30 distinct free rows first; then every free row is a copy at 0 and the lowest index wins
    assert np.all(dists[:30] > 0) and np.all(dists[30:] == 0)
    assert sorted(picks[:30] % 40) == list(range(10, 40))
    free = sorted(set(range(120)) - set(range(10)) - set(picks[:30].tolist()))
    np.testing.assert_array_equal(picks[30:], free[:30])
