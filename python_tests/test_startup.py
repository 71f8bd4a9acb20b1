"""Start-up: `import uwe_kernels` and a first call on numpy arrays load numpy, not torch,
triton or ml_dtypes; and a source tree that shadows the installed package says so."""
from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import uwe_kernels
from uwe_kernels import _lazy

HEAVY = ("torch", "triton", "ml_dtypes")

FIRST_CALL = """
import json, sys, time
start = time.perf_counter()
import numpy as np
import uwe_kernels as uk
imported = time.perf_counter() - start
x = np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)
picks = uk.kcenter_greedy(x, None, 5)
print(json.dumps({"picks": picks.tolist(), "import_s": imported, "total_s": time.perf_counter() - start,
                  "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def _run_fresh(code: str, tmp_path: Path) -> dict:
    """`code` in a new interpreter outside the source tree, importing this test's uwe_kernels."""
    env = {k: v for k, v in os.environ.items() if k not in ("UWE_KERNELS_BACKEND", "TRITON_INTERPRET")}
    env["PYTHONPATH"] = str(Path(uwe_kernels.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_import_and_a_first_numpy_call_load_no_torch_triton_or_ml_dtypes(tmp_path):
    result = _run_fresh(FIRST_CALL % (HEAVY,), tmp_path)
    assert result["loaded"] == []
    x = np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)
    assert result["picks"] == uwe_kernels.kcenter_greedy(x, None, 5, backend="reference").tolist()


def test_a_bfloat16_array_still_runs_and_then_loads_ml_dtypes(tmp_path):
    code = """
import json, sys
import numpy as np
import ml_dtypes
import uwe_kernels as uk
x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
picks = uk.kcenter_greedy(x.astype(ml_dtypes.bfloat16), None, 4)
print(json.dumps({"dtype": str(uk.uwe(x[:, :3].astype(ml_dtypes.bfloat16), x.astype(ml_dtypes.bfloat16)).dtype),
                  "picks": picks.tolist()}))
"""
    result = _run_fresh(code, tmp_path)
    assert result["dtype"] == "bfloat16"
    assert len(set(result["picks"])) == 4


def _fake_package(root: Path, compiled: bool) -> Path:
    package = root / "uwe_kernels"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if compiled:
        (package / ("_ext_cpu" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"")
    return package


def test_a_source_tree_shadowing_the_installed_package_says_so_and_what_to_do(tmp_path, monkeypatch):
    clone, site = tmp_path / "clone", tmp_path / "site-packages"
    monkeypatch.setattr(_lazy, "PACKAGE_DIR", _fake_package(clone, compiled=False))
    (clone / "setup.py").write_text("")
    installed = _fake_package(site, compiled=True)
    monkeypatch.setattr(sys, "path", [str(clone), str(site)])
    assert _lazy.installed_elsewhere() == installed.resolve()
    hint = _lazy.missing_build_hint()
    assert f"source tree {clone}" in hint and str(site) in hint
    assert "another directory" in hint and "build_ext --inplace" in hint


@pytest.mark.parametrize("installed_is_built", [False, True], ids=["no-install", "install-without-build"])
def test_a_source_tree_with_nothing_installed_is_told_to_build(tmp_path, monkeypatch, installed_is_built):
    clone = tmp_path / "clone"
    monkeypatch.setattr(_lazy, "PACKAGE_DIR", _fake_package(clone, compiled=False))
    (clone / "setup.py").write_text("")
    path = [str(clone)]
    if installed_is_built:  # another copy without its compiled module does not help either
        _fake_package(tmp_path / "site-packages", compiled=False)
        path.append(str(tmp_path / "site-packages"))
    monkeypatch.setattr(sys, "path", path)
    assert _lazy.installed_elsewhere() is None
    assert "build_ext --inplace" in _lazy.missing_build_hint()
