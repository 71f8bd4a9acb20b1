from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import numpy as np
import pytest

from uwe_kernels import registry
from uwe_kernels._arrays import BFLOAT16

DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BFLOAT16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
REQUIRED_ON_CPU = ("cpp", "numba", "reference")
CPU_BACKENDS = ("cpp", "numba", "reference")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _backend_params() -> list[object]:
    params = []
    for name in registry.PRIORITY:
        ok, why = registry.BACKENDS[name].availability()
        marks = []
        if not ok:
            if name in REQUIRED_ON_CPU:
                marks.append(pytest.mark.xfail(reason=f"required backend unavailable: {why}", strict=True))
            else:
                marks.append(pytest.mark.skip(reason=f"{name}: {why}"))
        elif name == "triton":
            marks.append(pytest.mark.triton)
        elif name == "cuda":
            marks.append(pytest.mark.gpu)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "triton: runs Triton kernels (interpreter on CPU)")


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend in the registry; unavailable optional ones skip with their reason."""
    return request.param


@pytest.fixture(params=list(DTYPES), ids=list(DTYPES))
def dtype(request: pytest.FixtureRequest) -> np.dtype:
    return DTYPES[request.param]


@pytest.fixture
def device(backend: str) -> str:
    """Where a backend's inputs live: CUDA for cuda/triton unless Triton interprets on CPU."""
    if backend == "cuda" or (backend == "triton" and not _interpreting()):
        return "cuda"
    return "cpu"


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt during the test, as in an interactive session. A runner
    started in the background can inherit SIGINT ignored, and then _thread.interrupt_main
    does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
