"""Read/write semaphores (runtime/rwsem.py): readers share, the writer excludes, 2.6's
fairness (a waiting writer blocks new readers), downgrade_write, the debug warnings, KCSAN's
reader/writer edges, and the recursive down_read() deadlock with its fixed twin."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    DECLARE_RWSEM,
    complete,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    downgrade_write,
    init_completion,
    init_rwsem,
    kthread_run,
    mem_read,
    mem_write,
    msleep,
    rw_semaphore,
    rwsem_is_locked,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    up_read,
    up_write,
    wait_for_completion,
)

from .synccases import RACE, assert_reported, assert_silent, free_buffer, shared_buffer

pytestmark = pytest.mark.timeout(120)


def test_readers_share_and_the_writer_excludes() -> None:
    m = Machine(cpus=1, seed=1)
    sem = DECLARE_RWSEM("rw")

    def task() -> list[int]:
        down_read(sem)
        out = [down_read_trylock(sem), down_write_trylock(sem), rwsem_is_locked(sem), sem.activity]
        up_read(sem)
        up_read(sem)
        out += [rwsem_is_locked(sem), down_write_trylock(sem), down_read_trylock(sem), sem.activity]
        up_write(sem)
        return out

    assert m.run(task)[0] == [1, 0, 1, 2, 0, 1, 0, -1]
    assert sem.activity == 0 and m.reports == []


def test_a_waiting_writer_blocks_new_readers_and_downgrade_lets_readers_in() -> None:
    m = Machine(cpus=2, seed=2)
    sem = init_rwsem("fair")
    order: list[str] = []

    def writer() -> None:
        down_write(sem)
        order.append("writer in")
        downgrade_write(sem)
        order.append("writer downgraded")
        msleep(1)
        up_read(sem)

    def late_reader() -> None:
        down_read(sem)
        order.append("late reader in")
        up_read(sem)

    def first_reader() -> list[int]:
        down_read(sem)
        kthread_run(writer)
        while not sem.waiters:
            msleep(1)
        blocked = down_read_trylock(sem)  # a writer waits: no new reader
        kthread_run(late_reader)
        while len(sem.waiters) < 2:
            msleep(1)
        up_read(sem)  # the writer gets in, then its downgrade lets the late reader in
        msleep(5)
        return [blocked]

    assert m.run(first_reader)[0] == [0]
    assert order[0] == "writer in" and set(order[1:]) == {"writer downgraded", "late reader in"}
    assert sem.activity == 0 and m.reports == []


def test_unbalanced_ups_get_the_debug_rwsems_warning_and_change_nothing() -> None:
    m = Machine(cpus=1, seed=1)
    sem = init_rwsem("unbalanced")

    def task() -> None:
        up_read(sem)
        down_read(sem)
        up_write(sem)
        downgrade_write(sem)
        up_read(sem)

    m.run(task)
    reps = m.reports_of("rwsem_warning")
    assert [r.lines[1].split(":")[0] for r in reps] == ["DEBUG_RWSEMS_WARN_ON(tmp < 0)",
                                                        "DEBUG_RWSEMS_WARN_ON(sem->owner != current)",
                                                        "DEBUG_RWSEMS_WARN_ON(sem->owner != current)"]
    assert reps[0].lines[0].startswith("WARNING: CPU: 0 PID: ")
    assert sem.activity == 0 and len(m.reports) == 3


def test_bad_arguments_are_refused() -> None:
    m = Machine(cpus=1, seed=1)

    def task() -> None:
        with pytest.raises(KmemUsageError, match=r"down_read: sem\(=None\) must be a struct rw_semaphore"):
            down_read(None)  # type: ignore[arg-type]
        with pytest.raises(KmemUsageError, match="init_rwsem: name"):
            init_rwsem(3)

    m.run(task)
    s = rw_semaphore("x")
    assert init_rwsem(s) is s


# -- the classic bug: a reader takes the rwsem again while a writer waits -----------------------
def _recursive_read(recurses: bool) -> object:
    """A reader calls a helper that takes the rwsem for reading again. A writer comes in
    between (a completion and a sleep make it wait before the second down_read): with 2.6's
    fair rwsem the inner down_read() queues behind the writer, which waits for the outer
    read hold. The fixed reader's helper expects the rwsem held and takes nothing."""
    def scenario(m: Machine) -> None:
        sem = init_rwsem("mm_sem")
        reading = init_completion("reading")

        def helper() -> None:
            if recurses:
                down_read(sem)  # BUG: recursive read lock
                up_read(sem)

        def reader() -> None:
            down_read(sem)
            complete(reading)
            msleep(5)  # the writer queues meanwhile
            helper()
            up_read(sem)

        def writer() -> None:
            wait_for_completion(reading)
            down_write(sem)
            up_write(sem)

        m.run(reader, writer)
    return scenario


def test_recursive_down_read_with_a_waiting_writer_deadlocks() -> None:
    ms = assert_reported(_recursive_read(True), "deadlock",
                         lambda ln: ln == "INFO: task hung: every task is blocked and nothing can wake one "
                                         "(deadlock)")
    for m in ms:
        text = m.reports_of("deadlock")[0].text
        assert "sleeps on rw_semaphore mm_sem (1 reader: reader/" in text and ", 2 waiting)" in text


def test_one_read_hold_with_a_waiting_writer_is_silent() -> None:
    assert_silent(_recursive_read(False))


# -- KCSAN: readers are ordered with writers, not with each other --------------------------------
def _readers_and_writer(readers_write: bool) -> object:
    def scenario(m: Machine) -> None:
        p = shared_buffer(m)
        sem = init_rwsem("data_sem")

        def writer() -> None:
            down_write(sem)
            mem_write(p, b"\x07")
            up_write(sem)

        def reader() -> None:
            down_read(sem)
            if readers_write:
                n = mem_read(p + 1, 1)[0]
                mem_write(p + 1, bytes([n + 1]))  # BUG: a counter updated under the read lock
            else:
                mem_read(p, 1)
            up_read(sem)

        # the buggy pair is two readers alone: a writer between them would order them
        m.run(reader, reader) if readers_write else m.run(writer, reader, reader)
        free_buffer(m, p)
    return scenario


def test_readers_and_a_writer_under_the_rwsem_are_race_free() -> None:
    assert_silent(_readers_and_writer(False), cpus=3, kcsan=True)


def test_two_readers_writing_under_down_read_race() -> None:
    assert_reported(_readers_and_writer(True), RACE, lambda ln: ln.startswith("=" * 10), cpus=3, kcsan=True)


def test_down_read_under_a_spinlock_is_a_sleep_in_atomic() -> None:
    def scenario(m: Machine) -> None:
        lock = spin_lock_init("outer")
        sem = init_rwsem("inner")

        def task() -> None:
            spin_lock(lock)
            down_read(sem)  # BUG: may sleep, even though it does not this time
            up_read(sem)
            spin_unlock(lock)

        m.run(task)

    assert_reported(scenario, "sleep_in_atomic",
                    lambda ln: ln.startswith("BUG: sleeping function called from invalid context at ")
                    and "test_rwsem.py:" in ln)


# -- lockdep: locking-selftest.c's rsem cases --------------------------------------------------------
def test_lockdep_reports_a_recursive_down_read_and_lets_it_through() -> None:
    """rsem_AA1 of lib/locking-selftest.c: down_read(X); down_read(X) is a lockdep FAILURE
    (an rwsem's read side is not recursive); with no writer waiting, it does not block."""
    m = Machine(cpus=1, seed=1, lockdep=True)
    sem = init_rwsem("X")

    def task() -> None:
        down_read(sem)
        down_read(sem)
        up_read(sem)
        up_read(sem)

    m.run(task)
    (rep,) = m.reports
    assert rep.kind == "lockdep_recursive"
    assert rep.lines[1] == "WARNING: possible recursive locking detected"
    assert any(ln.startswith("X (X){") and "-{3:3}, at: " in ln for ln in rep.lines)
    assert sem.activity == 0


def test_lockdep_reports_two_rwsems_taken_in_both_orders() -> None:
    m = Machine(cpus=1, seed=1, lockdep=True)
    a, b = init_rwsem("A"), init_rwsem("B")

    def ab() -> None:
        down_write(a)
        down_read(b)
        up_read(b)
        up_write(a)

    def ba() -> None:
        down_read(b)
        down_write(a)
        up_write(a)
        up_read(b)

    m.run(ab)
    assert m.reports == []
    m.run(ba)
    (rep,) = m.reports
    assert rep.kind == "lockdep_circular" and rep.lines[1] == "WARNING: possible circular locking dependency detected"


def test_lockdep_is_silent_on_nested_rwsems_in_one_order_and_reports_a_foreign_up() -> None:
    m = Machine(cpus=1, seed=1, lockdep=True)
    a, b = init_rwsem("A"), init_rwsem("B")

    def ab() -> None:
        down_read(a)
        if down_write_trylock(b):
            up_write(b)
        down_write(b)
        up_write(b)
        up_read(a)

    m.run(ab, ab)
    assert m.reports == []
    m.run(lambda: up_write(b))
    assert [r.kind for r in m.reports] == ["lockdep_bad_unlock", "rwsem_warning"]
