"""Spinlock debugging, mutexes, wait queues, timers and deadlock detection."""

from __future__ import annotations

import pytest

from percpu_kmem import (
    TASK_INTERRUPTIBLE,
    Deadlock,
    Machine,
    current,
    init_waitqueue_head,
    jiffies,
    kthread_run,
    msleep,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    preempt_disable,
    preempt_enable,
    preempt_point,
    schedule_timeout,
    set_current_state,
    spin_lock,
    spin_lock_init,
    spin_trylock,
    spin_unlock,
    wait_event,
    wait_event_timeout,
    wake_up,
    wake_up_process,
)
from percpu_kmem.scenarios import irq_lock
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(60)


def _irq_lock_scenario(m: Machine, irqsave: bool) -> None:
    irq_lock(m, tasks=2, iterations=10, fixed=irqsave)


def test_irq_taking_a_lock_its_cpu_holds_is_spinlock_recursion_not_a_hang() -> None:
    for seed in range(30):
        m = Machine(cpus=2, seed=seed)
        _irq_lock_scenario(m, irqsave=False)
        reps = m.reports_of("spinlock_recursion")
        if reps:
            break
    else:
        pytest.fail("no seed in 0..29 interrupted the critical section")
    rep = reps[0]
    assert rep.lines[0] == f"BUG: spinlock recursion on CPU#{rep.cpu}, worker/{rep.pid}"
    assert rep.lines[1] == f" lock: dev_lock, .magic: dead4ead, .owner: worker/{rep.pid}, .owner_cpu: {rep.cpu}"
    assert any(ln.startswith(" handler (") for ln in rep.lines)
    assert rep.preempt_count & 0x10000  # reported from hardirq context


def test_irqsave_critical_sections_are_never_interrupted() -> None:
    for seed in range(200):
        m = Machine(cpus=2, seed=seed)
        _irq_lock_scenario(m, irqsave=True)
        assert m.reports == [], f"seed={seed}: {m.reports[0].text}"
        m.check()


def test_unlock_of_unlocked_lock_and_wrong_owner() -> None:
    m = Machine(cpus=2, seed=1)
    lock = spin_lock_init("l")
    shared = spin_lock_init("s")

    def lonely() -> None:
        spin_unlock(lock)

    m.run(lonely)
    # debug_spin_unlock reports and spin_bug() turns debug_locks off, so preempt_enable()'s
    # DEBUG_LOCKS_WARN_ON(val > preempt_count()) stays silent: one splat, as in the kernel
    assert [r.kind for r in m.reports] == ["spinlock_already_unlocked"]
    assert m.reports[0].lines[0].startswith("BUG: spinlock already unlocked on CPU#")
    m.run(preempt_enable)  # a new run: debug_locks is on again, the underflow is warned
    assert m.reports[-1].kind == "preempt_count_underflow"

    m2 = Machine(cpus=1, seed=1, mean_run=1000)

    def taker() -> None:
        spin_lock(shared)
        preempt_enable()  # hand it over while still "holding" it (a bug on purpose)
        kthread_run(releaser, None, "releaser")
        msleep(1)

    def releaser(_: object) -> None:
        preempt_disable()
        spin_unlock(shared)

    m2.run(taker)
    assert any(r.kind == "spinlock_wrong_owner" for r in m2.reports)
    assert not shared.locked()


def test_trylock() -> None:
    lock = spin_lock_init()
    out = []

    def body() -> None:
        out.append(spin_trylock(lock))
        out.append(spin_trylock(lock) if False else 0)
        spin_unlock(lock)

    Machine(cpus=1).run(body)
    assert out == [1, 0]


def test_abba_deadlock_is_reported_with_both_waiters() -> None:
    def scenario(m: Machine) -> None:
        a, b = spin_lock_init("A"), spin_lock_init("B")

        def t1() -> None:
            spin_lock(a)
            preempt_point()
            spin_lock(b)
            spin_unlock(b)
            spin_unlock(a)

        def t2() -> None:
            spin_lock(b)
            preempt_point()
            spin_lock(a)
            spin_unlock(a)
            spin_unlock(b)

        m.run(t1, t2)

    for seed in range(100):
        m = Machine(cpus=2, seed=seed)
        scenario(m)
        dl = m.reports_of("deadlock")
        if dl:
            break
    else:
        pytest.fail("no ABBA deadlock in 100 seeds")
    text = dl[0].text
    assert "t1/" in text and "t2/" in text
    assert "spins on CPU#" in text and "for spinlock B held by t2/" in text and "for spinlock A held by t1/" in text
    # raise mode turns it into an exception carrying the replay
    with pytest.raises(Deadlock) as info:
        scenario(Machine(cpus=2, seed=seed, on_bug="raise"))
    assert "replay" in info.value.__notes__[0]


def test_mutex_abba_deadlock_names_both_sleepers() -> None:
    for seed in range(100):
        m = Machine(cpus=2, seed=seed)
        a, b = mutex_init("A"), mutex_init("B")

        def t1() -> None:
            mutex_lock(a)
            preempt_point()
            mutex_lock(b)
            mutex_unlock(b)
            mutex_unlock(a)

        def t2() -> None:
            mutex_lock(b)
            preempt_point()
            mutex_lock(a)
            mutex_unlock(a)
            mutex_unlock(b)

        m.run(t1, t2)
        if m.reports_of("deadlock"):
            text = m.reports_of("deadlock")[0].text
            assert "sleeps on mutex B held by t2/" in text and "sleeps on mutex A held by t1/" in text
            return
    pytest.fail("no mutex ABBA deadlock in 100 seeds")


def test_mutex_serialises_and_hands_over() -> None:
    def scenario(m: Machine) -> None:
        mu = mutex_init("m")
        inside = []
        total = []

        def worker() -> None:
            for _ in range(5):
                mutex_lock(mu)
                inside.append(1)
                assert len(inside) == 1
                preempt_point()
                msleep(1)
                inside.pop()
                total.append(1)
                mutex_unlock(mu)

        m.run(worker, worker, worker)
        assert len(total) == 15 and m.reports == []

    explore(scenario, seeds=range(10), policies=("random", "pct", "virtual", "free"), cpus=2)


def test_wait_event_is_woken_by_another_cpu() -> None:
    def scenario(m: Machine) -> None:
        wq = init_waitqueue_head("wq")
        items: list[int] = []
        got: list[int] = []

        def consumer() -> None:
            for _ in range(5):
                wait_event(wq, lambda: items)
                got.append(items.pop(0))

        def producer() -> None:
            for i in range(5):
                items.append(i)
                wake_up(wq)
                preempt_point()

        m.run(consumer, producer)
        assert got == [0, 1, 2, 3, 4]

    explore(scenario, seeds=range(20), policies=("random", "pct", "virtual", "free"), cpus=2)


def test_timeouts_run_on_virtual_time() -> None:
    m = Machine(cpus=2)
    wq = init_waitqueue_head()
    flag: list[int] = []

    def waiter() -> tuple[int, int, int]:
        left = wait_event_timeout(wq, lambda: flag, 100)
        expired = wait_event_timeout(wq, lambda: False, 5000)  # 5 s: costs no wall time
        return left, expired, jiffies()

    def waker() -> None:
        msleep(10)
        flag.append(1)
        wake_up(wq)

    (res, _) = m.run(waiter, waker)
    assert res == (90, 0, 5010)


def test_schedule_timeout_and_wake_up_process() -> None:
    m = Machine(cpus=2)
    sleeper_task = []

    def sleeper() -> int:
        sleeper_task.append(current())
        set_current_state(TASK_INTERRUPTIBLE)  # the kernel idiom: the state first
        return schedule_timeout(1000)

    def waker() -> None:
        msleep(3)
        wake_up_process(sleeper_task[0])

    left, _ = m.run(sleeper, waker)
    assert left == 997


def test_sleeping_with_preemption_off_is_scheduling_while_atomic() -> None:
    m = Machine(cpus=1)

    def bad() -> None:
        preempt_disable()
        msleep(5)
        preempt_enable()

    m.run(bad)
    kinds = [r.kind for r in m.reports]
    assert kinds == ["sleep_in_atomic", "scheduling_while_atomic"]
    # today's kernels print the count after schedule()'s own preempt_disable()
    assert m.reports[1].lines[0] == f"BUG: scheduling while atomic: bad/{m.reports[1].pid}/0x00000002"
    m.check()  # the CPU came back quiet


def test_all_asleep_forever_is_a_deadlock_not_a_hang() -> None:
    for policy in ("random", "free"):
        m = Machine(cpus=2, policy=policy)
        wq = init_waitqueue_head("never")

        def forever() -> None:
            wait_event(wq, lambda: False)

        m.run(forever, forever)
        (rep,) = m.reports_of("deadlock")
        assert rep.text.count("sleeps on wait queue never") == 2


def test_free_policy_abba_deadlock_is_reported() -> None:
    for seed in range(30):
        m = Machine(cpus=2, policy="free", seed=seed)
        a, b = spin_lock_init("A"), spin_lock_init("B")
        import threading
        barrier = threading.Barrier(2, timeout=5)

        def t1() -> None:
            spin_lock(a)
            barrier.wait()
            spin_lock(b)
            spin_unlock(b)
            spin_unlock(a)

        def t2() -> None:
            spin_lock(b)
            barrier.wait()
            spin_lock(a)
            spin_unlock(a)
            spin_unlock(b)

        m.run(t1, t2)
        assert m.reports_of("deadlock"), "both hold one lock and want the other: must deadlock"
        return
