"""Interrupts and softirqs of one machine: the handlers, their delivery, the idle tasks.

Kept: request_irq/free_irq with struct irqaction, an interrupt raised on a CPU runs
there as soon as that CPU's interrupts are on (at once for the running CPU, at
local_irq_enable/restore after a masked section, by the CPU's idle task when it has
no task), handlers run inline in the interrupted task's thread with HARDIRQ_OFFSET
added and interrupts off, softirqs run on irq exit and on local_bh_enable (at most
MAX_SOFTIRQ_RESTART rounds). An interrupt with a rate is also raised by the
scheduling policy, with that chance per scheduling point.

Simplified: no interrupt controller, affinity or nesting of different lines; one
handler per line (no shared IRQs); softirqs never defer to ksoftirqd.

Kernel files modelled: kernel/irq/handle.c (handle_IRQ_event), arch/i386/kernel/irq.c
(do_IRQ), kernel/softirq.c (__do_softirq, open_softirq, raise_softirq).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .errors import KmemUsageError, Oops, TaskAbort
from .preempt import HARDIRQ_OFFSET, SOFTIRQ_OFFSET
from .task import CPU, T_DONE, T_SLEEPING, Task, current_task

if TYPE_CHECKING:
    from .hb import HappensBefore
    from .machine import SmpMachine

NR_SOFTIRQS: Final = 10
MAX_SOFTIRQ_RESTART: Final = 10


class IrqAction:
    """A registered interrupt handler (struct irqaction)."""

    __slots__ = ("irq", "handler", "name", "dev_id", "rate", "count")

    def __init__(self, irq: int, handler: Callable[[int, Any], Any], name: str, dev_id: Any, rate: float) -> None:
        self.irq = irq
        self.handler = handler
        self.name = name
        self.dev_id = dev_id
        self.rate = rate
        self.count: dict[int, int] = {}


class Interrupts:
    """The interrupt lines and softirq vector of one machine (``machine.irq``)."""

    def __init__(self, machine: SmpMachine) -> None:
        self.m = machine
        self.actions: dict[int, IrqAction] = {}
        #: (irq, rate) of every line the policies may raise, sorted by irq
        self.sources: list[tuple[int, float]] = []
        self.softirq_vec: list[Callable[[], Any] | None] = [None] * NR_SOFTIRQS
        #: the happens-before clocks (runtime/hb.py) of a machine that detects data races
        self.hb: HappensBefore | None = None

    def request_irq(self, irq: int, handler: Callable[[int, Any], Any], name: str = "",
                    dev_id: Any = None, *, rate: float | None = None) -> None:
        """Register ``handler(irq, dev_id)`` for ``irq``.

        ``rate`` > 0 lets the policy raise it at random: the chance per scheduling point
        (with interrupts enabled on the running CPU) that it fires there, the same under
        every policy. None takes the machine's ``irq_rate``.
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
        if irq in self.actions:
            raise KmemUsageError(f"IRQ {irq} already has a handler ({self.actions[irq].name})")
        self.actions[irq] = IrqAction(irq, handler, name or getattr(handler, "__name__", "irq"), dev_id, rate)
        self._refresh_sources()

    def free_irq(self, irq: int) -> None:
        if irq not in self.actions:
            raise KmemUsageError(f"free_irq({irq}): no handler registered")
        del self.actions[irq]
        self._refresh_sources()

    def _refresh_sources(self) -> None:
        self.sources = [(a.irq, a.rate) for a in sorted(self.actions.values(), key=lambda a: a.irq) if a.rate > 0]

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
        ev = self.m.events
        if ev is not None:
            ev.record(t, "irq", f"irq {irq}: {action.name if action else 'no handler'}")
        try:
            if action is None:
                self.m.printk(f"do_IRQ: {c.id}.{irq} No irq handler for vector", "WARNING")
            else:
                action.count[c.id] = action.count.get(c.id, 0) + 1
                action.handler(irq, action.dev_id)
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
            if t and t.cpu is not None:
                c = t.cpu
            c.preempt_count -= HARDIRQ_OFFSET
            c.irqs_off = saved_irqs
        if c.softirq_pending and not (c.preempt_count & 0x00FFFF00):
            self.do_softirq(c)

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



__all__ = ["IrqAction", "Interrupts", "NR_SOFTIRQS", "MAX_SOFTIRQ_RESTART"]
