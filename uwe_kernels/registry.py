"""Backends, what each can run, and dispatch with reasons.

Each backend declares the devices it runs on and how to find out whether it is usable.
The op itself is the function `op` in `uwe_kernels.<backend>.<family>` (for the reference,
`uwe_kernels.reference`), imported on first use. An op module may define
`not_supported_reasons(op, call) -> list[str]` to turn down calls it cannot run.

Each backend also declares what it implements (ops, selection algorithms, dtypes, uncertainty
kinds, whether its pruned engine takes factored embeddings). The op modules' refusals agree with the declaration
(python_tests/test_registry.py checks it), and the test matrix is generated from it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _lazy
from .errors import BackendUnavailable

PRIORITY = ("cuda", "triton", "cpp", "numba", "reference")
ENV_VAR = "UWE_KERNELS_BACKEND"

FAMILY = {
    "uncertainty": "embed",
    "uwe": "embed",
    "badge_embedding": "embed",
    "badge_weights": "embed",
    "uwe_segmentation": "embed",
    "uwe_detection": "embed",
    "kcenter_greedy": "select",
    "kmeans_pp": "select",
    "min_distances": "select",
}
SELECTION_OPS = ("kcenter_greedy", "kmeans_pp")  # the ops that take algorithm=
ALGORITHMS = ("brute", "pruned")  # "auto" chooses among those a backend implements
DTYPES = ("float16", "bfloat16", "float32", "float64")
KINDS = ("entropy", "bvsb", "margin", "least_confidence", "bald")
KIND_OPS = ("uncertainty", "uwe")  # the ops whose Call carries options["kind"]


@dataclass(frozen=True)
class Call:
    """What a backend needs to know to accept or refuse a call."""

    op: str
    device: str  # "cpu" or "cuda:N"
    dtypes: tuple[np.dtype, ...]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def _interpret_mode() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


class Backend:
    name: str = ""
    devices: tuple[str, ...] = ("cpu",)
    # What the backend implements, for every op in `ops` and every dtype in `dtypes`.
    ops: tuple[str, ...] = tuple(FAMILY)
    algorithms: tuple[str, ...] = ("brute",)  # engines behind kcenter_greedy and kmeans_pp
    dtypes: tuple[str, ...] = DTYPES
    kinds: tuple[str, ...] = KINDS  # uncertainty kinds of KIND_OPS
    pruned_factored: bool = False  # the pruned engine takes factored UWE / BADGE embeddings
    # The oracle answers every algorithm name with its one computation instead of refusing.
    answers_every_algorithm: bool = False

    def undeclared(self, op: str, *, algorithm: str | None = None, dtype: str | None = None,
                   factored: bool = False, kind: str | None = None) -> str:
        """Why the declaration leaves out this combination ("" when it is declared).
        `algorithm` applies to SELECTION_OPS only; None and "auto" need "brute"; `kind` to
        KIND_OPS only."""
        if op not in self.ops:
            return f"{self.name} does not implement {op}()"
        if dtype is not None and dtype not in self.dtypes:
            return f"{self.name} does not run dtype {dtype}"
        if op in KIND_OPS and kind is not None and kind not in self.kinds:
            return f"{self.name} does not implement kind={kind!r}"
        if op in SELECTION_OPS and algorithm not in (None, "auto"):
            if algorithm not in self.algorithms:
                return f"{self.name} has no {algorithm!r} engine"
            if algorithm == "pruned" and factored and not self.pruned_factored:
                return f"the pruned engine of {self.name} runs dense pools only"
        return ""

    def accepts(self, op: str, *, algorithm: str | None = None, dtype: str | None = None,
                factored: bool = False, kind: str | None = None) -> bool:
        """Whether the op module must take the call: declared, or an algorithm name the
        backend answers with its own computation."""
        if not self.undeclared(op, algorithm=algorithm, dtype=dtype, factored=factored, kind=kind):
            return True
        return (self.answers_every_algorithm and op in self.ops and algorithm in ALGORITHMS
                and not self.undeclared(op, dtype=dtype))

    def availability(self) -> tuple[bool, str]:
        raise NotImplementedError

    def module_name(self, op: str) -> str:
        return f"uwe_kernels.{self.name}.{FAMILY[op]}"

    def device_reasons(self, call: Call, explicit: bool) -> list[str]:
        kind = call.device.split(":")[0]
        if kind in self.devices:
            return []
        where = "CUDA tensors" if self.devices == ("cuda",) else "CPU arrays"
        return [f"runs on {where}, the input is on {call.device} (no silent device transfers)"]

    def reasons(self, call: Call, explicit: bool = True) -> list[str]:
        """Why this backend cannot run `call` (empty when it can). `explicit` is False
        when auto dispatch asks."""
        # The device first: it costs nothing, while availability() of a GPU backend imports
        # torch and triton, which a call on numpy arrays must not pay for.
        reasons = self.device_reasons(call, explicit)
        if reasons:
            return reasons
        ok, why = self.availability()
        if not ok:
            return [why]
        try:
            module = _lazy.load_module(self.module_name(call.op))
        except ModuleNotFoundError as exc:
            if exc.name == self.module_name(call.op):
                return [f"{call.op}() is not implemented by {self.name}"]
            return [f"cannot load {self.module_name(call.op)}: {exc}"]
        except Exception as exc:
            return [f"cannot load {self.module_name(call.op)}: {type(exc).__name__}: {exc}"]
        if not hasattr(module, call.op):
            return [f"{call.op}() is not implemented by {self.name}"]
        refuse = getattr(module, "not_supported_reasons", None)
        return list(refuse(call.op, call)) if refuse is not None else []

    def op(self, op: str) -> Callable[..., Any]:
        fn: Callable[..., Any] = getattr(_lazy.load_module(self.module_name(op)), op)
        return fn


class ReferenceBackend(Backend):
    name = "reference"
    answers_every_algorithm = True

    def availability(self) -> tuple[bool, str]:
        return True, "plain float64 numpy, always available"

    def module_name(self, op: str) -> str:
        return "uwe_kernels.reference"


class CppBackend(Backend):
    name = "cpp"
    algorithms = ("brute", "pruned")
    pruned_factored = True

    def availability(self) -> tuple[bool, str]:
        err = _lazy.error_of(_lazy.EXTENSIONS["cpu"])
        if err:
            return False, f"the compiled CPU module did not load ({err}); {_lazy.missing_build_hint()}"
        info = _lazy.load("cpu").build_info()
        threads = f"OpenMP, {info['max_threads']} threads" if info["openmp"] else "serial (no OpenMP)"
        return True, f"C++ {info['compiler']}, {threads}"


class NumbaBackend(Backend):
    name = "numba"
    algorithms = ("brute", "pruned")

    def availability(self) -> tuple[bool, str]:
        err = _lazy.error_of("numba")
        if err:
            return False, f"numba is not importable ({err}); pip install numba"
        return True, f"numba {_lazy.load_module('numba').__version__}"


class TritonBackend(Backend):
    name = "triton"
    devices = ("cuda",)

    def availability(self) -> tuple[bool, str]:
        for mod, hint in (("torch", "pip install torch"), ("triton", "pip install triton")):
            err = _lazy.error_of(mod)
            if err:
                return False, f"{mod} is not importable ({err}); {hint}"
        version = _lazy.load_module("triton").__version__
        if _interpret_mode():
            return True, f"triton {version} in interpreter mode (TRITON_INTERPRET=1, CPU tensors)"
        if not _lazy.load_module("torch").cuda.is_available():
            return False, f"triton {version} is installed but no CUDA device is visible"
        return True, f"triton {version}"

    def device_reasons(self, call: Call, explicit: bool) -> list[str]:
        if _interpret_mode() and call.device == "cpu":
            # The interpreter is a test vehicle: auto never prefers it to the CPU backends.
            return [] if explicit else ["interpreter mode runs CPU inputs only when asked for by name"]
        return super().device_reasons(call, explicit)


class CudaBackend(Backend):
    name = "cuda"
    devices = ("cuda",)

    def availability(self) -> tuple[bool, str]:
        err = _lazy.error_of(_lazy.EXTENSIONS["cuda"])
        if err:
            return False, f"the CUDA module is not built or did not load ({err})"
        ext = _lazy.load("cuda")
        count, why = ext.device_status()
        info = ext.build_info()
        built = f"built for CUDA {info['cuda_version']}, sm {info['cuda_archs']}"
        if count == 0:
            return False, f"{built}, but {why}"
        err = _lazy.error_of("torch")
        if err:
            return False, f"{built}; device arrays come as torch tensors and torch is not importable ({err})"
        return True, f"{built}, {count} device(s)"


BACKENDS: dict[str, Backend] = {
    b.name: b for b in (CudaBackend(), TritonBackend(), CppBackend(), NumbaBackend(), ReferenceBackend())
}


def backends() -> dict[str, tuple[bool, str]]:
    """{name: (available, reason)} for every backend, in auto-dispatch priority order."""
    return {name: BACKENDS[name].availability() for name in PRIORITY}


def resolve(op: str, call: Call, backend: str = "auto") -> tuple[str, Callable[..., Any]]:
    """The backend name and op function that will run `call`.

    `backend="auto"` (or the UWE_KERNELS_BACKEND environment variable, which overrides auto)
    walks PRIORITY and takes the first backend with no reasons against the call. A named
    backend that cannot run the call raises BackendUnavailable with its reasons.
    """
    if backend == "auto":
        backend = os.environ.get(ENV_VAR, "").strip() or "auto"
    if backend != "auto" and backend not in BACKENDS:
        source = f" (from {ENV_VAR})" if os.environ.get(ENV_VAR, "").strip() == backend else ""
        raise ValueError(f"unknown backend {backend!r}{source}; choose from auto, {', '.join(PRIORITY)}")
    candidates = PRIORITY if backend == "auto" else (backend,)
    reasons: dict[str, list[str]] = {}
    for name in candidates:
        why = BACKENDS[name].reasons(call, explicit=backend != "auto")
        if not why:
            return name, BACKENDS[name].op(op)
        reasons[name] = why
    raise BackendUnavailable(op, reasons)
