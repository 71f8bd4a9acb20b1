"""The test matrix, generated from the registry's declarations.

A test that takes `backend` names the ops it calls with `@pytest.mark.ops(...)` (and
`factored=True` when it passes factored embeddings to a selection op, `kind="bald"` when it
calls the embedding ops with an uncertainty kind some backends do not declare). It then runs on every
backend x `algorithm` (when it takes one; "auto" where a backend has two engines to choose
from) x `dtype` (when it takes one) case; a case the
backend does not declare is skipped with the declaration's reason, and an unavailable backend
skips with its availability reason (an xfail for the backends every CPU install has). Nothing
else skips: a declared case that the backend turns down fails.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

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
assert tuple(DTYPES) == registry.DTYPES
ALGORITHMS = ("brute", "pruned", "auto")
REQUIRED_ON_CPU = ("cpp", "numba", "reference")


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "triton: runs Triton kernels (interpreter on CPU)")
    config.addinivalue_line("markers", "ops(*ops, factored=False, kind=None): the registry ops a backend-parametrised "
                                       "test calls; its cases come from the backends' declarations")


def _availability_marks(name: str) -> list[Any]:
    ok, why = registry.BACKENDS[name].availability()
    if not ok:
        if name in REQUIRED_ON_CPU:
            return [pytest.mark.xfail(reason=f"required backend unavailable: {why}", strict=True)]
        return [pytest.mark.skip(reason=f"{name}: {why}")]
    return [pytest.mark.triton] if name == "triton" else [pytest.mark.gpu] if name == "cuda" else []


def _own_params(metafunc: pytest.Metafunc) -> set[str]:
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0]
        names.update(a.strip() for a in (argnames.split(",") if isinstance(argnames, str) else argnames))
    return names


def cpu_backends() -> list[str]:
    """The backends that take numpy arrays, by their declared devices."""
    return [name for name in registry.PRIORITY if registry.BACKENDS[name].devices == ("cpu",)]


def backends_with(algorithm: str, *, factored: bool = False) -> list[Any]:
    """pytest params: the backends that declare `algorithm` for both selection ops."""
    return [pytest.param(name, marks=_availability_marks(name), id=name) for name in registry.PRIORITY
            if not any(registry.BACKENDS[name].undeclared(op, algorithm=algorithm, factored=factored)
                       for op in registry.SELECTION_OPS)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames or "backend" in _own_params(metafunc):
        return
    mark = metafunc.definition.get_closest_marker("ops")
    if mark is None or not mark.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} takes `backend`: name the ops it calls "
                                "with @pytest.mark.ops(...)")
    unknown = set(mark.args) - set(registry.FAMILY)
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: no such registry op {sorted(unknown)}")
    factored = bool(mark.kwargs.get("factored", False))
    kind = mark.kwargs.get("kind")
    own = _own_params(metafunc)
    axes = ["backend"]
    algorithms: tuple[str | None, ...] = (None,)
    dtypes: tuple[str | None, ...] = (None,)
    if "algorithm" in metafunc.fixturenames and "algorithm" not in own:
        axes.append("algorithm")
        algorithms = ALGORITHMS
    if "dtype" in metafunc.fixturenames and "dtype" not in own:
        axes.append("dtype")
        dtypes = tuple(DTYPES)
    params = []
    for name in registry.PRIORITY:
        backend = registry.BACKENDS[name]
        available = _availability_marks(name)
        for algorithm in algorithms:
            if algorithm == "auto" and len(backend.algorithms) < 2:
                continue  # with one engine, auto is that engine: the same case again
            for dtype in dtypes:
                why = next(filter(None, (backend.undeclared(op, algorithm=algorithm, dtype=dtype, factored=factored,
                                                            kind=kind)
                                         for op in mark.args)), "")
                marks = [pytest.mark.skip(reason=f"not declared: {why}")] if why else available
                ids = [name] + [v for v in (algorithm, dtype) if v is not None]
                values = [name] + ([algorithm] if algorithm else []) + ([DTYPES[dtype]] if dtype else [])
                params.append(pytest.param(*values, marks=marks, id="-".join(ids)))
    metafunc.parametrize(axes, params)


@pytest.fixture
def device(backend: str) -> str:
    """Where a backend's inputs live: CUDA for cuda/triton unless Triton interprets on CPU."""
    if backend == "cuda" or (backend == "triton" and not interpreting()):
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
