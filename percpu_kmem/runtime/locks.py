"""Spinlocks, mutexes and wait queues.

spinlock_t follows CONFIG_DEBUG_SPINLOCK (kernel/locking/spinlock_debug.c): it
remembers its owner and owner CPU, reports recursion, unlock of an unlocked lock
and unlock by the wrong owner or CPU in the kernel's words, and never hangs: a
CPU that would spin forever on a lock it already holds gets an Oops instead.
Each lock keeps lock_stat-style counters (acquisitions, contentions, virtual
cycles spent waiting and holding).

The mutex and wait queues sleep through the runtime's ``block``; a mutex hands
ownership straight to the first waiter, so wake-ups are never lost.

Every task keeps the locks it holds (``Task.held``, lockdep's held_locks): a run
that is aborted unwinds a task only where it holds none, a task that returns
holding one is reported, and a lock left held by a task that is gone is what
``Machine.check()`` names. A lock created by the model's own code (``internal``)
left held that way makes the machine refuse further runs.

With ``Machine(lockdep=True)`` every acquisition and release also goes through the
machine's lock validator (runtime/lockdep.py; the lock's class key is stored at init);
with lockdep off that costs one ``is None`` test.

Virtual time: an acquisition never starts before the lock's last release on the
virtual clock (it waits, spinning, until then), a contended acquisition costs a
hand-off, and under the virtual-time policy a release with spinners waiting
re-opens the scheduling decision, so the waiter whose clock is earliest runs next.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import footprint as _fp
from .errors import KmemUsageError
from .kernel import (
    WARN_ON,
    block,
    local_bh_disable,
    local_bh_enable,
    local_irq_enable,
    local_irq_restore,
    local_irq_save,
    might_sleep,
    preempt_enable,
    preempt_point,
)
from .lockdep import lock_class_key
from .preempt import NSEC_PER_JIFFY
from .report import caller_code, caller_site, warning_line
from .task import TASK_INTERRUPTIBLE, TASK_RUNNING, TASK_UNINTERRUPTIBLE, Task, current_task
from .validate import bad, check_callable, check_int, check_str

SPINLOCK_MAGIC = 0xDEAD4EAD
_anon = 0
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _created_by_model(depth: int) -> bool:
    """Was the lock being created by the package's own code (the model's lock)?"""
    f: Any = sys._getframe(depth)
    while f is not None and f.f_code.co_filename == __file__:
        f = f.f_back
    return f is not None and f.f_code.co_filename.startswith(_PKG_DIR)


def _auto_name(prefix: str) -> str:
    global _anon
    _anon += 1
    return f"{prefix}#{_anon}"


class spinlock_t:
    """A spinlock. Create with ``spin_lock_init()`` or ``DEFINE_SPINLOCK(name)``."""

    __slots__ = ("raw", "name", "owner", "owner_cpu", "magic", "released_at", "last_cpu",
                 "acquisitions", "contentions", "wait_cycles", "hold_cycles", "acquired_at",
                 "wait_min", "wait_max", "hold_min", "hold_max", "acq_bounces", "con_bounces",
                 "con_points", "spinners", "internal", "machine", "dep_key", "dep_class", "__weakref__")

    def __init__(self, name: str | None = None) -> None:
        check_str("spin_lock_init", "name", name, none=True)
        self.internal = _created_by_model(2)
        #: lockdep: the lock's class key (its name, or its initialisation site), and the
        #: class of its machine's lockdep, cached at the first validated acquisition
        self.dep_key = lock_class_key("spinlock", name, 2)
        self.dep_class: Any = None
        #: the Machine whose tasks use it: None until first used, then bound for good
        self.machine: Any = None
        self.spinners = 0
        self.raw = threading.Lock()
        self.name = name or _auto_name("spinlock")
        self.owner: Task | None = None
        self.owner_cpu = -1
        self.magic = SPINLOCK_MAGIC
        self.released_at = 0
        self.last_cpu = -1
        self.acquisitions = 0
        self.contentions = 0
        self.wait_cycles = 0
        self.hold_cycles = 0
        self.acquired_at = 0
        # lock_stat (CONFIG_LOCK_STAT): wait and hold times in virtual ns, bounces (the lock's
        # cache line coming from another CPU), and where contended acquisitions happened
        self.wait_min = self.wait_max = self.hold_min = self.hold_max = 0
        self.acq_bounces = self.con_bounces = 0
        #: contention points: (code object, line) of the waiting caller -> count
        self.con_points: dict[tuple[Any, int], int] | None = None

    def locked(self) -> bool:
        return self.raw.locked()

    def owner_name(self) -> str:
        o = self.owner
        return f"{o.comm}/{o.pid}" if o is not None else "<none>"

    def __repr__(self) -> str:
        return f"<spinlock {self.name} owner={self.owner_name()} cpu={self.owner_cpu}>"


_KINDS: dict[type, tuple[str, str]] = {}  # filled below: lock class -> (kernel type name, how to make one)


def lock_arg(fn: str, t: Any, obj: Any, cls: type, name: str = "lock") -> Any:
    """The slow path of the one-line guard every lock function starts with.

    ``obj`` must be a ``cls`` (spinlock_t, mutex, wait_queue_head_t). A lock is
    machine-less until a task first uses it, then bound to that task's machine; a
    task of another machine using it is refused. Raises NotInTaskError outside a
    task, KmemUsageError for anything else, before any side effect.
    """
    m = t.machine  # NotInTaskError outside a task
    if obj.__class__ is not cls:
        kind, how = _KINDS[cls]
        raise bad(fn, name, obj, f"a {kind} ({how})")
    lock: Any = obj
    owner = lock.machine
    if owner is None:
        lock.machine = m
        if cls is spinlock_t:
            m.locks.add(lock)  # /proc/lock_stat lists the machine's lock classes
    elif owner is not m:
        raise KmemUsageError(f"{fn}: {name}(={obj!r}) belongs to another machine ({owner!r}): "
                             f"this task runs on {m!r}")
    return obj


def spin_lock_init(name: str | None = None) -> spinlock_t:
    """A new, unlocked spinlock (usable from plain Python too)."""
    return spinlock_t(name)


DEFINE_SPINLOCK = spin_lock_init


def _spin_bug(t: Task, lock: spinlock_t, msg: str, *, fatal: bool = False) -> None:
    owner = lock.owner
    lines = [f"BUG: spinlock {msg} on CPU#{t.cpu.id}, {t.comm}/{t.pid}",
             f" lock: {lock.name}, .magic: {lock.magic:08x}, .owner: "
             f"{owner.comm + '/' + str(owner.pid) if owner else '<none>'}, .owner_cpu: {lock.owner_cpu}"]
    file, line, _ = caller_site(3)
    kind = "spinlock_" + msg.replace(" ", "_")
    t.machine.debug_locks = False  # spin_bug()'s debug_locks_off()
    t.machine.report(kind, lines, site=f"{lock.name}@{file}:{line}", fatal=fatal,
                     extra={"lock": lock.name, "owner": lock.owner_name()})


def _acquired(t: Task, lock: Any, what: str) -> None:
    """What an acquisition tells the detectors once the lock is ``t``'s: KCSAN's clocks
    (runtime/hb.py: acquire the lock's clock) and the event log (``what(name)``). Callers
    test ``t.hb``/``t.machine.events`` first, so a run with neither pays no call."""
    if t.hb is not None:
        t.hb.acquire(t, lock)
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "lock", f"{what}({lock.name})", lock)


def _acquire(t: Task, lock: spinlock_t, event: str) -> None:
    """debug_spin_lock_before + arch_spin_lock: preemption is already off."""
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701  (the exhaustive search's footprint)
    ld = t.machine.lockdep
    if ld is not None:
        ld.acquire(t, lock)  # before spinning, as spin_acquire() precedes do_raw_spin_lock()
    c = t.cpu
    if lock.raw.locked():
        if lock.owner is t:
            _spin_bug(t, lock, "recursion", fatal=True)
        elif lock.owner_cpu == c.id:
            _spin_bug(t, lock, "cpu recursion", fatal=True)
    engine = t.engine
    if t.budget <= 0 or (engine.due_before_lock is not None and engine.due_before_lock(t, event)):
        # a decision is due (on the virtual clock this CPU ran past another): take it
        # before the lock, so a CPU that is earlier in virtual time gets it first; a
        # replay takes the recorded one here too
        engine.decide(t, event)
        c = t.cpu
    if not lock.raw.acquire(False):
        lock.contentions += 1
        start = c.clock
        lock.spinners += 1
        try:
            while True:
                engine.spin(t, lock, event)
                if lock.raw.acquire(False):
                    break
        finally:
            lock.spinners -= 1
        if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701  (taken after spinning: a step of its own)
        c = t.cpu
        cm = t.machine.costs
        cost = max(0, lock.released_at - c.clock) + cm.lock_handoff + cm.handoff_per_waiter * lock.spinners
        engine.charge(t, cost)
        _contended(lock, c, c.clock - start)
    elif lock.released_at > c.clock:
        # free now, but on the virtual clock its holder let go only later: wait until then
        lock.contentions += 1
        cm = t.machine.costs
        wait = lock.released_at - c.clock + cm.lock_handoff + cm.handoff_per_waiter * lock.spinners
        engine.charge(t, wait)
        _contended(lock, c, wait)
    elif lock.last_cpu in (c.id, -1):
        engine.charge(t, t.machine.costs.lock)
    else:
        m = t.machine
        engine.charge(t, m.costs.line(c.node, m.cpus[lock.last_cpu].node))
        lock.acq_bounces += 1
    lock.owner = t
    lock.owner_cpu = c.id
    lock.last_cpu = c.id
    lock.acquisitions += 1
    lock.acquired_at = c.clock
    t.held.append(lock)
    if t.hb is not None or t.machine.events is not None:
        _acquired(t, lock, event)
    t.budget -= 1
    if t.budget <= 0:
        engine.decide(t, event)


def _contended(lock: spinlock_t, c: Any, waited: int) -> None:
    """lock_contended() + lock_acquired(): account a wait of ``waited`` virtual ns (cold path)."""
    lock.wait_cycles += waited
    c.spin_cycles += waited
    if lock.contentions == 1 or waited < lock.wait_min:
        lock.wait_min = waited
    if waited > lock.wait_max:
        lock.wait_max = waited
    if lock.last_cpu not in (c.id, -1):
        lock.con_bounces += 1
        lock.acq_bounces += 1
    key = caller_code(3)  # the site, named when /proc/lock_stat prints it (code_site)
    points = lock.con_points
    if points is None:
        points = lock.con_points = {}
    points[key] = points.get(key, 0) + 1


def _forget(owner: Task, lock: Any) -> None:
    """Drop ``lock`` from the held list of ``owner`` (the innermost one, usually)."""
    held = owner.held
    if held and held[-1] is lock:
        held.pop()
    elif lock in held:
        held.remove(lock)


def _release(t: Task, lock: spinlock_t, fn: str = "spin_unlock") -> None:
    """lock_release + debug_spin_unlock + arch_spin_unlock (``fn``: the unlock function, for
    the event log). Lockdep speaks first, as spin_release() comes before the debug checks:
    an unlock of a lock ``t`` does not hold is its "bad unlock balance detected!"."""
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701
    ld = t.machine.lockdep
    if ld is not None and not ld.holds(t, lock):
        ld.bad_unlock(t, lock)
    c = t.cpu
    if not lock.raw.locked():
        _spin_bug(t, lock, "already unlocked")
        return
    owner = lock.owner
    if owner is not t:
        _spin_bug(t, lock, "wrong owner")
    elif lock.owner_cpu != c.id:
        _spin_bug(t, lock, "wrong CPU")
    if owner is not None:
        _forget(owner, lock)
        if ld is not None:
            ld.release(owner, lock)
    if t.hb is not None:  # KCSAN: release into the lock's clock (runtime/hb.py)
        t.hb.release(t, lock)
    held_for = c.clock - lock.acquired_at
    if held_for < 0:
        held_for = 0
    lock.hold_cycles += held_for
    if held_for > lock.hold_max:
        lock.hold_max = held_for
    if held_for < lock.hold_min or lock.acquisitions == 1:
        lock.hold_min = held_for
    lock.owner = None
    lock.owner_cpu = -1
    lock.released_at = c.clock
    lock.raw.release()
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "unlock", f"{fn}({lock.name})", lock)
    if lock.spinners:
        engine = t.engine
        if engine.policy_reopens_on_release:
            engine.reopen(t)  # a waiter may be earlier on the virtual clock: decide at the next point


def spin_lock(lock: spinlock_t) -> None:
    """Take ``lock`` with preemption disabled (interrupts stay as they are)."""
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_lock", t, lock, spinlock_t)
    t.cpu.preempt_count += 1
    _acquire(t, lock, "spin_lock")


def spin_unlock(lock: spinlock_t) -> None:
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_unlock", t, lock, spinlock_t)
    _release(t, lock)
    preempt_enable()


def spin_trylock(lock: spinlock_t) -> int:
    """Take ``lock`` if it is free: 1 on success, 0 (and nothing held) otherwise."""
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_trylock", t, lock, spinlock_t)
    if _fp.active: _fp.touch("lock", lock.dep_key)  # noqa: E701
    c = t.cpu
    c.preempt_count += 1
    if lock.raw.acquire(False):
        lock.owner = t
        lock.owner_cpu = c.id
        lock.last_cpu = c.id
        lock.acquisitions += 1
        lock.acquired_at = c.clock
        t.held.append(lock)
        ld = t.machine.lockdep
        if ld is not None:
            ld.acquire(t, lock, True)
        _acquired(t, lock, "spin_trylock")
        return 1
    c.preempt_count -= 1
    return 0


def spin_lock_irq(lock: spinlock_t) -> None:
    """Disable local interrupts, then take ``lock``."""
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_lock_irq", t, lock, spinlock_t)
    c = t.cpu
    c.irqs_off = True
    c.preempt_count += 1
    _acquire(t, lock, "spin_lock_irq")


def spin_unlock_irq(lock: spinlock_t) -> None:
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_unlock_irq", t, lock, spinlock_t)
    _release(t, lock, "spin_unlock_irq")
    c = t.cpu
    if c.preempt_count & 0xFF:
        c.preempt_count -= 1
    local_irq_enable()


def spin_lock_irqsave(lock: spinlock_t) -> int:
    """Save and disable local interrupts, take ``lock``; returns the flags to restore."""
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_lock_irqsave", t, lock, spinlock_t)
    flags = local_irq_save()
    t.cpu.preempt_count += 1
    _acquire(t, lock, "spin_lock_irqsave")
    return flags


def spin_unlock_irqrestore(lock: spinlock_t, flags: int) -> None:
    t = current_task()
    if flags.__class__ is not int or not 0 <= flags <= 0xFFFFFFFF:
        check_int("spin_unlock_irqrestore", "flags", flags, 0, 0xFFFFFFFF, "the int spin_lock_irqsave() returned")
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_unlock_irqrestore", t, lock, spinlock_t)
    _release(t, lock, "spin_unlock_irqrestore")
    c = t.cpu
    if c.preempt_count & 0xFF:
        c.preempt_count -= 1
    local_irq_restore(flags)


def spin_lock_bh(lock: spinlock_t) -> None:
    """Disable bottom halves, then take ``lock``."""
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_lock_bh", t, lock, spinlock_t)
    local_bh_disable()
    t.cpu.preempt_count += 1
    _acquire(t, lock, "spin_lock_bh")


def spin_unlock_bh(lock: spinlock_t) -> None:
    t = current_task()
    if lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("spin_unlock_bh", t, lock, spinlock_t)
    _release(t, lock, "spin_unlock_bh")
    c = t.cpu
    if c.preempt_count & 0xFF:
        c.preempt_count -= 1
    local_bh_enable()


def spin_is_locked(lock: spinlock_t) -> bool:
    if lock.__class__ is not spinlock_t:
        raise bad("spin_is_locked", "lock", lock, "a spinlock_t (spin_lock_init())")
    return lock.raw.locked()


def lockdep_assert_held(lock: Any) -> None:
    """lockdep_assert_held(): with lockdep on (``Machine(lockdep=True)``), WARN unless the
    current task holds ``lock`` (a spinlock_t or a mutex), at the caller's line; nothing
    without lockdep, where the kernel compiles it away."""
    t = current_task()
    if lock.__class__ is mutex:
        _mutex_arg("lockdep_assert_held", lock)
    elif lock.__class__ is not spinlock_t or lock.machine is not t.machine:
        lock_arg("lockdep_assert_held", t, lock, spinlock_t)
    ld = t.machine.lockdep
    if ld is not None and not ld.holds(t, lock):
        WARN_ON(True, f"lockdep_assert_held({lock.name}): not held by {t.comm}/{t.pid}")


# -- mutex ------------------------------------------------------------------------------
class mutex:
    """A sleeping lock; ownership passes directly to the first waiter."""

    __slots__ = ("name", "owner", "waiters", "guard", "internal", "machine", "dep_key", "dep_class")

    def __init__(self, name: str | None = None) -> None:
        check_str("mutex_init", "name", name, none=True)
        self.internal = _created_by_model(2)
        self.dep_key = lock_class_key("mutex", name, 2)  # lockdep, as spinlock_t's
        self.dep_class: Any = None
        self.machine: Any = None  # bound to the machine of its first user
        self.name = name or _auto_name("mutex")
        self.owner: Task | None = None
        self.waiters: list[Task] = []
        self.guard = threading.Lock()

    def describe(self) -> str:
        o = self.owner
        return f"mutex {self.name} held by {o.comm + '/' + str(o.pid) if o else '<none>'}"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _mutex_arg(fn: str, m: Any) -> Task:
    """current, with ``m`` checked (see lock_arg): NotInTaskError outside a task."""
    t = current_task()
    if m.__class__ is not mutex or m.machine is not t.machine:
        lock_arg(fn, t, m, mutex, "m")
    return t


def mutex_init(name: str | None = None) -> mutex:
    return mutex(name)


DEFINE_MUTEX = mutex_init


def mutex_lock(m: mutex) -> None:
    """Take ``m``, sleeping while another task holds it. Context: process, may sleep."""
    _mutex_lock(_mutex_arg("mutex_lock", m), m, TASK_UNINTERRUPTIBLE)


def mutex_lock_interruptible(m: mutex) -> int:
    """mutex_lock(), waiting in TASK_INTERRUPTIBLE (khungtaskd does not watch the wait);
    returns 0, the lock taken: the model has no signals, so -EINTR never happens."""
    _mutex_lock(_mutex_arg("mutex_lock_interruptible", m), m, TASK_INTERRUPTIBLE)
    return 0


def _mutex_lock(t: Task, m: mutex, state: int) -> None:
    might_sleep()
    ld = t.machine.lockdep
    if ld is not None:
        ld.acquire(t, m)  # before waiting, as mutex_acquire() precedes the wait
    with m.guard:
        if m.owner is None:
            m.owner = t
            t.held.append(m)
            _acquired(t, m, "mutex_lock")
            return
        if m.owner is t:
            file, line, _ = caller_site(2)
            t.machine.report("mutex_recursion",
                             [f"WARNING: possible recursive locking detected: {t.comm}/{t.pid} is trying "
                              f"to acquire lock {m.name} at {file}:{line} but already holds it"],
                             fatal=True)
        t.woken = False
        m.waiters.append(t)
    try:
        while m.owner is not t:
            t.kstate = state  # __mutex_lock_common() (khungtaskd watches TASK_UNINTERRUPTIBLE)
            block(m, None, "mutex_lock")
    except BaseException:
        if ld is not None:
            ld.release(t, m)
        with m.guard:  # an aborted run unwinds the waiter: it leaves the queue
            if t in m.waiters:
                m.waiters.remove(t)
            elif m.owner is t:  # handed over just now: pass it on
                m.owner = m.waiters.pop(0) if m.waiters else None
                if m.owner is not None:
                    t.engine.wake(t, m.owner)
        raise
    t.held.append(m)
    _acquired(t, m, "mutex_lock")  # KCSAN: the hand-over from the last owner


def mutex_trylock(m: mutex) -> int:
    t = _mutex_arg("mutex_trylock", m)
    with m.guard:
        if m.owner is None:
            m.owner = t
            t.held.append(m)
            ok = True
        else:
            ok = False
    if ok:
        ld = t.machine.lockdep
        if ld is not None:
            ld.acquire(t, m, True)
        _acquired(t, m, "mutex_trylock")
        return 1
    return 0


def mutex_unlock(m: mutex) -> None:
    t = _mutex_arg("mutex_unlock", m)
    ld = t.machine.lockdep
    if ld is not None and not ld.holds(t, m):  # mutex_release() before the owner check
        ld.bad_unlock(t, m)
    with m.guard:
        if m.owner is not t:
            file, line, _ = caller_site(2)
            t.machine.report("mutex_wrong_owner",
                             [warning_line(t, file, line, "mutex_unlock"),
                              f"DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current): lock {m.name} "
                              f"owned by {m.describe()}"], site=f"{m.name}@{file}:{line}")
            if m.owner is None:
                return
        _forget(m.owner, m)
        if ld is not None:
            ld.release(m.owner, m)
        if t.hb is not None:  # KCSAN
            t.hb.release(t, m)
        nxt = m.waiters.pop(0) if m.waiters else None
        m.owner = nxt
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "unlock", f"mutex_unlock({m.name})", m)
    if nxt is not None:
        if t.engine.wake(t, nxt) and ev is not None:
            ev.wake(t, nxt, f"mutex_unlock({m.name})")
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "mutex_unlock")


def mutex_is_locked(m: mutex) -> bool:
    if m.__class__ is not mutex:
        raise bad("mutex_is_locked", "m", m, "a mutex (mutex_init())")
    return m.owner is not None


# -- wait queues ---------------------------------------------------------------------------
class wait_queue_head_t:
    """A wait queue: tasks sleep on it until a wake_up()."""

    __slots__ = ("name", "waiters", "guard", "machine")

    def __init__(self, name: str | None = None) -> None:
        check_str("init_waitqueue_head", "name", name, none=True)
        self.machine: Any = None  # bound to the machine of its first user
        self.name = name or _auto_name("waitqueue")
        self.waiters: list[Task] = []
        self.guard = threading.Lock()

    def describe(self) -> str:
        return f"wait queue {self.name}"

    def __repr__(self) -> str:
        return f"<wait_queue {self.name} waiters={[t.name for t in self.waiters]}>"


def _wq_arg(fn: str, wq: Any) -> Task:
    """current, with ``wq`` checked (see lock_arg): NotInTaskError outside a task."""
    t = current_task()
    if wq.__class__ is not wait_queue_head_t or wq.machine is not t.machine:
        lock_arg(fn, t, wq, wait_queue_head_t, "wq")
    return t


def _condition_arg(fn: str, condition: Any) -> None:
    if not callable(condition):
        check_callable(fn, "condition", condition, how="condition() -> bool")


def init_waitqueue_head(name: str | None = None) -> wait_queue_head_t:
    return wait_queue_head_t(name)


DECLARE_WAIT_QUEUE_HEAD = init_waitqueue_head


def prepare_to_wait(wq: wait_queue_head_t, state: int = TASK_UNINTERRUPTIBLE) -> None:
    """Put ``current`` on ``wq`` and set its state before testing the condition.

    A wake_up() from here on sets the task back to TASK_RUNNING, so the schedule()
    (or schedule_timeout()) that follows returns at once: no wake-up is lost.
    """
    if state.__class__ is not int or state not in (TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE):
        raise KmemUsageError(f"prepare_to_wait: state(={state!r}) must be TASK_INTERRUPTIBLE or "
                             f"TASK_UNINTERRUPTIBLE")
    t = _wq_arg("prepare_to_wait", wq)
    preempt_point("prepare_to_wait")  # the kernel takes wq->lock here: a wake_up() can come first
    with wq.guard:
        t.woken = False
        t.kstate = state
        t.waiting_on = wq
        if t not in wq.waiters:
            wq.waiters.append(t)


def finish_wait(wq: wait_queue_head_t) -> None:
    """Back to TASK_RUNNING and off ``wq`` (after the condition held or a timeout)."""
    t = _wq_arg("finish_wait", wq)
    with wq.guard:
        t.kstate = TASK_RUNNING
        if t.waiting_on is wq:
            t.waiting_on = None  # a later sleep (msleep) is not on this queue
        if t in wq.waiters:
            wq.waiters.remove(t)


def _wait(wq: wait_queue_head_t, condition: Callable[[], Any], timeout_ns: int | None, event: str,
          state: int = TASK_UNINTERRUPTIBLE) -> bool:
    t = current_task()
    engine = t.engine
    deadline = None if timeout_ns is None else engine.now + timeout_ns
    try:
        while True:
            prepare_to_wait(wq, state)
            if condition():
                if t.hb is not None:  # KCSAN: the condition holds: see what the waker did
                    t.hb.acquire(t, wq)
                return True
            left = None if deadline is None else deadline - engine.now
            if left is not None and left <= 0:
                ok = bool(condition())
                if ok and t.hb is not None:  # KCSAN
                    t.hb.acquire(t, wq)
                return ok
            block(wq, left, event)
    finally:
        finish_wait(wq)


def wait_event(wq: wait_queue_head_t, condition: Callable[[], Any]) -> None:
    """Sleep until ``condition()`` is true, re-checked after every wake-up on ``wq``.

    Context: process context, may sleep.
    """
    _wait_event("wait_event", wq, condition)


def _wait_event(fn: str, wq: Any, condition: Any, state: int = TASK_UNINTERRUPTIBLE) -> None:
    _wq_arg(fn, wq)
    _condition_arg(fn, condition)
    might_sleep()
    if condition():
        t = current_task()
        if t.hb is not None:  # KCSAN: the condition holds: see what the waker did
            t.hb.acquire(t, wq)
        return
    _wait(wq, condition, None, fn, state)


def wait_event_interruptible(wq: wait_queue_head_t, condition: Callable[[], Any]) -> int:
    """As wait_event, sleeping TASK_INTERRUPTIBLE (khungtaskd does not watch it; the model
    has no signals); returns 0."""
    _wait_event("wait_event_interruptible", wq, condition, TASK_INTERRUPTIBLE)
    return 0


def wait_event_timeout(wq: wait_queue_head_t, condition: Callable[[], Any], timeout: int) -> int:
    """Sleep until ``condition()`` or ``timeout`` jiffies of virtual time.

    Returns 0 if the condition was still false when the time ran out, otherwise
    the jiffies left (at least 1), as the kernel does.
    """
    t = _wq_arg("wait_event_timeout", wq)
    _condition_arg("wait_event_timeout", condition)
    if timeout.__class__ is not int or timeout < 0:
        check_int("wait_event_timeout", "timeout", timeout, 0, what="an int number of jiffies")
    might_sleep()
    engine = t.engine
    start = engine.now
    if condition():
        if t.hb is not None:  # KCSAN: the condition holds: see what the waker did
            t.hb.acquire(t, wq)
        return max(1, timeout)
    ok = _wait(wq, condition, timeout * NSEC_PER_JIFFY, "wait_event_timeout")
    if not ok:
        return 0
    return max(1, timeout - (engine.now - start) // NSEC_PER_JIFFY)


def wait_event_interruptible_timeout(wq: wait_queue_head_t, condition: Callable[[], Any], timeout: int) -> int:
    """wait_event_timeout() sleeping TASK_INTERRUPTIBLE: 0 if the condition was still false
    when ``timeout`` jiffies ran out, otherwise the jiffies left (at least 1). The kernel's
    -ERESTARTSYS for a signal never happens: the model has no signals."""
    t = _wq_arg("wait_event_interruptible_timeout", wq)
    _condition_arg("wait_event_interruptible_timeout", condition)
    if timeout.__class__ is not int or timeout < 0:
        check_int("wait_event_interruptible_timeout", "timeout", timeout, 0, what="an int number of jiffies")
    might_sleep()
    engine = t.engine
    start = engine.now
    if condition():
        if t.hb is not None:  # KCSAN: the condition holds: see what the waker did
            t.hb.acquire(t, wq)
        return max(1, timeout)
    ok = _wait(wq, condition, timeout * NSEC_PER_JIFFY, "wait_event_interruptible_timeout", TASK_INTERRUPTIBLE)
    if not ok:
        return 0
    return max(1, timeout - (engine.now - start) // NSEC_PER_JIFFY)


def wake_up(wq: wait_queue_head_t) -> None:
    """Wake every task sleeping on ``wq`` (they re-check their conditions)."""
    t = _wq_arg("wake_up", wq)
    with wq.guard:
        waiters = list(wq.waiters)
        wq.waiters.clear()
    if t.hb is not None:  # KCSAN: the woken see what the waker did (runtime/hb.py)
        t.hb.wake(t, waiters, wq)
    engine = t.engine
    ev = t.machine.events
    for w in waiters:
        if engine.wake(t, w) and ev is not None:
            ev.wake(t, w, f"wake_up({wq.name})")


wake_up_all = wake_up
wake_up_interruptible = wake_up


def wake_up_nr(wq: wait_queue_head_t, nr: int) -> None:
    t = _wq_arg("wake_up_nr", wq)
    if nr.__class__ is not int or nr < 0:
        check_int("wake_up_nr", "nr", nr, 0)
    with wq.guard:
        waiters = wq.waiters[:nr]
        del wq.waiters[:nr]
    if t.hb is not None:  # KCSAN
        t.hb.wake(t, waiters, wq)
    ev = t.machine.events
    for w in waiters:
        if t.engine.wake(t, w) and ev is not None:
            ev.wake(t, w, f"wake_up_nr({wq.name})")


def waitqueue_active(wq: wait_queue_head_t) -> bool:
    if wq.__class__ is not wait_queue_head_t:
        raise bad("waitqueue_active", "wq", wq, "a wait_queue_head_t (init_waitqueue_head())")
    return bool(wq.waiters)


_KINDS.update({spinlock_t: ("spinlock_t", "spin_lock_init()"), mutex: ("mutex", "mutex_init()"),
               wait_queue_head_t: ("wait_queue_head_t", "init_waitqueue_head()")})


__all__ = ["spinlock_t", "spin_lock_init", "DEFINE_SPINLOCK", "spin_lock", "spin_unlock", "spin_trylock",
           "spin_lock_irq", "spin_unlock_irq", "spin_lock_irqsave", "spin_unlock_irqrestore",
           "spin_lock_bh", "spin_unlock_bh", "spin_is_locked", "lockdep_assert_held", "mutex", "mutex_init",
           "DEFINE_MUTEX",
           "mutex_lock", "mutex_lock_interruptible", "mutex_trylock", "mutex_unlock", "mutex_is_locked",
           "wait_queue_head_t",
           "init_waitqueue_head", "DECLARE_WAIT_QUEUE_HEAD", "prepare_to_wait", "finish_wait",
           "wait_event", "wait_event_interruptible", "wait_event_timeout", "wait_event_interruptible_timeout",
           "wake_up", "wake_up_all",
           "wake_up_interruptible", "wake_up_nr", "waitqueue_active"]
