"""Public selection functions: k-center greedy, k-means++ seeding, min distances and the
one-call `select` (API.md, "Selection")."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

import numpy as np

from . import _arrays, _scale, rng
from ._arrays import Prepared, prepare
from ._dispatch import run
from .factored import FactoredArrays, FactoredEmbedding
from .validation import (
    check_budget,
    check_float,
    check_index,
    check_ndim,
    check_same_device,
    check_values,
    labelled_mask,
)

ALGORITHMS = ("auto", "brute", "pruned")
METHODS = ("uwe", "badge", "coreset", "uncertainty", "random")
STARTS = ("labelled", "pool")


class _Pool:
    """A validated embedding: dense [n, d] or factored."""

    def __init__(self, emb: Any, name: str = "emb") -> None:
        if isinstance(emb, FactoredEmbedding):
            pw, pf = emb.prepared()
            self.named = [("weights", pw), ("features", pf)]
            self.data: Any = emb.backend_arrays()
            self.like = pf
            self.dtype = emb.dtype
            self.factored = True
        else:
            p = prepare(emb, name)
            check_float(p, name)
            check_ndim(p, name, 2, "[n, d] (or a FactoredEmbedding)")
            self.named = [(name, p)]
            self.data = p.data
            self.like = p
            self.dtype = p.dtype
            self.factored = False
        self.n = self.like.shape[0]

    def checked_factors(self) -> list[_scale.Factor]:
        """Validate every value (NaN/inf -> ValueError) and describe the pool's scale, in one
        chunked pass per input."""
        mags = [check_values(p, name) for name, p in self.named]
        if not self.factored:
            return _scale.dense(self.named[0][0], mags[0], self.like.shape[1])
        k = 1 if self.data.weights.ndim == 1 else self.data.weights.shape[1]
        return _scale.factored(mags[0], k, mags[1], self.like.shape[1])

    @property
    def options(self) -> dict[str, Any]:
        return {"factored": self.factored, "n": self.n}


def _check_algorithm(algorithm: Any) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    return str(algorithm)


def _resolve_algorithm(algorithm: str, fn: Callable[..., Any], pool: _Pool, labelled: int, budget: int,
                       kcenter: bool) -> str:
    """The backend's choice for "auto", told the selection's mean centre count, its op
    (k-center greedy or k-means++), labelled rows and budget."""
    if algorithm != "auto":
        return algorithm
    choose = getattr(sys.modules[fn.__module__], "choose_algorithm", None)
    if choose is None:
        return "brute"
    with np.errstate(over="ignore", invalid="ignore"):  # a heuristic on a sample; any choice is exact
        # not str(): a _sketch.Algorithm carries the sample measurement to the op
        choice: str = choose(pool.data, centres=labelled + budget // 2, kcenter=kcenter, labelled=labelled,
                             budget=budget)
        return choice


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, desc: str) -> Iterator[Callable[[int], None] | None]:
    """A callback `update(picks_done)` for the op, drawing a tqdm bar; None when disabled."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="pick")
    try:
        def update(done: int) -> None:
            bar.n = int(done)
            bar.refresh()

        yield update
        bar.n = total
        bar.refresh()
    finally:
        bar.close()


def _mask_and_budget(pool: _Pool, labelled_idx: Any, budget: Any) -> tuple[np.ndarray, int, int]:
    mask = labelled_mask(labelled_idx, pool.n)
    n_lab = int(mask.sum())
    budget = check_budget(budget, pool.n - n_lab, pool.n, n_lab)
    return mask, n_lab, budget


def kcenter_greedy(
    emb: Any,  # [n, d] or FactoredEmbedding
    labelled_idx: Any,  # indices, bool mask [n], or None
    budget: int,
    *,
    first: int | None = None,
    algorithm: str = "auto",
    backend: str = "auto",
    progress: bool = False,
    return_distances: bool = False,
) -> Any:
    """K-Center-Greedy (paper Algorithm 1): repeatedly pick the row farthest from the
    labelled set and the earlier picks.

    Args:
        emb: [n, d] embedding or a FactoredEmbedding.
        labelled_idx: labelled rows as indices (duplicates allowed) or a bool mask; None or
            empty for none.
        budget: picks to make, 0 <= budget <= n - |labelled|.
        first: first pick when nothing is labelled (default: the row of largest norm).
        algorithm: "brute" reads every row per pick; "pruned" skips rows that cannot change;
            "auto" lets the backend choose. All return the same picks.
        return_distances: also return each pick's Euclidean distance to the nearest labelled
            row or earlier pick at the time it was picked (inf for a first pick), in the
            embedding's dtype and units.
    Returns:
        picks [budget] int64 in selection order (and distances [budget]), in the caller's
        library and device. Lowest index wins ties. The picks do not depend on the pool's
        scale: a pool whose squared distances would overflow or underflow float32 is
        accumulated in float64 (no copy).
    Raises:
        ValueError for out-of-range indices, a budget outside [0, n - |labelled|], non-finite
        rows, a pool whose squared distances overflow or underflow even float64 (rescale it),
        a pick distance beyond a float16 pool's range with return_distances=True (an inf
        would read as a first pick); TypeError for non-float embeddings; BackendUnavailable.
    """
    pool = _Pool(emb)
    mask, n_lab, budget = _mask_and_budget(pool, labelled_idx, budget)
    if first is not None:
        first = check_index(first, "first", pool.n)
        if n_lab:
            raise ValueError("first applies only when nothing is labelled (the labelled set seeds D)")
    algorithm = _check_algorithm(algorithm)
    factors: list[_scale.Factor] = []

    def call(fn: Callable[..., Any]) -> Any:
        factors.extend(pool.checked_factors())
        acc = _scale.accumulation(_arrays.accum_dtype(pool.dtype), factors)
        algo = _resolve_algorithm(algorithm, fn, pool, n_lab, budget, kcenter=True)
        with _progress_bar(progress, budget, "k-center greedy") as update:
            return fn(pool.data, mask, budget, first, algorithm=algo, progress=update, accum_dtype=acc)

    _, (picks, dists) = run("kcenter_greedy", backend, pool.named, call,
                            options={**pool.options, "algorithm": algorithm})
    picks = _arrays.restore(picks, pool.like)
    if not return_distances:
        return picks
    return picks, _arrays.restore(_distances_in(dists, pool.dtype, factors), pool.like)


def kmeans_pp(
    emb: Any,  # [n, d] or FactoredEmbedding
    budget: int,
    *,
    labelled_idx: Any = None,
    seed: int = 0,
    first: Any = "max_norm",
    algorithm: str = "auto",
    backend: str = "auto",
    progress: bool = False,
) -> Any:
    """K-means++ seeding as BADGE uses it: each pick is drawn with probability D / sum(D),
    D the squared distance to the nearest labelled row or earlier pick.

    Args:
        first: with nothing labelled, "max_norm" (BADGE's init_centers), "random" (uniform,
            from the seed) or an index. With a labelled set there is no first step: the
            named modes are ignored and an explicit index raises ValueError.
        seed: start state of the SplitMix64 stream (0 <= seed < 2**64): the same seed gives
            the same picks on every backend and thread count.
    Returns:
        picks [budget] int64 in selection order, in the caller's library and device.
    """
    pool = _Pool(emb)
    mask, n_lab, budget = _mask_and_budget(pool, labelled_idx, budget)
    seed = rng.check_seed(seed)
    if isinstance(first, str):
        if first not in ("max_norm", "random"):
            raise ValueError(f"first must be 'max_norm', 'random' or an index, got {first!r}")
    else:
        first = check_index(first, "first", pool.n)
        if n_lab:
            raise ValueError("an explicit first index applies only when nothing is labelled")
    algorithm = _check_algorithm(algorithm)

    def call(fn: Callable[..., Any]) -> Any:
        acc = _scale.accumulation(_arrays.accum_dtype(pool.dtype), pool.checked_factors(), count=max(pool.n, 1))
        algo = _resolve_algorithm(algorithm, fn, pool, n_lab, budget, kcenter=False)
        with _progress_bar(progress, budget, "k-means++") as update:
            return fn(pool.data, mask, budget, seed, first, algorithm=algo, progress=update, accum_dtype=acc)

    _, picks = run("kmeans_pp", backend, pool.named, call, options={**pool.options, "algorithm": algorithm})
    return _arrays.restore(picks, pool.like)


def min_distances(
    emb: Any,  # [n, d] or FactoredEmbedding
    centers: Any,  # [m, d] or FactoredEmbedding of the same kind
    *,
    return_argmin: bool = False,
    out_dtype: Any = None,
    backend: str = "auto",
) -> Any:
    """Squared distance from every row of `emb` to its nearest row of `centers`, chunked
    (never an [n, m] matrix). Returns d [n] (and argmin [n] int64, lowest index on ties), in
    the embedding's dtype unless out_dtype says otherwise. A distance beyond the default
    dtype's range raises ValueError (pass a wider out_dtype) rather than coming back as inf;
    an explicit out_dtype rounds as numpy's astype does."""
    pool = _Pool(emb)
    centres = _Pool(centers, "centers")
    if pool.factored != centres.factored:
        raise ValueError("emb and centers must both be dense or both be FactoredEmbedding")
    if pool.factored:
        same = (pool.data.weights.ndim == centres.data.weights.ndim
                and pool.data.shape[1] == centres.data.shape[1]
                and pool.data.features.shape[1] == centres.data.features.shape[1])
        if not same:
            raise ValueError(f"centers {centres.data.shape} do not match the factors of emb {pool.data.shape}")
    elif centres.like.shape[1] != pool.like.shape[1]:
        raise ValueError(f"centers has d = {centres.like.shape[1]} but emb has d = {pool.like.shape[1]}")
    if centres.n == 0:
        raise ValueError("centers must have at least one row")
    check_same_device(*(pool.named + centres.named))
    from .embeddings import _out_dtype

    out = pool.dtype if out_dtype is None else _out_dtype(out_dtype)  # a factored pool's rows dtype

    def call(fn: Callable[..., Any]) -> Any:
        own, theirs = pool.checked_factors(), centres.checked_factors()
        acc = _scale.accumulation(_arrays.accum_dtype(pool.dtype, centres.dtype), own + theirs)
        with np.errstate(over="ignore"):  # an overflow is reported below, not warned about
            d, argmin = fn(pool.data, centres.data, return_argmin=bool(return_argmin), out_dtype=out,
                           accum_dtype=acc)
        reach = max(_scale.distance_bound(own), _scale.distance_bound(theirs))
        if out_dtype is None and reach * reach > float(np.finfo(out).max) and _overflowed(d):
            raise ValueError(f"squared distances exceed {np.dtype(out).name}'s range (the inputs are finite): "
                             "pass out_dtype=np.float32 or np.float64 (torch.float32 / torch.float64)")
        return d, argmin

    _, (d, argmin) = run("min_distances", backend, pool.named + [("centers." + n, p) for n, p in centres.named],
                         call, options=pool.options)
    d = _arrays.restore(d, pool.like)
    return (d, _arrays.restore(argmin, pool.like)) if return_argmin else d


def _overflowed(result: Any, wide: Any = None) -> bool:
    """Whether `result` holds an inf that `wide` (the values before a cast, if any) did not."""
    xp = __import__("torch") if _arrays.is_torch(result) else np
    inf = xp.isinf(result if xp is not np else np.asarray(result))
    if wide is not None:
        inf &= ~xp.isinf(wide if xp is not np else np.asarray(wide))
    return bool(inf.any())


def _distances_in(dists: Any, dtype: np.dtype, factors: list[_scale.Factor]) -> Any:
    """Pick distances in the pool's dtype. A first pick's inf stays; a real distance too large
    for that dtype (float16 near its limit) raises instead of reading as another inf."""
    if _arrays.is_torch(dists):
        cast = dists.to(_arrays.torch_dtype(dtype))
    else:
        with np.errstate(over="ignore"):  # an overflow is reported below, not warned about
            cast = np.asarray(dists).astype(dtype)
    if _scale.distance_bound(factors) > float(np.finfo(dtype).max) and _overflowed(cast, dists):
        raise ValueError(
            f"a pick's distance exceeds {np.dtype(dtype).name}'s range (inf would read as a first pick): "
            "pass the pool as float32 to get its distances, or leave return_distances off"
        )
    return cast


def _random_picks(mask: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """`budget` distinct unlabelled rows: a partial Fisher-Yates shuffle of the unlabelled
    indices driven by the SplitMix64 draws 0, 1, ..."""
    pool = np.flatnonzero(~mask)
    r = rng.uniforms(seed, 0, budget)
    for t in range(budget):
        j = t + min(int(r[t] * (len(pool) - t)), len(pool) - t - 1)
        pool[t], pool[j] = pool[j], pool[t]
    return pool[:budget].astype(np.int64)


def _top_uncertain(u: Any, mask: np.ndarray, budget: int) -> np.ndarray:
    u = np.asarray(u.cpu() if _arrays.is_torch(u) else u, dtype=np.float64)
    order = np.argsort(-u, kind="stable")
    picks: np.ndarray = order[~mask[order]][:budget].astype(np.int64)
    return picks


def _on_device_of(picks: np.ndarray, like: Prepared) -> Any:
    if not like.on_cpu:
        return __import__("torch").as_tensor(picks, device=like.data.device)
    return _arrays.restore(picks, like)


def _select_uwe(scores: Any, features: Any, budget: Any, labelled_idx: Any, kind: str, tau: float,
                normalize: str | None, start: str, backend: str) -> Any:
    """select(method="uwe"): k-center greedy on the UWE from the labelled set (Algorithm 1) or,
    with start="pool", among the unlabelled rows alone; min-max over the unlabelled rows."""
    from . import embeddings

    if start == "labelled" and normalize is None:
        emb = embeddings.uwe(scores, features, kind, tau, backend=backend)
        return kcenter_greedy(emb, labelled_idx, budget, backend=backend)
    ps, pf = embeddings._scores_and_features(scores, features)
    mask = labelled_mask(labelled_idx, ps.shape[0])
    if start == "labelled":
        pool = ~mask if not mask.all() else None  # nothing unlabelled: budget 0, any range will do
        emb = embeddings.uwe(scores, features, kind, tau, normalize=normalize, pool=pool, backend=backend)
        return kcenter_greedy(emb, mask, budget, backend=backend)
    n_lab = int(mask.sum())
    budget = check_budget(budget, ps.shape[0] - n_lab, ps.shape[0], n_lab)
    unl = np.flatnonzero(~mask)
    rows: Any = unl if ps.on_cpu else __import__("torch").as_tensor(unl, device=ps.data.device)
    emb = embeddings.uwe(ps.data[rows], pf.data[rows], kind, tau, normalize=normalize, backend=backend)
    sub = kcenter_greedy(emb, None, budget, backend=backend)
    sub = np.asarray(sub.cpu() if _arrays.is_torch(sub) else sub, dtype=np.int64)
    return _on_device_of(unl[sub], ps)


def select(
    scores: Any,  # [n, K]
    features: Any,  # [n, d]
    budget: int,
    *,
    method: str = "uwe",
    labelled_idx: Any = None,
    kind: str | None = None,
    tau: float = 1.0,
    seed: int = 0,
    normalize: str | None = None,
    start: str = "labelled",
    backend: str = "auto",
) -> Any:
    """From model outputs to picks in one call.

    method: "uwe" (KCG on the uncertainty-weighted embedding, kind defaults to entropy),
    "badge" (k-means++ on the factored gradient embedding), "coreset" (KCG on the
    features), "uncertainty" (the budget most uncertain rows, lowest index on ties) or
    "random" (seeded).
    normalize, start (method "uwe" only): normalize="minmax" min-max normalises u over the
    unlabelled rows (see `uwe`). start="labelled" (default, the paper's Algorithm 1) seeds
    k-center greedy's distances from the labelled set; start="pool" embeds the unlabelled rows
    alone and runs k-center greedy among them from the one of largest norm, ignoring the
    labelled set. normalize="minmax" with start="pool" is UWE as the authors' code runs it.
    Returns picks [budget] int64 in the caller's library and device.
    """
    from . import embeddings

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if kind is not None and method not in ("uwe", "uncertainty"):
        raise ValueError(f"kind applies to method 'uwe' and 'uncertainty', not {method!r}")
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; choose from {', '.join(STARTS)}")
    if method != "uwe" and (normalize is not None or start != "labelled"):
        raise ValueError(f"normalize and start apply to method 'uwe', not {method!r}")
    kind = kind or "entropy"
    if method == "uwe":
        return _select_uwe(scores, features, budget, labelled_idx, kind, tau, normalize, start, backend)
    if method == "badge":
        emb = embeddings.badge_factored(scores, features, backend=backend)
        return kmeans_pp(emb, budget, labelled_idx=labelled_idx, seed=seed, backend=backend)
    if method == "coreset":
        ps, _ = embeddings._scores_and_features(scores, features)
        check_values(ps, "scores")  # unused by the method, but every input given is validated
        return kcenter_greedy(features, labelled_idx, budget, backend=backend)
    ps, pf = embeddings._scores_and_features(scores, features)
    check_values(pf, "features")
    if method == "random":
        check_values(ps, "scores")
    mask = labelled_mask(labelled_idx, ps.shape[0])
    n_lab = int(mask.sum())
    budget = check_budget(budget, ps.shape[0] - n_lab, ps.shape[0], n_lab)
    if method == "uncertainty":
        u = embeddings.uncertainty(scores, kind, backend=backend, out_dtype=np.float32)
        picks = _top_uncertain(u, mask, budget)
    else:
        picks = _random_picks(mask, budget, rng.check_seed(seed))
    return _on_device_of(picks, ps)
