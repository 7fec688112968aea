"""Reader/writer spinlocks: rwlock_t (<linux/spinlock.h>; 2.6's arch rwlocks with
CONFIG_DEBUG_SPINLOCK's checks, kernel/locking/spinlock_debug.c).

Many readers or one writer; a CPU that cannot get in busy-waits (spins) with preemption
disabled, as on a spinlock. The ``_irq``, ``_irqsave`` and ``_bh`` forms disable local
interrupts or bottom halves first and restore them after the unlock, as spin_lock's do.

Kept from the kernel:

- 2.6's unfair rwlock: a reader gets in whenever no writer is inside, even while a writer
  spins (writers can starve), so a reader may take the lock again recursively, the
  property tasklist_lock relies on (a reader in an interrupt handler while the interrupted
  code holds it for reading).
- CONFIG_DEBUG_SPINLOCK's rwlock checks, in rwlock_bug()'s words: ``write_lock()`` by the
  writer itself is "BUG: rwlock recursion on CPU#N, comm/pid, NAME"; ``write_unlock()`` by
  a task that is not the writer is "BUG: rwlock wrong owner", on another CPU than the one
  that locked it "BUG: rwlock wrong CPU". A lock the CPU could never get (its own task
  holds it for reading and asks to write: the read-to-write upgrade; or it holds it for
  writing and asks to read) is reported at once as "BUG: write-lock lockup" / "BUG:
  read-lock lockup" (2.6's __write_lock_debug()/__read_lock_debug() after a second of
  spinning) and the task Oopses instead of hanging.
- A ``read_unlock()`` with no reader inside gets lockdep's "WARNING: bad unlock balance
  detected!" (the model reports it with lockdep off too: the count would underflow).
- Locks held are in ``Task.held`` (lockdep's held_locks): a task that returns holding one
  gets the "still has locks held!" report, and an aborted run unwinds a task only where it
  holds none.
- KCSAN (runtime/hb.py): ``write_unlock()`` releases into the lock's clock, which every
  acquisition acquires; ``read_unlock()`` into its reader clock, which only a writer
  acquires (readers are not ordered with each other).

- Lockdep (``Machine(lockdep=True)``) validates the write side, as the kernel's
  ``rwlock_acquire()``: AA, AB-BA with other locks, irq safety (a write_lock() in an
  interrupt handler and one with interrupts on elsewhere), bad unlock balance; and the
  read side as a recursive read (``rwlock_acquire_read()``, read = 2): a read_lock()
  nests in a read of its class, even from an interrupt (tasklist_lock), a read with a
  write of one class is recursive locking, a read in an interrupt and a write with
  interrupts on is an inconsistent lock state (runtime/lockdep.py has the 2.6.x rules).

- The exhaustive search's footprints (runtime/footprint.py): every acquisition and release
  touches the lock's class key, as a spinlock's. (The sleeping and signalling primitives
  of this family have scheduling points of their own, which the search treats as opaque;
  those without one, the trylocks, ``try_wait_for_completion()``, ``completion_done()``
  and ``reinit_completion()``, touch their object's init-site key.)

Simplified: no
lock_stat counters and a flat virtual-time cost per acquisition (``costs.lock``); a write
waiter spins until no reader is left, with no queueing (2.6's arch rwlocks have none).
"""

from __future__ import annotations

import threading
from typing import Any, Final

from . import footprint as _fp
from .kernel import (
    local_bh_disable,
    local_bh_enable,
    local_irq_enable,
    local_irq_restore,
    local_irq_save,
    preempt_enable,
)
from .lockdep import lock_class_key
from .locks import _KINDS, _auto_name, _forget, lock_arg
from .report import caller_site
from .task import Task, current_task
from .validate import check_int, check_str

RWLOCK_MAGIC: Final = 0xDEAF1EED
_R = 0
_W = 1


class rwlock_t:
    """A reader/writer spinlock. Create with ``rwlock_init()`` or ``DEFINE_RWLOCK(name)``."""

    __slots__ = ("name", "readers", "owner", "owner_cpu", "guard", "machine", "internal", "magic", "dep_key",
                 "dep_class", "__weakref__")

    def __init__(self, name: str | None = None) -> None:
        check_str("rwlock_init", "name", name, none=True)
        #: lockdep (the write side only): the class key, as a spinlock's
        self.dep_key = lock_class_key("rwlock", name, 2)
        self.dep_class: Any = None
        self.internal = False  # the model's own code takes no rwlock (Machine refuses runs on those)
        self.machine: Any = None  # bound to the machine of its first user
        self.name = name or _auto_name("rwlock")
        #: the tasks inside for reading (one entry per hold)
        self.readers: list[Task] = []
        #: the writer (``owner`` as the debug code calls it) and its CPU
        self.owner: Task | None = None
        self.owner_cpu = -1
        self.magic = RWLOCK_MAGIC
        self.guard = threading.Lock()

    def describe(self) -> str:
        if self.owner is not None:
            return f"rwlock {self.name} held for writing by {self.owner.name}"
        if self.readers:
            return f"rwlock {self.name} held for reading by {', '.join(r.name for r in self.readers)}"
        return f"rwlock {self.name} (free)"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class _Waiting:
    """What a spinning CPU waits for (engine.spin(): ``locked()`` while it must spin)."""

    __slots__ = ("lock", "write")

    def __init__(self, lock: rwlock_t, write: bool) -> None:
        self.lock = lock
        self.write = write

    def locked(self) -> bool:
        lk = self.lock
        return lk.owner is not None or (self.write and bool(lk.readers))

    def describe(self) -> str:
        return f"{'write' if self.write else 'read'} access to {self.lock.describe()}"


def rwlock_init(name: Any = None) -> rwlock_t:
    """A new, unlocked rwlock (``name``: None or a str; usable from plain Python too). Given
    an rwlock nobody holds, re-initialise it and return it, as ``rwlock_init(&lock)``."""
    if name.__class__ is rwlock_t:
        lock: rwlock_t = name
        with lock.guard:
            if lock.owner is None and not lock.readers:
                lock.owner_cpu = -1
        return lock
    return rwlock_t(name)


DEFINE_RWLOCK = rwlock_init


def _arg(fn: str, lock: Any) -> Task:
    t = current_task()
    if lock.__class__ is not rwlock_t or lock.machine is not t.machine:
        lock_arg(fn, t, lock, rwlock_t)
    return t


def _rwlock_bug(t: Task, lock: rwlock_t, msg: str, fatal: bool = False) -> None:
    """rwlock_bug(): "BUG: rwlock MSG on CPU#N, comm/pid, lock"."""
    file, line, _ = caller_site(2)
    kind = "rwlock_" + msg.replace(" ", "_").replace("-", "_")
    lines = [f"BUG: rwlock {msg} on CPU#{t.cpu.id}, {t.comm}/{t.pid}, {lock.name}" if " lockup" not in msg
             else f"BUG: {msg} on CPU#{t.cpu.id}, {t.comm}/{t.pid}, {lock.name}",
             f" lock: {lock.name}, .magic: {lock.magic:08x}, .owner: "
             f"{lock.owner.name if lock.owner is not None else '<none>'}, .owner_cpu: {lock.owner_cpu}"]
    t.machine.report(kind, lines, site=f"{lock.name}@{file}:{line}", fatal=fatal, extra={"lock": lock.name})


def _acquired(t: Task, lock: rwlock_t, write: bool, fn: str) -> None:
    t.held.append(lock)
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "lock", f"{fn}({lock.name})", lock)
    hb = t.hb
    if hb is not None:
        hb.acquire(t, lock)
        if write:
            hb.acquire(t, (lock, _R))
    t.engine.charge(t, t.machine.costs.lock)
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "write_lock" if write else "read_lock")


def _read_acquire(t: Task, lock: rwlock_t, fn: str) -> None:
    """Preemption (and irqs or bottom halves) already off: get in as a reader."""
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701  (the exhaustive search's footprint)
    ld = t.machine.lockdep
    if ld is not None:
        ld.acquire(t, lock, False, 2)  # rwlock_acquire_read(): a recursive read, before spinning
    while True:
        with lock.guard:
            if lock.owner is None:
                lock.readers.append(t)
                break
            mine = lock.owner is t
        if mine:  # the CPU would spin for ever on its own write hold
            _rwlock_bug(t, lock, "read-lock lockup", fatal=True)
        t.engine.spin(t, _Waiting(lock, False), fn)
    _acquired(t, lock, False, fn)


def _write_acquire(t: Task, lock: rwlock_t, fn: str) -> None:
    """Preemption (and irqs or bottom halves) already off: get in as the writer."""
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701  (the exhaustive search's footprint)
    ld = t.machine.lockdep
    if ld is not None:
        ld.acquire(t, lock)  # before spinning, as rwlock_acquire() precedes do_raw_write_lock()
    while True:
        with lock.guard:
            if lock.owner is None and not lock.readers:
                lock.owner = t
                lock.owner_cpu = t.cpu.id
                break
            recursion = lock.owner is t
            upgrade = t in lock.readers
        if recursion:
            _rwlock_bug(t, lock, "recursion", fatal=True)  # debug_write_lock_before()
        if upgrade:  # the CPU would spin for ever on its own read hold
            _rwlock_bug(t, lock, "write-lock lockup", fatal=True)
        t.engine.spin(t, _Waiting(lock, True), fn)
    _acquired(t, lock, True, fn)


def _read_release(t: Task, lock: rwlock_t) -> bool:
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701  (the exhaustive search's footprint)
    with lock.guard:
        if t in lock.readers:
            lock.readers.remove(t)
            holder = t
        elif lock.readers:
            holder = lock.readers.pop(0)  # read_unlock() for another reader: the count is all there is
        else:
            holder = None
        if holder is not None and t.hb is not None:  # KCSAN: a later writer sees this reader
            t.hb.release(t, (lock, _R))
    if holder is None:
        _bad_unlock(t, lock)
        return False
    ld = t.machine.lockdep
    if ld is not None and ld.holds(t, lock):  # rwlock_release() (the imbalance is reported above)
        ld.release(t, lock)
    _forget(holder, lock)
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "unlock", f"read_unlock({lock.name})", lock)
    return True


def _bad_unlock(t: Task, lock: rwlock_t) -> None:
    """lockdep's print_unlock_imbalance_bug() for a read_unlock() with no reader inside."""
    file, line, _ = caller_site(2)
    title = "WARNING: bad unlock balance detected!"
    t.machine.report("rwlock_bad_unlock",
                     ["=" * len(title), title, "-" * len(title),
                      f"{t.comm}/{t.pid} is trying to release lock ({lock.name}) at:", f"{file}:{line}",
                      "but there are no more locks to release!"],
                     site=f"{lock.name}@{file}:{line}", extra={"lock": lock.name})


def _write_release(t: Task, lock: rwlock_t) -> bool:
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701  (the exhaustive search's footprint)
    ld = t.machine.lockdep
    if ld is not None:  # rwlock_release() before the debug checks, as spin_release()
        if ld.holds(t, lock):
            ld.release(t, lock)
        else:
            ld.bad_unlock(t, lock)
    with lock.guard:
        owner = lock.owner
        if owner is not t:
            bug = "wrong owner"
        elif lock.owner_cpu != t.cpu.id:
            bug = "wrong CPU"
        else:
            bug = ""
        if owner is not None:
            if t.hb is not None:  # KCSAN: every later acquisition sees what the writer did
                t.hb.release(t, lock)
            lock.owner = None
            lock.owner_cpu = -1
    if bug:
        _rwlock_bug(t, lock, bug)  # debug_write_unlock()
    if owner is None:
        return False
    _forget(owner, lock)
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "unlock", f"write_unlock({lock.name})", lock)
    return True


def _preempt_on(t: Task) -> None:
    c = t.cpu
    if c.preempt_count & 0xFF:
        c.preempt_count -= 1


# -- the forms --------------------------------------------------------------------------------
def read_lock(lock: rwlock_t) -> None:
    """Get in as a reader with preemption disabled, spinning while a writer is inside."""
    t = _arg("read_lock", lock)
    t.cpu.preempt_count += 1
    _read_acquire(t, lock, "read_lock")


def read_unlock(lock: rwlock_t) -> None:
    t = _arg("read_unlock", lock)
    if _read_release(t, lock):
        preempt_enable()


def write_lock(lock: rwlock_t) -> None:
    """Get in as the writer with preemption disabled, spinning while anybody is inside."""
    t = _arg("write_lock", lock)
    t.cpu.preempt_count += 1
    _write_acquire(t, lock, "write_lock")


def write_unlock(lock: rwlock_t) -> None:
    t = _arg("write_unlock", lock)
    if _write_release(t, lock):
        preempt_enable()


def read_trylock(lock: rwlock_t) -> int:
    """Get in as a reader if no writer is inside: 1, else 0 (and nothing held)."""
    t = _arg("read_trylock", lock)
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701
    with lock.guard:
        ok = lock.owner is None
        if ok:
            lock.readers.append(t)
    if not ok:
        return 0
    t.cpu.preempt_count += 1
    ld = t.machine.lockdep
    if ld is not None:
        ld.acquire(t, lock, True, 2)
    _acquired(t, lock, False, "read_trylock")
    return 1


def write_trylock(lock: rwlock_t) -> int:
    """Get in as the writer if the lock is free: 1, else 0 (and nothing held)."""
    t = _arg("write_trylock", lock)
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701
    with lock.guard:
        ok = lock.owner is None and not lock.readers
        if ok:
            lock.owner = t
            lock.owner_cpu = t.cpu.id
    if not ok:
        return 0
    t.cpu.preempt_count += 1
    ld = t.machine.lockdep
    if ld is not None:
        ld.acquire(t, lock, True)
    _acquired(t, lock, True, "write_trylock")
    return 1


def read_lock_irq(lock: rwlock_t) -> None:
    t = _arg("read_lock_irq", lock)
    c = t.cpu
    c.irqs_off = True
    c.preempt_count += 1
    _read_acquire(t, lock, "read_lock_irq")


def read_unlock_irq(lock: rwlock_t) -> None:
    t = _arg("read_unlock_irq", lock)
    if _read_release(t, lock):
        _preempt_on(t)
        local_irq_enable()


def write_lock_irq(lock: rwlock_t) -> None:
    t = _arg("write_lock_irq", lock)
    c = t.cpu
    c.irqs_off = True
    c.preempt_count += 1
    _write_acquire(t, lock, "write_lock_irq")


def write_unlock_irq(lock: rwlock_t) -> None:
    t = _arg("write_unlock_irq", lock)
    if _write_release(t, lock):
        _preempt_on(t)
        local_irq_enable()


def read_lock_irqsave(lock: rwlock_t) -> int:
    """Save and disable local interrupts, get in as a reader; returns the flags to restore."""
    t = _arg("read_lock_irqsave", lock)
    flags = local_irq_save()
    t.cpu.preempt_count += 1
    _read_acquire(t, lock, "read_lock_irqsave")
    return flags


def _flags_arg(fn: str, flags: Any) -> None:
    if flags.__class__ is not int or not 0 <= flags <= 0xFFFFFFFF:
        check_int(fn, "flags", flags, 0, 0xFFFFFFFF, "the int the _irqsave lock returned")


def read_unlock_irqrestore(lock: rwlock_t, flags: int) -> None:
    t = _arg("read_unlock_irqrestore", lock)
    _flags_arg("read_unlock_irqrestore", flags)
    if _read_release(t, lock):
        _preempt_on(t)
        local_irq_restore(flags)


def write_lock_irqsave(lock: rwlock_t) -> int:
    """Save and disable local interrupts, get in as the writer; returns the flags to restore."""
    t = _arg("write_lock_irqsave", lock)
    flags = local_irq_save()
    t.cpu.preempt_count += 1
    _write_acquire(t, lock, "write_lock_irqsave")
    return flags


def write_unlock_irqrestore(lock: rwlock_t, flags: int) -> None:
    t = _arg("write_unlock_irqrestore", lock)
    _flags_arg("write_unlock_irqrestore", flags)
    if _write_release(t, lock):
        _preempt_on(t)
        local_irq_restore(flags)


def read_lock_bh(lock: rwlock_t) -> None:
    t = _arg("read_lock_bh", lock)
    local_bh_disable()
    t.cpu.preempt_count += 1
    _read_acquire(t, lock, "read_lock_bh")


def read_unlock_bh(lock: rwlock_t) -> None:
    t = _arg("read_unlock_bh", lock)
    if _read_release(t, lock):
        _preempt_on(t)
        local_bh_enable()


def write_lock_bh(lock: rwlock_t) -> None:
    t = _arg("write_lock_bh", lock)
    local_bh_disable()
    t.cpu.preempt_count += 1
    _write_acquire(t, lock, "write_lock_bh")


def write_unlock_bh(lock: rwlock_t) -> None:
    t = _arg("write_unlock_bh", lock)
    if _write_release(t, lock):
        _preempt_on(t)
        local_bh_enable()


_KINDS[rwlock_t] = ("rwlock_t", "rwlock_init()")

__all__ = ["rwlock_t", "rwlock_init", "DEFINE_RWLOCK", "read_lock", "read_unlock", "write_lock", "write_unlock",
           "read_trylock", "write_trylock", "read_lock_irq", "read_unlock_irq", "write_lock_irq",
           "write_unlock_irq", "read_lock_irqsave", "read_unlock_irqrestore", "write_lock_irqsave",
           "write_unlock_irqrestore", "read_lock_bh", "read_unlock_bh", "write_lock_bh", "write_unlock_bh",
           "RWLOCK_MAGIC"]
