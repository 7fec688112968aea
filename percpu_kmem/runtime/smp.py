"""Cross-CPU function calls: smp_call_function() and on_each_cpu().

Some per-CPU state may only be touched by its own CPU with interrupts off (the
slab magazines, the per-CPU page lists). To drain it from elsewhere the kernel
sends an inter-processor interrupt: each target CPU runs the function in
hardirq context, so it never interleaves with that CPU's own irq-off sections.
The model does the same with a reserved interrupt vector (CALL_FUNCTION_VECTOR
of i386) delivered through the runtime's ordinary interrupt path.

Kernel files modelled: arch/i386/kernel/smp.c (smp_call_function, call_data,
the "Can deadlock when called with interrupts disabled" rule), kernel/softirq.c
of 2.6 (on_each_cpu).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from .irq import IRQF_PERCPU
from .kernel import (
    NR_CPUS,
    WARN_ON,
    current,
    irqs_disabled,
    local_irq_restore,
    local_irq_save,
    preempt_disable,
    preempt_enable,
)
from .task import current_task
from .validate import check_callable, check_int, check_type

#: i386 CALL_FUNCTION_VECTOR: the IPI that runs smp_call_function_interrupt().
CALL_FUNCTION_VECTOR: Final = 0xFB
_QUEUE: Final = "call_function_queue"


class call_data_struct:
    """One cross-CPU call: the function, its argument and how many CPUs finished it.

    ``locked()`` is true while some target CPU has not run it yet, so a waiting
    CPU spins on it exactly as on a spinlock (the engines know how to wait on that).
    """

    __slots__ = ("func", "info", "ncpus", "finished", "guard")

    def __init__(self, func: Callable[[Any], Any], info: Any, ncpus: int) -> None:
        self.func = func
        self.info = info
        self.ncpus = ncpus
        self.finished = 0
        self.guard = threading.Lock()

    def locked(self) -> bool:
        return self.finished < self.ncpus

    def describe(self) -> str:
        name = getattr(self.func, "__name__", "func")
        return f"smp_call_function({name}): {self.finished}/{self.ncpus} CPUs done"

    @property
    def name(self) -> str:
        return self.describe()


def smp_call_function_interrupt(irq: int, dev_id: Any) -> None:
    """The IPI handler: run every call queued for this CPU, in hardirq context."""
    c = current_task().cpu
    queue = c.data.get(_QUEUE)
    while queue:
        data = queue.pop(0)
        data.func(data.info)
        t = current_task()
        if t.hb is not None:  # KCSAN: the waiting caller sees what func did (runtime/hb.py)
            t.hb.release(t, data)
        with data.guard:
            data.finished += 1


def smp_call_function(func: Callable[[Any], Any], info: Any = None, wait: bool = True) -> int:
    """Run ``func(info)`` on every other online CPU; with ``wait``, until all have.

    Context: process context with interrupts enabled (a CPU waiting with irqs off
    could never answer another CPU's IPI: the kernel's "Can deadlock" rule, reported).
    Returns 0, as the kernel does.
    """
    check_callable("smp_call_function", "func", func)
    check_type("smp_call_function", "wait", wait, (bool, int), "True or False")
    t = current_task()
    m = t.machine
    WARN_ON(irqs_disabled(), "smp_call_function() with interrupts disabled can deadlock")
    if CALL_FUNCTION_VECTOR not in m.irq.actions:
        m.request_irq(CALL_FUNCTION_VECTOR, smp_call_function_interrupt, "CALL_FUNCTION", flags=IRQF_PERCPU)
    preempt_disable()
    me = t.cpu.id
    targets = [c for c in m.cpus if c.id != me and c.online]
    data = call_data_struct(func, info, len(targets))
    for c in targets:
        c.data.setdefault(_QUEUE, []).append(data)
        m.raise_irq(CALL_FUNCTION_VECTOR, c.id)
    if wait:
        engine = m.engine
        assert engine is not None
        while data.locked():
            engine.spin(t, data, "smp_call_function")
        if t.hb is not None:  # KCSAN
            t.hb.acquire(t, data)
    preempt_enable()
    return 0


#: include/asm-generic/errno-base.h: smp_call_function_single()'s answer for a CPU that is
#: not online (not one of the machine's)
ENXIO: Final = 6


def smp_call_function_single(cpu: int, func: Callable[[Any], Any], info: Any = None, wait: bool = True) -> int:
    """Run ``func(info)`` on CPU ``cpu``, in hardirq context there (an IPI); with ``wait``,
    until it has. On the calling CPU itself it runs here, with interrupts off, as the
    kernel's generic_exec_single(). Returns 0, or -ENXIO (-6) for a CPU number that is not
    one of the machine's (from its CPU count to NR_CPUS - 1; beyond NR_CPUS is misuse).

    Context: as smp_call_function(): interrupts enabled, or the kernel's WARN (a CPU
    waiting with interrupts off could never answer another's IPI).
    """
    if cpu.__class__ is not int or not 0 <= cpu < NR_CPUS:
        current()  # NotInTaskError first, outside a task
        check_int("smp_call_function_single", "cpu", cpu, 0, NR_CPUS - 1, "a CPU number")
    check_callable("smp_call_function_single", "func", func)
    check_type("smp_call_function_single", "wait", wait, (bool, int), "True or False")
    t = current_task()
    m = t.machine
    preempt_disable()  # get_cpu()
    try:
        WARN_ON(irqs_disabled(), "smp_call_function_single() with interrupts disabled can deadlock")
        me = t.cpu.id
        if cpu >= m.nr_cpus or not m.cpus[cpu].online:
            return -ENXIO
        if cpu == me:
            flags = local_irq_save()
            func(info)
            local_irq_restore(flags)
            return 0
        if CALL_FUNCTION_VECTOR not in m.irq.actions:
            m.request_irq(CALL_FUNCTION_VECTOR, smp_call_function_interrupt, "CALL_FUNCTION", flags=IRQF_PERCPU)
        data = call_data_struct(func, info, 1)
        m.cpus[cpu].data.setdefault(_QUEUE, []).append(data)
        m.raise_irq(CALL_FUNCTION_VECTOR, cpu)
        if wait:
            engine = m.engine
            assert engine is not None
            while data.locked():
                engine.spin(t, data, "smp_call_function_single")
            if t.hb is not None:  # KCSAN: the caller sees what func did
                t.hb.acquire(t, data)
        return 0
    finally:
        preempt_enable()  # put_cpu()


def on_each_cpu(func: Callable[[Any], Any], info: Any = None, wait: bool = True) -> int:
    """smp_call_function() on the others, then ``func(info)`` here with irqs off."""
    check_callable("on_each_cpu", "func", func)
    check_type("on_each_cpu", "wait", wait, (bool, int), "True or False")
    current()  # outside a task: NotInTaskError before any state changes
    preempt_disable()
    smp_call_function(func, info, wait)
    flags = local_irq_save()
    func(info)
    local_irq_restore(flags)
    preempt_enable()
    return 0


__all__ = ["smp_call_function", "smp_call_function_single", "on_each_cpu", "CALL_FUNCTION_VECTOR", "ENXIO"]
