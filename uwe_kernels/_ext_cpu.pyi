"""Type stub of the compiled CPU module (csrc/bindings_cpu.cpp and csrc/cpu/*_cpu.cpp).

Dtype codes: 0 float16, 1 bfloat16 (both passed as uint16 views), 2 float32, 3 float64.
Embedding kernels write into `out` and return the first non-finite score row, the first
negative score row and the first non-finite feature row (-1 for none).
"""
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

_Progress = Callable[[int], None] | None
# uwe_kernels/_spec.py: matrix = (address, rows, cols, row stride, column stride in bytes,
# dtype code); embedding = (kind, features matrix, weights matrix or None). Codes: uwe_kernels/_abi.py.
_Matrix = tuple[int, int, int, int, int, int]
_EmbSpec = tuple[int, _Matrix, _Matrix | None]
_Sketch = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], float, float]

ABI: dict[str, dict[str, int]]  # every code this module was built with, by group and name
_RowFlags = tuple[int, int, int]

def build_info() -> dict[str, Any]:
    """Compiler, OpenMP and vectorisation settings of this build."""

def get_num_threads() -> int:
    """Threads an OpenMP region will use (1 without OpenMP)."""

def set_num_threads(n: int) -> None:
    """Threads for later calls (no effect without OpenMP); n >= 1."""

def uncertainty(scores: np.ndarray, s_code: int, kind: int, from_logits: bool, out: np.ndarray, o_code: int,
                acc64: bool) -> _RowFlags: ...
def uwe(scores: np.ndarray, s_code: int, features: np.ndarray, f_code: int, kind: int, tau: float,
        from_logits: bool, out: np.ndarray, o_code: int, acc64: bool, norm_lo: float = 0.0,
        norm_span: float = -1.0) -> tuple[int, int, int, bool]:
    """_RowFlags, then whether an output rounded to inf (or is NaN)."""
def badge_weights(scores: np.ndarray, s_code: int, from_logits: bool, out: np.ndarray, o_code: int,
                  acc64: bool) -> _RowFlags: ...
def badge_embedding(scores: np.ndarray, s_code: int, features: np.ndarray, f_code: int, from_logits: bool,
                    out: np.ndarray, o_code: int, acc64: bool) -> _RowFlags: ...
def uwe_segmentation(scores: np.ndarray, s_code: int, features: np.ndarray, f_code: int, rh: int, rw: int,
                     kind: int, tau: float, from_logits: bool, out: np.ndarray, o_code: int,
                     acc64: bool, norm_lo: float = 0.0, norm_span: float = -1.0) -> _RowFlags: ...
def uwe_detection(scores: np.ndarray, s_code: int, features: np.ndarray, f_code: int,
                  image_ids: npt.NDArray[np.int64], num_images: int, kind: int, tau: float, mean: bool,
                  from_logits: bool, out: np.ndarray, o_code: int, acc64: bool, norm_lo: float = 0.0,
                  norm_span: float = -1.0) -> _RowFlags: ...

def kcenter_greedy(emb: _EmbSpec, labelled: npt.NDArray[np.bool_], budget: int, first: int, double_acc: bool,
                   progress: _Progress) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(picks, Euclidean distance at pick time); first: an index or FIRST_MAX_NORM."""

def kcenter_greedy_history(emb: _EmbSpec, labelled: npt.NDArray[np.bool_], budget: int, first: int,
                           double_acc: bool) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64],
                                                      npt.NDArray[np.float64]]:
    """Brute force: (picks, distance at pick time, [budget, n] squared distance to the nearest centre before each pick)."""

def kmeans_pp(emb: _EmbSpec, labelled: npt.NDArray[np.bool_], budget: int, seed: int, first: int,
              double_acc: bool, progress: _Progress) -> npt.NDArray[np.int64]:
    """Picks with SplitMix64 draws; first: an index, FIRST_MAX_NORM or FIRST_RANDOM."""

def min_distances(emb: _EmbSpec, centres: _EmbSpec,
                  double_acc: bool) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(squared distance to the nearest centre, its index, lowest on ties)."""

def kcenter_greedy_pruned(emb: _EmbSpec, labelled_mask: npt.NDArray[np.bool_], budget: int, first: int,
                          double_acc: bool, mode: int, progress: _Progress, sketch: _Sketch | None = None,
                          sketch2: _Sketch | None = None
                          ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], dict[str, Any]]:
    """Pruned k-center greedy: (picks, distances, work statistics); mode 0 plain / 1 pruned / 2 adaptive;
    sketch: (z [n, k], r [n], slack [n] float32, scale, tau) of uwe_kernels._sketch, or None;
    sketch2: a wider second tier of the same pool (read only where the first does not settle a row)."""

def kmeans_pp_pruned(emb: _EmbSpec, labelled_mask: npt.NDArray[np.bool_], budget: int, seed: int, first: int,
                     double_acc: bool, mode: int, progress: _Progress,
                     sketch: _Sketch | None = None,
                     sketch2: _Sketch | None = None) -> tuple[npt.NDArray[np.int64], dict[str, Any]]:
    """Pruned k-means++ seeding: (picks, work statistics)."""

def splitmix64_uniforms(seed: int, start: int, count: int) -> npt.NDArray[np.float64]:
    """SplitMix64 draws start .. start + count - 1 as float64 in [0, 1)."""
