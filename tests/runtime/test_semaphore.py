"""Counting semaphores (runtime/semaphore.py): counts, the inverted down_trylock, timeouts,
the hand-over to the first waiter, up() from anywhere, and LDD3's scull with its classic
semaphore bugs and their fixed twins under every policy."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    DECLARE_MUTEX,
    DECLARE_MUTEX_LOCKED,
    DEFINE_SEMAPHORE,
    complete,
    down,
    down_interruptible,
    down_killable,
    down_timeout,
    down_trylock,
    init_completion,
    init_MUTEX,
    init_MUTEX_LOCKED,
    jiffies,
    kthread_run,
    local_irq_disable,
    local_irq_enable,
    mem_read,
    mem_write,
    msleep,
    raise_irq,
    request_irq,
    sema_init,
    semaphore,
    up,
    wait_for_completion,
)

from .synccases import RACE, assert_reported, assert_silent, free_buffer, shared_buffer

pytestmark = pytest.mark.timeout(120)


# -- semantics ----------------------------------------------------------------------------------
def test_initialisers_of_both_eras_set_the_count() -> None:
    assert DEFINE_SEMAPHORE("a").count == 1
    assert DEFINE_SEMAPHORE("n", 3).count == 3
    assert DECLARE_MUTEX("b").count == 1 and DECLARE_MUTEX_LOCKED("c").count == 0
    s = semaphore(5, "d")
    assert sema_init(s, 2) is s and s.count == 2
    assert init_MUTEX(s) is s and s.count == 1
    assert init_MUTEX_LOCKED(s) is s and s.count == 0
    assert sema_init("e", 4).count == 4
    with pytest.raises(KmemUsageError, match=r"sema_init: val\(=-1\)"):
        sema_init(s, -1)
    with pytest.raises(KmemUsageError, match=r"sema_init: sem\(=1.5\)"):
        sema_init(1.5, 1)


def test_down_trylock_has_the_kernels_inverted_sense() -> None:
    m = Machine(cpus=1, seed=1)
    s = sema_init("two", 2)

    def task() -> list[int]:
        out = [down_trylock(s), down_trylock(s), down_trylock(s), s.count]
        up(s)
        out += [s.count, down_interruptible(s), down_killable(s) if s.count else -99]
        up(s)
        up(s)
        return out

    assert m.run(task)[0] == [0, 0, 1, 0, 1, 0, -99]
    assert s.count == 2 and m.reports == []


def test_down_timeout_returns_minus_etime_when_nobody_ups() -> None:
    m = Machine(cpus=2, seed=3)
    s = DECLARE_MUTEX_LOCKED("never")
    t = DECLARE_MUTEX_LOCKED("later")

    def waiter() -> tuple[int, int, int]:
        j = jiffies()
        r = down_timeout(s, 20)
        return r, jiffies() - j, down_timeout(t, 1000)

    def upper() -> None:
        msleep(50)
        up(t)

    r, waited, r2 = m.run(waiter, upper)[0]
    assert r == -62 and waited >= 20 and r2 == 0
    assert s.waiters == [] and s.count == 0 and t.count == 0
    assert m.reports == []


def test_up_hands_the_unit_to_the_first_waiter_not_to_a_trylock() -> None:
    m = Machine(cpus=2, seed=2)
    s = DECLARE_MUTEX_LOCKED("handoff")
    got: list[str] = []

    def waiter() -> None:
        down(s)
        got.append("waiter")

    def upper() -> int:
        kthread_run(waiter)
        while not s.waiters:
            msleep(1)
        up(s)
        r = down_trylock(s)  # the unit is the waiter's, even before it runs
        msleep(1)
        return r

    assert m.run(upper)[0] == 1
    assert got == ["waiter"] and s.count == 0


@pytest.mark.parametrize("policy", ["random", "pct", "free", "virtual"])
def test_up_from_an_interrupt_handler_wakes_a_task_in_down(policy: str) -> None:
    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed, timeout=60)
        s = DECLARE_MUTEX_LOCKED("irq_sem")

        def driver() -> None:
            request_irq(9, lambda irq, dev: up(s), 0, "dev")
            raise_irq(9, 1)
            down(s)

        m.run(driver)
        assert m.reports == [] and s.count == 0


def test_bad_arguments_are_refused_before_any_side_effect() -> None:
    m = Machine(cpus=1, seed=1)
    s = sema_init("arg", 0)

    def task() -> None:
        with pytest.raises(KmemUsageError, match=r"down: sem\(=None\) must be a struct semaphore"):
            down(None)  # type: ignore[arg-type]
        with pytest.raises(KmemUsageError, match=r"down_timeout: timeout\(=None\)"):
            down_timeout(s, None)  # type: ignore[arg-type]
        with pytest.raises(KmemUsageError, match=r"up: sem\(="):
            up(init_completion())  # type: ignore[arg-type]
        assert s.count == 0 and s.waiters == []

    m.run(task)


def test_down_with_interrupts_disabled_is_a_sleep_in_atomic() -> None:
    def scenario(m: Machine) -> None:
        s = DECLARE_MUTEX("free_sem")

        def task() -> None:
            local_irq_disable()
            down(s)  # BUG: may sleep, even though it does not this time
            local_irq_enable()
            up(s)

        m.run(task)

    assert_reported(scenario, "sleep_in_atomic",
                    lambda ln: ln.startswith("BUG: sleeping function called from invalid context at ")
                    and "test_semaphore.py:" in ln)


# -- LDD3's scull: the semaphore around the device's buffer -----------------------------------------
def _scull(with_sem: bool) -> object:
    """scull_write() by two writers: down_interruptible(&dev->sem), update the buffer and its
    size, up(&dev->sem). Without the semaphore, KCSAN sees the race."""
    def scenario(m: Machine) -> None:
        p = shared_buffer(m)
        sem = DECLARE_MUTEX("scull_sem")

        def scull_write(data: bytes) -> None:
            if with_sem and down_interruptible(sem):
                return  # -ERESTARTSYS
            size = mem_read(p, 1)[0]
            mem_write(p + 1 + size, data)
            mem_write(p, bytes([size + len(data)]))
            if with_sem:
                up(sem)

        m.run(lambda: scull_write(b"abc"), lambda: scull_write(b"xyz"), names=["writer1", "writer2"])
        free_buffer(m, p)
    return scenario


def test_scull_with_its_semaphore_is_race_free() -> None:
    assert_silent(_scull(True), kcsan=True)


def test_scull_without_its_semaphore_races() -> None:
    assert_reported(_scull(False), RACE, lambda ln: ln.startswith("=" * 10), kcsan=True)


# -- AB-BA with two semaphores used as mutexes -------------------------------------------------
def _abba(one_order: bool) -> object:
    """Two tasks take two semaphores. The buggy pair takes them in opposite orders, each
    holding its first before either tries its second (two completions make that certain);
    the fixed pair takes both in one order."""
    def scenario(m: Machine) -> None:
        a, b = DECLARE_MUTEX("sem_a"), DECLARE_MUTEX("sem_b")
        held1, held2 = init_completion("held1"), init_completion("held2")

        def t1() -> None:
            down(a)
            if not one_order:
                complete(held1)
                wait_for_completion(held2)
            down(b)
            up(b)
            up(a)

        def t2() -> None:
            first, second = (a, b) if one_order else (b, a)
            down(first)
            if not one_order:
                complete(held2)
                wait_for_completion(held1)
            down(second)
            up(second)
            up(first)

        m.run(t1, t2)
    return scenario


def test_abba_with_two_semaphores_is_a_deadlock_naming_both() -> None:
    ms = assert_reported(_abba(False), "deadlock",
                         lambda ln: ln == "INFO: task hung: every task is blocked and nothing can wake one "
                                         "(deadlock)")
    for m in ms:
        text = m.reports_of("deadlock")[0].text
        assert "t1/" in text and "sleeps on semaphore sem_b (count 0, last down by t2/" in text
        assert "t2/" in text and "sleeps on semaphore sem_a (count 0, last down by t1/" in text


def test_two_semaphores_taken_in_one_order_are_silent() -> None:
    assert_silent(_abba(True))


def test_the_event_log_shows_downs_ups_and_who_woke_whom() -> None:
    """Machine(events=True): down/up are lock/unlock events, the hand-over a wake-up; rwsems
    and rwlocks log theirs too."""
    from percpu_kmem.linux import down_read, init_rwsem, read_lock, read_unlock, rwlock_init, up_read

    sem = DECLARE_MUTEX_LOCKED("ev_sem")
    rw = init_rwsem("ev_rwsem")
    rl = rwlock_init("ev_rwlock")

    def waiter() -> None:
        down(sem)
        down_read(rw)
        up_read(rw)
        read_lock(rl)
        read_unlock(rl)

    def upper() -> None:
        msleep(1)
        up(sem)

    m = Machine(cpus=2, seed=1, events=True, boot=False)
    m.run(waiter, upper)
    whats = [e.what for e in m.events]
    i = whats.index("down: sleeps on semaphore ev_sem (count 0)")
    j = whats.index("up(ev_sem) wakes waiter/1")
    k = whats.index("down(ev_sem)")
    assert i < j < k and whats.index("up(ev_sem)") < j
    for what in ("down_read(ev_rwsem)", "up_read(ev_rwsem)", "read_lock(ev_rwlock)", "read_unlock(ev_rwlock)"):
        assert what in whats, what
