"""SmpMachine: the runtime's simulated SMP computer, which knows nothing about memory.

CPUs, tasks and their runs under a scheduling policy, interrupts (runtime/irq.py),
kernel-style reports and printk, the /proc and invariant-check registries, and
replay. The user's ``Machine`` (percpu_kmem/machine.py) is this plus the memory
subsystems, declared as typed fields and booted in order (percpu_kmem/boot.py);
runtime tests may run on the bare ``SmpMachine``.

Several machines can live in one process; nothing is a module global. The
kernel-style free functions find their machine through the calling task, as the
kernel finds ``current``.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from loguru import logger

from .costs import DEFAULT as DEFAULT_COSTS
from .costs import POINT, CostModel, check_costs
from .engine import BatonEngine, Engine, FreeEngine, run_engine
from .errors import (
    Deadlock,
    InconsistentState,
    KernelBug,
    KernelPanic,
    KmemUsageError,
    Livelock,
    MachineUnusable,
    Oops,
    TaskAbort,
)
from .events import EventLog, EventView
from .greenlet_engine import GreenletEngine, check_engine
from .irq import EINVAL, Interrupts
from .kernel import SYSTEM_RUNNING
from .lockdep import Lockdep
from .lockstat import lock_stat
from .policies import POLICIES, Policy, ReplayPolicy, make_policy
from .preempt import HARDIRQ_MASK, SOFTIRQ_OFFSET
from .report import Report, capture_stack, format_call_trace
from .task import CPU, T_DONE, T_READY, Task, current_task
from .trace import TRACE_MAGIC, Trace

ON_BUG_MODES: Final = ("record", "raise", "panic")
MAX_CPUS: Final = 256
TASK_COMM_LEN: Final = 16
#: Seed of the boot phase's own policy: a boot is the same whatever the machine's seed.
BOOT_SEED: Final = 0
#: At most this many dmesg lines of the failing init function go into the exception's notes
#: (the console a developer reads after a failed boot).
BOOT_DMESG_TAIL: Final = 40
#: A replay hint carries the trace inline up to this many decisions, else in a file.
REPLAY_INLINE_MAX: Final = 40
#: Where long traces are written: ``$PERCPU_KMEM_DIR``, else this folder of the working directory.
TRACE_DIR: Final = ".percpu_kmem"


def state_dir() -> Path:
    """The folder for the model's files (long traces, failures): ``$PERCPU_KMEM_DIR`` or
    ``.percpu_kmem/`` of the working directory."""
    return Path(os.environ.get("PERCPU_KMEM_DIR") or Path.cwd() / TRACE_DIR)


class ReplayDivergedWarning(UserWarning):
    """A replayed trace no longer fits the run: from that step on the run is a new one."""

_log = logger.bind(subsystem="printk")


def printk_log(text: str, level: str = "INFO") -> None:
    """printk's loguru side alone: log one line's text (a boot template's dmesg lines,
    percpu_kmem/boot.py, go through it as the boot's printk calls did)."""
    _log.log(level, text)


class SmpMachine:
    """A simulated SMP machine without memory: CPUs, tasks, policies, interrupts, reports.

    Args:
        cpus: number of CPUs (1 to 256).
        nodes: NUMA nodes; CPUs are spread over them in blocks.
        policy: "random", "pct", "virtual" (deterministic) or "free" (real threads).
        seed: seeds every random choice of the policy.
        replay: a trace (``m.trace`` of an earlier run, or its text) to repeat.
        on_bug: what a kernel-style report does: "record" (kept in ``reports``,
            the task goes on where the kernel would), "raise" (a KernelBug in the
            task, re-raised by ``run``) or "panic" (the run stops, ``run`` raises
            KernelPanic).
        irq_rate: the rate given to interrupts registered with ``request_irq`` without a
            rate of their own: the chance per scheduling point (with interrupts enabled on
            the running CPU) that the policy raises the interrupt there. 0 (default):
            interrupts are raised only by ``raise_irq``.
        timeout: wall-clock seconds a run may take (a positive number, or None for no
            limit); a run that outlives it stops and raises RunTimeout.
        lockdep: validate every spinlock and mutex acquisition as lockdep does
            (runtime/lockdep.py): circular dependencies, inconsistent irq usage,
            recursion, and the fs_reclaim annotation. Its graph persists across the
            machine's runs; it changes no scheduling decision and no result.
        events: keep the event log of each run (runtime/events.py): per step the CPU,
            the task, the kernel event (locks, allocations, interrupts, sleeps, wake-ups,
            reports, the scheduler's decisions) and the simulated code's line; read it
            with ``m.events`` / ``m.event_log(...)``. It changes nothing of the run.
        policy_options: passed to the policy (``depth``/``steps`` for PCT,
            ``mean_run``/``preempt_prob`` for random and free, ``quantum`` for virtual).
        engine: how the tasks of a deterministic policy take turns: "thread" (default: an
            OS thread per task, a lock as the baton) or "greenlet" (the optional greenlet
            package: one OS thread, a greenlet per task; the same traces and reports, and
            hand-offs several times cheaper). Policy "free" runs on threads only.
    """

    def __init__(self, cpus: int = 1, *, nodes: int = 1, policy: str = "random", seed: int = 0,
                 replay: Trace | str | os.PathLike[str] | None = None, on_bug: str = "record",
                 timeout: float | None = 60.0, irq_rate: float = 0.0, lockdep: bool = False,
                 engine: str = "thread", costs: CostModel | dict[str, int] | None = None,
                 events: bool = False, **policy_options: Any) -> None:
        if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
            raise KmemUsageError(f"Machine: cpus(={cpus!r}) must be an int from 1 to {MAX_CPUS}")
        if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= cpus:
            raise KmemUsageError(f"Machine: nodes(={nodes!r}) must be an int from 1 to cpus(={cpus})")
        if not isinstance(policy, str) or policy not in POLICIES:
            raise KmemUsageError(f"Machine: policy(={policy!r}) must be one of {', '.join(POLICIES)}")
        if not isinstance(on_bug, str) or on_bug not in ON_BUG_MODES:
            raise KmemUsageError(f"Machine: on_bug(={on_bug!r}) must be one of {', '.join(ON_BUG_MODES)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise KmemUsageError(f"Machine: seed(={seed!r}) must be an int")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise KmemUsageError(f"Machine: timeout(={timeout!r}) must be a positive number of wall "
                                 f"seconds, or None for no limit")
        if isinstance(irq_rate, bool) or not isinstance(irq_rate, (int, float)) or not 0.0 <= irq_rate <= 1.0:
            raise KmemUsageError(f"Machine: irq_rate(={irq_rate!r}) must be a number within [0, 1]")
        if not isinstance(lockdep, bool):
            raise KmemUsageError(f"Machine: lockdep(={lockdep!r}) must be True or False")
        if not isinstance(events, bool):
            raise KmemUsageError(f"Machine: events(={events!r}) must be True or False")
        check_engine(engine, policy)
        #: the cycle costs the virtual-time policy charges (runtime/costs.py)
        self.costs: CostModel = check_costs(costs)
        if policy == "free":
            FreeEngine.check_options(policy_options)
        else:
            make_policy(policy, 0, **policy_options)  # options are checked now, not at the first run
        self.nr_cpus = cpus
        self.nr_nodes = nodes
        per_node = -(-cpus // nodes)
        self.cpus: list[CPU] = [CPU(i, min(i // per_node, nodes - 1)) for i in range(cpus)]
        self.policy_name = policy
        #: how the deterministic policies' tasks take turns: "thread" or "greenlet"
        self.engine_kind = engine
        self.seed = seed
        self.on_bug = on_bug
        self.timeout = timeout
        self.irq_rate = float(irq_rate)
        #: the lock validator (runtime/lockdep.py), None unless lockdep=True
        self.lockdep: Lockdep | None = Lockdep(self) if lockdep else None
        #: the event log of the last run (runtime/events.py), None unless events=True; the
        #: hooked primitives test it for None (set at the first run: the boot is not logged)
        self.events: EventLog | None = None
        self._event_log: EventLog | None = EventLog(self) if events else None
        #: why this machine refuses further runs (None while it is usable)
        self.unusable: str | None = None
        #: (lock, task) pairs: a lock left held by a task of an earlier run that is gone
        self._orphan_locks: list[tuple[Any, Task]] = []
        self.policy_options = policy_options
        self._replay = _load_trace(replay) if replay is not None else None
        if self._replay is not None and policy == "free":
            raise KmemUsageError("a trace cannot be replayed with policy='free': use the trace's policy")
        self.reports: list[Report] = []
        self._report_sites: dict[tuple[str, str], Report] = {}
        self.dmesg: list[str] = []
        #: printk's clock: the uptime of the last stamp (stamps never go back), and the
        #: virtual ns the boot phase took (added to the CPUs' clocks, which it leaves as they were)
        self._printk_last = 0
        self._uptime_base = 0
        self.irq = Interrupts(self)
        #: every spinlock a task of this machine has used (they bind at first use)
        self.locks: weakref.WeakSet[Any] = weakref.WeakSet()
        self._next_pid = 1
        self._runs = 0
        self._engine: Engine | None = None
        self._last_trace: Trace | None = None
        self.panicked: str | None = None
        self._panic_report: Report | None = None
        #: the deadlock or livelock report that ended the current run, if any
        self._deadlock_report: Report | None = None
        #: might_sleep()'s rate limit: virtual time of its last report in this run, and how
        #: many reports it swallowed (the kernel's prev_jiffy)
        self.might_sleep_prev: int | None = None
        self.might_sleep_suppressed = 0
        #: the kernel's debug_locks: a spinlock debug BUG turns it off for the rest of the run
        #: (debug_locks_off()), which silences DEBUG_LOCKS_WARN_ON (preempt_count underflow)
        self.debug_locks = True
        self._procs: dict[str, Callable[[], str]] = {}
        self._procs["lock_stat"] = lambda: lock_stat(list(self.locks))
        self._checkers: dict[str, Callable[[], None]] = {}
        self._daemons: list[tuple[str, Callable[[], Any], frozenset[int] | None]] = []
        self.diverged: str | None = None
        #: SYSTEM_BOOTING while a boot phase runs (the user's Machine boots its memory),
        #: then SYSTEM_RUNNING (might_sleep() is silent while booting, as in 2.6).
        self.system_state = SYSTEM_RUNNING

    def run_boot_threads(self, fns: Iterable[Callable[[], Any]]) -> None:
        """Run boot-phase kernel threads one after another on the boot CPU (CPU 0).

        The boot phase (mm/bootmem.py) calls this for the ``init`` functions, before the
        page allocator exists. Each function runs as its own kernel thread in the
        context of start_kernel(): pid 0 (the boot task is the swapper), comm = the
        function's name, pinned to CPU 0, preemption disabled (start_kernel's
        ``preempt_disable()``) and interrupts on (they were enabled before
        vfs_caches_init_early(), the last bootmem user). The threads run on an engine
        of their own under a deterministic policy seeded with BOOT_SEED, whatever this
        machine's policy and seed: the boot is the same every time.

        Nothing of it is charged to the machine's runs: ``_runs``, ``_last_trace``,
        ``_engine``, the pid counter and the CPUs' clocks and counters are as before, so
        the first ``run`` derives its seed, records its trace and replays exactly as on a
        machine without init functions. Reports and printk lines of the boot stay in
        ``reports`` and ``dmesg``; interrupts left pending stay pending.

        Raises:
            whatever ended a boot thread (a Python error, an Oops from BUG(), a
            KernelBug with on_bug="raise", KernelPanic after panic(), Deadlock when it
            slept with nothing to wake it), with notes naming the init function and the
            last dmesg lines.
        """
        saved_cpus = [(c.clock, c.nr_switches, c.nr_irqs, c.nr_preemptions) for c in self.cpus]
        saved_pid = self._next_pid
        try:
            for fn in fns:
                self._run_boot_thread(fn)
        finally:
            self._uptime_base = self._printk_last  # the boot took this long on printk's clock
            for c, (clock, switches, irqs, preemptions) in zip(self.cpus, saved_cpus):
                c.clock, c.nr_switches, c.nr_irqs, c.nr_preemptions = clock, switches, irqs, preemptions
                c.idle = None
            self._next_pid = saved_pid
            self._engine = None
            self._deadlock_report = None

    def _run_boot_thread(self, fn: Callable[[], Any]) -> None:
        comm = _comm_of(fn)[: TASK_COMM_LEN - 1]
        dmesg_start = len(self.dmesg)
        engine = BatonEngine(self, make_policy("random", BOOT_SEED))
        self._engine = engine
        self._deadlock_report = None
        t = Task(self, 0, comm, fn)
        t.cpus_allowed = frozenset([0])
        t.saved_count = 1  # start_kernel(): preempt_disable() before the bootmem users
        try:
            run_engine(engine, [t], self.timeout)
        finally:
            self._after_run(engine)
        exc = engine.failure or t.exc
        if exc is None and self.panicked is not None:
            exc = KernelPanic(self.panicked)
        if exc is None and self._deadlock_report is not None:
            exc = Deadlock(self._deadlock_report)
        if exc is not None:
            exc.add_note(f"percpu_kmem: boot failed in init function {comm!r} (the boot phase, "
                         f"before the page allocator exists); its dmesg lines:")
            for line in self.dmesg[max(dmesg_start, len(self.dmesg) - BOOT_DMESG_TAIL):]:
                exc.add_note(f"  {line}")
            raise exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} cpus={self.nr_cpus} policy={self.policy_name} seed={self.seed}>"

    # -- running -----------------------------------------------------------------
    def run(self, *fns: Callable[[], Any], names: Iterable[str] | None = None) -> list[Any]:
        """Run each callable as a kernel thread; return their results when all have ended.

        Raises:
            the first exception a task or an interrupt handler raised (a KernelBug with
            on_bug="raise", or any Python error), KernelPanic after a panic, Deadlock or
            Livelock when no task could progress with on_bug="raise", RunTimeout when the
            run outlived ``timeout``, KeyboardInterrupt after Ctrl-C (every task thread has
            stopped by then). Each carries a note with the seed and how to replay the run.
            MachineUnusable if an earlier run left this machine unable to run.
        """
        if not fns:
            raise KmemUsageError("run() needs at least one callable")
        for fn in fns:
            if not callable(fn):
                raise KmemUsageError(f"run() takes callables, got {fn!r}")
        name_list = list(names) if names is not None else []
        for name in name_list:
            if not isinstance(name, str) or not name:
                raise KmemUsageError(f"run(): names must be non-empty strings (task comms), got {name!r}")
        if self._engine is not None and not self._engine.finished:
            raise KmemUsageError("this machine is already running: start more work with kthread_run()")
        if self.unusable is not None:
            raise MachineUnusable(f"this machine refuses further runs: {self.unusable}; build a new Machine")
        engine = self._new_engine()
        self._engine = engine
        if self._event_log is not None:
            self._event_log.begin(engine)
            self.events = self._event_log
        tasks = []
        for i, fn in enumerate(fns):
            comm = name_list[i] if i < len(name_list) else _comm_of(fn)
            tasks.append(self._new_task(fn, comm))
        for comm, fn, allowed in self._daemons:
            t = self._new_task(fn, comm, daemon=True)
            t.cpus_allowed = allowed
            tasks.append(t)
        for c in self.cpus:
            c.idle = None
        self._deadlock_report = None
        self.might_sleep_prev = None
        self.debug_locks = True
        try:
            run_engine(engine, tasks, self.timeout)
        except BaseException as e:
            e.add_note(f"percpu_kmem: the run was stopped ({engine.abort_reason or type(e).__name__})")
            raise
        finally:
            self._last_trace = self._trace_of(engine)
            self._runs += 1
            if isinstance(engine, BatonEngine) and isinstance(engine.policy, ReplayPolicy):
                self.diverged = engine.policy.diverged
                if self.diverged is not None:
                    self._report_divergence(self.diverged)
            self._after_run(engine)
        self._raise_failure(engine)
        return [t.result for t in tasks if not t.daemon]

    def _after_run(self, engine: Engine) -> None:
        """The run is over: reset what only a live task could own, and see what was left.

        A lock still held by a task of the run is held by a task that no longer exists:
        ``check()`` names it, and when the lock belongs to the model itself the machine
        refuses further runs. So does a task thread that could not be stopped, and a panic.
        """
        for c in self.cpus:
            c.curr = None
            c.preempt_count = 0
            c.irqs_off = False
        self._orphan_locks = [(lk, t) for lk, t in self._orphan_locks if lk.owner is t]
        for t in engine.tasks:
            for lk in t.held:
                if lk.owner is t:
                    self._orphan_locks.append((lk, t))
            t.held = []
        if self.lockdep is not None:
            self.lockdep.end_run()
        internal = [(lk, t) for lk, t in self._orphan_locks if lk.internal]
        if internal and self.unusable is None:
            self.unusable = "; ".join(f"the model's lock {lk.name} is held by {t.name}, which ended holding it"
                                      for lk, t in internal)
        alive = engine.threads_alive()
        if alive and self.unusable is None:
            self.unusable = (f"{alive} task thread(s) of the last run could not be stopped (a loop in "
                             f"simulated code without a scheduling point?)")
        if self.panicked is not None and self.unusable is None:
            self.unusable = f"the machine panicked (Kernel panic - not syncing: {self.panicked})"

    def _raise_failure(self, engine: Engine) -> None:
        exc: BaseException | None = None
        if self.panicked is not None:
            exc = KernelPanic(self.panicked, self._panic_report)
            if engine.failure is not None:
                exc.__cause__ = engine.failure
        if exc is None:
            exc = engine.failure
        if exc is None and self._deadlock_report is not None and self.on_bug == "raise":
            cls = Livelock if self._deadlock_report.kind == "livelock" else Deadlock
            exc = cls(self._deadlock_report)
        if exc is not None:
            exc.add_note(self.replay_hint())
            raise exc

    # -- replay ---------------------------------------------------------------------
    def shaping_args(self) -> dict[str, Any]:
        """The Machine arguments that shape a run, as ``Machine(**args)`` takes them."""
        args: dict[str, Any] = {"cpus": self.nr_cpus, "policy": self.policy_name, "seed": self.seed,
                                "nodes": self.nr_nodes, "on_bug": self.on_bug, "irq_rate": self.irq_rate}
        if self.lockdep is not None:  # it shapes the reports, not the schedule
            args["lockdep"] = True
        if self.costs != DEFAULT_COSTS:
            args["costs"] = self.costs.as_dict()
        args.update(self.policy_options)
        return args

    def replay_hint(self) -> str:
        """How to repeat the last run: every argument that shaped it, and its whole trace.

        A trace longer than REPLAY_INLINE_MAX decisions is written to a file under
        ``.percpu_kmem/`` of the working directory, and the hint names that file.
        """
        trace = self._last_trace
        args = self.shaping_args()
        run_no = self._runs
        if trace is None or self.policy_name == "free":
            args["policy"] = "random"
            return (f"percpu_kmem: seed={self.seed} policy={self.policy_name} (free-running runs do not "
                    f"replay); rerun it deterministically with {type(self).__name__}({_fmt_args(args)})")
        if len(trace) <= REPLAY_INLINE_MAX:
            args["replay"] = str(trace)
        else:
            args["replay"] = str(save_trace(trace))
        how = f"{type(self).__name__}({_fmt_args(args)})"
        more = ""
        if run_no > 1:
            # every run of a machine is a function of its seed and its run number, so the
            # machine without replay= repeats the whole scenario, this run included
            whole = {k: v for k, v in args.items() if k != "replay"}
            more = (f" (this was run {run_no} of the machine: the replay= applies to a machine's first "
                    f"run, so to repeat the whole scenario, every run of it, pass it "
                    f"{type(self).__name__}({_fmt_args(whole)}))")
        more += self._replay_caveats()
        return f"percpu_kmem: seed={self.seed} policy={self.policy_name}; replay with {how}{more}"

    def _replay_caveats(self) -> str:
        """What the hint cannot carry (a subclass adds its own)."""
        return ""

    def _report_divergence(self, why: str) -> None:
        warnings.warn(ReplayDivergedWarning(f"percpu_kmem: {why}"), stacklevel=3)
        rep = Report(kind="replay_diverged", text=f"percpu_kmem: {why}", cpu=-1, task="-", pid=0,
                     preempt_count=0, irqs_disabled=False, step=self.steps)
        self.reports.append(rep)
        self.printk(rep.text, "WARNING")

    def _new_engine(self) -> Engine:
        seed = self.seed if self._runs == 0 else (self.seed * 1_000_003 + self._runs)
        opts = dict(self.policy_options)
        if self.policy_name == "free":
            return FreeEngine(self, seed, **opts)
        policy: Policy = make_policy(self.policy_name, seed, **opts)
        if self._replay is not None and self._runs == 0:
            policy = ReplayPolicy(self._replay, policy)
        if self.engine_kind == "greenlet":
            return GreenletEngine(self, policy)
        return BatonEngine(self, policy)

    def _new_task(self, fn: Callable[[], Any], comm: str, daemon: bool = False) -> Task:
        pid = self._next_pid
        self._next_pid += 1
        return Task(self, pid, comm[: TASK_COMM_LEN - 1], fn, daemon=daemon)

    def _spawn(self, fn: Callable[[], Any], comm: str, daemon: bool = False,
               cpus: frozenset[int] | None = None) -> Task:
        """kthread_run(): a new task in the current run (``daemon``: one that ends with
        the run's tasks, as ksoftirqd and the work queues' threads do; ``cpus``: bound)."""
        engine = self._engine
        if engine is None or engine.finished:
            raise KmemUsageError("kthread_run() needs a running machine")
        t = self._new_task(fn, comm, daemon=daemon)
        t.cpus_allowed = cpus
        if isinstance(engine, FreeEngine):
            import random as _r
            t.rng = _r.Random(engine._seed_rng.random())
            with engine.cv:
                t.state = T_READY
                engine.ready.append(t)
        else:
            t.state = T_READY
            t.ready_at = current_task().cpu.clock if current_task() else 0
            engine.ready.append(t)
            engine.ready_changed(t)
        engine.add_task(t)
        return t

    def add_daemon(self, comm: str, fn: Callable[[], Any], cpus: Iterable[int] | None = None) -> None:
        """A kernel thread started with every run (kswapd): it ends when the run's tasks end."""
        self._daemons.append((comm, fn, frozenset(cpus) if cpus is not None else None))

    @property
    def engine(self) -> Engine | None:
        """The engine of the current (or last) run, None before the first run (read-only)."""
        return self._engine

    @property
    def last_trace(self) -> Trace | None:
        """The decision log of the last run, None before the first run (read-only)."""
        return self._last_trace

    @property
    def trace(self) -> Trace:
        """The decision log of the last run; ``Machine(..., replay=m.trace)`` repeats it."""
        if self._last_trace is None:
            raise KmemUsageError("no run yet: call Machine.run() first")
        return self._last_trace

    def _trace_of(self, engine: Engine) -> Trace:
        comms = {t.pid: t.comm for t in engine.tasks}
        name = self.policy_name
        seed = self.seed if self._runs == 0 else (self.seed * 1_000_003 + self._runs)
        return Trace(name, seed, engine.decisions, comms)

    @property
    def steps(self) -> int:
        """Scheduling steps of the last run (deterministic policies)."""
        return self._engine.steps if self._engine is not None else 0

    @property
    def now(self) -> int:
        """Virtual time of the last run, in ns."""
        return self._engine.now if self._engine is not None else 0

    def event_log(self, *, task: Any = None, cpu: int | None = None, kind: str | Iterable[str] | None = None,
                  match: str | None = None, model: bool = True, last: int | None = None,
                  before: Report | int | None = None) -> EventView:
        """The last run's events (``Machine(events=True)``), filtered: by ``task`` (a task,
        "comm/pid", a comm or a pid), ``cpu``, ``kind`` (one or several of EVENT_KINDS),
        ``match`` (text the event contains: a lock's name, an address), ``model=False``
        (leave out the model's own locks: zone->lock, the caches' locks), ``before`` (a
        report: the events leading to it; an int: up to that step) and ``last`` (only the
        last N). ``str()`` of the answer gives one line per event."""
        log = self.events
        if log is None:
            why = ("this machine was made without events=True" if self._event_log is None
                   else "no run yet: call Machine.run() first")
            raise KmemUsageError(f"event_log(): no event log ({why}); Machine(..., events=True) keeps one, "
                                 f"and a replay with events=True shows the events of any failing run")
        return log.filter(task=task, cpu=cpu, kind=kind, match=match, model=model, last=last, before=before)

    # -- reports and printk -----------------------------------------------------
    def uptime_ns(self) -> int:
        """printk's clock, in virtual ns since boot: the furthest CPU clock (cycles = ns), or
        the timer clock if it is ahead, plus the boot phase; under the policies that do not
        charge scheduling points to the CPUs' clocks (random, pct), plus one ns (a point's
        cost) per scheduling step of the run. It never goes back, and a replay gives the
        same values: the CPUs' clocks hold only what was charged explicitly (locks, per-CPU
        hits, udelay, ...), and the step is a report's step."""
        engine = self._engine
        now = steps = 0
        if engine is not None:
            now = engine.now
            policy = getattr(engine, "policy", None)
            if policy is not None and not policy.charges_points:
                steps = engine.current_step(current_task() or None) * POINT
        for c in self.cpus:
            if c.clock > now:
                now = c.clock
        now += steps + self._uptime_base
        if now < self._printk_last:
            now = self._printk_last
        self._printk_last = now
        return now

    def printk(self, line: str, level: str = "INFO") -> None:
        """Append to the dmesg buffer and log through loguru (disabled unless enabled).

        Each line is stamped as the kernel's console prints it with CONFIG_PRINTK_TIME and
        CONFIG_PRINTK_CALLER: ``[    0.000412][    T2] text``: seconds of virtual uptime,
        then the caller, ``T<pid>`` in task context or ``C<cpu>`` in interrupt context."""
        now = self.uptime_ns()
        t = current_task()
        c = t.cpu if t else None
        if c is not None and c.preempt_count & (HARDIRQ_MASK | SOFTIRQ_OFFSET):
            caller = f"C{c.id}"
        else:
            caller = f"T{t.pid if t else 0}"
        prefix = f"[{now // 1_000_000_000:5d}.{(now // 1000) % 1_000_000:06d}][{caller:>6}] "
        for ln in line.splitlines() or [""]:
            self.dmesg.append(prefix + ln)
            _log.log(level, ln)

    def report(self, kind: str, lines: list[str], *, site: str = "", fatal: bool = False,
               stack: bool = True, extra: dict[str, Any] | None = None) -> Report:
        """Record a kernel-style diagnostic and act on it as ``on_bug`` says.

        Repeats of the same (kind, site) are folded into one report with a count,
        as a rate limit would. ``fatal``: the task cannot go on (an Oops is raised
        whatever on_bug says).
        """
        t = current_task()
        cpu = t.cpu if t else None
        key = (kind, site)
        if site and key in self._report_sites:
            rep = self._report_sites[key]
            rep.count += 1
            if self.events is not None:
                self.events.report(rep)
            if not fatal and self.on_bug == "record":
                return rep
        else:
            frames = capture_stack() if stack else ()
            text_lines = [*lines]
            if stack:
                text_lines += [f"CPU: {cpu.id if cpu else -1} PID: {t.pid if t else 0} Comm: {t.comm if t else '-'}"]
                text_lines += format_call_trace(frames)
            engine = self._engine
            rep = Report(kind=kind, text="\n".join(text_lines), cpu=cpu.id if cpu else -1,
                         task=t.name if t else "-", pid=t.pid if t else 0,
                         preempt_count=cpu.preempt_count if cpu else 0,
                         irqs_disabled=cpu.irqs_off if cpu else False, stack=frames,
                         step=engine.current_step(t or None) if engine else 0, site=site, extra=extra or {})
            self.reports.append(rep)
            if site:
                self._report_sites[key] = rep
            self.printk(rep.text, "ERROR")
            if self.events is not None:
                self.events.report(rep)
        if self.on_bug == "panic" and t:
            # the report's title: its first line that is not a rule (lockdep's start with one)
            self.panic(next((ln for ln in lines if ln.strip("=-")), kind), rep)
        if fatal:
            raise Oops(rep)
        if self.on_bug == "raise" and t:
            raise KernelBug(rep)
        return rep

    def panic(self, message: str, rep: Report | None = None) -> None:
        """panic(): print the kernel's line and stop the run (the caller unwinds at once,
        the other tasks at their next safe point); the machine then refuses further runs."""
        if self.panicked is None:
            self.panicked = message
            self._panic_report = rep
            self.printk(f"Kernel panic - not syncing: {message}", "CRITICAL")
        engine = self._engine
        if engine is not None:
            engine.request_abort(current_task() or None)
        raise TaskAbort()

    def _report_deadlock(self, waits: list[str]) -> None:
        self._report_stuck("deadlock", "INFO: task hung: every task is blocked and nothing can wake one "
                                       "(deadlock)", waits)

    def _report_livelock(self, waits: list[str]) -> None:
        self._report_stuck("livelock", "INFO: livelock: every task busy-waits, spins or sleeps, and none "
                                       "makes progress (a soft lockup that would never end)", waits)

    def report_hung(self, t: Task, secs: int, waits_on: str) -> Report:
        """khungtaskd's report of ``t``, asleep uninterruptibly for more than ``secs`` seconds
        (check_hung_task()), made from outside ``t``: the report names ``t``, which sleeps on."""
        lines = [f"INFO: task {t.comm}:{t.pid} blocked for more than {secs} seconds.",
                 '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
                 f"task:{t.comm:<15.15} state:D pid:{t.pid:<5} waits on {waits_on}"]
        return self._record_outside("hung_task", lines, t, {"waits_on": waits_on})

    def _record_outside(self, kind: str, lines: list[str], t: Task | None, extra: dict[str, Any]) -> Report:
        """Record a report made by the machine itself (a watchdog), not by a task's code: no
        CPU and no stack; ``t`` is the task it is about, if one."""
        rep = Report(kind=kind, text="\n".join(lines), cpu=-1, task=t.name if t else "-", pid=t.pid if t else 0,
                     preempt_count=0, irqs_disabled=False, stack=(),
                     step=self._engine.steps if self._engine else 0, extra=extra)
        self.reports.append(rep)
        self.printk(rep.text, "ERROR")
        if self.events is not None:
            self.events.report(rep)
        return rep

    def _report_stuck(self, kind: str, header: str, waits: list[str]) -> None:
        """A run that can never finish: say who waits on what, then end it."""
        rep = self._record_outside(kind, [header, *(f"  {w}" for w in waits)], None, {"waits": waits})
        self._deadlock_report = rep
        if self.on_bug == "panic" and self.panicked is None:
            self.panicked = kind
            self._panic_report = rep
            self.printk(f"Kernel panic - not syncing: {kind}", "CRITICAL")

    def report_held_locks(self, t: Task) -> Report:
        """lockdep's debug_check_no_locks_held() at exit: ``t`` returned with locks held."""
        n = len(t.held)
        lines = ["=" * 36, f"WARNING: {t.comm}/{t.pid} still has locks held!", "-" * 36,
                 f"{n} lock{'s' if n != 1 else ''} held by {t.comm}/{t.pid}:"]
        lines += [f" #{i}: {lk.name}" for i, lk in enumerate(t.held)]
        return self.report("held_locks_at_exit", lines, extra={"locks": [lk.name for lk in t.held]})

    def report_exit_atomic(self, t: Task) -> Report | None:
        """do_exit()'s notes: ``t`` returned with preemption or interrupts still disabled (a
        get_cpu() without put_cpu(), a local_irq_save() without restore). As the kernel does,
        the count and the irq state are reset after the note; None if ``t`` exited clean."""
        c = t.cpu
        if c is None or (not c.preempt_count and not c.irqs_off) or self.system_state != SYSTEM_RUNNING:
            return None  # boot code runs with preemption disabled, as start_kernel() does
        lines = []
        if c.irqs_off:
            lines.append(f"note: {t.comm}[{t.pid}] exited with irqs disabled")
        if c.preempt_count:
            lines.append(f"note: {t.comm}[{t.pid}] exited with preempt_count {c.preempt_count}")
        rep = self.report("exit_atomic", lines, extra={"preempt_count": c.preempt_count,
                                                       "irqs_disabled": c.irqs_off})
        c.preempt_count = 0
        c.irqs_off = False
        return rep

    def reports_of(self, kind: str) -> list[Report]:
        """The reports of one kind."""
        return [r for r in self.reports if r.kind == kind]

    # -- interrupts -----------------------------------------------------------------
    # -- interrupts (runtime/irq.py holds them) -------------------------------------
    def request_irq(self, irq: int, handler: Callable[[int, Any], Any], name: str = "",
                    dev_id: Any = None, *, rate: float | None = None, flags: int = 0) -> None:
        """Register ``handler(irq, dev_id)`` for ``irq``; see Interrupts.request_irq. The line
        must be free, or shared (SA_SHIRQ in ``flags``, with a dev_id) by it and every handler
        it has; the kernel-style ``request_irq`` returns -EBUSY or -EINVAL instead."""
        err = self.irq.request_irq(irq, handler, name, dev_id, rate=rate, flags=flags)
        if err == -EINVAL:
            raise KmemUsageError(f"request_irq: IRQ {irq}: a shared line (SA_SHIRQ) needs a dev_id")
        if err:
            raise KmemUsageError(f"request_irq: IRQ {irq} already has a handler ({self.irq.actions[irq].name})")

    def free_irq(self, irq: int) -> None:
        """Remove the handler of ``irq`` (whatever its dev_id); it must have one (the
        kernel-style ``free_irq`` warns instead)."""
        if isinstance(irq, bool) or not isinstance(irq, int):
            raise KmemUsageError(f"free_irq: irq(={irq!r}) must be a non-negative int")
        if not self.irq.free_irq(irq):
            raise KmemUsageError(f"free_irq({irq}): no handler registered")

    def raise_irq(self, irq: int, cpu: int) -> None:
        """Mark ``irq`` pending on CPU ``cpu``; it runs there when interrupts allow."""
        self.irq.raise_irq(irq, cpu)

    def open_softirq(self, nr: int, action: Callable[[], Any]) -> None:
        self.irq.open_softirq(nr, action)

    # -- /proc and invariants -----------------------------------------------------------
    def register_proc(self, name: str, render: Callable[[], str]) -> None:
        """A subsystem offers a /proc file."""
        self._procs[name] = render

    def register_checker(self, name: str, check: Callable[[], None]) -> None:
        """A subsystem offers an invariant walk for ``check()``."""
        self._checkers[name] = check

    def proc(self, name: str) -> str:
        """The text of /proc/<name> (slabinfo, buddyinfo, meminfo, vmallocinfo, ...)."""
        key = name.removeprefix("/proc/")
        if key not in self._procs:
            have = ", ".join(sorted(self._procs)) or "none"
            raise KmemUsageError(f"no /proc/{key} on this machine (have: {have})")
        return self._procs[key]()

    def check(self) -> None:
        """Walk every structure; raise InconsistentState naming what is wrong."""
        from .errors import KmemInternalError
        if self._engine is not None and not self._engine.finished and any(
                t.state != T_DONE for t in self._engine.tasks if not t.is_idle and not t.daemon):
            raise KmemUsageError("check() walks a quiet machine: call it between runs")
        for c in self.cpus:
            if c.curr is not None or c.preempt_count or c.irqs_off:
                raise KmemInternalError(f"CPU#{c.id} not quiet after the run: {c!r}")
        orphans = [(lk, t) for lk, t in self._orphan_locks if lk.owner is t]
        if orphans:
            raise InconsistentState("locks held by tasks that no longer exist: " + "; ".join(
                f"{type(lk).__name__} {lk.name} held by {t.name} "
                f"(ended {'by ' + type(t.exc).__name__ if t.exc else 'holding it'})" for lk, t in orphans))
        for fn in self._checkers.values():
            fn()

    def statistics(self) -> dict[str, Any]:
        """Counters of the runtime: switches, preemptions, interrupts per CPU."""
        return {
            "steps": self.steps,
            "cpus": [{"cpu": c.id, "switches": c.nr_switches, "preemptions": c.nr_preemptions,
                      "irqs": c.nr_irqs, "clock": c.clock} for c in self.cpus],
        }


def _fmt_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def save_trace(trace: Trace, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write ``trace`` to ``<directory>/trace-<policy>-<seed>-<hash>.pkt`` (by default under
    :func:`state_dir`) and return its absolute path."""
    import hashlib
    text = str(trace)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    folder = Path(directory) if directory is not None else state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"trace-{trace.policy}-{trace.seed}-{digest}.pkt").resolve()
    if not path.exists():
        path.write_text(text + "\n")
    return path


def _load_trace(replay: Any) -> Trace:
    """A trace from a Trace, its text, or the path of a file holding its text."""
    if isinstance(replay, Trace):
        return replay
    if isinstance(replay, os.PathLike) or (isinstance(replay, str) and not replay.lstrip().startswith(TRACE_MAGIC)):
        path = Path(replay)
        try:
            text = path.read_text()
        except OSError as e:
            raise KmemUsageError(f"Machine: replay(={str(replay)!r}) is not a percpu_kmem trace "
                                 f"('{TRACE_MAGIC} <policy> seed=<n> | ...') nor a readable trace file: "
                                 f"{e.strerror or e}") from None
        return Trace.parse(text.strip())
    if isinstance(replay, str):
        return Trace.parse(replay)
    raise KmemUsageError(f"Machine: replay(={replay!r}) must be a Trace (m.trace), its text, or the path "
                         f"of a trace file")


def _comm_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None)
    if name is None and hasattr(fn, "func"):
        name = getattr(fn.func, "__name__", None)
    return name or "kthread"


__all__ = ["ON_BUG_MODES", "MAX_CPUS", "TASK_COMM_LEN", "BOOT_SEED", "BOOT_DMESG_TAIL", "REPLAY_INLINE_MAX",
           "TRACE_DIR", "state_dir", "printk_log", "ReplayDivergedWarning", "SmpMachine", "save_trace"]
