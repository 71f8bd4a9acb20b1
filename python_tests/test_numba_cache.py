"""Numba's kernels, the parallel ones included, are cached on disk: a second process loads
them instead of compiling them again (seconds per process otherwise)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import numpy as np
import uwe_kernels as uk
x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
uk.kcenter_greedy(x, [0, 1], 5, backend="numba", algorithm="brute")
uk.kmeans_pp(uk.badge_factored(x[:, :3], x, backend="reference"), 5, backend="numba")
passes = x[:, :6].reshape(300, 3, 2)
uk.uwe(x[:, :3], x, "entropy", backend="numba")
uk.uwe(passes, x, "bald", backend="numba")
uk.uncertainty(passes, "bald", backend="numba")
"""
PARALLEL_KERNELS = ("sweep.sweep-", "rows._norms-")
# The embedding ops' serial row kernels (their launchers compile per process), which share
# a cached row writer.
ROW_KERNELS = ("embed._uwe_rows-", "embed._bald_rows-")


def _run(cache_dir: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "NUMBA_DEBUG_CACHE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_parallel_kernels_are_loaded_from_the_cache_by_a_second_process(tmp_path: Path) -> None:
    _run(tmp_path)
    index_files = [p.name for p in tmp_path.rglob("*.nbi")]
    for kernel in PARALLEL_KERNELS + ROW_KERNELS:
        assert any(kernel in name for name in index_files), (kernel, index_files)
    second = _run(tmp_path)
    for kernel in PARALLEL_KERNELS + ROW_KERNELS:
        lines = [line for line in second.splitlines() if kernel in line]
        assert any("data loaded" in line for line in lines), (kernel, lines)
        assert not any("data saved" in line for line in lines), (kernel, lines)
