"""Completions (<linux/completion.h>, kernel/sched/completion.c): "this has happened".

A ``struct completion`` is a ``done`` counter and a wait queue. ``complete()`` adds one
to ``done`` and wakes one waiter; ``complete_all()`` sets ``done`` to UINT_MAX, which no
waiter consumes, and wakes every waiter; ``wait_for_completion()`` sleeps until ``done``
is non-zero and then takes one (``done - 1``, unless it is UINT_MAX).

Kept from the kernel:

- The counter semantics, the one-waiter wake-up of ``complete()`` (a woken waiter that
  finds ``done`` taken by someone else, a ``try_wait_for_completion()`` say, sleeps again),
  ``reinit_completion()`` (2.6's ``INIT_COMPLETION``) setting ``done`` back to 0 and nothing
  else, so a ``complete()`` that came before it is lost: the classic hung waiter.
- Contexts: every wait starts with ``might_sleep()`` ("BUG: sleeping function called from
  invalid context" under a spinlock or with interrupts off); ``complete()``,
  ``complete_all()``, ``try_wait_for_completion()`` and ``completion_done()`` may be called
  from any context, an interrupt handler included.
- Sleep states: ``wait_for_completion()`` and ``wait_for_completion_timeout()`` sleep in
  TASK_UNINTERRUPTIBLE, so khungtaskd reports an untimed wait nobody completes after 120 s
  of virtual time; a wait every task is stuck in is the model's deadlock verdict, naming
  the completion ("sleeps on completion NAME (done 0)"). The ``_interruptible`` and
  ``_killable`` forms sleep TASK_INTERRUPTIBLE (khungtaskd does not watch them).
- Return values: ``wait_for_completion_timeout()`` returns 0 when the time ran out, else
  the jiffies left, at least 1; ``try_wait_for_completion()`` and ``completion_done()``
  return bools, as the kernel's do.
- KCSAN (runtime/hb.py): ``complete()``/``complete_all()`` release into the completion's
  clock, a wait (or ``try_wait_for_completion()``) that takes ``done`` acquires it: what
  the completer did happens before what the waiter does next.

Simplified: the model has no signals, so the interruptible and killable waits return 0
(never -ERESTARTSYS) and their ``_timeout`` form returns what the timeout form does. The
completion's internal ``wait.lock`` is not a spinlock of the model: lockdep does not see it
(the kernel's lockdep does not track completions either since crossrelease was removed),
and it adds no scheduling point. ``init_completion()`` returns a new completion
(``DECLARE_COMPLETION(name)`` is the same), as ``init_waitqueue_head()`` does; given an
existing completion it re-initialises it in place, as ``init_completion(&x)`` does.
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

#: complete_all()'s ``done``: no waiter consumes it
UINT_MAX: Final = 0xFFFFFFFF


class completion:
    """struct completion: ``done`` and the tasks waiting for it (create with init_completion())."""

    __slots__ = ("name", "done", "waiters", "guard", "machine", "key", "__weakref__")

    def __init__(self, name: str | None = None) -> None:
        if name is not None and name.__class__ is not str:
            raise bad("init_completion", "name", name, "None, a str name or a completion to re-initialise")
        self.machine: Any = None  # bound to the machine of its first user
        #: the exhaustive search's footprint key: the init site (and name), stable across runs
        self.key = lock_class_key("completion", name, 2)
        self.name = name or _auto_name("completion")
        self.done = 0
        self.waiters: list[Task] = []
        self.guard = threading.Lock()

    def describe(self) -> str:
        return f"completion {self.name} (done {self.done})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _x_arg(fn: str, x: Any) -> Task:
    """current, with ``x`` checked: NotInTaskError outside a task, KmemUsageError for a
    non-completion or one of another machine, before any side effect."""
    t = current_task()
    if x.__class__ is not completion or x.machine is not t.machine:
        lock_arg(fn, t, x, completion, "x")
    return t


def init_completion(name: Any = None) -> completion:
    """A new completion with ``done`` 0 (``name``: None or a str). Given an existing
    completion, re-initialise it (``done`` 0) and return it, as ``init_completion(&x)``."""
    if name.__class__ is completion:
        x: completion = name
        with x.guard:
            x.done = 0
        return x
    return completion(name)


DECLARE_COMPLETION = init_completion
#: the form for a completion on the stack (lockdep's on-stack key in the kernel; the same here)
DECLARE_COMPLETION_ONSTACK = init_completion


def reinit_completion(x: completion) -> None:
    """``done`` back to 0 (waiters are untouched): a complete() before it is forgotten."""
    if x.__class__ is not completion:
        raise bad("reinit_completion", "x", x, "a struct completion (init_completion())")
    if x.machine is not None:
        t = current_task()
        if t and t.machine is not x.machine:
            lock_arg("reinit_completion", t, x, completion, "x")
    if _fp.active: _fp.touch("sync", x.key)  # noqa: E701  (no scheduling point: the search must see it)
    with x.guard:
        x.done = 0


#: 2.6's name: ``#define INIT_COMPLETION(x) ((x).done = 0)``
INIT_COMPLETION = reinit_completion


def _signal(fn: str, x: Any, every: bool) -> None:
    t = _x_arg(fn, x)
    with x.guard:
        if every:
            x.done = UINT_MAX
            woken = x.waiters[:]
            x.waiters.clear()
        else:
            if x.done != UINT_MAX:
                x.done += 1
            woken = [x.waiters.pop(0)] if x.waiters else []
        if t.hb is not None:  # KCSAN: a waiter that takes ``done`` sees what came before
            t.hb.release(t, x)
    engine = t.engine
    ev = t.machine.events
    for w in woken:
        if engine.wake(t, w) and ev is not None:
            ev.wake(t, w, f"{fn}({x.name})")
    t.budget -= 1  # the kernel's spin_unlock_irqrestore(&x->wait.lock)
    if t.budget <= 0:
        engine.decide(t, fn)


def complete(x: completion) -> None:
    """Signal one waiter: ``done + 1`` (unless complete_all() made it UINT_MAX), wake the
    first task waiting. Any context, an interrupt handler included."""
    _signal("complete", x, False)


def complete_all(x: completion) -> None:
    """Signal every waiter, present and future, until reinit_completion(): ``done`` is
    UINT_MAX. Any context."""
    _signal("complete_all", x, True)


def _take(t: Task, x: completion) -> None:
    """With ``x.guard`` held: consume one ``done`` (KCSAN: acquire the completer's clock)."""
    if x.done != UINT_MAX:
        x.done -= 1
    if t.hb is not None:
        t.hb.acquire(t, x)


#: the timeout of the waits that have none (MAX_SCHEDULE_TIMEOUT)
_FOREVER: Final[Any] = object()


def _wait(fn: str, x: completion, timeout: Any, state: int) -> int:
    """do_wait_for_common(): sleep in ``state`` until ``done`` or ``timeout`` jiffies
    (_FOREVER: no limit) of virtual time; the jiffies left (at least 1) once ``done`` was taken, 0 if
    the time ran out."""
    t = _x_arg(fn, x)
    if timeout is not _FOREVER and (timeout.__class__ is not int or timeout < 0):
        check_int(fn, "timeout", timeout, 0, what="an int number of jiffies")
    if timeout is _FOREVER:
        timeout = None
    might_sleep()
    with x.guard:
        if x.done:
            _take(t, x)
            return max(1, timeout or 0)
        t.woken = False
        x.waiters.append(t)
    engine = t.engine
    deadline = None if timeout is None else engine.now + timeout * NSEC_PER_JIFFY
    try:
        while True:
            left = None if deadline is None else deadline - engine.now
            if left is not None and left <= 0:
                with x.guard:
                    if x.done:
                        _take(t, x)
                        left = 0
                    else:
                        if t in x.waiters:
                            x.waiters.remove(t)
                        return 0
                break
            t.kstate = state  # __set_current_state(): UNINTERRUPTIBLE is what khungtaskd watches
            block(x, left, fn)
            with x.guard:
                if x.done:
                    if t in x.waiters:
                        x.waiters.remove(t)
                    _take(t, x)
                    break
                if t not in x.waiters:  # woken, but another task took ``done``: wait again
                    x.waiters.append(t)
                t.woken = False
    except BaseException:
        with x.guard:  # an aborted run unwinds the waiter: it leaves the queue
            if t in x.waiters:
                x.waiters.remove(t)
        raise
    finally:
        t.kstate = TASK_RUNNING
    if timeout is None:
        return 0
    return max(1, (deadline - engine.now) // NSEC_PER_JIFFY) if deadline is not None else 0


def wait_for_completion(x: completion) -> None:
    """Sleep (TASK_UNINTERRUPTIBLE) until ``x`` is completed, and take one ``done``.
    Context: process, may sleep."""
    _wait("wait_for_completion", x, _FOREVER, TASK_UNINTERRUPTIBLE)


def wait_for_completion_timeout(x: completion, timeout: int) -> int:
    """As wait_for_completion(), for at most ``timeout`` jiffies of virtual time: 0 if it
    timed out, else the jiffies left (at least 1)."""
    return _wait("wait_for_completion_timeout", x, timeout, TASK_UNINTERRUPTIBLE)


def wait_for_completion_interruptible(x: completion) -> int:
    """As wait_for_completion(), sleeping TASK_INTERRUPTIBLE; 0 (no signals in the model,
    so never -ERESTARTSYS)."""
    _wait("wait_for_completion_interruptible", x, _FOREVER, TASK_INTERRUPTIBLE)
    return 0


def wait_for_completion_interruptible_timeout(x: completion, timeout: int) -> int:
    """As wait_for_completion_timeout(), sleeping TASK_INTERRUPTIBLE (no signals)."""
    return _wait("wait_for_completion_interruptible_timeout", x, timeout, TASK_INTERRUPTIBLE)


def wait_for_completion_killable(x: completion) -> int:
    """As wait_for_completion_interruptible() (no fatal signals in the model): 0."""
    _wait("wait_for_completion_killable", x, _FOREVER, TASK_INTERRUPTIBLE)
    return 0


def try_wait_for_completion(x: completion) -> bool:
    """Take one ``done`` without sleeping: True if there was one, False otherwise. Any context."""
    t = _x_arg("try_wait_for_completion", x)
    if _fp.active: _fp.touch("sync", x.key)  # noqa: E701
    with x.guard:
        if not x.done:
            return False
        _take(t, x)
        return True


def completion_done(x: completion) -> bool:
    """Is a ``done`` there (would a wait return at once)? Takes nothing. Any context."""
    _x_arg("completion_done", x)
    if _fp.active: _fp.touch("sync", x.key, False)  # noqa: E701
    return x.done != 0


_KINDS[completion] = ("struct completion", "init_completion()")

__all__ = ["completion", "init_completion", "DECLARE_COMPLETION", "DECLARE_COMPLETION_ONSTACK", "reinit_completion",
           "INIT_COMPLETION",
           "complete", "complete_all", "wait_for_completion", "wait_for_completion_timeout",
           "wait_for_completion_interruptible", "wait_for_completion_interruptible_timeout",
           "wait_for_completion_killable", "try_wait_for_completion", "completion_done", "UINT_MAX"]
