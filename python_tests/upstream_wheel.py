"""Test files that a framework ships inside one pinned wheel on PyPI, fetched at test time.

Some frameworks' own test modules are the best check that our strategies behave like theirs,
but we neither copy their code into this repository nor install the old release they came
with. The wheel is fetched with pip (``pip download``, so the usual index settings apply),
checked against its pinned sha256, cached per hash, and only the named members are extracted.
Offline, the fetch skips the calling test module with pip's reason (fails instead under
UWE_KERNELS_REQUIRE_UPSTREAM_TESTS=1).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NoReturn

import pytest


def cache_root() -> Path:
    """$UWE_KERNELS_TEST_CACHE, else uwe_kernels-tests under the user's cache folder."""
    explicit = os.environ.get("UWE_KERNELS_TEST_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uwe_kernels-tests"


def _unavailable(reason: str) -> NoReturn:
    """Skip the calling module, or fail where UWE_KERNELS_REQUIRE_UPSTREAM_TESTS=1 (CI, which
    reaches PyPI: a skip there would hide the upstream tests)."""
    if os.environ.get("UWE_KERNELS_REQUIRE_UPSTREAM_TESTS") == "1":
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download(requirement: str, filename: str, sha256: str, into: Path) -> Path:
    """The wheel, from the cache or from pip; a hash mismatch is an error, a failed fetch a skip."""
    wheel = into / filename
    if wheel.is_file() and _sha256(wheel) == sha256:
        return wheel
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into) as scratch:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", requirement, "-d", scratch]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"cannot fetch {requirement} from the package index: {exc}")
        fetched = Path(scratch) / filename
        if done.returncode != 0 or not fetched.is_file():
            why = (done.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
            _unavailable(f"cannot fetch {requirement} from the package index (offline?): {why}")
        got = _sha256(fetched)
        if got != sha256:
            raise RuntimeError(f"{filename} from the package index has sha256 {got}, pinned {sha256}")
        os.replace(fetched, wheel)
    return wheel


def extract(requirement: str, filename: str, sha256: str, members: list[str]) -> Path:
    """A folder holding `members` (paths inside the wheel) of the pinned wheel, keyed by its hash."""
    home = cache_root() / sha256
    done = home / "extracted"
    if all((done / m).is_file() for m in members):
        return done
    wheel = _download(requirement, filename, sha256, home)
    with zipfile.ZipFile(wheel) as zf:
        missing = sorted(set(members) - set(zf.namelist()))
        if missing:
            raise RuntimeError(f"{filename} lacks {missing}")
        with tempfile.TemporaryDirectory(dir=home) as scratch:
            for member in members:
                zf.extract(member, scratch)
            shutil.rmtree(done, ignore_errors=True)
            os.replace(scratch, done)  # whole or not at all, for runs that share the cache
            os.mkdir(scratch)  # TemporaryDirectory removes its folder on exit
    return done
