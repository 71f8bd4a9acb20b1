"""Import-once loading of optional modules: the module or the exception is cached,
so importing uwe_kernels never fails because CUDA, Triton or Numba is missing."""
from __future__ import annotations

import importlib
import threading
from types import ModuleType

_lock = threading.Lock()
_cache: dict[str, ModuleType | BaseException] = {}

EXTENSIONS = {"cpu": "uwe_kernels._ext_cpu", "cuda": "uwe_kernels._ext_cuda"}


def load_module(name: str) -> ModuleType:
    """Import `name` once; later calls return the module or re-raise the first error."""
    with _lock:
        cached = _cache.get(name)
        if cached is None:
            try:
                cached = importlib.import_module(name)
                if name in EXTENSIONS.values():  # codes built in must be the package's
                    from . import _abi

                    _abi.check_extension(cached)
            except Exception as exc:  # ImportError, OSError from a bad .so, CUDA init errors
                cached = exc
            _cache[name] = cached
    if isinstance(cached, BaseException):
        raise cached
    return cached


def load(extension: str) -> ModuleType:
    """The compiled module `_ext_cpu` ("cpu") or `_ext_cuda` ("cuda")."""
    return load_module(EXTENSIONS[extension])


def error_of(name: str) -> str | None:
    """Why `name` cannot be imported (one line), or None when it can."""
    try:
        load_module(name)
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None
