"""Tasklets (<linux/interrupt.h>): struct tasklet_struct and its API, LDD3 chapter 7.

Kept: tasklet_init(t, func, data) and DECLARE_TASKLET(name, func, data) (the function gets
``data``, 2.6 to 5.8), tasklet_setup(t, callback) (5.9 on: the callback gets the tasklet),
DECLARE_TASKLET_DISABLED; tasklet_schedule() queues it on the calling CPU's tasklet_vec
(TASKLET_SOFTIRQ), tasklet_hi_schedule() on tasklet_hi_vec (HI_SOFTIRQ, run first);
scheduling a scheduled tasklet is a no-op (TASKLET_STATE_SCHED); it runs once per
scheduling, in softirq context, on the CPU that scheduled it, never on two CPUs at once
(TASKLET_STATE_RUN: a tasklet scheduled again while it runs elsewhere waits its turn);
tasklet_disable() (waits while it runs) / tasklet_disable_nosync() / tasklet_enable() nest
by a count, and a disabled tasklet stays queued until enabled; tasklet_kill() waits until
it is neither scheduled nor running (process context: it sleeps, as its yield() does; in
interrupt context it prints the kernel's "Attempt to kill tasklet from interrupt").

When it runs: scheduled from a hardirq handler, at that handler's irq exit; scheduled with
bottom halves disabled, at local_bh_enable(); scheduled from a task, by this CPU's
ksoftirqd, woken at once (raise_softirq_irqoff()'s wakeup_softirqd()) - see
runtime/softirqd.py. So a tasklet scheduled from process context runs soon under every
policy, but after tasklet_schedule() has returned.

Simplified: no tasklet_trylock spinning. KCSAN: tasklet_schedule() happens before the
function, the function before what follows tasklet_kill() or tasklet_disable().

Kernel files modelled: kernel/softirq.c (tasklet_action, __tasklet_schedule, tasklet_kill),
include/linux/interrupt.h (tasklet_disable, tasklet_enable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import KmemUsageError
from .kernel import cpu_relax, current, msleep
from .preempt import IRQ_MASK
from .softirqd import HI_SOFTIRQ, SOFTIRQ_ACTIONS, TASKLET_SOFTIRQ, DeferredState, deferred_state
from .task import Task, current_task


class tasklet_struct:
    """struct tasklet_struct: ``func``, ``data``, the disable ``count`` and the SCHED and
    RUN state bits (``scheduled``, ``running``)."""

    def __init__(self, func: Callable[[Any], Any] | None = None, data: Any = 0, name: str = "") -> None:
        self.func = func
        self.data = data
        self.name = name or getattr(func, "__name__", "tasklet")
        self.count = 0
        self.scheduled = False
        self.running = False
        #: tasklet_setup(): the callback gets the tasklet
        self.use_callback = False
        #: the CPU whose list holds it while scheduled, and the task running it now
        self.cpu: int | None = None
        self.runner: Task | None = None
        self.machine: Any = None

    def __repr__(self) -> str:
        state = (" scheduled" if self.scheduled else "") + (" running" if self.running else "")
        return f"<tasklet_struct {self.name} count={self.count}{state}>"


def _tasklet_arg(fn: str, tl: Any) -> Task:
    t = current_task()
    if not isinstance(tl, tasklet_struct):
        current()  # NotInTaskError first, outside a task
        raise KmemUsageError(f"{fn}: t(={tl!r}) must be a tasklet_struct (tasklet_init(), DECLARE_TASKLET())")
    if tl.machine is not None and tl.machine is not t.machine:
        raise KmemUsageError(f"{fn}: tasklet {tl!r} belongs to another machine")
    return t


def _func_arg(fn: str, func: Any) -> None:
    if not callable(func):
        raise KmemUsageError(f"{fn}: func(={func!r}) must be callable (the tasklet's function)")


def tasklet_init(t: tasklet_struct, func: Callable[[Any], Any], data: Any = 0) -> None:
    """Set up ``t`` to run ``func(data)``, enabled and not scheduled."""
    _init("tasklet_init", t, func, data, False)


def tasklet_setup(t: tasklet_struct, callback: Callable[[tasklet_struct], Any]) -> None:
    """Today's set-up: ``callback(t)`` runs when it is scheduled."""
    _init("tasklet_setup", t, callback, 0, True)


def _init(fn: str, t: tasklet_struct, func: Any, data: Any, use_callback: bool) -> None:
    _tasklet_arg(fn, t)
    _func_arg(fn, func)
    if t.scheduled:
        raise KmemUsageError(f"{fn}: {t!r} is scheduled: initialising it would corrupt its CPU's list")
    t.func = func
    t.data = data
    t.name = getattr(func, "__name__", "tasklet")
    t.count = 0
    t.use_callback = use_callback


def DECLARE_TASKLET(name: str, func: Callable[[Any], Any], data: Any = 0) -> tasklet_struct:
    """A tasklet named ``name`` running ``func(data)``, enabled (returned: Python has no
    static declarations)."""
    if not isinstance(name, str):
        raise KmemUsageError(f"DECLARE_TASKLET: name(={name!r}) must be a string")
    _func_arg("DECLARE_TASKLET", func)
    return tasklet_struct(func, data, name)


def DECLARE_TASKLET_DISABLED(name: str, func: Callable[[Any], Any], data: Any = 0) -> tasklet_struct:
    """As DECLARE_TASKLET, disabled (count 1) until tasklet_enable()."""
    if not isinstance(name, str):
        raise KmemUsageError(f"DECLARE_TASKLET_DISABLED: name(={name!r}) must be a string")
    _func_arg("DECLARE_TASKLET_DISABLED", func)
    tl = tasklet_struct(func, data, name)
    tl.count = 1
    return tl


def _schedule(fn: str, tl: tasklet_struct, nr: int) -> None:
    t = _tasklet_arg(fn, tl)
    if tl.func is None:
        raise KmemUsageError(f"{fn}: tasklet {tl!r} has no function (tasklet_init() first)")
    st = deferred_state(t)
    tl.machine = t.machine
    c = t.cpu
    with st.guard:
        if tl.scheduled:  # test_and_set_bit(TASKLET_STATE_SCHED): already queued
            return
        tl.scheduled = True
        tl.cpu = c.id
        (st.hi_tasklets if nr == HI_SOFTIRQ else st.tasklets)[c.id].append(tl)
        c.softirq_pending |= 1 << nr
    if t.hb is not None:  # KCSAN: the function sees what scheduled it
        t.hb.release(t, ("tasklet", id(tl)))
    if not c.preempt_count & IRQ_MASK:  # raise_softirq_irqoff(): wakeup_softirqd()
        st.kick(c.id, t)


def tasklet_schedule(t: tasklet_struct) -> None:
    """Queue ``t`` on this CPU (TASKLET_SOFTIRQ); a no-op if it is scheduled already."""
    _schedule("tasklet_schedule", t, TASKLET_SOFTIRQ)


def tasklet_hi_schedule(t: tasklet_struct) -> None:
    """Queue ``t`` on this CPU's high-priority list (HI_SOFTIRQ, run before the others)."""
    _schedule("tasklet_hi_schedule", t, HI_SOFTIRQ)


def tasklet_disable_nosync(t: tasklet_struct) -> None:
    """Disable ``t`` (it may still be running on another CPU)."""
    _tasklet_arg("tasklet_disable_nosync", t)
    t.count += 1


def tasklet_disable(t: tasklet_struct) -> None:
    """Disable ``t`` and wait until it runs on no CPU."""
    me = _tasklet_arg("tasklet_disable", t)
    t.count += 1
    while t.running and not _runs_here(t, me):  # tasklet_unlock_wait()
        cpu_relax()
    if me.hb is not None:  # KCSAN
        me.hb.acquire(me, ("tasklet_done", id(t)))


def _runs_here(tl: tasklet_struct, me: Task) -> bool:
    """``me`` is the very context running ``tl`` (its own function disables it)."""
    return tl.runner is me


def tasklet_enable(t: tasklet_struct) -> None:
    """Undo one tasklet_disable(); a scheduled tasklet runs once enabled."""
    me = _tasklet_arg("tasklet_enable", t)
    if t.count <= 0:
        raise KmemUsageError(f"tasklet_enable: {t!r} is not disabled (more enables than disables)")
    t.count -= 1
    if t.count == 0 and t.scheduled and t.cpu is not None:
        deferred_state(me).kick(t.cpu, me)


def tasklet_kill(t: tasklet_struct) -> None:
    """Wait until ``t`` is neither scheduled nor running, and leave it unscheduled: it
    holds TASKLET_STATE_SCHED itself meanwhile, so a tasklet that reschedules itself is
    stopped once it has run (the kernel's loop). Process context: it sleeps."""
    me = _tasklet_arg("tasklet_kill", t)
    if me.cpu.preempt_count & IRQ_MASK:
        me.machine.printk("Attempt to kill tasklet from interrupt", "WARNING")
    st = deferred_state(me)
    while True:
        with st.guard:  # test_and_set_bit(TASKLET_STATE_SCHED)
            if not t.scheduled:
                t.scheduled = True
                break
        while t.scheduled:  # the kernel yield()s until it has run
            if t.count:
                cpu_relax()  # disabled: it never runs (the kernel waits for ever too)
            else:
                msleep(1)
    while t.running:  # tasklet_unlock_wait()
        cpu_relax()
    if me.hb is not None:  # KCSAN: what it did happens before what follows
        me.hb.acquire(me, ("tasklet_done", id(t)))
    with st.guard:
        t.scheduled = False


def _tasklet_action(st: DeferredState, n: int, nr: int) -> None:
    """tasklet_action(): run CPU ``n``'s queued tasklets; a disabled one, or one running on
    another CPU, stays queued."""
    with st.guard:
        vec = st.hi_tasklets if nr == HI_SOFTIRQ else st.tasklets
        todo = vec[n]
        vec[n] = []
    busy_elsewhere = False
    for i, tl in enumerate(todo):
        with st.guard:
            runnable = not tl.running and tl.count == 0
            if runnable:
                tl.running = True
                tl.runner = current_task()
                tl.scheduled = False
        if not runnable:
            if tl.count == 0:
                busy_elsewhere = True
            with st.guard:
                vec[n].append(tl)
            continue
        try:
            func = tl.func
            t = current_task()
            if t.hb is not None:  # KCSAN
                t.hb.acquire(t, ("tasklet", id(tl)))
            if func is not None:
                func(tl if tl.use_callback else tl.data)
            if t.hb is not None:  # tasklet_kill()/tasklet_disable() see what it did
                t.hb.release(t, ("tasklet_done", id(tl)))
        except BaseException:
            with st.guard:  # what this round has not run stays queued
                vec[n].extend(todo[i + 1:])
            raise
        finally:
            tl.running = False
            tl.runner = None
    if busy_elsewhere or vec[n]:
        # what stays queued (it rescheduled itself, or waits for another CPU): ksoftirqd
        # sees to it (__do_softirq's wakeup_softirqd() after its restarts)
        st.kick(n, current_task())


def _tasklet_softirq(st: DeferredState, n: int) -> None:
    _tasklet_action(st, n, TASKLET_SOFTIRQ)


def _tasklet_hi_softirq(st: DeferredState, n: int) -> None:
    _tasklet_action(st, n, HI_SOFTIRQ)


SOFTIRQ_ACTIONS[HI_SOFTIRQ] = _tasklet_hi_softirq
SOFTIRQ_ACTIONS[TASKLET_SOFTIRQ] = _tasklet_softirq

__all__ = ["tasklet_struct", "tasklet_init", "tasklet_setup", "DECLARE_TASKLET", "DECLARE_TASKLET_DISABLED",
           "tasklet_schedule", "tasklet_hi_schedule", "tasklet_disable", "tasklet_disable_nosync",
           "tasklet_enable", "tasklet_kill"]
