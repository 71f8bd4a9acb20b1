from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import NonFiniteError, registry
from uwe_kernels._arrays import BFLOAT16

from conftest import cpu_backends
from helpers import as_float64, logits, rtol, to_device, to_numpy

# The backend-parametrised tests here call the embedding ops (registry family "embed").
pytestmark = pytest.mark.ops(*(op for op, family in registry.FAMILY.items() if family == "embed"))
KINDS = ("entropy", "bvsb", "margin", "least_confidence")
TAUS = (0.0, 0.1, 1.0, 2.0)
HALF = (np.dtype(np.float16), BFLOAT16)
F64 = np.float64


def _small(backend: str, *sizes: int, cap: int = 9) -> tuple[int, ...]:
    return tuple(min(s, cap) for s in sizes) if backend == "triton" else sizes


def _run(fn: Callable[..., Any], backend: str, device: str, *arrays: Any, **kwargs: Any) -> Any:
    """Run a public function on one backend; a refusal fails (the cases come from the declarations)."""
    return fn(*(to_device(a, device) if isinstance(a, np.ndarray) else a for a in arrays), backend=backend, **kwargs)


def _is_float(a: Any) -> bool:
    return isinstance(a, np.ndarray) and (a.dtype.kind == "f" or a.dtype == BFLOAT16)


def _ref(fn: Callable[..., Any], *arrays: Any, **kwargs: Any) -> np.ndarray:
    rounded = [a.astype(F64) if _is_float(a) else a for a in arrays]
    return as_float64(fn(*rounded, backend="reference", **kwargs))



def _rel_err(got: Any, want: np.ndarray) -> float:
    got = as_float64(got)
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    return float(np.abs(got - want).max(initial=0.0)) / scale


def _tol(dtype: Any, out_dtype: Any | None = None) -> float:
    return max(rtol(dtype), rtol(out_dtype if out_dtype is not None else dtype)) * 4


def _pool(n: int, k: int, d: int, dtype: Any, seed: int = 0, from_logits: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = logits(n, k, seed=seed, dtype=np.float64)
    if not from_logits:
        s = rng.random((n, k))
    f = rng.standard_normal((n, d))
    return s.astype(dtype), f.astype(dtype)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [2, 19, 100])
def test_uncertainty_matches_reference(backend, device, dtype, kind, from_logits, k):
    (n,) = _small(backend, 123)
    s, _ = _pool(n, k, 1, dtype, from_logits=from_logits)
    got = _run(uk.uncertainty, backend, device, s, kind, from_logits=from_logits)
    assert as_float64(got).shape == (n,)
    assert _rel_err(got, _ref(uk.uncertainty, s, kind, from_logits=from_logits)) <= _tol(dtype)


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("kind", KINDS)
def test_uwe_matches_reference_over_kinds_and_taus(backend, device, dtype, kind, tau):
    n, d = _small(backend, 123, 129)
    s, f = _pool(n, 19, d, dtype, seed=1)
    got = _run(uk.uwe, backend, device, s, f, kind, tau)
    assert to_numpy(got).dtype == f.dtype
    assert _rel_err(got, _ref(uk.uwe, s, f, kind, tau)) <= _tol(dtype)


@pytest.mark.parametrize("d", [1, 129])
@pytest.mark.parametrize("k", [2, 19, 100])
@pytest.mark.parametrize("n", [1, 123])
def test_uwe_odd_shapes(backend, device, dtype, n, k, d):
    n, d = _small(backend, n, d)
    s, f = _pool(n, k, d, dtype, seed=n + k + d)
    for kind in KINDS:
        got = _run(uk.uwe, backend, device, s, f, kind, 0.5)
        assert as_float64(got).shape == (n, d)
        assert _rel_err(got, _ref(uk.uwe, s, f, kind, 0.5)) <= _tol(dtype)


def _plain_uwe(s: np.ndarray, f: np.ndarray, kind: str, tau: float) -> np.ndarray:
    import torch

    def t(x: np.ndarray) -> Any:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16) if x.dtype == BFLOAT16 else torch.from_numpy(x.copy())

    z, feat = t(s), t(f)
    p = torch.softmax(z, dim=1)
    top = torch.topk(p, 2, dim=1).values
    if kind == "entropy":
        u = -torch.special.xlogy(p, p).sum(dim=1)
    elif kind == "bvsb":
        u = top[:, 1] / top[:, 0]
    elif kind == "margin":
        u = 1 - (top[:, 0] - top[:, 1])
    else:
        u = 1 - top[:, 0]
    out = u.clamp(min=0)[:, None] ** tau * feat if tau != 0 else feat
    return as_float64(out)


@pytest.mark.parametrize("tau", [1.0, 2.0])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("half", HALF, ids=["float16", "bfloat16"])
def test_half_precision_error_at_most_twice_plain_dtype_computation(backend, device, half, kind, tau):
    n, d = _small(backend, 123, 129)
    s, f = _pool(n, 19, d, half, seed=7)
    want = _ref(uk.uwe, s, f, kind, tau)
    plain_err = _rel_err(_plain_uwe(s, f, kind, tau), want)
    ulp = float(np.finfo(np.float16).eps if half == np.float16 else 2.0**-7)
    got = _run(uk.uwe, backend, device, s, f, kind, tau)
    assert _rel_err(got, want) <= max(2 * plain_err, ulp)


@pytest.mark.parametrize("kind", KINDS)
def test_large_logits_do_not_overflow(backend, device, dtype, kind):
    n, d = _small(backend, 33, 17)
    rng = np.random.default_rng(3)
    s = (1e4 * np.sign(rng.standard_normal((n, 10))) * rng.uniform(0.5, 1.0, (n, 10))).astype(dtype)
    f = rng.standard_normal((n, d)).astype(dtype)
    u = as_float64(_run(uk.uncertainty, backend, device, s, kind))
    assert np.isfinite(u).all()
    assert _rel_err(u, _ref(uk.uncertainty, s, kind)) <= _tol(dtype)
    emb = as_float64(_run(uk.uwe, backend, device, s, f, kind, 2.0))
    assert np.isfinite(emb).all()


def test_tied_argmax_gives_most_uncertain_and_lowest_class(backend, device, dtype):
    s = np.array([[1.0, 3.0, 3.0, -2.0], [2.0, 2.0, 0.0, 1.0], [5.0, 5.0, 5.0, 5.0]], dtype=dtype)
    f = np.ones((3, 2), dtype=dtype)
    assert np.array_equal(as_float64(_run(uk.uncertainty, backend, device, s, "bvsb")), [1.0, 1.0, 1.0])
    assert np.array_equal(as_float64(_run(uk.uncertainty, backend, device, s, "margin")), [1.0, 1.0, 1.0])
    emb = as_float64(_run(uk.badge_embedding, backend, device, s, f))
    w = _ref(uk.badge_embedding, s, f)
    assert (emb[0, 2:4] < 0).all() and (emb[1, 0:2] < 0).all() and (emb[2, 0:2] < 0).all()
    assert _rel_err(emb, w) <= _tol(dtype)


@pytest.mark.parametrize("k", [2, 19, 100])
def test_all_equal_scores(backend, device, dtype, k):
    s = np.full((5, k), 0.25, dtype=dtype)
    want = {"entropy": np.log(k), "bvsb": 1.0, "margin": 1.0, "least_confidence": 1.0 - 1.0 / k}
    for kind, value in want.items():
        got = as_float64(_run(uk.uncertainty, backend, device, s, kind))
        assert np.allclose(got, value, rtol=_tol(dtype), atol=_tol(dtype))


def test_probabilities_with_zeros_and_all_zero_rows(backend, device, dtype):
    s = np.array([[0.0, 0.0, 0.0], [0.0, 0.7, 0.0], [0.2, 0.5, 0.3]], dtype=dtype)
    for kind in KINDS:
        got = as_float64(_run(uk.uncertainty, backend, device, s, kind, from_logits=False))
        assert _rel_err(got, _ref(uk.uncertainty, s, kind, from_logits=False)) <= _tol(dtype)
    assert as_float64(_run(uk.uncertainty, backend, device, s, "bvsb", from_logits=False))[0] == 1.0


def _layouts(s: np.ndarray, f: np.ndarray, device: str) -> dict[str, tuple[Any, Any]]:
    out = {
        "column_slice": (np.stack([s, -s], axis=2).reshape(len(s), -1)[:, ::2], np.asfortranarray(f)),
        "transposed_copy": (np.ascontiguousarray(s.T).T, np.ascontiguousarray(f.T).T),
    }
    if device == "cpu":
        out["negative_strides"] = (s[::-1, ::-1].copy()[::-1, ::-1], f[::-1].copy()[::-1])
        out["row_step"] = (np.repeat(s, 2, axis=0)[::2], np.repeat(f, 3, axis=0)[::3])
    return out


@pytest.mark.parametrize("layout", ["column_slice", "transposed_copy", "negative_strides", "row_step"])
def test_strided_inputs_match_contiguous(backend, device, dtype, layout):
    n, d = _small(backend, 41, 23)
    s, f = _pool(n, 7, d, dtype, seed=11)
    layouts = _layouts(s, f, device)
    if layout not in layouts:
        pytest.skip(f"{layout} views exist only for host arrays")
    ss, ff = layouts[layout]
    assert np.array_equal(as_float64(ss), as_float64(s)) and np.array_equal(as_float64(ff), as_float64(f))
    want = _ref(uk.uwe, s, f, "entropy", 1.0)
    assert _rel_err(_run(uk.uwe, backend, device, ss, ff, "entropy", 1.0), want) <= _tol(dtype)
    assert _rel_err(_run(uk.badge_embedding, backend, device, ss, ff), _ref(uk.badge_embedding, s, f)) <= _tol(dtype)


def test_memmap_inputs(backend, device, tmp_path):
    if device != "cpu":
        pytest.skip("memory-mapped arrays are host arrays")
    s, f = _pool(50, 9, 13, np.float32, seed=5)
    ms = np.memmap(tmp_path / "s.bin", dtype=np.float32, mode="w+", shape=s.shape)
    mf = np.memmap(tmp_path / "f.bin", dtype=np.float32, mode="w+", shape=f.shape)
    ms[:], mf[:] = s, f
    ms.flush(), mf.flush()
    rs = np.memmap(tmp_path / "s.bin", dtype=np.float32, mode="r", shape=s.shape)
    rf = np.memmap(tmp_path / "f.bin", dtype=np.float32, mode="r", shape=f.shape)
    got = _run(uk.uwe, backend, device, rs, rf, "margin", 2.0)
    assert _rel_err(got, _ref(uk.uwe, s, f, "margin", 2.0)) <= _tol(np.float32)


def test_torch_cpu_tensors_in_torch_out(backend, device, dtype):
    torch = pytest.importorskip("torch")
    if device != "cpu":
        pytest.skip("torch CPU tensors are host inputs")
    s, f = _pool(17, 5, 6, dtype, seed=2)
    ts = torch.from_numpy(s.view(np.int16).copy()).view(torch.bfloat16) if dtype == BFLOAT16 else torch.from_numpy(s.copy())
    tf = torch.from_numpy(f.view(np.int16).copy()).view(torch.bfloat16) if dtype == BFLOAT16 else torch.from_numpy(f.copy())
    got = _run(uk.uwe, backend, device, ts.t().contiguous().t(), tf, "bvsb", 1.0)
    assert isinstance(got, torch.Tensor) and got.dtype == tf.dtype
    assert _rel_err(got, _ref(uk.uwe, s, f, "bvsb", 1.0)) <= _tol(dtype)


def test_inputs_are_never_modified(backend, device, dtype):
    s, f = _pool(20, 4, 5, dtype, seed=9)
    s0, f0 = s.copy(), f.copy()
    _run(uk.uwe, backend, device, s, f, "entropy", 2.0)
    _run(uk.badge_embedding, backend, device, s, f)
    assert np.array_equal(s.view(np.uint8), s0.view(np.uint8)) and np.array_equal(f.view(np.uint8), f0.view(np.uint8))


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64, np.float16])
def test_out_dtype(backend, device, dtype, out_dtype):
    s, f = _pool(30, 6, 8, dtype, seed=4)
    got = _run(uk.uwe, backend, device, s, f, "entropy", 1.0, out_dtype=out_dtype)
    assert to_numpy(got).dtype == np.dtype(out_dtype)
    assert _rel_err(got, _ref(uk.uwe, s, f, "entropy", 1.0)) <= _tol(dtype, out_dtype)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("k", [2, 19])
def test_badge_embedding_and_weights_match_reference(backend, device, dtype, from_logits, k):
    n, d = _small(backend, 123, 33)
    s, f = _pool(n, k, d, dtype, seed=k, from_logits=from_logits)
    emb = _run(uk.badge_embedding, backend, device, s, f, from_logits=from_logits)
    assert as_float64(emb).shape == (n, k * d)
    assert _rel_err(emb, _ref(uk.badge_embedding, s, f, from_logits=from_logits)) <= _tol(dtype)
    fac = _run(uk.badge_factored, backend, device, s, f, from_logits=from_logits)
    want_w = as_float64(uk.badge_factored(s.astype(F64), f.astype(F64), from_logits=from_logits, backend="reference").weights)
    assert _rel_err(fac.weights, want_w) <= _tol(dtype)
    assert np.allclose(as_float64(fac.weights).sum(1), 0.0 if from_logits else want_w.sum(1), atol=_tol(dtype) * k)


def test_uwe_factored_materialises_to_uwe(backend, device, dtype):
    s, f = _pool(40, 8, 9, dtype, seed=6)
    fac = _run(uk.uwe_factored, backend, device, s, f, "margin", 2.0)
    dense = _run(uk.uwe, backend, device, s, f, "margin", 2.0)
    assert _rel_err(fac.materialize(), as_float64(dense)) <= _tol(dtype)


SEG_CASES = {
    "whole_image_s8": (2, 3, 64, 64, 8, None),
    "quarter_regions_s8": (2, 3, 64, 64, 8, (32, 32)),
    "wide_regions_s4": (1, 5, 64, 64, 4, (16, 32)),
    "tiny_regions_s4": (1, 4, 32, 32, 4, (4, 4)),
    "pixel_regions_s1": (2, 3, 12, 20, 1, (1, 1)),
    "stride1_whole": (3, 2, 10, 14, 1, None),
    "one_image_s8_rect": (1, 19, 48, 80, 8, (16, 40)),
}


@pytest.mark.parametrize("kind", ["entropy", "bvsb"])
@pytest.mark.parametrize("case", list(SEG_CASES))
def test_segmentation_matches_reference(backend, device, dtype, case, kind):
    N, K, H, W, st, region = SEG_CASES[case]
    if backend == "triton" and H * W > 1024:
        pytest.skip("triton interpreter: small maps only")
    rng = np.random.default_rng(H + W + K)
    s = (3 * rng.standard_normal((N, K, H, W))).astype(dtype)
    f = rng.standard_normal((N, 6, H // st, W // st)).astype(dtype)
    got = _run(uk.uwe_segmentation, backend, device, s, f, region=region, kind=kind, tau=0.5)
    R = 1 if region is None else (H // region[0]) * (W // region[1])
    assert as_float64(got).shape == (N * R, 6)
    assert _rel_err(got, _ref(uk.uwe_segmentation, s, f, region=region, kind=kind, tau=0.5)) <= _tol(dtype)


def test_segmentation_from_probabilities_and_strided_maps(backend, device, dtype):
    rng = np.random.default_rng(8)
    s = rng.random((2, 4, 16, 16)).astype(dtype)
    f = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    if device == "cpu":
        s = np.ascontiguousarray(s.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    got = _run(uk.uwe_segmentation, backend, device, s, f, region=(8, 8), kind="margin", tau=2.0, from_logits=False)
    want = _ref(uk.uwe_segmentation, s, f, region=(8, 8), kind="margin", tau=2.0, from_logits=False)
    assert _rel_err(got, want) <= _tol(dtype)


def _boxes(B: int, K: int, d: int, M: int, dtype: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((B, K)).astype(dtype), rng.standard_normal((B, d)).astype(dtype),
            rng.integers(0, M, B).astype(np.int64))


@pytest.mark.parametrize("agg", ["max", "mean"])
@pytest.mark.parametrize("kind", ["bvsb", "entropy"])
def test_detection_matches_reference(backend, device, dtype, agg, kind):
    B, d = _small(backend, 200, 24, cap=30)
    s, f, ids = _boxes(B, 7, d, 13, dtype, seed=B)
    ids[ids == 5] = 6
    got = _run(uk.uwe_detection, backend, device, s, f, ids, 14, kind=kind, tau=0.5, agg=agg)
    out = as_float64(got)
    assert out.shape == (14, 7 * d)
    assert not out[5].any() and not out[13].any()
    assert _rel_err(got, _ref(uk.uwe_detection, s, f, ids, 14, kind=kind, tau=0.5, agg=agg)) <= _tol(dtype)


@pytest.mark.parametrize("agg", ["max", "mean"])
def test_detection_one_box_and_no_boxes(backend, device, dtype, agg):
    s = np.array([[0.1, 0.7, 0.2]], dtype=dtype)
    f = np.array([[1.0, -2.0]], dtype=dtype)
    got = as_float64(_run(uk.uwe_detection, backend, device, s, f, np.array([1]), 3, agg=agg))
    u = float(as_float64(s)[0, 2] / as_float64(s)[0, 1])
    want = np.zeros((3, 6))
    want[1, 2:4] = u * as_float64(f)[0]
    assert np.allclose(got, want, rtol=_tol(dtype), atol=_tol(dtype))
    empty = as_float64(_run(uk.uwe_detection, backend, device, s[:0], f[:0], np.zeros(0, np.int64), 2, agg=agg))
    assert empty.shape == (2, 6) and not empty.any()


def test_detection_max_ties_keep_the_lowest_box(backend, device, dtype):
    s = np.array([[0.2, 0.8], [0.2, 0.8], [0.1, 0.9]], dtype=dtype)
    f = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=dtype)
    got = as_float64(_run(uk.uwe_detection, backend, device, s, f, np.array([0, 0, 0]), 1, agg="max", tau=0.0))
    assert np.array_equal(got, [[0.0, 0.0, 1.0, 1.0]])
    mean = as_float64(_run(uk.uwe_detection, backend, device, s, f, np.array([0, 0, 0]), 1, agg="mean", tau=0.0))
    assert np.allclose(mean, [[0.0, 0.0, 2.0, 2.0]], rtol=_tol(dtype))


def _nan_row7(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    s, f = _pool(12, 4, 3, dtype)
    s[7, 1] = np.nan
    return s, f


BAD_INPUTS: dict[str, tuple[Callable[[Any], Any], type, str]] = {
    "mismatched_n": (lambda dt: (uk.uwe, _pool(10, 3, 4, dt)[0], _pool(9, 3, 4, dt)[1]), ValueError, "rows"),
    "k_equals_1": (lambda dt: (uk.uwe, _pool(10, 1, 4, dt)[0], _pool(10, 1, 4, dt)[1]), ValueError, "K >= 2"),
    "nan_in_row_7": (lambda dt: (uk.uwe, *_nan_row7(dt)), NonFiniteError, "row 7"),
    "inf_in_features_row_3": (lambda dt: (uk.uwe, _pool(6, 3, 2, dt)[0],
                                          np.where(np.arange(12).reshape(6, 2) == 7, np.inf, 1.0).astype(dt)),
                              NonFiniteError, "features .*row 3"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_embedding_inputs_raise_clear_errors(backend, device, dtype, case):
    make, exc, match = BAD_INPUTS[case]
    fn, *arrays = make(dtype)
    with pytest.raises(exc, match=match):
        _run(fn, backend, device, *arrays)


def test_nan_row_7_is_named_by_every_embedding_op(backend, device, dtype):
    s, f = _nan_row7(dtype)
    for fn, args in ((uk.uncertainty, (s,)), (uk.badge_embedding, (s, f)), (uk.badge_factored, (s, f))):
        with pytest.raises(NonFiniteError, match="scores has a non-finite value .* row 7"):
            _run(fn, backend, device, *args)


def test_first_bad_row_wins_across_the_whole_input(backend, device):
    n = 5000 if backend != "triton" else 40
    s, f = _pool(n, 5, 8, np.float32)
    s[n - 3, 0], s[n // 2 + 1, 2], f[n // 3, 1] = np.inf, np.nan, np.nan
    with pytest.raises(NonFiniteError, match=f"scores .* row {n // 2 + 1}$"):
        _run(uk.uwe, backend, device, s, f)
    s[n // 2 + 1, 2], s[n - 3, 0] = 0.0, 0.0
    with pytest.raises(NonFiniteError, match=f"features .* row {n // 3}$"):
        _run(uk.uwe, backend, device, s, f)


def test_negative_probabilities_without_logits(backend, device, dtype):
    s, f = _pool(10, 3, 2, dtype, from_logits=False)
    s[4, 1] = -0.5
    for fn, args in ((uk.uncertainty, (s,)), (uk.uwe, (s, f)), (uk.badge_embedding, (s, f))):
        with pytest.raises(ValueError, match="negative value in row 4"):
            _run(fn, backend, device, *args, from_logits=False)


@pytest.mark.parametrize("bad", ["int32", "complex64"])
def test_integer_and_complex_scores_are_refused(backend, device, bad):
    s = np.ones((4, 3), dtype=bad)
    f = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(TypeError, match="astype"):
        uk.uwe(s, f, backend=backend)


def test_negative_tau_and_unknown_kind(backend, device):
    s, f = _pool(4, 3, 2, np.float32)
    with pytest.raises(ValueError, match="tau"):
        _run(uk.uwe, backend, device, s, f, "entropy", -0.5)
    with pytest.raises(ValueError, match="entropy, bvsb, margin, least_confidence"):
        _run(uk.uwe, backend, device, s, f, "variance", 1.0)


SEG_BAD = {
    "stride_does_not_divide": ((1, 3, 16, 16), (1, 2, 5, 5), None, "tile"),
    "region_does_not_divide": ((1, 3, 16, 16), (1, 2, 4, 4), (6, 8), "divide"),
    "region_not_multiple_of_stride": ((1, 3, 16, 16), (1, 2, 4, 4), (2, 8), "multiples"),
    "images_differ": ((2, 3, 16, 16), (1, 2, 4, 4), None, "images"),
}


@pytest.mark.parametrize("case", list(SEG_BAD))
def test_bad_segmentation_inputs(backend, device, case):
    sshape, fshape, region, match = SEG_BAD[case]
    s, f = np.zeros(sshape, np.float32), np.zeros(fshape, np.float32)
    with pytest.raises(ValueError, match=match):
        _run(uk.uwe_segmentation, backend, device, s, f, region=region)


@pytest.mark.parametrize("ids", [[0, 3], [-1, 0]], ids=["too_large", "negative"])
def test_detection_image_ids_out_of_range(backend, device, ids):
    s, f, _ = _boxes(2, 3, 2, 3, np.float32)
    with pytest.raises(ValueError, match="out of range"):
        _run(uk.uwe_detection, backend, device, s, f, np.array(ids), 3)


def test_cpp_results_do_not_depend_on_thread_count():
    ext = pytest.importorskip("uwe_kernels._ext_cpu")
    s, f = _pool(3001, 10, 70, np.float32, seed=12)
    before = ext.get_num_threads()
    try:
        ext.set_num_threads(1)
        one = [uk.uwe(s, f, backend="cpp"), uk.badge_embedding(s, f, backend="cpp")]
        ext.set_num_threads(max(2, before))
        many = [uk.uwe(s, f, backend="cpp"), uk.badge_embedding(s, f, backend="cpp")]
    finally:
        ext.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(one, many))


def test_large_float32_output_matches_reference_and_finds_bad_rows(backend, device):
    if backend == "triton":
        pytest.skip("triton interpreter: small shapes only")
    s, f = _pool(4099, 10, 1027, np.float32, seed=13)
    f = f[:, 1:]
    got = _run(uk.uwe, backend, device, s, f, "entropy", 1.0)
    assert _rel_err(got, _ref(uk.uwe, s, f, "entropy", 1.0)) <= _tol(np.float32)
    f = f.copy()
    f[4000, 999], f[4098, 0] = np.inf, np.nan
    with pytest.raises(NonFiniteError, match="features .* row 4000$"):
        _run(uk.uwe, backend, device, s, f, "entropy", 1.0)


def _finite_patterns(dtype: Any, rows: int) -> np.ndarray:
    if np.dtype(dtype).itemsize == 2:
        v = np.arange(65536, dtype=np.uint16).view(dtype)
        v = v[np.isfinite(v.astype(np.float32))]
    else:
        rng = np.random.default_rng(0)
        v = (rng.standard_normal(rows * 64) * 2.0 ** rng.integers(-60, 60, rows * 64)).astype(dtype)
    return v[: min(len(v) // 64, rows) * 64].reshape(-1, 64)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_tau_zero_gives_the_features_bit_exactly(backend, device, dtype, layout):
    f = _finite_patterns(dtype, 9 if backend == "triton" else 1024)
    if layout == "strided":
        if device != "cpu":
            pytest.skip("strided views are built on host arrays")
        f = np.repeat(f, 2, axis=1)[:, ::2]
    s = np.zeros((len(f), 2), dtype=np.float32)
    got = to_numpy(_run(uk.uwe, backend, device, s, f, "entropy", 0.0, out_dtype=f.dtype))
    assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(f).view(np.uint8))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("out_dtype", HALF, ids=["float16", "bfloat16"])
def test_rounding_to_half_outputs_matches_numpy(backend, device, out_dtype):
    rows = 9 if backend == "triton" else 1000
    rng = np.random.default_rng(1)
    f = (rng.standard_normal((rows, 64)) * 2.0 ** rng.integers(-30, 17, (rows, 64))).astype(np.float32)
    s = np.zeros((rows, 2), dtype=np.float32)
    got = to_numpy(_run(uk.uwe, backend, device, s, f, "entropy", 0.0, out_dtype=out_dtype))
    with np.errstate(over="ignore"):
        want = f.astype(out_dtype)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))


def test_cpp_long_calls_stop_on_keyboard_interrupt(ctrl_c_raises):
    import _thread
    import threading
    import time

    ext = pytest.importorskip("uwe_kernels._ext_cpu")
    s = np.broadcast_to(np.linspace(-1, 1, 200, dtype=np.float32), (20_000_000, 200))
    timer = threading.Timer(0.1, _thread.interrupt_main)
    before = ext.get_num_threads()
    ext.set_num_threads(1)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            uk.uncertainty(s, backend="cpp")
    finally:
        timer.cancel()
        ext.set_num_threads(before)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("backend", cpu_backends())
def test_negative_and_zero_strides_match_reference(backend):
    base_s = logits(80, 10, seed=1, dtype=np.float32)
    base_f = np.random.default_rng(0).standard_normal((80, 12))
    s = base_s[::-2, 1::2]
    f = np.asfortranarray(base_f)[::-2, ::-3]
    np.testing.assert_allclose(uk.uwe(s, f, tau=0.5, backend=backend), uk.uwe(s, f, tau=0.5, backend="reference"),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(uk.kcenter_greedy(f, [1], 9, backend=backend),
                                  uk.kcenter_greedy(f, [1], 9, backend="reference"))
    broadcast = np.broadcast_to(base_f[0], (40, 12))
    np.testing.assert_allclose(uk.uwe(s, broadcast, backend=backend), uk.uwe(s, broadcast, backend="reference"),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", cpu_backends())
def test_torch_bfloat16_round_trip(backend):
    torch = pytest.importorskip("torch")
    scores = torch.from_numpy(logits(25, 4, seed=1, dtype=np.float32)).bfloat16()
    feats = torch.from_numpy(np.random.default_rng(0).standard_normal((25, 5)).astype(np.float32)).bfloat16()
    got = uk.uwe(scores, feats, backend=backend)
    assert got.dtype == torch.bfloat16 and isinstance(got, torch.Tensor)
    assert _rel_err(got, as_float64(uk.uwe(scores, feats, backend="reference"))) <= _tol(BFLOAT16)
    np.testing.assert_array_equal(uk.kcenter_greedy(feats, None, 6, backend=backend).numpy(),
                                  uk.kcenter_greedy(feats, None, 6, backend="reference").numpy())
