"""kthread_stop()/kthread_should_stop() (runtime/kernel.py): the stop flag, the wake-up, the
wait for the exit and its result, and the thread that never looks at the flag."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    current,
    init_waitqueue_head,
    kthread_create,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    msleep,
    wait_event_interruptible,
    wake_up,
    wake_up_process,
)

from .synccases import assert_reported, assert_silent

pytestmark = pytest.mark.timeout(120)


def test_kthread_stop_returns_what_the_thread_returned() -> None:
    m = Machine(cpus=2, seed=1)

    def poller(limit: int) -> int:
        n = 0
        while not kthread_should_stop():
            msleep(1)
            n += 1
        assert n >= 1 and limit == 7
        return 42

    def owner() -> tuple[object, ...]:
        t = kthread_run(poller, 7, "poller")
        msleep(10)
        return kthread_stop(t), kthread_should_stop()

    assert m.run(owner)[0] == (42, False)
    assert m.reports == []


@pytest.mark.parametrize("policy", ["random", "pct", "free", "virtual"])
def test_a_thread_stopped_before_it_ran_returns_minus_eintr(policy: str) -> None:
    """kthread(): threadfn runs only if no kthread_stop() came first; else the result is
    -EINTR. Which one happens depends on the schedule: both are right, nothing else is."""
    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed, timeout=60)
        ran: list[bool] = []

        def fn() -> int:
            ran.append(True)
            return 5

        def owner() -> object:
            return kthread_stop(kthread_run(fn))

        (r,) = m.run(owner)
        assert (r, ran) in ((5, [True]), (-4, [])), (policy, seed, r, ran)
        assert m.reports == []


def test_kthread_stop_refuses_a_task_kthread_run_did_not_start() -> None:
    m = Machine(cpus=1, seed=1)

    def task() -> None:
        with pytest.raises(KmemUsageError, match="kthread_stop: t.*was not started by kthread_run"):
            kthread_stop(current())
        with pytest.raises(KmemUsageError, match=r"kthread_stop: t\(=None\)"):
            kthread_stop(None)  # type: ignore[arg-type]

    m.run(task)
    assert m.reports == []


def _worker(checks_stop: bool) -> object:
    """A worker thread that sleeps until there is work. The buggy one waits for work only, so
    kthread_stop()'s wake-up finds it asleep again: the stopper waits for ever."""
    def scenario(m: Machine) -> None:
        wq = init_waitqueue_head("work_wq")
        work: list[int] = []

        def worker() -> int:
            done = 0
            while True:
                if checks_stop:
                    wait_event_interruptible(wq, lambda: bool(work) or kthread_should_stop())
                    if kthread_should_stop():
                        return done
                else:
                    wait_event_interruptible(wq, lambda: bool(work))  # BUG: never asks
                done += work.pop()

        def module_exit() -> object:
            t = kthread_run(worker, namefmt="worker")
            work.append(1)
            wake_up(wq)
            msleep(5)
            return kthread_stop(t)

        m.run(module_exit)
    return scenario


def test_kthread_stop_of_a_thread_that_never_checks_hangs_the_stopper() -> None:
    ms = assert_reported(_worker(False), "deadlock",
                         lambda ln: ln == "INFO: task hung: every task is blocked and nothing can wake one "
                                         "(deadlock)")
    for m in ms:
        text = m.reports_of("deadlock")[0].text
        assert "module_exit/" in text and "sleeps on the exit of kthread worker/" in text
        assert "sleeps on wait queue work_wq" in text


def test_kthread_stop_of_a_thread_that_checks_is_silent() -> None:
    assert_silent(_worker(True))


# -- kthread_create: a thread that waits for its first wake-up -----------------------------------------
@pytest.mark.parametrize("policy", ["random", "pct", "free", "virtual"])
def test_kthread_create_runs_the_thread_only_after_wake_up_process(policy: str) -> None:
    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed, timeout=60)
        ran: list[str] = []

        def fn(tag: str) -> int:
            ran.append(tag)
            while not kthread_should_stop():
                msleep(1)
            return 7

        def owner() -> tuple[object, ...]:
            t = kthread_create(fn, "woken", "created")
            msleep(3)
            before = list(ran)
            wake_up_process(t)
            msleep(3)
            return before, kthread_stop(t), list(ran)

        assert m.run(owner)[0] == ([], 7, ["woken"]), (policy, seed)
        assert m.reports == []


def test_kthread_stop_of_a_created_thread_never_woken_returns_minus_eintr() -> None:
    m = Machine(cpus=2, seed=1)
    ran: list[bool] = []

    def owner() -> object:
        t = kthread_create(lambda: ran.append(True), namefmt="never")
        return kthread_stop(t)

    assert m.run(owner)[0] == -4 and ran == []
    assert m.reports == []


def test_a_created_thread_nobody_wakes_is_named_in_the_deadlock_report() -> None:
    m = Machine(cpus=2, seed=1)
    m.run(lambda: kthread_create(lambda: None, namefmt="leaked") and None)
    (rep,) = m.reports
    assert rep.kind == "deadlock" and "sleeps on its first wake_up_process() (kthread_create of leaked/" in rep.text
