"""Kernel timers (<linux/timer.h>): struct timer_list and its API, LDD3 chapter 7.

Kept: ``timer_list`` with ``function``, ``data`` and ``expires`` (jiffies, HZ = 1000, the
virtual clock of runtime/kernel.py ``jiffies()``); both styles of setting one up:
init_timer() then ``.function``/``.data`` or setup_timer(timer, fn, data) (2.6 to 4.14: the
function gets ``data``), and timer_setup(timer, callback, flags) (4.15 on: the callback gets
the timer). add_timer() arms it on the calling CPU's base, add_timer_on() on a given CPU's;
mod_timer() re-arms it and returns whether it was pending (a timer whose function is running
stays on its base, so it never runs on two CPUs at once); del_timer() returns whether it was
pending and does not wait; del_timer_sync() also waits while the function runs on another
CPU, and re-deletes a timer that re-armed itself meanwhile (try_to_del_timer_sync's loop);
timer_pending(). A timer runs once, in softirq context (TIMER_SOFTIRQ: SOFTIRQ_OFFSET in the
preempt count, in_atomic() true, so GFP_KERNEL there is "BUG: sleeping function called from
invalid context"), on the CPU whose base holds it, once virtual time reaches ``expires``:
see runtime/softirqd.py for how (ksoftirqd, and what that simplifies). A function that
returns with the preempt count changed gets call_timer_fn()'s "timer: %pS preempt leak:
%08x -> %08x" and the count is restored, as today.

Misuse, in the kernel's words: add_timer() of a pending timer is today's
``WARN_ON_ONCE(timer_pending(timer))`` (2.6 had a BUG_ON) and does nothing; init_timer() of
an armed timer is debugobjects' "ODEBUG: init active" (the timer is deactivated, as its
fixup does); del_timer_sync() in hardirq context is today's ``WARN_ON(in_hardirq())``, and
from the timer's own function (which would wait for itself for ever: a lockup in 2.6, a
lockdep "recursive locking" report today) a WARN in the model's words, after which it
returns without waiting. Bad Python arguments (not a timer_list, a function that is not
callable, expires not an unsigned long) are KmemUsageError before anything changes.

Pending timers when a run ends: the run ends when its tasks end, as a module's exit would;
a timer still armed stays armed in the machine and fires in its next run (ksoftirqd starts
with every run once timers were used) - into whatever its function and data are by then,
which is the kernel's use-after-free of a module unloaded with a timer armed.

Simplified: no timer wheel (each base is a list; equal ``expires`` run in arming order), no
jiffies wrap-around, no deferrable or pinned flags (``flags`` is kept, not used), no timer
slack. KCSAN: add_timer()/mod_timer() happen before the function, the function before
what follows del_timer_sync() (not del_timer()).

Kernel files modelled: kernel/timer.c (2.6.10: add_timer, __mod_timer, del_timer,
del_timer_sync, run_timers), kernel/time/timer.c (today: timer_setup, call_timer_fn).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .errors import KmemUsageError
from .kernel import cpu_relax, current, jiffies
from .preempt import HARDIRQ_MASK
from .report import caller_site, relpath, warning_line
from .softirqd import SOFTIRQ_ACTIONS, TIMER_SOFTIRQ, DeferredState, deferred_state
from .task import Task, current_task
from .validate import check_int

#: the largest ``expires`` (an unsigned long)
ULONG_MAX: Final = (1 << 64) - 1


class timer_list:
    """struct timer_list. Set ``function``, ``data`` and ``expires`` directly (2.6 style),
    or with setup_timer() / timer_setup(). A driver keeps it in its device structure; a
    function set up with timer_setup() gets the timer and finds its device from it (an
    attribute the driver adds: Python's from_timer())."""

    def __init__(self, function: Callable[..., Any] | None = None, data: Any = 0, expires: int = 0) -> None:
        self.function = function
        self.data = data
        self.expires = expires
        self.flags = 0
        #: timer_setup(): the function gets the timer, not ``data``
        self.callback_gets_timer = False
        #: armed (entry.pprev != NULL), and the CPU of the base that holds or last held it
        self.pending = False
        self.base: int | None = None
        self.machine: Any = None

    def __repr__(self) -> str:
        fn = getattr(self.function, "__qualname__", self.function)
        return f"<timer_list {fn} expires={self.expires}{' pending' if self.pending else ''}>"


def _timer_arg(fn: str, timer: Any) -> Task:
    t = current_task()
    if not isinstance(timer, timer_list):
        current()  # NotInTaskError first, outside a task
        raise KmemUsageError(f"{fn}: timer(={timer!r}) must be a timer_list (timer_list(), init_timer(), "
                             f"setup_timer(), timer_setup())")
    if timer.machine is not None and timer.machine is not t.machine:
        raise KmemUsageError(f"{fn}: timer {timer!r} belongs to another machine")
    return t


def _function_arg(fn: str, timer: timer_list, function: Any) -> None:
    if not callable(function):
        raise KmemUsageError(f"{fn}: the timer's function(={function!r}) is not callable: set "
                             f"timer.function (or use setup_timer()/timer_setup()) before arming it")


def _expires_arg(fn: str, name: str, value: Any) -> None:
    if value.__class__ is not int or not 0 <= value <= ULONG_MAX:
        check_int(fn, name, value, 0, ULONG_MAX, "a jiffies value (an unsigned long)")


def _odebug_init_active(t: Task, st: DeferredState, timer: timer_list, fn: str) -> None:
    """debugobjects: (re)initialising an armed timer; its fixup deactivates it."""
    file, line, _ = caller_site(3)
    hint = getattr(timer.function, "__qualname__", repr(timer.function))
    t.machine.report("odebug", [
        f"ODEBUG: init active (active state 0) object: {id(timer):#x} object type: timer_list hint: {hint}",
        warning_line(t, file, line, "debug_print_object")], site=f"odebug_init:{file}:{line}")
    _detach(st, timer)


def init_timer(timer: timer_list) -> None:
    """Prepare ``timer`` for use (not armed); set ``function``, ``data``, ``expires`` next."""
    t = _timer_arg("init_timer", timer)
    if timer.pending:
        _odebug_init_active(t, deferred_state(t), timer, "init_timer")
    timer.callback_gets_timer = False
    timer.base = None


def setup_timer(timer: timer_list, function: Callable[[Any], Any], data: Any = 0) -> None:
    """init_timer(), then ``function`` (called with ``data``) and ``data`` (2.6.15 to 4.14)."""
    t = _timer_arg("setup_timer", timer)
    _function_arg("setup_timer", timer, function)
    if timer.pending:
        _odebug_init_active(t, deferred_state(t), timer, "setup_timer")
    timer.function = function
    timer.data = data
    timer.callback_gets_timer = False
    timer.base = None


def timer_setup(timer: timer_list, callback: Callable[[timer_list], Any], flags: int = 0) -> None:
    """Today's set-up: ``callback(timer)`` runs when it expires; ``flags`` (TIMER_*) are kept."""
    t = _timer_arg("timer_setup", timer)
    _function_arg("timer_setup", timer, callback)
    if flags.__class__ is not int or not 0 <= flags <= 0xFFFFFFFF:
        check_int("timer_setup", "flags", flags, 0, 0xFFFFFFFF, "TIMER_* flags")
    if timer.pending:
        _odebug_init_active(t, deferred_state(t), timer, "timer_setup")
    timer.function = callback
    timer.data = 0
    timer.flags = flags
    timer.callback_gets_timer = True
    timer.base = None


def timer_pending(timer: timer_list) -> bool:
    """Is ``timer`` armed (added and neither run nor deleted)?"""
    _timer_arg("timer_pending", timer)
    return timer.pending


def _detach(st: DeferredState, timer: timer_list) -> bool:
    with st.guard:
        if not timer.pending:
            return False
        timer.pending = False
        base = timer.base
        if base is not None and timer in st.timers[base]:
            st.timers[base].remove(timer)
        return True


def _mod_timer(t: Task, timer: timer_list, expires: int, cpu: int | None) -> int:
    """__mod_timer(): detach, then arm on this CPU's base (or ``cpu``'s); 1 if it was pending."""
    st = deferred_state(t)
    timer.machine = t.machine
    with st.guard:
        was = timer.pending
        if was and timer.base is not None and timer in st.timers[timer.base]:
            st.timers[timer.base].remove(timer)
        base = t.cpu.id if cpu is None else cpu
        old = timer.base
        if cpu is None and old is not None and old != base and st.running_timer[old] is timer:
            base = old  # its function runs there now: keep it there, never on two CPUs at once
        timer.expires = expires
        timer.base = base
        timer.pending = True
        st.timers[base].append(timer)
        earliest = min(tm.expires for tm in st.timers[base]) == expires
    if t.hb is not None:  # KCSAN: the function sees what armed it
        t.hb.release(t, ("timer", id(timer)))
    if earliest:  # every ksoftirqd watches it (another may have to interrupt a busy CPU)
        for n in range(len(st.timers)):
            st.kick(n, t)
    return 1 if was else 0


def add_timer(timer: timer_list) -> None:
    """Arm ``timer`` on this CPU to run at ``timer.expires``. A pending timer is today's
    WARN_ON_ONCE and is left as it is."""
    t = _timer_arg("add_timer", timer)
    _function_arg("add_timer", timer, timer.function)
    _expires_arg("add_timer", "timer.expires", timer.expires)
    if timer.pending:
        file, line, _ = caller_site(2)
        t.machine.report("warning", [warning_line(t, file, line, "add_timer"),
                                     f"add_timer() of a pending timer ({timer!r})"],
                         site=f"add_timer_pending:{file}:{line}")
        return
    _mod_timer(t, timer, timer.expires, None)


def add_timer_on(timer: timer_list, cpu: int) -> None:
    """Arm ``timer`` on CPU ``cpu``'s base."""
    t = _timer_arg("add_timer_on", timer)
    check_int("add_timer_on", "cpu", cpu, 0, t.machine.nr_cpus - 1, "a CPU number")
    _function_arg("add_timer_on", timer, timer.function)
    _expires_arg("add_timer_on", "timer.expires", timer.expires)
    if timer.pending:
        file, line, _ = caller_site(2)
        t.machine.report("warning", [warning_line(t, file, line, "add_timer_on"),
                                     f"add_timer_on() of a pending timer ({timer!r})"],
                         site=f"add_timer_pending:{file}:{line}")
        return
    _mod_timer(t, timer, timer.expires, cpu)


def mod_timer(timer: timer_list, expires: int) -> int:
    """Re-arm ``timer`` at ``expires`` (arming it if it was not); 1 if it was pending, else 0."""
    t = _timer_arg("mod_timer", timer)
    _expires_arg("mod_timer", "expires", expires)
    _function_arg("mod_timer", timer, timer.function)
    return _mod_timer(t, timer, expires, None)


def del_timer(timer: timer_list) -> int:
    """Disarm ``timer``; 1 if it was pending. It does not wait for a function running on
    another CPU: memory that function uses may not be freed yet (del_timer_sync())."""
    t = _timer_arg("del_timer", timer)
    if not timer.pending:
        return 0
    return 1 if _detach(deferred_state(t), timer) else 0


def del_timer_sync(timer: timer_list) -> int:
    """Disarm ``timer`` and wait until its function runs on no CPU; 1 if it was pending.
    Not from hardirq context, nor from the timer's own function (both WARN)."""
    t = _timer_arg("del_timer_sync", timer)
    st = deferred_state(t)
    c = t.cpu
    if c.preempt_count & HARDIRQ_MASK:
        file, line, _ = caller_site(2)
        t.machine.report("warning", [warning_line(t, file, line, "__timer_delete_sync"),
                                     "del_timer_sync() in hardirq context (WARN_ON(in_hardirq()))"],
                         site=f"del_timer_sync_irq:{file}:{line}")
    ret = 0
    while True:
        base = timer.base
        running = base is not None and st.running_timer[base] is timer
        if base is not None and running and st.running_task[base] is t:
            file, line, _ = caller_site(2)
            t.machine.report("warning", [warning_line(t, file, line, "__timer_delete_sync"),
                                         "del_timer_sync() called from the timer's own function: it would "
                                         "wait for itself for ever"],
                             site=f"del_timer_sync_self:{file}:{line}")
            return 1 if _detach(st, timer) else ret
        if not running:
            if t.hb is not None:  # KCSAN: what the function did happens before what follows
                t.hb.acquire(t, ("timer_done", id(timer)))
            return 1 if _detach(st, timer) else ret
        if _detach(st, timer):
            ret = 1
        cpu_relax()


def _run_timers(st: DeferredState, n: int) -> None:
    """run_timer_softirq() for CPU ``n``'s base: every timer whose time has come, earliest
    first, each detached before its function runs (it may re-arm itself)."""
    now = jiffies()
    while True:
        with st.guard:
            due = [tm for tm in st.timers[n] if tm.expires <= now]
            if not due:
                return
            timer = min(due, key=lambda tm: tm.expires)
            st.timers[n].remove(timer)
            timer.pending = False
            st.running_timer[n] = timer
            st.running_task[n] = current_task()
        try:
            _call_timer_fn(timer)
        finally:
            if st.running_timer[n] is timer:
                st.running_timer[n] = None
                st.running_task[n] = None


def _call_timer_fn(timer: timer_list) -> None:
    t = current_task()
    c = t.cpu
    count = c.preempt_count
    fn = timer.function
    if fn is None:
        return
    ev = t.machine.events
    if ev is not None:
        ev.record(t, "softirq", f"timer {getattr(fn, '__qualname__', fn)}")
    hb = t.hb
    if hb is not None:  # KCSAN
        hb.acquire(t, ("timer", id(timer)))
    fn(timer if timer.callback_gets_timer else timer.data)
    if hb is not None:  # del_timer_sync() sees what the function did
        hb.release(t, ("timer_done", id(timer)))
    c = t.cpu
    if c.preempt_count != count:
        file, line = "<unknown>", 0
        code = getattr(fn, "__code__", None)
        sym = getattr(fn, "__qualname__", repr(fn))
        if code is not None:
            file, line = relpath(code.co_filename), code.co_firstlineno
        t.machine.report("warning", [warning_line(t, file, line, "call_timer_fn"),
                                     f"timer: {sym} preempt leak: {count:08x} -> {c.preempt_count:08x}"],
                         site=f"timer_preempt_leak:{sym}")
        c.preempt_count = count


SOFTIRQ_ACTIONS[TIMER_SOFTIRQ] = _run_timers

#: today's names of del_timer() and del_timer_sync() (6.2 on)
timer_delete = del_timer
timer_delete_sync = del_timer_sync


__all__ = ["timer_list", "init_timer", "setup_timer", "timer_setup", "add_timer", "add_timer_on", "mod_timer",
           "del_timer", "del_timer_sync", "timer_pending", "ULONG_MAX", "timer_delete", "timer_delete_sync"]
