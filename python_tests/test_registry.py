"""The backends' declarations (registry.Backend.ops / algorithms / dtypes / pruned_factored)
against what their op modules accept, and the ops every CPU install must implement."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import registry
from uwe_kernels.registry import Call

from conftest import DTYPES, REQUIRED_ON_CPU

# Small shapes of each op's named inputs, in the order the public functions pass them.
EMBED_INPUTS = {
    "uncertainty": {"scores": (8, 3)},
    "uwe": {"scores": (8, 3), "features": (8, 4)},
    "badge_embedding": {"scores": (8, 3), "features": (8, 4)},
    "badge_weights": {"scores": (8, 3)},
    "uwe_segmentation": {"scores": (1, 3, 4, 4), "features": (1, 4, 2, 2)},
    "uwe_detection": {"box_scores": (8, 3), "box_features": (8, 4)},
}


def _device(name: str) -> str:
    if name == "reference" or name in ("cpp", "numba") or registry._interpret_mode():
        return "cpu"
    return "cuda:0"


def _call(name: str, op: str, dtype: str, algorithm: str | None, factored: bool) -> Call:
    dt = DTYPES[dtype]
    if op in EMBED_INPUTS:
        shapes = EMBED_INPUTS[op]
        options: dict[str, Any] = {}
    else:
        pool = {"weights": (8, 3), "features": (8, 4)} if factored else {"emb": (8, 4)}
        shapes = dict(pool)
        if op == "min_distances":
            shapes.update({f"centers.{k}": (2,) + v[1:] for k, v in pool.items()})
        options = {"factored": factored, "n": 8}
        if algorithm is not None:
            options["algorithm"] = algorithm
    return Call(op=op, device=_device(name), dtypes=(dt,) * len(shapes), shapes=shapes, options=options)


def _combinations() -> list[tuple[str, str | None, bool]]:
    out: list[tuple[str, str | None, bool]] = []
    for op in registry.FAMILY:
        if op in registry.SELECTION_OPS:
            out += list(itertools.product([op], ("brute", "pruned", "auto"), (False, True)))
        elif op == "min_distances":
            out += [(op, None, False), (op, None, True)]
        else:
            out.append((op, None, False))
    return out


@pytest.mark.parametrize("name", registry.PRIORITY)
def test_declaration_agrees_with_the_op_modules(name: str) -> None:
    ok, why = registry.BACKENDS[name].availability()
    if not ok:
        pytest.skip(f"{name}: {why}")
    backend = registry.BACKENDS[name]
    wrong = []
    for (op, algorithm, factored), dtype in itertools.product(_combinations(), DTYPES):
        reasons = backend.reasons(_call(name, op, dtype, algorithm, factored), explicit=True)
        declared = backend.accepts(op, algorithm=algorithm, dtype=dtype, factored=factored)
        if declared == bool(reasons):
            wrong.append(f"{op} algorithm={algorithm} dtype={dtype} factored={factored}: declared "
                         f"{'yes' if declared else 'no'}, module says {reasons or 'yes'}")
    assert not wrong, "\n".join(wrong)


def test_required_backends_implement_every_public_op(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every op the public functions dispatch is in FAMILY (a renamed op fails here, not as skips).
    dispatched: set[str] = set()
    resolve = registry.resolve

    def recording(op: str, call: Call, backend: str = "auto") -> Any:
        dispatched.add(op)
        return resolve(op, call, backend)

    monkeypatch.setattr(registry, "resolve", recording)
    rng = np.random.default_rng(0)
    s, f = rng.standard_normal((12, 3)).astype(np.float32), rng.standard_normal((12, 4)).astype(np.float32)
    kw = {"backend": "reference"}
    uk.uncertainty(s, **kw)
    emb = uk.uwe(s, f, **kw)
    uk.uwe_factored(s, f, **kw)
    uk.badge_embedding(s, f, **kw)
    uk.badge_factored(s, f, **kw)
    uk.uwe_segmentation(rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((1, 4, 2, 2)), **kw)
    uk.uwe_detection(np.abs(s), f, np.arange(12) % 2, 2, **kw)
    uk.kcenter_greedy(emb, None, 3, **kw)
    uk.kmeans_pp(emb, 3, **kw)
    uk.min_distances(emb, emb[:2], **kw)
    assert dispatched == set(registry.FAMILY)
    for name in REQUIRED_ON_CPU:
        backend = registry.BACKENDS[name]
        assert set(backend.ops) == set(registry.FAMILY), name
        assert set(backend.dtypes) == set(DTYPES), name
        for op in registry.FAMILY:
            assert callable(backend.op(op)), f"{name} declares {op} but its module has no {op}()"


def test_pruned_engines_are_declared_where_the_contract_needs_them() -> None:
    assert registry.BACKENDS["cpp"].algorithms == ("brute", "pruned") and registry.BACKENDS["cpp"].pruned_factored
    assert registry.BACKENDS["numba"].algorithms == ("brute", "pruned")
    assert not registry.BACKENDS["numba"].pruned_factored
    for name in ("triton", "cuda", "reference"):
        assert registry.BACKENDS[name].algorithms == ("brute",), name
    for b in registry.BACKENDS.values():
        assert set(b.algorithms) <= set(registry.ALGORITHMS) and set(b.dtypes) <= set(registry.DTYPES)
        assert set(b.ops) <= set(registry.FAMILY)


def test_undeclared_combinations_say_why() -> None:
    numba, triton = registry.BACKENDS["numba"], registry.BACKENDS["triton"]
    assert "dense" in numba.undeclared("kmeans_pp", algorithm="pruned", factored=True)
    assert numba.undeclared("kmeans_pp", algorithm="brute", factored=True) == ""
    assert "'pruned'" in triton.undeclared("kcenter_greedy", algorithm="pruned")
    assert triton.undeclared("min_distances", algorithm="pruned") == ""  # takes no algorithm
    reference = registry.BACKENDS["reference"]
    assert reference.undeclared("kcenter_greedy", algorithm="pruned") and reference.accepts(
        "kcenter_greedy", algorithm="pruned")


def _triton_interpreting() -> tuple[bool, str]:
    try:
        import torch  # noqa: F401
        import triton.language as tl
    except ImportError as exc:
        return False, f"triton: {exc}"
    if type(tl.max).__name__ != "InterpretedFunction":
        return False, "triton was imported without TRITON_INTERPRET=1 (triton reads it at import)"
    return True, ""


TRITON_READY, TRITON_WHY = _triton_interpreting()
MATRIX_FILES = ("test_registry.py", "test_selection.py", "test_embeddings.py", "test_bald.py")


@pytest.mark.skipif(TRITON_READY, reason="this process already interprets Triton")
def test_triton_cases_in_an_interpreter_process() -> None:
    # Triton reads TRITON_INTERPRET at import, so its matrix cases (small shapes) run in a
    # process started with it; on a CUDA machine they also run in this one, on the device.
    pytest.importorskip("triton")
    here = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *(os.path.join(here, f) for f in MATRIX_FILES), "-q", "-x", "-rs",
         "-k", "triton", "-p", "no:cacheprovider"],
        env=dict(os.environ, TRITON_INTERPRET="1"), capture_output=True, text=True, cwd=os.path.dirname(here),
        timeout=1800,
    )
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and "triton: triton" not in run.stdout, tail


@pytest.mark.skipif(not TRITON_READY, reason=TRITON_WHY or "triton is not interpreting")
def test_triton_backend_reports_interpreter_mode() -> None:
    ok, why = registry.BACKENDS["triton"].availability()
    assert ok and "interpreter" in why
