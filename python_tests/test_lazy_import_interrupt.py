"""Ctrl-C during a lazy import propagates and leaves the module importable afterwards."""
from __future__ import annotations

import sys
import textwrap

import pytest

from uwe_kernels import _lazy


@pytest.fixture
def slow_package(tmp_path, monkeypatch):
    """A package whose first import is interrupted halfway, after a submodule has loaded."""
    pkg = tmp_path / "uwe_test_slowpkg"
    pkg.mkdir()
    (pkg / "part.py").write_text("VALUE = 1\n")
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import builtins
        from . import part
        if not getattr(builtins, "_uwe_test_interrupted", False):
            builtins._uwe_test_interrupted = True
            raise KeyboardInterrupt
        __version__ = "1.0"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "uwe_test_slowpkg"
    import builtins

    for name in [m for m in sys.modules if m.startswith("uwe_test_slowpkg")]:
        del sys.modules[name]
    _lazy._cache.pop("uwe_test_slowpkg", None)
    if hasattr(builtins, "_uwe_test_interrupted"):
        del builtins._uwe_test_interrupted


def test_interrupted_import_propagates_and_a_retry_succeeds(slow_package):
    with pytest.raises(KeyboardInterrupt):
        _lazy.error_of(slow_package)
    assert not [m for m in sys.modules if m.startswith(slow_package)]  # nothing half-imported is left
    assert _lazy.error_of(slow_package) is None
    assert _lazy.load_module(slow_package).__version__ == "1.0"


def test_interrupted_numba_import_leaves_the_backend_usable(monkeypatch):
    pytest.importorskip("numba")
    import numpy as np

    import uwe_kernels as uk

    real = _lazy.importlib.import_module
    calls = []

    def interrupted_once(name, *args):
        if name == "numba" and not calls:
            calls.append(name)
            raise KeyboardInterrupt
        return real(name, *args)

    monkeypatch.setattr(_lazy.importlib, "import_module", interrupted_once)
    monkeypatch.delitem(_lazy._cache, "numba", raising=False)
    with pytest.raises(KeyboardInterrupt):
        uk.backends()
    assert uk.backends()["numba"][0] is True
    picks = uk.kcenter_greedy(np.eye(4, dtype=np.float32), None, 2, backend="numba")
    assert len(picks) == 2
