"""Thread count of the CPU backends: uwe_kernels.set_num_threads / get_num_threads, OpenMP
limits set through threadpoolctl, and results that never depend on the thread count."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import registry

from helpers import clustered_pool

CPP = pytest.mark.skipif(not registry.BACKENDS["cpp"].availability()[0], reason="cpp is not built")


@pytest.fixture
def restore_threads():  # type: ignore[no-untyped-def]
    before = uk.get_num_threads()
    yield
    uk.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="set_num_threads"):
        uk.set_num_threads(bad)  # type: ignore[arg-type]


@CPP
def test_set_num_threads_caps_get_num_threads(restore_threads: None) -> None:
    uk.set_num_threads(1)
    assert uk.get_num_threads() == 1
    uk.set_num_threads(2)
    assert uk.get_num_threads() == 2


@CPP
def test_threadpoolctl_finds_and_limits_our_openmp(restore_threads: None) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    uk.kcenter_greedy(clustered_pool(2000, 16), None, 3, backend="cpp")  # the module is loaded
    uk.set_num_threads(2)
    libs = threadpoolctl.threadpool_info()
    assert any(lib["user_api"] == "openmp" for lib in libs), libs
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert uk.get_num_threads() == 1
    assert uk.get_num_threads() == 2


@pytest.mark.parametrize("backend", ["cpp", "numba"])
@pytest.mark.parametrize("algorithm", ["brute", "pruned"])
def test_picks_do_not_depend_on_the_thread_count(backend: str, algorithm: str, restore_threads: None) -> None:
    if not registry.BACKENDS[backend].availability()[0]:
        pytest.skip(f"{backend} is not available")
    x = clustered_pool(20000, 24, clusters=12, seed=5)
    labelled = [3, 77, 4000]
    runs = []
    for threads in (1, 2):
        uk.set_num_threads(threads)
        picks, dists = uk.kcenter_greedy(x, labelled, 120, backend=backend, algorithm=algorithm,
                                         return_distances=True)
        kpp = uk.kmeans_pp(x, 60, labelled_idx=labelled, seed=9, backend=backend, algorithm=algorithm)
        runs.append((np.asarray(picks).tolist(), np.asarray(dists).tolist(), np.asarray(kpp).tolist()))
    assert runs[0] == runs[1]


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _CppTuner:
    """csrc/cpu/threads.h's TeamTuner on the fake clock, with the Python twin's interface."""

    def __init__(self, ext: Any, full: int, clock: _FakeClock) -> None:
        self.tuner, self.clock = ext._TeamTuner(full, clock.now), clock

    def threads(self) -> int:
        return int(self.tuner.threads())

    def pick_done(self, work: float) -> None:
        self.tuner.pick_done(work, self.clock.now)


@pytest.fixture(params=["numba", "cpp"])
def tuner_on_fake_clock(request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Callable[[int], Any], _FakeClock]]:
    """(make a TeamTuner of a full team size, its clock) for each twin of the one policy, every
    verdict forgotten."""
    from uwe_kernels import _threads

    clock = _FakeClock()
    if request.param == "numba":
        monkeypatch.setattr(_threads.time, "perf_counter", clock)
        monkeypatch.setattr(_threads.TeamTuner, "_verdicts", {})
        yield _threads.TeamTuner, clock
        return
    if not registry.BACKENDS["cpp"].availability()[0]:
        pytest.skip("cpp is not built")
    from uwe_kernels import _lazy

    ext = _lazy.load("cpu")
    ext._forget_team_verdicts()
    yield (lambda full: _CppTuner(ext, full, clock)), clock
    ext._forget_team_verdicts()  # real calls start afresh, not from the fake clock's verdicts


@pytest.mark.parametrize("faster", ["full", "one"])
def test_team_tuner_spends_most_picks_on_the_faster_size(faster: str, tuner_on_fake_clock: tuple[Callable[[int], Any], _FakeClock]) -> None:
    make, clock = tuner_on_fake_clock
    tuner = make(2)
    cost = {2: 0.002, 1: 0.004} if faster == "full" else {2: 0.008, 1: 0.004}  # seconds per pick
    used = {1: 0, 2: 0}
    for _ in range(3000):
        team = tuner.threads()
        used[team] += 1
        clock.now += cost[team]
        tuner.pick_done(1000.0)
    best = 2 if faster == "full" else 1
    assert used[best] > 0.9 * sum(used.values()), used


def test_team_tuner_follows_a_change_of_load(tuner_on_fake_clock: tuple[Callable[[int], Any], _FakeClock]) -> None:
    make, clock = tuner_on_fake_clock
    tuner = make(2)
    for busy in (False, True, False):
        cost = {2: 0.008, 1: 0.004} if busy else {2: 0.002, 1: 0.004}
        late = {1: 0, 2: 0}  # team sizes of the phase's second half
        for k in range(4000):
            team = tuner.threads()
            late[team] += k >= 2000
            clock.now += cost[team]
            tuner.pick_done(1000.0)
        assert late[1 if busy else 2] > 0.9 * 2000, (busy, late)


def test_team_tuner_starts_from_the_last_verdict(tuner_on_fake_clock: tuple[Callable[[int], Any], _FakeClock]) -> None:
    make, clock = tuner_on_fake_clock
    first = make(2)
    for _ in range(500):  # one thread is faster
        clock.now += {2: 0.008, 1: 0.004}[first.threads()]
        first.pick_done(1000.0)
    assert make(2).threads() == 1
    assert make(3).threads() == 3  # another team size starts afresh


def test_team_tuner_rechecks_a_run_of_short_calls(tuner_on_fake_clock: tuple[Callable[[int], Any], _FakeClock]) -> None:
    """Calls of a few windows each (a quick selection) still re-check the team size: the
    countdown to the next trial carries over from call to call."""
    make, clock = tuner_on_fake_clock
    for _ in range(20):  # quiet: the full team wins and the trials back off
        tuner = make(2)
        for _ in range(40):
            clock.now += {2: 0.002, 1: 0.004}[tuner.threads()]
            tuner.pick_done(1000.0)
    used = {1: 0, 2: 0}
    for call in range(60):  # busy from now on: one thread is faster; each call is ~5 windows
        tuner = make(2)
        for _ in range(20):
            team = tuner.threads()
            used[team] += call >= 30
            clock.now += {2: 0.008, 1: 0.004}[team]
            tuner.pick_done(1000.0)
    assert used[1] > 0.9 * sum(used.values()), used


def test_team_tuner_rechecks_soon_after_a_pause(tuner_on_fake_clock: tuple[Callable[[int], Any], _FakeClock]) -> None:
    """After a pause of more than a second the load may have changed: the next call tries the
    other size within 16 windows, not after the 64 its backoff had reached."""
    make, clock = tuner_on_fake_clock
    tuner, trials, previous = make(2), 0, 2
    while trials < 4:  # quiet: four trials confirm the full team, the next one 64 windows away
        team = tuner.threads()
        trials += team == 2 and previous == 1
        previous = team
        clock.now += {2: 0.002, 1: 0.004}[team]
        tuner.pick_done(1000.0)
    clock.now += 2.0
    tuner, teams = make(2), []
    for _ in range(320):  # about 20 windows of the full team
        teams.append(tuner.threads())
        clock.now += {2: 0.002, 1: 0.004}[teams[-1]]
        tuner.pick_done(1000.0)
    assert 1 in teams
