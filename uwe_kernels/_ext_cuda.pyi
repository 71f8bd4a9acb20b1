"""Type stub of the compiled CUDA module (csrc/bindings_cuda.cpp and csrc/cuda/*_cuda.cu).

Tensors arrive as integers: a device pointer, then shape, element strides and dtype code
(0 float16, 1 bfloat16, 2 float32, 3 float64); `stream` is the cudaStream_t as an integer.
Outputs and scratch buffers are allocated by the caller (torch) and passed as pointers.
"""
from typing import Any, Callable

_Shape = tuple[int, ...]
_Progress = Callable[[int], None] | None

def build_info() -> dict[str, Any]:
    """CUDA version and architectures this module was built for."""

def device_status() -> tuple[int, str]:
    """(usable device count, reason when there is none)."""

def uncertainty(s_ptr: int, s_shape: _Shape, s_stride: _Shape, s_code: int, kind: int, logits: bool, out: int,
                o_code: int, acc64: bool, stream: int, scratch: int = 0) -> None: ...
def uwe(s_ptr: int, s_shape: _Shape, s_stride: _Shape, s_code: int, f_ptr: int, f_shape: _Shape,
        f_stride: _Shape, f_code: int, kind: int, tau: float, logits: bool, out: int, o_code: int, acc64: bool,
        stream: int, norm_lo: float = 0.0, norm_span: float = -1.0, scratch: int = 0) -> None: ...
def badge_weights(s_ptr: int, s_shape: _Shape, s_stride: _Shape, s_code: int, logits: bool, out: int,
                  o_code: int, acc64: bool, stream: int) -> None: ...
def badge_embedding(s_ptr: int, s_shape: _Shape, s_stride: _Shape, s_code: int, f_ptr: int, f_shape: _Shape,
                    f_stride: _Shape, f_code: int, logits: bool, w: int, out: int, o_code: int, acc64: bool,
                    stream: int) -> None: ...
def uwe_segmentation(s_ptr: int, s_shape: _Shape, s_stride: _Shape, s_code: int, f_ptr: int, f_shape: _Shape,
                     f_stride: _Shape, f_code: int, rh: int, rw: int, kind: int, tau: float, logits: bool,
                     pixel_u: int, region_w: int, out: int, o_code: int, acc64: bool, stream: int,
                     norm_lo: float = 0.0, norm_span: float = -1.0) -> None: ...
def uwe_detection(s_ptr: int, s_shape: _Shape, s_stride: _Shape, s_code: int, f_ptr: int, f_shape: _Shape,
                  f_stride: _Shape, f_code: int, order: int, start: int, num_images: int, kind: int, tau: float,
                  mean: bool, logits: bool, scratch: int, cls: int, best: int, count: int, acc: int, out: int,
                  o_code: int, acc64: bool, stream: int, norm_lo: float = 0.0,
                  norm_span: float = -1.0) -> None: ...

# Selection: embedding specs as for _ext_cpu (uwe_kernels/_spec.py, torch device pointers);
# work: named device buffers (D, scratch, taken, labelled, part_value, part_index, centre,
# zero_centre, p, argmin, starts: pointers; m, parts: counts), see uwe_kernels/cuda/select.py.
_Matrix = tuple[int, int, int, int, int, int]
_EmbSpec = tuple[int, _Matrix, _Matrix | None]
_Work = dict[str, int]

ABI: dict[str, dict[str, int]]  # every code this module was built with, by group and name

def kcenter_greedy(emb: _EmbSpec, work: _Work, budget: int, first: int, double_acc: bool,
                   picks: int, dists: int, stream: int, device: int, progress: _Progress) -> None:
    """k-center greedy on the device; picks/dists are device pointers filled in stream order."""

def kmeans_pp(emb: _EmbSpec, work: _Work, budget: int, seed: int, first: int, untaken: int,
              double_acc: bool, picks: int, stream: int, device: int, progress: _Progress) -> None:
    """k-means++ seeding on the device (SplitMix64 draws)."""

def min_distances(emb: _EmbSpec, centres: _EmbSpec, work: _Work, double_acc: bool,
                  stream: int, device: int) -> None:
    """Nearest-centre squared distances into work["D"] and work["argmin"]."""

def step_threads() -> int: ...
def max_parts() -> int: ...
def sample_chunk() -> int: ...
