"""The thread pool: reuse across runs, and threads given back after a large run or idleness."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.runtime import threadpool

pytestmark = pytest.mark.timeout(60)


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def non_pool_threads() -> int:
    return sum(1 for t in threading.enumerate() if not t.name.startswith("percpu_kmem-"))


@pytest.fixture
def limits() -> Iterator[tuple[int, float]]:
    """The pool's limits, restored after the test."""
    old = threadpool.configure()
    yield old
    threadpool.configure(max_idle=old[0], idle_timeout=old[1])


def test_a_run_of_1000_tasks_gives_its_threads_back(limits: tuple[int, float]) -> None:
    # (policy "free" is left out: its start race, below, loses tasks of a 1,000-task run.)
    cap = limits[0]
    assert cap == threadpool.DEFAULT_MAX_IDLE <= max(16, 4 * (os.cpu_count() or 1))
    others = non_pool_threads()
    created = threadpool.pool_size()
    results = Machine(cpus=2, seed=3).run(*([lambda: 7] * 1000))
    assert results == [7] * 1000
    # Every task waits for the baton in its own thread: all 1,000 threads existed at once.
    assert threadpool.pool_size() - created >= 1000 - cap
    assert wait_until(lambda: threading.active_count() <= others + cap), \
        f"{threading.active_count()} threads left, {others} outside the pool, cap {cap}"
    assert threadpool.live_threads() <= cap and threadpool.idle_threads() <= cap


def test_parked_threads_are_reused_after_a_large_run(limits: tuple[int, float]) -> None:
    Machine(cpus=2).run(*([lambda: None] * 200))
    assert wait_until(lambda: threadpool.live_threads() <= limits[0])
    created = threadpool.pool_size()
    for seed in range(30):
        Machine(cpus=2, seed=seed, boot=False).run(lambda: None, lambda: None)
    assert threadpool.pool_size() - created <= 2


def test_idle_threads_exit_after_the_idle_timeout(limits: tuple[int, float]) -> None:
    # Workers parked before this test keep their own (default) timeout: wait that long too.
    threadpool.configure(idle_timeout=0.05)
    others = non_pool_threads()
    Machine(cpus=2, policy="pct", seed=1).run(*([lambda: None] * 6))
    assert wait_until(lambda: threadpool.live_threads() == 0, timeout=limits[1] + 5.0)
    assert wait_until(lambda: threading.active_count() <= others)
    # ...and the pool starts threads again when work comes back.
    assert Machine(cpus=2, seed=2).run(lambda: 1, lambda: 2) == [1, 2]


def test_cap_zero_keeps_no_parked_thread(limits: tuple[int, float]) -> None:
    threadpool.configure(max_idle=0)
    Machine(cpus=2, seed=5).run(lambda: None, lambda: None)
    assert wait_until(lambda: threadpool.idle_threads() == 0 and threadpool.live_threads() == 0)


def test_a_parked_thread_does_not_keep_the_last_machine_alive() -> None:
    m = Machine(cpus=2, boot=False)
    m.run(lambda: None, lambda: None)
    ref = weakref.ref(m)
    del m
    assert wait_until(lambda: gc.collect() >= 0 and ref() is None, timeout=2.0)


@pytest.mark.parametrize("kw", [dict(max_idle=-1), dict(max_idle=2.5), dict(max_idle=True),
                                dict(idle_timeout=0), dict(idle_timeout="1")])
def test_configure_refuses_bad_limits_and_changes_nothing(kw: dict, limits: tuple[int, float]) -> None:
    with pytest.raises(KmemUsageError, match="must be"):
        threadpool.configure(**kw)
    assert threadpool.configure() == limits


# -- a free run counts every task before any starts ------------------------------------------------
def test_free_run_keeps_tasks_that_start_after_the_first_one_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_submit = threadpool.submit
    first = [True]

    def slow_submitter(job: Callable[[], None]) -> None:
        """Model a descheduled submitter: the first task runs to its end before the next is submitted."""
        if not first[0]:
            return real_submit(job)
        first[0] = False
        done = threading.Event()

        def tracked() -> None:
            try:
                job()
            finally:
                done.set()
        real_submit(tracked)
        done.wait(0.5)  # bounded: an engine that holds the first task back must not hang here

    monkeypatch.setattr(threadpool, "submit", slow_submitter)
    m = Machine(cpus=2, policy="free", seed=0)
    assert m.run(lambda: "a", lambda: "b", lambda: "c") == ["a", "b", "c"]


def _run_in_child(q: object) -> None:
    m = Machine(cpus=2, boot=False)
    q.put((m.run(lambda: 1, lambda: 2), threadpool.idle_threads() >= 0))  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="fork is POSIX")
@pytest.mark.timeout(60)
def test_a_forked_child_runs_machines_with_a_pool_of_its_own() -> None:
    """The parent's parked workers do not exist in a forked child: handing them a job
    would hang the child's first run. The child starts with an empty pool."""
    import multiprocessing
    Machine(cpus=2, boot=False).run(lambda: 1, lambda: 2)  # the parent has parked workers
    assert threadpool.idle_threads() > 0
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_run_in_child, args=(q,))
    p.start()
    assert q.get(timeout=30) == ([1, 2], True)
    p.join(30)
    assert p.exitcode == 0
