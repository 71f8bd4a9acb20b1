"""Seeded differential fuzz: every CPU backend and algorithm against the float64 reference.

Each case is drawn from its own seed (shown in the case id: rerun one with `-k s123-`).
UWE_FUZZ_CASES sets how many cases (default a few hundred, for CI); UWE_FUZZ_SEED moves the
whole set. Oracles:
- integer-grid pools (exact ties, duplicates, rows one coordinate apart, all-zero pools) are
  computed exactly in every dtype, so every path equals the reference: lowest index wins;
- on continuous pools the reference's k-center picks are exact up to the first step whose
  float64 gap between the two farthest distinct rows is within rounding of the dtype;
- brute == pruned == auto bit for bit (picks and distances) on every input;
- picks unique, in range, never labelled, deterministic per seed; the input is never modified;
- factored UWE / BADGE pick what their explicit rows pick at accumulation precision.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import registry
from uwe_kernels._arrays import BFLOAT16
from conftest import DTYPES, REQUIRED_ON_CPU, cpu_backends
from helpers import as_float64, logits, rtol

CASES = int(os.environ.get("UWE_FUZZ_CASES", "120"))
BASE_SEED = int(os.environ.get("UWE_FUZZ_SEED", "20261202"))
CONTENTS = ("gaussian", "clustered", "duplicates", "grid_ties", "one_coordinate", "all_zero", "huge", "tiny")
LAYOUTS = ("contiguous", "strided", "negative", "fortran", "memmap")
LABELLED = ("none", "some", "repeated", "mask")
BUDGETS = ("zero", "one", "some", "all")
# Relative float64 gap below which two distances may swap order after rounding in the dtype.
GAP = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4, np.dtype(np.float16): 2e-2, BFLOAT16: 1e-1}


@dataclass(frozen=True)
class Case:
    seed: int
    content: str
    dtype: str
    layout: str
    labelled: str
    budget: str
    n: int
    d: int

    @property
    def id(self) -> str:
        return f"s{self.seed}-{self.content}-{self.dtype}-{self.layout}-{self.labelled}-{self.budget}-{self.n}x{self.d}"


def draw_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    content = str(rng.choice(CONTENTS))
    dtype = str(rng.choice(tuple(DTYPES)))
    if content in ("huge", "tiny"):
        dtype = str(rng.choice(("float32", "float64")))  # magnitudes beyond half precision's range
    n = int(rng.choice((1, 2, 3, 7, 17, 33, 64, 101, 257)))
    d = int(rng.choice((1, 2, 3, 5, 16, 19, 33)))
    labelled = "none" if n == 1 else str(rng.choice(LABELLED))
    return Case(seed, content, dtype, str(rng.choice(LAYOUTS)), labelled, str(rng.choice(BUDGETS)), n, d)


def pool_values(case: Case) -> np.ndarray:
    """The pool's logical values in float64 (exactly representable in the case's dtype)."""
    rng = np.random.default_rng(case.seed + 1)
    n, d = case.n, case.d
    if case.content in ("gaussian", "huge", "tiny"):
        X = rng.standard_normal((n, d))
        X *= {"gaussian": 1.0, "huge": 1e20, "tiny": 1e-25}[case.content]
    elif case.content == "clustered":
        centres = rng.standard_normal((max(1, n // 8), d)) * 4
        X = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, d))
    elif case.content == "duplicates":
        X = rng.standard_normal((n, d))
        X[rng.integers(0, n, n // 2)] = X[rng.integers(0, n, n // 2)]
    elif case.content == "grid_ties":
        X = rng.integers(-2, 3, (n, d)).astype(np.float64)  # small integers: every sum is exact
    elif case.content == "one_coordinate":
        X = rng.integers(-3, 4, (n, d)).astype(np.float64)
        X[1::2] = X[0::2][rng.integers(0, (n + 1) // 2, n // 2)]
        X[1::2, rng.integers(0, d)] += 1  # each odd row one unit away from a copy of an even one
    else:  # all_zero
        X = np.zeros((n, d))
    return X.astype(DTYPES[case.dtype]).astype(np.float64)


def exact(case: Case) -> bool:
    """Integer pools: every path computes the same exact distances, so ties are exact ties."""
    return case.content in ("grid_ties", "one_coordinate", "all_zero")


def lay_out(X: np.ndarray, layout: str, tmp_path: Any) -> np.ndarray:
    """The same logical rows in another memory layout."""
    if layout == "strided":
        wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
        wide[:, ::2] = X
        return wide[:, ::2]
    if layout == "negative":
        return np.ascontiguousarray(X[::-1, ::-1])[::-1, ::-1]
    if layout == "fortran":
        return np.asfortranarray(X)
    if layout == "memmap":
        m = np.memmap(tmp_path / "pool.bin", dtype=X.dtype, mode="w+", shape=X.shape)
        m[:] = X
        m.flush()
        return np.memmap(tmp_path / "pool.bin", dtype=X.dtype, mode="r+", shape=X.shape)
    return np.ascontiguousarray(X)


def labelled_set(case: Case) -> tuple[Any, np.ndarray]:
    """The labelled argument and the mask it means."""
    rng = np.random.default_rng(case.seed + 2)
    n = case.n
    mask = np.zeros(n, dtype=bool)
    if case.labelled == "none":
        return None, mask
    idx = rng.choice(n, size=max(1, n // 4), replace=False)
    mask[idx] = True
    if case.labelled == "repeated":
        return np.concatenate([idx, idx[::-1], idx[:1]]), mask
    if case.labelled == "mask":
        return mask.copy(), mask
    return idx, mask


def budget_of(case: Case, free: int) -> int:
    return {"zero": 0, "one": min(1, free), "some": free // 3, "all": free}[case.budget]


def fingerprint(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X).tobytes() + str(X.strides).encode()).hexdigest()


def engines(op: str, dtype: str, *, factored: bool = False) -> list[tuple[str, str]]:
    """(backend, algorithm) pairs the registry declares, on the CPU backends this install has."""
    out = []
    for name in cpu_backends():
        backend = registry.BACKENDS[name]
        ok, why = backend.availability()
        if not ok:
            if name in REQUIRED_ON_CPU:
                pytest.fail(f"required backend {name} unavailable: {why}")
            continue
        for algorithm in ("brute", "pruned", "auto"):
            if algorithm == "auto" and len(backend.algorithms) < 2:
                continue
            if not backend.undeclared(op, algorithm=algorithm, dtype=dtype, factored=factored):
                out.append((name, algorithm))
    return out


def check_properties(picks: np.ndarray, mask: np.ndarray, budget: int) -> None:
    assert picks.dtype == np.int64 and picks.shape == (budget,)
    assert len(np.unique(picks)) == budget
    assert ((picks >= 0) & (picks < len(mask))).all()
    assert not mask[picks].any()


def reference_kcg_prefix(X: np.ndarray, mask: np.ndarray, picks: np.ndarray, dtype: np.dtype) -> int:
    """How many of the reference's k-center picks are beyond rounding: the steps before the first
    one whose winner leads the farthest distinct row by less than the dtype's rounding."""
    D = np.full(len(X), np.inf)
    for c in np.flatnonzero(mask):
        D = np.minimum(D, ((X - X[c]) ** 2).sum(1))
    D[mask] = -1.0
    for step, p in enumerate(picks):
        if np.isfinite(D[p]):
            other = ~(X == X[p]).all(1) & (D >= 0)  # exact copies of the winner tie exactly everywhere
            if other.any():
                runner = D[other].max()
                if D[p] - runner <= GAP[np.dtype(dtype)] * max(D[p], np.finfo(float).tiny):
                    return step
        elif (np.isinf(D) & (D > 0)).sum() > 1:
            pass  # first pick: decided by the largest norm
        D = np.minimum(D, ((X - X[p]) ** 2).sum(1))
        D[p] = -1.0
    return len(picks)


CASE_LIST = [draw_case(BASE_SEED + i) for i in range(CASES)]


@pytest.mark.parametrize("case", CASE_LIST, ids=lambda c: c.id)
def test_kcenter_greedy_fuzz(case: Case, tmp_path: Any) -> None:
    values = pool_values(case)
    X = lay_out(values.astype(DTYPES[case.dtype]), case.layout, tmp_path)
    before = fingerprint(X)
    labelled, mask = labelled_set(case)
    budget = budget_of(case, int((~mask).sum()))
    want, want_d = uk.kcenter_greedy(X, labelled, budget, backend="reference", return_distances=True)
    want = np.asarray(want)
    check_properties(want, mask, budget)
    for name, algorithm in engines("kcenter_greedy", case.dtype):
        runs = [uk.kcenter_greedy(X, labelled, budget, backend=name, algorithm=algo, return_distances=True)
                for algo in (("brute", "pruned", "auto") if algorithm == "auto" else (algorithm,))]
        for picks, dists in runs:
            picks = np.asarray(picks)
            check_properties(picks, mask, budget)
            # every algorithm of a backend: identical picks and distances, bit for bit
            np.testing.assert_array_equal(picks, np.asarray(runs[0][0]), err_msg=f"{name} algorithms disagree")
            np.testing.assert_array_equal(as_float64(dists), as_float64(runs[0][1]),
                                          err_msg=f"{name} algorithms' distances disagree")
            assert np.dtype(dists.dtype) == np.dtype(DTYPES[case.dtype])
        picks, dists = np.asarray(runs[0][0]), runs[0][1]
        agree = budget if exact(case) else reference_kcg_prefix(values, mask, want, np.dtype(DTYPES[case.dtype]))
        np.testing.assert_array_equal(picks[:agree], want[:agree], err_msg=f"{name}/{algorithm} vs reference")
        np.testing.assert_allclose(as_float64(dists)[:agree], as_float64(want_d)[:agree],
                                   rtol=4 * rtol(DTYPES[case.dtype]), err_msg=f"{name}/{algorithm} distances")
        again = np.asarray(uk.kcenter_greedy(X, labelled, budget, backend=name, algorithm=algorithm))
        np.testing.assert_array_equal(again, picks)
    assert fingerprint(X) == before, "the input was modified"


@pytest.mark.parametrize("case", CASE_LIST[::2], ids=lambda c: c.id)
def test_kmeans_pp_fuzz(case: Case, tmp_path: Any) -> None:
    values = pool_values(case)
    X = lay_out(values.astype(DTYPES[case.dtype]), case.layout, tmp_path)
    before = fingerprint(X)
    labelled, mask = labelled_set(case)
    budget = budget_of(case, int((~mask).sum()))
    rng = np.random.default_rng(case.seed + 3)
    firsts: list[Any] = ["max_norm", "random"] + ([int(rng.integers(case.n))] if labelled is None else [])
    # three seeds (the extremes and one drawn), each with one of the first= rules
    for seed in (0, int(rng.integers(2**63)), 2**64 - 1):
        first = firsts[int(rng.integers(len(firsts)))]
        want = np.asarray(uk.kmeans_pp(X, budget, labelled_idx=labelled, seed=seed, first=first, backend="reference"))
        check_properties(want, mask, budget)
        brute: dict[str, np.ndarray] = {}
        for name, algorithm in engines("kmeans_pp", case.dtype):
            picks = np.asarray(uk.kmeans_pp(X, budget, labelled_idx=labelled, seed=seed, first=first,
                                            backend=name, algorithm=algorithm))
            check_properties(picks, mask, budget)
            # every algorithm of a backend: identical picks (brute comes first in engines())
            np.testing.assert_array_equal(picks, brute.setdefault(name, picks), err_msg=f"{name}/{algorithm} vs brute")
            if exact(case):  # exact D and prefix sums: the reference's draws on every path
                np.testing.assert_array_equal(picks, want, err_msg=f"{name}/{algorithm} vs reference")
        for name, picks in brute.items():
            again = uk.kmeans_pp(X, budget, labelled_idx=labelled, seed=seed, first=first, backend=name)
            np.testing.assert_array_equal(np.asarray(again), picks, err_msg=f"{name} not deterministic per seed")
    assert fingerprint(X) == before, "the input was modified"


@pytest.mark.parametrize("case", CASE_LIST[1::3], ids=lambda c: c.id)
def test_min_distances_fuzz(case: Case, tmp_path: Any) -> None:
    values = pool_values(case)
    X = lay_out(values.astype(DTYPES[case.dtype]), case.layout, tmp_path)
    rng = np.random.default_rng(case.seed + 4)
    C = np.ascontiguousarray(X[rng.integers(0, case.n, max(1, case.n // 5))])
    before = fingerprint(X), fingerprint(C)
    out = np.float64 if case.content in ("huge", "tiny") else None  # squared 1e20 leaves float32
    want, want_arg = uk.min_distances(X, C, return_argmin=True, out_dtype=out, backend="reference")
    for name in cpu_backends():
        if name == "reference" or registry.BACKENDS[name].undeclared("min_distances", dtype=case.dtype) \
                or not registry.BACKENDS[name].availability()[0]:
            continue
        d, arg = uk.min_distances(X, C, return_argmin=True, out_dtype=out, backend=name)
        tol = rtol(DTYPES[case.dtype] if out is None else out)
        np.testing.assert_allclose(as_float64(d), as_float64(want), rtol=4 * tol,
                                   atol=4 * tol * float(as_float64(want).max(initial=0.0)), err_msg=name)
        if exact(case):
            np.testing.assert_array_equal(np.asarray(arg), np.asarray(want_arg), err_msg=f"{name} argmin")
        else:  # the chosen centre is as near as the reference's within rounding
            near = ((values[:, None, :] - C.astype(np.float64)[None]) ** 2).sum(-1)
            chosen = near[np.arange(case.n), np.asarray(arg)]
            np.testing.assert_allclose(chosen, near.min(1), rtol=4 * tol, atol=1e-300)
    assert (fingerprint(X), fingerprint(C)) == before, "the input was modified"


@pytest.mark.parametrize("case", CASE_LIST[2::4], ids=lambda c: c.id)
@pytest.mark.parametrize("kind", ["uwe", "badge"])
def test_factored_matches_explicit_fuzz(case: Case, kind: str) -> None:
    rng = np.random.default_rng(case.seed + 5)
    n, k = max(case.n, 2), int(rng.integers(2, 6))
    dtype = DTYPES[case.dtype]
    scores = logits(n, k, seed=case.seed % 2**31).astype(dtype)
    feats = rng.standard_normal((n, case.d)).astype(dtype)
    acc = np.float64 if dtype == np.float64 else np.float32  # half dtypes: compare at accumulation precision
    budget = min(n, 12)
    for name, algorithm in engines("kcenter_greedy", case.dtype, factored=True):
        if kind == "uwe":
            fe = uk.uwe_factored(scores, feats, "entropy", 0.7, backend=name)
            explicit = uk.uwe(scores, feats, "entropy", 0.7, out_dtype=acc, backend=name)
        else:
            fe = uk.badge_factored(scores, feats, backend=name)
            explicit = uk.badge_embedding(scores, feats, out_dtype=acc, backend=name)
        want = np.asarray(uk.kcenter_greedy(explicit, None, budget, backend=name, algorithm=algorithm))
        got = np.asarray(uk.kcenter_greedy(fe, None, budget, backend=name, algorithm=algorithm))
        np.testing.assert_array_equal(got, want, err_msg=f"{name}/{algorithm} factored {kind}")
