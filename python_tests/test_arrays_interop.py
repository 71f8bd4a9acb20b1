from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import _arrays

from helpers import gaussian_pool, logits


class DLPackOnly:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self._array.__dlpack_device__()


class ArrayOnly:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._array if dtype is None else self._array.astype(dtype)


class ForeignDevice(DLPackOnly):
    def __dlpack_device__(self) -> Any:
        return (4, 0)


def _pool(n: int = 37, k: int = 5, d: int = 6, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    return logits(n, k, seed=3, dtype=dtype), gaussian_pool(n, d, seed=4, dtype=dtype)


def test_dlpack_producer_is_viewed_without_copy() -> None:
    scores, _ = _pool()
    prepared = _arrays.prepare(DLPackOnly(scores), "scores")
    assert prepared.lib == "dlpack"
    assert prepared.on_cpu
    assert np.shares_memory(prepared.data, scores)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=["float16", "float32", "float64"])
def test_dlpack_producer_uwe_matches_numpy(dtype: Any) -> None:
    scores, features = _pool(dtype=dtype)
    before = (scores.copy(), features.copy())
    got = uk.uwe(DLPackOnly(scores), DLPackOnly(features), "bvsb", 0.5)
    want = uk.uwe(scores, features, "bvsb", 0.5)
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(scores, before[0])
    np.testing.assert_array_equal(features, before[1])


def test_dlpack_producer_selection_matches_numpy() -> None:
    scores, features = _pool()
    emb = uk.uwe(scores, features)
    picks, dists = uk.kcenter_greedy(DLPackOnly(emb), [0, 5], 9, return_distances=True)
    want_picks, want_dists = uk.kcenter_greedy(emb, [0, 5], 9, return_distances=True)
    np.testing.assert_array_equal(picks, want_picks)
    np.testing.assert_array_equal(dists, want_dists)
    assert picks.dtype == np.int64
    for method in ("uwe", "badge", "coreset", "uncertainty", "random"):
        np.testing.assert_array_equal(
            uk.select(DLPackOnly(scores), DLPackOnly(features), 6, method=method, labelled_idx=[1, 2]),
            uk.select(scores, features, 6, method=method, labelled_idx=[1, 2]),
        )


def test_array_interface_only_object_is_read_through_numpy() -> None:
    scores, features = _pool()
    got = uk.uwe(ArrayOnly(scores), ArrayOnly(features))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, uk.uwe(scores, features))


def test_dlpack_integer_input_says_how_to_cast() -> None:
    with pytest.raises(TypeError, match="astype"):
        uk.uncertainty(DLPackOnly(np.arange(12, dtype=np.int64).reshape(6, 2)))


def test_dlpack_non_finite_row_is_named() -> None:
    scores, _ = _pool()
    bad = scores.copy()
    bad[11, 2] = np.nan
    with pytest.raises(ValueError, match="11"):
        uk.uncertainty(DLPackOnly(bad))


def test_dlpack_unsupported_device_is_refused() -> None:
    scores, _ = _pool()
    with pytest.raises(TypeError, match="DLPack device type 4"):
        uk.uncertainty(ForeignDevice(scores))


def test_torch_cpu_round_trip_unchanged() -> None:
    torch = pytest.importorskip("torch")
    scores, features = _pool()
    ts, tf = torch.from_numpy(scores), torch.from_numpy(features)
    prepared = _arrays.prepare(ts, "scores")
    assert prepared.lib == "torch"
    assert np.shares_memory(prepared.data, scores)
    got = uk.uwe(ts, tf)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), uk.uwe(scores, features))
    picks = uk.kcenter_greedy(got, None, 4)
    assert isinstance(picks, torch.Tensor) and picks.dtype == torch.int64


@pytest.fixture
def jnp() -> Any:
    jax = pytest.importorskip("jax", reason="JAX not installed: pip install jax")
    return jax.numpy


def test_jax_input_is_viewed_without_copy(jnp: Any) -> None:
    scores, _ = _pool()
    js = jnp.asarray(scores)
    prepared = _arrays.prepare(js, "scores")
    assert prepared.lib == "dlpack"
    assert np.shares_memory(prepared.data, np.from_dlpack(js))


def test_jax_uwe_comes_back_as_jax(jnp: Any) -> None:
    scores, features = _pool()
    got = uk.uwe(jnp.asarray(scores), jnp.asarray(features), "margin", 2.0)
    assert type(got).__module__.startswith("jax")
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), uk.uwe(scores, features, "margin", 2.0))


def test_jax_bfloat16_uncertainty(jnp: Any) -> None:
    scores, _ = _pool()
    js = jnp.asarray(scores).astype(jnp.bfloat16)
    got = uk.uncertainty(js)
    assert type(got).__module__.startswith("jax")
    assert got.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(got), uk.uncertainty(np.asarray(js)))


def test_jax_selection_matches_numpy(jnp: Any) -> None:
    scores, features = _pool()
    js, jf = jnp.asarray(scores), jnp.asarray(features)
    emb = uk.badge_factored(js, jf)
    picks = uk.kmeans_pp(emb, 7, seed=11)
    assert type(picks).__module__.startswith("jax")
    np.testing.assert_array_equal(
        np.asarray(picks), uk.kmeans_pp(uk.badge_factored(scores, features), 7, seed=11)
    )
    mask = np.zeros(len(scores), dtype=bool)
    mask[[3, 4]] = True
    np.testing.assert_array_equal(
        np.asarray(uk.select(js, jf, 8, labelled_idx=jnp.asarray(mask))),
        uk.select(scores, features, 8, labelled_idx=mask),
    )
    d, argmin = uk.min_distances(jf, jf[:3], return_argmin=True)
    want_d, want_argmin = uk.min_distances(features, features[:3], return_argmin=True)
    np.testing.assert_array_equal(np.asarray(d), want_d)
    np.testing.assert_array_equal(np.asarray(argmin), want_argmin)
