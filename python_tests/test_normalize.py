"""normalize="minmax" (the authors' min-max normalised uncertainty) on every embedding op and
backend, and select(..., start="pool"): UWE as the authors' code runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import BackendUnavailable

from helpers import as_float64, to_device, to_numpy

# The registry ops these backend-parametrised tests call.
pytestmark = pytest.mark.ops("uncertainty", "uwe", "uwe_segmentation", "uwe_detection", "kcenter_greedy")

F64 = np.float64
# least_confidence of probabilities taken as given: u = 1 - p_best = 0.1, 0.4, 0.5, 0.3
PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.7, 0.3]])
U = np.array([0.1, 0.4, 0.5, 0.3])
FEATS = np.array([[1.0, -2.0, 4.0], [2.0, 0.5, -1.0], [-3.0, 1.0, 2.0], [0.25, 8.0, -0.5]])
# (u - 0.1) / (0.5 - 0.1)
U_MINMAX = np.array([0.0, 0.75, 1.0, 0.5])
# pool rows 1 and 3: lo 0.3, span 0.1; rows outside clip to [0, 1]
U_POOL_13 = np.array([0.0, 1.0, 1.0, 0.0])
TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


def _run(fn: Callable[..., Any], backend: str, device: str, *arrays: Any, **kwargs: Any) -> np.ndarray:
    try:
        out = fn(*(to_device(a, device) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                   for a in arrays), backend=backend, **kwargs)
    except BackendUnavailable as exc:
        if backend == "reference":
            raise
        pytest.skip(str(exc).replace("\n", " "))
    return as_float64(out)


# ---------------------------------------------------------------- hand-computed cases


@pytest.mark.parametrize("fdtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("pool, want", [(None, U_MINMAX), ([1, 3], U_POOL_13),
                                        (np.array([False, True, False, True]), U_POOL_13)],
                         ids=["all-rows", "pool-indices", "pool-mask"])
def test_hand_computed_minmax(backend, device, fdtype, pool, want):
    s, f = PROBS.astype(fdtype), FEATS.astype(fdtype)
    tol = TOL[np.dtype(fdtype)]
    kw = dict(from_logits=False, normalize="minmax", pool=pool)
    u = _run(uk.uncertainty, backend, device, s, "least_confidence", **kw)
    np.testing.assert_allclose(u, want, atol=tol)
    emb = _run(uk.uwe, backend, device, s, f, "least_confidence", 1.0, **kw)
    np.testing.assert_allclose(emb, want[:, None] * FEATS, atol=tol * 8)
    squared = _run(uk.uwe, backend, device, s, f, "least_confidence", 2.0, **kw)
    np.testing.assert_allclose(squared, want[:, None] ** 2 * FEATS, atol=tol * 8)


def test_all_equal_uncertainty_gives_weight_one(backend, device):
    s = np.tile([[0.8, 0.2]], (5, 1))
    f = FEATS[[0, 1, 2, 3, 0]] * 1.5
    kw = dict(from_logits=False, normalize="minmax")
    np.testing.assert_array_equal(_run(uk.uncertainty, backend, device, s, "margin", **kw), np.ones(5))
    np.testing.assert_array_equal(_run(uk.uwe, backend, device, s, f, "margin", 0.5, **kw), f)
    # a flat pool makes every row weight 1, inside the pool or not
    mixed = np.vstack([s, [[0.5, 0.5]]])
    fm = np.vstack([f, FEATS[:1]])
    np.testing.assert_array_equal(_run(uk.uwe, backend, device, mixed, fm, "margin", 1.0, pool=[0, 2, 4], **kw), fm)


def test_minmax_without_normalize_is_unchanged(backend, device):
    s, f = PROBS, FEATS
    want = U[:, None] * FEATS
    np.testing.assert_allclose(_run(uk.uwe, backend, device, s, f, "least_confidence", from_logits=False), want,
                               atol=1e-12)


def test_factored_minmax_materialises_to_uwe(backend, device):
    s, f = PROBS, FEATS
    fe = uk.uwe_factored(to_device(s, device), to_device(f, device), "least_confidence", 2.0, from_logits=False,
                         normalize="minmax", pool=[0, 1, 2], backend=backend)
    lo, span = 0.1, 0.4
    want = np.clip((U - lo) / span, 0, 1) ** 2
    np.testing.assert_allclose(as_float64(fe.weights), want, atol=1e-12)
    np.testing.assert_allclose(as_float64(fe.materialize()), want[:, None] * FEATS, atol=1e-12)


def test_segmentation_minmax_hand_computed(backend, device):
    # one image, 2 classes, 2x2 pixels, features at the same resolution; one pixel per region
    p = PROBS.T.reshape(1, 2, 2, 2)  # pixel (y, x) = row 2y + x of PROBS
    f = FEATS[:, :2].T.reshape(1, 2, 2, 2)  # channel c of pixel (y, x) = FEATS[2y + x, c]
    kw = dict(region=(1, 1), kind="least_confidence", from_logits=False, normalize="minmax")
    got = _run(uk.uwe_segmentation, backend, device, p, f, **kw)
    np.testing.assert_allclose(got, U_MINMAX[:, None] * FEATS[:, :2], atol=1e-12)
    got = _run(uk.uwe_segmentation, backend, device, p, f, pool=np.array([False, True, False, True]), **kw)
    np.testing.assert_allclose(got, U_POOL_13[:, None] * FEATS[:, :2], atol=1e-12)


@pytest.mark.parametrize("agg", ["max", "mean"])
def test_detection_minmax_hand_computed(backend, device, agg):
    # boxes 0, 1 of image 0 are class 0; box 2 (class 0 on a tie) and box 3 (class 0) of image 1
    ids = np.array([0, 0, 1, 1])
    kw = dict(kind="least_confidence", agg=agg, normalize="minmax")
    got = _run(uk.uwe_detection, backend, device, PROBS, FEATS, ids, 2, **kw).reshape(2, 2, 3)
    w = U_MINMAX[:, None] * FEATS
    if agg == "max":  # image 0: box 1 (u 0.4 > 0.1); image 1: box 2 (u 0.5 > 0.3)
        want0, want1 = w[1], w[2]
    else:
        want0, want1 = (w[0] + w[1]) / 2, (w[2] + w[3]) / 2
    np.testing.assert_allclose(got[0, 0], want0, atol=1e-12)
    np.testing.assert_allclose(got[1, 0], want1, atol=1e-12)
    assert not got[:, 1].any()


# ---------------------------------------------------------------- against the reference


def _pool(n: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 3 * rng.standard_normal((n, k)), rng.standard_normal((n, d))


@pytest.mark.parametrize("kind", ["entropy", "bvsb"])
@pytest.mark.parametrize("n, k, d", [(1, 2, 1), (37, 3, 5), (129, 11, 67)])
def test_minmax_uwe_matches_reference(backend, device, dtype, n, k, d, kind):
    if backend == "triton":
        n, d = min(n, 9), min(d, 9)
    s, f = (a.astype(dtype) for a in _pool(n, k, d, n + k))
    pool = np.arange(n) % 3 != 0 if n > 1 else None
    got = _run(uk.uwe, backend, device, s, f, kind, 1.5, normalize="minmax", pool=pool)
    want = as_float64(uk.uwe(s.astype(F64), f.astype(F64), kind, 1.5, normalize="minmax", pool=pool,
                             backend="reference"))
    tol = {"float16": 1e-2, "bfloat16": 6e-2, "float32": 1e-4, "float64": 1e-10}[np.dtype(dtype).name]
    assert np.abs(got - want).max(initial=0) <= tol * max(1.0, np.abs(want).max(initial=0))


@pytest.mark.parametrize("n, k, d, labelled", [(37, 3, 5, 6), (101, 7, 13, 0), (64, 2, 3, 20)])
def test_authors_picks_match_reference(backend, device, dtype, n, k, d, labelled):
    if backend == "triton":
        n, d, labelled = min(n, 16), min(d, 5), min(labelled, 4)
    s, f = (a.astype(dtype) for a in _pool(n, k, d, 7 * n + d))
    lab = np.random.default_rng(n).choice(n, size=labelled, replace=False)
    budget = min(9, n - labelled)
    kw = dict(method="uwe", labelled_idx=lab, normalize="minmax", start="pool")
    got = _run(uk.select, backend, device, s, f, budget, **kw).astype(np.int64)
    want = np.asarray(uk.select(s.astype(F64), f.astype(F64), budget, backend="reference", **kw))
    np.testing.assert_array_equal(got, want)
    assert not np.isin(got, lab).any() and len(set(got.tolist())) == budget


def test_authors_variant_is_kcg_on_the_unlabelled_rows_alone():
    s, f = _pool(50, 4, 6, 3)
    lab = np.array([2, 7, 30])
    unl = np.setdiff1d(np.arange(50), lab)
    picks = uk.select(s, f, 8, labelled_idx=lab, normalize="minmax", start="pool", backend="reference")
    emb = uk.uwe(s[unl], f[unl], normalize="minmax", backend="reference")
    np.testing.assert_array_equal(picks, unl[uk.kcenter_greedy(emb, None, 8, backend="reference")])
    assert picks[0] == unl[np.argmax((emb ** 2).sum(1))]
    # the paper's Algorithm 1 (default) seeds D from the labelled set instead
    paper = uk.select(s, f, 8, labelled_idx=lab, backend="reference")
    np.testing.assert_array_equal(paper, uk.kcenter_greedy(uk.uwe(s, f, backend="reference"), lab, 8,
                                                           backend="reference"))


def test_select_minmax_from_labelled_uses_the_unlabelled_range():
    s, f = _pool(40, 5, 4, 9)
    lab = np.arange(0, 40, 4)
    picks = uk.select(s, f, 6, labelled_idx=lab, normalize="minmax", backend="reference")
    emb = uk.uwe(s, f, normalize="minmax", pool=np.setdiff1d(np.arange(40), lab), backend="reference")
    np.testing.assert_array_equal(picks, uk.kcenter_greedy(emb, lab, 6, backend="reference"))


def test_torch_inputs_keep_their_library():
    torch = pytest.importorskip("torch")
    s, f = _pool(20, 3, 4, 1)
    got = uk.select(torch.as_tensor(s), torch.as_tensor(f), 5, labelled_idx=[1, 2], normalize="minmax",
                    start="pool", backend="cpp")
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(to_numpy(got), uk.select(s, f, 5, labelled_idx=[1, 2], normalize="minmax",
                                                           start="pool", backend="reference"))
    u = uk.uncertainty(torch.as_tensor(s, dtype=torch.float32), normalize="minmax", backend="cpp")
    assert isinstance(u, torch.Tensor) and u.dtype == torch.float32
    assert float(u.min()) == 0.0 and float(u.max()) == 1.0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, match", [
    (dict(normalize="zscore"), "unknown normalize"),
    (dict(pool=[0, 1]), "pool applies only with normalize"),
    (dict(normalize="minmax", pool=[]), "pool selects none"),
    (dict(normalize="minmax", pool=np.zeros(4, dtype=bool)), "pool selects none"),
    (dict(normalize="minmax", pool=[0, 4]), "out of range"),
    (dict(normalize="minmax", pool=np.ones(3, dtype=bool)), "shape"),
])
def test_bad_normalize_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        uk.uwe(PROBS, FEATS, from_logits=False, backend="reference", **kwargs)
    with pytest.raises(ValueError, match=match):
        uk.uncertainty(PROBS, from_logits=False, backend="reference", **kwargs)


def test_select_rejects_normalize_and_start_outside_uwe():
    with pytest.raises(ValueError, match="apply to method 'uwe'"):
        uk.select(PROBS, FEATS, 2, method="coreset", start="pool")
    with pytest.raises(ValueError, match="apply to method 'uwe'"):
        uk.select(PROBS, FEATS, 2, method="badge", normalize="minmax")
    with pytest.raises(ValueError, match="unknown start"):
        uk.select(PROBS, FEATS, 2, start="unlabelled")


def test_inputs_are_not_modified():
    s, f = PROBS.copy(), FEATS.copy()
    uk.select(s, f, 2, labelled_idx=[0], normalize="minmax", start="pool", backend="cpp")
    uk.uwe(s, f, from_logits=False, normalize="minmax", pool=[1, 2], backend="cpp")
    np.testing.assert_array_equal(s, PROBS)
    np.testing.assert_array_equal(f, FEATS)


def test_triton_cases_in_an_interpreter_process():
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("already interpreting: the triton cases run in this process")
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-rs", "-k", "triton", "-p", "no:cacheprovider"],
        cwd=os.path.dirname(__file__), env=env, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout, tail


@pytest.mark.parametrize("start", ["labelled", "pool"])
def test_everything_labelled_gives_no_picks(backend, device, start):
    s, f = _pool(6, 3, 2, 4)
    got = _run(uk.select, backend, device, s, f, 0, labelled_idx=np.arange(6), normalize="minmax", start=start)
    assert got.shape == (0,)
