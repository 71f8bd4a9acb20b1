"""The parallel k-means++ draw of csrc/common/certified_prefix.h: chunk sums in any order, a
certified bound, the sequential chain on close calls. Every pick must equal the sequential
float64 chain's (API.md's rule), on adversarial D vectors and on targets placed on chunk
boundaries, where the fallback must run."""
import ctypes
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from uwe_kernels import _certified_draw


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    compiler = shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the csrc/common/certified_prefix.h probe")
    root = pathlib.Path(__file__).resolve().parents[1] / "csrc"
    lib = tmp_path_factory.mktemp("certified_prefix") / "certified_prefix.so"
    subprocess.run([compiler, "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{root}",
                    str(root / "tests" / "certified_prefix_capi.cpp"), "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


def certified_draws(probe, D, r, threads, force_exact=False):
    """The device's draw emulated by a block of `threads` threads (chunks of 2 * threads rows)."""
    fn = probe.certified_draws_f32 if D.dtype == np.float32 else probe.certified_draws_f64
    fn.restype = None
    D = np.ascontiguousarray(D)
    r = np.ascontiguousarray(r, dtype=np.float64)
    picks = np.empty(len(r), dtype=np.int64)
    exact = np.empty(len(r), dtype=np.uint8)
    fn(D.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(len(D)), r.ctypes.data_as(ctypes.c_void_p),
       ctypes.c_int64(len(r)), ctypes.c_int64(threads), ctypes.c_int(int(force_exact)),
       picks.ctypes.data_as(ctypes.c_void_p), exact.ctypes.data_as(ctypes.c_void_p))
    return picks, exact.astype(bool)


def sequential_pick(D, r):
    """API.md's rule on numpy's left-to-right float64 cumsum; -1 when sum(D) is 0 (or NaN)."""
    P = np.cumsum(D.astype(np.float64))
    if not P[-1] > 0.0:
        return -1
    with np.errstate(invalid="ignore"):  # 0 * inf: no prefix exceeds NaN, the last positive row wins
        hit = np.flatnonzero(P > r * P[-1])
    return int(hit[0]) if hit.size else int(np.flatnonzero(D > 0)[-1])


def assert_picks_match(probe, D, r, threads):
    picks, exact = certified_draws(probe, D, r, threads)
    expected = [sequential_pick(D, x) for x in r]
    np.testing.assert_array_equal(picks, expected)
    forced, all_exact = certified_draws(probe, D, r, threads, force_exact=True)
    np.testing.assert_array_equal(forced, expected)
    assert all_exact.all()
    return exact


def boundary_draws(D, step):
    """Draws r whose target r * S lands on, or within a few ulps of, the prefix at every
    step-th row (chunk and run boundaries for step = 2 * threads): the close calls."""
    P = np.cumsum(D.astype(np.float64))
    S = P[-1]
    r = []
    for end in P[step - 1 :: step][:-1]:
        base = end / S
        r += [base, np.nextafter(base, 0.0), np.nextafter(base, 1.0),
              np.nextafter(np.nextafter(base, 1.0), 1.0)]
    return np.clip(np.array(r), 0.0, np.nextafter(1.0, 0.0))


def adversarial_vectors():
    rng = np.random.default_rng(3)
    n = 3001
    wide = np.exp(rng.uniform(-600, 600, n)) * (rng.random(n) < 0.7)
    yield "huge dynamic range", wide
    mostly_zero = np.zeros(n)
    mostly_zero[rng.choice(n, 12, replace=False)] = rng.random(12)
    yield "many zeros", mostly_zero
    yield "ties", np.full(n, 0.1)
    tiny = np.full(n, 5e-324) * rng.integers(0, 3, n)
    yield "subnormals", tiny
    big_then_small = np.concatenate([[1e300], np.full(n - 1, 1e-20)])
    yield "one dominant row", big_then_small
    yield "float32 distances", (rng.standard_normal(n) ** 2).astype(np.float32)


@pytest.mark.parametrize("name, D", list(adversarial_vectors()), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("threads", [1, 3, 32, 1024])
def test_picks_equal_the_sequential_chain_on_adversarial_vectors(probe, name, D, threads):
    rng = np.random.default_rng(threads)
    r = np.concatenate([rng.random(60), [0.0, np.nextafter(1.0, 0.0)], boundary_draws(D, 2 * threads)[:80],
                        boundary_draws(D, 37)[:40]])
    assert_picks_match(probe, D, r, threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_targets_on_chunk_boundaries_take_the_exact_chain(probe, dtype):
    rng = np.random.default_rng(5)
    D = (rng.random(5000) * 3).astype(dtype)
    threads = 64
    r = boundary_draws(D, 2 * threads)
    exact = assert_picks_match(probe, D, r, threads)
    assert exact.all()


def test_random_targets_are_certified_without_the_chain(probe):
    rng = np.random.default_rng(9)
    D = rng.random(20000) ** 4
    r = rng.random(400)
    exact = assert_picks_match(probe, D, r, 1024)
    # The bound is ~n * 2^-53 * S wide: a random target lands that close to a prefix value
    # with probability ~1e-10 per row, so the chain should almost never run.
    assert exact.sum() <= 2


def test_all_zero_D_asks_for_a_uniform_draw(probe):
    picks, exact = certified_draws(probe, np.zeros(100), np.array([0.0, 0.5, 0.99]), 8)
    np.testing.assert_array_equal(picks, -1)
    assert not exact.any()


def test_overflowed_distances_fall_back_to_the_chain(probe):
    D = np.array([1.0, np.inf, 2.0, 0.0, np.inf, 0.0])
    r = np.array([0.0, 0.3, 0.9])
    picks, exact = certified_draws(probe, D, r, 1)
    np.testing.assert_array_equal(picks, [sequential_pick(D, x) for x in r])
    assert exact.all()


@pytest.mark.parametrize("n_terms, total", [(1, 1.0), (1000, 3.5), (10**7, 1e300), (5, 0.0)])
def test_header_bound_is_the_python_one(probe, n_terms, total):
    probe.chain_error_bound.restype = ctypes.c_double
    got = probe.chain_error_bound(ctypes.c_int64(n_terms), ctypes.c_double(total))
    assert got == _certified_draw.chain_error_bound(n_terms, total)


# The same draw for D on a torch device (uwe_kernels/_certified_draw.py), chunks of CHUNK rows.

def python_draws(D, r):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(D))
    out = [_certified_draw.certified_pick(t, float(x), sequential_pick) for x in r]
    return np.array([p for p, _ in out]), np.array([e for _, e in out])


@pytest.mark.parametrize("name, D", list(adversarial_vectors()), ids=lambda v: v if isinstance(v, str) else "")
def test_torch_draw_equals_the_sequential_chain(name, D):
    D = np.concatenate([D, D[::-1], D])  # longer than two chunks, with a partial last one
    rng = np.random.default_rng(11)
    r = np.concatenate([rng.random(40), [0.0, np.nextafter(1.0, 0.0)],
                        boundary_draws(D, _certified_draw.CHUNK), boundary_draws(D, 101)[:40]])
    picks, _ = python_draws(D, r)
    np.testing.assert_array_equal(picks, [sequential_pick(D, x) for x in r])


def test_torch_draw_takes_the_exact_chain_on_chunk_boundaries():
    rng = np.random.default_rng(12)
    D = rng.random(5 * _certified_draw.CHUNK + 17).astype(np.float32)
    r = boundary_draws(D, _certified_draw.CHUNK)
    picks, exact = python_draws(D, r)
    np.testing.assert_array_equal(picks, [sequential_pick(D, x) for x in r])
    assert exact.all()
    picks, exact = python_draws(D, rng.random(50))
    assert exact.sum() <= 1  # random targets are almost never close calls

