"""The opening handshake of uwe_kernels.distributed: ranks that call different operations, or
the same one with settings that disagree, all raise the same ValueError (no rank aborts in
the communication library, no rank hangs)."""
from __future__ import annotations

import datetime
import os
import pickle
import socket
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)

# Per case, what each of the two ranks calls: (operation, keyword arguments).
CASES: dict[str, tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
    "other_operation": (("kcenter_greedy", {}), ("kmeans_pp", {})),
    "other_operation_same_numbers": (("kcenter_greedy", {"lookahead": 1}), ("kmeans_pp", {"seed": 0})),
    "other_budget": (("kmeans_pp", {}), ("kmeans_pp", {"budget": 4})),
    "other_seed": (("kmeans_pp", {"seed": 1}), ("kmeans_pp", {"seed": 2**40 + 1})),
    "agree": (("kmeans_pp", {"seed": 5}), ("kmeans_pp", {"seed": 5})),
}


def _call(op: str, kwargs: dict[str, Any], rank: int) -> Any:
    from uwe_kernels import distributed as ud

    x = np.random.default_rng(rank).standard_normal((6, 3)).astype(np.float32)
    budget = kwargs.pop("budget", 3)
    if op == "kcenter_greedy":
        return ud.kcenter_greedy(x, None, budget, **kwargs)
    return ud.kmeans_pp(x, budget, **kwargs)


def _worker(rank: int, port: int, outdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    results = {}
    for name, calls in CASES.items():
        op, kwargs = calls[rank]
        try:
            results[name] = ("ok", np.asarray(_call(op, dict(kwargs), rank)).tolist())
        except Exception as exc:
            results[name] = (type(exc).__name__, str(exc))
    with open(os.path.join(outdir, f"{rank}.pkl"), "wb") as fh:
        pickle.dump(results, fh)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def results(tmp_path_factory: Any) -> list[dict[str, Any]]:
    outdir = str(tmp_path_factory.mktemp("handshake"))
    mp.start_processes(_worker, args=(_free_port(), outdir), nprocs=2, join=True, start_method="spawn")
    out = []
    for rank in range(2):
        with open(os.path.join(outdir, f"{rank}.pkl"), "rb") as fh:
            out.append(pickle.load(fh))
    return out


@pytest.mark.parametrize("case,names", [
    ("other_operation", ("operation",)),
    ("other_operation_same_numbers", ("operation",)),
    ("other_budget", ("budget",)),
    ("other_seed", ("seed",)),
])
def test_ranks_that_disagree_all_raise_the_same_value_error(results: list[dict[str, Any]], case: str,
                                                             names: tuple[str, ...]) -> None:
    first, second = results[0][case], results[1][case]
    assert first == second
    kind, message = first
    assert kind == "ValueError"
    for name in names:
        assert f"the same {name}" in message


def test_ranks_that_agree_get_the_same_picks(results: list[dict[str, Any]]) -> None:
    assert results[0]["agree"][0] == "ok"
    assert results[0]["agree"] == results[1]["agree"]
