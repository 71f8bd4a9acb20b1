"""Selection ops of the cuda backend: k-center greedy, k-means++ and nearest-centre distances
on torch CUDA tensors (any strides, float16/bfloat16/float32/float64), dense or factored.

Workspace (D, taken flags, block partials, the centre buffer) is allocated here with torch on
the input's device, so the caching allocator and stream order apply; the compiled module takes
raw pointers and the current stream, and queues every pick without a host round trip."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _lazy
from .._arrays import numpy_dtype
from ..factored import FactoredArrays

ALGORITHMS = ("brute",)
DTYPE_CODES = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
DENSE, UWE, BADGE = 0, 1, 2
FIRST_MAX_NORM, FIRST_RANDOM = -1, -2


def _torch() -> Any:
    return _lazy.load_module("torch")


def _ext() -> Any:
    return _lazy.load("cuda")


def _matrix(t: Any) -> tuple[int, int, int, int]:
    """(pointer, row stride, column stride in bytes, dtype code) of a 1-D or 2-D tensor."""
    item = t.element_size()
    s0 = t.stride(0) * item if t.dim() > 0 else 0
    s1 = t.stride(1) * item if t.dim() > 1 else item
    return t.data_ptr(), s0, s1, DTYPE_CODES[numpy_dtype(t.dtype).name]


def _emb_spec(emb: Any) -> tuple[Any, ...]:
    """(kind, n, d, K, features matrix, weights matrix) for the compiled module."""
    if isinstance(emb, FactoredArrays):
        w, f = emb.weights, emb.features
        kind, K = (UWE, 0) if w.dim() == 1 else (BADGE, w.shape[1])
        return kind, f.shape[0], f.shape[1], K, _matrix(f), _matrix(w)
    return DENSE, emb.shape[0], emb.shape[1], 0, _matrix(emb), _matrix(emb)


def _features(emb: Any) -> Any:
    return emb.features if isinstance(emb, FactoredArrays) else emb


def _width(spec: tuple[Any, ...]) -> int:
    return int(spec[2] + spec[3])


def _workspace(spec: tuple[Any, ...], mask: np.ndarray, device: Any, acc: Any) -> tuple[tuple[int, ...], list[Any]]:
    """Device buffers for one call: (pointer tuple for the module, tensors that own them)."""
    torch = _torch()
    n = spec[1]
    width = _width(spec)
    parts = max(1, min(_ext().max_parts(), -(-n // (_ext().step_threads() // 32))))
    chunk = _ext().sample_chunk()
    labelled = np.flatnonzero(mask).astype(np.int64)
    owned = [
        torch.empty(max(n, 1), dtype=acc, device=device),  # D
        torch.empty(max(n, 1), dtype=acc, device=device),  # scratch
        torch.as_tensor(mask.astype(np.uint8), device=device),  # taken
        torch.as_tensor(labelled if labelled.size else np.zeros(1, np.int64), device=device),
        torch.empty(parts, dtype=acc, device=device),
        torch.empty(parts, dtype=torch.int64, device=device),
        torch.zeros(width + 1, dtype=acc, device=device),  # centre
        torch.zeros(width + 1, dtype=acc, device=device),  # zero centre
        torch.empty(max(n, 1), dtype=acc, device=device),  # BADGE norms
        torch.empty(max(n, 1), dtype=torch.int64, device=device),  # argmin
        torch.empty(n // chunk + 2, dtype=torch.float64, device=device),  # prefix block starts
    ]
    D, scratch, taken, lab, pv, pi, centre, zero, p, argmin, starts = owned
    ptrs = (D.data_ptr(), scratch.data_ptr(), taken.data_ptr(), lab.data_ptr(), int(labelled.size), pv.data_ptr(),
            pi.data_ptr(), parts, centre.data_ptr(), zero.data_ptr(), p.data_ptr(), argmin.data_ptr(),
            starts.data_ptr())
    return ptrs, owned


def _acc(accum_dtype: Any) -> tuple[bool, Any]:
    torch = _torch()
    double = np.dtype(accum_dtype) == np.float64
    return double, torch.float64 if double else torch.float32


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"the cuda backend runs algorithm 'brute' only, got {algorithm!r}")


def not_supported_reasons(op: str, call: Any) -> list[str]:
    if op == "min_distances":
        features = call.dtypes[1::2] if call.options.get("factored") else call.dtypes
        if len(set(features)) > 1:
            return [f"min_distances on cuda needs the features of emb and centers in one dtype, got "
                    f"{' and '.join(str(d) for d in features)}"]
        return []
    algorithm = call.options.get("algorithm", "auto")
    if algorithm not in ("auto",) + ALGORITHMS:
        return [f"algorithm={algorithm!r} is not implemented by cuda (it runs 'brute')"]
    return []


def choose_algorithm(emb: Any, centres: int | None = None) -> str:
    return "brute"


def kcenter_greedy(
    emb: Any,  # [n, d] CUDA tensor or FactoredArrays of CUDA tensors
    labelled_mask: np.ndarray,  # [n] bool, host
    budget: int,
    first: int | None,
    *,
    algorithm: str,
    progress: Callable[[int], None] | None,
    accum_dtype: Any,
) -> tuple[Any, Any]:
    _check_algorithm(algorithm)
    torch = _torch()
    device = _features(emb).device
    spec = _emb_spec(emb)
    double, acc = _acc(accum_dtype)
    picks = torch.empty(budget, dtype=torch.int64, device=device)
    dists = torch.empty(budget, dtype=torch.float64, device=device)
    work, owned = _workspace(spec, labelled_mask, device, acc)
    stream = torch.cuda.current_stream(device)
    _ext().kcenter_greedy(spec, work, int(budget), -1 if first is None else int(first), double, picks.data_ptr(),
                          dists.data_ptr(), stream.cuda_stream, device.index, progress)
    return picks, dists


def kmeans_pp(
    emb: Any,  # [n, d] CUDA tensor or FactoredArrays of CUDA tensors
    labelled_mask: np.ndarray,  # [n] bool, host
    budget: int,
    seed: int,
    first: Any,
    *,
    algorithm: str,
    progress: Callable[[int], None] | None,
    accum_dtype: Any,
) -> Any:
    _check_algorithm(algorithm)
    torch = _torch()
    device = _features(emb).device
    spec = _emb_spec(emb)
    double, acc = _acc(accum_dtype)
    code = {"max_norm": FIRST_MAX_NORM, "random": FIRST_RANDOM}[first] if isinstance(first, str) else int(first)
    picks = torch.empty(budget, dtype=torch.int64, device=device)
    work, owned = _workspace(spec, labelled_mask, device, acc)
    stream = torch.cuda.current_stream(device)
    untaken = int(labelled_mask.size - labelled_mask.sum())
    _ext().kmeans_pp(spec, work, int(budget), int(seed), code, untaken, double, picks.data_ptr(), stream.cuda_stream,
                     device.index, progress)
    return picks


def min_distances(
    emb: Any,  # [n, d] CUDA tensor or FactoredArrays
    centers: Any,  # [m, d] CUDA tensor or FactoredArrays
    *,
    return_argmin: bool,
    out_dtype: Any,
    accum_dtype: Any,
) -> tuple[Any, Any]:
    from .._arrays import torch_dtype

    torch = _torch()
    device = _features(emb).device
    spec, cspec = _emb_spec(emb), _emb_spec(centers)
    double, acc = _acc(accum_dtype)
    n, m = spec[1], cspec[1]
    work, owned = _workspace(spec, np.zeros(n, dtype=bool), device, acc)
    if m > n:  # the centre norms live in the scratch buffer
        owned[1] = torch.empty(m, dtype=acc, device=device)
        work = work[:1] + (owned[1].data_ptr(),) + work[2:]
    stream = torch.cuda.current_stream(device)
    _ext().min_distances(spec, cspec, work, double, stream.cuda_stream, device.index)
    d = owned[0][:n].to(torch_dtype(out_dtype))
    return d, (owned[9][:n].clone() if return_argmin else None)
