"""Array interoperability: the caller's array -> what a backend takes -> back again.

numpy (np.memmap included) and torch tensors (CPU or CUDA) are accepted. Other objects are
read through DLPack when they have ``__dlpack__`` (JAX, CuPy, ...: zero-copy, results go back
to the producer's library), else through ``__array__``. torch is never imported here unless
the caller passed a tensor (then it is already imported) or a device array by DLPack, and
ml_dtypes (slow to import) only when a bfloat16 input or dtype is met.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


FLOAT_NAMES = "float16, bfloat16, float32 or float64"
_FLOAT_KINDS = ("float16", "bfloat16", "float32", "float64")  # the order of FLOAT_DTYPES


def bfloat16() -> np.dtype:
    """ml_dtypes' bfloat16, imported on first use."""
    import ml_dtypes

    dtype: np.dtype = np.dtype(ml_dtypes.bfloat16)
    return dtype


def is_bfloat16(dtype: Any) -> bool:
    return getattr(dtype, "name", None) == "bfloat16" and bool(dtype == bfloat16())


def is_float(dtype: Any) -> bool:
    """One of the four element types every op takes. A dtype named bfloat16 is held to
    ml_dtypes' (whose import then costs nothing more: the array's maker loaded it)."""
    name = getattr(dtype, "name", None)
    if name == "bfloat16":
        return is_bfloat16(dtype)
    return name in _FLOAT_KINDS


def __getattr__(name: str) -> Any:
    # BFLOAT16 and FLOAT_DTYPES stay importable by name; ml_dtypes loads when one is read.
    if name == "BFLOAT16":
        return bfloat16()
    if name == "FLOAT_DTYPES":
        return tuple(bfloat16() if k == "bfloat16" else np.dtype(k) for k in _FLOAT_KINDS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch() -> Any:
    return sys.modules.get("torch")


def is_torch(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def torch_dtype(dtype: np.dtype) -> Any:
    """The torch dtype for a numpy (or ml_dtypes) dtype."""
    torch = _torch()
    return {
        np.dtype(np.float16): torch.float16,
        bfloat16(): torch.bfloat16,
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float64): torch.float64,
        np.dtype(np.int64): torch.int64,
        np.dtype(np.int32): torch.int32,
        np.dtype(np.bool_): torch.bool,
    }[np.dtype(dtype)]


def numpy_dtype(tdtype: Any) -> np.dtype:
    """The numpy dtype for a torch dtype (bfloat16 -> ml_dtypes.bfloat16); object for others."""
    torch = _torch()
    table: dict[Any, np.dtype] = {
        torch.float16: np.dtype(np.float16),
        torch.float32: np.dtype(np.float32),
        torch.float64: np.dtype(np.float64),
    }
    if tdtype in table:
        return table[tdtype]
    if tdtype == torch.bfloat16:
        return bfloat16()
    try:
        return np.dtype(str(tdtype).replace("torch.", ""))
    except TypeError:
        return np.dtype(object)


@dataclass(frozen=True)
class Prepared:
    """An input as a backend takes it.

    data: numpy array for CPU inputs (torch CPU tensors as zero-copy views), a torch tensor
    for CUDA inputs. lib: the caller's library ("numpy", "torch", or "dlpack" for any other
    DLPack producer). device: "cpu" or e.g. "cuda:0". dtype: numpy dtype of the elements
    (bfloat16 as ml_dtypes.bfloat16). Views of DLPack producers may be read-only (JAX).
    """

    data: Any
    lib: str
    device: str
    dtype: np.dtype
    producer: Any = None  # module of a DLPack producer (lib == "dlpack"), for restore()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"


def prepare(x: Any, name: str) -> Prepared:
    """Wrap `x` without copying it (the dtype is checked by validation)."""
    if isinstance(x, Prepared):
        return x
    if is_torch(x):
        t = x.detach()
        if t.device.type == "cpu":
            if t.dtype == _torch().bfloat16:  # numpy has no bfloat16: view the bits
                arr = t.view(_torch().int16).numpy().view(bfloat16())
            else:
                try:
                    arr = t.resolve_conj().resolve_neg().numpy()
                except TypeError:  # float8, complex32, ...: numpy has no such dtype
                    raise TypeError(f"{name} has dtype {t.dtype}; uwe_kernels takes floating arrays "
                                    f"({FLOAT_NAMES}): cast it first, e.g. {name}.float()") from None
            return Prepared(arr, "torch", "cpu", arr.dtype)
        return Prepared(t, "torch", str(t.device), numpy_dtype(t.dtype))
    if isinstance(x, np.ndarray):
        return Prepared(x, "numpy", "cpu", x.dtype)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        return _prepare_dlpack(x, name)
    if hasattr(x, "__cuda_array_interface__") and not hasattr(x, "__array__"):
        raise TypeError(
            f"{name}: device arrays other than torch tensors are not supported yet; "
            "pass a torch tensor (torch.as_tensor(x, device='cuda'))"
        )
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name}: cannot read a {type(x).__name__} as an array ({exc})") from None
    return Prepared(arr, "numpy", "cpu", arr.dtype)


_DLPACK_CPU = (1, 3)  # kDLCPU, kDLCUDAHost: host memory numpy can view
_DLPACK_CUDA = 2  # kDLCUDA
_PRODUCER_ALIASES = {"jaxlib": "jax"}  # JAX arrays are jaxlib classes; from_dlpack lives in jax


def _producer(x: Any) -> Any:
    root = type(x).__module__.split(".")[0]
    return sys.modules.get(_PRODUCER_ALIASES.get(root, root))


def _prepare_dlpack(x: Any, name: str) -> Prepared:
    """A DLPack producer other than numpy/torch, viewed without a copy."""
    device_type, _ = x.__dlpack_device__()
    if int(device_type) in _DLPACK_CPU:
        try:
            arr = np.from_dlpack(x)
        except (BufferError, TypeError, RuntimeError):
            arr = np.asarray(x)  # e.g. bfloat16, which numpy's DLPack import lacks
        return Prepared(arr, "dlpack", "cpu", arr.dtype, _producer(x))
    if int(device_type) == _DLPACK_CUDA:
        try:
            from torch.utils.dlpack import from_dlpack
        except ImportError:
            raise TypeError(f"{name}: CUDA arrays are read through torch, which is not installed") from None
        t = from_dlpack(x)
        return Prepared(t, "dlpack", str(t.device), numpy_dtype(t.dtype), _producer(x))
    raise TypeError(
        f"{name}: {type(x).__name__} lives on DLPack device type {device_type}; "
        "only CPU and CUDA arrays are supported"
    )


def _to_producer(result: Any, like: Prepared) -> Any:
    """`result` (numpy or torch) in the DLPack producer's library: zero-copy through its
    from_dlpack when it has one, a copy through its asarray when DLPack cannot carry the
    dtype (bfloat16 from numpy), else numpy (host) or torch (device) as it is."""
    mod = like.producer
    for space in (mod, getattr(mod, "numpy", None), getattr(mod, "dlpack", None)):
        convert = getattr(space, "from_dlpack", None)
        if convert is None or space is np:
            continue
        try:
            return convert(result)
        except (BufferError, TypeError, RuntimeError, ValueError):
            as_array = getattr(space, "asarray", None)
            if as_array is not None and not is_torch(result):
                return as_array(result)
    return result


def cast_hint(p: Prepared, name: str) -> str:
    if p.lib == "torch":
        return f"{name}.float()"
    if p.lib == "dlpack":
        return f"{name}.astype('float32')"
    return f"{name}.astype(np.float32)"


def result_dtype(*dtypes: np.dtype) -> np.dtype:
    """Output dtype for float inputs: the common one, or the widest when they differ
    (float16 with bfloat16 gives float32)."""
    unique = {np.dtype(d) for d in dtypes}
    if len(unique) == 1:
        return unique.pop()
    if np.dtype(np.float64) in unique:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def accum_dtype(*dtypes: np.dtype) -> np.dtype:
    """float64 when any input is float64, else float32."""
    return np.dtype(np.float64) if np.dtype(np.float64) in {np.dtype(d) for d in dtypes} else np.dtype(np.float32)


def restore(result: Any, like: Prepared) -> Any:
    """Return `result` (numpy, or torch on the input's device) in the caller's library."""
    if like.lib == "numpy":
        if is_torch(result):  # a device backend never answers a numpy call; kept for safety
            return result.cpu().numpy()
        return result
    if like.lib == "dlpack":
        if like.on_cpu and is_torch(result):
            result = to_numpy(prepare(result, "result"))
        return _to_producer(result, like)
    torch = _torch()
    if is_torch(result):
        return result
    arr = np.asarray(result)
    if is_bfloat16(arr.dtype):
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def to_numpy(p: Prepared) -> np.ndarray:
    """Host view of a CPU input (no copy); device tensors are refused."""
    if not p.on_cpu:
        raise RuntimeError("to_numpy() is for CPU inputs only")
    host: np.ndarray = p.data
    return host


def is_torch_dtype(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.dtype)
