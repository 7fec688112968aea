"""Happens-before clocks of one machine: what the data-race detector (mm/kcsan.py) orders by.

``Machine(kcsan=True)`` hangs a :class:`HappensBefore` off the machine (``Task.hb``,
``Interrupts.hb``); the runtime's synchronisation primitives keep its vector clocks
with one guarded call each (one ``is None`` test when the detector is off), and the
memory accessors ask it, at every access, which actor is running and what that actor
has seen. It changes no scheduling decision, charges no virtual time and draws no
random number: a run is the same, trace and results, with it on or off.

**Actors.** A vector clock (FastTrack/DJIT+ style: actor id -> count) per actor. An
actor is a task in task context, or the hardirq context or the softirq context of one
CPU (every handler on a CPU is one actor: handlers of a kind never nest on a CPU, so
they run one after another, in that actor's program order). Which actor runs is read
from the CPU's preempt_count at the moment: HARDIRQ bits, then SOFTIRQ_OFFSET, then the
task.

**Edges** (a release joins the releaser's clock into a sync clock and then ticks the
releaser's own entry; an acquire joins the sync clock into the acquirer's):

- spinlocks and mutexes: unlock releases into the lock's clock, the next lock (or
  successful trylock) acquires from it;
- wake-ups: ``wake_up``/``wake_up_nr``/``wake_up_process`` release into the woken
  task's pending clock; the woken task acquires it when its sleep (``block``) returns;
- kernel threads: ``kthread_run`` hands the spawner's clock to the new task;
  ``Machine.run`` starts from a fresh state and everything before it happens before
  every task of the run (the detector's state is dropped between runs, since the run
  before has ended and joined);
- interrupts: ``raise_irq`` from a task or handler releases into the interrupt's
  pending clock and the handler acquires it (an IPI, or a device rung by an MMIO
  write, orders what came before); ``raise_softirq`` does the same for the softirq
  actor of that CPU (a top half hands work to its bottom half). Interrupts the policy
  raises by itself (``irq_rate``) come from no one and carry no edge. An IPI call
  (runtime/smp.py) releases into its call data when ``func`` returns; a caller that
  waits for it acquires that once every CPU is done.
- exclusion on one CPU, modelled as three per-CPU locks held by the *sections* that
  exclude each other there, acquired and released lazily (at the next event the actor
  takes part in; an acquirer first forces the release of the previous holder, so no
  edge is lost):

  =============================  ==============================
  context of the actor on CPU c  holds
  =============================  ==============================
  task, preemption disabled      P(c)
  task, bottom halves disabled   P(c), B(c)
  task, interrupts disabled      P(c), B(c), I(c)
  softirq handler                B(c) (and I(c) with irqs off)
  hardirq handler                I(c)
  =============================  ==============================

  So a hardirq handler is ordered with a section of the same CPU that ran with
  interrupts off, a softirq handler with one that had bottom halves (or interrupts)
  off, and two tasks with code of the same CPU that had preemption off: nothing can
  interleave there. A handler is *not* ordered with the code it interrupted, nor with
  anything of that CPU that ran with interrupts on: the interrupt could have come at
  any such point. Neither is anything of another CPU, unless a lock or another edge
  orders it.

Atomics with release/acquire semantics keep a sync clock per address (mm/kcsan.py
calls :meth:`HappensBefore.acq_rel_addr`).

Simplified: no clock is ever compacted (a run has few actors); epochs are ints.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

from .preempt import HARDIRQ_MASK, PREEMPT_MASK, SOFTIRQ_MASK, SOFTIRQ_OFFSET
from .report import Frame, _is_runtime_frame, relpath
from .task import CPU, Task, current_task

#: per-CPU exclusion "locks": resource index = 3 * cpu + kind
R_PREEMPT: Final = 0
R_BH: Final = 1
R_IRQ: Final = 2

#: actor kinds
A_TASK: Final = 0
A_SOFTIRQ: Final = 1
A_HARDIRQ: Final = 2

VectorClock = dict[int, int]


def join(dst: VectorClock, src: VectorClock) -> None:
    """``dst`` := max(dst, src), entry by entry."""
    get = dst.get
    for k, v in src.items():
        if get(k, 0) < v:
            dst[k] = v


class Actor:
    """One thread of control of the happens-before order: a task in task context, or the
    hardirq or softirq context of one CPU."""

    __slots__ = ("id", "vc", "held", "kind", "task", "cpu")

    def __init__(self, aid: int, kind: int, task: Task | None, cpu: int, base: VectorClock | None) -> None:
        self.id = aid
        self.vc: VectorClock = dict(base) if base else {}
        self.vc[aid] = 1
        #: bit mask of the per-CPU exclusion resources this actor holds (bit 3 * cpu + R_*)
        self.held = 0
        self.kind = kind
        self.task = task
        self.cpu = cpu

    def tick(self) -> None:
        self.vc[self.id] += 1

    def __repr__(self) -> str:
        what = (f"task {self.task.pid}" if self.kind == A_TASK and self.task is not None
                else f"{'hardirq' if self.kind == A_HARDIRQ else 'softirq'} of CPU#{self.cpu}")
        return f"<actor {self.id} {what} vc={self.vc}>"


class HappensBefore:
    """The vector clocks of one machine's current run.

    Every method takes ``lock`` itself except those documented as "lock held", which the
    detector calls while holding it (the free-running policy runs tasks at once).
    """

    def __init__(self, nr_cpus: int) -> None:
        self.nr_cpus = nr_cpus
        self.lock = threading.Lock()
        #: what the memory layers do with memory given back to an allocator (mm/kcsan.py
        #: drops its shadow): (address, size)
        self.on_free: Callable[[int, int], None] = _ignore_free
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new run starts after all of the last one."""
        n = self.nr_cpus
        self.next_id = 0
        self.tasks: dict[Task, Actor] = {}
        self.hardirq: list[Actor | None] = [None] * n
        self.softirq: list[Actor | None] = [None] * n
        self.res_clock: dict[int, VectorClock] = {}
        self.res_holder: dict[int, Actor] = {}
        self.lock_clock: dict[Any, VectorClock] = {}
        self.sync: dict[int, VectorClock] = {}
        self.wake_pending: dict[Task, VectorClock] = {}
        self.irq_pending: dict[tuple[int, int], VectorClock] = {}
        self.softirq_pending: dict[int, VectorClock] = {}

    # -- actors (lock held) -----------------------------------------------------------------
    def _new(self, kind: int, task: Task | None, cpu: int, base: VectorClock | None = None) -> Actor:
        a = Actor(self.next_id, kind, task, cpu, base)
        self.next_id += 1
        return a

    def task_actor(self, t: Task, base: VectorClock | None = None) -> Actor:
        """The task-context actor of ``t`` (lock held)."""
        a = self.tasks.get(t)
        if a is None:
            a = self.tasks[t] = self._new(A_TASK, t, -1, base)
        return a

    def irq_actor(self, cpu: int, hard: bool) -> Actor:
        """The hardirq or softirq actor of CPU ``cpu`` (lock held)."""
        row = self.hardirq if hard else self.softirq
        a = row[cpu]
        if a is None:
            a = row[cpu] = self._new(A_HARDIRQ if hard else A_SOFTIRQ, None, cpu)
        return a

    def actor_of(self, t: Task) -> Actor:
        """The actor running on ``t``'s thread now, with its exclusion sections brought up to
        date (lock held)."""
        c: CPU = t.cpu
        pc = c.preempt_count
        cid = c.id
        shift = 3 * cid
        if pc & HARDIRQ_MASK:
            a = self.hardirq[cid] or self.irq_actor(cid, True)
            want = 1 << (shift + R_IRQ)
        elif pc & SOFTIRQ_OFFSET:
            a = self.softirq[cid] or self.irq_actor(cid, False)
            want = (1 << (shift + R_BH)) | ((1 << (shift + R_IRQ)) if c.irqs_off else 0)
        else:
            a = self.tasks.get(t) or self.task_actor(t)
            if c.irqs_off:
                want = 7 << shift
            elif pc & SOFTIRQ_MASK:
                want = 3 << shift
            elif pc & PREEMPT_MASK:
                want = 1 << shift
            else:
                want = 0
        a.cpu = cid
        if a.held != want:
            self._sections(a, want)
        return a

    def _sections(self, a: Actor, want: int) -> None:
        """Release the exclusion resources ``a`` no longer holds, acquire the new ones."""
        old = a.held
        gone = old & ~want
        if gone:
            for r in _bits(gone):
                clk = self.res_clock.get(r)
                if clk is None:
                    self.res_clock[r] = dict(a.vc)
                else:
                    join(clk, a.vc)
                if self.res_holder.get(r) is a:
                    del self.res_holder[r]
            a.tick()
        new = want & ~old
        if new:
            for r in _bits(new):
                h = self.res_holder.get(r)
                if h is not None and h is not a:  # the holder left its section unseen: release it now
                    clk = self.res_clock.get(r)
                    if clk is None:
                        self.res_clock[r] = dict(h.vc)
                    else:
                        join(clk, h.vc)
                    h.held &= ~(1 << r)
                    h.tick()
                clk = self.res_clock.get(r)
                if clk is not None:
                    join(a.vc, clk)
                self.res_holder[r] = a
        a.held = want

    # -- sync clocks (lock held) ---------------------------------------------------------------
    def acq_rel_addr(self, a: Actor, addr: int) -> None:
        """A fully ordered atomic on ``addr``: acquire its sync clock, then release into it."""
        clk = self.sync.get(addr)
        if clk is not None:
            join(a.vc, clk)
        self.sync[addr] = dict(a.vc)
        a.tick()

    def release_addr(self, t: Task, addr: int) -> None:
        """``t`` stores with release semantics into ``addr`` (smp_store_release,
        clear_bit_unlock): what it did so far joins the address's sync clock."""
        with self.lock:
            a = self.actor_of(t)
            clk = self.sync.get(addr)
            if clk is None:
                self.sync[addr] = dict(a.vc)
            else:
                join(clk, a.vc)
            a.tick()

    def acquire_addr(self, t: Task, addr: int) -> None:
        """``t`` loads ``addr`` with acquire semantics (smp_load_acquire): it has seen what
        the releases into the address had."""
        with self.lock:
            clk = self.sync.get(addr)
            if clk is not None:
                join(self.actor_of(t).vc, clk)

    # -- hooks of runtime/locks.py and runtime/kernel.py --------------------------------------
    def acquire(self, t: Task, obj: Any) -> None:
        """``t`` took lock ``obj``."""
        with self.lock:
            a = self.actor_of(t)
            clk = self.lock_clock.get(obj)
            if clk is not None:
                join(a.vc, clk)

    def release(self, t: Task, obj: Any) -> None:
        """``t`` lets go of lock ``obj`` (or signals the sync object ``obj``: the clock is
        joined, so several signallers, the CPUs finishing an IPI call, all count)."""
        with self.lock:
            a = self.actor_of(t)
            clk = self.lock_clock.get(obj)
            if clk is None:
                self.lock_clock[obj] = dict(a.vc)
            else:
                join(clk, a.vc)
            a.tick()

    def wake(self, t: Task, woken: list[Task], wq: Any = None) -> None:
        """``t`` wakes the tasks of ``woken`` (from wait queue ``wq``, if any): they, and
        whoever finds the wait condition true later, will have seen what ``t`` did so far."""
        if not woken and wq is None:
            return
        with self.lock:
            a = self.actor_of(t)
            if wq is not None:
                clk = self.lock_clock.get(wq)
                if clk is None:
                    self.lock_clock[wq] = dict(a.vc)
                else:
                    join(clk, a.vc)
            for w in woken:
                p = self.wake_pending.get(w)
                if p is None:
                    self.wake_pending[w] = dict(a.vc)
                else:
                    join(p, a.vc)
            a.tick()

    def woke(self, t: Task) -> None:
        """``t``'s sleep returned: it acquires what its wakers released."""
        with self.lock:
            p = self.wake_pending.pop(t, None)
            if p is not None:
                join(self.task_actor(t).vc, p)

    def spawn(self, t: Task, fn: Callable[[], Any]) -> Callable[[], Any]:
        """kthread_run() from ``t``: ``fn`` wrapped so the new task starts with ``t``'s clock."""
        with self.lock:
            a = self.actor_of(t)
            base = dict(a.vc)
            a.tick()

        def kthread() -> Any:
            with self.lock:
                self.task_actor(current_task(), base)
            return fn()
        return kthread

    # -- hooks of runtime/irq.py ------------------------------------------------------------------
    def irq_raise(self, irq: int, cpu: int) -> None:
        """raise_irq() by the calling task or handler (none: the policy raised it, no edge)."""
        t = current_task()
        if not t:
            return
        with self.lock:
            a = self.actor_of(t)
            key = (cpu, irq)
            p = self.irq_pending.get(key)
            if p is None:
                self.irq_pending[key] = dict(a.vc)
            else:
                join(p, a.vc)
            a.tick()

    def irq_enter(self, cpu: int, irq: int) -> None:
        """The handler of ``irq`` starts on ``cpu``: it acquires what its raisers released."""
        with self.lock:
            p = self.irq_pending.pop((cpu, irq), None)
            if p is not None:
                join(self.irq_actor(cpu, True).vc, p)

    def softirq_raise(self, t: Task, cpu: int) -> None:
        """raise_softirq() on ``cpu`` by ``t``'s actor."""
        with self.lock:
            a = self.actor_of(t)
            p = self.softirq_pending.get(cpu)
            if p is None:
                self.softirq_pending[cpu] = dict(a.vc)
            else:
                join(p, a.vc)
            a.tick()

    def softirq_enter(self, cpu: int) -> None:
        """The softirqs of ``cpu`` run: they acquire what their raisers released."""
        with self.lock:
            p = self.softirq_pending.pop(cpu, None)
            if p is not None:
                join(self.irq_actor(cpu, False).vc, p)


# -- cheap stacks -------------------------------------------------------------------------------
#: a raw simulated stack: (code object, line) per frame, innermost first
RawStack = tuple[tuple[Any, int], ...]
#: the walk ends at the thread's entry, and at the interrupt entry (a handler's stack is its own)
_STOP_AT: Final = frozenset({"_task_main", "do_irq", "do_softirq"})
_skip_cache: dict[Any, bool] = {}


def raw_stack(depth: int, limit: int, skip_files: frozenset[str] = frozenset()) -> RawStack:
    """The simulated stack ``depth`` frames up, cheaply: (code, line) pairs of the frames
    that are neither the runtime's, nor of a module that called ``skip_frames_of``, nor
    of ``skip_files`` (absolute paths), at most ``limit``. Turn it into Frames with
    :func:`frames_of` only when it is printed."""
    out: list[tuple[Any, int]] = []
    f: Any = sys._getframe(depth)
    cache = _skip_cache
    while f is not None and len(out) < limit:
        code = f.f_code
        if code.co_name in _STOP_AT:
            break
        s = cache.get(code)
        if s is None:
            path = os.path.abspath(code.co_filename)
            s = cache[code] = _is_runtime_frame(path) or path in skip_files
        if not s:
            out.append((code, f.f_lineno))
        f = f.f_back
    return tuple(out)


def frames_of(stack: RawStack) -> tuple[Frame, ...]:
    """The printable frames of a raw stack."""
    return tuple(Frame(code.co_name, relpath(code.co_filename), line) for code, line in stack)


def _ignore_free(addr: int, size: int) -> None:
    pass


def _bits(mask: int) -> list[int]:
    """The indices of the set bits of ``mask``, lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


__all__ = ["R_PREEMPT", "R_BH", "R_IRQ", "A_TASK", "A_SOFTIRQ", "A_HARDIRQ", "VectorClock", "join", "Actor",
           "HappensBefore", "RawStack", "raw_stack", "frames_of"]
