"""uwe_factored / badge_factored and uwe / badge_embedding are one embedding: the same dtype and
values in every dtype, and the same picks as the explicit rows at accumulation precision."""
from __future__ import annotations

import numpy as np
import pytest

import uwe_kernels as uk
from helpers import as_float64, logits, rtol, to_device

# The registry ops these backend-parametrised tests call.
pytestmark = pytest.mark.ops("uwe", "badge_embedding", "uncertainty", "badge_weights", "kcenter_greedy")


def _inputs(dtype, device, n=600, k=7, d=24):
    scores = logits(n, k, seed=11).astype(dtype)
    feats = np.random.default_rng(12).standard_normal((n, d)).astype(dtype)
    return to_device(scores, device), to_device(feats, device)


def _dtype_of(x):
    return np.dtype(x.dtype) if isinstance(x, np.ndarray) else x.dtype


@pytest.mark.parametrize("kind", ["uwe", "badge"])
def test_materialize_has_the_explicit_dtype_and_values(backend, device, dtype, kind):
    scores, feats = _inputs(dtype, device)
    if kind == "uwe":
        fe, explicit = uk.uwe_factored(scores, feats, "entropy", 0.7, backend=backend), uk.uwe(
            scores, feats, "entropy", 0.7, backend=backend)
    else:
        fe, explicit = uk.badge_factored(scores, feats, backend=backend), uk.badge_embedding(scores, feats,
                                                                                             backend=backend)
    rows = fe.materialize()
    assert _dtype_of(rows) == _dtype_of(explicit)
    assert fe.dtype == np.dtype(dtype)
    # one rounding from accumulation precision each; backends may differ in the last bit of u
    np.testing.assert_allclose(as_float64(rows), as_float64(explicit), rtol=rtol(dtype), atol=rtol(dtype) * 1e-2)


def test_factored_picks_equal_explicit_rows_at_accumulation_precision(backend, device, dtype):
    scores, feats = _inputs(dtype, device, n=3000, k=10, d=64)
    acc = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    explicit = uk.uwe(scores, feats, out_dtype=acc, backend=backend)
    want, want_d = uk.kcenter_greedy(explicit, None, 200, backend=backend, return_distances=True)
    got, got_d = uk.kcenter_greedy(uk.uwe_factored(scores, feats, backend=backend), None, 200, backend=backend,
                                   return_distances=True)
    np.testing.assert_array_equal(as_float64(got), as_float64(want))
    assert _dtype_of(got_d) == _dtype_of(feats)  # distances in the embedding's dtype, factored or not
