"""Machine: one simulated SMP computer and everything it owns.

Several machines can live in one process; nothing is a module global. The
kernel-style free functions find their machine through the calling task, as the
kernel finds ``current``.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Final, Iterable

from loguru import logger

from .engine import BatonEngine, FreeEngine, _EngineBase, run_engine
from .errors import Deadlock, KernelBug, KernelPanic, KmemUsageError, Oops
from .kernel import SYSTEM_BOOTING, SYSTEM_RUNNING
from .policies import POLICIES, Policy, ReplayPolicy, make_policy
from .preempt import HARDIRQ_OFFSET, SOFTIRQ_OFFSET
from .report import Report, capture_stack, format_call_trace
from .task import CPU, CURRENT, TASK_DONE, Task
from .trace import Trace

ON_BUG_MODES: Final = ("record", "raise", "panic")
MAX_CPUS: Final = 256
NR_SOFTIRQS: Final = 10
TASK_COMM_LEN: Final = 16
#: Seed of the boot phase's own policy: a boot is the same whatever the machine's seed.
BOOT_SEED: Final = 0
#: At most this many dmesg lines of the failing init function go into the exception's notes
#: (the console a developer reads after a failed boot).
BOOT_DMESG_TAIL: Final = 40

_log = logger.bind(subsystem="printk")


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


class Machine:
    """A simulated SMP machine.

    Args:
        cpus: number of CPUs (1 to 256).
        memory: physical memory size ("64M", "4G" or bytes); the memory layers
            are built on it.
        nodes: NUMA nodes; CPUs are spread over them in blocks.
        policy: "random", "pct", "virtual" (deterministic) or "free" (real threads).
        seed: seeds every random choice of the policy.
        replay: a trace (``m.trace`` of an earlier run, or its text) to repeat.
        on_bug: what a kernel-style report does: "record" (kept in ``reports``,
            the task goes on where the kernel would), "raise" (a KernelBug in the
            task, re-raised by ``run``) or "panic" (the run stops, ``run`` raises
            KernelPanic).
        irq_rate: default rate for interrupts registered with ``inject=True``.
        timeout: wall-clock seconds a run may take before it is aborted.
        init: callables run as kernel threads in the boot phase, before the buddy
            allocator exists: the place for ``alloc_bootmem`` (see mm/bootmem.py).
        slab_debug: turn slab debugging (poison, redzones, double-free checks) on
            for every cache of this machine, as CONFIG_DEBUG_SLAB does.
        policy_options: passed to the policy (``depth``/``steps`` for PCT,
            ``mean_run``/``preempt_prob`` for random and free, ``quantum`` for virtual).
    """

    def __init__(self, cpus: int = 1, memory: int | str = "64M", *, nodes: int = 1,
                 policy: str = "random", seed: int = 0, replay: Trace | str | None = None,
                 on_bug: str = "record", timeout: float = 60.0, boot: bool = True,
                 init: Iterable[Callable[[], Any]] = (), slab_debug: bool = False,
                 **policy_options: Any) -> None:
        if not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
            raise KmemUsageError(f"cpus(={cpus!r}) must be an int from 1 to {MAX_CPUS}")
        if not isinstance(nodes, int) or not 1 <= nodes <= cpus:
            raise KmemUsageError(f"nodes(={nodes!r}) must be an int from 1 to cpus(={cpus})")
        if policy not in POLICIES:
            raise KmemUsageError(f"policy(={policy!r}) must be one of {', '.join(POLICIES)}")
        if on_bug not in ON_BUG_MODES:
            raise KmemUsageError(f"on_bug(={on_bug!r}) must be one of {', '.join(ON_BUG_MODES)}")
        if not isinstance(seed, int):
            raise KmemUsageError(f"seed(={seed!r}) must be an int")
        self.boot_init: tuple[Callable[[], Any], ...] = tuple(init)
        for fn in self.boot_init:
            if not callable(fn):
                raise KmemUsageError(f"init takes callables (boot-time init functions), got {fn!r}")
        self.slab_debug = bool(slab_debug)
        self.nr_cpus = cpus
        self.nr_nodes = nodes
        per_node = -(-cpus // nodes)
        self.cpus: list[CPU] = [CPU(i, min(i // per_node, nodes - 1)) for i in range(cpus)]
        self.policy_name = policy
        self.seed = seed
        self.on_bug = on_bug
        self.timeout = timeout
        self.policy_options = policy_options
        self._replay = Trace.parse(replay) if replay is not None else None
        if self._replay is not None and policy == "free":
            raise KmemUsageError("a trace cannot be replayed with policy='free': use the trace's policy")
        self.reports: list[Report] = []
        self._report_sites: dict[tuple[str, str], Report] = {}
        self.dmesg: list[str] = []
        self._irq_actions: dict[int, IrqAction] = {}
        self._irq_sources: list[tuple[int, float]] = []
        self._softirq_vec: list[Callable[[], Any] | None] = [None] * NR_SOFTIRQS
        self._next_pid = 1
        self._runs = 0
        self._engine: _EngineBase | None = None
        self._last_trace: Trace | None = None
        self.panicked: str | None = None
        self._procs: dict[str, Callable[[], str]] = {}
        self._checkers: dict[str, Callable[[], None]] = {}
        self._daemons: list[tuple[str, Callable[[], Any], frozenset[int] | None]] = []
        self.memory_size = memory
        self.subsystems: dict[str, Any] = {}
        self.diverged: str | None = None
        #: SYSTEM_BOOTING while the memory layers and the ``init`` functions run, then
        #: SYSTEM_RUNNING (might_sleep() is silent while booting, as in 2.6).
        self.system_state = SYSTEM_BOOTING if boot else SYSTEM_RUNNING
        #: The boot allocator's state and statistics (mm/bootmem.py), once booted.
        self.bootmem: Any = None
        if boot:
            self._boot()
        self.system_state = SYSTEM_RUNNING

    def _boot(self) -> None:
        """Build the memory layers (they register themselves on the machine)."""
        try:
            from ..boot import boot_machine
        except ImportError:  # memory layers not built yet: a bare runtime machine
            return
        boot_machine(self)

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
        return f"<Machine cpus={self.nr_cpus} policy={self.policy_name} seed={self.seed}>"

    # -- running -----------------------------------------------------------------
    def run(self, *fns: Callable[[], Any], names: Iterable[str] | None = None) -> list[Any]:
        """Run each callable as a kernel thread; return their results when all have ended.

        Raises:
            the first exception a task raised (a KernelBug with on_bug="raise",
            or any Python error), KernelPanic after a panic, Deadlock when every
            task blocked with on_bug="raise". Each carries a note with the seed and
            the trace that replays the run.
        """
        if not fns:
            raise KmemUsageError("run() needs at least one callable")
        for fn in fns:
            if not callable(fn):
                raise KmemUsageError(f"run() takes callables, got {fn!r}")
        if self._engine is not None and not self._engine.finished:
            raise KmemUsageError("this machine is already running: start more work with kthread_run()")
        name_list = list(names) if names is not None else []
        engine = self._new_engine()
        self._engine = engine
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
        self._deadlock_report: Report | None = None
        try:
            run_engine(engine, tasks, self.timeout)
        finally:
            self._last_trace = self._trace_of(engine)
            self._runs += 1
            if isinstance(engine, BatonEngine) and isinstance(engine.policy, ReplayPolicy):
                self.diverged = engine.policy.diverged
            self._after_run(engine)
        self._raise_failure(engine)
        return [t.result for t in tasks if not t.daemon]

    def _after_run(self, engine: _EngineBase) -> None:
        """A run left every CPU quiet: reset what only a live task could own."""
        for c in self.cpus:
            c.curr = None
            c.preempt_count = 0
            c.irqs_off = False

    def _raise_failure(self, engine: _EngineBase) -> None:
        exc = engine.failure
        if exc is None and self.panicked is not None:
            exc = KernelPanic(self.panicked)
        if exc is None and self._deadlock_report is not None and self.on_bug == "raise":
            exc = Deadlock(self._deadlock_report)
        if exc is not None:
            exc.add_note(self.replay_hint())
            raise exc

    def replay_hint(self) -> str:
        """How to repeat the last run: its seed and its trace."""
        trace = self._last_trace
        how = f"Machine(cpus={self.nr_cpus}, policy={self.policy_name!r}, seed={self.seed}"
        if trace is None or self.policy_name == "free":
            return f"percpu_kmem: seed={self.seed} policy={self.policy_name} (free-running: not replayable)"
        if len(trace) > 60:
            return (f"percpu_kmem: seed={self.seed}; replay with {how}) or with replay=m.trace "
                    f"({len(trace)} decisions, {self.steps} steps)")
        return f"percpu_kmem: seed={self.seed}; replay with {how}, replay={str(trace)!r})"

    def _new_engine(self) -> _EngineBase:
        seed = self.seed if self._runs == 0 else (self.seed * 1_000_003 + self._runs)
        opts = dict(self.policy_options)
        if self.policy_name == "free":
            return FreeEngine(self, seed, **opts)
        policy: Policy = make_policy(self.policy_name, seed, **opts)
        if self._replay is not None and self._runs == 0:
            policy = ReplayPolicy(self._replay, policy)
        return BatonEngine(self, policy)

    def _new_task(self, fn: Callable[[], Any], comm: str, daemon: bool = False) -> Task:
        pid = self._next_pid
        self._next_pid += 1
        return Task(self, pid, comm[: TASK_COMM_LEN - 1], fn, daemon=daemon)

    def _spawn(self, fn: Callable[[], Any], comm: str) -> Task:
        """kthread_run(): a new task in the current run."""
        engine = self._engine
        if engine is None or engine.finished:
            raise KmemUsageError("kthread_run() needs a running machine")
        t = self._new_task(fn, comm)
        if isinstance(engine, FreeEngine):
            import random as _r
            t.rng = _r.Random(engine._seed_rng.random())
            with engine.cv:
                t.state = 2
                engine.ready.append(t)
        else:
            t.state = 2
            t.ready_at = CURRENT.task.cpu.clock if CURRENT.task else 0
            engine.ready.append(t)
        engine.add_task(t)
        return t

    def add_daemon(self, comm: str, fn: Callable[[], Any], cpus: Iterable[int] | None = None) -> None:
        """A kernel thread started with every run (kswapd): it ends when the run's tasks end."""
        self._daemons.append((comm, fn, frozenset(cpus) if cpus is not None else None))

    @property
    def trace(self) -> Trace:
        """The decision log of the last run; ``Machine(..., replay=m.trace)`` repeats it."""
        if self._last_trace is None:
            raise KmemUsageError("no run yet: call Machine.run() first")
        return self._last_trace

    def _trace_of(self, engine: _EngineBase) -> Trace:
        comms = {t.pid: t.comm for t in engine.tasks}
        name = self.policy_name
        seed = self.seed if self._runs == 0 else (self.seed * 1_000_003 + self._runs)
        return Trace(name, seed, list(engine.decisions), comms)

    @property
    def steps(self) -> int:
        """Scheduling steps of the last run (deterministic policies)."""
        return self._engine.steps if self._engine is not None else 0

    @property
    def now(self) -> int:
        """Virtual time of the last run, in ns."""
        return self._engine.now if self._engine is not None else 0

    # -- reports and printk -----------------------------------------------------
    def printk(self, line: str, level: str = "INFO") -> None:
        """Append to the dmesg buffer and log through loguru (disabled unless enabled)."""
        engine = self._engine
        now = engine.now if engine is not None else 0
        for ln in line.splitlines() or [""]:
            self.dmesg.append(f"[{now // 1_000_000_000:5d}.{(now // 1000) % 1_000_000:06d}] {ln}")
            _log.log(level, ln)

    def report(self, kind: str, lines: list[str], *, site: str = "", fatal: bool = False,
               stack: bool = True, extra: dict[str, Any] | None = None) -> Report:
        """Record a kernel-style diagnostic and act on it as ``on_bug`` says.

        Repeats of the same (kind, site) are folded into one report with a count,
        as a rate limit would. ``fatal``: the task cannot go on (an Oops is raised
        whatever on_bug says).
        """
        t = CURRENT.task
        cpu = t.cpu if t else None
        key = (kind, site)
        if site and key in self._report_sites:
            rep = self._report_sites[key]
            rep.count += 1
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
                         step=engine.steps if engine else 0, site=site, extra=extra or {})
            self.reports.append(rep)
            if site:
                self._report_sites[key] = rep
            self.printk(rep.text, "ERROR")
        if self.on_bug == "panic" and t:
            self.panic(lines[0] if lines else kind, rep)
        if fatal:
            raise Oops(rep)
        if self.on_bug == "raise" and t:
            raise KernelBug(rep)
        return rep

    def panic(self, message: str, rep: Report | None = None) -> None:
        """panic(): print the kernel's line and stop the run."""
        if self.panicked is None:
            self.panicked = message
            self.printk(f"Kernel panic - not syncing: {message}", "CRITICAL")
        engine = self._engine
        if engine is not None:
            engine.request_abort(CURRENT.task or None)  # type: ignore[attr-defined]
        from .errors import TaskAbort
        raise TaskAbort()

    def _report_deadlock(self, waits: list[str]) -> None:
        lines = ["INFO: task hung: every task is blocked and nothing can wake one (deadlock)"]
        lines += [f"  {w}" for w in waits]
        frames: tuple[Any, ...] = ()
        rep = Report(kind="deadlock", text="\n".join(lines), cpu=-1, task="-", pid=0,
                     preempt_count=0, irqs_disabled=False, stack=frames,
                     step=self._engine.steps if self._engine else 0, extra={"waits": waits})
        self.reports.append(rep)
        self.printk(rep.text, "ERROR")
        self._deadlock_report = rep
        if self.on_bug == "panic" and self.panicked is None:
            self.panicked = "deadlock"
            self.printk("Kernel panic - not syncing: deadlock", "CRITICAL")

    def reports_of(self, kind: str) -> list[Report]:
        """The reports of one kind."""
        return [r for r in self.reports if r.kind == kind]

    # -- interrupts -----------------------------------------------------------------
    def request_irq(self, irq: int, handler: Callable[[int, Any], Any], name: str = "",
                    dev_id: Any = None, *, rate: float = 0.0) -> None:
        """Register ``handler(irq, dev_id)`` for ``irq``.

        ``rate`` > 0 lets the policy raise it at random: at each scheduling
        decision where interrupts are enabled it fires with that probability.
        """
        if not isinstance(irq, int) or irq < 0:
            raise KmemUsageError(f"irq(={irq!r}) must be a non-negative int")
        if not callable(handler):
            raise KmemUsageError(f"handler for IRQ {irq} is not callable: {handler!r}")
        if irq in self._irq_actions:
            raise KmemUsageError(f"IRQ {irq} already has a handler ({self._irq_actions[irq].name})")
        if not 0.0 <= rate <= 1.0:
            raise KmemUsageError(f"rate(={rate}) must be within [0, 1]")
        self._irq_actions[irq] = IrqAction(irq, handler, name or getattr(handler, "__name__", "irq"), dev_id, rate)
        self._refresh_irq_sources()

    def free_irq(self, irq: int) -> None:
        if irq not in self._irq_actions:
            raise KmemUsageError(f"free_irq({irq}): no handler registered")
        del self._irq_actions[irq]
        self._refresh_irq_sources()

    def _refresh_irq_sources(self) -> None:
        self._irq_sources = [(a.irq, a.rate) for a in sorted(self._irq_actions.values(), key=lambda a: a.irq) if a.rate > 0]

    def raise_irq(self, irq: int, cpu: int) -> None:
        """Mark ``irq`` pending on CPU ``cpu``; it runs there when interrupts allow."""
        if not 0 <= cpu < self.nr_cpus:
            raise KmemUsageError(f"cpu(={cpu}) must be within [0, {self.nr_cpus})")
        if irq not in self._irq_actions:
            raise KmemUsageError(f"raise_irq({irq}): no handler registered")
        c = self.cpus[cpu]
        c.pending_irqs.append(irq)
        t = CURRENT.task
        if t and t.cpu is c:
            if not c.irqs_off and not (c.preempt_count & 0xF0000):
                self._deliver_pending(c)
            return
        engine = self._engine
        if c.curr is None and engine is not None and not engine.deterministic:
            self._idle_task(c)
            engine.wake_idle(c.idle)  # type: ignore[attr-defined]
        elif c.curr is not None:
            c.curr.budget = 0

    def _deliver_pending(self, c: CPU) -> None:
        while c.pending_irqs and not c.irqs_off:
            irq = c.pending_irqs.pop(0)
            self._do_irq(c, irq)

    def _do_irq(self, c: CPU, irq: int) -> None:
        """do_IRQ: run the handler on ``c`` in hardirq context, then softirqs on exit."""
        action = self._irq_actions.get(irq)
        c.nr_irqs += 1
        saved_irqs = c.irqs_off
        c.preempt_count += HARDIRQ_OFFSET
        c.irqs_off = True
        try:
            if action is None:
                self.printk(f"do_IRQ: {c.id}.{irq} No irq handler for vector", "WARNING")
            else:
                action.count[c.id] = action.count.get(c.id, 0) + 1
                action.handler(irq, action.dev_id)
        finally:
            c.preempt_count -= HARDIRQ_OFFSET
            c.irqs_off = saved_irqs
        if c.softirq_pending and not (c.preempt_count & 0x00FFFF00):
            self.do_softirq(c)

    def open_softirq(self, nr: int, action: Callable[[], Any]) -> None:
        if not 0 <= nr < NR_SOFTIRQS:
            raise KmemUsageError(f"softirq nr(={nr}) must be within [0, {NR_SOFTIRQS})")
        self._softirq_vec[nr] = action

    def do_softirq(self, c: CPU) -> None:
        """Run the raised softirqs of ``c`` with SOFTIRQ_OFFSET held and irqs on."""
        for _ in range(10):  # MAX_SOFTIRQ_RESTART
            pending = c.softirq_pending
            if not pending:
                return
            c.softirq_pending = 0
            c.preempt_count += SOFTIRQ_OFFSET
            saved = c.irqs_off
            c.irqs_off = False
            try:
                for nr in range(NR_SOFTIRQS):
                    if pending & (1 << nr):
                        fn = self._softirq_vec[nr]
                        if fn is not None:
                            fn()
            finally:
                c.irqs_off = saved
                c.preempt_count -= SOFTIRQ_OFFSET

    def _idle_task(self, c: CPU) -> Task:
        """The CPU's idle task (swapper/N), created when an interrupt first needs it."""
        if c.idle is not None and c.idle.state != TASK_DONE:
            return c.idle
        engine = self._engine
        assert engine is not None
        holder: list[Task] = []

        def idle_loop() -> None:
            me = holder[0]
            while True:
                self._deliver_pending(c)
                engine.idle_wait(me)  # type: ignore[attr-defined]

        t = Task(self, 0, f"swapper/{c.id}", idle_loop, is_idle=True)
        t.cpus_allowed = frozenset([c.id])
        t.state = 3  # sleeping until picked
        holder.append(t)
        c.idle = t
        if not engine.deterministic:
            t.rng = random.Random(c.id)
        engine.add_task(t)
        return t

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
                t.state != TASK_DONE for t in self._engine.tasks if not t.is_idle and not t.daemon):
            raise KmemUsageError("check() walks a quiet machine: call it between runs")
        for c in self.cpus:
            if c.curr is not None or c.preempt_count or c.irqs_off:
                raise KmemInternalError(f"CPU#{c.id} not quiet after the run: {c!r}")
        for name, fn in self._checkers.items():
            fn()

    def statistics(self) -> dict[str, Any]:
        """Counters of the runtime: switches, preemptions, interrupts per CPU."""
        return {
            "steps": self.steps,
            "cpus": [{"cpu": c.id, "switches": c.nr_switches, "preemptions": c.nr_preemptions,
                      "irqs": c.nr_irqs, "clock": c.clock} for c in self.cpus],
        }


def _comm_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None)
    if name is None and hasattr(fn, "func"):
        name = getattr(fn.func, "__name__", None)
    return name or "kthread"


def wall_clock() -> float:
    return time.perf_counter()
