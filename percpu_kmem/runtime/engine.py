"""Execution engines: how task threads take turns on the simulated CPUs.

:class:`BatonEngine` (policies random, pct, virtual, and replay) lets exactly one
thread run simulated code at a time. The running thread holds the baton; at a
decision it asks the policy who goes next and hands the baton over by releasing
that task's lock and blocking on its own. Everything else is therefore plain,
unlocked Python, and a seed fixes the interleaving byte for byte.

:class:`FreeEngine` (policy "free") lets the task threads run at once, as real
OS threads, each holding a CPU slot; the engine only injects preemption,
migration and interrupts at random. It finds what the GIL's own switching
finds, fast and without reproducibility.

Both offer the same primitives to the rest of the runtime: ``decide`` (a point
whose budget ran out), ``sleep``/``wake``, ``spin`` (wait on a held spinlock),
``relax`` (one turn of a busy-wait loop), ``exit``.

Ending a run. Python threads cannot be killed, so a run ends cooperatively, in
two stages:

- *draining* (``aborting``): after a task raised, a handler raised, Ctrl-C, the
  wall-clock timeout, a panic, or simply once every task of the run has returned
  (the daemons must stop too), each remaining task unwinds (TaskAbort) at its next
  *safe point*: a point where it holds no spinlock or mutex and is not inside the
  allocators' code (or a sleep, where the allocators' state is consistent by
  construction). A task inside a critical section runs on, under the same policy,
  until it leaves it; sleepers are woken so that they reach such a point. So no
  lock of the model and no half-done update is left behind.
- *finished*: everything unwinds at once. Reached when draining is done, when it
  cannot finish (a task spins on a lock its dead owner never released), or after
  :data:`DRAIN_STEPS` steps of draining.

A run whose last task exits leaves nothing running; a lock still held by a task
that is gone is what ``Machine.check()`` reports, and the machine refuses further
runs if that lock belongs to the model itself.
"""

from __future__ import annotations

import heapq
import os
import random
import sys
import threading
import time
from abc import ABC, abstractmethod
from bisect import insort
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from . import affinity, costs, threadpool
from . import footprint as _fp
from .errors import KmemInternalError, Oops, RunTimeout, TaskAbort
from .policies import Options, Policy
from .preempt import HARDIRQ_MASK, HUNG_TASK_TIMEOUT_NS, HUNG_TASK_TIMEOUT_SECS, NSEC_PER_JIFFY
from .task import (
    CPU,
    NO_TASK,
    T_DONE,
    T_ON_CPU,
    T_READY,
    T_SLEEPING,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    Task,
    set_current_task,
)
from .trace import Decision

if TYPE_CHECKING:
    from .machine import SmpMachine as Machine

#: Steps a drain may take before every task is unwound at once.
DRAIN_STEPS: Final = 20_000
#: For this many steps a drain unwinds tasks only outside the allocators' code; after
#: that also at any preemptible point inside it (a task that lives in allocator calls).
DRAIN_STRICT_STEPS: Final = 2_000
#: Wall seconds a Ctrl-C or a timed-out run waits for its tasks to reach a safe point.
STOP_GRACE: Final = 5.0
#: A busy-wait is a livelock when every live task has been in one (or spins, or sleeps)
#: for this many cpu_relax() calls of its own without doing anything else.
LIVELOCK_RELAXES: Final = 20_000
#: a cpu_relax() more than this many scheduling points after the task's previous one
#: starts a new busy-wait streak (the loop did other work in between)
RELAX_GAP: Final = 16
#: cpu_relax() calls between two livelock checks of one task.
LIVELOCK_CHECK_EVERY: Final = 1024
#: cpu_relax() calls between two checks of a task that reads the clock in its busy-wait
#: (it may wait for time: see Engine._pass_time)
TIME_CHECK_EVERY: Final = 32
#: the longest a busy-wait on the clock may make time pass while nothing else happens
#: (khungtaskd's 120 s); past it, the livelock rules apply
TIME_WAIT_LIMIT_NS: Final = HUNG_TASK_TIMEOUT_NS

_CPU_ID: Final = attrgetter("cpu.id")
_ID: Final = attrgetter("id")
#: a task's clock limit when the policy sets none
_NO_VLIMIT: Final = 1 << 62
#: the interrupt sources of a decision where none may fire (never mutated)
_NO_IRQS: Final[list[tuple[int, float]]] = []
#: no idle CPU with interrupts to serve (never mutated)
_NO_CPUS: Final[list[CPU]] = []

_PKG_DIR: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODEL_DIR: Final = os.path.join(_PKG_DIR, "mm") + os.sep
_MODEL_FILES: Final = frozenset({os.path.join(_PKG_DIR, "runtime", "smp.py"), os.path.join(_PKG_DIR, "boot.py")})


def in_model_code() -> bool:
    """Is the calling thread inside the allocators' code (mm/, cross-CPU calls)?

    Walks the Python stack; used only while a run is being aborted.
    """
    f: Any = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if fn.startswith(_MODEL_DIR) or fn in _MODEL_FILES:
            return True
        f = f.f_back
    return False


class Engine(ABC):
    """What every engine offers the runtime: starting a run, the scheduling primitives
    (decide, sleep, wake, yield, spin, relax, exit), charging virtual time, and stopping.

    The shared state (tasks, ready queue, timers, the abort flags) and the shared rules
    (when a task may unwind, livelock detection) live here; BatonEngine and FreeEngine
    say how threads take turns.
    """

    deterministic = True
    #: one task thread runs at a time: keep them on one core (runtime/affinity.py)
    pins_threads = False
    #: a release with spinners waiting ends the holder's budget (the virtual policy)
    policy_reopens_on_release = False

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.cpus: list[CPU] = machine.cpus
        self.tasks: list[Task] = []
        self.ready: list[Task] = []
        self.timers: list[tuple[int, int, int, Task]] = []  # (deadline, seq, timer_seq, task)
        self._timer_seq = 0
        #: virtual ns, for timers: a run starts where the machine's CPUs got to (a later run
        #: of the same machine goes on from the time its earlier runs reached)
        self.now = max((c.clock for c in self.cpus), default=0)
        #: ``now`` when the machine last found every task asleep with no timer set and let a
        #: device interrupt come in (_idle_interrupt); -1 once a task has woken since
        self.idle_since = -1
        #: virtual time before which no uninterruptible sleep can be 120 s old (_khungtaskd)
        self._hung_next = self.now + HUNG_TASK_TIMEOUT_NS
        self.steps = 0
        #: a replay's test for a decision the recorded run took just before a spinlock
        #: (``fn(t, event)``), None otherwise: see ReplayPolicy.due_before_lock
        self.due_before_lock: Callable[[Task, str], bool] | None = None
        #: draining: tasks unwind at their next safe point (see the module docstring)
        self.aborting = False
        #: every task unwinds now
        self.finished = False
        self.abort_reason = ""
        self.abort_step = 0
        self.failure: BaseException | None = None
        self._exit_lock = threading.Lock()
        self._live_threads = 0
        self.live_workers = 0
        self._all_exited = threading.Event()
        #: the decision log as plain tuples (Decision's fields): cheap to append at every
        #: decision; ``decisions`` makes Decision objects of them
        self.log: list[tuple[int, int, str, str, int, int]] = []
        #: the tasks on CPUs, in CPU order, and the online idle CPUs, in id order: kept up to
        #: date at every placement (_place/_unplace), so a decision need not scan the CPUs
        self.on_cpus: list[Task] = [c.curr for c in self.cpus if c.curr is not None]
        self.idle: list[CPU] = [c for c in self.cpus if c.curr is None and c.online]
        #: bumped at every placement: the options built for one placement serve until the next
        self.placements = 0
        #: tasks spinning now (engine.spin): while any spins, options are built afresh
        self.spinners = 0

    @property
    def decisions(self) -> list[Decision]:
        """The decision log of the run so far."""
        make = Decision._make
        return [make(d) for d in self.log]

    # -- task life ---------------------------------------------------------
    def _register(self, t: Task) -> None:
        """Count ``t`` as part of the run (before any task thread can end it)."""
        t.engine = self
        self.tasks.append(t)
        if not t.is_idle and not t.daemon:
            self.live_workers += 1
        with self._exit_lock:
            self._live_threads += 1
            self._all_exited.clear()

    def _launch(self, t: Task) -> None:
        threadpool.submit(lambda: self._thread_main(t))

    def _thread_main(self, t: Task) -> None:
        """``t``'s pool thread: on the run's one core when only one thread runs at a time
        (``pins_threads``, the baton engine), else where the host puts it (runtime/affinity.py)."""
        affinity.place(self.pins_threads)
        self._task_main(t)

    def add_task(self, t: Task) -> None:
        self._register(t)
        self._launch(t)

    def _task_main(self, t: Task) -> None:
        set_current_task(t)
        normal = False
        try:
            self._first_turn(t)
            t.result = t.fn()
            normal = True
        except TaskAbort:
            pass
        except Oops as e:
            t.exc = e
        except BaseException as e:
            t.exc = e
            self.fail(e, f"{t.name} raised {type(e).__name__}")
        finally:
            try:
                if normal and t.held and not self.finished:
                    self._exit_check(t, self.m.report_held_locks, "exited with locks held")
                elif normal and not self.finished:
                    self._exit_check(t, self.m.report_exit_atomic, "exited in atomic context")
                self.exit(t)
            except TaskAbort:
                pass
            finally:
                set_current_task(NO_TASK)
                self._thread_gone()

    def _exit_check(self, t: Task, report: Callable[[Task], object], what: str) -> None:
        """What a returning task left behind: lockdep's debug_check_no_locks_held() (locks
        held) or do_exit()'s notes (preemption or interrupts disabled). A report that
        raises (``on_bug="raise"``/``"panic"``) fails the run as ``"<task> <what>"``."""
        try:
            report(t)
        except BaseException as e:
            if not isinstance(e, TaskAbort):
                t.exc = e
                self.fail(e, f"{t.name} {what}")

    def _thread_gone(self) -> None:
        with self._exit_lock:
            self._live_threads -= 1
            if self._live_threads == 0:
                self._all_exited.set()

    def wait_all_exited(self, timeout: float | None) -> bool:
        return self._all_exited.wait(timeout)

    def threads_alive(self) -> int:
        with self._exit_lock:
            return self._live_threads

    # -- failing and aborting -------------------------------------------------
    def fail(self, exc: BaseException, why: str) -> None:
        """A task or handler raised: the run fails with ``exc`` (the first one wins)."""
        if self.failure is None:
            self.failure = exc
        self.begin_abort(why)

    def begin_abort(self, why: str) -> None:
        """Start draining (callable from any thread): tasks unwind at safe points."""
        if self.aborting:
            return
        self.abort_reason = why
        self.abort_step = self.steps
        self.aborting = True
        for u in self.tasks:
            u.budget = 0

    def may_abort(self, t: Task) -> bool:
        """Can ``t`` unwind here without leaving a lock or a half-done update behind?

        Never while it holds a lock. At a sleep, yes. Elsewhere, first only outside the
        allocators' code; once the drain has taken DRAIN_STRICT_STEPS, also at any point
        where the kernel could preempt it (preempt_count 0, interrupts on): a task whose
        every point is inside allocator calls (a tight kmalloc/kfree loop) then stops
        between two of its critical sections, at worst leaking what it was allocating.
        """
        if self.finished:
            return True
        if t.held:
            return False
        if t.is_idle and any(self.cpus[i].pending_irqs for i in t.cpus_allowed or ()):
            # an idle task's one job in a drain: the interrupts pending on its CPU (an IPI
            # that a task unwinding elsewhere waits for in smp_call_function()), even
            # before it has taken the CPU (the free policy's first turn)
            return False
        c = t.cpu
        if t.in_sleep:
            return True
        if not in_model_code():
            return True
        return (self.steps - self.abort_step > DRAIN_STRICT_STEPS and c is not None
                and c.preempt_count == 0 and not c.irqs_off)

    def _abort_point(self, t: Task) -> None:
        """While draining: unwind ``t`` if it is at a safe point (raise TaskAbort)."""
        if self.may_abort(t):
            raise TaskAbort()

    # -- the interface -------------------------------------------------------------
    @abstractmethod
    def start(self, tasks: list[Task]) -> None:
        """Register and launch the run's tasks."""

    @abstractmethod
    def _first_turn(self, t: Task) -> None:
        """In ``t``'s thread, before its function runs: wait until it may run."""

    @abstractmethod
    def decide(self, t: Task, event: str) -> None:
        """A scheduling point whose budget ran out: switch, preempt, interrupt or go on."""

    @abstractmethod
    def sleep(self, t: Task, on: Any, timeout_ns: int | None, event: str) -> bool:
        """Block ``t`` until woken (True) or until the timeout passes (False)."""

    @abstractmethod
    def wake(self, waker: Task | None, t: Task) -> bool:
        """try_to_wake_up(): make ``t`` runnable; True if it was sleeping or preparing to."""

    @abstractmethod
    def yield_cpu(self, t: Task, event: str) -> None:
        """schedule() in TASK_RUNNING: a voluntary switch."""

    @abstractmethod
    def spin(self, t: Task, lock: Any, event: str) -> None:
        """Wait while ``lock.locked()`` (a spinlock, a cross-CPU call)."""

    @abstractmethod
    def relax(self, t: Task) -> None:
        """One turn of a busy-wait loop (cpu_relax())."""

    @abstractmethod
    def idle_wait(self, t: Task) -> None:
        """The idle task served its CPU's interrupts: give the CPU back."""

    @abstractmethod
    def wake_idle(self, t: Task) -> None:
        """An interrupt was raised on an idle CPU."""

    @abstractmethod
    def exit(self, t: Task) -> None:
        """``t``'s function ended (or unwound): free its CPU, pick who runs next."""

    @abstractmethod
    def charge(self, t: Task, cycles: int) -> None:
        """Add ``cycles`` to the clock of ``t``'s CPU."""

    @abstractmethod
    def current_step(self, t: Task | None) -> int:
        """The scheduling step ``t`` is at (a report's ``step``)."""

    @abstractmethod
    def request_abort(self, t: Task | None) -> None:
        """From inside the run (a panic): drain."""

    @abstractmethod
    def request_stop(self, why: str) -> None:
        """From outside the run (Ctrl-C, timeout): drain."""

    @abstractmethod
    def force_stop(self) -> None:
        """From outside the run: unwind every task now."""

    # -- timers (virtual time) ------------------------------------------------
    def _arm_timer(self, t: Task, timeout_ns: int) -> None:
        t.timer_seq += 1
        self._timer_seq += 1
        heapq.heappush(self.timers, (self.now + max(0, timeout_ns), self._timer_seq, t.timer_seq, t))

    def _prune_timers(self) -> None:
        timers = self.timers
        while timers and (timers[0][3].state != T_SLEEPING or timers[0][2] != timers[0][3].timer_seq):
            heapq.heappop(timers)

    def advance(self, ns: int) -> None:
        """A CPU read its clock at ``ns`` (jiffies, ktime_get_ns): virtual time is there for
        everyone now, and the timers due by then fire."""
        if ns > self.now:
            self.now = ns
            if self.timers and self.timers[0][0] <= ns:
                self._fire_due()
            elif self.m.irq.timer_hook is not None:  # kernel timers (runtime/softirqd.py)
                self.m.irq.timer_hook(ns)

    def _fire_timers(self) -> list[Task]:
        """Advance the clock to the earliest live timer and wake every task due then."""
        self._prune_timers()
        if not self.timers:
            return []
        self.now = max(self.now, self.timers[0][0])
        return self._fire_due()

    def _timed_sleepers(self) -> set[int]:
        """ids of the tasks whose sleep has a live timer (msleep, schedule_timeout)."""
        return {id(entry[3]) for entry in self.timers if entry[2] == entry[3].timer_seq}

    def _khungtaskd(self) -> None:
        """khungtaskd, at each jump of virtual time: a task asleep uninterruptibly with no
        timeout (mutex_lock(), wait_event(), a TASK_UNINTERRUPTIBLE schedule()) for
        HUNG_TASK_TIMEOUT_SECS is reported once per sleep, in the kernel's words; it sleeps
        on (a warning, as the kernel's). Simplified: a timed uninterruptible sleep (msleep)
        is never reported, where the kernel reports one over 120 s too; daemons (kswapd,
        whose kernel twin sleeps interruptibly) are not watched. No sleep can be 120 s old
        before ``_hung_next``, so the tasks are not looked at until then."""
        if self.now < self._hung_next:
            return
        limit = self.now - HUNG_TASK_TIMEOUT_NS
        watched = [u for u in self.tasks if u.state == T_SLEEPING and u.slept_at >= 0
                   and u.kstate == TASK_UNINTERRUPTIBLE and not u.is_idle and not u.daemon]
        hung = [u for u in watched if u.slept_at <= limit]
        self._hung_next = min([u.slept_at + HUNG_TASK_TIMEOUT_NS for u in watched if u.slept_at > limit]
                              + [self.now + HUNG_TASK_TIMEOUT_NS])
        if not hung:
            return
        timed = self._timed_sleepers()
        for u in hung:
            if id(u) not in timed:
                u.slept_at = -1
                self.m.report_hung(u, HUNG_TASK_TIMEOUT_SECS, describe_wait(u.waiting_on))

    def _fire_due(self) -> list[Task]:
        """Wake every task whose timer is due at ``now`` (khungtaskd looks first)."""
        self._khungtaskd()
        woken = []
        while self.timers and self.timers[0][0] <= self.now:
            _, _, seq, t = heapq.heappop(self.timers)
            if t.state == T_SLEEPING and seq == t.timer_seq:
                t.timed_out = True
                self._make_ready(t, self.now)
                woken.append(t)
        if self.m.irq.timer_hook is not None:  # kernel timers due on a busy CPU (runtime/softirqd.py)
            self.m.irq.timer_hook(self.now)
        return woken

    def _idle_interrupt(self) -> bool:
        """Every task sleeps, no timer is set, and a device interrupts at a rate
        (``m.request_irq(..., rate=r)``): the CPUs idle until it does, and a reader waiting
        for the device (LDD3's short) is woken by its handler, not a deadlock (some task
        must sleep: tasks that only spin wait for a lock, not the device). Raise the
        source of the highest rate (the lowest line of those) on the first idle CPU and let
        time pass as _pass_time does (a jiffy, then 1/32 of the idle time so far); the
        engine's own choice, the same in a replay. False when no source is registered, no
        CPU is idle, or the machine has idled TIME_WAIT_LIMIT_NS with nobody woken: then it
        is a deadlock."""
        sources = self.m.irq.sources  # the lines with a rate > 0
        cpus = [c for c in self.cpus if c.online and c.curr is None]
        if not sources or not cpus or not any(u.state == T_SLEEPING and not u.is_idle and not u.daemon
                                               for u in self.tasks):
            return False  # (tasks that only spin wait for a lock, not for the device)
        if self.idle_since < 0:
            self.idle_since = self.now
        if not self._let_time_pass(self.idle_since):
            return False
        self._khungtaskd()
        irq = min(sources, key=lambda s: (-s[1], s[0]))[0]
        self.m.irq.raise_irq(irq, cpus[0].id)
        return True

    def others_may_run(self, me: Task, stalled: Callable[[Any], bool]) -> bool:
        """Can a task other than ``me`` still run, and so still free what ``me`` waits for?
        True while one is on a CPU or runnable, or sleeps with a timer set (msleep,
        schedule_timeout) on anything ``stalled`` does not accept (a fellow waiter's queue).
        False when every other live task is done, stalled likewise, or sleeps with nothing
        but another task to wake it. (The allocators' waits ask it before they call a long
        wait hung: mm/mempool.py, mm/page_alloc.py.)"""
        timed = self._timed_sleepers()
        for u in self.tasks:
            if u is me or u.is_idle or u.state == T_DONE:
                continue
            if u.state != T_SLEEPING:
                return True
            if id(u) in timed and not stalled(u.waiting_on):
                return True
        return False

    def _make_ready(self, t: Task, at: int) -> None:
        self.idle_since = -1
        t.state = T_READY
        t.woken = True
        t.kstate = TASK_RUNNING
        t.waiting_on = None
        t.timer_seq += 1
        t.ready_at = at
        self.ready.append(t)
        self.ready_changed(t)

    def ready_changed(self, t: Task) -> None:
        """``t`` joined the ready list or was bound to CPUs: while a ready task is bound, a
        decision's options list the ready tasks that fit the idle CPUs (a copy), so they are
        rebuilt."""
        if t.cpus_allowed is not None or any(r.cpus_allowed is not None for r in self.ready):
            self.placements += 1

    # -- CPU placement -----------------------------------------------------
    def _place(self, t: Task, c: CPU) -> None:
        if c.curr is not None:
            raise KmemInternalError(f"placing {t.name} on busy CPU#{c.id} ({c.curr.name})")
        c.curr = t
        t.cpu = c
        t.state = T_ON_CPU
        self.placements += 1
        insort(self.on_cpus, t, key=_CPU_ID)
        if c.online:
            self.idle.remove(c)
        c.preempt_count = t.saved_count
        c.irqs_off = t.saved_irqs_off
        c.nr_switches += 1
        if t.ready_at > c.clock:
            c.clock = t.ready_at

    def _unplace(self, t: Task) -> None:
        c = t.cpu
        if c is None:
            return
        t.saved_count = c.preempt_count
        t.saved_irqs_off = c.irqs_off
        c.preempt_count = 0
        c.irqs_off = False
        c.curr = None
        self.placements += 1
        self.on_cpus.remove(t)
        if c.online:
            insort(self.idle, c, key=_ID)
        t.last_cpu = c.id
        t.cpu = None  # type: ignore[assignment]  # off its CPU
        t.ready_at = c.clock

    def idle_cpus(self) -> list[CPU]:
        return list(self.idle)

    def blocked_summary(self) -> list[str]:
        """Who waits on what, one line per live task (for deadlock and livelock reports)."""
        out = []
        for t in self.tasks:
            if t.state == T_DONE or t.is_idle:
                continue
            where = f"CPU#{t.cpu.id}" if t.cpu is not None else "no CPU"
            if t.spinning is not None:
                out.append(f"{t.name} spins on {where} for {describe_wait(t.spinning)}")
            elif t.state == T_SLEEPING:
                out.append(f"{t.name} sleeps on {describe_wait(t.waiting_on)}")
            elif t.relax_streak:
                out.append(f"{t.name} busy-waits on {where} in cpu_relax() at {t.relax_site} "
                           f"({t.relax_streak} turns)")
            else:
                out.append(f"{t.name} is {t.state_name}")
        return out

    # -- busy-waiting and livelock ---------------------------------------------
    def _note_points(self, t: Task, points: int) -> None:
        """At a decision: account ``points`` to ``t``."""
        t.points += points

    @staticmethod
    def _streak(t: Task, points: int) -> None:
        """A cpu_relax() of ``t``, which has passed ``points`` scheduling points in all: one
        more turn of its busy-wait, or the first of a new one if the loop did more than
        RELAX_GAP points of other work since the previous cpu_relax()."""
        if points - t.relax_points > RELAX_GAP:
            t.relax_streak = 0
        t.relax_points = points
        t.relaxes += 1
        t.relax_streak += 1

    def _livelocked(self, streak: int = LIVELOCK_RELAXES) -> bool:
        """Every live task busy-waits (``streak`` turns or more), spins or sleeps, or waits for
        a CPU that no busy-waiter can give up (it cannot be preempted): none can progress."""
        cpu_free = any(c.curr is None or (c.preempt_count == 0 and not c.irqs_off)
                       for c in self.cpus if c.online)
        for u in self.tasks:
            if u.state == T_DONE or u.is_idle:
                continue
            if u.state == T_SLEEPING or u.spinning is not None:
                continue
            if u.state == T_READY:
                if cpu_free:
                    return False
                continue
            if u.relax_streak < streak:
                return False
        return True

    @staticmethod
    def _check_every(t: Task) -> int:
        """cpu_relax() calls between two busy-wait checks of ``t``: fewer when the loop reads
        the clock (it may wait for time to pass)."""
        return TIME_CHECK_EVERY if t.clock_read > t.relaxes - t.relax_streak else LIVELOCK_CHECK_EVERY

    def _busy_waiting_check(self, t: Task) -> bool:
        """Every _check_every() turns of ``t``'s busy-wait: if nobody does anything but wait,
        let time pass to the next timer (sleepers wake, as they would while the CPUs spin on
        real hardware), or, with no timer, by _pass_time() if ``t`` polls the clock. True
        when nothing is left to wake: then it is a livelock once the busy-waiters have
        turned LIVELOCK_RELAXES times."""
        every = self._check_every(t)
        if not self._livelocked(every):
            return False
        self._prune_timers()
        if self.timers:
            self._fire_timers()
            return False
        if every == TIME_CHECK_EVERY and self._pass_time(t):
            return False
        return t.relax_streak >= LIVELOCK_RELAXES and self._livelocked()

    def _let_time_pass(self, since: int) -> bool:
        """Nothing happens but waiting since ``since``: move the clock to the next jiffy,
        then by steps of 1/32 of the wait so far (a long wait overshoots by at most that).
        False, and the clock stays, once the wait has lasted TIME_WAIT_LIMIT_NS."""
        waited = self.now - since
        if waited >= TIME_WAIT_LIMIT_NS:
            return False
        step = max(1, waited // (32 * NSEC_PER_JIFFY)) * NSEC_PER_JIFFY
        self.now = (self.now // NSEC_PER_JIFFY) * NSEC_PER_JIFFY + step
        return True

    def _pass_time(self, t: Task) -> bool:
        """Everyone busy-waits or sleeps with no timer set, and ``t`` reads the clock in its
        loop (LDD3's jitbusy: ``while (time_before(jiffies, j1)) cpu_relax();``): time passes
        as the CPUs spin. The clock moves to the next jiffy, then by steps of 1/32 of the
        wait so far (a long wait overshoots by at most that), and the busy-waiting CPUs'
        clocks with it. False once the wait has passed TIME_WAIT_LIMIT_NS."""
        if not self._let_time_pass(t.relax_t0):
            return False
        for c in self.cpus:
            u = c.curr
            if u is not None and u.relax_streak and c.clock < self.now:
                c.clock = self.now
        self._khungtaskd()
        return True


def describe_wait(what: Any) -> str:
    """A readable name for what a task sleeps or spins on (any kind of wait)."""
    if what is None:
        return "nothing (woken)"
    describe = getattr(what, "describe", None)
    if describe is not None:
        return str(describe())
    if hasattr(what, "owner_name"):
        return f"spinlock {what.name} held by {what.owner_name()}"
    return str(what)


class BatonEngine(Engine):
    """One thread at a time; the policy picks who holds the baton next."""

    deterministic = True
    pins_threads = True

    def __init__(self, machine: Machine, policy: Policy) -> None:
        super().__init__(machine)
        self.policy = policy
        self.granted = 0
        self.runner: Task | None = None
        self.every_point = policy.every_point
        self.charges_points = policy.charges_points
        self.policy_reopens_on_release = policy.reopens_on_release
        #: points the current runner passed since its last grant, handed to the policy
        self.points_run = 0
        self._target: Task | None = None
        # options of the current placement (see _options)
        self._opts_at = -1
        self._opts: tuple[Options, Options] = (Options([], [], [], [], False, []),) * 2
        self._irqs_seen = any(c.pending_irqs for c in self.cpus)
        #: the policy's clock limit is always "none" (every policy but virtual): no call per grant
        self._no_vlimit = type(policy).vlimit is Policy.vlimit

    # -- starting ------------------------------------------------------------
    def start(self, tasks: list[Task]) -> None:
        """Place the first tasks on CPUs, then hand the baton to the policy's pick."""
        for t in tasks:
            self._register(t)
        for t in tasks:
            self._launch(t)
        free = [c for c in self.cpus if c.online]
        for t in tasks:
            cpus = [c for c in free if t.cpus_allowed is None or c.id in t.cpus_allowed]
            if cpus:
                c = cpus[0]
                free.remove(c)
                self._place(t, c)
            else:
                t.state = T_READY
                self.ready.append(t)
        self.policy.start(self)
        self.steps += 1
        opts = self._options(None, forced=True)
        if opts.runnable_count() == 0:
            raise KmemInternalError("no task can start")
        action = self.policy.choose(self, tasks[0], "start", opts, True)
        first = self._apply_start(action, tasks[0].pid)
        self.runner = first
        self._give_baton(first)

    def _apply_start(self, action: tuple[Any, ...], pid: int) -> Task:
        kind = action[0]
        if kind == "S":
            u = action[1]
            self._record(pid, "start", "S", u.pid)
            return u
        if kind == "D":
            r, c = action[1], action[2]
            self.ready.remove(r)
            self._place(r, c)
            self._record(pid, "start", "D", r.pid, c.id)
            return r
        raise KmemInternalError(f"bad start action {action}")

    def _first_turn(self, t: Task) -> None:
        t.baton.acquire()
        self._resume(t)

    # -- the baton (the greenlet engine passes it by switching greenlets instead) --------
    def _give_baton(self, u: Task) -> None:
        """Let ``u`` run; the caller does not wait for the baton (a start, an exit)."""
        u.baton.release()

    def _pass_baton(self, t: Task, u: Task) -> None:
        """Let ``u`` run and block ``t`` until the baton comes back to it."""
        u.baton.release()
        t.baton.acquire()

    def _release_parked(self) -> None:
        """The run finished: every task thread still parked wakes up (and unwinds)."""
        for t in self.tasks:
            if t.state != T_DONE and t is not self.runner:
                t.budget = 0
                try:
                    t.baton.release()
                except RuntimeError:
                    pass

    def _resume(self, t: Task) -> None:
        """``t`` holds the baton again: check the abort flag, grant a budget, take IRQs."""
        self.runner = t
        if self.aborting:
            self._abort_point(t)
        self._grant(t)
        c = t.cpu
        if c is not None and c.pending_irqs and not c.irqs_off and not (c.preempt_count & HARDIRQ_MASK):
            self.m.irq.deliver_pending(c)

    def _grant(self, t: Task) -> None:
        b = 1 if self.aborting else self.policy.budget(self, t)
        t.budget = b
        self.granted = b
        t.vlimit = _NO_VLIMIT if self._no_vlimit else self.policy.vlimit(self, t)

    def _sync(self, t: Task, extra: int = 1) -> None:
        """Count the points ``t`` passed since its last grant, plus this event.

        A point whose budget ran out has already been counted in the budget
        (``extra=0``); a sleep, spin or exit is an event of its own (``extra=1``).
        """
        n = self.granted - t.budget + extra
        self.points_run = n
        self.steps += n
        self.granted = t.budget
        t.points += n  # _note_points, inline
        if self.charges_points and t.cpu is not None:
            t.cpu.clock += n * costs.POINT

    def current_step(self, t: Task | None) -> int:
        """The step ``t`` is at now (a report's ``step``; the same in a run and its replay)."""
        if t is not None and t is self.runner:
            return self.steps + self.granted - t.budget
        return self.steps

    def _record(self, pid: int, event: str, action: str, arg: int = 0, arg2: int = 0) -> None:
        self.log.append((self.steps, pid, event, action, arg, arg2))

    # -- options ---------------------------------------------------------------
    def _options(self, t: Task | None, forced: bool) -> Options:
        """The legal choices at a decision of ``t`` (None: the start).

        Common case in O(1) of the number of CPUs: with no interrupt handler registered
        in the run so far (so no interrupt can be pending or injected) and no task
        spinning, the runnable tasks are exactly the tasks on CPUs and the idle CPUs are
        those without one: copies of ``on_cpus`` and ``idle`` made once per placement
        serve every decision until the next placement (two Options objects, without and
        with a legal preemption: policies treat Options as read-only). While tasks spin,
        the tasks on CPUs are filtered (a spinner runs once its lock is free). With
        interrupts, the CPUs are scanned (``_scan_options``).
        """
        if self._irqs_seen or self.m.irq.actions:
            self._irqs_seen = True  # an interrupt may stay pending after free_irq()
            return self._scan_options(t, forced)
        if forced and t is not None and t.cpu is not None and t.spinning is None:
            return self._scan_options(t, forced)
        if self.spinners:
            # a spinner runs only once its lock is free: filter the tasks on CPUs
            if self._opts_at != self.placements:
                self._cache_options()
            idle = self._opts[0].idle_cpus
            running = [u for u in self.on_cpus if u.spinning is None or not u.spinning.locked()]
            can_preempt = False
            if t is not None and not forced:
                c = t.cpu
                if (c is not None and not c.irqs_off and c.preempt_count == 0 and not t.is_idle
                        and (self.ready or idle)):
                    can_preempt = True
            return Options(running, self.ready, idle, _NO_CPUS, can_preempt, _NO_IRQS)
        if self._opts_at != self.placements:
            self._cache_options()
        opts = self._opts
        if t is not None and not forced:
            c = t.cpu
            if (c is not None and not c.irqs_off and c.preempt_count == 0 and not t.is_idle
                    and (self.ready or opts[0].idle_cpus)):
                return opts[1]
        return opts[0]

    def _cache_options(self) -> None:
        """The options of the current placement, without and with a legal preemption."""
        self._opts_at = self.placements
        running = self.on_cpus.copy()
        idle = self.idle.copy()
        self._opts = (Options(running, self.ready, idle, _NO_CPUS, False, _NO_IRQS),
                      Options(running, self.ready, idle, _NO_CPUS, True, _NO_IRQS))

    def _scan_options(self, t: Task | None, forced: bool) -> Options:
        """The legal choices, from a scan of every CPU (spinners, interrupts)."""
        running = []
        idle = []
        idle_irq = []
        for c in self.cpus:
            u = c.curr
            if u is None:
                if c.online:
                    idle.append(c)
                    if c.pending_irqs:
                        idle_irq.append(c)
            elif u.spinning is None or not u.spinning.locked() or (
                    c.pending_irqs and not c.irqs_off and not c.preempt_count & HARDIRQ_MASK):
                # a CPU spinning with interrupts on still takes them (an IPI, say)
                if not (forced and u is t and u.spinning is None):
                    running.append(u)
        can_preempt = False
        irqs: list[tuple[int, float]] = []
        if t is not None and not forced and t.cpu is not None:
            c = t.cpu
            if not c.irqs_off:
                if c.preempt_count == 0 and not t.is_idle and (self.ready or idle):
                    can_preempt = True
                if not (c.preempt_count & HARDIRQ_MASK):
                    irqs = self.m.irq.sources
        return Options(running, self.ready, idle, idle_irq, can_preempt, irqs)

    # -- decisions ---------------------------------------------------------------
    def decide(self, t: Task, event: str) -> None:
        """A scheduling point whose budget ran out: let the policy choose.

        The hottest path of a run: _sync, the switch and the hand-off are written out
        here rather than called (the same steps in the same order).
        """
        if self.aborting:
            self._drain_point(t)
        if t.is_idle or t.spinning is not None:
            self._grant(t)
            return
        # _sync(t, 0)
        n = self.granted - t.budget
        self.points_run = n
        self.steps += n
        self.granted = t.budget
        t.points += n
        c = t.cpu
        if self.charges_points:
            c.clock += n * costs.POINT
        if c.pending_irqs and not c.irqs_off and not (c.preempt_count & HARDIRQ_MASK):
            self.m.irq.deliver_pending(c)
        if self._opts_at == self.placements and not (self.spinners or self._irqs_seen or self.m.irq.actions):
            # _options(t, False) of an unchanged placement, inline
            opts = self._opts[0]
            if not c.irqs_off and c.preempt_count == 0 and not t.is_idle and (self.ready or opts.idle_cpus):
                opts = self._opts[1]
        else:
            opts = self._options(t, False)
        policy = self.policy
        if (len(opts.running) + len(opts.ready) + len(opts.idle_irq_cpus) <= 1 and not opts.can_preempt
                and not opts.irqs):
            # while draining, every point is a chance to unwind: never grant more than one
            b = 1 if self.aborting else policy.quiet_budget(self, t)
            t.budget = b
            self.granted = b
            t.vlimit = _NO_VLIMIT if self._no_vlimit else policy.vlimit(self, t)
            return
        action = policy.choose(self, t, event, opts, False)
        kind = action[0]
        if kind == "C":
            # _grant(t)
            b = 1 if self.aborting else policy.budget(self, t)
            t.budget = b
            self.granted = b
            t.vlimit = _NO_VLIMIT if self._no_vlimit else policy.vlimit(self, t)
            return
        if kind == "S":
            u = action[1]
            if u is not t:
                # _switch + _handoff of a switch to a task already on a CPU
                self.log.append((self.steps, t.pid, event, "S", u.pid, 0))
                self._target = u
                self.runner = u
                self._pass_baton(t, u)
            else:
                self.log.append((self.steps, t.pid, event, "S", u.pid, 0))
                self._target = u
            # _resume(t)
            self.runner = t
            if self.aborting:
                self._abort_point(t)
            b = 1 if self.aborting else policy.budget(self, t)
            t.budget = b
            self.granted = b
            t.vlimit = _NO_VLIMIT if self._no_vlimit else policy.vlimit(self, t)
            c = t.cpu
            if c is not None and c.pending_irqs and not c.irqs_off and not (c.preempt_count & HARDIRQ_MASK):
                self.m.irq.deliver_pending(c)
            return
        self._apply(t, event, action)

    def _drain_point(self, t: Task) -> None:
        """A point while draining: unwind if safe; end the drain if it takes too long."""
        self._abort_point(t)
        self._drain_limit(t)

    def _drain_limit(self, t: Task) -> None:
        """End a drain that has taken DRAIN_STEPS steps: every task unwinds now."""
        if not self.finished and self.steps - self.abort_step > DRAIN_STEPS:
            self.abort_reason += f"; still draining after {DRAIN_STEPS} steps"
            self._finish()
            if t.state != T_DONE:
                raise TaskAbort()

    def _apply(self, t: Task, event: str, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "C":
            self._grant(t)
            return
        if kind == "I":
            irq, times = action[1], action[2] if len(action) > 2 else 1
            self._record(t.pid, event, "I", irq, times if times > 1 else 0)
            self._grant(t)
            for _ in range(times):
                self.m.irq.do_irq(t.cpu, irq)
            return
        if kind == "P":
            self._record(t.pid, event, "P")
            c = t.cpu
            assert c is not None
            c.nr_preemptions += 1
            t.nivcsw += 1
            self._unplace(t)
            t.state = T_READY
            self.ready.append(t)
            self._reschedule(t, event)
            return
        self._switch(t, event, action)
        assert self._target is not None
        self._handoff(t, self._target)

    def _switch(self, t: Task, event: str, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "S":
            u = action[1]
            self._record(t.pid, event, "S", u.pid)
            self._target = u
        elif kind == "D":
            r, c = action[1], action[2]
            self.ready.remove(r)
            self._place(r, c)
            self._record(t.pid, event, "D", r.pid, c.id)
            self._target = r
        elif kind == "V":
            c = action[1]
            idle = self.m.irq.idle_task(c)
            idle.saved_count = 0
            idle.saved_irqs_off = False
            idle.state = T_SLEEPING  # _place sets it running
            self._place(idle, c)
            self._record(t.pid, event, "V", c.id)
            self._target = idle
        else:
            raise KmemInternalError(f"bad action {action}")

    def _handoff(self, t: Task, u: Task) -> None:
        if u is t:
            self._resume(t)
            return
        self.runner = u
        self._pass_baton(t, u)
        self._resume(t)

    def _all_done(self) -> bool:
        return all(u.state == T_DONE for u in self.tasks if not u.is_idle)

    def _reschedule(self, t: Task, event: str) -> None:
        """``t`` cannot go on now: pick someone else (advancing the clock if all sleep)."""
        while True:
            if self.aborting and not self.finished and self.steps - self.abort_step > DRAIN_STEPS:
                self._drain_limit(t)  # every task unwinds; ``t`` (done) just leaves
                return
            opts = self._options(t, forced=True)
            if opts.runnable_count():
                action = self.policy.choose(self, t, event, opts, True)
                if action[0] == "C":
                    raise KmemInternalError("policy chose to continue a blocked task")
                self._switch(t, event, action)
                target = self._target
                assert target is not None
                if t.state == T_DONE:
                    self.runner = target
                    self._give_baton(target)
                    return
                self._handoff(t, target)
                return
            if self._all_done():
                self._finish()
                if t.state == T_DONE:
                    return
                raise TaskAbort()
            if self.live_workers == 0 and not self.aborting:
                self.begin_abort("the run's tasks have ended")  # daemons unwind now
            if self.aborting:
                if self.steps - self.abort_step <= DRAIN_STEPS and self._wake_sleepers(t):
                    continue
                # nothing can run: what is left spins on a lock whose owner is gone
                self._finish()
                if t.state == T_DONE:
                    return
                raise TaskAbort()
            self._prune_timers()
            if self.timers:
                self._record(t.pid, event, "T", self.timers[0][0])
                self._fire_timers()
                continue
            if self._idle_interrupt():
                self._record(t.pid, event, "T", self.now)
                continue
            self._deadlock(t)
            if t.state == T_DONE:
                return
            raise TaskAbort()

    def _wake_sleepers(self, t: Task) -> bool:
        """While draining: wake every sleeper so it reaches a safe point. True if any."""
        woke = False
        for u in self.tasks:
            if u.state == T_SLEEPING and not u.is_idle:
                self._make_ready(u, self.now)
                woke = True
        if woke:
            self.steps += 1
        return woke

    # -- primitives used by the kernel API ---------------------------------------
    def sleep(self, t: Task, on: Any, timeout_ns: int | None, event: str) -> bool:
        """Put ``t`` to sleep until woken (True) or until the timeout passes (False)."""
        t.in_sleep = True
        try:
            if self.aborting:
                self._abort_point(t)
            self._sync(t)
            if t.woken:  # woken between preparing and sleeping
                t.woken = False
                t.kstate = TASK_RUNNING
                self._grant(t)
                return True
            t.timed_out = False
            t.waiting_on = on
            t.nvcsw += 1
            self._unplace(t)
            t.state = T_SLEEPING
            t.slept_at = self.now
            if timeout_ns is not None:
                self._arm_timer(t, timeout_ns)
            self._reschedule(t, event)
            t.woken = False
            t.kstate = TASK_RUNNING
            return not t.timed_out
        finally:
            t.in_sleep = False

    def wake(self, waker: Task | None, t: Task) -> bool:
        """try_to_wake_up(): make a sleeping (or preparing) task runnable; True if it was."""
        if _fp.active: _fp.touch("task", t.pid)  # noqa: E701  (the exhaustive search's footprint)
        if t.state == T_SLEEPING and not t.is_idle:
            at = waker.cpu.clock if waker is not None and waker.cpu is not None else self.now
            self._make_ready(t, at)
            return True
        t.woken = True
        if t.kstate != TASK_RUNNING:
            t.kstate = TASK_RUNNING
            return True
        return False

    def yield_cpu(self, t: Task, event: str) -> None:
        """schedule() while runnable: give others a chance (a voluntary switch)."""
        if self.aborting:
            self._drain_point(t)
        self._sync(t)
        opts = self._options(t, forced=False)
        if opts.runnable_count() <= 1 and not self.ready:
            self._grant(t)
            return
        if self.ready and not opts.idle_cpus and not t.is_idle:
            t.nvcsw += 1
            self._record(t.pid, event, "P")
            self._unplace(t)
            t.state = T_READY
            self.ready.append(t)
            self._reschedule(t, event)
            return
        action = self.policy.choose(self, t, event, opts, False)
        if action[0] in ("P", "I"):
            action = ("C",)
        self._apply(t, event, action)

    def spin(self, t: Task, lock: Any, event: str) -> None:
        """``t`` found ``lock`` held: let others run until it is free."""
        if self.aborting:
            self._drain_point(t)
        self._sync(t)
        t.spinning = lock
        self.spinners += 1
        try:
            while lock.locked():
                self._reschedule(t, event)
        finally:
            t.spinning = None
            self.spinners -= 1

    def relax(self, t: Task) -> None:
        """One turn of a busy-wait loop: charge the pause, look for a livelock now and then."""
        self._streak(t, t.points + self.granted - t.budget)
        if t.relax_streak == 1:
            t.relax_t0 = self.now
        self.policy.on_relax(self, t)
        self.charge(t, costs.CPU_RELAX)
        if t.relax_streak % self._check_every(t) == 0 and self._busy_waiting_check(t):
            self.m._report_livelock(self.blocked_summary())
            self._finish()
            raise TaskAbort()

    def idle_wait(self, t: Task) -> None:
        """The idle task served its interrupts: give the CPU back."""
        self._sync(t)
        self._unplace(t)
        t.state = T_SLEEPING
        t.waiting_on = "interrupts"
        self._reschedule(t, "idle")

    def exit(self, t: Task) -> None:
        if self.finished or self.runner is not t:
            self._unplace_quiet(t)
            return
        self._sync(t)
        self._unplace(t)
        t.state = T_DONE
        if not t.is_idle and not t.daemon:
            self.live_workers -= 1
        self._reschedule(t, "exit")

    def _unplace_quiet(self, t: Task) -> None:
        """A task unwound by a finished run: it leaves without scheduling anyone."""
        if t.state != T_DONE and not t.is_idle and not t.daemon:
            self.live_workers -= 1
        t.state = T_DONE

    def request_abort(self, t: Task | None) -> None:
        """Abort the run from inside it (a panic): drain; the caller unwinds at once."""
        self.begin_abort("panic")

    def request_stop(self, why: str) -> None:
        """From outside the run (Ctrl-C, timeout): drain at the next point of the runner."""
        self.begin_abort(why)

    def force_stop(self) -> None:
        """From outside the run: unwind every parked task now."""
        self._finish()

    def wake_idle(self, t: Task) -> None:
        """Deterministic engines run idle tasks by decision ("V"), never by wake-up."""

    def _finish(self) -> None:
        """End the run: every thread still parked wakes up and unwinds."""
        if self.finished:
            return
        self.finished = True
        self.aborting = True
        self._release_parked()

    def _deadlock(self, t: Task) -> None:
        self.m._report_deadlock(self.blocked_summary())
        self._finish()

    def charge(self, t: Task, cycles: int) -> None:
        c = t.cpu
        c.clock += cycles
        if c.clock > t.vlimit:
            self.granted -= t.budget
            t.budget = 0

    def reopen(self, t: Task) -> None:
        """End ``t``'s budget now: the policy decides at its next point."""
        self.granted -= t.budget
        t.budget = 0


class FreeEngine(Engine):
    """Real concurrent threads; random injected preemption, migration, interrupts."""

    deterministic = False
    POLL = 0.002  # seconds between abort/deadlock checks while blocked
    #: polls a drain may take before every task is unwound at once
    DRAIN_POLLS = 5000

    def __init__(self, machine: Machine, seed: int, mean_run: int = 8, preempt_prob: float = 0.2) -> None:
        super().__init__(machine)
        self.seed = seed
        self.cv = threading.Condition()
        self.mean_run = mean_run
        self.preempt_prob = preempt_prob
        self.progress = 0
        self.drain_polls = 0
        self._seed_rng = random.Random(seed)

    @staticmethod
    def check_options(opts: dict[str, Any]) -> None:
        """The free policy's options (``mean_run``, ``preempt_prob``), checked at construction."""
        from .errors import KmemUsageError
        unknown = sorted(set(opts) - {"mean_run", "preempt_prob"})
        if unknown:
            raise KmemUsageError(f"policy 'free' takes the options mean_run, preempt_prob; got {', '.join(unknown)}")
        mean_run = opts.get("mean_run", 8)
        if isinstance(mean_run, bool) or not isinstance(mean_run, int) or mean_run < 1:
            raise KmemUsageError(f"policy 'free': mean_run(={mean_run!r}) must be an int >= 1")
        prob = opts.get("preempt_prob", 0.2)
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
            raise KmemUsageError(f"policy 'free': preempt_prob(={prob!r}) must be a number within [0, 1]")

    def start(self, tasks: list[Task]) -> None:
        with self.cv:
            for t in tasks:
                t.rng = random.Random(self._seed_rng.random())
                t.state = T_READY
                self.ready.append(t)
                self._register(t)
        for t in tasks:
            self._launch(t)

    def _grant(self, t: Task) -> None:
        b = 1 if self.aborting else t.rng.randrange(2 * self.mean_run) + 1
        t.budget = b
        t.granted = b

    def current_step(self, t: Task | None) -> int:
        return 0

    def _first_turn(self, t: Task) -> None:
        with self.cv:
            self._acquire_cpu(t)
        self._grant(t)

    def _acquire_cpu(self, t: Task) -> None:
        """With the cv held: wait for a free CPU (preferring the last one) and take it."""
        while True:
            if self.aborting:
                self._drain_wait(t)
            cpus = [c for c in self.cpus if c.curr is None and c.online
                    and (t.cpus_allowed is None or c.id in t.cpus_allowed)]
            if cpus:
                c = next((x for x in cpus if x.id == t.last_cpu), None) or cpus[t.rng.randrange(len(cpus))]
                if t in self.ready:
                    self.ready.remove(t)
                self._place(t, c)
                self.progress += 1
                return
            self._check_deadlock_locked(t)
            self.cv.wait(self.POLL)

    def _drain_wait(self, t: Task) -> None:
        """While draining (cv held): unwind ``t`` if safe; count the drain's polls."""
        if self.may_abort(t):
            raise TaskAbort()
        self.drain_polls += 1
        if self.drain_polls > self.DRAIN_POLLS:
            self.abort_reason += "; drain took too long"
            self._finish_locked()
            raise TaskAbort()

    def _release_cpu(self, t: Task) -> None:
        self._unplace(t)
        self.cv.notify_all()

    def decide(self, t: Task, event: str) -> None:
        if self.aborting:
            with self.cv:
                self._drain_wait(t)
        points = t.granted - t.budget
        self.steps += points  # approximate under free threads: it only measures a drain
        self._note_points(t, points)
        self._grant(t)
        if t.is_idle or t.spinning is not None:
            return
        c = t.cpu
        if c.irqs_off:
            return
        if c.pending_irqs and not (c.preempt_count & HARDIRQ_MASK):
            self.m.irq.deliver_pending(c)
        rng = t.rng
        if not (c.preempt_count & HARDIRQ_MASK):
            for irq, rate in self.m.irq.sources:
                fires = sum(1 for _ in range(max(1, points)) if rng.random() < rate)
                for _ in range(fires):
                    self.m.irq.do_irq(c, irq)
                if fires:
                    return
        if c.preempt_count == 0 and rng.random() < self.preempt_prob:
            with self.cv:
                c.nr_preemptions += 1
                t.nivcsw += 1
                self._release_cpu(t)
                t.state = T_READY
                self.ready.append(t)
            time.sleep(0)
            with self.cv:
                self._acquire_cpu(t)

    def sleep(self, t: Task, on: Any, timeout_ns: int | None, event: str) -> bool:
        t.in_sleep = True
        try:
            with self.cv:
                if self.aborting:
                    self._drain_wait(t)
                if t.woken:
                    t.woken = False
                    t.kstate = TASK_RUNNING
                    return True
                t.timed_out = False
                t.waiting_on = on
                t.nvcsw += 1
                self._release_cpu(t)
                t.state = T_SLEEPING
                t.slept_at = self.now
                if timeout_ns is not None:
                    self._arm_timer(t, timeout_ns)
                while t.state == T_SLEEPING:
                    if self.aborting:
                        self._drain_wait(t)
                        self._make_ready(t, self.now)  # a spurious wake-up: it re-checks
                        break
                    self._check_deadlock_locked(t)
                    self.cv.wait(self.POLL)
                self._acquire_cpu(t)
                t.woken = False
                t.kstate = TASK_RUNNING
            self._grant(t)
            return not t.timed_out
        finally:
            t.in_sleep = False

    def wake(self, waker: Task | None, t: Task) -> bool:
        with self.cv:
            if t.state == T_SLEEPING and not t.is_idle:
                self._make_ready(t, self.now)
                self.progress += 1
                self.cv.notify_all()
                return True
            t.woken = True
            if t.kstate != TASK_RUNNING:
                t.kstate = TASK_RUNNING
                return True
            return False

    def yield_cpu(self, t: Task, event: str) -> None:
        with self.cv:
            if self.aborting:
                self._drain_wait(t)
            if not self.ready:
                return
            t.nvcsw += 1
            self._release_cpu(t)
            t.state = T_READY
            self.ready.append(t)
            self._acquire_cpu(t)

    def spin(self, t: Task, lock: Any, event: str) -> None:
        t.spinning = lock
        c = t.cpu
        try:
            while True:
                with self.cv:
                    while lock.locked():
                        if self.aborting:
                            self._drain_wait(t)
                        if c.pending_irqs and not c.irqs_off and not c.preempt_count & HARDIRQ_MASK:
                            break
                        self._check_deadlock_locked(t)
                        self.cv.wait(self.POLL)
                    else:
                        return
                # a CPU spinning with interrupts on still takes them (an IPI, say)
                self.m.irq.deliver_pending(c)
        finally:
            t.spinning = None

    def relax(self, t: Task) -> None:
        self._streak(t, t.points + t.granted - t.budget)
        if t.relax_streak == 1:
            t.relax_t0 = self.now
        t.cpu.clock += costs.CPU_RELAX
        if t.relax_streak % self._check_every(t) == 0:
            with self.cv:
                if self._busy_waiting_check(t) and not self.aborting:
                    self.m._report_livelock(self.blocked_summary())
                    self._finish_locked()
                    raise TaskAbort()
                self.cv.notify_all()
        time.sleep(0)  # a pause: let the other host threads run

    def idle_wait(self, t: Task) -> None:
        """The idle task served its CPU's interrupts: free the CPU, sleep until the next."""
        with self.cv:
            self._release_cpu(t)
            t.state = T_SLEEPING
            t.waiting_on = "interrupts"
            if (not self.finished and all(u.state == T_DONE for u in self.tasks if not u.is_idle)
                    and not self._idle_irqs_pending()):
                self._finish_locked()  # the run's tasks had ended: it waited for these interrupts
            while t.state == T_SLEEPING and not t.woken:
                if self.finished:
                    raise TaskAbort()
                self.cv.wait(self.POLL)
            t.woken = False
            if t in self.ready:
                self.ready.remove(t)
            t.state = T_READY
            self._acquire_cpu(t)

    def wake_idle(self, t: Task) -> None:
        with self.cv:
            t.woken = True
            self.cv.notify_all()

    def exit(self, t: Task) -> None:
        with self.cv:
            if t.cpu is not None:
                self._release_cpu(t)
            elif t in self.ready:
                self.ready.remove(t)
            if t.state != T_DONE and not t.is_idle and not t.daemon:
                self.live_workers -= 1
            t.state = T_DONE
            self.progress += 1
            if self.live_workers == 0 and not self.aborting:
                self.begin_abort("the run's tasks have ended")  # daemons unwind now
            if all(u.state == T_DONE for u in self.tasks if not u.is_idle) and not self._idle_irqs_pending():
                self._finish_locked()
            self.cv.notify_all()

    def _idle_irqs_pending(self) -> bool:
        """With the cv held: does an idle CPU still have interrupts for its (live) idle task to
        serve? The run ends after them, as a deterministic run's does."""
        return any(c.pending_irqs and c.curr is None and c.online and c.idle is not None
                   and c.idle.state != T_DONE for c in self.cpus)

    def request_abort(self, t: Task | None) -> None:
        with self.cv:
            self.begin_abort("panic")
            self.cv.notify_all()

    def request_stop(self, why: str) -> None:
        with self.cv:
            self.begin_abort(why)
            self.cv.notify_all()

    def force_stop(self) -> None:
        with self.cv:
            self._finish_locked()

    def _finish_locked(self) -> None:
        self.finished = True
        self.aborting = True
        for t in self.tasks:
            t.budget = 0
        self.cv.notify_all()

    def _all_blocked_locked(self) -> bool:
        """With the cv held: can no live task move now (none runs, none is ready with a CPU
        free, every spinner's lock or cross-CPU call is still held, and no CPU can serve a
        pending interrupt: an idle one, or one whose task spins with interrupts on)?"""
        for u in self.tasks:
            if u.state == T_DONE:
                continue
            if u.is_idle:  # an idle task on its CPU is serving an interrupt (an IPI) it took
                if u.state == T_ON_CPU and (u.spinning is None or not u.spinning.locked()):
                    return False
                continue
            if u.state == T_ON_CPU and u.spinning is None:
                return False
            if u.state == T_READY:
                if any(c.curr is None for c in self.cpus):
                    return False
            if u.spinning is not None and not u.spinning.locked():
                return False
        for c in self.cpus:  # an interrupt (an IPI a spinner waits for) that a CPU can serve
            if c.pending_irqs and c.online and (c.curr is None or (
                    not c.irqs_off and not c.preempt_count & HARDIRQ_MASK)):
                return False
        return True

    def _check_deadlock_locked(self, t: Task) -> None:
        """With the cv held: all live tasks blocked and nothing moved? Then time jumps or deadlock."""
        if not self._all_blocked_locked():
            return
        if self.live_workers == 0 and not self.aborting:
            return
        self._prune_timers()
        if self.timers and not self.aborting:
            self._fire_timers()
            self.cv.notify_all()
            return
        if not self.aborting and self._idle_interrupt():
            self.cv.notify_all()
            return
        mark = self.progress
        # Everything looks blocked: confirm across one more poll before calling it (a
        # spinner's lock or cross-CPU call may have been let go meanwhile: an IPI served)
        self.cv.wait(self.POLL * 5)
        if mark != self.progress or self.finished or not self._all_blocked_locked():
            return
        if self.aborting:  # draining, and what is left can never move: unwind it all
            self._finish_locked()
            raise TaskAbort()
        self.m._report_deadlock(self.blocked_summary())
        self._finish_locked()
        raise TaskAbort()

    def charge(self, t: Task, cycles: int) -> None:
        t.cpu.clock += cycles

    def advance(self, ns: int) -> None:
        if ns > self.now:
            with self.cv:
                super().advance(ns)
                self.cv.notify_all()


def run_engine(engine: Engine, tasks: list[Task], timeout: float | None) -> None:
    """Start ``tasks`` on ``engine`` and wait for every thread to leave.

    Ctrl-C or the wall-clock timeout stop the run: its tasks unwind at safe points
    (within :data:`STOP_GRACE` seconds, else at once) before this returns.

    Raises:
        KeyboardInterrupt: re-raised once every task thread has stopped.
        RunTimeout: the run outlived ``timeout`` wall seconds.
    """
    engine.start(tasks)
    try:
        done = engine.wait_all_exited(timeout)
    except KeyboardInterrupt:
        _stop(engine, "interrupted (KeyboardInterrupt)")
        raise
    if not done:
        _stop(engine, f"wall-clock timeout of {timeout} s")
        raise RunTimeout(
            f"the run did not finish within timeout={timeout} s of wall time (steps: {engine.steps}); "
            f"raise Machine(timeout=...), or look for a loop in simulated code that never reaches a "
            f"scheduling point")


def _stop(engine: Engine, why: str) -> None:
    engine.request_stop(why)
    if engine.wait_all_exited(STOP_GRACE):
        return
    engine.force_stop()
    engine.wait_all_exited(STOP_GRACE)


__all__ = ["Engine", "BatonEngine", "FreeEngine", "run_engine", "describe_wait", "in_model_code", "DRAIN_STEPS",
           "DRAIN_STRICT_STEPS", "STOP_GRACE", "LIVELOCK_RELAXES", "LIVELOCK_CHECK_EVERY", "RELAX_GAP",
           "TIME_CHECK_EVERY", "TIME_WAIT_LIMIT_NS"]
