"""A pool of OS threads reused across runs, that gives idle threads back.

Starting a thread costs more than a whole small scenario, and seed exploration
runs thousands of scenarios: tasks borrow a pooled thread and give it back when
they end. The pool is process-wide but holds no machine state: a worker drops
its job (and so the machine the job's closure holds) before it parks.

What is kept: reuse on the exploration path. A run of T tasks on C CPUs needs
about T + C threads (a task thread each, an idle task per CPU); the next run
finds them parked and starts none.

What is bounded (the pool gives threads back):
- at most ``max_idle`` workers stay parked; a worker that finishes its job when
  that many are already parked exits instead. The default, ``DEFAULT_MAX_IDLE``,
  is 4 per host CPU with a floor of 16: enough for a 4-CPU machine running
  several tasks per CPU, and "a few per CPU" after a run of 1,000 tasks (which
  needs 1,000 threads at once: every task is a thread for its whole life);
- a parked worker that gets no job within ``idle_timeout`` seconds
  (``DEFAULT_IDLE_TIMEOUT``, 2 s) exits, so a process that stopped exploring ends
  up with no pool threads at all. Back-to-back runs reuse threads long before that.

Parked workers are reused last-in first-out: the most recently used threads are
warm and the rest age out. ``configure`` changes both limits (tests use it). The child
of a fork starts with an empty pool (the parent's threads do not exist there).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from .errors import KmemUsageError

DEFAULT_MAX_IDLE = max(16, 4 * (os.cpu_count() or 1))
DEFAULT_IDLE_TIMEOUT = 2.0

_idle: list[_Worker] = []  # parked workers, most recently parked last
_idle_lock = threading.Lock()
_count = 0  # threads created so far
_live = 0  # pool threads alive (running a job or parked)
_max_idle = DEFAULT_MAX_IDLE
_idle_timeout = DEFAULT_IDLE_TIMEOUT

_Empty = queue.Empty


class _Worker:
    __slots__ = ("jobs", "thread")

    def __init__(self, first: Callable[[], None]) -> None:
        global _count, _live
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.jobs.put(first)
        with _idle_lock:
            _count += 1
            _live += 1
            n = _count
        self.thread = threading.Thread(target=self._loop, name=f"percpu_kmem-{n}", daemon=True)
        try:
            self.thread.start()
        except BaseException:
            with _idle_lock:
                _live -= 1
            raise

    def _loop(self) -> None:
        global _live
        jobs = self.jobs
        idle = _idle
        lock = _idle_lock
        try:
            while True:
                try:
                    job = jobs.get(timeout=_idle_timeout)
                except _Empty:
                    with lock:
                        if self in idle:  # nobody took us meanwhile: leave
                            idle.remove(self)
                            return
                    continue  # a submitter popped us and its job is on its way
                try:
                    job()
                except BaseException:
                    pass
                del job  # do not keep the last run's machine alive while parked
                with lock:
                    if len(idle) >= _max_idle:
                        return
                    idle.append(self)
        finally:
            with lock:
                _live -= 1


def submit(job: Callable[[], None]) -> None:
    """Run ``job`` on a pooled thread (a parked one if any, else a new one)."""
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        _Worker(job)
    else:
        worker.jobs.put(job)


def _forget_after_fork() -> None:
    """In the child of a fork only the forking thread exists: the parked workers of the
    parent are entries without threads, and a job handed to one would never run (the
    child's first run would hang). The child starts with an empty pool."""
    global _idle_lock, _live
    _idle_lock = threading.Lock()
    _idle.clear()
    _live = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def pool_size() -> int:
    """Threads created so far (for tests that check threads are reused)."""
    return _count


def live_threads() -> int:
    """Pool threads alive now: running a job or parked."""
    return _live


def idle_threads() -> int:
    """Pool threads parked now, waiting for a job."""
    return len(_idle)


def configure(*, max_idle: int | None = None, idle_timeout: float | None = None) -> tuple[int, float]:
    """Set the idle cap and the idle timeout (seconds); return the previous pair.

    A lower cap takes effect as workers finish their jobs; a new timeout as
    parked workers next wait (the ones already waiting keep theirs).
    """
    global _max_idle, _idle_timeout
    if max_idle is not None and (not isinstance(max_idle, int) or isinstance(max_idle, bool) or max_idle < 0):
        raise KmemUsageError(f"max_idle(={max_idle!r}) must be an int >= 0")
    if idle_timeout is not None and (not isinstance(idle_timeout, (int, float)) or not idle_timeout > 0):
        raise KmemUsageError(f"idle_timeout(={idle_timeout!r}) must be a number of seconds > 0")
    old = (_max_idle, _idle_timeout)
    if max_idle is not None:
        _max_idle = max_idle
    if idle_timeout is not None:
        _idle_timeout = float(idle_timeout)
    return old


__all__ = ["DEFAULT_MAX_IDLE", "DEFAULT_IDLE_TIMEOUT", "submit", "pool_size", "live_threads", "idle_threads",
           "configure"]
