"""The kernel-style context API: current, preemption, interrupts, sleeping.

Every function acts on the machine and CPU of the calling kernel thread, found
through ``current_task()`` as the kernel finds ``current``; called from plain Python
code they raise NotInTaskError. Scheduling points (``preempt_point``) are where
the policy may switch CPUs, preempt the task (only with preempt_count == 0 and
irqs on) or deliver an interrupt (only with irqs on).

Also the small everyday API around them: jiffies arithmetic and conversions
(include/linux/jiffies.h: jiffies is i386's 32-bit unsigned long, HZ = 1000, from 0, so it
wraps after 49.7 days of virtual time), ssleep/msleep_interruptible (no signals: nothing
ends them early), CPU masks (no hotplug: every CPU is possible and online), the WARN/BUG
family of asm-generic/bug.h (the _ONCE flag per call site for the machine's life), and
disable_irq/enable_irq/synchronize_irq (the lines' state is runtime/irq.py's).

Kernel files modelled: kernel/sched/core.c (might_sleep, schedule),
lib/smp_processor_id.c (DEBUG_PREEMPT), include/linux/preempt.h, kernel/softirq.c,
include/linux/jiffies.h, kernel/time/time.c, include/asm-generic/bug.h,
include/linux/cpumask.h, kernel/irq/manage.c.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Final

from .errors import KmemUsageError, NotInTaskError, TaskAbort
from .preempt import (
    HARDIRQ_MASK,
    HZ,
    IRQ_MASK,
    NSEC_PER_JIFFY,
    PREEMPT_MASK,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_MASK,
    SOFTIRQ_OFFSET,
    X86_EFLAGS_IF,
)
from .report import caller_site, user_site, warning_line
from .task import TASK_INTERRUPTIBLE, TASK_RUNNING, TASK_UNINTERRUPTIBLE, Task, current_task
from .validate import bad, check_callable, check_choice, check_int, check_str


# -- scheduling points -----------------------------------------------------------
def preempt_point(event: str = "preempt_point") -> None:
    """A place where a real kernel could be preempted or interrupted.

    The allocators call it inside their paths; simulated-memory accessors call it
    on every access. Cheap when the policy does not decide here.
    """
    t = current_task()
    if event.__class__ is not str:
        check_str("preempt_point", "event", event)
    b = t.budget - 1  # one attribute read fewer than ``t.budget -= 1`` and a test of it
    t.budget = b
    if b <= 0:
        t.engine.decide(t, event)


def _count_arg(fn: str, name: str, value: Any) -> None:
    """A count of cycles, ns, us or ms: an int from 0 (bools and floats are misuse)."""
    if value.__class__ is not int or value < 0:
        check_int(fn, name, value, 0)


def charge(cycles: int) -> None:
    """Charge ``cycles`` to this CPU's virtual clock (the virtual-time policy uses it)."""
    t = current_task()
    _count_arg("charge", "cycles", cycles)
    t.charge(cycles)


def current() -> Task:
    """The running kernel thread (``current``): ``.pid``, ``.comm``."""
    t = current_task()
    if not t:
        raise NotInTaskError()
    return t


get_current = current


def in_task_context() -> bool:
    """True when called from a simulated kernel thread (never raises)."""
    return bool(current_task())


# -- CPU identity ------------------------------------------------------------------
def raw_smp_processor_id() -> int:
    """This CPU's number, without the preemption check."""
    return current_task().cpu.id


def smp_processor_id() -> int:
    """This CPU's number; in preemptible code it is reported (CONFIG_DEBUG_PREEMPT).

    Context: meaningful only with preemption disabled (get_cpu()), in interrupt
    context, or in a task bound to one CPU.
    """
    t = current_task()
    c = t.cpu
    if c.preempt_count == 0 and not c.irqs_off and not t.is_idle and not _pinned(t):
        _debug_preempt_report(t, "smp_processor_id", "")
    return c.id


def _pinned(t: Task) -> bool:
    allowed = t.cpus_allowed
    return allowed is not None and len(allowed) == 1


def _debug_preempt_report(t: Task, what1: str, what2: str) -> None:
    file, line, func = caller_site(3)
    t.machine.report(
        "preempt_smp_processor_id" if what1 == "smp_processor_id" else "preempt_this_cpu",
        [f"BUG: using {what1}{what2}() in preemptible [{0:08x}] code: {t.comm}/{t.pid}",
         f"caller is {func} ({file}:{line})"],
        site=f"{what1}{what2}@{file}:{line}")


def debug_preempt_check(what1: str, what2: str = "") -> None:
    """check_preemption_disabled(): report use of this CPU's data from preemptible code."""
    t = current_task()
    if what1.__class__ is not str or what2.__class__ is not str:
        check_str("debug_preempt_check", "what1", what1)
        check_str("debug_preempt_check", "what2", what2)
    c = t.cpu
    if c.preempt_count == 0 and not c.irqs_off and not t.is_idle and not _pinned(t):
        _debug_preempt_report(t, what1, what2)


# -- CPU masks (<linux/cpumask.h>) ----------------------------------------------------
#: CONFIG_NR_CPUS: the most CPUs the model's kernel is built for (``Machine(cpus=...)``
#: takes 1 to NR_CPUS; runtime/machine.py MAX_CPUS is the same number). Possible CPUs are
#: the machine's ``cpus``; all of them are online (the model has no CPU hotplug).
NR_CPUS: Final = 256


def num_possible_cpus() -> int:
    """The machine's CPU count (cpu_possible_mask's weight)."""
    return current_task().machine.nr_cpus


def num_online_cpus() -> int:
    """How many CPUs are online (all of them: no hotplug in the model)."""
    return sum(1 for c in current_task().machine.cpus if c.online)


def _cpu_number(fn: str, cpu: Any) -> int:
    """A CPU number as cpumask_check() takes it: from 0 to NR_CPUS - 1."""
    if cpu.__class__ is not int or not 0 <= cpu < NR_CPUS:
        check_int(fn, "cpu", cpu, 0, NR_CPUS - 1, "a CPU number")
    return cpu


def cpu_possible(cpu: int) -> bool:
    """Is ``cpu`` one of the machine's CPUs (``cpu`` from 0 to NR_CPUS - 1)."""
    m = current_task().machine
    _cpu_number("cpu_possible", cpu)
    return cpu < m.nr_cpus


def cpu_online(cpu: int) -> bool:
    """Is ``cpu`` online (``cpu`` from 0 to NR_CPUS - 1; beyond the machine's: False)."""
    m = current_task().machine
    _cpu_number("cpu_online", cpu)
    return cpu < m.nr_cpus and m.cpus[cpu].online


def for_each_possible_cpu() -> Iterator[int]:
    """``for cpu in for_each_possible_cpu():`` the machine's CPU numbers, in order."""
    return iter(range(current_task().machine.nr_cpus))


def num_present_cpus() -> int:
    """How many CPUs are present (all of the machine's)."""
    return current_task().machine.nr_cpus


def cpu_present(cpu: int) -> bool:
    """Is ``cpu`` one of the machine's CPUs (present: no hotplug, as cpu_possible())."""
    m = current_task().machine
    _cpu_number("cpu_present", cpu)
    return cpu < m.nr_cpus


def for_each_present_cpu() -> Iterator[int]:
    """``for cpu in for_each_present_cpu():`` the machine's CPU numbers, in order."""
    return iter(range(current_task().machine.nr_cpus))


def for_each_online_cpu() -> Iterator[int]:
    """``for cpu in for_each_online_cpu():`` the online CPU numbers, in order (the mask is
    read when the loop starts)."""
    return iter([c.id for c in current_task().machine.cpus if c.online])


# -- preemption -------------------------------------------------------------------
def preempt_disable() -> None:
    """Disable preemption on this CPU (nests)."""
    current_task().cpu.preempt_count += 1


def preempt_enable() -> None:
    """Re-enable preemption; where it reaches 0 the task may be preempted."""
    t = current_task()
    c = t.cpu
    if not c.preempt_count & PREEMPT_MASK:
        _underflow(t)
        return
    c.preempt_count -= 1
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "preempt_enable")


def preempt_enable_no_resched() -> None:
    """Re-enable preemption without a rescheduling point."""
    t = current_task()
    c = t.cpu
    if not c.preempt_count & PREEMPT_MASK:
        _underflow(t)
        return
    c.preempt_count -= 1


def _underflow(t: Task) -> None:
    """preempt_count_sub()'s DEBUG_LOCKS_WARN_ON(val > preempt_count()): the count stays as
    it is, and the warning is silent once debug_locks is off (after a spinlock BUG: a
    double spin_unlock is that BUG alone, as in the kernel)."""
    if not t.machine.debug_locks:
        return
    file, line, _ = caller_site(3)
    t.machine.report("preempt_count_underflow",
                     [warning_line(t, file, line, "preempt_count_sub"),
                      "DEBUG_LOCKS_WARN_ON(val > preempt_count())"], site=f"{file}:{line}")


def get_cpu() -> int:
    """Disable preemption and return this CPU's number; pair with put_cpu()."""
    c = current_task().cpu
    c.preempt_count += 1
    return c.id


def put_cpu() -> None:
    """preempt_enable() after get_cpu()."""
    preempt_enable()


def preempt_count() -> int:
    return current_task().cpu.preempt_count


def in_atomic() -> bool:
    return current_task().cpu.preempt_count != 0


def in_interrupt() -> bool:
    """Hardirq, softirq, or bottom halves disabled (irq_count() != 0)."""
    return bool(current_task().cpu.preempt_count & IRQ_MASK)


def in_irq() -> bool:
    return bool(current_task().cpu.preempt_count & HARDIRQ_MASK)


in_hardirq = in_irq


def in_softirq() -> bool:
    """Serving a softirq or with bottom halves disabled."""
    return bool(current_task().cpu.preempt_count & SOFTIRQ_MASK)


def in_serving_softirq() -> bool:
    return bool(current_task().cpu.preempt_count & SOFTIRQ_OFFSET)


def in_task() -> bool:
    """Process context: neither hardirq nor softirq being served."""
    return not (current_task().cpu.preempt_count & (HARDIRQ_MASK | SOFTIRQ_OFFSET))


def irqs_disabled() -> bool:
    return current_task().cpu.irqs_off


def preemptible() -> bool:
    c = current_task().cpu
    return c.preempt_count == 0 and not c.irqs_off


# -- local interrupts ---------------------------------------------------------------
def local_irq_disable() -> None:
    current_task().cpu.irqs_off = True


def local_irq_enable() -> None:
    """Enable interrupts on this CPU; pending ones are delivered now."""
    t = current_task()
    c = t.cpu
    if c.irqs_off:
        c.irqs_off = False
        ld = t.machine.lockdep
        if ld is not None:  # locks held across the enable become HARDIRQ-ON (mark_held_locks)
            ld.hardirqs_on(t)
    if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
        t.machine.irq.deliver_pending(c)
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "local_irq_enable")


def local_irq_save() -> int:
    """Disable interrupts; return the flags that local_irq_restore() takes."""
    c = current_task().cpu
    flags = 0 if c.irqs_off else X86_EFLAGS_IF
    c.irqs_off = True
    return flags


def local_irq_restore(flags: int) -> None:
    """Restore the interrupt state local_irq_save() returned (only EFLAGS.IF counts)."""
    if flags.__class__ is not int or not 0 <= flags <= 0xFFFFFFFF:
        current()  # NotInTaskError first, outside a task
        check_int("local_irq_restore", "flags", flags, 0, 0xFFFFFFFF, "the int local_irq_save() returned")
    if flags & X86_EFLAGS_IF:
        local_irq_enable()
    else:
        current_task().cpu.irqs_off = True


def local_bh_disable() -> None:
    current_task().cpu.preempt_count += SOFTIRQ_DISABLE_OFFSET


def local_bh_enable() -> None:
    """Re-enable bottom halves; raised softirqs run now if nothing else masks them.

    With interrupts disabled (in a hardirq handler, or inside spin_lock_irqsave()) it
    warns, as 2.6.11's ``WARN_ON(irqs_disabled())`` and today's
    ``lockdep_assert_irqs_enabled()`` in ``__local_bh_enable_ip`` do: softirqs run here
    would run with interrupts off.
    """
    t = current_task()
    c = t.cpu
    if not c.preempt_count & SOFTIRQ_MASK:
        _underflow(t)
        return
    if c.irqs_off:
        WARN_ON(True, "local_bh_enable() with interrupts disabled")
    c.preempt_count -= SOFTIRQ_DISABLE_OFFSET
    if not c.preempt_count & SOFTIRQ_MASK and not c.irqs_off:
        ld = t.machine.lockdep
        if ld is not None:  # locks held across the enable become SOFTIRQ-ON (mark_held_locks)
            ld.softirqs_on(t)
    if c.softirq_pending and not c.preempt_count & IRQ_MASK:
        t.machine.irq.do_softirq(c)
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "local_bh_enable")


# -- system state ---------------------------------------------------------------------
#: include/linux/kernel.h ``enum system_states`` (2.6): BOOTING until init has run, then
#: RUNNING. ``Machine.system_state`` holds one; the boot phase (mm/bootmem.py) runs BOOTING.
SYSTEM_BOOTING: Final = 0
SYSTEM_RUNNING: Final = 1


# -- sleeping ---------------------------------------------------------------------------
def might_sleep() -> None:
    """Report a caller that may sleep while in atomic context or with irqs off.

    Silent while the machine boots, as 2.6's ``__might_sleep`` is ("... &&
    system_state == SYSTEM_RUNNING && !oops_in_progress"): early boot runs with
    preemption disabled and knowingly calls functions that might sleep.
    """
    t = current_task()
    c = t.cpu
    if (c.preempt_count != 0 or c.irqs_off or t.is_idle) and t.machine.system_state == SYSTEM_RUNNING:
        _sleeping_in_atomic(t, 3)
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "might_sleep")


def might_sleep_if(cond: Any) -> None:
    if cond:
        might_sleep()


#: might_sleep() reports at most once per this much virtual time (HZ jiffies: one second).
MIGHT_SLEEP_RATELIMIT_NS: Final = NSEC_PER_JIFFY * 1000


def _sleeping_in_atomic(t: Task, depth: int) -> None:
    """__might_sleep()'s report, rate-limited as the kernel does: at most one per second
    of virtual time (per run), whatever the call site; the rest are counted in
    ``Machine.might_sleep_suppressed``. "at FILE:LINE" names the simulated code that
    called into the model (the driver's kmalloc), not a line inside the allocators."""
    c = t.cpu
    m = t.machine
    engine = m._engine
    now = max(engine.now, c.clock) if engine is not None else c.clock
    prev = m.might_sleep_prev
    if prev is not None and now - prev < MIGHT_SLEEP_RATELIMIT_NS:
        m.might_sleep_suppressed += 1
        return
    m.might_sleep_prev = now
    file, line, _ = user_site(depth)
    m.report(
        "sleep_in_atomic",
        [f"BUG: sleeping function called from invalid context at {file}:{line}",
         f"in_atomic(): {int(c.preempt_count != 0)}, irqs_disabled(): {int(c.irqs_off)}, "
         f"non_block: 0, pid: {t.pid}, name: {t.comm}",
         f"preempt_count: {c.preempt_count:x}, expected: 0"],
        extra={"site": f"{file}:{line}"})


def _schedule_debug(t: Task) -> None:
    """schedule_debug(): sleeping with a non-zero preempt_count is a bug.

    Today's kernels print the count after schedule()'s own preempt_disable(), so a
    task holding one spinlock shows ``0x00000002``. Sleeping with interrupts disabled
    gets 2.6's "bad: schedule() with irqs disabled!" (schedule() turns them back on).
    """
    c = t.cpu
    if c.preempt_count != 0:
        file, line, _ = caller_site(4)
        t.machine.report("scheduling_while_atomic",
                         [f"BUG: scheduling while atomic: {t.comm}/{t.pid}/0x{c.preempt_count + 1:08x}"],
                         site=f"{file}:{line}")
    elif c.irqs_off and not t.is_idle:
        file, line, _ = caller_site(4)
        t.machine.report("schedule_irqs_disabled", ["bad: schedule() with irqs disabled!"],
                         site=f"{file}:{line}")


def block(on: Any, timeout_ns: int | None = None, event: str = "schedule") -> bool:
    """Sleep until woken (True) or until ``timeout_ns`` of virtual time passes (False).

    The runtime's one way to sleep: wait queues, mutexes, schedule() and msleep use
    it. The caller registered itself where a waker will find it and cleared
    ``current().woken`` (set_current_state() and prepare_to_wait() do) before calling;
    a wake-up that came in between makes this return at once.
    """
    t = current_task()
    if timeout_ns is not None and (timeout_ns.__class__ is not int or timeout_ns < 0):
        check_int("block", "timeout_ns", timeout_ns, 0, what="None or an int number of ns")
    if event.__class__ is not str:
        check_str("block", "event", event)
    _schedule_debug(t)
    ev = t.machine.events
    if ev is not None:
        _sleep_event(ev, t, on, timeout_ns, event)
    woke = t.engine.sleep(t, on, timeout_ns, event)
    if t.hb is not None:  # KCSAN: acquire what the wakers released (runtime/hb.py)
        t.hb.woke(t)
    return woke


def _sleep_event(ev: Any, t: Task, on: Any, timeout_ns: int | None, event: str) -> None:
    """The event log's line for a sleep: where, on what, for how long at most."""
    from .engine import describe_wait
    what = f"{event}: sleeps on {describe_wait(on)}"
    if timeout_ns is not None:
        what += f" (timeout {timeout_ns // NSEC_PER_JIFFY} jiffies)"
    ev.record(t, "sleep", what)


def set_current_state(state: int) -> None:
    """Set the calling task's state: TASK_RUNNING, TASK_INTERRUPTIBLE or TASK_UNINTERRUPTIBLE.

    The kernel idiom for a hand-written sleep::

        set_current_state(TASK_UNINTERRUPTIBLE)   # from here a wake-up is not lost
        if not condition():
            schedule()                            # returns at once if woken meanwhile
        __set_current_state(TASK_RUNNING)
    """
    if state.__class__ is not int or state not in (TASK_RUNNING, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE):
        raise KmemUsageError(f"set_current_state: state(={state!r}) must be TASK_RUNNING, "
                             f"TASK_INTERRUPTIBLE or TASK_UNINTERRUPTIBLE")
    t = current_task()
    t.kstate = state
    if state != TASK_RUNNING:
        t.woken = False


__set_current_state = set_current_state


def wake_up_process(t: Task) -> bool:
    """try_to_wake_up(): wake a sleeping task (or one preparing to sleep); True if it was."""
    me = current_task()
    _task_arg("wake_up_process", t, me)
    if me.hb is not None:  # KCSAN
        me.hb.wake(me, [t])
    woke = me.engine.wake(me if me else None, t)
    if woke and me.machine.events is not None:
        me.machine.events.wake(me, t, "wake_up_process")
    return woke


def _task_arg(fn: str, t: Any, me: Any) -> None:
    """``t`` is a task (not an idle task) of the calling task's machine."""
    m = me.machine  # NotInTaskError outside a task
    if t.__class__ is not Task or t.is_idle:
        raise bad(fn, "t", t, "a task (current(), kthread_run())")
    if t.machine is not m:
        raise KmemUsageError(f"{fn}: t(={t!r}) is a task of another machine ({t.machine!r}); "
                             f"this task runs on {m!r}")


class _Scheduled:
    __slots__ = ()

    def describe(self) -> str:
        return "schedule() (set_current_state() and nothing to wake it)"


_SCHEDULED: Final = _Scheduled()


def schedule() -> None:
    """Give up the CPU. In TASK_RUNNING the task stays runnable (a voluntary switch) and
    returns soon; after set_current_state(TASK_(UN)INTERRUPTIBLE) it sleeps until woken,
    or returns at once if a wake-up already came."""
    t = current_task()
    if t.kstate == TASK_RUNNING:
        if t.woken and t.hb is not None:  # KCSAN: the wake-up came first: acquire what it released
            t.hb.woke(t)
        _schedule_debug(t)
        # a schedule() loop polls like a cpu_relax() loop (LDD3's jitsched: "while
        # (time_before(jiffies, j1)) schedule();"): time passes while it is all that runs
        t.engine.relax(t)
        if t.relax_streak == 1:
            file, line, _ = caller_site(2)
            t.relax_site = f"{file}:{line}"
        t.engine.yield_cpu(t, "schedule")
        return
    block(t.waiting_on if t.waiting_on is not None else _SCHEDULED, None, "schedule")
    t.kstate = TASK_RUNNING


def cond_resched() -> None:
    """A voluntary preemption point; it may sleep, so atomic callers are reported."""
    t = current_task()
    c = t.cpu
    if c.preempt_count != 0 or c.irqs_off:
        _sleeping_in_atomic(t, 3)
        return
    t.engine.yield_cpu(t, "cond_resched")


class _Timer:
    __slots__ = ()

    def describe(self) -> str:
        return "a timer (schedule_timeout)"


_TIMER: Final = _Timer()


def _check_jiffies(fn: str, timeout: Any) -> None:
    current()  # NotInTaskError first, outside a task
    if timeout.__class__ is not int:
        raise KmemUsageError(f"{fn}: timeout(={timeout!r}) must be an int number of jiffies")
    if timeout < 0:
        raise KmemUsageError(f"{fn}: wrong timeout value {timeout & 0xFFFFFFFF:x}")


def schedule_timeout(timeout: int) -> int:
    """Sleep until woken or ``timeout`` jiffies of virtual time have passed; return the
    jiffies left (0 if the time ran out).

    As in the kernel, the task must have set its state first (set_current_state() or
    prepare_to_wait()): in TASK_RUNNING it does not sleep at all and returns the whole
    timeout. A wake-up between setting the state and this call makes it return at once,
    with the time left.
    """
    return _schedule_timeout("schedule_timeout", timeout)


def _schedule_timeout(fn: str, timeout: int) -> int:
    _check_jiffies(fn, timeout)
    t = current_task()
    engine = t.engine
    start = engine.now
    if t.kstate == TASK_RUNNING:
        _schedule_debug(t)
        engine.yield_cpu(t, "schedule_timeout")
        return max(0, timeout - (engine.now - start) // NSEC_PER_JIFFY)
    on = t.waiting_on if t.waiting_on is not None else _TIMER
    woke = block(on, timeout * NSEC_PER_JIFFY, "schedule_timeout")
    t.kstate = TASK_RUNNING
    if not woke:
        return 0
    return max(0, timeout - (engine.now - start) // NSEC_PER_JIFFY)


def schedule_timeout_uninterruptible(timeout: int) -> int:
    """set_current_state(TASK_UNINTERRUPTIBLE), then schedule_timeout()."""
    _check_jiffies("schedule_timeout_uninterruptible", timeout)
    set_current_state(TASK_UNINTERRUPTIBLE)
    return schedule_timeout(timeout)


def schedule_timeout_interruptible(timeout: int) -> int:
    """set_current_state(TASK_INTERRUPTIBLE), then schedule_timeout() (no signals here)."""
    _check_jiffies("schedule_timeout_interruptible", timeout)
    set_current_state(TASK_INTERRUPTIBLE)
    return schedule_timeout(timeout)


def io_schedule_timeout(timeout: int) -> int:
    """schedule_timeout() accounted as I/O wait (the caller sets the state)."""
    return _schedule_timeout("io_schedule_timeout", timeout)


def msleep(msecs: int) -> None:
    """Sleep ``msecs`` of virtual time (no wall time passes), uninterruptibly: a stray
    wake_up_process() only makes it sleep the rest. (The kernel adds one jiffy to round
    up; the model sleeps exactly ``msecs``, HZ being 1000.)"""
    current()  # NotInTaskError first, outside a task
    if msecs.__class__ is not int or msecs < 0:
        check_int("msleep", "msecs", msecs, 0)
    might_sleep()
    left = msecs * 1_000_000 // NSEC_PER_JIFFY
    while left:
        left = schedule_timeout_uninterruptible(left)


def ssleep(seconds: int) -> None:
    """msleep(seconds * 1000) (<linux/delay.h>)."""
    current()  # NotInTaskError first, outside a task
    _uint_arg("ssleep", "seconds", seconds)
    msleep(seconds * 1000)


def msleep_interruptible(msecs: int) -> int:
    """Sleep ``msecs`` of virtual time in TASK_INTERRUPTIBLE; return the milliseconds
    left. The model has no signals, so nothing ends the sleep early: a wake_up_process()
    only makes it sleep the rest (the kernel's loop re-sleeps unless signal_pending()),
    and it returns 0. (The kernel adds one jiffy to round up; the model sleeps exactly
    ``msecs``, as msleep() does.)"""
    current()  # NotInTaskError first, outside a task
    _uint_arg("msleep_interruptible", "msecs", msecs)
    might_sleep()
    left = msecs_to_jiffies(msecs)
    while left:
        left = schedule_timeout_interruptible(left)
    return jiffies_to_msecs(left)


def usleep_range(min: int, max: int) -> None:
    """Sleep at least ``min`` microseconds, at most ``max`` (<linux/delay.h>; an hrtimer,
    not jiffies): the model sleeps exactly ``min`` of virtual time, uninterruptibly (a
    stray wake-up only makes it sleep the rest). ``max`` below ``min`` is misuse."""
    t = current()
    if min.__class__ is not int or min < 0:
        check_int("usleep_range", "min", min, 0)
    if max.__class__ is not int or max < min:
        check_int("usleep_range", "max", max, min, what="an int (microseconds, at least min)")
    might_sleep()
    engine = t.engine
    deadline = engine.now + min * 1000
    while engine.now < deadline:
        set_current_state(TASK_UNINTERRUPTIBLE)
        block(_TIMER, deadline - engine.now, "usleep_range")
        t.kstate = TASK_RUNNING


def udelay(usecs: int) -> None:
    """Busy-wait: charges the cycles to this CPU, never sleeps."""
    t = current_task()
    _count_arg("udelay", "usecs", usecs)
    t.charge(usecs * 1000)
    preempt_point("udelay")


def ndelay(nsecs: int) -> None:
    t = current_task()
    _count_arg("ndelay", "nsecs", nsecs)
    t.charge(nsecs)
    preempt_point("ndelay")


def mdelay(msecs: int) -> None:
    t = current_task()
    _count_arg("mdelay", "msecs", msecs)
    t.charge(msecs * 1_000_000)
    preempt_point("mdelay")


def cpu_relax() -> None:
    """The pause in a busy-wait loop: it costs cycles (costs.CPU_RELAX) and is a scheduling
    point, so the CPU that will end the wait gets to run. A loop in which every task only
    busy-waits (or spins, or sleeps) is reported as a livelock and ends the run."""
    t = current_task()
    t.engine.relax(t)
    if t.relax_streak == 1:  # the first turn of a busy-wait: where its loop is
        file, line, _ = caller_site(2)
        t.relax_site = f"{file}:{line}"
    preempt_point("cpu_relax")


def _clock(t: Task) -> int:
    """Virtual time as ``t``'s CPU reads it: the machine's clock, brought up to this CPU's
    own (the work charged to it) if that is ahead, so that time passes in a loop that
    only works or busy-waits (a udelay() poll with a jiffies timeout ends). The read is
    remembered: a cpu_relax() loop that reads the clock may be waiting for time to pass
    (runtime/engine.py, Engine._pass_time). Monotonic on every CPU."""
    e = t.engine
    c = t.cpu
    t.clock_read = t.relaxes
    if c is not None and c.clock > e.now:
        e.advance(c.clock)
    return e.now


def jiffies() -> int:
    """The virtual clock in jiffies (HZ = 1000), as this CPU reads it: i386's 32-bit
    ``unsigned long jiffies``, from 0 at the start of the machine's clock, so it wraps
    to 0 after 2**32 jiffies (49.7 days of virtual time; compare with time_after())."""
    return (_clock(current_task()) // NSEC_PER_JIFFY) & ULONG_MAX


# -- jiffies arithmetic (<linux/jiffies.h>) -------------------------------------------------
#: i386's ``unsigned long``: 32 bits. jiffies values and the time_* comparisons use it.
ULONG_MAX: Final = 0xFFFFFFFF
_LONG_SIGN: Final = 0x80000000
#: include/linux/jiffies.h: ``((LONG_MAX >> 1) - 1)``, the longest timeout (i386 long)
MAX_JIFFY_OFFSET: Final = ((0x7FFFFFFF >> 1) - 1)
#: include/linux/time.h
MSEC_PER_SEC: Final = 1000
USEC_PER_SEC: Final = 1_000_000
_UINT_MAX: Final = 0xFFFFFFFF


def _jiffy_arg(fn: str, name: str, v: Any) -> None:
    """A jiffies value: any int (C's unsigned long arithmetic takes it modulo 2**32, so
    ``jiffies() + HZ`` and ``jiffies() - stamp`` are fine as they are); bools and floats
    are misuse."""
    if v.__class__ is not int:
        check_int(fn, name, v, what="an int jiffies value")


def time_after(a: int, b: int) -> bool:
    """True if time ``a`` is after time ``b``: the kernel's wrap-safe
    ``(long)((b) - (a)) < 0`` on 32-bit unsigned longs (correct across a jiffies wrap as
    long as the two are less than 2**31 jiffies apart)."""
    if a.__class__ is not int or b.__class__ is not int:
        _jiffy_arg("time_after", "a", a)
        _jiffy_arg("time_after", "b", b)
    return bool((b - a) & _LONG_SIGN)


def time_before(a: int, b: int) -> bool:
    """time_after(b, a)."""
    if a.__class__ is not int or b.__class__ is not int:
        _jiffy_arg("time_before", "a", a)
        _jiffy_arg("time_before", "b", b)
    return bool((a - b) & _LONG_SIGN)


def time_after_eq(a: int, b: int) -> bool:
    """``(long)((a) - (b)) >= 0``."""
    if a.__class__ is not int or b.__class__ is not int:
        _jiffy_arg("time_after_eq", "a", a)
        _jiffy_arg("time_after_eq", "b", b)
    return not (a - b) & _LONG_SIGN


def time_before_eq(a: int, b: int) -> bool:
    """time_after_eq(b, a)."""
    if a.__class__ is not int or b.__class__ is not int:
        _jiffy_arg("time_before_eq", "a", a)
        _jiffy_arg("time_before_eq", "b", b)
    return not (b - a) & _LONG_SIGN


def time_in_range(a: int, b: int, c: int) -> bool:
    """``time_after_eq(a, b) && time_before_eq(a, c)``: ``a`` within [b, c]."""
    for name, v in (("a", a), ("b", b), ("c", c)):
        _jiffy_arg("time_in_range", name, v)
    return not (a - b) & _LONG_SIGN and not (c - a) & _LONG_SIGN


def _uint_arg(fn: str, name: str, v: Any) -> int:
    """A C ``unsigned int``: an int from 0 to 2**32 - 1."""
    if v.__class__ is not int or not 0 <= v <= _UINT_MAX:
        check_int(fn, name, v, 0, _UINT_MAX, "an unsigned int")
    return v


def msecs_to_jiffies(m: int) -> int:
    """Milliseconds to jiffies, rounding up (HZ = 1000: the same number); ``m`` above
    INT_MAX (a negative int in C) is an infinite timeout, MAX_JIFFY_OFFSET, as the kernel's
    ``__msecs_to_jiffies()``."""
    _uint_arg("msecs_to_jiffies", "m", m)
    if m & _LONG_SIGN:
        return MAX_JIFFY_OFFSET
    return (m + (MSEC_PER_SEC // HZ) - 1) // (MSEC_PER_SEC // HZ)


def usecs_to_jiffies(u: int) -> int:
    """Microseconds to jiffies, rounding up (HZ = 1000: ``(u + 999) / 1000``); ``u`` above
    INT_MAX is MAX_JIFFY_OFFSET, as ``__usecs_to_jiffies()``."""
    _uint_arg("usecs_to_jiffies", "u", u)
    if u & _LONG_SIGN:
        return MAX_JIFFY_OFFSET
    return (u + (USEC_PER_SEC // HZ) - 1) // (USEC_PER_SEC // HZ)


def jiffies_to_msecs(j: int) -> int:
    """Jiffies to milliseconds (HZ = 1000: the same), an ``unsigned int`` as the kernel's."""
    if j.__class__ is not int or not 0 <= j <= ULONG_MAX:
        check_int("jiffies_to_msecs", "j", j, 0, ULONG_MAX, "an unsigned long number of jiffies")
    return ((MSEC_PER_SEC // HZ) * j) & _UINT_MAX


def jiffies_to_usecs(j: int) -> int:
    """Jiffies to microseconds (HZ = 1000: ``1000 * j``), truncated to the kernel's
    ``unsigned int`` result."""
    if j.__class__ is not int or not 0 <= j <= ULONG_MAX:
        check_int("jiffies_to_usecs", "j", j, 0, ULONG_MAX, "an unsigned long number of jiffies")
    return ((USEC_PER_SEC // HZ) * j) & _UINT_MAX


def get_jiffies_64() -> int:
    """jiffies_64: the virtual clock in jiffies, 64 bits wide (it does not wrap in a run)."""
    return _clock(current_task()) // NSEC_PER_JIFFY


def time_is_before_jiffies(a: int) -> bool:
    """``time_after(jiffies, a)``: has time ``a`` passed?"""
    if a.__class__ is not int:
        current()
        _jiffy_arg("time_is_before_jiffies", "a", a)
    return time_after(jiffies(), a)


def time_is_after_jiffies(a: int) -> bool:
    """``time_before(jiffies, a)``: is time ``a`` still to come?"""
    if a.__class__ is not int:
        current()
        _jiffy_arg("time_is_after_jiffies", "a", a)
    return time_before(jiffies(), a)


def ktime_get_ns() -> int:
    """The virtual clock in ns, as this CPU reads it."""
    return _clock(current_task())


# -- hung tasks ---------------------------------------------------------------------------


def report_hung_task(waited_ns: int, why: str) -> None:
    """khungtaskd's report for the calling task, stuck ``waited_ns`` of virtual time in a wait
    that can never end (``why`` says which); the task ends with an Oops so the run goes on.

    The model's one hung-task reporter: the allocators call it where a retry loop or a
    wait could only go on for ever (the kernel would leave the task in D state).
    """
    t = current_task()
    t.machine.report("hung_task", [
        f"INFO: task {t.comm}:{t.pid} blocked for more than {waited_ns // (1000 * NSEC_PER_JIFFY)} seconds.",
        '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
        f"      {why}"], fatal=True)


# -- kernel threads -----------------------------------------------------------------------
_NO_DATA: Final = object()


#: -EINTR: what kthread_stop() returns for a thread stopped before its function ran
EINTR: Final = 4


class _KThread:
    """struct kthread: the function of a thread started by kthread_run() or kthread_create(), its
    KTHREAD_SHOULD_STOP bit, its result and the ``exited`` completion kthread_stop() waits
    on (kernel/kthread.c). It is the task's function: kthread() calls ``threadfn`` only if
    no kthread_stop() came first (else the result is -EINTR), and on the way out (a return
    or an Oops: do_exit()) wakes the task waiting in kthread_stop()."""

    __slots__ = ("fn", "should_stop", "exited", "result", "waiters", "guard", "name", "parked", "creator")

    def __init__(self, fn: Callable[[], Any], name: str, creator: Task | None = None) -> None:
        self.fn = fn
        self.should_stop = False
        self.exited = False
        self.result: Any = None
        self.waiters: list[Task] = []
        self.guard = threading.Lock()
        self.name = name
        #: kthread_create(): the thread sleeps until its first wake-up; the creator waits
        #: until it is asleep (``parked``), as kthread_create() waits for kthread()'s ``done``
        self.parked = False
        self.creator = creator

    def __call__(self) -> Any:
        done = True
        try:
            if self.creator is not None:
                self._park()
            self.result = -EINTR if self.should_stop else self.fn()
            return self.result
        except TaskAbort:
            done = False  # the run is being torn down: nobody is left to wake
            raise
        finally:
            if done:
                self._exit()

    def _park(self) -> None:
        """kthread(): set the state, tell the creator, sleep until wake_up_process() (or
        kthread_stop()). A wake-up that comes before the sleep is not lost."""
        t = current_task()
        t.kstate = TASK_INTERRUPTIBLE  # not watched by khungtaskd (the kernel's sleeps uninterruptibly)
        t.woken = False
        with self.guard:
            self.parked = True
            creator = self.creator
            self.creator = None
        if creator is not None:
            t.engine.wake(t, creator)
        block(_Parked(self.name), None, "kthread")
        t.kstate = TASK_RUNNING

    def _exit(self) -> None:
        t = current_task()
        with self.guard:
            self.exited = True
            waiters = self.waiters[:]
            self.waiters.clear()
        if t.hb is not None:  # KCSAN: what the thread did happens before kthread_stop() returns
            t.hb.release(t, self)
        for w in waiters:
            t.engine.wake(t, w)

    def describe(self) -> str:
        return f"the exit of kthread {self.name} (kthread_stop)"


class _Parked:
    """What a kthread_create()d thread sleeps on before its first wake-up."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return f"its first wake_up_process() (kthread_create of {self.name})"


class _Creating:
    """What kthread_create() waits on: the new thread's first sleep."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return f"the start of kthread {self.name} (kthread_create)"


def kthread_create(threadfn: Callable[..., Any], data: Any = _NO_DATA, namefmt: str = "") -> Task:
    """Create ``threadfn(data)`` (or ``threadfn()``) as a new kernel thread that sleeps until
    ``wake_up_process()`` starts it (``kthread_run()`` is both at once); a ``kthread_stop()``
    before that wakes it only to exit with -EINTR, ``threadfn`` never running. Returns when
    the thread is asleep. A thread nobody ever wakes is asleep when the run's other tasks
    end: the model's deadlock report names it. Context: process, may sleep."""
    t = current_task()
    current()  # NotInTaskError first, outside a task
    check_callable("kthread_create", "threadfn", threadfn)
    check_str("kthread_create", "namefmt", namefmt)
    might_sleep()
    fn = threadfn if data is _NO_DATA else (lambda: threadfn(data))
    name = namefmt or getattr(threadfn, "__name__", "kthread")
    if t.hb is not None:  # KCSAN: the new thread starts after what its creator did
        fn = t.hb.spawn(t, fn)
    kt = _KThread(fn, name, t)
    task = t.machine._spawn(kt, name)
    kt.name = task.name
    waits = _Creating(task.name)
    try:
        while True:
            with kt.guard:
                if kt.parked:
                    break
                t.kstate = TASK_UNINTERRUPTIBLE  # wait_for_completion(&done)
                t.woken = False
            block(waits, None, "kthread_create")
    finally:
        t.kstate = TASK_RUNNING
    return task


def kthread_run(threadfn: Callable[..., Any], data: Any = _NO_DATA, namefmt: str = "") -> Task:
    """Start ``threadfn(data)`` (or ``threadfn()``) as a new kernel thread in this run."""
    t = current_task()
    current()  # NotInTaskError first, outside a task
    check_callable("kthread_run", "threadfn", threadfn)
    check_str("kthread_run", "namefmt", namefmt)
    fn = threadfn if data is _NO_DATA else (lambda: threadfn(data))
    name = namefmt or getattr(threadfn, "__name__", "kthread")
    if t.hb is not None:  # KCSAN: the new thread starts after what its spawner did
        fn = t.hb.spawn(t, fn)
    kt = _KThread(fn, name)
    task = t.machine._spawn(kt, name)
    kt.name = task.name
    return task


def kthread_should_stop() -> bool:
    """Has kthread_stop() been called for the calling thread? (False in a task that
    kthread_run() did not start.) A thread's loop tests it and returns when it is true."""
    t = current()  # NotInTaskError outside a task
    kt = t.fn
    return kt.__class__ is _KThread and kt.should_stop


def kthread_stop(t: Task) -> Any:
    """Tell ``t`` (started by kthread_run() or kthread_create()) to stop: set its should-stop flag, wake it
    (wake_up_process()), and sleep (TASK_UNINTERRUPTIBLE) until it has exited; return
    what its function returned, or -EINTR (-4) if it was stopped before that function ran.

    A thread that never tests kthread_should_stop() (or sleeps again without testing it)
    never exits: the caller waits for ever, which the model reports as a deadlock once
    every task is stuck (or khungtaskd's hung task after 120 s of virtual time).
    Context: process, may sleep."""
    me = current_task()
    _task_arg("kthread_stop", t, me)
    kt = t.fn
    if kt.__class__ is not _KThread:
        raise KmemUsageError(f"kthread_stop: t(={t!r}) was not started by kthread_run() or kthread_create()")
    might_sleep()
    kt.should_stop = True
    wake_up_process(t)
    try:
        while True:
            with kt.guard:
                if kt.exited:
                    break
                me.kstate = TASK_UNINTERRUPTIBLE  # wait_for_completion(&kthread->exited)
                me.woken = False
                if me not in kt.waiters:
                    kt.waiters.append(me)
            block(kt, None, "kthread_stop")
    except BaseException:
        with kt.guard:
            if me in kt.waiters:
                kt.waiters.remove(me)
        raise
    finally:
        me.kstate = TASK_RUNNING
    if me.hb is not None:  # KCSAN
        me.hb.acquire(me, kt)
    return kt.result


def kthread_bind(t: Task, cpu: int) -> None:
    me = current_task()
    _task_arg("kthread_bind", t, me)
    check_int("kthread_bind", "cpu", cpu, 0, me.machine.nr_cpus - 1, "a CPU number")
    t.cpus_allowed = frozenset((cpu,))
    me.engine.ready_changed(t)


def set_cpus_allowed(t: Task, cpus: Any) -> None:
    """Let ``t`` run only on the CPUs of ``cpus`` (an iterable of CPU numbers, not empty)."""
    me = current_task()
    _task_arg("set_cpus_allowed", t, me)
    if isinstance(cpus, (str, bytes)) or not hasattr(cpus, "__iter__"):
        raise bad("set_cpus_allowed", "cpus", cpus, "an iterable of CPU numbers")
    allowed = list(cpus)
    for c in allowed:
        if c.__class__ is not int or not 0 <= c < me.machine.nr_cpus:
            raise bad("set_cpus_allowed", "cpus", cpus, f"CPU numbers from 0 to {me.machine.nr_cpus - 1}")
    if not allowed:
        raise bad("set_cpus_allowed", "cpus", cpus, "a CPU mask that is not empty")
    t.cpus_allowed = frozenset(allowed)
    me.engine.ready_changed(t)


# -- interrupts and softirqs ------------------------------------------------------------
def request_irq(irq: int, handler: Callable[[int, Any], Any], flags: int = 0, name: str = "",
                dev_id: Any = None) -> int:
    """Register an interrupt handler, kernel argument order; 0, or -EBUSY (-16) when the
    line already has a handler and not both pass SA_SHIRQ, or -EINVAL (-22) for SA_SHIRQ
    without a dev_id (2.6.11's request_irq and setup_irq)."""
    m = current_task().machine
    check_int("request_irq", "flags", flags, 0, what="an int of SA_* flags")
    return m.irq.request_irq(irq, handler, name, dev_id, flags=flags)


def free_irq(irq: int, dev_id: Any = None) -> None:
    """Remove the handler of ``irq`` registered with ``dev_id``, then wait until no other
    CPU runs it (synchronize_irq()): after free_irq() the device's memory may be freed.
    A line with no such handler gets the kernel's WARN "Trying to free already-free IRQ %d"."""
    t = current_task()
    m = t.machine
    check_int("free_irq", "irq", irq, 0)
    irqs = m.irq
    if t.cpu.preempt_count & IRQ_MASK:  # in_interrupt()
        irqs.warn(t, f"Trying to free IRQ {irq} from IRQ context!", "__free_irq", f"free_irq_in_irq:{irq}")
    if not irqs.free_irq(irq, dev_id):
        irqs.warn(t, f"Trying to free already-free IRQ {irq}", "__free_irq", f"free_irq:{irq}")
        return
    while irqs.busy_elsewhere(irq, t):  # synchronize_irq(): 2.6.11 spins on IRQ_INPROGRESS
        cpu_relax()
    if t.hb is not None:  # KCSAN: what the line's handlers did happens before what follows
        t.hb.acquire(t, ("irq_done", irq))


#: The interrupt lines disable_irq() and friends take without a handler registered
#: (irq_desc exists for each of them, as for i386's vectors); a line with a handler
#: (request_irq() takes any number) is always taken.
NR_IRQS: Final = 256


def _irq_line(fn: str, irq: Any, t: Task) -> None:
    if irq.__class__ is not int or irq < 0 or (irq >= NR_IRQS and irq not in t.machine.irq.actions):
        current()  # NotInTaskError first, outside a task
        check_int(fn, "irq", irq, 0, NR_IRQS - 1, "an interrupt line (or one request_irq() took)")


def disable_irq_nosync(irq: int) -> None:
    """Disable interrupt line ``irq`` on every CPU, not waiting for a handler running now.
    Disabling nests (irq_desc.depth): the line comes back at the matching enable_irq().
    An interrupt of a disabled line is not delivered: it stays pending and is raised
    again, on the CPU it came to, when the line is enabled (IRQS_PENDING, check_irq_resend)."""
    t = current_task()
    _irq_line("disable_irq_nosync", irq, t)
    t.machine.irq.disable_nosync(irq)


def disable_irq(irq: int) -> None:
    """disable_irq_nosync(), then synchronize_irq(): on return no handler of ``irq`` runs
    on any CPU, and none will until enable_irq(). It waits by spinning, as 2.6's
    synchronize_irq() does, so 2.6's "with care" callers in atomic context are not reported.
    Called from the line's own handler it would wait for itself for ever: that is
    reported as today's kernel reports it (its disable_irq() starts with might_sleep():
    "BUG: sleeping function called from invalid context"), and the model does not wait
    for itself (disable_irq_nosync() is the handler's way)."""
    t = current_task()
    _irq_line("disable_irq", irq, t)
    irqs = t.machine.irq
    running = irqs.running.get(irq)
    if running and t in running and t.cpu.preempt_count & HARDIRQ_MASK:
        _sleeping_in_atomic(t, 3)
    irqs.disable_nosync(irq)
    _synchronize_irq(t, irq)


def synchronize_irq(irq: int) -> None:
    """Wait until no other CPU runs a handler of ``irq`` (IRQ_INPROGRESS, spinning with
    cpu_relax()); what those handlers did happens before what follows (KCSAN)."""
    t = current_task()
    _irq_line("synchronize_irq", irq, t)
    _synchronize_irq(t, irq)


def _synchronize_irq(t: Task, irq: int) -> None:
    irqs = t.machine.irq
    while irqs.busy_elsewhere(irq, t):
        cpu_relax()
    if t.hb is not None:  # KCSAN: what the line's handlers did happens before what follows
        t.hb.acquire(t, ("irq_done", irq))


def enable_irq(irq: int) -> None:
    """Undo one disable_irq(): at depth 0 the line is enabled again and an interrupt that
    came while it was disabled is delivered now. An enable_irq() without a disable is the
    kernel's WARN "Unbalanced enable for IRQ %d" and changes nothing."""
    t = current_task()
    _irq_line("enable_irq", irq, t)
    file, line, _ = caller_site(2)
    t.machine.irq.enable(t, irq, (file, line))


def raise_irq(irq: int, cpu: int | None = None) -> None:
    """Raise ``irq`` on CPU ``cpu`` (default: this one). It runs in hardirq context
    on that CPU as soon as its interrupts are enabled."""
    t = current_task()
    m = t.machine
    check_int("raise_irq", "irq", irq, 0)
    if cpu is not None:
        check_int("raise_irq", "cpu", cpu, 0, m.nr_cpus - 1, "None or a CPU number")
    m.raise_irq(irq, t.cpu.id if cpu is None else cpu)


def _softirq_nr(fn: str, nr: Any) -> None:
    from .irq import NR_SOFTIRQS
    if nr.__class__ is not int or not 0 <= nr < NR_SOFTIRQS:
        check_int(fn, "nr", nr, 0, NR_SOFTIRQS - 1, "a softirq number")


def open_softirq(nr: int, action: Callable[[], Any]) -> None:
    m = current_task().machine
    _softirq_nr("open_softirq", nr)
    check_callable("open_softirq", "action", action, how="action()")
    m.open_softirq(nr, action)


def raise_softirq(nr: int) -> None:
    """Mark softirq ``nr`` pending on this CPU; it runs on irq exit or local_bh_enable()."""
    t = current_task()
    c = t.cpu
    _softirq_nr("raise_softirq", nr)
    if t.hb is not None:  # KCSAN: the bottom half sees what raised it
        t.hb.softirq_raise(t, c.id)
    c.softirq_pending |= 1 << nr
    if not c.preempt_count & IRQ_MASK:
        t.machine.irq.do_softirq(c)


def printk(msg: str, level: str = "INFO") -> None:
    """printk(): into the machine's dmesg buffer and loguru (``level``: a loguru level name)."""
    m = current_task().machine
    check_str("printk", "msg", msg)
    check_choice("printk", "level", level, PRINTK_LEVELS)
    if m.events is not None:
        m.events.record(current_task(), "printk", msg.split("\n", 1)[0])
    m.printk(msg, level)


#: the loguru levels printk() takes
PRINTK_LEVELS: Final = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def panic(msg: str) -> None:
    """panic(): the machine stops; Machine.run raises KernelPanic."""
    m = current_task().machine
    check_str("panic", "msg", msg)
    m.panic(msg)


def BUG(msg: str = "") -> None:
    """BUG(): an oops in the running task."""
    current()  # NotInTaskError first, outside a task
    check_str("BUG", "msg", msg)
    file, line, _ = caller_site(2)
    current_task().machine.report("bug", [f"kernel BUG at {file}:{line}!", *([msg] if msg else [])], fatal=True)


def WARN_ON(cond: Any, msg: str = "") -> bool:
    """WARN_ON(): a report (not fatal) when ``cond`` holds; returns ``bool(cond)``."""
    current()  # NotInTaskError first, outside a task
    if msg.__class__ is not str:
        check_str("WARN_ON", "msg", msg)
    if cond:
        t = current_task()
        file, line, _ = caller_site(2)
        t.machine.report("warning", [warning_line(t, file, line),
                                     *([msg] if msg else [])], site=f"{file}:{line}")
    return bool(cond)


def BUG_ON(cond: Any) -> None:
    """BUG_ON(): BUG() (an oops in the running task, "kernel BUG at FILE:LINE!") when
    ``cond`` holds; nothing otherwise."""
    current()  # NotInTaskError first, outside a task
    if cond:
        file, line, _ = caller_site(2)
        current_task().machine.report("bug", [f"kernel BUG at {file}:{line}!"], fatal=True)


def _warn(t: Task, file: str, line: int, msg: str) -> None:
    t.machine.report("warning", [warning_line(t, file, line), *([msg] if msg else [])], site=f"{file}:{line}")


def _warn_fmt(fn: str, fmt: Any, args: tuple[Any, ...]) -> str:
    """printk's format applied as Python's ``%`` (which takes C's ``%d %u %x %s %lu %ld``;
    the length modifiers are ignored); a format that does not fit its arguments is misuse,
    answered before anything is reported."""
    if fmt.__class__ is not str:
        check_str(fn, "fmt", fmt)
    if not args:
        return fmt.rstrip("\n")
    try:
        return (fmt % args).rstrip("\n")
    except (TypeError, ValueError, KeyError) as e:
        raise KmemUsageError(f"{fn}: fmt(={fmt!r}) does not fit its arguments {args!r}: {e}") from None


def _once(t: Task, file: str, line: int) -> bool:
    """The call site's ``__warned`` flag (a static of the call site, for the machine's
    life): True the first time it is asked for ``file:line`` on this machine."""
    warned = _WARNED.get(t.machine)
    if warned is None:
        warned = _WARNED[t.machine] = set()
    key = (file, line)
    if key in warned:
        return False
    warned.add(key)
    return True


#: the call sites each machine's WARN_ON_ONCE()/WARN_ONCE() fired at (weak: a machine's
#: flags go with it, as a kernel image's statics do)
_WARNED: Final[weakref.WeakKeyDictionary[Any, set[tuple[str, int]]]] = weakref.WeakKeyDictionary()


def WARN_ON_ONCE(cond: Any) -> bool:
    """WARN_ON() the first time ``cond`` holds at this call site on this machine, silent
    after that; returns ``bool(cond)`` every time, as the kernel's."""
    t = current()
    if cond:
        file, line, _ = caller_site(2)
        if _once(t, file, line):
            _warn(t, file, line, "")
    return bool(cond)


def WARN(cond: Any, fmt: str, *args: Any) -> bool:
    """WARN(cond, fmt, ...): when ``cond`` holds, a warning whose message is ``fmt % args``
    (printk-style); returns ``bool(cond)``."""
    t = current()
    msg = _warn_fmt("WARN", fmt, args)
    if cond:
        file, line, _ = caller_site(2)
        _warn(t, file, line, msg)
    return bool(cond)


def WARN_ONCE(cond: Any, fmt: str, *args: Any) -> bool:
    """WARN() the first time ``cond`` holds at this call site on this machine; returns
    ``bool(cond)`` every time."""
    t = current()
    msg = _warn_fmt("WARN_ONCE", fmt, args)
    if cond:
        file, line, _ = caller_site(2)
        if _once(t, file, line):
            _warn(t, file, line, msg)
    return bool(cond)


__all__ = [
    # current, CPU identity, preemption
    "current", "get_current", "raw_smp_processor_id", "smp_processor_id", "get_cpu", "put_cpu",
    "preempt_disable", "preempt_enable", "preempt_enable_no_resched", "preempt_count", "preempt_point",
    "in_atomic", "in_interrupt", "in_irq", "in_hardirq", "in_softirq", "in_serving_softirq", "in_task",
    "irqs_disabled", "preemptible", "charge",
    # CPU masks
    "NR_CPUS", "num_possible_cpus", "num_online_cpus", "cpu_possible", "cpu_online", "for_each_possible_cpu",
    "for_each_online_cpu", "num_present_cpus", "cpu_present", "for_each_present_cpu",
    # local interrupts and bottom halves
    "local_irq_disable", "local_irq_enable", "local_irq_save", "local_irq_restore",
    "local_bh_disable", "local_bh_enable",
    # sleeping, the task state, time
    "might_sleep", "might_sleep_if", "TASK_RUNNING", "TASK_INTERRUPTIBLE", "TASK_UNINTERRUPTIBLE",
    "set_current_state", "__set_current_state", "schedule", "cond_resched", "schedule_timeout",
    "schedule_timeout_uninterruptible", "schedule_timeout_interruptible", "io_schedule_timeout",
    "wake_up_process", "msleep", "ssleep", "msleep_interruptible", "usleep_range", "udelay", "ndelay", "mdelay",
    "cpu_relax",
    "jiffies", "ktime_get_ns", "get_jiffies_64", "time_is_before_jiffies", "time_is_after_jiffies",
    # jiffies arithmetic
    "ULONG_MAX", "MAX_JIFFY_OFFSET", "MSEC_PER_SEC", "USEC_PER_SEC", "time_after", "time_before",
    "time_after_eq", "time_before_eq", "time_in_range", "msecs_to_jiffies", "usecs_to_jiffies",
    "jiffies_to_msecs", "jiffies_to_usecs",
    "SYSTEM_BOOTING", "SYSTEM_RUNNING",
    # kernel threads, interrupts, softirqs
    "kthread_run", "kthread_create", "kthread_should_stop", "kthread_stop", "EINTR",
    "kthread_bind", "set_cpus_allowed", "request_irq", "free_irq", "raise_irq",
    "NR_IRQS", "disable_irq", "disable_irq_nosync", "enable_irq", "synchronize_irq",
    "open_softirq", "raise_softirq",
    # printk and bugs
    "printk", "panic", "BUG", "WARN_ON", "BUG_ON", "WARN_ON_ONCE", "WARN", "WARN_ONCE",
]
