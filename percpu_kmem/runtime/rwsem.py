"""Read/write semaphores (<linux/rwsem.h>; 2.6's lib/rwsem-spinlock.c).

A ``struct rw_semaphore`` lets many readers or one writer in. The model follows 2.6's
generic implementation (rwsem-spinlock.c): an ``activity`` count (readers inside, or -1
for the writer) and one FIFO of waiting readers and writers.

Kept from the kernel:

- Fairness: a reader gets in at once only if no writer is inside *and nobody waits*;
  so a waiting writer blocks new readers, and a reader that takes the rwsem again
  (recursive ``down_read()``) while a writer waits sleeps behind that writer, which
  waits for the first read hold: the classic rwsem deadlock, reported as the model's
  deadlock ("sleeps on rw_semaphore NAME (1 reader: T, 1 waiting)").
- Hand-over (``__rwsem_do_wake``): when the rwsem becomes free, a writer at the head of
  the queue gets it, else every reader at the head up to the first writer gets in; the
  grant is made before the wake-up, so a woken waiter never finds the rwsem taken.
  ``downgrade_write()`` turns the writer into a reader and lets the readers at the head
  in. ``down_read_trylock()``/``down_write_trylock()`` return 1 on success, 0 otherwise
  (unlike ``down_trylock()``), and obey the same fairness.
- Contexts: ``down_read()``/``down_write()`` start with ``might_sleep()`` and sleep
  TASK_UNINTERRUPTIBLE (khungtaskd watches them); the trylocks and the ups never sleep.
- Misuse: ``up_read()`` of an rwsem no reader holds, ``up_write()``/``downgrade_write()``
  of one the caller does not hold for writing are CONFIG_DEBUG_RWSEMS's warning
  ("DEBUG_RWSEMS_WARN_ON(...)"), and change nothing.
- KCSAN (runtime/hb.py): ``up_write()`` releases into the rwsem's writer clock, which
  every acquisition acquires; ``up_read()`` releases into its reader clock, which only a
  writer acquires: readers are ordered with writers, not with each other, so two readers
  writing shared data under ``down_read()`` is still a race.

- Lockdep (``Machine(lockdep=True)``): every down, trylock and up goes through the
  validator, as ``rwsem_acquire()``/``rwsem_acquire_read()``/``rwsem_release()`` do: a
  recursive ``down_read()`` is "possible recursive locking detected" (an rwsem's read side
  is not recursive for lockdep), two rwsems taken in both orders are "possible circular
  locking dependency detected", an up of an rwsem the task does not hold is "bad unlock
  balance detected!". The class's wait type prints {3:3}, a sleeping lock's.

``down_read()`` is a non-recursive read for lockdep (read = 1, ``rwsem_acquire_read()``;
``downgrade_write()`` is ``lock_downgrade()``): the usage characters carry the read bits,
and its dependencies count as a write's (2.6.x; runtime/lockdep.py).

Simplified: ``Task.held`` does not list rwsems (a
task may exit holding one without the exit note); no
``down_read_nested``/``_killable``/``_interruptible`` forms; the rwsem's internal spinlock
adds no scheduling point (an up adds one, as its unlock would).
"""

from __future__ import annotations

import threading
from typing import Any

from . import footprint as _fp
from .kernel import block, might_sleep
from .lockdep import lock_class_key
from .locks import _KINDS, _auto_name, lock_arg
from .report import caller_site, warning_line
from .task import TASK_RUNNING, TASK_UNINTERRUPTIBLE, Task, current_task
from .validate import check_str

_READ = 0
_WRITE = 1


class rw_semaphore:
    """struct rw_semaphore (create with init_rwsem() or DECLARE_RWSEM())."""

    __slots__ = ("name", "activity", "waiters", "granted", "readers", "writer", "guard", "machine",
                 "dep_key", "dep_class", "__weakref__")

    def __init__(self, name: str | None = None) -> None:
        check_str("init_rwsem", "name", name, none=True)
        #: lockdep: the class key (the init site, and the name), as a mutex's
        self.dep_key = lock_class_key("rwsem", name, 2)
        self.dep_class: Any = None
        self.machine: Any = None  # bound to the machine of its first user
        self.name = name or _auto_name("rwsem")
        #: readers inside (> 0), the writer (-1), or nobody (0)
        self.activity = 0
        #: (task, _READ or _WRITE), first come first served
        self.waiters: list[tuple[Task, int]] = []
        #: waiters an up has let in, until they run
        self.granted: set[Task] = set()
        self.readers: list[Task] = []
        self.writer: Task | None = None
        self.guard = threading.Lock()

    def describe(self) -> str:
        if self.activity < 0:
            inside = f"writer {self.writer.name if self.writer is not None else '?'}"
        elif self.activity:
            names = ", ".join(r.name for r in self.readers)
            inside = f"{self.activity} reader{'s' if self.activity > 1 else ''}: {names}"
        else:
            inside = "free"
        return f"rw_semaphore {self.name} ({inside}, {len(self.waiters)} waiting)"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _sem_arg(fn: str, sem: Any) -> Task:
    t = current_task()
    if sem.__class__ is not rw_semaphore or sem.machine is not t.machine:
        lock_arg(fn, t, sem, rw_semaphore, "sem")
    return t


def init_rwsem(name: Any = None) -> rw_semaphore:
    """A new, free rwsem (``name``: None or a str); given an rwsem nobody holds or waits
    for, re-initialise it and return it, as ``init_rwsem(&sem)``."""
    if name.__class__ is rw_semaphore:
        sem: rw_semaphore = name
        with sem.guard:
            sem.activity = 0
            sem.readers.clear()
            sem.writer = None
        return sem
    return rw_semaphore(name)


DECLARE_RWSEM = init_rwsem


def _acquired(t: Task, sem: rw_semaphore, kind: int, fn: str) -> None:
    """With the guard held: ``t`` is in (KCSAN: acquire the writers' clock, and a writer
    the readers' too)."""
    if kind == _READ:
        sem.readers.append(t)
    else:
        sem.writer = t
    hb = t.hb
    if hb is not None:
        hb.acquire(t, sem)
        if kind == _WRITE:
            hb.acquire(t, (sem, _READ))
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "lock", f"{fn}({sem.name})", sem)


def _down(fn: str, sem: Any, kind: int) -> None:
    t = _sem_arg(fn, sem)
    might_sleep()
    ld = t.machine.lockdep
    if ld is not None:
        # before waiting, as rwsem_acquire()/rwsem_acquire_read() precede the slow path; a
        # read is non-recursive (1): a writer may queue between two down_read()s
        ld.acquire(t, sem, False, 1 if kind == _READ else 0)
    with sem.guard:
        if not sem.waiters and (sem.activity >= 0 if kind == _READ else sem.activity == 0):
            sem.activity += 1 if kind == _READ else -1
            _acquired(t, sem, kind, fn)
            return
        sem.waiters.append((t, kind))
    try:
        while True:
            with sem.guard:
                if t in sem.granted:
                    sem.granted.discard(t)
                    _acquired(t, sem, kind, fn)
                    return
                t.kstate = TASK_UNINTERRUPTIBLE  # rwsem_down_*_slowpath (khungtaskd watches it)
                t.woken = False
            block(sem, None, fn)
    except BaseException:
        if ld is not None:
            ld.release(t, sem)
        woken: list[Task] = []
        with sem.guard:  # an aborted run unwinds the waiter: it leaves the queue
            if (t, kind) in sem.waiters:
                sem.waiters.remove((t, kind))
            elif t in sem.granted:  # let in just now: leave again
                sem.granted.discard(t)
                sem.activity += -1 if kind == _READ else 1
                woken = _do_wake(sem, True)
        for w in woken:
            t.engine.wake(t, w)
        raise
    finally:
        t.kstate = TASK_RUNNING


def _do_wake(sem: rw_semaphore, wakewrite: bool) -> list[Task]:
    """__rwsem_do_wake(), guard held, the rwsem free (or just downgraded): a writer at the
    head gets in (if ``wakewrite``), else the readers at the head up to the first writer.
    Returns the tasks to wake."""
    q = sem.waiters
    if not q:
        return []
    if q[0][1] == _WRITE:
        if not wakewrite or sem.activity != 0:
            return []
        w, _ = q.pop(0)
        sem.activity = -1
        sem.granted.add(w)
        return [w]
    woken = []
    while q and q[0][1] == _READ:
        w, _ = q.pop(0)
        sem.granted.add(w)
        woken.append(w)
    sem.activity += len(woken)
    return woken


def _wake(t: Task, fn: str, sem: rw_semaphore, woken: list[Task]) -> None:
    engine = t.engine
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "unlock", f"{fn}({sem.name})", sem)
    for w in woken:
        if engine.wake(t, w) and ev is not None:
            ev.wake(t, w, f"{fn}({sem.name})")
    t.budget -= 1  # the kernel's unlock of the rwsem's wait lock
    if t.budget <= 0:
        engine.decide(t, fn)


def _debug_warn(t: Task, fn: str, sem: rw_semaphore, cond: str) -> None:
    """CONFIG_DEBUG_RWSEMS: the rwsem is not held the way ``fn`` releases it."""
    file, line, _ = caller_site(2)
    owner = sem.writer.name if sem.writer is not None and sem.activity < 0 else "<none>"
    t.machine.report("rwsem_warning",
                     [warning_line(t, file, line, fn),
                      f"DEBUG_RWSEMS_WARN_ON({cond}): count = {sem.activity}, owner = {owner}, "
                      f"curr {t.name}, list {'not ' if sem.waiters else ''}empty"],
                     site=f"{sem.name}@{file}:{line}")


def down_read(sem: rw_semaphore) -> None:
    """Get in as a reader, sleeping while a writer is inside or anybody waits. May sleep."""
    _down("down_read", sem, _READ)


def down_write(sem: rw_semaphore) -> None:
    """Get in as the writer, sleeping while anybody is inside or waits. May sleep."""
    _down("down_write", sem, _WRITE)


def down_read_trylock(sem: rw_semaphore) -> int:
    """Get in as a reader if that needs no wait: 1 on success, 0 otherwise. Any context."""
    t = _sem_arg("down_read_trylock", sem)
    if _fp.active: _fp.touch("sync", sem.dep_key)  # noqa: E701  (no scheduling point: the search must see it)
    with sem.guard:
        if sem.activity >= 0 and not sem.waiters:
            sem.activity += 1
            _acquired(t, sem, _READ, "down_read_trylock")
            ok = True
        else:
            ok = False
    if ok:
        ld = t.machine.lockdep
        if ld is not None:
            ld.acquire(t, sem, True, 1)
        return 1
    return 0


def down_write_trylock(sem: rw_semaphore) -> int:
    """Get in as the writer if the rwsem is free: 1 on success, 0 otherwise. Any context."""
    t = _sem_arg("down_write_trylock", sem)
    if _fp.active: _fp.touch("sync", sem.dep_key)  # noqa: E701  (no scheduling point: the search must see it)
    with sem.guard:
        if sem.activity == 0 and not sem.waiters:
            sem.activity = -1
            _acquired(t, sem, _WRITE, "down_write_trylock")
            ok = True
        else:
            ok = False
    if ok:
        ld = t.machine.lockdep
        if ld is not None:
            ld.acquire(t, sem, True)
        return 1
    return 0


def _lockdep_release(t: Task, sem: rw_semaphore) -> None:
    """rwsem_release(): lockdep's "bad unlock balance" when ``t`` does not hold ``sem``."""
    ld = t.machine.lockdep
    if ld is not None:
        if ld.holds(t, sem):
            ld.release(t, sem)
        else:
            ld.bad_unlock(t, sem)


def up_read(sem: rw_semaphore) -> None:
    """Leave as a reader; the last one out lets a waiting writer in."""
    t = _sem_arg("up_read", sem)
    _lockdep_release(t, sem)
    with sem.guard:
        if sem.activity <= 0:
            bad = True
        else:
            bad = False
            if t in sem.readers:
                sem.readers.remove(t)
            elif sem.readers:
                sem.readers.pop(0)  # up_read() by another task than the reader: allowed
            if t.hb is not None:  # KCSAN: a later writer sees what this reader did
                t.hb.release(t, (sem, _READ))
            sem.activity -= 1
            woken = _do_wake(sem, True) if sem.activity == 0 else []
    if bad:
        _debug_warn(t, "up_read", sem, "tmp < 0")
        return
    _wake(t, "up_read", sem, woken)


def _writer_check(t: Task, fn: str, sem: rw_semaphore) -> bool:
    if sem.activity >= 0 or sem.writer is not t:
        _debug_warn(t, fn, sem, "sem->owner != current")
        return False
    return True


def up_write(sem: rw_semaphore) -> None:
    """Leave as the writer; the waiters at the head get in (a writer, or readers)."""
    t = _sem_arg("up_write", sem)
    _lockdep_release(t, sem)
    with sem.guard:
        ok = sem.activity < 0 and sem.writer is t
        if ok:
            if t.hb is not None:  # KCSAN: every later acquisition sees what the writer did
                t.hb.release(t, sem)
            sem.activity = 0
            sem.writer = None
            woken = _do_wake(sem, True)
    if not ok:
        _writer_check(t, "up_write", sem)
        return
    _wake(t, "up_write", sem, woken)


def downgrade_write(sem: rw_semaphore) -> None:
    """The writer becomes a reader (nobody gets in between); waiting readers at the head
    of the queue get in with it, a waiting writer still waits."""
    t = _sem_arg("downgrade_write", sem)
    with sem.guard:
        ok = sem.activity < 0 and sem.writer is t
        if ok:
            if t.hb is not None:  # KCSAN: the readers let in see what the writer did
                t.hb.release(t, sem)
            sem.activity = 1
            sem.writer = None
            sem.readers.append(t)
            woken = _do_wake(sem, False)
    if not ok:
        _writer_check(t, "downgrade_write", sem)
        return
    ld = t.machine.lockdep
    if ld is not None:
        ld.downgrade(t, sem)
    _wake(t, "downgrade_write", sem, woken)


def rwsem_is_locked(sem: rw_semaphore) -> int:
    """1 while a reader or the writer is inside, else 0."""
    _sem_arg("rwsem_is_locked", sem)
    if _fp.active: _fp.touch("sync", sem.dep_key, False)  # noqa: E701
    return int(sem.activity != 0)


_KINDS[rw_semaphore] = ("struct rw_semaphore", "init_rwsem()")

__all__ = ["rw_semaphore", "init_rwsem", "DECLARE_RWSEM", "down_read", "down_write", "down_read_trylock",
           "down_write_trylock", "up_read", "up_write", "downgrade_write", "rwsem_is_locked"]
