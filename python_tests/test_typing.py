"""The installed package type-checks under `mypy --strict` (pyproject's [tool.mypy]), with the
stubs of the compiled modules and the py.typed marker it ships."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import uwe_kernels

CONFIG = Path(__file__).resolve().parents[1] / "pyproject.toml"
PACKAGE = Path(uwe_kernels.__file__).resolve().parent


def test_package_ships_its_typing_files() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_ext_cpu.pyi").is_file() and (PACKAGE / "_ext_cuda.pyi").is_file()


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    # mypy refuses to check files inside site-packages as sources, so it checks a copy of
    # the installed package (sources, stubs and py.typed; the compiled modules are not needed).
    checked = tmp_path / "src" / "uwe_kernels"
    shutil.copytree(PACKAGE, checked, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), "--cache-dir", str(tmp_path / "cache"),
         str(checked)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "strict = true" in CONFIG.read_text()
