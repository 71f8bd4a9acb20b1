"""kind="bald": mutual information H(mean_t p_t) - mean_t H(p_t) over [n, K, T] scores of T
stochastic passes, in uncertainty, uwe and uwe_factored, on every backend that declares it
against the float64 reference."""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import NonFiniteError, registry
from uwe_kernels._arrays import BFLOAT16
from uwe_kernels.registry import Call

from conftest import DTYPES
from helpers import as_float64, rtol, to_device

pytestmark = pytest.mark.ops("uncertainty", "uwe", kind="bald")
F64 = np.float64


def _passes(n: int, k: int, t: int, seed: int = 0, scale: float = 3.0, from_logits: bool = True) -> np.ndarray:
    """[n, K, T] float64: logits around a per-row centre (passes that mostly agree, as MC
    dropout gives), or their softmax over K."""
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal((n, k, 1)) + rng.standard_normal((n, k, t))
    if from_logits:
        return z
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _f64(x: np.ndarray) -> np.ndarray:
    return x.astype(F64) if x.dtype == BFLOAT16 else np.asarray(x, dtype=F64)


def _ref_u(scores: np.ndarray, from_logits: bool = True) -> np.ndarray:
    return as_float64(uk.uncertainty(_f64(scores), "bald", from_logits=from_logits, backend="reference"))


def _acc(dtype: Any) -> np.dtype:
    return np.dtype(F64) if np.dtype(dtype) == F64 else np.dtype(np.float32)


def _assert_u_close(got: Any, want: np.ndarray, dtype: Any, k: int) -> None:
    """Relative to u for the output's rounding; absolute, in units of log K (the size of the
    two entropies whose difference u is), for the accumulation."""
    got = as_float64(got)
    assert got.shape == want.shape
    assert (got >= 0).all()
    atol = 16 * rtol(_acc(dtype)) * max(1.0, float(np.log(k)))
    np.testing.assert_allclose(got, want, rtol=4 * rtol(dtype), atol=atol)


def _run(fn: Any, backend: str, device: str, *arrays: Any, **kwargs: Any) -> Any:
    return fn(*(to_device(a, device) if isinstance(a, np.ndarray) else a for a in arrays), backend=backend, **kwargs)


# ---------------------------------------------------------------- hand-computed values


def _hand_cases() -> list[tuple[str, np.ndarray, bool, np.ndarray]]:
    onehot_opposite = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # [1, K=2, T=2]: pass 0 says class 0, pass 1 class 1
    four_ways = np.eye(4)[None]  # [1, 4, 4]: pass t says class t; mean is uniform
    uniform_agree = np.full((2, 5, 3), 0.2)  # every pass uniform: H(mean) = mean H = log 5
    single_pass = _passes(3, 6, 1, seed=1)
    big_opposite = np.array([[[60.0, -60.0], [-60.0, 60.0]]])
    return [
        ("T=1 gives 0", single_pass, True, np.zeros(3)),
        ("opposite one-hot passes give log 2", onehot_opposite, False, np.array([np.log(2)])),
        ("one-hot passes over every class give log K", four_ways, False, np.array([np.log(4)])),
        ("agreeing uniform passes give 0", uniform_agree, False, np.zeros(2)),
        ("opposite confident logits give log 2", big_opposite, True, np.array([np.log(2)])),
    ]


@pytest.mark.parametrize("case", _hand_cases(), ids=lambda c: c[0])
def test_hand_computed_values(backend, device, dtype, case):
    _, scores, from_logits, want = case
    s = scores.astype(dtype)
    got = _run(uk.uncertainty, backend, device, s, "bald", from_logits=from_logits)
    k = scores.shape[1]
    atol = 16 * rtol(_acc(dtype)) * max(1.0, float(np.log(k)))
    np.testing.assert_allclose(as_float64(got), want, rtol=4 * rtol(dtype), atol=atol)
    assert (as_float64(got) >= 0).all()


def test_reference_equals_the_definition():
    """H(mean p) - mean H(p) written out with numpy on the reference's softmax."""
    z = _passes(23, 5, 7, seed=3)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)

    def h(q: np.ndarray) -> np.ndarray:
        return -(q * np.log(q)).sum(axis=1)

    want = h(p.mean(axis=2)) - h(p).mean(axis=1)
    np.testing.assert_allclose(_ref_u(z), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_ref_u(p, from_logits=False), want, rtol=1e-12, atol=1e-15)


def test_agreeing_passes_are_clamped_not_negative(backend, device):
    """Identical passes: the exact value is 0 and rounding must not make it negative."""
    z = np.repeat(_passes(64, 9, 1, seed=4, scale=8.0), 6, axis=2)
    for dt in (np.float32, np.float64):
        for from_logits, s in ((True, z), (False, _passes(64, 9, 1, seed=4, from_logits=False).repeat(6, axis=2))):
            got = as_float64(_run(uk.uncertainty, backend, device, s.astype(dt), "bald", from_logits=from_logits))
            assert (got >= 0).all()
            assert got.max() <= 16 * rtol(dt) * np.log(9)


# ---------------------------------------------------------------- every backend vs the reference


SHAPES = [(1, 2, 1), (5, 2, 3), (33, 7, 5), (9, 300, 3), (4, 3, 40), (130, 10, 8)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
def test_uncertainty_matches_reference(backend, device, dtype, shape, from_logits):
    if backend == "triton":
        shape = (min(shape[0], 9),) + shape[1:]  # the interpreter runs each program in numpy
    s = _passes(*shape, seed=sum(shape), from_logits=from_logits).astype(dtype)
    got = _run(uk.uncertainty, backend, device, s, "bald", from_logits=from_logits)
    assert got.dtype == s.dtype
    _assert_u_close(got, _ref_u(s, from_logits), dtype, shape[1])


def test_large_logits_use_log_sum_exp(backend, device):
    """Logits of magnitude 1e3 overflow a plain exp; per-pass log-sum-exp keeps them exact."""
    z = _passes(17, 6, 5, seed=8, scale=1.0) * 400.0
    for dt in (np.float32, np.float64):
        got = _run(uk.uncertainty, backend, device, z.astype(dt), "bald")
        assert np.isfinite(as_float64(got)).all()
        _assert_u_close(got, _ref_u(z.astype(dt)), dt, 6)


def _layouts(s: np.ndarray) -> dict[str, np.ndarray]:
    """The same [n, K, T] values in other memory orders (views; no copy reaches the op)."""
    return {
        "passes_outer": np.ascontiguousarray(s.transpose(0, 2, 1)).transpose(0, 2, 1),  # [n, T, K] memory
        "fortran": np.asfortranarray(s),
        "rows_inner": np.ascontiguousarray(s.transpose(1, 2, 0)).transpose(2, 0, 1),
        "negative_strides": s[::-1, ::-1, ::-1].copy()[::-1, ::-1, ::-1],
        "every_other_pass": np.repeat(s, 2, axis=2)[:, :, ::2],
    }


@pytest.mark.parametrize("shape", [(19, 5, 4), (7, 19, 33)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("layout", ["passes_outer", "fortran", "rows_inner", "negative_strides", "every_other_pass"])
def test_any_stride_order(backend, device, dtype, layout, from_logits, shape):
    """A view gives the C-contiguous array's bits (backends may read the two differently), and
    both match the reference; K and T of the second shape exceed a vector's lanes. The reference
    sums with numpy, whose pairwise order follows the memory layout: its views agree to rounding."""
    if device != "cpu":
        pytest.skip("strided views are host arrays")
    same = (np.testing.assert_array_equal if backend != "reference" else
            functools.partial(np.testing.assert_allclose, rtol=1e-13, atol=1e-15))
    s = _passes(*shape, seed=12, from_logits=from_logits).astype(dtype)
    f = np.random.default_rng(12).standard_normal((shape[0], 6)).astype(dtype)
    view = _layouts(s)[layout]
    assert np.array_equal(_f64(view), _f64(s))
    want = as_float64(_run(uk.uncertainty, backend, device, s, "bald", from_logits=from_logits))
    _assert_u_close(want, _ref_u(s, from_logits), dtype, shape[1])
    same(as_float64(_run(uk.uncertainty, backend, device, view, "bald", from_logits=from_logits)), want)
    same(as_float64(_run(uk.uwe, backend, device, view, f, "bald", 0.5, from_logits=from_logits)),
         as_float64(_run(uk.uwe, backend, device, s, f, "bald", 0.5, from_logits=from_logits)))


def test_memmap_and_torch_cpu_inputs(backend, device, tmp_path):
    if device != "cpu":
        pytest.skip("memory maps and torch CPU tensors are host inputs")
    torch = pytest.importorskip("torch")
    s = _passes(21, 4, 3, seed=13).astype(np.float32)
    m = np.memmap(tmp_path / "s.bin", dtype=np.float32, mode="w+", shape=s.shape)
    m[:] = s
    m.flush()
    read = np.memmap(tmp_path / "s.bin", dtype=np.float32, mode="r", shape=s.shape)
    want = _ref_u(s)
    _assert_u_close(_run(uk.uncertainty, backend, device, read, "bald"), want, np.float32, 4)
    t = torch.from_numpy(np.ascontiguousarray(s.transpose(0, 2, 1))).permute(0, 2, 1)  # strided tensor
    got = uk.uncertainty(t, "bald", backend=backend)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    _assert_u_close(got, want, np.float32, 4)


def test_inputs_are_not_modified(backend, device):
    s = _passes(11, 3, 4, seed=14, from_logits=False)
    f = np.random.default_rng(14).standard_normal((11, 2))
    s0, f0 = s.copy(), f.copy()
    _run(uk.uwe, backend, device, s, f, "bald", 2.0, from_logits=False)
    _run(uk.uncertainty, backend, device, s, "bald", from_logits=False)
    if device == "cpu":
        np.testing.assert_array_equal(s, s0)
        np.testing.assert_array_equal(f, f0)


# ---------------------------------------------------------------- uwe, uwe_factored, normalize


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_uwe_matches_reference(backend, device, dtype, tau):
    s = _passes(37, 6, 5, seed=15).astype(dtype)
    f = np.random.default_rng(15).standard_normal((37, 9)).astype(dtype)
    got = as_float64(_run(uk.uwe, backend, device, s, f, "bald", tau))
    u = _ref_u(s)
    want = u[:, None] ** tau * _f64(f)
    # d(u^tau) = tau u^(tau-1) du: compare the weights where u is not near 0 (tau < 1).
    atol = 16 * rtol(_acc(dtype)) * np.log(6) * max(tau, 1.0) * np.abs(_f64(f)).max()
    np.testing.assert_allclose(got, want, rtol=4 * rtol(dtype), atol=atol if tau >= 1 or tau == 0 else 1e-2)


def test_uwe_factored_materializes_to_uwe(backend, device):
    s = _passes(29, 5, 6, seed=16).astype(np.float32)
    f = np.random.default_rng(16).standard_normal((29, 7)).astype(np.float32)
    fac = _run(uk.uwe_factored, backend, device, s, f, "bald", 1.5)
    assert fac.shape == (29, 7)
    dense = as_float64(_run(uk.uwe, backend, device, s, f, "bald", 1.5))
    np.testing.assert_allclose(as_float64(fac.materialize()), dense, rtol=4 * rtol(np.float32), atol=1e-6)


@pytest.mark.parametrize("pool", [None, "half"])
def test_minmax_normalisation(backend, device, pool):
    s = _passes(40, 4, 6, seed=17)
    f = np.random.default_rng(17).standard_normal((40, 3))
    rows = None if pool is None else np.arange(0, 40, 2)
    u = _ref_u(s)
    sub = u if rows is None else u[rows]
    want = np.clip((u - sub.min()) / (sub.max() - sub.min()), 0.0, 1.0)
    got = as_float64(_run(uk.uncertainty, backend, device, s, "bald", normalize="minmax", pool=rows))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    emb = as_float64(_run(uk.uwe, backend, device, s, f, "bald", 2.0, normalize="minmax", pool=rows))
    np.testing.assert_allclose(emb, want[:, None] ** 2 * f, rtol=1e-9, atol=1e-12)
    fac = _run(uk.uwe_factored, backend, device, s, f, "bald", 2.0, normalize="minmax", pool=rows)
    np.testing.assert_allclose(as_float64(fac.materialize()), emb, rtol=1e-9, atol=1e-12)


def test_out_dtype_and_half_accumulation(backend, device):
    s = _passes(15, 3, 4, seed=18).astype(np.float16)
    got = _run(uk.uncertainty, backend, device, s, "bald", out_dtype=np.float64)
    assert got.dtype == np.float64
    _assert_u_close(got, _ref_u(s), np.float32, 3)  # float32 accumulation, no output rounding


# ---------------------------------------------------------------- errors and declarations


def test_bad_shapes_raise_clear_errors():
    z3 = _passes(4, 3, 2)
    with pytest.raises(ValueError, match=r"kind='bald' takes 3-D scores \[n, K, T\].*\(4, 3\)"):
        uk.uncertainty(z3[:, :, 0], "bald")
    with pytest.raises(ValueError, match=r"2-D \[n, K\] for this kind.*kind='bald'"):
        uk.uncertainty(z3, "entropy")
    with pytest.raises(ValueError, match=r"K >= 2 classes and T >= 1 passes"):
        uk.uncertainty(z3[:, :1], "bald")
    with pytest.raises(ValueError, match=r"K >= 2 classes and T >= 1 passes"):
        uk.uncertainty(z3[:, :, :0], "bald")
    with pytest.raises(ValueError, match=r"3-D"):
        uk.uwe(z3[:, :, 0], np.ones((4, 2)), "bald")
    with pytest.raises(ValueError, match=r"rows but scores has 4"):
        uk.uwe(z3, np.ones((5, 2)), "bald")
    with pytest.raises(ValueError, match=r"3-D"):
        uk.uwe_factored(z3.reshape(4, 6), np.ones((4, 2)), "bald")
    with pytest.raises(ValueError, match=r"uncertainty, uwe and uwe_factored only"):
        uk.uwe_detection(z3[:, :, 0], np.ones((4, 2)), np.zeros(4, dtype=np.int64), 1, kind="bald")
    with pytest.raises(ValueError, match=r"uncertainty, uwe and uwe_factored only"):
        uk.uwe_segmentation(np.zeros((1, 3, 4, 4)), np.zeros((1, 2, 2, 2)), kind="bald")
    with pytest.raises(ValueError, match=r"choose from .*bald"):
        uk.uncertainty(z3, "mutual_information")


def test_bad_values_name_the_row(backend, device):
    s = _passes(9, 3, 4, seed=19)
    s[6, 2, 3] = np.nan
    with pytest.raises(NonFiniteError, match="row 6"):
        _run(uk.uncertainty, backend, device, s, "bald")
    p = _passes(9, 3, 4, seed=19, from_logits=False)
    p[5, 0, 1] = -0.1
    with pytest.raises(ValueError, match="negative value in row 5"):
        _run(uk.uncertainty, backend, device, p, "bald", from_logits=False)
    f = np.ones((9, 2))
    f[2, 1] = np.inf
    with pytest.raises(NonFiniteError, match="row 2"):
        _run(uk.uwe, backend, device, _passes(9, 3, 4, seed=19), f, "bald")


@pytest.mark.parametrize("name", registry.PRIORITY)
def test_bald_declaration_agrees_with_the_op_modules(name):
    backend = registry.BACKENDS[name]
    ok, why = backend.availability()
    if not ok:
        pytest.skip(f"{name}: {why}")
    device = "cpu" if "cpu" in backend.devices or registry._interpret_mode() else "cuda:0"
    for op, shapes in (("uncertainty", {"scores": (8, 3, 2)}), ("uwe", {"scores": (8, 3, 2), "features": (8, 4)})):
        for dtype in DTYPES.values():
            call = Call(op=op, device=device, dtypes=(dtype,) * len(shapes), shapes=shapes, options={"kind": "bald"})
            reasons = backend.reasons(call, explicit=True)
            assert backend.accepts(op, dtype=dtype.name, kind="bald") == (not reasons), (op, dtype, reasons)
            if reasons:
                assert any("bald" in r for r in reasons)
