"""Counting semaphores (<asm/semaphore.h> in 2.6, <linux/semaphore.h> today; kernel/locking/semaphore.c).

A ``struct semaphore`` is a count and a FIFO of sleeping waiters. ``down()`` takes one
unit of the count, or sleeps until an ``up()`` hands one over; ``up()`` gives the unit
straight to the first waiter (today's ``__up()``: ``waiter->up = true``), or adds it to
the count when nobody waits. So a unit is never stolen from a woken waiter.

Kept from the kernel:

- Names of both eras: ``sema_init(sem, val)``, today's ``DEFINE_SEMAPHORE(name)`` (count
  1; 6.4 added the count argument: ``DEFINE_SEMAPHORE(name, n)``), and 2.6's
  ``DECLARE_MUTEX(name)``, ``DECLARE_MUTEX_LOCKED(name)``, ``init_MUTEX(sem)`` and
  ``init_MUTEX_LOCKED(sem)`` (count 1 and 0; removed in 2.6.37/2.6.39, kept here because
  LDD3's scull uses them). The model's ``DECLARE_MUTEX`` is the 2.6 semaphore, not a
  ``struct mutex`` (that is ``DEFINE_MUTEX``).
- Return values: ``down_interruptible()``/``down_killable()`` 0, ``down_trylock()`` 0 on
  success and 1 on failure (the kernel's inverted sense, unlike ``mutex_trylock()``),
  ``down_timeout()`` 0 or -ETIME (-62) when the jiffies ran out.
- No owner: ``up()`` may be called by any task and from any context (an interrupt
  handler), ``down_trylock()`` from any context. ``down()`` and the other sleeping forms
  start with ``might_sleep()`` ("BUG: sleeping function called from invalid context").
- Sleeps: ``down()``/``down_timeout()`` sleep TASK_UNINTERRUPTIBLE (khungtaskd watches an
  untimed one), the interruptible and killable forms TASK_INTERRUPTIBLE. A semaphore used
  as a mutex in an AB-BA cycle leaves every task asleep: the model's deadlock report
  names each semaphore ("sleeps on semaphore NAME (count 0, last down by TASK)").
- KCSAN (runtime/hb.py): ``up()`` releases into the semaphore's clock (joined, since
  several tasks may up a counting semaphore), every successful ``down*()`` acquires it.

Simplified: no signals (the interruptible and killable forms never return -EINTR);
lockdep does not see semaphores (neither does the kernel's: they have no owner); the
semaphore's internal raw spinlock is no lock of the model, so ``down()`` adds no
scheduling point beyond ``might_sleep()``'s and ``up()`` one (its unlock's). A count is
an int from 0 to INT_MAX. ``last down by`` (for reports) is the task of the last
successful ``down*()``: a semaphore has no owner, that is only a hint. The "init"
functions return a new semaphore when given a name (None or a str), and re-initialise a
given semaphore in place otherwise, as ``sema_init(&sem, val)`` does.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from . import footprint as _fp
from .kernel import block, might_sleep
from .lockdep import lock_class_key
from .locks import _KINDS, _auto_name, lock_arg
from .preempt import NSEC_PER_JIFFY
from .task import TASK_INTERRUPTIBLE, TASK_RUNNING, TASK_UNINTERRUPTIBLE, Task, current_task
from .validate import bad, check_int

#: -ETIME: down_timeout() ran out of time
ETIME: Final = 62
INT_MAX: Final = 0x7FFFFFFF


class semaphore:
    """struct semaphore: a count and the tasks sleeping in down() (create with sema_init(),
    DEFINE_SEMAPHORE() or 2.6's DECLARE_MUTEX())."""

    __slots__ = ("name", "count", "waiters", "granted", "guard", "machine", "last", "key", "__weakref__")

    def __init__(self, val: int = 1, name: str | None = None) -> None:
        _val_arg("sema_init", val)
        _name_arg("sema_init", name)
        self.machine: Any = None  # bound to the machine of its first user
        #: the exhaustive search's footprint key: the init site (and name), stable across runs
        self.key = lock_class_key("semaphore", name, 2)
        self.name = name or _auto_name("semaphore")
        self.count = val
        self.waiters: list[Task] = []
        #: waiters an up() has handed a unit to (``waiter->up``), until they run
        self.granted: set[Task] = set()
        self.guard = threading.Lock()
        self.last: Task | None = None

    def describe(self) -> str:
        last = f", last down by {self.last.name}" if self.last is not None else ""
        return f"semaphore {self.name} (count {self.count}{last})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _val_arg(fn: str, val: Any) -> None:
    if val.__class__ is not int or not 0 <= val <= INT_MAX:
        check_int(fn, "val", val, 0, INT_MAX, "an int count")


def _name_arg(fn: str, name: Any) -> None:
    if name is not None and name.__class__ is not str:
        raise bad(fn, "sem", name, "a struct semaphore to initialise, a str name or None")


def _sem_arg(fn: str, sem: Any) -> Task:
    """current, with ``sem`` checked: NotInTaskError outside a task, KmemUsageError for
    anything but a semaphore of this machine, before any side effect."""
    t = current_task()
    if sem.__class__ is not semaphore or sem.machine is not t.machine:
        lock_arg(fn, t, sem, semaphore, "sem")
    return t


def _init(fn: str, sem: Any, val: int) -> semaphore:
    _val_arg(fn, val)
    if sem.__class__ is semaphore:
        s: semaphore = sem
        with s.guard:
            s.count = val
            s.last = None
        return s
    _name_arg(fn, sem)
    return semaphore(val, sem)


def sema_init(sem: Any = None, val: int = 1) -> semaphore:
    """A semaphore with count ``val``: ``sem`` is a semaphore to (re-)initialise, or the
    name (None or a str) of a new one, which is returned."""
    return _init("sema_init", sem, val)


def DEFINE_SEMAPHORE(name: Any = None, val: int = 1) -> semaphore:
    """A new semaphore with count 1 (or ``val``: 6.4's ``DEFINE_SEMAPHORE(name, n)``)."""
    return _init("DEFINE_SEMAPHORE", name, val)


def DECLARE_MUTEX(name: Any = None) -> semaphore:
    """2.6: a semaphore with count 1 (a "mutex" semaphore; not a struct mutex)."""
    return _init("DECLARE_MUTEX", name, 1)


def DECLARE_MUTEX_LOCKED(name: Any = None) -> semaphore:
    """2.6: a semaphore with count 0 (taken)."""
    return _init("DECLARE_MUTEX_LOCKED", name, 0)


def init_MUTEX(sem: Any = None) -> semaphore:
    """2.6: sema_init(sem, 1)."""
    return _init("init_MUTEX", sem, 1)


def init_MUTEX_LOCKED(sem: Any = None) -> semaphore:
    """2.6: sema_init(sem, 0)."""
    return _init("init_MUTEX_LOCKED", sem, 0)


def _got(t: Task, sem: semaphore, fn: str) -> None:
    """A unit is ``t``'s (KCSAN: acquire what the up()s released; the event log's ``lock``)."""
    sem.last = t
    if t.hb is not None:
        t.hb.acquire(t, sem)
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "lock", f"{fn}({sem.name})", sem)


#: the timeout of the downs that have none
_FOREVER: Final[Any] = object()


def _down(fn: str, sem: Any, timeout: Any, state: int) -> int:
    """__down_common(): 0 once a unit is ours, -ETIME if ``timeout`` jiffies ran out."""
    t = _sem_arg(fn, sem)
    if timeout is not _FOREVER and (timeout.__class__ is not int or timeout < 0):
        check_int(fn, "timeout", timeout, 0, what="an int number of jiffies")
    if timeout is _FOREVER:
        timeout = None
    might_sleep()
    with sem.guard:
        if sem.count > 0:
            sem.count -= 1
            _got(t, sem, fn)
            return 0
        t.woken = False
        sem.waiters.append(t)
    engine = t.engine
    deadline = None if timeout is None else engine.now + timeout * NSEC_PER_JIFFY
    try:
        while True:
            with sem.guard:
                if t in sem.granted:
                    sem.granted.discard(t)
                    _got(t, sem, fn)
                    return 0
                left = None if deadline is None else deadline - engine.now
                if left is not None and left <= 0:
                    sem.waiters.remove(t)
                    return -ETIME
                t.kstate = state  # UNINTERRUPTIBLE is what khungtaskd watches
                t.woken = False
            block(sem, left, fn)
    except BaseException:
        w = None
        with sem.guard:  # an aborted run unwinds the waiter: it leaves the queue
            if t in sem.waiters:
                sem.waiters.remove(t)
            elif t in sem.granted:  # handed a unit just now: pass it on
                sem.granted.discard(t)
                w = _up_locked(t, sem)
        if w is not None:
            engine.wake(t, w)
        raise
    finally:
        t.kstate = TASK_RUNNING


def _up_locked(t: Task, sem: semaphore) -> Task | None:
    """With ``sem.guard`` held: the unit goes to the first waiter (returned, to be woken), or
    to the count."""
    if sem.waiters:
        w = sem.waiters.pop(0)
        sem.granted.add(w)
        return w
    if sem.count < INT_MAX:
        sem.count += 1
    return None


def down(sem: semaphore) -> None:
    """Take a unit, sleeping (TASK_UNINTERRUPTIBLE) until one is free. Context: process, may sleep."""
    _down("down", sem, _FOREVER, TASK_UNINTERRUPTIBLE)


def down_interruptible(sem: semaphore) -> int:
    """As down(), sleeping TASK_INTERRUPTIBLE: 0 (no signals in the model, never -EINTR)."""
    return _down("down_interruptible", sem, _FOREVER, TASK_INTERRUPTIBLE)


def down_killable(sem: semaphore) -> int:
    """As down_interruptible() (no fatal signals in the model): 0."""
    return _down("down_killable", sem, _FOREVER, TASK_INTERRUPTIBLE)


def down_timeout(sem: semaphore, timeout: int) -> int:
    """As down(), for at most ``timeout`` jiffies of virtual time: 0, or -ETIME (-62)."""
    return _down("down_timeout", sem, timeout, TASK_UNINTERRUPTIBLE)


def down_trylock(sem: semaphore) -> int:
    """Take a unit if one is free, never sleeping: 0 on success, 1 on failure (the kernel's
    inverted sense). Any context."""
    t = _sem_arg("down_trylock", sem)
    if _fp.active: _fp.touch("sync", sem.key)  # noqa: E701  (no scheduling point: the search must see it)
    with sem.guard:
        if sem.count <= 0:
            return 1
        sem.count -= 1
        _got(t, sem, "down_trylock")
    return 0


def up(sem: semaphore) -> None:
    """Release a unit: to the first waiter (woken), else to the count. Any task, any context."""
    t = _sem_arg("up", sem)
    with sem.guard:
        if t.hb is not None:  # KCSAN: the next down() sees what this task did
            t.hb.release(t, sem)
        w = _up_locked(t, sem)
    engine = t.engine
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "unlock", f"up({sem.name})", sem)
    if w is not None:
        if engine.wake(t, w) and ev is not None:
            ev.wake(t, w, f"up({sem.name})")
    t.budget -= 1  # the kernel's raw_spin_unlock_irqrestore(&sem->lock)
    if t.budget <= 0:
        engine.decide(t, "up")


_KINDS[semaphore] = ("struct semaphore", "sema_init()")

__all__ = ["semaphore", "sema_init", "DEFINE_SEMAPHORE", "DECLARE_MUTEX", "DECLARE_MUTEX_LOCKED", "init_MUTEX",
           "init_MUTEX_LOCKED", "down", "down_interruptible", "down_killable", "down_timeout", "down_trylock",
           "up", "ETIME"]
