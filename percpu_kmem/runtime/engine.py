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
``exit``. A cooperative abort flag, checked in every primitive, ends a run that
failed or deadlocked without leaving threads behind.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from . import threadpool
from .errors import KernelBug, KmemInternalError, Oops, TaskAbort
from .policies import Options, Policy
from .preempt import HARDIRQ_MASK
from .task import (CPU, CURRENT, NO_TASK, TASK_DONE, TASK_READY, TASK_RUNNING,
                   TASK_SLEEPING, Task)
from .trace import Decision

if TYPE_CHECKING:
    from .machine import Machine


class _EngineBase:
    deterministic = True

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.cpus: list[CPU] = machine.cpus
        self.tasks: list[Task] = []
        self.ready: list[Task] = []
        self.timers: list[tuple[int, int, int, Task]] = []  # (deadline, seq, timer_seq, task)
        self._timer_seq = 0
        self.now = 0  # virtual ns, for timers
        self.steps = 0
        self.aborting = False
        self.failure: BaseException | None = None
        self.finished = False
        self._exit_lock = threading.Lock()
        self._live_threads = 0
        self.live_workers = 0
        self._all_exited = threading.Event()
        self.decisions: list[Decision] = []

    # -- task life ---------------------------------------------------------
    def add_task(self, t: Task) -> None:
        self.tasks.append(t)
        if not t.is_idle and not t.daemon:
            self.live_workers += 1
        with self._exit_lock:
            self._live_threads += 1
        threadpool.submit(lambda: self._task_main(t))

    def _task_main(self, t: Task) -> None:
        CURRENT.task = t
        try:
            self._first_turn(t)
            t.result = t.fn()
        except TaskAbort:
            pass
        except Oops as e:
            t.exc = e
        except BaseException as e:  # noqa: BLE001 - handed to Machine.run
            t.exc = e
            if self.failure is None:
                self.failure = e
        finally:
            try:
                self.exit(t)
            finally:
                CURRENT.task = NO_TASK
                self._thread_gone()

    def _thread_gone(self) -> None:
        with self._exit_lock:
            self._live_threads -= 1
            if self._live_threads == 0:
                self._all_exited.set()

    def wait_all_exited(self, timeout: float | None) -> bool:
        return self._all_exited.wait(timeout)

    # -- timers (virtual time) ------------------------------------------------
    def _arm_timer(self, t: Task, timeout_ns: int) -> None:
        t.timer_seq += 1
        self._timer_seq += 1
        heapq.heappush(self.timers, (self.now + max(0, timeout_ns), self._timer_seq, t.timer_seq, t))

    def _prune_timers(self) -> None:
        timers = self.timers
        while timers and (timers[0][3].state != TASK_SLEEPING or timers[0][2] != timers[0][3].timer_seq):
            heapq.heappop(timers)

    def _fire_timers(self) -> list[Task]:
        """Advance the clock to the earliest live timer and wake every task due then."""
        self._prune_timers()
        if not self.timers:
            return []
        self.now = max(self.now, self.timers[0][0])
        woken = []
        while self.timers and self.timers[0][0] <= self.now:
            _, _, seq, t = heapq.heappop(self.timers)
            if t.state == TASK_SLEEPING and seq == t.timer_seq:
                t.timed_out = True
                self._make_ready(t, self.now)
                woken.append(t)
        return woken

    def _make_ready(self, t: Task, at: int) -> None:
        t.state = TASK_READY
        t.woken = True
        t.waiting_on = None
        t.timer_seq += 1
        t.ready_at = at
        self.ready.append(t)

    # -- CPU placement -----------------------------------------------------
    def _place(self, t: Task, c: CPU) -> None:
        if c.curr is not None:
            raise KmemInternalError(f"placing {t.name} on busy CPU#{c.id} ({c.curr.name})")
        c.curr = t
        t.cpu = c
        t.state = TASK_RUNNING
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
        t.last_cpu = c.id
        t.cpu = None
        t.ready_at = c.clock

    def idle_cpus(self) -> list[CPU]:
        return [c for c in self.cpus if c.curr is None and c.online]

    def blocked_summary(self) -> list[str]:
        """Who waits on what, one line per live task (for deadlock reports)."""
        out = []
        for t in self.tasks:
            if t.state == TASK_DONE or t.is_idle:
                continue
            if t.spinning is not None:
                lk = t.spinning
                out.append(f"{t.name} spins on CPU#{t.cpu.id if t.cpu else -1} for spinlock {lk.name} "
                           f"held by {lk.owner_name()}")
            elif t.state == TASK_SLEEPING:
                what = t.waiting_on
                desc = what.describe() if hasattr(what, "describe") else str(what)
                out.append(f"{t.name} sleeps on {desc}")
            else:
                out.append(f"{t.name} is {t.state_name}")
        return out


class BatonEngine(_EngineBase):
    """One thread at a time; the policy picks who holds the baton next."""

    deterministic = True

    def __init__(self, machine: Machine, policy: Policy) -> None:
        super().__init__(machine)
        self.policy = policy
        self.granted = 0
        self.runner: Task | None = None
        self.every_point = policy.every_point

    # -- starting ------------------------------------------------------------
    def start(self, tasks: list[Task]) -> None:
        """Place the first tasks on CPUs, then hand the baton to the policy's pick."""
        for t in tasks:
            self.add_task(t)
        free = [c for c in self.cpus if c.online]
        for t in tasks:
            cpus = [c for c in free if t.cpus_allowed is None or c.id in t.cpus_allowed]
            if cpus:
                c = cpus[0]
                free.remove(c)
                self._place(t, c)
            else:
                t.state = TASK_READY
                self.ready.append(t)
        self.policy.start(self)
        self.steps += 1
        opts = self._options(None, forced=True)
        if opts.runnable_count() == 0:
            raise KmemInternalError("no task can start")
        action = self.policy.choose(self, tasks[0], "start", opts, True)
        first = self._apply_start(action, tasks[0].pid)
        self.runner = first
        first.baton.release()

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

    def _resume(self, t: Task) -> None:
        """``t`` holds the baton again: check the abort flag, grant a budget, take IRQs."""
        if self.aborting:
            raise TaskAbort()
        self.runner = t
        self._grant(t)
        c = t.cpu
        if c is not None and c.pending_irqs and not c.irqs_off and not (c.preempt_count & HARDIRQ_MASK):
            self.m._deliver_pending(c)

    def _grant(self, t: Task) -> None:
        b = self.policy.budget(self, t)
        t.budget = b
        self.granted = b
        t.vlimit = self.policy.vlimit(self, t)

    def _sync(self, t: Task, extra: int = 1) -> None:
        """Count the points ``t`` passed since its last grant, plus this event.

        A point whose budget ran out has already been counted in the budget
        (``extra=0``); a sleep, spin or exit is an event of its own (``extra=1``).
        """
        self.steps += self.granted - t.budget + extra
        self.granted = t.budget

    def _record(self, pid: int, event: str, action: str, arg: int = 0, arg2: int = 0) -> None:
        self.decisions.append(Decision(self.steps, pid, event, action, arg, arg2))

    # -- options ---------------------------------------------------------------
    def _options(self, t: Task | None, forced: bool) -> Options:
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
                    irqs = self.m._irq_sources
        return Options(running, self.ready, idle, idle_irq, can_preempt, irqs)

    # -- decisions ---------------------------------------------------------------
    def decide(self, t: Task, event: str) -> None:
        """A scheduling point whose budget ran out: let the policy choose."""
        if self.aborting:
            raise TaskAbort()
        if t.is_idle or t.spinning is not None:
            self._grant(t)
            return
        self._sync(t, 0)
        c = t.cpu
        if c.pending_irqs and not c.irqs_off and not (c.preempt_count & HARDIRQ_MASK):
            self.m._deliver_pending(c)
        opts = self._options(t, forced=False)
        if opts.runnable_count() <= 1 and not opts.can_preempt and not opts.irqs:
            b = self.policy.quiet_budget(self, t)
            t.budget = b
            self.granted = b
            t.vlimit = self.policy.vlimit(self, t)
            return
        action = self.policy.choose(self, t, event, opts, False)
        self._apply(t, event, action)

    def _apply(self, t: Task, event: str, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "C":
            self._grant(t)
            return
        if kind == "I":
            self._record(t.pid, event, "I", action[1])
            self._grant(t)
            self.m._do_irq(t.cpu, action[1])  # type: ignore[arg-type]
            return
        if kind == "P":
            self._record(t.pid, event, "P")
            c = t.cpu
            assert c is not None
            c.nr_preemptions += 1
            t.nivcsw += 1
            self._unplace(t)
            t.state = TASK_READY
            self.ready.append(t)
            self._reschedule(t, event, voluntary=False)
            return
        self._switch(t, event, action)
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
            idle = self.m._idle_task(c)
            idle.saved_count = 0
            idle.saved_irqs_off = False
            idle.state = TASK_SLEEPING  # _place sets RUNNING
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
        u.baton.release()
        t.baton.acquire()
        self._resume(t)

    def _reschedule(self, t: Task, event: str, voluntary: bool) -> None:
        """``t`` cannot go on now: pick someone else (advancing the clock if all sleep)."""
        while True:
            opts = self._options(t, forced=True)
            if opts.runnable_count():
                action = self.policy.choose(self, t, event, opts, True)
                if action[0] == "C":
                    raise KmemInternalError("policy chose to continue a blocked task")
                self._switch(t, event, action)
                target = self._target
                if t.state == TASK_DONE:
                    self.runner = target
                    target.baton.release()
                    return
                self._handoff(t, target)
                return
            if self.live_workers == 0:
                self._finish()
                if t.state == TASK_DONE:
                    return
                raise TaskAbort()
            self._prune_timers()
            if self.timers:
                self._record(t.pid, event, "T", self.timers[0][0])
                self._fire_timers()
                continue
            self._deadlock(t)
            if t.state == TASK_DONE:
                return
            raise TaskAbort()

    # -- primitives used by the kernel API ---------------------------------------
    def sleep(self, t: Task, on: Any, timeout_ns: int | None, event: str) -> bool:
        """Put ``t`` to sleep until woken (True) or until the timeout passes (False)."""
        if self.aborting:
            raise TaskAbort()
        self._sync(t)
        if t.woken:  # woken between preparing and sleeping (an IRQ on this CPU)
            t.woken = False
            self._grant(t)
            return True
        t.timed_out = False
        t.waiting_on = on
        t.nvcsw += 1
        self._unplace(t)
        t.state = TASK_SLEEPING
        if timeout_ns is not None:
            self._arm_timer(t, timeout_ns)
        self._reschedule(t, event, voluntary=True)
        t.woken = False
        return not t.timed_out

    def wake(self, waker: Task | None, t: Task) -> bool:
        """Make a sleeping task runnable; True if it was asleep."""
        if t.state == TASK_SLEEPING and not t.is_idle:
            at = waker.cpu.clock if waker is not None and waker.cpu is not None else self.now
            self._make_ready(t, at)
            return True
        t.woken = True
        return False

    def yield_cpu(self, t: Task, event: str) -> None:
        """schedule() while runnable: give others a chance (a voluntary switch)."""
        if self.aborting:
            raise TaskAbort()
        self._sync(t)
        opts = self._options(t, forced=False)
        if opts.runnable_count() <= 1 and not self.ready:
            self._grant(t)
            return
        if self.ready and not opts.idle_cpus and not t.is_idle:
            t.nvcsw += 1
            self._record(t.pid, event, "P")
            self._unplace(t)
            t.state = TASK_READY
            self.ready.append(t)
            self._reschedule(t, event, voluntary=True)
            return
        action = self.policy.choose(self, t, event, opts, False)
        if action[0] in ("P", "I"):
            action = ("C",)
        self._apply(t, event, action)

    def spin(self, t: Task, lock: Any, event: str) -> None:
        """``t`` found ``lock`` held: let others run until it is free."""
        if self.aborting:
            raise TaskAbort()
        self._sync(t)
        t.spinning = lock
        try:
            while lock.locked():
                self._reschedule(t, event, voluntary=False)
        finally:
            t.spinning = None

    def idle_wait(self, t: Task) -> None:
        """The idle task served its interrupts: give the CPU back."""
        self._sync(t)
        self._unplace(t)
        t.state = TASK_SLEEPING
        t.waiting_on = "interrupts"
        self._reschedule(t, "idle", voluntary=True)

    def exit(self, t: Task) -> None:
        if self.aborting or self.finished:
            t.state = TASK_DONE
            return
        if self.runner is not t:
            t.state = TASK_DONE
            return
        self._sync(t)
        self._unplace(t)
        t.state = TASK_DONE
        if not t.is_idle and not t.daemon:
            self.live_workers -= 1
        if self.failure is not None:
            self._finish()
            return
        self._reschedule(t, "exit", voluntary=True)

    def request_abort(self, t: Task | None) -> None:
        """Abort the run from inside it (a panic): unwind every task."""
        self._finish()

    def wake_idle(self, t: Task) -> None:
        """Deterministic engines run idle tasks by decision ("V"), never by wake-up."""

    def _finish(self) -> None:
        """End the run: every thread still parked wakes up and unwinds."""
        if self.finished:
            return
        self.finished = True
        self.aborting = True
        for t in self.tasks:
            if t.state != TASK_DONE and t is not self.runner:
                t.budget = 0
                try:
                    t.baton.release()
                except RuntimeError:
                    pass

    def _deadlock(self, t: Task) -> None:
        self.m._report_deadlock(self.blocked_summary())
        self._finish()

    def charge(self, t: Task, cycles: int) -> None:
        c = t.cpu
        c.clock += cycles
        if c.clock > t.vlimit:
            self.granted -= t.budget
            t.budget = 0


class FreeEngine(_EngineBase):
    """Real concurrent threads; random injected preemption, migration, interrupts."""

    deterministic = False
    POLL = 0.002  # seconds between abort/deadlock checks while blocked

    def __init__(self, machine: Machine, seed: int, mean_run: int = 8, preempt_prob: float = 0.2) -> None:
        super().__init__(machine)
        self.seed = seed
        self.cv = threading.Condition()
        self.mean_run = mean_run
        self.preempt_prob = preempt_prob
        self.progress = 0
        self._seed_rng = random.Random(seed)

    def start(self, tasks: list[Task]) -> None:
        with self.cv:
            for t in tasks:
                t.rng = random.Random(self._seed_rng.random())
                t.state = TASK_READY
                self.ready.append(t)
        for t in tasks:
            self.add_task(t)

    def _grant(self, t: Task) -> None:
        t.budget = t.rng.randrange(2 * self.mean_run) + 1
        t.vlimit = 1 << 62

    def _first_turn(self, t: Task) -> None:
        with self.cv:
            self._acquire_cpu(t)
        self._grant(t)

    def _acquire_cpu(self, t: Task) -> None:
        """With the cv held: wait for a free CPU (preferring the last one) and take it."""
        while True:
            if self.aborting:
                raise TaskAbort()
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

    def _release_cpu(self, t: Task) -> None:
        self._unplace(t)
        self.cv.notify_all()

    def decide(self, t: Task, event: str) -> None:
        if self.aborting:
            raise TaskAbort()
        self._grant(t)
        if t.is_idle or t.spinning is not None:
            return
        c = t.cpu
        if c.irqs_off:
            return
        if c.pending_irqs and not (c.preempt_count & HARDIRQ_MASK):
            self.m._deliver_pending(c)
        rng = t.rng
        if c.preempt_count == 0 and rng.random() < self.preempt_prob:
            with self.cv:
                c.nr_preemptions += 1
                t.nivcsw += 1
                self._release_cpu(t)
                t.state = TASK_READY
                self.ready.append(t)
            time.sleep(0)
            with self.cv:
                self._acquire_cpu(t)
            return
        if not (c.preempt_count & HARDIRQ_MASK):
            for irq, rate in self.m._irq_sources:
                if rng.random() < rate:
                    self.m._do_irq(c, irq)
                    return

    def sleep(self, t: Task, on: Any, timeout_ns: int | None, event: str) -> bool:
        with self.cv:
            if self.aborting:
                raise TaskAbort()
            if t.woken:
                t.woken = False
                return True
            t.timed_out = False
            t.waiting_on = on
            t.nvcsw += 1
            self._release_cpu(t)
            t.state = TASK_SLEEPING
            if timeout_ns is not None:
                self._arm_timer(t, timeout_ns)
            while t.state == TASK_SLEEPING:
                if self.aborting:
                    raise TaskAbort()
                self._check_deadlock_locked(t)
                self.cv.wait(self.POLL)
            self._acquire_cpu(t)
            t.woken = False
        self._grant(t)
        return not t.timed_out

    def wake(self, waker: Task | None, t: Task) -> bool:
        with self.cv:
            if t.state == TASK_SLEEPING and not t.is_idle:
                self._make_ready(t, self.now)
                self.progress += 1
                self.cv.notify_all()
                return True
            t.woken = True
            return False

    def yield_cpu(self, t: Task, event: str) -> None:
        with self.cv:
            if not self.ready:
                return
            t.nvcsw += 1
            self._release_cpu(t)
            t.state = TASK_READY
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
                            raise TaskAbort()
                        if c.pending_irqs and not c.irqs_off and not c.preempt_count & HARDIRQ_MASK:
                            break
                        self._check_deadlock_locked(t)
                        self.cv.wait(self.POLL)
                    else:
                        return
                # a CPU spinning with interrupts on still takes them (an IPI, say)
                self.m._deliver_pending(c)
        finally:
            t.spinning = None

    def idle_wait(self, t: Task) -> None:
        """The idle task served its CPU's interrupts: free the CPU, sleep until the next."""
        with self.cv:
            self._release_cpu(t)
            t.state = TASK_SLEEPING
            t.waiting_on = "interrupts"
            while t.state == TASK_SLEEPING and not t.woken:
                if self.aborting:
                    raise TaskAbort()
                self.cv.wait(self.POLL)
            t.woken = False
            if t in self.ready:
                self.ready.remove(t)
            t.state = TASK_READY
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
            t.state = TASK_DONE
            if not t.is_idle and not t.daemon:
                self.live_workers -= 1
            self.progress += 1
            if self.failure is not None or self.live_workers == 0:
                self._finish_locked()
            self.cv.notify_all()

    def request_abort(self, t: Task | None) -> None:
        with self.cv:
            self._finish_locked()

    def _finish_locked(self) -> None:
        self.finished = True
        self.aborting = True
        for t in self.tasks:
            t.budget = 0
        self.cv.notify_all()

    def _check_deadlock_locked(self, t: Task) -> None:
        """With the cv held: all live tasks blocked and nothing moved? Then time jumps or deadlock."""
        live = [u for u in self.tasks if u.state != TASK_DONE and not u.is_idle]
        for u in live:
            if u.state == TASK_RUNNING and u.spinning is None:
                return
            if u.state == TASK_READY:
                if any(c.curr is None for c in self.cpus):
                    return
            if u.spinning is not None and not u.spinning.locked():
                return
        if self.live_workers == 0:
            return
        self._prune_timers()
        if self.timers:
            self._fire_timers()
            self.cv.notify_all()
            return
        mark = self.progress
        # Everything looks blocked: confirm across one more poll before calling it.
        self.cv.wait(self.POLL * 5)
        if mark != self.progress or self.aborting:
            return
        for u in live:
            if u.state == TASK_RUNNING and u.spinning is None:
                return
        self.m._report_deadlock(self.blocked_summary())
        self._finish_locked()
        raise TaskAbort()

    def charge(self, t: Task, cycles: int) -> None:
        t.cpu.clock += cycles


def run_engine(engine: _EngineBase, tasks: list[Task], timeout: float | None) -> None:
    """Start ``tasks`` on ``engine`` and wait for every thread to leave."""
    engine.start(tasks)  # type: ignore[attr-defined]
    if not engine.wait_all_exited(timeout):
        engine.request_abort(None)  # type: ignore[attr-defined]
        engine.wait_all_exited(5.0)
        raise KmemInternalError(f"run did not finish within {timeout} s (wall time)")


__all__ = ["BatonEngine", "FreeEngine", "KernelBug", "run_engine", "Callable"]
