"""scikit-activeml query strategies backed by uwe_kernels.

``UWE``, ``CoreSet`` and ``Badge`` follow scikit-activeml's pool conventions: ``X`` holds
all samples, ``y`` their labels with ``missing_label`` marking the unlabelled ones (the
labelled rows are those whose y is not missing), ``candidates`` is None (every unlabelled
sample), an index array into X, or rows of their own, and ``query`` returns indices (and,
with ``return_utilities=True``, a ``[batch_size, n]`` utility matrix, NaN where a sample
cannot be picked).

Labelled rows are the k-center greedy centres of ``UWE`` and ``CoreSet``; ``Badge``, like
scikit-activeml's, runs k-means++ over the unlabelled candidates alone, first pick the
largest gradient norm.

Randomness follows scikit-activeml: every query derives its random state from
``random_state`` and the number of unlabelled samples (``self.random_state_``), so an int
gives reproducible runs whose cycles differ. With nothing labelled, ``UWE`` and ``CoreSet``
make scikit-activeml's CoreSet first pick (a uniform draw from that state); ``Badge`` draws
its SplitMix64 seed from it. Exact distance ties (duplicate or integer-valued rows) go to
the lowest index (in X, or in candidates when they are rows of their own), where
scikit-activeml draws among them; without ties the picks and utilities are scikit-activeml
CoreSet's. Integer and bool X are cast to float64.

Example::

    from skactiveml.classifier import SklearnClassifier
    from uwe_kernels.integrations.skactiveml import UWE

    clf = SklearnClassifier(LogisticRegression(), classes=np.arange(10))
    idx = UWE(tau=1.0).query(X, y, clf, batch_size=32)
"""
from __future__ import annotations

from typing import Any

import numpy as np

import uwe_kernels as uk

from .. import _scale
from ._common import as_float_rows, check_features, draw_seed, require, to_numpy

require("skactiveml", "scikit-activeml", "skactiveml")

from sklearn.base import clone  # noqa: E402
from skactiveml.base import SingleAnnotatorPoolQueryStrategy, SkactivemlClassifier  # noqa: E402
from skactiveml.utils import (  # noqa: E402
    MISSING_LABEL,
    check_equal_missing_label,
    check_scalar,
    check_type,
    is_labeled,
    rand_argmax,
)

__all__ = ["UWE", "Badge", "CoreSet"]


class _Pool:
    """The rows a query works on: `X_pool` (labelled centres and candidates), which of them
    are labelled, and how a pool position maps to a returned index and a utility column."""

    def __init__(self, X_pool: Any, labelled: np.ndarray, out_index: np.ndarray, width: int) -> None:
        self.X_pool = X_pool
        self.labelled = labelled  # bool [len(X_pool)]
        self.out_index = out_index  # int [len(X_pool)], -1 for rows that are not candidates
        self.width = width  # columns of the utility matrix


def _kcenter_pool(X: np.ndarray, y: np.ndarray, candidates: Any, mapping: Any, missing_label: Any) -> _Pool:
    labelled = is_labeled(y, missing_label=missing_label)
    if mapping is None:  # candidates are rows of their own; labelled rows of X follow them
        n_cand = len(candidates)
        X_lab = X[labelled]
        X_pool = np.concatenate([np.asarray(candidates, dtype=np.result_type(candidates, X_lab)), X_lab])
        mask = np.arange(len(X_pool)) >= n_cand
        out = np.where(mask, -1, np.arange(len(X_pool)))
        return _Pool(X_pool, mask, out, n_cand)
    cand = np.zeros(len(X), dtype=bool)
    cand[np.asarray(mapping, dtype=np.int64)] = True
    cand &= ~labelled
    rows = np.flatnonzero(cand | labelled)
    X_pool = X if len(rows) == len(X) else X[rows]
    return _Pool(X_pool, labelled[rows], np.where(cand[rows], rows, -1), len(X))


def _badge_pool(X: np.ndarray, y: np.ndarray, candidates: Any, mapping: Any, missing_label: Any) -> _Pool:
    if mapping is None:
        n_cand = len(candidates)
        return _Pool(np.asarray(candidates), np.zeros(n_cand, dtype=bool), np.arange(n_cand), n_cand)
    cand = np.zeros(len(X), dtype=bool)
    cand[np.asarray(mapping, dtype=np.int64)] = True
    cand &= ~is_labeled(y, missing_label=missing_label)
    rows = np.flatnonzero(cand)
    X_pool = X if len(rows) == len(X) else X[rows]
    return _Pool(X_pool, np.zeros(len(rows), dtype=bool), rows, len(X))


def _columns(pool: _Pool, values: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Utility rows: ``values[t]`` at the candidates' columns, NaN elsewhere and where
    ``blocked[t]`` (labelled or already picked). Overwrites `values`, and returns it when pool
    positions are already the columns (no copy of the [budget, n] matrix)."""
    values[blocked] = np.nan
    cand = pool.out_index >= 0
    if pool.width == len(pool.out_index) and np.array_equal(pool.out_index[cand], np.flatnonzero(cand)):
        values[:, ~cand] = np.nan
        return values
    out = np.full((values.shape[0], pool.width), np.nan)
    out[:, pool.out_index[cand]] = values[:, cand]
    return out


def _blocked_before_each_pick(pool: _Pool, picks: np.ndarray) -> np.ndarray:
    """[budget, n_pool]: row t marks the labelled rows and picks 0..t-1."""
    blocked = np.tile(pool.labelled, (len(picks), 1))
    for t in range(1, len(picks)):
        blocked[t:, picks[t - 1]] = True
    return blocked


def _sq_distances_to_picks(rows: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """[n, len(picks)] squared distances from every row to each pick: one float64 GEMM."""
    sq = np.einsum("ij,ij->i", rows, rows)
    d2 = sq[:, None] + sq[picks][None, :] - 2.0 * (rows @ rows[picks].T)
    d2[picks, np.arange(len(picks))] = 0.0
    out: np.ndarray = np.maximum(d2, 0.0)
    return out


def _kcenter_utilities(emb: Any, pool: _Pool, picks: np.ndarray, backend: str) -> np.ndarray:
    """scikit-activeml CoreSet's utilities: each candidate's distance to its nearest centre
    before each pick (0 everywhere before a first pick with nothing labelled, as native).

    One min_distances call against the labelled rows and one GEMM against the picks give the
    whole [budget, n] matrix, instead of a pass over the pool per pick. `_kcenter_query` takes
    them from the selection itself where it can."""
    rows = to_numpy(emb).astype(np.float64, copy=False)
    if pool.labelled.any():
        d = np.sqrt(to_numpy(uk.min_distances(rows, rows[pool.labelled], backend=backend)).astype(np.float64))
    else:
        d = np.zeros(len(rows))
    to_pick = np.sqrt(_sq_distances_to_picks(rows, picks[:-1]))
    blocked = _blocked_before_each_pick(pool, picks)
    values = np.empty((len(picks), len(rows)))
    for t in range(len(picks)):
        if t:
            live = ~blocked[t - 1]
            if not d[live].sum():  # native: an all-zero row restarts from the next pick alone
                d = np.where(d == 0, np.inf, d)
            d = np.minimum(d, to_pick[:, t - 1])
        values[t] = d
    return _columns(pool, values, blocked)


def _selection_keeps_distances(emb: Any, backend: str) -> bool:
    """Whether the cpp kernel can run the selection and hand back D before each pick: a finite
    float pool whose squared distances fit float64 as they stand (the public call rescales or
    refuses the others, so they go that way)."""
    if not (backend in ("auto", "cpp") and isinstance(emb, np.ndarray) and emb.ndim == 2 and emb.size
            and emb.dtype in (np.float32, np.float64) and uk.backends()["cpp"][0]):
        return False
    peak = float(max(emb.max(), -emb.min()))  # max |x| without an |emb|-sized temporary
    return np.isfinite(peak) and all(f.problem(np.dtype(np.float64), 1) is None
                                     for f in _scale.dense("emb", peak, emb.shape[1]))


def _kcenter_query(emb: Any, pool: _Pool, batch_size: int, first: int | None, backend: str,
                   return_utilities: bool) -> Any:
    """k-center greedy picks as pool positions, and with return_utilities scikit-activeml
    CoreSet's utilities. On the cpp backend one selection gives both: the utilities are the
    kernel's own squared distances before each pick (exact), with no second pass over the
    labelled rows; elsewhere, and where native's all-zero restart applies, `_kcenter_utilities`."""
    if not return_utilities or not _selection_keeps_distances(emb, backend):
        picks = to_numpy(uk.kcenter_greedy(emb, pool.labelled, batch_size, backend=backend, first=first))
        return (picks, _kcenter_utilities(emb, pool, picks, backend)) if return_utilities else picks
    from ..cpp.select import kcenter_greedy_history

    picks, history = kcenter_greedy_history(emb, pool.labelled, batch_size, first)
    values = np.sqrt(history)
    if not pool.labelled.any():
        values[:1] = 0.0  # native: zero utilities before a first pick with nothing labelled
    blocked = _blocked_before_each_pick(pool, picks)
    # native restarts D from the next pick alone when every live utility is 0: the kernel keeps
    # D, so those (degenerate: every candidate a duplicate of a centre) pools go the other way
    restarts = [t for t in range(1, len(picks))
                if (t > 1 or pool.labelled.any()) and not values[t - 1][~blocked[t - 1]].sum()]
    if restarts:
        return picks, _kcenter_utilities(emb, pool, picks, backend)
    return picks, _columns(pool, values, blocked)


def _kmeanspp_utilities(emb: uk.FactoredEmbedding, pool: _Pool, picks: np.ndarray, backend: str) -> np.ndarray:
    """scikit-activeml Badge's utilities: the k-means++ probabilities D^2 / sum(D^2) over
    the candidates before each pick (D^2 from the labelled rows, or the squared norm when none
    is labelled; uniform over the unpicked ones when all D^2 are zero), from one distance pass
    to the labelled rows and two GEMMs against the picks."""
    w = to_numpy(emb.weights).astype(np.float64).reshape(len(pool.labelled), -1)
    f = to_numpy(emb.features).astype(np.float64)
    nw, nf = np.einsum("ij,ij->i", w, w), np.einsum("ij,ij->i", f, f)
    head = picks[:-1]
    to_pick = (nw * nf)[:, None] + (nw * nf)[head][None, :] - 2.0 * (w @ w[head].T) * (f @ f[head].T)
    to_pick[head, np.arange(len(head))] = 0.0
    np.maximum(to_pick, 0.0, out=to_pick)
    blocked = _blocked_before_each_pick(pool, picks)
    if pool.labelled.any():
        centres = uk.FactoredEmbedding(w[pool.labelled], f[pool.labelled])
        d2 = to_numpy(uk.min_distances(uk.FactoredEmbedding(w, f), centres, backend=backend)).astype(np.float64)
        d2[pool.labelled] = 0.0
    else:
        d2 = nw * nf
    values = np.empty((len(picks), len(w)))
    for t in range(len(picks)):
        if t:
            d2 = np.minimum(d2, to_pick[:, t - 1])
            d2[picks[:t]] = 0.0
        total = d2.sum()
        if total > 0:
            values[t] = d2 / total
        else:
            values[t] = np.where(blocked[t], 0.0, 1.0 / max(1, int((~blocked[t]).sum())))
            d2 = np.where(blocked[t], 0.0, np.inf)
    return _columns(pool, values, blocked)


def _native_first_pick(pool: _Pool, random_state: np.random.RandomState) -> int | None:
    """With nothing labelled, scikit-activeml's CoreSet picks first by ``rand_argmax`` over
    all-zero utilities: a uniform draw from the query's random state. The same draw here, as
    a pool position (None when labelled rows exist: the distances decide)."""
    if pool.labelled.any():
        return None
    zeros = np.full(pool.width, np.nan)
    zeros[pool.out_index[pool.out_index >= 0]] = 0.0
    column = int(rand_argmax(zeros, random_state=random_state)[0])
    return int(np.flatnonzero(pool.out_index == column)[0])


class _FloatPoolStrategy(SingleAnnotatorPoolQueryStrategy):  # type: ignore[misc]
    """scikit-activeml's input validation, then integer and bool samples as float64 (the
    kernels take floats; scikit-activeml's own strategies accept integer X)."""

    def _validated(self, X: Any, y: Any, candidates: Any, batch_size: Any, return_utilities: Any) -> Any:
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True
        )
        X = as_float_rows(X, "X")
        if candidates is not None and candidates.ndim > 1:
            candidates = as_float_rows(candidates, "candidates")
        return X, y, candidates, batch_size, return_utilities


class _ClassifierStrategy(_FloatPoolStrategy):
    """Shared `clf` handling: fitting, probabilities and embeddings as scikit-activeml's
    Badge takes them (``clf_embedding_flag_name``)."""

    def __init__(self, clf_embedding_flag_name: Any = None, missing_label: Any = MISSING_LABEL,
                 random_state: Any = None, backend: str = "auto") -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.clf_embedding_flag_name = clf_embedding_flag_name
        self.backend = backend

    def _fitted(self, clf: Any, X: np.ndarray, y: np.ndarray, fit_clf: bool, sample_weight: Any) -> Any:
        check_type(clf, "clf", SkactivemlClassifier)
        check_equal_missing_label(clf.missing_label, self.missing_label_)
        check_scalar(fit_clf, "fit_clf", bool)
        if not fit_clf:
            return clf
        return clone(clf).fit(X, y) if sample_weight is None else clone(clf).fit(X, y, sample_weight)

    def _proba_and_features(self, clf: Any, X_pool: Any) -> tuple[Any, Any]:
        flag = self.clf_embedding_flag_name
        if flag is None:
            out = clf.predict_proba(X_pool)
        else:
            check_type(flag, "clf_embedding_flag_name", dict, str)
            out = clf.predict_proba(X_pool, **({flag: True} if isinstance(flag, str) else flag))
        proba, features = out if isinstance(out, tuple) else (out, X_pool)
        features = as_float_rows(features, "clf.predict_proba embeddings")
        check_features(features, len(X_pool), "clf.predict_proba embeddings")
        return proba, features


class UWE(_ClassifierStrategy):
    """Uncertainty-weighted embeddings: k-center greedy on ``u ** tau * features``, the
    labelled samples as centres.

    Args:
        kind: uncertainty of ``clf.predict_proba``: "entropy", "bvsb", "margin" or
            "least_confidence".
        tau: power on the uncertainty (0 gives plain core-set).
        selection: "kcenter" (k-center greedy, the labelled samples as centres; the paper's
            UWE) or "kmeans++" (k-means++ seeding, D starting from the labelled samples, first
            pick the largest norm when none is; utilities are then its probabilities).
        clf_embedding_flag_name: as scikit-activeml's Badge: None uses X as the features
            (or the second output of ``predict_proba`` when it returns
            ``(proba, embeddings)``); a str or dict is passed to ``predict_proba`` to ask for
            ``(proba, embeddings)``.
        missing_label: value marking an unlabelled sample in y.
        random_state: as every scikit-activeml strategy; draws the first pick when nothing
            is labelled (as scikit-activeml's CoreSet).
        backend: uwe_kernels backend.
    """

    def __init__(self, kind: str = "entropy", tau: float = 1.0, selection: str = "kcenter",
                 clf_embedding_flag_name: Any = None, missing_label: Any = MISSING_LABEL, random_state: Any = None,
                 backend: str = "auto") -> None:
        super().__init__(clf_embedding_flag_name, missing_label, random_state, backend)
        self.kind = kind
        self.tau = tau
        self.selection = selection

    def query(self, X: Any, y: Any, clf: Any, fit_clf: bool = True, sample_weight: Any = None,
              candidates: Any = None, batch_size: int = 1, return_utilities: bool = False) -> Any:
        """Indices of the samples to label, in selection order (into X, or into candidates
        when they are rows); with return_utilities also the [batch_size, n] distances to the
        nearest centre before each pick."""
        X, y, candidates, batch_size, return_utilities = self._validated(X, y, candidates, batch_size,
                                                                         return_utilities)
        _, mapping = self._transform_candidates(candidates, X, y)
        clf = self._fitted(clf, X, y, fit_clf, sample_weight)
        pool = _kcenter_pool(X, y, candidates, mapping, self.missing_label_)
        if self.selection not in ("kcenter", "kmeans++"):
            raise ValueError(f'selection must be "kcenter" or "kmeans++", got {self.selection!r}')
        proba, features = self._proba_and_features(clf, pool.X_pool)
        if self.selection == "kmeans++":
            factored = uk.uwe_factored(proba, features, self.kind, self.tau, from_logits=False, backend=self.backend)
            picks = to_numpy(uk.kmeans_pp(factored, batch_size, labelled_idx=pool.labelled,
                                          seed=draw_seed(self.random_state_), backend=self.backend))
            if return_utilities:
                return pool.out_index[picks], _kmeanspp_utilities(factored, pool, picks, self.backend)
            return pool.out_index[picks]
        emb = uk.uwe(proba, features, self.kind, self.tau, from_logits=False, backend=self.backend)
        out = _kcenter_query(emb, pool, batch_size, _native_first_pick(pool, self.random_state_), self.backend,
                             return_utilities)
        return (pool.out_index[out[0]], out[1]) if return_utilities else pool.out_index[out]


class CoreSet(_FloatPoolStrategy):
    """Core-set (Sener & Savarese): exact k-center greedy on X, the labelled samples as
    centres. Same ``query(X, y, candidates=None, batch_size=1, return_utilities=False)`` as
    scikit-activeml's CoreSet with the Euclidean metric, on uwe_kernels' kernels."""

    def __init__(self, missing_label: Any = MISSING_LABEL, random_state: Any = None, backend: str = "auto") -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.backend = backend

    def query(self, X: Any, y: Any, candidates: Any = None, batch_size: int = 1,
              return_utilities: bool = False) -> Any:
        """Indices to label in selection order; with return_utilities also the
        [batch_size, n] distances to the nearest centre before each pick."""
        X, y, candidates, batch_size, return_utilities = self._validated(X, y, candidates, batch_size,
                                                                         return_utilities)
        _, mapping = self._transform_candidates(candidates, X, y)
        pool = _kcenter_pool(X, y, candidates, mapping, self.missing_label_)
        out = _kcenter_query(pool.X_pool, pool, batch_size, _native_first_pick(pool, self.random_state_),
                             self.backend, return_utilities)
        return (pool.out_index[out[0]], out[1]) if return_utilities else pool.out_index[out]


class Badge(_ClassifierStrategy):
    """BADGE: k-means++ seeding on the gradient embedding ``(p - onehot(argmax p)) (x) f``,
    kept factored (n*(K+d) numbers instead of n*K*d), over the unlabelled candidates.

    Parameters as scikit-activeml's Badge, plus ``backend``. Each query draws the SplitMix64
    seed of its k-means++ draws from scikit-activeml's per-query random state, so an int
    ``random_state`` reproduces a run (on every uwe_kernels backend) and cycles differ. The
    draws are not numpy's, so picks after the first differ from scikit-activeml's Badge.
    """

    def query(self, X: Any, y: Any, clf: Any, fit_clf: bool = True, sample_weight: Any = None,
              candidates: Any = None, batch_size: int = 1, return_utilities: bool = False) -> Any:
        """Indices to label in selection order; with return_utilities also the
        [batch_size, n] sampling probabilities before each pick."""
        X, y, candidates, batch_size, return_utilities = self._validated(X, y, candidates, batch_size,
                                                                         return_utilities)
        _, mapping = self._transform_candidates(candidates, X, y)
        clf = self._fitted(clf, X, y, fit_clf, sample_weight)
        pool = _badge_pool(X, y, candidates, mapping, self.missing_label_)
        proba, features = self._proba_and_features(clf, pool.X_pool)
        emb = uk.badge_factored(proba, features, from_logits=False, backend=self.backend)
        picks = to_numpy(uk.kmeans_pp(emb, batch_size, seed=draw_seed(self.random_state_), backend=self.backend))
        query_indices = pool.out_index[picks]
        if return_utilities:
            return query_indices, _kmeanspp_utilities(emb, pool, picks, self.backend)
        return query_indices
