"""A cached import error keeps none of its callers alive: re-raising the one cached exception
grew its traceback by every caller's frames (and the arrays in their locals) on every call."""
from __future__ import annotations

import gc
import weakref

import pytest

from uwe_kernels import _lazy

MISSING = "uwe_kernels._no_such_module_for_this_test"


class _Pool:
    """Stands in for a large array held by a caller (numpy arrays are not gc-tracked)."""


def _caller() -> weakref.ref[_Pool]:
    pool = _Pool()
    assert _lazy.error_of(MISSING) is not None
    with pytest.raises(ImportError):
        _lazy.load_module(MISSING)
    return weakref.ref(pool)


def test_a_cached_import_error_keeps_no_caller_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lazy, "_cache", {})
    refs = [_caller() for _ in range(3)]
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_the_cached_error_is_raised_with_its_type_and_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lazy, "_cache", {})
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match="_no_such_module_for_this_test"):
            _lazy.load_module(MISSING)
