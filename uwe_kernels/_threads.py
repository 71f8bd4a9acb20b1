"""Thread count of the CPU backends (cpp and numba), and what a forked child may use.

set_num_threads(n) caps both backends; OMP_NUM_THREADS and threadpoolctl's limits on OpenMP
(the libgomp the cpp module loads) cap the cpp backend too. A child created by fork() runs
every kernel on one thread: GNU OpenMP's thread pool does not survive fork (the cpp module
would wait forever for its team, numba's OpenMP layer ends the child), so after a fork the
cpp module makes each parallel region a team of one and numba runs the serial twins of its
parallel kernels (numba/_runtime.py).
"""
from __future__ import annotations

import os
import time
from types import ModuleType
from typing import Any

from . import _lazy

_cap = 0  # 0: no cap set
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_child() -> bool:
    """True in a process created by fork() after this module was imported."""
    return _forked


def _cpu_ext() -> ModuleType | None:
    try:
        return _lazy.load("cpu")
    except Exception:  # no compiled module: the numba backend alone follows the cap
        return None


def set_num_threads(n: int) -> None:
    """Use at most `n` threads (n >= 1) in later calls of the cpp and numba backends.

    In a process created by fork() the backends stay on one thread whatever `n` is."""
    global _cap
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    _cap = n
    ext = _cpu_ext()
    if ext is not None:
        ext.set_num_threads(n)


def get_num_threads() -> int:
    """Threads a call of the cpp backend (numba when cpp is not built) may use: 1 in a forked
    child, otherwise the cap of set_num_threads, OMP_NUM_THREADS or threadpoolctl, or the cores
    this process may run on."""
    if _forked:
        return 1
    ext = _cpu_ext()
    if ext is not None:
        return int(ext.get_num_threads())
    return numba_threads()


def numba_threads() -> int:
    """Threads for the next numba parallel kernel launch."""
    if _forked:
        return 1
    import numba

    config: Any = numba.config  # settings are plain module attributes, untyped
    limit = int(config.NUMBA_NUM_THREADS)
    return max(1, min(_cap, limit) if _cap else limit)


class TeamTuner:
    """Team size per pick for one numba selection call: csrc/cpu/threads.h's TeamTuner (windows
    of about WINDOW_S seconds with the full team or one thread; a trial of the other size wins
    when clearly faster per unit of work than the current size's windows; the next trial after
    1, 4, 16, 64 windows). A call starts where the previous one left off (its verdict, backoff
    and countdown to the next trial), so a run of short calls is tuned like one long call; after
    a pause of more than STALE_S the load may have changed, and the verdict is re-checked within
    RESUME_QUIET windows."""

    WINDOW_S = 0.03
    MARGIN = 0.9
    BACKOFF = 4
    MAX_QUIET = 64
    RESUME_QUIET = 16
    STALE_S = 1.0
    # full team size -> (best size, quiet, windows until the next trial, when) as the last call left them
    _verdicts: dict[int, tuple[int, int, int, float]] = {}

    def __init__(self, full: int) -> None:
        self.full = max(1, int(full))
        self.best, self.quiet, self.until_trial, when = self._verdicts.get(self.full, (self.full, 1, 1, 0.0))
        if time.perf_counter() - when > self.STALE_S:
            self.quiet = min(self.quiet, self.RESUME_QUIET)
            self.until_trial = min(self.until_trial, self.quiet)
        self.current = self.best
        self.start = -1.0
        self.work = 0.0
        self.best_seconds = self.best_work = 0.0  # the best size's windows since the last trial

    def threads(self) -> int:
        return self.current

    def pick_done(self, work: float) -> None:
        if self.full == 1:
            return
        now = time.perf_counter()
        if self.start < 0:
            self.start = now
            return
        self.work += work
        if now - self.start < self.WINDOW_S:
            return
        self._record(now - self.start, max(self.work, 1.0))
        self.work = 0.0
        self.start = time.perf_counter()

    def _record(self, seconds: float, work: float) -> None:
        if self.current == self.best:
            self.best_seconds += seconds
            self.best_work += work
            self.until_trial -= 1
            if self.until_trial <= 0:
                self.current = 1 if self.best == self.full else self.full
            self._save()
            return
        # A trial window of the other size just ended.
        if seconds / work < self.MARGIN * self.best_seconds / self.best_work:
            self.best, self.quiet = self.current, 1
        else:
            self.quiet = min(self.quiet * self.BACKOFF, self.MAX_QUIET)
        self.current, self.until_trial = self.best, self.quiet
        self.best_seconds = self.best_work = 0.0
        self._save()

    def _save(self) -> None:
        self._verdicts[self.full] = (self.best, self.quiet, self.until_trial, time.perf_counter())
