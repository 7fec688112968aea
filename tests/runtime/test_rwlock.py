"""rwlock_t (runtime/rwlock.py): readers share and may recurse, the writer excludes, the
_irq/_irqsave/_bh forms, CONFIG_DEBUG_SPINLOCK's rwlock checks, and the classic rwlock bug
(a writer in an interrupt handler, readers with interrupts on) with its fixed twin."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    DEFINE_RWLOCK,
    in_softirq,
    irqs_disabled,
    mem_read,
    mem_write,
    preempt_count,
    raise_irq,
    raw_smp_processor_id,
    read_lock,
    read_lock_bh,
    read_lock_irq,
    read_lock_irqsave,
    read_trylock,
    read_unlock,
    read_unlock_bh,
    read_unlock_irq,
    read_unlock_irqrestore,
    request_irq,
    rwlock_init,
    write_lock,
    write_lock_bh,
    write_lock_irq,
    write_lock_irqsave,
    write_trylock,
    write_unlock,
    write_unlock_bh,
    write_unlock_irq,
    write_unlock_irqrestore,
)

from .synccases import assert_reported, assert_silent, free_buffer, shared_buffer

pytestmark = pytest.mark.timeout(120)


def test_readers_share_and_recurse_the_writer_excludes() -> None:
    m = Machine(cpus=1, seed=1)
    lock = DEFINE_RWLOCK("rw")

    def task() -> list[int]:
        read_lock(lock)
        read_lock(lock)  # readers may recurse (2.6's unfair rwlock)
        out = [preempt_count(), read_trylock(lock), write_trylock(lock)]
        read_unlock(lock)
        read_unlock(lock)
        read_unlock(lock)
        out += [preempt_count(), write_trylock(lock), read_trylock(lock), preempt_count()]
        write_unlock(lock)
        return out

    assert m.run(task)[0] == [2, 1, 0, 0, 1, 0, 1]
    assert m.reports == [] and lock.owner is None and lock.readers == []
    assert rwlock_init(lock) is lock  # rwlock_init(&lock)


def test_the_irq_and_bh_forms_disable_and_restore() -> None:
    m = Machine(cpus=1, seed=1)
    lock = rwlock_init("forms")

    def task() -> list[object]:
        out: list[object] = []
        read_lock_irq(lock)
        out.append(irqs_disabled())
        read_unlock_irq(lock)
        write_lock_irq(lock)
        out.append(irqs_disabled())
        write_unlock_irq(lock)
        flags = read_lock_irqsave(lock)
        out.append(irqs_disabled())
        read_unlock_irqrestore(lock, flags)
        flags = write_lock_irqsave(lock)
        write_unlock_irqrestore(lock, flags)
        read_lock_bh(lock)
        out.append(in_softirq())
        read_unlock_bh(lock)
        write_lock_bh(lock)
        out.append(in_softirq())
        write_unlock_bh(lock)
        out += [irqs_disabled(), in_softirq(), preempt_count()]
        return out

    assert m.run(task)[0] == [True, True, True, True, True, False, False, 0]
    assert m.reports == []


def test_debug_spinlock_checks_in_rwlock_bugs_words() -> None:
    m = Machine(cpus=2, seed=1)
    lock = rwlock_init("dbg")

    def wrong_owner() -> None:
        write_unlock(lock)  # nobody holds it

    def bad_read_unlock() -> None:
        read_unlock(lock)

    m.run(wrong_owner, bad_read_unlock)
    (wo,) = m.reports_of("rwlock_wrong_owner")
    assert wo.lines[0].startswith("BUG: rwlock wrong owner on CPU#") and wo.lines[0].endswith(", dbg")
    (bu,) = m.reports_of("rwlock_bad_unlock")
    assert bu.lines[1] == "WARNING: bad unlock balance detected!"
    m2 = Machine(cpus=1, seed=1)
    lock2 = rwlock_init("dbg2")

    def recursion2() -> None:
        write_lock(lock2)
        write_lock(lock2)

    m2.run(recursion2)
    (rec,) = m2.reports_of("rwlock_recursion")
    assert rec.lines[0] == f"BUG: rwlock recursion on CPU#0, recursion2/{rec.pid}, dbg2"


def test_bad_arguments_are_refused_before_any_side_effect() -> None:
    m = Machine(cpus=1, seed=1)
    lock = rwlock_init("arg")

    def task() -> int:
        with pytest.raises(KmemUsageError, match=r"read_lock: lock\(=None\) must be a rwlock_t"):
            read_lock(None)  # type: ignore[arg-type]
        with pytest.raises(KmemUsageError, match=r"write_unlock_irqrestore: flags\(=None\)"):
            write_unlock_irqrestore(lock, None)  # type: ignore[arg-type]
        return preempt_count()

    assert m.run(task)[0] == 0
    assert lock.owner is None


# -- the classic: a writer in an interrupt handler, readers with interrupts on -----------------------
def _irq_writer(readers_disable_irqs: bool) -> object:
    """The device's interrupt handler updates a table under write_lock(); process context
    reads it under read_lock(). With interrupts on, the handler can interrupt the reader on
    its own CPU and spin for ever (2.6's "write-lock lockup"); the fix is read_lock_irqsave()."""
    def scenario(m: Machine) -> None:
        lock = rwlock_init("table_lock")

        def handler(irq: int, dev: object) -> None:
            write_lock(lock)
            write_unlock(lock)

        def reader() -> None:
            request_irq(9, handler, 0, "dev")
            if readers_disable_irqs:
                flags = read_lock_irqsave(lock)
            else:
                read_lock(lock)  # BUG: the handler may come in here
            raise_irq(9, raw_smp_processor_id())  # the device interrupts this CPU now
            if readers_disable_irqs:
                read_unlock_irqrestore(lock, flags)
            else:
                read_unlock(lock)

        m.run(reader)
    return scenario


def test_a_writer_in_an_irq_handler_interrupting_a_reader_locks_up() -> None:
    assert_reported(_irq_writer(False), "rwlock_write_lock_lockup",
                    lambda ln: ln.startswith("BUG: write-lock lockup on CPU#") and ln.endswith(", table_lock"))


def test_readers_that_disable_interrupts_are_silent() -> None:
    assert_silent(_irq_writer(True))


def test_rwlock_orders_a_writer_before_later_readers_for_kcsan() -> None:
    def scenario(m: Machine) -> None:
        p = shared_buffer(m)
        lock = rwlock_init("data_lock")

        def writer() -> None:
            write_lock(lock)
            mem_write(p, b"\x05")
            write_unlock(lock)

        def reader() -> None:
            read_lock(lock)
            mem_read(p, 1)
            read_unlock(lock)

        m.run(writer, reader, reader)
        free_buffer(m, p)

    assert_silent(scenario, cpus=3, kcsan=True)


# -- lockdep validates the write side ----------------------------------------------------------------
def test_lockdep_sees_write_locks_in_both_orders_and_their_irq_usage() -> None:
    m = Machine(cpus=1, seed=1, lockdep=True)
    a, b = rwlock_init("A"), rwlock_init("B")

    def ab() -> None:
        write_lock(a)
        write_lock(b)
        write_unlock(b)
        write_unlock(a)

    def ba() -> None:
        write_lock(b)
        write_lock(a)
        write_unlock(a)
        write_unlock(b)

    def readers_recurse() -> None:  # no lockdep report: readers are not validated
        read_lock(a)
        read_lock(a)
        read_unlock(a)
        read_unlock(a)

    m.run(ab)
    m.run(readers_recurse)
    assert m.reports == []
    m.run(ba)
    (rep,) = m.reports
    assert rep.kind == "lockdep_circular" and any("{2:2}" in ln for ln in rep.lines)

    m2 = Machine(cpus=1, seed=1, lockdep=True)
    c = rwlock_init("C")

    def irq_and_process() -> None:
        request_irq(9, lambda irq, dev: (write_lock(c), write_unlock(c)), 0, "dev")
        raise_irq(9)
        write_lock(c)  # BUG: interrupts on, the handler takes it too
        write_unlock(c)

    m2.run(irq_and_process)
    assert [r.kind for r in m2.reports] == ["lockdep_inconsistent"]
