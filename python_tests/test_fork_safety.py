"""A child process (fork, spawn or forkserver) can call the library after its parent ran
threaded kernels: GNU libgomp's thread pool does not survive fork(), so a forked child runs
serially instead of waiting forever for team threads that do not exist. Each child runs
under a timeout, so a hang fails the test instead of hanging the suite."""
from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import registry

CHILD_TIMEOUT_S = 240.0  # generous for a busy machine (a spawned numba child loads its kernels)
BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(not registry.BACKENDS[name].availability()[0],
                                                  reason=f"{name} is not available"))
    for name in ("cpp", "numba")
]


def _pool() -> np.ndarray:
    # Large enough that every parallel region of the selection runs with a full team.
    return np.random.default_rng(0).standard_normal((5000, 32)).astype(np.float32)


def _select(backend: str) -> tuple[list[int], list[int], list[int]]:
    x = _pool()
    kcg = uk.kcenter_greedy(x, None, 10, backend=backend)
    pruned = uk.kcenter_greedy(x, [0, 1, 2], 10, backend=backend, algorithm="pruned")
    kpp = uk.kmeans_pp(x, 10, backend=backend, seed=3)
    return [int(i) for i in kcg], [int(i) for i in pruned], [int(i) for i in kpp]


def _child(backend: str, conn: "mp.connection.Connection") -> None:
    try:
        conn.send(("ok", _select(backend)))
    except BaseException as exc:  # report it: the parent fails with the child's error
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _run_in_child(method: str, backend: str) -> tuple[list[int], list[int], list[int]]:
    ctx = mp.get_context(method)
    parent_end, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(backend, child_end))
    proc.start()
    child_end.close()
    try:
        if not parent_end.poll(CHILD_TIMEOUT_S):
            pytest.fail(f"{method} child calling backend={backend!r} did not answer within {CHILD_TIMEOUT_S} s "
                        f"(a hang after fork)")
        status, payload = parent_end.recv()
    except EOFError:
        proc.join(CHILD_TIMEOUT_S)
        pytest.fail(f"{method} child calling backend={backend!r} died with exit code {proc.exitcode}")
    finally:
        if proc.is_alive():
            proc.join(5.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert status == "ok", f"{method} child failed: {payload}"
    return payload  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_child_process_selects_after_parent_used_threads(method: str, backend: str) -> None:
    if method not in mp.get_all_start_methods():
        pytest.skip(f"start method {method!r} is not available here")
    expected = _select(backend)  # the parent starts its thread pools first
    assert _run_in_child(method, backend) == expected
    assert _select(backend) == expected  # and the parent still works


@pytest.mark.parametrize("backend", BACKENDS)
def test_os_fork_child_selects(backend: str) -> None:
    """The issue's reproducer: a bare os.fork() after a threaded selection."""
    expected = _select(backend)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            code = 0 if _select(backend) == expected else 3
        finally:
            os.write(write_fd, bytes([code]))
            os._exit(code)
    os.close(write_fd)
    try:
        import select as select_mod

        ready, _, _ = select_mod.select([read_fd], [], [], CHILD_TIMEOUT_S)
        if not ready:
            os.kill(pid, 9)
            pytest.fail(f"os.fork() child calling backend={backend!r} hung")
        answer = os.read(read_fd, 1)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    assert answer == b"\x00", f"child exit status {status}, answer {answer!r}"


def test_forked_child_reports_one_thread() -> None:
    """After fork the CPU kernels run on one thread whatever was asked for."""
    expected_parent = uk.get_num_threads()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            uk.set_num_threads(4)
            os.write(write_fd, bytes([uk.get_num_threads()]))
        finally:
            os._exit(0)
    os.close(write_fd)
    answer = os.read(read_fd, 1)
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert answer == b"\x01"
    assert uk.get_num_threads() == expected_parent
