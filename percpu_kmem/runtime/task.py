"""CPUs and tasks: the two kinds of actor a simulated machine schedules.

Hot fields are plain attributes of ``__slots__`` classes: a scheduling point
touches ``task.budget`` and ``cpu.preempt_count`` and nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .machine import SmpMachine as Machine

# Kernel task states of the sleep protocol (include/linux/sched.h), in ``Task.kstate``.
TASK_RUNNING: Final = 0
TASK_INTERRUPTIBLE: Final = 1
TASK_UNINTERRUPTIBLE: Final = 2

# Engine task states (plain ints: compared on hot paths): where the scheduler has the task.
T_NEW: Final = 0
T_ON_CPU: Final = 1  # on a CPU (holding it, maybe paused by the baton)
T_READY: Final = 2  # runnable, waiting for a CPU
T_SLEEPING: Final = 3  # blocked on a wait queue, mutex or timer
T_DONE: Final = 4

STATE_NAMES: Final = {T_NEW: "new", T_ON_CPU: "running", T_READY: "ready",
                      T_SLEEPING: "sleeping", T_DONE: "done"}


class CPU:
    """One simulated processor.

    Attributes:
        id: the CPU number (smp_processor_id()).
        node: the NUMA node the CPU belongs to.
        preempt_count: preempt/softirq/hardirq counts, laid out as in preempt.h.
        irqs_off: local interrupts disabled (the complement of EFLAGS.IF).
        curr: the task on this CPU, or None when it idles.
        pending_irqs: IRQ numbers raised on this CPU and not yet handled.
        softirq_pending: bit mask of raised softirqs.
        clock: the CPU's virtual clock, in cycles (1 cycle = 1 ns).
        data: per-CPU storage for the subsystems built on the runtime.
    """

    __slots__ = ("id", "node", "preempt_count", "irqs_off", "curr", "pending_irqs",
                 "softirq_pending", "clock", "idle", "data", "online", "nr_switches",
                 "nr_irqs", "nr_preemptions", "spin_cycles", "next_tick")

    def __init__(self, cpu_id: int, node: int) -> None:
        self.id = cpu_id
        self.node = node
        self.preempt_count = 0
        self.irqs_off = False
        self.curr: Task | None = None
        self.pending_irqs: list[int] = []
        self.softirq_pending = 0
        self.clock = 0
        self.idle: Task | None = None
        self.data: dict[str, Any] = {}
        self.online = True
        self.nr_switches = 0
        self.nr_irqs = 0
        self.nr_preemptions = 0
        self.spin_cycles = 0  # virtual cycles spent spinning on held locks
        self.next_tick = 0  # virtual time of this CPU's next scheduler tick (virtual policy)

    def __repr__(self) -> str:
        curr = self.curr.name if self.curr else "idle"
        return (f"<CPU#{self.id} node={self.node} preempt_count={self.preempt_count:#x} "
                f"irqs_off={self.irqs_off} curr={curr}>")


class Task:
    """A kernel thread: a Python thread that runs on at most one CPU at a time.

    ``pid`` and ``comm`` are what reports print (``comm/pid``). ``budget`` counts
    the scheduling points left before the policy decides again; other tasks set
    it to 0 to make this one look at the machine (a raised IRQ, an abort).
    """

    __slots__ = ("pid", "comm", "fn", "machine", "cpu", "state", "budget", "baton", "exc",
                 "result", "spinning", "waiting_on", "woken", "timed_out", "saved_count",
                 "saved_irqs_off", "is_idle", "daemon", "prio", "last_cpu", "cpus_allowed",
                 "timer_seq", "ready_at", "vlimit", "rng", "nvcsw", "nivcsw", "flags", "gfp_ctx",
                 "held", "in_sleep", "kstate", "points", "relaxes", "relax_streak",
                 "relax_site", "relax_t0", "relax_points", "clock_read", "slept_at", "granted", "engine", "fail_nth",
                 "make_it_fail", "hb", "glet", "__weakref__")

    def __init__(self, machine: Machine, pid: int, comm: str, fn: Callable[[], Any],
                 *, is_idle: bool = False, daemon: bool = False) -> None:
        self.pid = pid
        self.comm = comm
        self.fn = fn
        self.machine = machine
        #: the CPU the task runs on; None while it has none (the code of a running task
        #: always has one, so it is typed as present)
        self.cpu: CPU = None  # type: ignore[assignment]
        self.state = T_NEW
        self.budget = 1
        self.baton = threading.Lock()
        self.baton.acquire()
        self.exc: BaseException | None = None
        self.result: Any = None
        self.spinning: Any = None  # the spinlock this task spins on
        self.waiting_on: Any = None  # what it sleeps on (for deadlock reports)
        self.woken = False
        self.timed_out = False
        self.saved_count = 0
        self.saved_irqs_off = False
        self.is_idle = is_idle
        self.daemon = daemon
        self.prio = 0.0
        self.last_cpu = -1
        self.cpus_allowed: frozenset[int] | None = None  # None: any CPU
        self.timer_seq = 0
        self.ready_at = 0
        self.vlimit = 0
        self.rng: Any = None
        self.nvcsw = 0  # voluntary context switches
        self.nivcsw = 0  # involuntary ones
        self.flags = 0  # PF_* bits (PF_MEMALLOC for reclaim)
        self.gfp_ctx = 0  # memalloc_noio/nofs scope bits
        #: the spinlocks and mutexes this task holds, innermost last (lockdep's held_locks)
        self.held: list[Any] = []
        self.in_sleep = False  # inside the engine's sleep (a point where an abort may unwind it)
        #: the kernel's task state for the sleep protocol: T_ON_CPU (0), or
        #: TASK_INTERRUPTIBLE / TASK_UNINTERRUPTIBLE after set_current_state()/prepare_to_wait()
        self.kstate = 0
        self.points = 0  # scheduling points passed (synced at decisions)
        self.relaxes = 0  # cpu_relax() calls
        #: cpu_relax() calls in a row with at most RELAX_GAP scheduling points between two
        #: (a busy-wait loop; runtime/engine.py)
        self.relax_streak = 0
        self.relax_points = 0  # the task's points at its last cpu_relax()
        self.relax_site = ""  # where the current busy-wait loop calls cpu_relax()
        self.relax_t0 = 0  # virtual time at the first cpu_relax() of the current streak
        self.clock_read = -1  # ``relaxes`` when the task last read the clock (jiffies, ktime)
        #: virtual time the task went to sleep at; -1 while it runs, or once khungtaskd has
        #: reported this sleep (runtime/engine.py, Engine._khungtaskd)
        self.slept_at = -1
        self.granted = 0  # the budget of the last grant (free engine)
        #: the engine of the run this task belongs to (set when the run registers it)
        self.engine: Any = None
        #: fault injection (/proc/<pid>/fail-nth, make-it-fail): the N-th injectable call of
        #: this task fails (0: none); with a task filter, only tasks that set make_it_fail fail
        self.fail_nth = 0
        self.make_it_fail = False
        #: the machine's happens-before clocks (runtime/hb.py) when it detects data races
        #: (Machine(kcsan=True)), else None: the one test the synchronisation hooks make
        self.hb: Any = getattr(machine, "hb", None)
        #: the task's greenlet under the greenlet engine (None until it first runs)
        self.glet: Any = None

    @property
    def name(self) -> str:
        return f"{self.comm}/{self.pid}"

    def charge(self, cycles: int) -> None:
        """Charge ``cycles`` of work to this task's CPU clock (what virtual time measures)."""
        self.engine.charge(self, cycles)

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def __repr__(self) -> str:
        where = f"CPU#{self.cpu.id}" if self.cpu else "-"
        return f"<Task {self.name} {self.state_name} on {where}>"


class _NoTask:
    """Stands in for ``current`` on threads that are not kernel threads."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        from .errors import NotInTaskError
        raise NotInTaskError()

    def __setattr__(self, name: str, value: Any) -> None:
        from .errors import NotInTaskError
        raise NotInTaskError()

    def __bool__(self) -> bool:
        return False


NO_TASK: Final = _NoTask()


#: The running kernel thread of this OS thread (or of this greenlet, under the greenlet
#: engine), NO_TASK elsewhere: the kernel's ``current``. A context variable rather than a
#: ``threading.local``: each thread (and greenlet) has a context of its own, and reading
#: one is a C call without a per-thread dictionary lookup (about 10 ns against 30 ns).
_CURRENT: Final[ContextVar[Any]] = ContextVar("percpu_kmem.current", default=NO_TASK)

#: ``current_task()``: the running task, NO_TASK outside kernel threads; the one way the
#: layers find ``current`` (``runtime.kernel.current()`` raises NotInTaskError instead).
current_task: Final = _CURRENT.get

#: ``set_current_task(t)``: make ``t`` this thread's ``current`` (the engines, at a task's
#: start and end).
set_current_task: Final = _CURRENT.set


__all__ = ["TASK_RUNNING", "TASK_INTERRUPTIBLE", "TASK_UNINTERRUPTIBLE", "T_NEW", "T_ON_CPU", "T_READY",
           "T_SLEEPING", "T_DONE", "STATE_NAMES", "CPU", "Task", "NO_TASK", "current_task",
           "set_current_task"]
