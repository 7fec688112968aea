"""Interrupts and softirqs of one machine: the handlers, their delivery, the idle tasks.

Kept: request_irq/free_irq with struct irqaction, an interrupt raised on a CPU runs
there as soon as that CPU's interrupts are on (at once for the running CPU, at
local_irq_enable/restore after a masked section, by the CPU's idle task when it has
no task), handlers run inline in the interrupted task's thread with HARDIRQ_OFFSET
added and interrupts off, softirqs run on irq exit and on local_bh_enable (at most
MAX_SOFTIRQ_RESTART rounds). An interrupt with a rate is also raised by the
scheduling policy, with that chance per scheduling point.

A line's handlers never run on two CPUs at once (2.6.11's __do_IRQ): an interrupt that
comes while they run on another CPU (IRQ_INPROGRESS; not for a per-CPU interrupt, an
IPI's vector, IRQF_PERCPU) only marks the line IRQ_PENDING,
and the CPU in the handlers runs them once more before it leaves; the run before ends
under irq_desc.lock, which the next takes, so KCSAN sees them ordered. Simplified: the
kernel's IRQ_PENDING is a flag (several such interrupts collapse into one rerun); the
model reruns once for each, so no raise_irq() is lost.

Shared lines (2.6.11): handlers requested with SA_SHIRQ (IRQF_SHARED today) on both
sides chain on one line and all run, in request order, when it fires; a request of a
line that has a handler fails with -EBUSY unless both agree to share (setup_irq), and
SA_SHIRQ without a dev_id is -EINVAL. free_irq() of a line without the dev_id's handler
warns "Trying to free already-free IRQ %d" and returns, as today's __free_irq() does;
free_irq() then waits until no CPU runs the line's handlers (synchronize_irq(), 2.6.11's IRQ_INPROGRESS spin
with cpu_relax()), so a remove() that frees its device after free_irq() is correct. Called
in interrupt context it warns "Trying to free IRQ %d from IRQ context!" (today's
__free_irq) and does not wait for its own handler (the kernel would spin there forever).
A handler that returns with interrupts enabled gets today's WARN_ONCE "irq %u handler %pS
enabled interrupts" (__handle_irq_event_percpu) once per handler, and they are disabled
again.

disable_irq()/disable_irq_nosync()/enable_irq() (kernel/irq/manage.c): a line's disable
depth nests; an interrupt of a disabled line runs no handler and stays pending on its CPU
(IRQS_PENDING: several are one) until enable_irq() raises it again (check_irq_resend);
an enable without a disable warns "Unbalanced enable for IRQ %d". The kernel-style
functions, and disable_irq()'s wait for a running handler, are in runtime/kernel.py.

Simplified: no interrupt controller, affinity or nesting of different lines; a shared
line fires at the highest rate of its handlers' (rate > 0: each one's device may
interrupt; the policies raise the line, not a device), and handlers' return values
(IRQ_HANDLED/IRQ_NONE) are not looked at; raise_softirq() of a task runs the softirq at
once (only timers and tasklets go through ksoftirqd: runtime/softirqd.py).

Kernel files modelled: kernel/irq/handle.c (handle_IRQ_event), kernel/irq/manage.c
(request_irq, setup_irq, free_irq, synchronize_irq), arch/i386/kernel/irq.c
(do_IRQ), kernel/softirq.c (__do_softirq, open_softirq, raise_softirq).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .errors import KmemUsageError, Oops, TaskAbort
from .preempt import HARDIRQ_OFFSET, SOFTIRQ_OFFSET
from .report import caller_site, relpath, warning_line
from .task import CPU, T_DONE, T_SLEEPING, Task, current_task

if TYPE_CHECKING:
    from .hb import HappensBefore
    from .machine import SmpMachine

NR_SOFTIRQS: Final = 10
MAX_SOFTIRQ_RESTART: Final = 10
#: include/asm-generic/errno-base.h: request_irq()'s answers for a line that is taken
#: and for a shared request without a dev_id
EBUSY: Final = 16
EINVAL: Final = 22
#: include/asm-i386/signal.h (2.6.11): the request_irq() flag of a line that may be
#: shared (IRQF_SHARED today); the model checks no other SA_* flag
SA_SHIRQ: Final = 0x04000000
#: include/linux/interrupt.h: a per-CPU interrupt (an IPI's vector): each CPU takes its own,
#: so it is not serialised across CPUs as a device line is (IRQ_INPROGRESS)
IRQF_PERCPU: Final = 0x00000400
#: arch/x86/include/asm/irq_vectors.h: the local APIC timer interrupt's vector, a per-CPU
#: interrupt with no line (runtime/softirqd.py)
LOCAL_TIMER_VECTOR: Final = 0xEF
#: free_irq()'s dev_id when any handler of the line will do (the Python API's free)
ANY_DEV: Final[Any] = object()


class IrqAction:
    """A registered interrupt handler (struct irqaction); ``next``: the line's next one."""

    __slots__ = ("irq", "handler", "name", "dev_id", "rate", "count", "flags", "next")

    def __init__(self, irq: int, handler: Callable[[int, Any], Any], name: str, dev_id: Any, rate: float,
                 flags: int = 0) -> None:
        self.irq = irq
        self.handler = handler
        self.name = name
        self.dev_id = dev_id
        self.rate = rate
        self.count: dict[int, int] = {}
        self.flags = flags
        self.next: IrqAction | None = None


class Interrupts:
    """The interrupt lines and softirq vector of one machine (``machine.irq``)."""

    def __init__(self, machine: SmpMachine) -> None:
        self.m = machine
        self.actions: dict[int, IrqAction] = {}
        #: (irq, rate) of every line the policies may raise, sorted by irq
        self.sources: list[tuple[int, float]] = []
        self.softirq_vec: list[Callable[[], Any] | None] = [None] * NR_SOFTIRQS
        #: the tasks running a handler of each line now (IRQ_INPROGRESS), for synchronize_irq
        self.running: dict[int, list[Task | None]] = {}
        #: handlers already warned for returning with interrupts enabled (WARN_ONCE), by id
        #: (a handler need not be hashable; the value keeps the id from being reused)
        self.warned_irqs_on: dict[int, Callable[..., Any]] = {}
        #: the happens-before clocks (runtime/hb.py) of a machine that detects data races
        self.hb: HappensBefore | None = None
        #: called by the engine with virtual ns whenever time passes timers' deadlines, once
        #: kernel timers are in use (runtime/softirqd.py raises the local timer interrupt)
        self.timer_hook: Callable[[int], None] | None = None
        #: the local timer interrupt's entry (LOCAL_TIMER_VECTOR in a CPU's pending_irqs), set
        #: by runtime/softirqd.py once kernel timers are in use
        self.local_timer: Callable[[CPU], None] | None = None
        #: disable_irq() depth of each disabled line (irq_desc.depth; absent: 0, enabled)
        self.disabled: dict[int, int] = {}
        #: the CPUs each disabled line fired on while disabled (IRQS_PENDING): raised again
        #: there when enable_irq() turns the line back on (check_irq_resend)
        self.held_back: dict[int, list[int]] = {}
        #: lines enable_irq() has turned back on (KCSAN: their handlers acquire the enabler's clock)
        self.reenabled: set[int] = set()
        #: how often each line fired on a CPU while its handlers ran on another (IRQ_PENDING):
        #: that CPU runs them once more for each before it leaves (2.6.11's __do_IRQ loop)
        self.replay: dict[int, int] = {}
        #: irq_desc.lock of the lines' disable depth, held-back and replayed interrupts
        self.line_lock = threading.Lock()

    def request_irq(self, irq: int, handler: Callable[[int, Any], Any], name: str = "",
                    dev_id: Any = None, *, rate: float | None = None, flags: int = 0) -> int:
        """Register ``handler(irq, dev_id)`` for ``irq``; 0, or -EBUSY if the line has a
        handler and the two do not both pass SA_SHIRQ in ``flags``, or -EINVAL for SA_SHIRQ
        without a ``dev_id`` (request_irq and setup_irq of 2.6.11).

        ``rate`` > 0 lets the policy raise it at random: the chance per scheduling point
        (with interrupts enabled on the running CPU) that it fires there, the same under
        every policy. None takes the machine's ``irq_rate``. Arguments are checked first
        (KmemUsageError); a busy line changes nothing.
        """
        if isinstance(irq, bool) or not isinstance(irq, int) or irq < 0:
            raise KmemUsageError(f"request_irq: irq(={irq!r}) must be a non-negative int")
        if not callable(handler):
            raise KmemUsageError(f"request_irq: handler for IRQ {irq} is not callable: {handler!r}")
        if not isinstance(name, str):
            raise KmemUsageError(f"request_irq: name(={name!r}) must be a string")
        if rate is None:
            rate = self.m.irq_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise KmemUsageError(f"request_irq: rate(={rate!r}) must be a number within [0, 1]")
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise KmemUsageError(f"request_irq: flags(={flags!r}) must be an int of SA_* flags")
        if flags & SA_SHIRQ and dev_id is None:
            return -EINVAL  # "shared interrupts must pass in a real dev-ID"
        new = IrqAction(irq, handler, name or getattr(handler, "__name__", "irq"), dev_id, rate, flags)
        old = self.actions.get(irq)
        if old is None:
            self.actions[irq] = new
        else:
            if not old.flags & flags & SA_SHIRQ:
                return -EBUSY  # setup_irq(): "Can't share interrupts unless both agree to"
            while old.next is not None:
                old = old.next
            old.next = new
        self._refresh_sources()
        return 0

    def free_irq(self, irq: int, dev_id: Any = ANY_DEV) -> bool:
        """Remove the handler of ``irq`` (its dev_id must be ``dev_id`` unless ANY_DEV).
        False if there was none to remove: the caller answers (a WARN from simulated code,
        KmemUsageError from Python). The kernel-style free_irq() (runtime/kernel.py) then
        waits while ``busy_elsewhere`` (synchronize_irq)."""
        head = self.actions.get(irq)
        if head is None:
            return False
        if dev_id is ANY_DEV:  # the Python API frees the whole line
            del self.actions[irq]
        else:
            prev: IrqAction | None = None
            action: IrqAction | None = head
            while action is not None and not _same_dev(action.dev_id, dev_id):
                prev, action = action, action.next
            if action is None:
                return False
            if prev is not None:
                prev.next = action.next
            elif action.next is not None:
                self.actions[irq] = action.next
            else:
                del self.actions[irq]
        self._refresh_sources()
        return True

    def busy_elsewhere(self, irq: int, t: Task) -> bool:
        """IRQ_INPROGRESS as synchronize_irq() sees it from ``t``: another task runs a
        handler of ``irq`` now. ``t``'s own handler, if it is inside one, does not count:
        the kernel would spin for ever there (free_irq() warns first)."""
        running = self.running.get(irq)
        return running is not None and any(u is not t for u in running)

    def warn(self, t: Task, msg: str, fn: str, site: str, where: tuple[str, int] | None = None) -> None:
        """A WARN() of kernel/irq/: the caller's site (or ``where``) and the message."""
        if where is None:
            file, line, _ = caller_site(2)
        else:
            file, line = where
        self.m.report("warning", [warning_line(t, file, line, fn), msg],
                      site=f"{site}@{file}:{line}")

    def _refresh_sources(self) -> None:
        self.sources = [(a.irq, r) for a in sorted(self.actions.values(), key=lambda a: a.irq)
                        if (r := _line_rate(a)) > 0]

    def raise_irq(self, irq: int, cpu: int) -> None:
        """Mark ``irq`` pending on CPU ``cpu``; it runs there when interrupts allow."""
        if not 0 <= cpu < self.m.nr_cpus:
            raise KmemUsageError(f"cpu(={cpu}) must be within [0, {self.m.nr_cpus})")
        if irq not in self.actions:
            raise KmemUsageError(f"raise_irq({irq}): no handler registered")
        c = self.m.cpus[cpu]
        if self.hb is not None:  # KCSAN: the handler sees what raised it
            self.hb.irq_raise(irq, cpu)
        c.pending_irqs.append(irq)
        t = current_task()
        if t and t.cpu is c:
            if not c.irqs_off and not (c.preempt_count & 0xF0000):
                self.deliver_pending(c)
            return
        engine = self.m.engine
        if c.curr is None and engine is not None and not engine.deterministic:
            engine.wake_idle(self.idle_task(c))
        elif c.curr is not None:
            c.curr.budget = 0

    def deliver_pending(self, c: CPU) -> None:
        while c.pending_irqs and not c.irqs_off:
            irq = c.pending_irqs.pop(0)
            if irq == LOCAL_TIMER_VECTOR and self.local_timer is not None:
                self.local_timer(c)  # a per-CPU interrupt, no line (runtime/softirqd.py)
            else:
                self.do_irq(c, irq)

    def do_irq(self, c: CPU, irq: int) -> None:
        """do_IRQ: run the handler on ``c`` in hardirq context, then softirqs on exit.

        The hardirq count and the saved interrupt flag follow the task whose stack the
        handler runs on: a handler that (wrongly) sleeps may wake on another CPU, and the
        irq exit then happens there. A Python exception (or a raise-mode KernelBug) in the
        handler fails the run without unwinding the code it interrupted, which runs on to
        a safe point; an Oops still kills the interrupted task, as the kernel's does.
        """
        t = current_task()
        action = self.actions.get(irq)
        c.nr_irqs += 1
        c.clock += self.m.costs.irq_entry  # virtual time: entry and exit (runtime/costs.py)
        saved_irqs = c.irqs_off
        c.preempt_count += HARDIRQ_OFFSET
        c.irqs_off = True
        if self.hb is not None:  # KCSAN
            self.hb.irq_enter(c.id, irq)
            if irq in self.reenabled:  # what came before enable_irq() happens before the handler
                self.hb.acquire(t, ("irq_enable", irq))
        ev = self.m.events
        if ev is not None:
            ev.record(t, "irq", f"irq {irq}: {action.name if action else 'no handler'}")
        running = None
        try:
            if action is None:
                self.m.printk(f"do_IRQ: {c.id}.{irq} No irq handler for vector", "WARNING")
            else:
                with self.line_lock:
                    running = self.running.get(irq)
                    if running is None:
                        running = self.running[irq] = []
                    # IRQ_INPROGRESS on another CPU: mark the line IRQ_PENDING and leave; the
                    # CPU in the handler runs it again (a line's handler never runs twice at once)
                    in_progress = bool(running) and not action.flags & IRQF_PERCPU
                    if in_progress:
                        self.replay[irq] = self.replay.get(irq, 0) + 1
                    running.append(t)  # IRQ_INPROGRESS: free_irq() on another CPU waits
                if in_progress:
                    if self.hb is not None and t:  # KCSAN: the rerun sees what raised this one
                        self.hb.release(t, ("irq_replay", irq))
                    a: IrqAction | None = None
                else:
                    # disable_irq() (set before it looks at IRQ_INPROGRESS, checked here after it
                    # is set: one of the two sees the other) holds it back until enable_irq()
                    a = None if self.disabled and self._hold_back(c, irq) else action
                    if a is not None and self.hb is not None and t:
                        # KCSAN: the line's last handler run ended under irq_desc.lock, which
                        # this one takes before it starts: the two runs are ordered
                        self.hb.acquire(t, ("irq_done", irq))
                while a is not None:  # every handler of a shared line, in request order
                    a.count[c.id] = a.count.get(c.id, 0) + 1
                    a.handler(irq, a.dev_id)
                    hc = t.cpu if t and t.cpu is not None else c
                    if not hc.irqs_off:
                        self._handler_enabled_irqs(t, hc, a)
                    a = a.next
                    if a is None and not in_progress and self.replay:
                        a = self._replayed(t, c, irq, action)
        except (TaskAbort, Oops):
            raise
        except BaseException as e:
            engine = self.m.engine
            if engine is None:
                raise
            e.add_note(f"percpu_kmem: raised by the handler of IRQ {irq} ({action.name if action else '?'}) "
                       f"on CPU#{c.id}")
            engine.fail(e, f"the handler of IRQ {irq} raised {type(e).__name__}")
        finally:
            if running is not None:
                running.remove(t)
                if self.hb is not None:  # KCSAN: free_irq()'s synchronize_irq() sees the handler's end
                    self.hb.release(t, ("irq_done", irq))
            if t and t.cpu is not None:
                c = t.cpu
            c.preempt_count -= HARDIRQ_OFFSET
            c.irqs_off = saved_irqs
        if c.softirq_pending and not (c.preempt_count & 0x00FFFF00):
            self.do_softirq(c)

    def _replayed(self, t: Task | None, c: CPU, irq: int, action: IrqAction) -> IrqAction | None:
        """__do_IRQ's loop: the line fired elsewhere while its handlers ran here (IRQ_PENDING):
        run them again (once for each such interrupt), unless the line is disabled now (then
        the interrupt is held back)."""
        with self.line_lock:
            n = self.replay.get(irq, 0)
            if not n:
                return None
            if n > 1:
                self.replay[irq] = n - 1
            else:
                del self.replay[irq]
        if self.hb is not None and t:
            self.hb.acquire(t, ("irq_replay", irq))
        return None if self.disabled and self._hold_back(c, irq) else action

    # -- disable_irq / enable_irq (kernel/irq/manage.c) -------------------------------------------
    def disable_nosync(self, irq: int) -> None:
        """__disable_irq(): one more level of disabling; the line is held back from now on."""
        with self.line_lock:
            self.disabled[irq] = self.disabled.get(irq, 0) + 1

    def _hold_back(self, c: CPU, irq: int) -> bool:
        """An interrupt of a disabled line came to ``c``: True if the line is disabled (it is
        then pending there, IRQS_PENDING, until enable_irq())."""
        with self.line_lock:
            if irq not in self.disabled:
                return False
            held = self.held_back.setdefault(irq, [])
            if c.id not in held:
                held.append(c.id)
            return True

    def enable(self, t: Task, irq: int, where: tuple[str, int]) -> None:
        """__enable_irq(): one level less; at 0 the line is on again and what fired while it
        was off is raised again on its CPUs. An enable without a disable is the kernel's
        WARN "Unbalanced enable for IRQ %d", and changes nothing."""
        with self.line_lock:
            depth = self.disabled.get(irq, 0)
            if depth > 1:
                self.disabled[irq] = depth - 1
                return
            if depth == 1:
                del self.disabled[irq]
                resend = self.held_back.pop(irq, [])
        if depth == 0:
            self.warn(t, f"Unbalanced enable for IRQ {irq}", "__enable_irq", f"enable_irq:{irq}", where)
            return
        if self.hb is not None:  # KCSAN: the line's next handlers see what came before
            self.reenabled.add(irq)
            self.hb.release(t, ("irq_enable", irq))
        for cpu in resend:
            if irq in self.actions:
                self.raise_irq(irq, cpu)

    def _handler_enabled_irqs(self, t: Task | None, c: CPU, action: IrqAction) -> None:
        """__handle_irq_event_percpu(): WARN_ONCE(!irqs_disabled(), "irq %u handler %pS
        enabled interrupts"), then local_irq_disable(). Once per handler."""
        c.irqs_off = True
        h = action.handler
        if id(h) in self.warned_irqs_on or not t:
            return
        self.warned_irqs_on[id(h)] = h
        code = getattr(h, "__code__", None)
        sym = getattr(h, "__qualname__", None) or action.name
        where = (relpath(code.co_filename), code.co_firstlineno) if code is not None else None
        self.warn(t, f"irq {action.irq} handler {sym} enabled interrupts", "__handle_irq_event_percpu",
                   f"irq_handler_irqs_on:{action.irq}:{sym}", where)

    def open_softirq(self, nr: int, action: Callable[[], Any]) -> None:
        if not 0 <= nr < NR_SOFTIRQS:
            raise KmemUsageError(f"softirq nr(={nr}) must be within [0, {NR_SOFTIRQS})")
        self.softirq_vec[nr] = action

    def do_softirq(self, c: CPU) -> None:
        """Run the raised softirqs of ``c`` with SOFTIRQ_OFFSET held and irqs on.

        As in ``do_irq``, the softirq count follows the task if an action sleeps."""
        t = current_task()
        for _ in range(MAX_SOFTIRQ_RESTART):
            pending = c.softirq_pending
            if not pending:
                return
            c.softirq_pending = 0
            c.preempt_count += SOFTIRQ_OFFSET
            saved = c.irqs_off
            c.irqs_off = False
            if self.hb is not None:  # KCSAN
                self.hb.softirq_enter(c.id)
            try:
                for nr in range(NR_SOFTIRQS):
                    if pending & (1 << nr):
                        fn = self.softirq_vec[nr]
                        if fn is not None:
                            ev = self.m.events
                            if ev is not None:
                                ev.record(t, "softirq", f"softirq {nr}: {getattr(fn, '__name__', 'action')}")
                            fn()
            finally:
                if t and t.cpu is not None:
                    c = t.cpu
                c.irqs_off = saved
                c.preempt_count -= SOFTIRQ_OFFSET

    def idle_task(self, c: CPU) -> Task:
        """The CPU's idle task (swapper/N), created when an interrupt first needs it."""
        if c.idle is not None and c.idle.state != T_DONE:
            return c.idle
        engine = self.m.engine
        assert engine is not None
        holder: list[Task] = []

        def idle_loop() -> None:
            me = holder[0]
            while True:
                self.deliver_pending(c)
                engine.idle_wait(me)

        t = Task(self.m, 0, f"swapper/{c.id}", idle_loop, is_idle=True)
        t.cpus_allowed = frozenset([c.id])
        t.state = T_SLEEPING  # sleeping until picked
        holder.append(t)
        c.idle = t
        if not engine.deterministic:
            t.rng = random.Random(c.id)
        engine.add_task(t)
        return t



def _line_rate(head: IrqAction) -> float:
    """The rate the policies raise a line at: its handler's, or the highest of a shared line's."""
    rate = head.rate
    a = head.next
    while a is not None:
        rate = max(rate, a.rate)
        a = a.next
    return rate


def _same_dev(a: Any, b: Any) -> bool:
    """dev_id equality as the kernel's pointer compare: the same object, or the same address."""
    return a is b or (a.__class__ is int and b.__class__ is int and a == b)


__all__ = ["LOCAL_TIMER_VECTOR", "IrqAction", "Interrupts", "NR_SOFTIRQS", "MAX_SOFTIRQ_RESTART", "EBUSY", "EINVAL",
           "SA_SHIRQ",
           "ANY_DEV"]
