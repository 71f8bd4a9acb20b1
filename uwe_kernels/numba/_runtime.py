"""What every numba kernel shares: the threading layer, how arrays are handed to kernels,
and element codecs for the dtypes numba cannot hold natively.

Threading layer: chosen once, before the first parallel kernel runs, unless the user set
NUMBA_THREADING_LAYER. "omp" first: it is thread-safe (concurrent calls from Python threads
are fine, unlike "workqueue", which aborts the process on them) and it uses the same
libgomp as the C++ backend, so one process holds one OpenMP runtime. "tbb" next; when
neither loads, "workqueue" with a lock that serialises parallel calls.

Storage: float32 and float64 arrays are passed as they are; float16 and bfloat16 arrays are
passed as uint16 views plus a code (F16 or BF16) and widened to float32 per element with
exact bit arithmetic. Arrays keep their strides (any layout, negative and zero strides
included); inputs are passed as read-only views, which also keeps the number of compiled
specialisations down.
"""
from __future__ import annotations

import os
import threading
import types as pytypes
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .. import _threads
from .._arrays import BFLOAT16

_NUMBA_CONFIG: Any = numba.config  # settings are plain module attributes, untyped
NATIVE, F16, BF16 = 0, 1, 2
BLOCK = 4096  # rows per parallel work item; fixed, so results never depend on the thread count


def _choose_threading_layer() -> str:
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return str(_NUMBA_CONFIG.THREADING_LAYER)
    for layer, module in (("omp", "numba.np.ufunc.omppool"), ("tbb", "numba.np.ufunc.tbbpool")):
        try:
            __import__(module)
        except Exception:  # the pool's shared library is missing or does not load
            continue
        return layer
    return "workqueue"


def _configure() -> str:
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False):  # someone already launched a parallel kernel
        return str(_NUMBA_CONFIG.THREADING_LAYER)
    layer = _choose_threading_layer()
    _NUMBA_CONFIG.THREADING_LAYER = layer
    return layer


THREADING_LAYER = _configure()
_serial_lock = threading.Lock() if THREADING_LAYER == "workqueue" else None


def parallel_section() -> ContextManager[Any]:
    """Hold around parallel kernel calls: a lock only for the workqueue layer."""
    return _serial_lock if _serial_lock is not None else nullcontext()


class ParallelKernel:
    """A prange kernel launched with the package's thread count, or, in a process created by
    fork(), its serial twin: numba's OpenMP layer ends a forked child that launches a parallel
    kernel, and libgomp's pool would not survive the fork anyway. The twin is the same Python
    function compiled without parallel=True (prange runs as range: the same blocks in the same
    order, so the same results), under its own name so the two never share a cache entry."""

    def __init__(self, fn: Callable[..., Any], cache: bool) -> None:
        self._fn = fn
        self._cache = cache
        self.parallel = njit(parallel=True, cache=cache)(fn)
        self._serial: Any = None

    def serial(self) -> Any:
        if self._serial is None:
            fn = self._fn
            twin = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                        fn.__closure__)
            twin.__qualname__ = fn.__qualname__ + "_serial"
            twin.__doc__ = fn.__doc__
            self._serial = njit(cache=self._cache)(twin)
        return self._serial

    def __call__(self, *args: Any) -> Any:
        return self.launch(0, *args)

    def launch(self, threads: int, *args: Any) -> Any:
        """Run on `threads` threads (0: the package's thread count; one in a forked child)."""
        if _threads.forked_child():
            return self.serial()(*args)
        numba.set_num_threads(threads if threads > 0 else _threads.numba_threads())
        with parallel_section():
            return self.parallel(*args)


def _claim_typing(typingctx, counter):  # type: ignore[no-untyped-def]
    """claim(counter): counter[0] += 1 atomically, returning the value before: the next work item
    of a team that takes items as its threads come free (a thread that lost its core holds up no
    one). Kernels only."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64 and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", ptr, context.get_constant(types.int64, 1), "monotonic")

    return types.int64(counter), codegen


# Typed as Any: numba's stubs give the intrinsic the typing function's (typingctx, ...) signature,
# while kernels call it with the array alone.
claim: Any = intrinsic(_claim_typing)


def parallel_kernel(cache: bool = True) -> Callable[[Callable[..., Any]], ParallelKernel]:
    """Decorator for the prange launchers (instead of njit(parallel=True, ...))."""
    return lambda fn: ParallelKernel(fn, cache)


def storage(arr: Any, writable: bool = False) -> tuple[np.ndarray, int]:
    """(array a kernel can take, element code) without copying: half types as uint16 views."""
    a = np.asarray(arr)  # np.memmap -> plain ndarray view
    code = NATIVE
    if a.dtype == np.float16:
        a, code = a.view(np.uint16), F16
    elif a.dtype == BFLOAT16:
        a, code = a.view(np.uint16), BF16
    if not writable and a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a, code


def acc_zero(accum_dtype: Any) -> Any:
    """The accumulator's zero: kernels take their accumulation type from it."""
    return np.float64(0.0) if np.dtype(accum_dtype) == np.float64 else np.float32(0.0)


# ---------------------------------------------------------------- element codecs


@njit("float32(uint16)", cache=True)
def f16_to_f32(h: Any) -> Any:
    h32 = np.uint32(h)
    sign = (h32 & np.uint32(0x8000)) << np.uint32(16)
    exp = (h32 >> np.uint32(10)) & np.uint32(0x1F)
    man = h32 & np.uint32(0x3FF)
    if exp == 0:  # zero or subnormal: man * 2**-24
        v = np.float32(man) * np.float32(5.960464477539063e-08)
        return -v if sign else v
    if exp == 31:
        bits = sign | np.uint32(0x7F800000) | (man << np.uint32(13))
    else:
        bits = sign | ((exp + np.uint32(112)) << np.uint32(23)) | (man << np.uint32(13))
    return np.uint32(bits).view(np.float32)


@njit("float32(uint16)", cache=True)
def bf16_to_f32(h: Any) -> Any:
    return np.uint32(np.uint32(h) << np.uint32(16)).view(np.float32)


@njit("uint16(float32)", cache=True)
def f32_to_f16(x: Any) -> Any:
    """Round to nearest even, overflow to inf, like numpy's astype(float16)."""
    bits = np.uint32(np.float32(x).view(np.uint32))
    sign = np.uint32((bits >> np.uint32(16)) & np.uint32(0x8000))
    mag = np.uint32(bits & np.uint32(0x7FFFFFFF))
    if mag >= np.uint32(0x7F800000):
        nan = np.uint32(0x200) if mag > np.uint32(0x7F800000) else np.uint32(0)
        return np.uint16(sign | np.uint32(0x7C00) | nan)
    if mag >= np.uint32(0x477FF000):  # >= 65520 rounds to inf
        return np.uint16(sign | np.uint32(0x7C00))
    if mag < np.uint32(0x38800000):  # below the smallest normal half: subnormal or zero
        if mag <= np.uint32(0x33000000):  # <= 2**-25 rounds to zero (the tie goes to even 0)
            return np.uint16(sign)
        e = mag >> np.uint32(23)
        m = (mag & np.uint32(0x7FFFFF)) | np.uint32(0x800000)
        shift = np.uint32(126) - e
        r = m >> shift
        rem = m & ((np.uint32(1) << shift) - np.uint32(1))
        half = np.uint32(1) << (shift - np.uint32(1))
        if rem > half or (rem == half and (r & np.uint32(1))):
            r += np.uint32(1)
        return np.uint16(sign | r)
    r = mag - np.uint32(0x38000000)
    r += np.uint32(0xFFF) + ((r >> np.uint32(13)) & np.uint32(1))
    return np.uint16(sign | (r >> np.uint32(13)))


@njit("uint16(float32)", cache=True)
def f32_to_bf16(x: Any) -> Any:
    """Round to nearest even, like ml_dtypes' astype(bfloat16)."""
    bits = np.uint32(np.float32(x).view(np.uint32))
    if (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
        return np.uint16((bits >> np.uint32(16)) | np.uint32(0x40))
    bits += np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return np.uint16(bits >> np.uint32(16))


def widen(x, code):  # type: ignore[no-untyped-def]
    """Element -> float32 (half types, by code) or itself (float32, float64). Kernels only."""
    raise NotImplementedError


@overload(widen)
def _widen(x, code):  # type: ignore[no-untyped-def]
    if isinstance(x, types.Integer):
        def impl(x, code):  # type: ignore[no-untyped-def]
            return bf16_to_f32(x) if code == BF16 else f16_to_f32(x)
        return impl
    if isinstance(x, types.Float):
        return lambda x, code: x
    return None


def like(x, zero):  # type: ignore[no-untyped-def]
    """x converted to the type of `zero` (the accumulator). Kernels only."""
    raise NotImplementedError


@overload(like)
def _like(x, zero):  # type: ignore[no-untyped-def]
    if zero == types.float32:
        return lambda x, zero: np.float32(x)
    if zero == types.float64:
        return lambda x, zero: np.float64(x)
    return None


def narrow(x, out, code):  # type: ignore[no-untyped-def]
    """Value -> an element of the array `out` (uint16 holding half types, by code). Kernels only."""
    raise NotImplementedError


@overload(narrow)
def _narrow(x, out, code):  # type: ignore[no-untyped-def]
    dtype = out.dtype
    if isinstance(dtype, types.Integer):
        def impl(x, out, code):  # type: ignore[no-untyped-def]
            return f32_to_bf16(np.float32(x)) if code == BF16 else f32_to_f16(np.float32(x))
        return impl
    if dtype == types.float32:
        return lambda x, out, code: np.float32(x)
    if dtype == types.float64:
        return lambda x, out, code: np.float64(x)
    return None


def load(a, i, j, code, zero):  # type: ignore[no-untyped-def]
    """a[i, j] widened to the accumulator type of `zero`. Kernels only."""
    raise NotImplementedError


@overload(load)
def _load(a, i, j, code, zero):  # type: ignore[no-untyped-def]
    return lambda a, i, j, code, zero: like(widen(a[i, j], code), zero)


def load1(a, i, code, zero):  # type: ignore[no-untyped-def]
    """a[i] widened to the accumulator type of `zero`. Kernels only."""
    raise NotImplementedError


@overload(load1)
def _load1(a, i, code, zero):  # type: ignore[no-untyped-def]
    return lambda a, i, code, zero: like(widen(a[i], code), zero)
