"""ksoftirqd/N: the per-CPU kernel threads that run deferred softirq work (timers, tasklets).

Kept: the softirq numbers of today's include/linux/interrupt.h (HI_SOFTIRQ 0, TIMER_SOFTIRQ
1, TASKLET_SOFTIRQ 6); a softirq raised outside interrupt context wakes this CPU's
ksoftirqd (raise_softirq_irqoff()'s ``if (!in_interrupt()) wakeup_softirqd()``), which runs
the pending softirqs with SOFTIRQ_OFFSET in the preempt count and interrupts on
(__do_softirq via runtime/irq.py ``do_softirq``), so in_softirq() and in_atomic() hold, and
lockdep sees IN-SOFTIRQ usage; a softirq raised in hardirq context runs at irq exit, one
raised with bottom halves disabled at local_bh_enable() (both already in runtime/irq.py and
runtime/kernel.py). One ksoftirqd per CPU, bound to it, a daemon (as kswapd: it ends with
the run's tasks, and the hung-task and deadlock watchdogs do not wait for it).

Timers: ksoftirqd/N sleeps (schedule_timeout) until the earliest ``expires`` of CPU N's
base; the engine's timed-sleep machinery makes virtual time pass to it when every task
sleeps. Due work on CPU N runs in ksoftirqd/N's context when it gets CPU N; while a task
holds CPU N, the engine's clock hook (``Interrupts.timer_hook``, called as its clock passes
deadlines: runtime/engine.py ``advance``, ``_fire_due``) raises CPU N's local timer
interrupt (LOCAL_TIMER_VECTOR), whose handler raises the due softirqs, run at its irq exit
on top of that task, as the kernel's timer interrupt does. So a timer runs on the CPU it was
added on, when that CPU's clock has passed ``expires``.

Simplified: the interrupt comes when virtual time is seen to pass (a clock read, or every
task asleep), not at a periodic tick; an idle CPU's due work is run by ksoftirqd, not by the
idle task's irq exit (the engine's idle tasks do not interleave with the other CPUs under
the deterministic policies).

The state lives with the machine (``deferred_state``); ksoftirqd starts at the first use of
a timer or tasklet in a machine, and with every later run of it (``add_daemon``).

Kernel files modelled: kernel/softirq.c (ksoftirqd, wakeup_softirqd, run_ksoftirqd).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .irq import LOCAL_TIMER_VECTOR
from .kernel import jiffies, preempt_point, schedule, schedule_timeout, set_current_state
from .preempt import HARDIRQ_MASK, HARDIRQ_OFFSET, HUNG_TASK_TIMEOUT_NS, NSEC_PER_JIFFY, SOFTIRQ_MASK
from .task import T_DONE, T_SLEEPING, TASK_INTERRUPTIBLE, TASK_RUNNING, Task, current_task

if TYPE_CHECKING:
    from .machine import SmpMachine
    from .task import CPU

#: include/linux/interrupt.h (today's numbering; NR_SOFTIRQS is 10 in runtime/irq.py too)
HI_SOFTIRQ: Final = 0
TIMER_SOFTIRQ: Final = 1
TASKLET_SOFTIRQ: Final = 6
DEFERRED_SOFTIRQS: Final = (1 << HI_SOFTIRQ) | (1 << TIMER_SOFTIRQ) | (1 << TASKLET_SOFTIRQ)

#: the softirq actions the deferred-work modules register: ``action(state, cpu)``
SOFTIRQ_ACTIONS: dict[int, Callable[[DeferredState, int], None]] = {}


class DeferredState:
    """One machine's deferred work: per-CPU timer bases and tasklet lists, ksoftirqd, the
    work queues. ``guard`` keeps the lists whole under the free policy (held for list
    operations only, never across simulated code)."""

    def __init__(self, m: SmpMachine) -> None:
        n = m.nr_cpus
        self.m = m
        self.guard = threading.Lock()
        #: the armed timers of each CPU's base (tvec_base), in arming order
        self.timers: list[list[Any]] = [[] for _ in range(n)]
        #: the timer each base runs now (base->running_timer)
        self.running_timer: list[Any] = [None] * n
        #: each CPU's tasklet_vec and tasklet_hi_vec
        self.tasklets: list[list[Any]] = [[] for _ in range(n)]
        self.hi_tasklets: list[list[Any]] = [[] for _ in range(n)]
        #: this run's ksoftirqd/N (None until it has started)
        self.ksoftirqd: list[Task | None] = [None] * n
        #: the task whose context runs each base's timer now (del_timer_sync from it)
        self.running_task: list[Task | None] = [None] * n
        self.started = False
        #: how many of SOFTIRQ_ACTIONS are in the machine's softirq vector
        self.installed = 0
        #: the work queues (runtime/workqueue.py): the system one ("events"), and all
        self.keventd: Any = None
        self.workqueues: list[Any] = []

    # -- what ksoftirqd looks at --------------------------------------------------------
    def next_expiry(self, cpu: int) -> int | None:
        """The earliest ``expires`` (jiffies) of ``cpu``'s armed timers."""
        timers = self.timers[cpu]
        return min(t.expires for t in timers) if timers else None

    def tasklets_ready(self, cpu: int) -> tuple[int, bool]:
        """(softirq bits of ``cpu``'s tasklets that can run now, whether an enabled one
        waits because it runs on another CPU)."""
        bits = 0
        busy = False
        for nr, lst in ((HI_SOFTIRQ, self.hi_tasklets[cpu]), (TASKLET_SOFTIRQ, self.tasklets[cpu])):
            for tl in lst:
                if tl.count == 0:
                    if tl.running:
                        busy = True
                    else:
                        bits |= 1 << nr
                        break
        return bits, busy

    def kick(self, cpu: int, waker: Task) -> None:
        """wakeup_softirqd(): wake ``cpu``'s ksoftirqd (it re-reads its work)."""
        kt = self.ksoftirqd[cpu]
        if kt is not None and kt.engine is waker.engine and kt.state != T_DONE and waker.engine is not None:
            waker.engine.wake(waker, kt)

    def install_actions(self) -> None:
        """Put the softirq actions of the deferred-work modules imported so far in the
        machine's softirq vector (a module imported later adds its own at its first use)."""
        vec = self.m.irq.softirq_vec
        for nr, action in SOFTIRQ_ACTIONS.items():
            vec[nr] = _softirq_action(self, action)
        self.installed = len(SOFTIRQ_ACTIONS)

    # -- starting -------------------------------------------------------------------------
    def start(self, t: Task) -> None:
        """First use in this machine: install the softirq actions, start ksoftirqd/N now
        and with every later run."""
        if self.started:
            return
        self.started = True
        self.install_actions()
        self.m.irq.local_timer = self._local_timer_interrupt
        for n in range(self.m.nr_cpus):
            fn = _ksoftirqd_fn(self, n)
            self.m.add_daemon(f"ksoftirqd/{n}", fn, cpus=[n])
            self.ksoftirqd[n] = self.m._spawn(fn, f"ksoftirqd/{n}", daemon=True, cpus=frozenset((n,)))
        self.m.irq.timer_hook = self._time_passed


    def _local_timer_interrupt(self, c: CPU) -> None:
        """smp_apic_timer_interrupt() on ``c``: in hardirq context, raise the CPU's due
        softirqs and wake its ksoftirqd (to wait for the next expiry); the softirqs run at
        irq exit, on top of whatever the CPU was running, unless that masks them."""
        t = current_task()
        c.nr_irqs += 1
        hb = self.m.irq.hb
        if hb is not None:  # KCSAN
            hb.irq_enter(c.id, LOCAL_TIMER_VECTOR)
        ev = self.m.events
        if ev is not None:
            ev.record(t, "irq", f"irq {LOCAL_TIMER_VECTOR}: local_timer")
        saved = c.irqs_off
        c.preempt_count += HARDIRQ_OFFSET
        c.irqs_off = True
        try:
            bits = self.due_bits(c.id, jiffies())
            if bits:
                c.softirq_pending |= bits
            self.kick(c.id, t)
        finally:
            c.preempt_count -= HARDIRQ_OFFSET
            c.irqs_off = saved
        if c.softirq_pending and not (c.preempt_count & (SOFTIRQ_MASK | HARDIRQ_MASK)):
            self.m.irq.do_softirq(c)

    def _raise_local_timer(self, c: CPU) -> None:
        """Make the local timer interrupt pending on ``c``: its task takes it at its next
        point with interrupts on."""
        if LOCAL_TIMER_VECTOR in c.pending_irqs:
            return
        hb = self.m.irq.hb
        if hb is not None:  # KCSAN
            hb.irq_raise(LOCAL_TIMER_VECTOR, c.id)
        c.pending_irqs.append(LOCAL_TIMER_VECTOR)
        u = c.curr
        if u is not None:
            u.budget = 0

    def _time_passed(self, now_ns: int) -> None:
        """The engine's clock passed ``now_ns``: a CPU with a timer due or a tasklet to run
        whose ksoftirqd cannot run there now (a task holds the CPU) gets its local timer
        interrupt, served at that task's next point with interrupts on."""
        now = now_ns // NSEC_PER_JIFFY
        for n, timers in enumerate(self.timers):
            if not (timers or self.tasklets[n] or self.hi_tasklets[n]) or not self.due_bits(n, now):
                continue
            c = self.m.cpus[n]
            u = c.curr
            if u is None or u is self.ksoftirqd[n] or LOCAL_TIMER_VECTOR in c.pending_irqs:
                continue
            self._raise_local_timer(c)

    def next_wakeup(self, cpu: int, now: int) -> int | None:
        """When ksoftirqd/``cpu`` must look again: its own CPU's earliest expiry, or a later
        one of another CPU's (whose ksoftirqd may not get its busy CPU: the engine's clock
        passing it raises that CPU's timer interrupt, ``_time_passed``)."""
        best = self.next_expiry(cpu)
        for n, timers in enumerate(self.timers):
            if n != cpu and timers:
                later = [tm.expires for tm in timers if tm.expires > now]
                if later and (best is None or min(later) < best):
                    best = min(later)
        return best

    def due_bits(self, cpu: int, now: int) -> int:
        """The deferred softirqs ``cpu`` has work for at jiffy ``now``: a due timer, a
        runnable tasklet."""
        with self.guard:
            bits, _ = self.tasklets_ready(cpu)
        nxt = self.next_expiry(cpu)
        if nxt is not None and nxt <= now:
            bits |= 1 << TIMER_SOFTIRQ
        return bits


def _softirq_action(state: DeferredState, action: Callable[[DeferredState, int], None]) -> Callable[[], None]:
    def softirq() -> None:
        action(state, current_task().cpu.id)
    softirq.__name__ = getattr(action, "__name__", "softirq")
    return softirq


def _ksoftirqd_fn(state: DeferredState, cpu: int) -> Callable[[], None]:
    def ksoftirqd() -> None:
        t = current_task()
        state.ksoftirqd[cpu] = t
        m = state.m
        c = m.cpus[cpu]
        while True:
            set_current_state(TASK_INTERRUPTIBLE)  # from here a kick is not lost
            now = jiffies()
            bits = state.due_bits(cpu, now)
            pending = LOCAL_TIMER_VECTOR in c.pending_irqs
            if bits and t.cpu is c:
                # on its own CPU: run them here, in ksoftirqd's context (run_ksoftirqd())
                t.kstate = TASK_RUNNING
                c.softirq_pending |= bits
                m.irq.do_softirq(c)
                preempt_point("ksoftirqd")  # its cond_resched()
                continue
            if bits and not pending:
                # its CPU is busy: the CPU's timer interrupt, served at that CPU's next point
                # with interrupts on, on top of whatever runs there (or by its idle task)
                state._raise_local_timer(c)
                continue
            if pending:
                schedule_timeout(1)  # its handler kicks this thread; look again in a jiffy
                continue
            nxt = state.next_wakeup(cpu, now)
            with state.guard:
                _, busy = state.tasklets_ready(cpu)
            if nxt is not None and not _only_timers_left(t):
                schedule_timeout(max(1, nxt - now) if not busy else 1)
            elif busy:
                schedule_timeout(1)  # a tasklet runs on another CPU: look again in a jiffy
            else:
                schedule()
    ksoftirqd.__name__ = f"ksoftirqd_{cpu}"
    return ksoftirqd


def _only_timers_left(me: Task) -> bool:
    """Every task of the run has slept for HUNG_TASK_TIMEOUT_SECS with nothing but a timer
    function that never wakes it (a timer re-arming itself for ever): stop letting time pass
    for the timers, so the run ends as the deadlock it is (khungtaskd has reported the
    sleepers by then) instead of firing timers until the wall-clock timeout."""
    engine = me.engine
    live = [u for u in engine.tasks if not u.is_idle and not u.daemon and u.state != T_DONE]
    if not live or any(u.state != T_SLEEPING for u in live):
        return False
    timed = engine._timed_sleepers()
    return all(id(u) not in timed and (u.slept_at < 0 or engine.now - u.slept_at >= HUNG_TASK_TIMEOUT_NS)
               for u in live)


_STATES: Final[weakref.WeakKeyDictionary[Any, DeferredState]] = weakref.WeakKeyDictionary()


def deferred_state(t: Task) -> DeferredState:
    """The deferred-work state of ``t``'s machine, ksoftirqd started."""
    m = t.machine
    st = _STATES.get(m)
    if st is None:
        st = _STATES[m] = DeferredState(m)
    if not st.started:
        st.start(t)
    elif st.installed != len(SOFTIRQ_ACTIONS):
        st.install_actions()
    return st


__all__ = ["HI_SOFTIRQ", "TIMER_SOFTIRQ", "TASKLET_SOFTIRQ", "LOCAL_TIMER_VECTOR", "DEFERRED_SOFTIRQS",
           "SOFTIRQ_ACTIONS", "DeferredState", "deferred_state"]
