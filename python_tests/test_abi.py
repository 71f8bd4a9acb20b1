"""The codes crossing the Python <-> compiled boundary are one table: the compiled module
exports the values it was built with, and a module built with other codes fails to load."""
from __future__ import annotations

import types

import pytest

from uwe_kernels import _abi, _lazy


def test_cpu_module_exports_the_package_codes() -> None:
    ext = pytest.importorskip("uwe_kernels._ext_cpu")
    assert ext.ABI == {"dtype": _abi.DTYPE_CODES, "kind": _abi.KIND_CODES,
                       "emb": {"dense": _abi.EMB_DENSE, "uwe": _abi.EMB_UWE, "badge": _abi.EMB_BADGE},
                       "first": {"max_norm": _abi.FIRST_MAX_NORM, "random": _abi.FIRST_RANDOM}}
    _abi.check_extension(ext)


def test_a_module_with_other_codes_is_refused(monkeypatch) -> None:
    ext = pytest.importorskip("uwe_kernels._ext_cpu")
    other = types.ModuleType("uwe_kernels._ext_cpu")
    other.ABI = {**ext.ABI, "dtype": {**ext.ABI["dtype"], "float32": 7}}  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="other codes"):
        _abi.check_extension(other)
    # The lazy loader applies the check and caches the refusal like any import error.
    monkeypatch.setattr(_lazy.importlib, "import_module", lambda name: other)
    monkeypatch.setattr(_lazy, "_cache", {})
    with pytest.raises(ImportError, match="other codes"):
        _lazy.load("cpu")
    assert "other codes" in (_lazy.error_of(_lazy.EXTENSIONS["cpu"]) or "")
