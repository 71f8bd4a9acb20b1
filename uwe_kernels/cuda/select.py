"""Selection ops of the cuda backend: k-center greedy, k-means++ and nearest-centre distances
on torch CUDA tensors (any strides, float16/bfloat16/float32/float64), dense or factored.

Workspace (D, taken flags, block partials, the centre buffer) is allocated here with torch on
the input's device, so the caching allocator and stream order apply; the compiled module takes
raw pointers and the current stream, and queues every pick without a host round trip."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _abi, _lazy
from .._spec import emb_spec
from ..factored import FactoredArrays

ALGORITHMS = ("brute",)


def _torch() -> Any:
    return _lazy.load_module("torch")


def _ext() -> Any:
    return _lazy.load("cuda")


def _features(emb: Any) -> Any:
    return emb.features if isinstance(emb, FactoredArrays) else emb


def _width(emb: Any) -> int:
    """Values of a row in the kernels' layout: d, or K + d for BADGE."""
    if isinstance(emb, FactoredArrays) and emb.weights.dim() == 2:
        return int(emb.weights.shape[1] + emb.features.shape[1])
    return int(_features(emb).shape[1])


def _workspace(emb: Any, mask: np.ndarray, device: Any, acc: Any, scratch_rows: int = 0
               ) -> tuple[dict[str, int], dict[str, Any]]:
    """Device buffers for one call: (name -> pointer for the module, name -> tensor that owns it)."""
    torch = _torch()
    n = int(_features(emb).shape[0])
    width = _width(emb)
    parts = max(1, min(_ext().max_parts(), -(-n // (_ext().step_threads() // 32))))
    chunk = _ext().sample_chunk()
    labelled = np.flatnonzero(mask).astype(np.int64)
    owned = {
        "D": torch.empty(max(n, 1), dtype=acc, device=device),
        "scratch": torch.empty(max(n, scratch_rows, 1), dtype=acc, device=device),
        "taken": torch.as_tensor(mask.astype(np.uint8), device=device),
        "labelled": torch.as_tensor(labelled if labelled.size else np.zeros(1, np.int64), device=device),
        "part_value": torch.empty(parts, dtype=acc, device=device),
        "part_index": torch.empty(parts, dtype=torch.int64, device=device),
        "centre": torch.zeros(width + 1, dtype=acc, device=device),
        "zero_centre": torch.zeros(width + 1, dtype=acc, device=device),
        "p": torch.empty(max(n, 1), dtype=acc, device=device),  # BADGE norms
        "argmin": torch.empty(max(n, 1), dtype=torch.int64, device=device),
        "starts": torch.empty(n // chunk + 2, dtype=torch.float64, device=device),  # prefix block starts
    }
    work = {name: t.data_ptr() for name, t in owned.items()}
    work["m"] = int(labelled.size)
    work["parts"] = parts
    return work, owned


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


def choose_algorithm(emb: Any, centres: int | None = None, *, kcenter: bool = False, labelled: int = 0,
                     budget: int = 0) -> str:
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
    double, acc = _acc(accum_dtype)
    picks = torch.empty(budget, dtype=torch.int64, device=device)
    dists = torch.empty(budget, dtype=torch.float64, device=device)
    work, owned = _workspace(emb, labelled_mask, device, acc)
    stream = torch.cuda.current_stream(device)
    _ext().kcenter_greedy(emb_spec(emb), work, int(budget), _abi.first_code(first), double, picks.data_ptr(),
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
    double, acc = _acc(accum_dtype)
    picks = torch.empty(budget, dtype=torch.int64, device=device)
    work, owned = _workspace(emb, labelled_mask, device, acc)
    stream = torch.cuda.current_stream(device)
    untaken = int(labelled_mask.size - labelled_mask.sum())
    _ext().kmeans_pp(emb_spec(emb), work, int(budget), int(seed), _abi.first_code(first), untaken, double,
                     picks.data_ptr(), stream.cuda_stream,
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
    double, acc = _acc(accum_dtype)
    n, m = int(_features(emb).shape[0]), int(_features(centers).shape[0])
    # The centre norms (BADGE) live in the scratch buffer.
    work, owned = _workspace(emb, np.zeros(n, dtype=bool), device, acc, scratch_rows=m)
    stream = torch.cuda.current_stream(device)
    _ext().min_distances(emb_spec(emb), emb_spec(centers), work, double, stream.cuda_stream, device.index)
    d = owned["D"][:n].to(torch_dtype(out_dtype))
    return d, (owned["argmin"][:n].clone() if return_argmin else None)
