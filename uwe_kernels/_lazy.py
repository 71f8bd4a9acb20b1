"""Import-once loading of optional modules: the module or the exception is cached,
so importing uwe_kernels never fails because CUDA, Triton or Numba is missing."""
from __future__ import annotations

import copy
import importlib
import importlib.machinery
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

_lock = threading.Lock()
_cache: dict[str, ModuleType | BaseException] = {}

EXTENSIONS = {"cpu": "uwe_kernels._ext_cpu", "cuda": "uwe_kernels._ext_cuda"}


def load_module(name: str) -> ModuleType:
    """Import `name` once; later calls return the module or re-raise the first error."""
    with _lock:
        cached = _cache.get(name)
        if cached is None:
            before = set(sys.modules)
            try:
                cached = importlib.import_module(name)
                if name in EXTENSIONS.values():  # codes built in must be the package's
                    from . import _abi

                    _abi.check_extension(cached)
            except Exception as exc:  # ImportError, OSError from a bad .so, CUDA init errors
                cached = copy.copy(exc)  # without its traceback: that holds the first caller's frames
            except BaseException:  # Ctrl-C mid-import: not cached, and no half-imported modules
                for partial in set(sys.modules) - before:  # left behind for the next try to find
                    sys.modules.pop(partial, None)
                raise
            _cache[name] = cached
    if isinstance(cached, BaseException):
        # A fresh copy per raise: raising the cached object itself would add every caller's
        # frames (and whatever their locals hold) to its traceback, for good.
        raise copy.copy(cached)
    return cached


def load(extension: str) -> ModuleType:
    """The compiled module `_ext_cpu` ("cpu") or `_ext_cuda` ("cuda")."""
    return load_module(EXTENSIONS[extension])


def error_of(name: str) -> str | None:
    """Why `name` cannot be imported (one line), or None when it can."""
    try:
        load_module(name)
    except Exception as exc:  # KeyboardInterrupt and SystemExit propagate
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


PACKAGE_DIR = Path(__file__).resolve().parent


def _has_compiled_cpu_module(package_dir: Path) -> bool:
    return any(package_dir.glob("_ext_cpu*" + importlib.machinery.EXTENSION_SUFFIXES[0]))


def installed_elsewhere() -> Path | None:
    """The folder of another uwe_kernels on sys.path that has its compiled CPU module, when
    this one is a source tree without it (a clone imported from its root shadows the install)."""
    if not (PACKAGE_DIR.parent / "setup.py").exists() or _has_compiled_cpu_module(PACKAGE_DIR):
        return None
    ours = PACKAGE_DIR.parent
    others = [p for p in sys.path if Path(p or os.curdir).resolve() != ours]
    spec = importlib.machinery.PathFinder.find_spec(__package__ or "uwe_kernels", others)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(list(spec.submodule_search_locations)[0]).resolve()
    return found if _has_compiled_cpu_module(found) else None


def missing_build_hint() -> str:
    """What to do when a compiled module did not load: rebuild, or stop a source tree from
    shadowing the installed package."""
    installed = installed_elsewhere()
    if installed is not None:
        return (f"Python imported uwe_kernels from the source tree {PACKAGE_DIR.parent} (the current directory "
                f"comes first on sys.path), which has no compiled modules, instead of the installed copy in "
                f"{installed.parent}: run Python from another directory, or build the source tree in place "
                f"(`python setup.py build_ext --inplace`)")
    if (PACKAGE_DIR.parent / "setup.py").exists():
        return "build it in place (`python setup.py build_ext --inplace`) or install with `pip install .`"
    return "reinstall with `pip install .`"
