"""Projection (sketch) bounds for exact selection: build the sketch, and the skip test.

For a fixed orthonormal Q [d, k] and centre mu, every pair of rows satisfies
|x - c|^2 >= |z_x - z_c|^2 + (r_x - r_c)^2 with z = Q^T (x - mu) and
r = |(I - Q Q^T)(x - mu)|. A row whose bound already reaches its current minimum distance D
keeps D against a new centre, so it needs no full distance. The sketch holds z (float32),
r (float32) and a per-row slack (float32, rounded up) that pays for every rounding error, so
that the test below never skips a row whose computed distance would lower D. The proof is in
docs/internals.md ("Sketch bounds"); `bound_constants` and `_error_scale` follow it line by line.

Pure numpy, like `_pruning`: every backend with a sketch engine builds the same sketch.
"""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from . import _threads
from ._pruning import looks_clustered
from .factored import FactoredArrays, FactoredEmbedding

SAMPLE_ROWS = 4096
SKETCH_WIDTHS = (8, 16, 32, 64)
# Young's inequality (a + E)^2 <= (1 + ETA) a^2 + (1 + 1/ETA) E^2 trades a relative margin on D
# (0.02%) for a slack that multiplies E^2 ~ (1e-6 |x - mu|)^2, i.e. nothing measurable.
ETA = 2.0**-12
# Absolute slack: covers every underflow of the distance, the bound and D's conversion to
# float32 (a subnormal result errs by at most 2^-150, one flushed to zero by at most 2^-126),
# for d, k < 2^20.
TAU = 2.0**-100
U_BUILD = 2.0**-53  # the build runs in float64
U_STORE = 2.0**-24  # z, r, slack and the test are float32 (the test may run wider)
BUILD_CHUNK_BYTES = 1 << 22  # float64 rows per chunk: cache-sized, reused per thread


def _gamma(count: int, unit: float) -> float:
    return count * unit / (1.0 - count * unit)


def _unit(acc_dtype: Any) -> float:
    return float(np.finfo(np.dtype(acc_dtype)).eps) / 2.0


@dataclass(frozen=True)
class Sketch:
    """z [n, k], r [n], slack [n] (float32); the test's constants; what it cost."""

    mu: np.ndarray  # [d] float64
    basis: np.ndarray  # P [d, k] float64, orthonormal up to `omega`
    z: np.ndarray  # [n, k] float32
    r: np.ndarray  # [n] float32
    slack: np.ndarray  # [n] float32, rounded up
    scale: float  # A: multiplies D in the test (a float32 value)
    tau: float
    omega: float  # proven bound on ||P^T P - I||_2
    energy: float  # fraction of the sample's variance the k directions capture
    spectrum: np.ndarray  # the sample covariance's eigenvalues, descending
    build_seconds: float

    @property
    def k(self) -> int:
        return int(self.basis.shape[1])


def _round_up_f32(values: np.ndarray) -> np.ndarray:
    """float64 -> the smallest float32 >= each value (inf stays inf)."""
    out = values.astype(np.float32)
    low = out.astype(np.float64) < values
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return out


def _round_up_scalar(value: float) -> float:
    return float(_round_up_f32(np.array([value], dtype=np.float64))[0])


def orthonormality_bound(basis: np.ndarray) -> float:
    """A proven upper bound on ||P^T P - I||_2: the computed Frobenius norm, doubled, plus
    the rounding error of each computed entry of P^T P (at most gamma_d (1 + omega))."""
    d, k = (int(v) for v in basis.shape)
    gram = basis.T @ basis - np.eye(k)
    return 2.0 * float(np.linalg.norm(gram)) + 4.0 * k * _gamma(d + 2, U_BUILD)


def _error_scale(d: int, k: int, omega: float, acc_unit: float, factored: bool) -> float:
    """eps with |(z, r) as stored - (z*, r*) exact| <= eps * a_x, a_x the row's size bound
    (|x - mu| dense, |w||f|(1 + u_acc) + |mu| factored). See docs/internals.md."""
    ub, us = U_BUILD, U_STORE
    if factored:
        e1 = omega + (_gamma(d + 2, ub) * math.sqrt(k) + 3 * ub) * (1 + omega)
        e_norm = _gamma(d + 5, ub)
        x_gap = acc_unit  # brute rows are fl(w f): |x - w f| <= u_acc |w||f| <= u_acc a_x
    else:
        e1 = omega + _gamma(d + 1, ub) * math.sqrt(k) * (1 + omega)
        e_norm = _gamma(d + 2, ub)
        x_gap = 0.0
    e2 = e_norm + _gamma(k, ub) * (1 + e1) ** 2 + (2 + e1) * e1 + 2 * ub
    e_z = e1 + x_gap + us * (1 + omega + e1 + x_gap)
    e_r = math.sqrt(e2) + x_gap + (us + ub) * (1 + math.sqrt(e2) + x_gap) * (1 + us)
    return 1.01 * (e_z + e_r)


def bound_constants(d: int, k: int, acc_dtype: Any) -> tuple[float, float]:
    """(A, C): skip when S >= A * D + slack_x + (slack_c + TAU), slack = C * e_x^2 rounded up.
    The brute distance accumulates in acc_dtype over d terms; the test runs in float32 or wider."""
    us = U_STORE
    rounding = (1.0 - us) ** -6  # D -> float32 and the three float32 operations of the right side
    g_bound = _gamma(k + 3, us)
    g_dist = _gamma(d + 2, _unit(acc_dtype))
    scale = (1 + g_bound) * (1 + ETA) / (1 - g_dist) * rounding * (1 + 2.0**-40)
    slack = (1 + g_bound) * 2 * (1 + 1 / ETA) * rounding * (1 + 2.0**-40)
    return _round_up_scalar(scale), slack


# ----------------------------------------------------------------- the row sample


def _sample_indices(n: int, count: int = SAMPLE_ROWS) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, count)).astype(np.int64))


def _rows64(emb: Any, index: Any) -> np.ndarray:
    """Rows of a dense pool, or of a factored UWE embedding (w_i f_i), in float64."""
    if isinstance(emb, FactoredArrays):
        w = np.asarray(emb.weights[index], dtype=np.float64)
        return w[:, None] * np.asarray(emb.features[index], dtype=np.float64)
    return np.asarray(emb[index], dtype=np.float64)


def principal_directions(sample: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu [d], P [d, k], eigenvalues [d] descending) of a float64 row sample."""
    mu = sample.mean(axis=0)
    centred = sample - mu
    # The product in float32 (half the float64 one's time), scaled into range first: only the
    # directions' quality depends on it; the basis is eigh's of a float64 matrix, orthonormal
    # to float64 precision, and the bound's proof uses only that (`orthonormality_bound`).
    top = float(np.max(np.abs(centred))) if centred.size else 0.0
    unit = top if top > 0 and math.isfinite(top) else 1.0
    scaled = (centred / unit).astype(np.float32)
    cov = (scaled.T @ scaled).astype(np.float64) * (unit * unit / max(1, len(sample)))
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    return mu, np.ascontiguousarray(vectors[:, :k]), values


def energy_captured(spectrum: np.ndarray, k: int) -> float:
    total = float(spectrum.sum())
    return float(spectrum[:k].sum()) / total if total > 0 else 1.0


# ----------------------------------------------------------------- the build


def _as_backend(emb: Any) -> Any:
    if isinstance(emb, FactoredEmbedding):
        emb = emb.backend_arrays()
    if isinstance(emb, FactoredArrays) and emb.weights.ndim != 1:
        raise ValueError("sketch bounds cover dense pools and factored UWE (weights [n]), not BADGE")
    if not isinstance(emb, FactoredArrays) and getattr(emb, "ndim", 0) != 2:
        raise ValueError(f"the pool must be [n, d], got shape {getattr(emb, 'shape', None)}")
    return emb


def _shape(emb: Any) -> tuple[int, int]:
    """(n, d) of a pool _as_backend returned: its rows, or a factored embedding's features."""
    n, d = emb.features.shape if isinstance(emb, FactoredArrays) else emb.shape
    return int(n), int(d)


def build_sketch(emb: Any, k: int, *, acc_dtype: Any = np.float32, sample_rows: int = SAMPLE_ROWS,
                 directions: tuple[np.ndarray, np.ndarray] | None = None) -> Sketch:
    """The sketch of a dense pool [n, d] (any float dtype, memory-mapped and strided views
    read in place, chunk by chunk) or of a factored UWE embedding (from the factors:
    z = w P^T f - P^T mu, |x - mu|^2 = w^2 |f|^2 - 2 w f.mu + |mu|^2).

    acc_dtype: the brute-force distance's accumulator (float32, or float64 for float64
    pools), which the test's margin covers. directions: (mu [d], P [d, k]) to use instead of
    the row sample's (the spectrum is then left empty and energy reported as nan). The build
    runs in float64, chunks side by side on the backends' thread count (`_threads`), each on
    one BLAS thread (a threaded BLAS's spinning workers would slow the selection that follows)."""
    return build_sketches(emb, (k,), acc_dtype=acc_dtype, sample_rows=sample_rows, directions=directions)[0]


def build_sketches(emb: Any, widths: tuple[int, ...], *, acc_dtype: Any = np.float32, sample_rows: int = SAMPLE_ROWS,
                   directions: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Sketch, ...]:
    """Sketches of several widths (the leading columns of one basis) from one pass over the
    pool, as build_sketch builds each: z of width k is the first k columns of the widest
    product (each entry is the same length-d dot product, so the same error bound holds), r
    from |x - mu|^2 - |z|^2 at that width. directions: (mu, P [d, max(widths)])."""
    start = time.perf_counter()
    emb = _as_backend(emb)
    factored = isinstance(emb, FactoredArrays)
    n, d = _shape(emb)
    widths = tuple(int(k) for k in widths)
    if not widths or not all(1 <= k <= d for k in widths):
        raise ValueError(f"sketch width k must be in [1, {d}], got {widths}")
    kmax = max(widths)
    acc_unit = _unit(acc_dtype)
    with threadpool_limits(limits=1, user_api="blas"):
        if directions is None:
            mu, basis, spectrum = principal_directions(row_sample(emb, sample_rows), kmax)
        else:
            mu, basis = (np.asarray(a, dtype=np.float64) for a in directions)
            if mu.shape != (d,) or basis.shape != (d, kmax):
                raise ValueError(f"directions must be mu [{d}] and P [{d}, {kmax}], got {mu.shape} and {basis.shape}")
            spectrum = np.empty(0)
        parts = []  # per width: (basis, omega, eps, scale, slack factor)
        for k in widths:
            sub = np.ascontiguousarray(basis[:, :k])
            omega = orthonormality_bound(sub)
            if omega > 2.0**-20:
                raise ArithmeticError(f"the sketch basis is not orthonormal (||P^T P - I|| <= {omega:.3g})")
            parts.append((sub, omega, _error_scale(d, k, omega, acc_unit, factored), *bound_constants(d, k, acc_dtype)))
        growth = 1 + 2 * _gamma(d + 6, U_BUILD)  # a_x computed -> an upper bound of the exact one
        z = [np.empty((n, k), dtype=np.float32) for k in widths]
        r = [np.empty(n, dtype=np.float32) for _ in widths]
        slack = [np.empty(n, dtype=np.float32) for _ in widths]
        mu_sq, mu_proj = float(mu @ mu), mu @ basis
        mu_norm = math.sqrt(mu_sq)
        step = max(1, min(BUILD_CHUNK_BYTES // (8 * d), -(-n // 8)))
        local = threading.local()

        def chunk(s: int) -> None:
            e = min(n, s + step)
            if not hasattr(local, "v"):  # per thread, reused: fresh temporaries would be page-faulted in
                local.v, local.z = np.empty((step, d)), np.empty((step, kmax))
            v, zz = local.v[: e - s], local.z[: e - s]
            if factored:
                w = np.asarray(emb.weights[s:e], dtype=np.float64)
                np.copyto(v, emb.features[s:e], casting="unsafe")
                np.matmul(v, basis, out=zz)
                zz *= w[:, None]
                zz -= mu_proj
                ff = np.einsum("ij,ij->i", v, v)
                vv = w * w * ff - 2.0 * w * (v @ mu) + mu_sq
                size = np.abs(w) * np.sqrt(ff) * (1 + acc_unit) + mu_norm
            else:
                np.copyto(v, emb[s:e], casting="unsafe")
                v -= mu
                np.matmul(v, basis, out=zz)
                vv = np.einsum("ij,ij->i", v, v)
                size = np.sqrt(vv)
            for t, k in enumerate(widths):
                zk = zz[:, :k]
                z[t][s:e] = zk
                r[t][s:e] = np.sqrt(np.maximum(vv - np.einsum("ij,ij->i", zk, zk), 0.0))
                err = parts[t][2] * size * growth
                slack[t][s:e] = _round_up_f32(parts[t][4] * err * err)

        starts = range(0, n, step)
        workers = min(len(starts), _threads.get_num_threads())
        if workers > 1:  # numpy's products and copies release the GIL: chunks run side by side
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(chunk, starts))
        else:
            for s in starts:
                chunk(s)
    seconds = time.perf_counter() - start
    return tuple(Sketch(mu, parts[t][0], z[t], r[t], slack[t], parts[t][3], TAU, parts[t][1],
                        energy_captured(spectrum, k) if len(spectrum) else math.nan, spectrum, seconds)
                 for t, k in enumerate(widths))


# ----------------------------------------------------------------- the test


def error_radius(sketch: Sketch, acc_dtype: Any = np.float32) -> np.ndarray:
    """Per row, the proven bound e_x on |(z, r) stored - (z, r) exact| (float64), read back
    from the slack."""
    c = bound_constants(sketch.basis.shape[0], sketch.k, acc_dtype)[1]
    return np.sqrt(sketch.slack.astype(np.float64) / c)


def sketch_keeps(z: np.ndarray, r: np.ndarray, slack: np.ndarray, row: int, centre: int, scale: float,
                 tau: float, D: float) -> bool:
    """True when row `row` provably keeps its minimum distance D (computed by the brute
    force) against centre `centre`, a row of the same sketch. Written for numba (njit it
    with float32 arrays); plain Python gives the same answers. Mirrors
    csrc/common/sketch_bound.h."""
    s = np.float32(0.0)
    for j in range(z.shape[1]):
        t = z[row, j] - z[centre, j]
        s += t * t
    t = r[row] - r[centre]
    s += t * t
    rhs = np.float32(scale) * np.float32(D) + (slack[centre] + np.float32(tau)) + slack[row]
    return bool(s >= rhs and rhs < np.float32(np.inf))


def sketch_bounds(sketch: Sketch, centre: int, rows: Any = slice(None)) -> np.ndarray:
    """|z_x - z_c|^2 + (r_x - r_c)^2 in float32 for `rows` (vectorised form of the bound)."""
    dz = sketch.z[rows] - sketch.z[centre]
    dr = sketch.r[rows] - sketch.r[centre]
    return np.asarray(np.einsum("ij,ij->i", dz, dz) + dr * dr)


def sketch_keeps_all(sketch: Sketch, centre: int, D: np.ndarray, rows: Any = slice(None)) -> np.ndarray:
    """Vectorised `sketch_keeps` over `rows` (D given for those rows), float32 throughout."""
    with np.errstate(over="ignore"):  # D near the float32 maximum: rhs = inf, never skipped
        rhs = np.float32(sketch.scale) * D.astype(np.float32)
        rhs += sketch.slack[centre] + np.float32(sketch.tau)
        rhs += sketch.slack[rows]
    return np.asarray((sketch_bounds(sketch, centre, rows) >= rhs) & (rhs < np.float32(np.inf)))


# ----------------------------------------------------------------- what a sketch would save


def row_sample(emb: Any, sample_rows: int = SAMPLE_ROWS) -> np.ndarray:
    """The float64 row sample every measurement here reads (evenly spaced rows)."""
    emb = _as_backend(emb)
    return _rows64(emb, _sample_indices(_shape(emb)[0], sample_rows))


def sample_directions(emb: Any, k: int, sample_rows: int = SAMPLE_ROWS,
                      sample: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, P [d, k], spectrum) of the row sample, for `predicted_fractions` and then
    `build_sketch(directions=(mu, P[:, :k]))`, so that the eigenproblem is solved once."""
    with threadpool_limits(limits=1, user_api="blas"):
        return principal_directions(row_sample(emb, sample_rows) if sample is None else sample, k)


def predicted_fractions(emb: Any, centres: int, widths: tuple[int, ...] = SKETCH_WIDTHS,
                        sample_rows: int = SAMPLE_ROWS, query_rows: int = 64,
                        directions: tuple[np.ndarray, np.ndarray] | None = None,
                        sample: np.ndarray | None = None) -> dict[int, float]:
    """For each sketch width k, the fraction of rows a sketch-bounded pick would still
    evaluate, estimated on a row sample: query rows get D from their nearest of `centres`
    sampled rows (the selection's centre count: labelled plus about half the budget), and
    every other sampled row plays the new centre. Costs a d x d eigenproblem (unless
    `directions` = (mu, P) with at least max(widths) columns are given) and
    sample_rows x d x max(k) multiply-adds. sample: the float64 row sample, when already read."""
    emb = _as_backend(emb)
    d = _shape(emb)[1]
    widths = tuple(k for k in widths if k <= d)
    with threadpool_limits(limits=1, user_api="blas"):
        sample = row_sample(emb, sample_rows) if sample is None else sample
        mu, basis = directions if directions is not None else principal_directions(sample, max(widths))[:2]
        v = sample - mu
        z = v @ basis
        vv = np.einsum("ij,ij->i", v, v)
        m = len(sample)
        queries = np.unique(np.linspace(0, m - 1, min(m, query_rows) + 2)[1:-1].astype(np.int64))
        held = np.unique(np.linspace(0, m - 1, max(1, min(centres, m - 1))).astype(np.int64))
        sq = vv[queries, None] + vv[None, :] - 2.0 * (v[queries] @ v.T)
        sq[np.arange(len(queries)), queries] = np.inf
        D = sq[:, held].min(axis=1)
        out: dict[int, float] = {}
        for k in widths:
            zk = z[:, :k]
            rk = np.sqrt(np.maximum(vv - np.einsum("ij,ij->i", zk, zk), 0.0))
            bound = (np.einsum("ij,ij->i", zk[queries], zk[queries])[:, None] + np.einsum("ij,ij->i", zk, zk)[None, :]
                     - 2.0 * (zk[queries] @ zk.T) + (rk[queries, None] - rk[None, :]) ** 2)
            evaluated = (bound < D[:, None]) & np.isfinite(sq)
            out[k] = float(evaluated.sum()) / float(np.isfinite(sq).sum())
    return out


def best_second_tier(fractions: dict[int, float], first: int, d: int) -> int:
    """The second tier of a two-tier pick after first tier `first`: the width whose evaluated
    rows plus its own reads (k + 1 floats for each row the first tier leaves, scattered: a
    cache line at least) are fewest, if below the first tier's evaluated rows; else 0."""
    cost = {k: fractions[first] * max(k + 1, 16) / (d + 1) + f for k, f in fractions.items() if k > first}
    if not cost:
        return 0
    k = min(cost, key=lambda w: (cost[w], w))
    return k if cost[k] < fractions[first] else 0


def best_width(fractions: dict[int, float], d: int) -> tuple[int, float]:
    """(k, traffic): the width whose pick reads the fewest bytes, relative to brute force's
    d + 1 floats a row: k + 3 sketch floats (z, r, slack, D) plus the evaluated rows."""
    traffic = {k: (k + 3) / (d + 1) + f for k, f in fractions.items()}
    k = min(traffic, key=lambda w: (traffic[w], w))
    return k, traffic[k]


# ----------------------------------------------------------------- whether a sketch pays

MIN_ROWS = 4096
# A sketch is used when its predicted traffic (best_width) is at most this fraction of brute
# force's: the build and the sketch passes' bookkeeping eat part of the saving.
MAX_TRAFFIC = 0.5
# The measurement (SAMPLE_ROWS x d x d multiply-adds in BLAS and a d x d eigenproblem) is only
# made when the selection's brute-force multiply-adds (n x d x centres, each read from memory:
# 10-50x slower per operation than a BLAS product) are at least this many times its own, so
# that a pool where nothing pays loses a few percent at most.
MEASURE_SHARE = 1.0
# The build reads the pool once and makes n d k multiply-adds: about k / 4 picks of brute force
# in time at k = 64 (BLAS against a bandwidth-bound sweep); selections with fewer mean centres
# (labelled + budget / 2) than this do not repay it.
MIN_CENTRES = 64
# k-center greedy with labelled rows: the engines' dormant rows (docs/internals.md, "Dormant
# rows") skip most of every pick's pass even where the sketch bound prunes nothing, so a
# narrow sketch (plain mode) beats brute force when (measured on isotropic noise, both
# engines): the budget is a small share of the unlabelled rows (a wake searches every centre
# so far); rows are wide (at d = 128 the engine's per-row work against a cache-resident pool
# cost up to 4.5x); the picks saved (budget x d) outweigh the sketched labelled pass's extra
# work per labelled row (its bound tests and ordering, independent of d: `labelled_cost`
# row widths per labelled row, each engine's own, DORMANT_LABELLED_COST); and the picks'
# brute-force work (n d budget) is DORMANT_MEASURE_SHARE times the measurement's (a sketch
# is built and measured for the dormant rows alone), counted as if d were 512 at least (below,
# fixed costs and cache-resident pools decide: 21,000 x 256, budget 200 cost 1.2x on numba).
DORMANT_SHARE = 0.1
DORMANT_MIN_D = 256
DORMANT_MAX_D = 1024  # wider rows were not measured
# cpp: 1.36x brute force's time at d = 512, budget = labelled / 10, 1.0x at labelled / 5,
# 0.63x at labelled / 2; at d = 256: 1.76x at labelled / 5, 0.78-0.92x at labelled; at
# d = 1024: 0.59x at labelled / 4.
DORMANT_LABELLED_COST = 256.0
DORMANT_MEASURE_SHARE = 4.0
DORMANT_WIDTH = 16


@dataclass(frozen=True)
class SketchChoice:
    """What the sample measurement says: width 0 = no sketch."""

    width: int
    traffic: float  # predicted bytes read per pick relative to brute force
    fractions: dict[int, float]
    directions: tuple[np.ndarray, np.ndarray] | None  # (mu, P [d, width]) for build_sketch
    seconds: float
    wide: int = 0  # a two-tier engine's second tier (0: none pays more than `width` alone)
    wide_directions: tuple[np.ndarray, np.ndarray] | None = None  # (mu, P [d, wide])


NO_SKETCH = SketchChoice(0, 1.0, {}, None, 0.0)


def dormancy_pays(n: int, d: int, kcenter: bool, labelled: int, budget: int,
                  labelled_cost: float = DORMANT_LABELLED_COST) -> bool:
    """Whether a k-center selection's dormant rows repay a sketch that prunes nothing by itself
    on an [n, d] pool: labelled rows to seed D, DORMANT_MIN_D <= d <= DORMANT_MAX_D, a budget of at most
    DORMANT_SHARE of the unlabelled rows, budget x d >= labelled_cost x labelled, and
    n budget >= DORMANT_MEASURE_SHARE x SAMPLE_ROWS x max(d, 2 DORMANT_MIN_D)."""
    return (kcenter and labelled > 0 and DORMANT_MIN_D <= d <= DORMANT_MAX_D
            and 0 < budget <= DORMANT_SHARE * (n - labelled)
            and budget * d >= labelled_cost * labelled
            and float(n) * budget >= DORMANT_MEASURE_SHARE * SAMPLE_ROWS * max(d, 2 * DORMANT_MIN_D))


def choose_sketch(emb: Any, centres: int | None = None, dormant: bool = False) -> SketchChoice:
    """The sketch width whose pick reads the fewest bytes (widths k <= d / 4), if that is at
    most MAX_TRAFFIC of brute force's; else, when `dormant` (dormancy_pays), DORMANT_WIDTH
    (one tier: dormant rows pay, not the bound); NO_SKETCH for small pools and for selections
    too short to repay the measurement. centres: the selection's mean centre count (labelled
    rows plus half the budget), None when unknown."""
    start = time.perf_counter()
    emb = _as_backend(emb)
    n, d = _shape(emb)
    widths = tuple(k for k in SKETCH_WIDTHS if 4 * k <= d)
    rows = min(n, SAMPLE_ROWS)
    if n < MIN_ROWS or not widths:
        return NO_SKETCH
    if centres is not None and (centres < MIN_CENTRES or float(n) * d * centres < MEASURE_SHARE * float(rows) * d * d):
        return NO_SKETCH
    sample = row_sample(emb)  # read once: the directions and the predicted fractions
    mu, basis, _ = sample_directions(emb, max(widths), sample=sample)
    fractions = predicted_fractions(emb, max(1, centres or 64), widths, directions=(mu, basis), sample=sample)
    k, traffic = best_width(fractions, d)
    if traffic <= MAX_TRAFFIC:
        wide = best_second_tier(fractions, k, d)
    elif dormant:
        k, wide = min(DORMANT_WIDTH, max(widths)), 0
    else:
        return SketchChoice(0, traffic, fractions, None, time.perf_counter() - start)
    return SketchChoice(k, traffic, fractions, (mu, np.ascontiguousarray(basis[:, :k])), time.perf_counter() - start,
                        wide, (mu, np.ascontiguousarray(basis[:, :wide])) if wide else None)


def choose_bounds(emb: Any, centres: int | None, sketch_ok: bool, *, kcenter: bool = False, labelled: int = 0,
                  budget: int = 0, labelled_cost: float = DORMANT_LABELLED_COST) -> str:
    """`auto`'s choice for an engine that runs group bounds and (when sketch_ok) sketches:
    'pruned' when the row sample looks clustered, an Algorithm 'sketch' when choose_sketch
    finds a width that pays, 'pruned+sketch' when both, else 'brute'. kcenter, labelled,
    budget: the selection (labelled_cost: the engine's, for dormancy_pays); k-center greedy's
    dormant rows (dormancy_pays) make a sketch pay on pools that do not look clustered (where
    they do, group bounds win by far more, and cpp's dormant rows run in plain mode only)."""
    groups = looks_clustered(emb)
    if not sketch_ok:
        return "pruned" if groups else "brute"
    n, d = _shape(_as_backend(emb))
    dormant = not groups and dormancy_pays(n, d, kcenter, labelled, budget, labelled_cost)
    sketch = choose_sketch(emb, centres, dormant)
    if sketch.width:
        return Algorithm("pruned+sketch" if groups else "sketch", sketch)
    return "pruned" if groups else "brute"


def engine_options(emb: Any, algorithm: str, default_width: int = 16, two_tier: bool = False) -> dict[str, Any]:
    """The pruning engine's mode and sketch for 'pruned' / 'sketch' / 'pruned+sketch' (the
    sketch measurement an Algorithm carries, or default_width when asked by name). two_tier:
    the engine reads the measured width's sketch of every row and the wider second tier the
    measurement found (SketchChoice.wide) only where that does not settle the row (cpp)."""
    if "sketch" not in algorithm:
        return {}
    choice = algorithm.sketch if isinstance(algorithm, Algorithm) else NO_SKETCH
    d = _shape(_as_backend(emb))[1]
    options = {"mode": "plain" if algorithm == "sketch" else "adaptive",
               "sketch_width": choice.width or min(default_width, d), "directions": choice.directions}
    if two_tier and choice.wide > choice.width and choice.directions is not None:
        options.update(sketch_width=choice.wide, first_tier=choice.width, directions=choice.wide_directions)
    return options


class Algorithm(str):
    """An algorithm name chosen by `auto` ('brute', 'pruned', 'sketch', 'pruned+sketch') that
    carries the sketch measurement it was chosen by, so the op does not measure again."""

    sketch: SketchChoice = NO_SKETCH

    def __new__(cls, name: str, sketch: SketchChoice = NO_SKETCH) -> "Algorithm":
        out = super().__new__(cls, name)
        out.sketch = sketch
        return out
