"""The event log: what each CPU did, step by step, in kernel terms (``Machine(events=True)``).

The trace (runtime/trace.py) holds only the scheduler's decisions: enough to replay a
run, not to read it. The event log adds, per scheduling step, the CPU, the task, the
kernel event and the line of simulated code that caused it:

- ``lock``/``unlock``: spin_lock* / spin_unlock* / spin_trylock, mutex_lock/unlock (with
  the lock's name);
- ``alloc``/``free``: kmalloc/kfree, kmem_cache_alloc/free, page allocations and frees,
  vmalloc/vfree, mempool_alloc/free, with size, cache or order and the address;
- ``irq``: an interrupt delivered (number, handler), ``softirq``: a softirq action run;
- ``sleep``: a task blocks (on what), ``wake``: who woke whom;
- ``printk``: a printk() of simulated code, ``report``: a kernel report (its first line);
- ``sched``: the trace's decisions (switch, preemption, interrupt, CPU pick-up, clock
  advance), merged in their place when the log is shown.

Kept: the source line is the first frame outside the package, as reports name their
site (runtime/report.py's ``user_site``; model code running on its own, such as kswapd,
is named by its first frame outside the runtime). Each event carries a context field in
ftrace's latency style: ``d`` interrupts off, ``h``/``s`` hardirq/softirq, the preempt depth.

Cost: with events off ``Machine.events`` is None and each hooked primitive pays one
``is None`` test; with them on the run is the same (recording schedules nothing, charges
nothing, allocates nothing in simulated memory): same trace, same reports.

Simplified: under the free-running policy steps are 0 and there are no decisions to merge;
the boot phase is not logged; the log holds the last run only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from .errors import KmemUsageError
from .preempt import HARDIRQ_MASK, SOFTIRQ_OFFSET
from .report import Report, user_site
from .task import Task, current_task
from .trace import Decision, describe

if TYPE_CHECKING:
    from .engine import Engine
    from .machine import SmpMachine

#: The kinds of event, as ``kind=`` filters take them.
EVENT_KINDS: Final = ("lock", "unlock", "alloc", "free", "irq", "softirq", "sleep", "wake", "printk",
                      "report", "sched")


class Event(NamedTuple):
    """One event of a run."""

    step: int  #: the scheduling step (``engine.current_step``; 0 under policy "free")
    cpu: int  #: the CPU it happened on (-1: unknown)
    pid: int
    task: str  #: "comm/pid"
    kind: str  #: one of EVENT_KINDS
    what: str  #: the kernel event, e.g. "spin_lock(dev_lock)", "kmalloc(64, GFP_KERNEL) = 0xc1000040"
    site: str  #: "file:line" of the simulated code ("" for decisions)
    ctx: str = "..."  #: irqs-off ``d``, ``h``/``s`` hardirq/softirq, preempt depth (ftrace style)
    ref: Any = None  #: the Report of a ``report`` event, the lock of a ``lock``/``unlock``, the Decision of a ``sched``

    def line(self) -> str:
        cpu = f"CPU{self.cpu}" if self.cpu >= 0 else "CPU-"
        return f"{self.step:6d}  {cpu:<5} {self.task:<16} {self.ctx:<3}  {self.what:<40} {self.site}".rstrip()


def _ctx(c: Any) -> str:
    if c is None:
        return "..."
    pc = c.preempt_count
    depth = pc & 0xFF
    return ("d" if c.irqs_off else ".") + ("h" if pc & HARDIRQ_MASK else "s" if pc & SOFTIRQ_OFFSET else ".") + (
        format(min(depth, 15), "x") if depth else ".")


class EventLog:
    """The events of a machine's last run (``m.events``); ``str()`` shows them with the
    trace's decisions merged in their place, one line each."""

    def __init__(self, machine: SmpMachine) -> None:
        self.m = machine
        #: (event, number of trace decisions recorded before it)
        self._rows: list[tuple[Event, int]] = []
        self._engine: Engine | None = None

    def begin(self, engine: Engine) -> None:
        """A run starts: forget the last run's events."""
        self._rows = []
        self._engine = engine

    # -- recording (called by the hooked primitives, only while events are on) --------
    def record(self, t: Any, kind: str, what: str, ref: Any = None) -> None:
        """Record ``what`` for task ``t`` (``current``) on its CPU now, at the simulated
        code's line. Pure: nothing of the run changes."""
        if not t:
            return
        engine = t.engine
        c = t.cpu
        file, line, _ = user_site(2)
        step = engine.current_step(t) if engine is not None else 0
        ndec = len(engine.log) if engine is not None else 0
        self._rows.append((Event(step, c.id if c is not None else -1, t.pid, t.name, kind, what,
                                 f"{file}:{line}", _ctx(c), ref), ndec))

    def wake(self, waker: Any, woken: Task, how: str) -> None:
        """``waker`` made ``woken`` runnable through ``how`` (wake_up(wq), mutex_unlock(m), ...)."""
        self.record(waker, "wake", f"{how} wakes {woken.name}")

    def report(self, rep: Report) -> None:
        """A report was made (or repeated): its title (the first line that is not a rule of
        '=' or '-', as KASAN's and SLUB's reports open), linked to it."""
        t = current_task()
        lines = rep.text.split("\n")
        first = next((ln for ln in lines if ln.strip("=- ")), lines[0])
        if rep.count > 1:
            first += f" (repeat {rep.count})"
        if t:
            self.record(t, "report", first, rep)
        else:  # the run's end (a deadlock found by the engine) or outside any task
            ndec = len(self._engine.log) if self._engine is not None else 0
            self._rows.append((Event(rep.step, -1, 0, "-", "report", first, "", "...", rep), ndec))

    # -- the view --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.merged())

    def __str__(self) -> str:
        return str(self.filter())

    def __repr__(self) -> str:
        n = len(self._engine.log) if self._engine is not None else 0
        return f"<EventLog {len(self._rows)} events, {n} decisions>"

    def merged(self) -> list[Event]:
        """The events with the trace's decisions (kind ``sched``) merged in their place."""
        out: list[Event] = []
        decisions = self._engine.decisions if self._engine is not None else []
        comms = {u.pid: u.comm for u in self._engine.tasks} if self._engine is not None else {}
        where: dict[int, int] = {}  # pid -> last CPU seen
        di = 0
        for ev, ndec in self._rows:
            while di < ndec and di < len(decisions):
                out.append(_decision_event(decisions[di], comms, where))
                di += 1
            if ev.cpu >= 0:
                where[ev.pid] = ev.cpu
            out.append(ev)
        while di < len(decisions):
            out.append(_decision_event(decisions[di], comms, where))
            di += 1
        return out

    def filter(self, *, task: Any = None, cpu: int | None = None, kind: str | Iterable[str] | None = None,
               match: str | None = None, model: bool = True, last: int | None = None,
               before: Report | int | None = None) -> EventView:
        """The events of one task (a Task, "comm/pid", a comm or a pid), one CPU, one kind
        or several (EVENT_KINDS), whose text contains ``match`` (a lock's name, an address),
        without the model's own locks (``model=False``: zone->lock, the caches' locks, ...),
        up to a report (the events leading to it, the report's own line last; an int: up to
        that step), the last ``last`` of them."""
        if model is not True and model is not False:
            raise KmemUsageError(f"event_log: model(={model!r}) must be True or False")
        kinds = _kinds_arg(kind)
        if match is not None and (not isinstance(match, str) or not match):
            raise KmemUsageError(f"event_log: match(={match!r}) must be a non-empty string")
        if cpu is not None and (cpu.__class__ is not int or not 0 <= cpu < self.m.nr_cpus):
            raise KmemUsageError(f"event_log: cpu(={cpu!r}) must be a CPU number from 0 to {self.m.nr_cpus - 1}")
        if last is not None and (last.__class__ is not int or last < 1):
            raise KmemUsageError(f"event_log: last(={last!r}) must be an int >= 1 (how many events to show)")
        if before is not None and not isinstance(before, Report) and (before.__class__ is not int or before < 0):
            raise KmemUsageError(f"event_log: before(={before!r}) must be a Report (m.reports[i]) or a step (int)")
        of_task = _task_matcher(task)
        rows = self.merged()
        if before is not None:
            rows = _up_to(rows, before)
        out = [ev for ev in rows
               if (kinds is None or ev.kind in kinds) and (cpu is None or ev.cpu == cpu)
               and (match is None or match in ev.what) and (of_task is None or of_task(ev))
               and (model or ev.kind not in ("lock", "unlock") or not getattr(ev.ref, "internal", False))]
        if last is not None:
            out = out[-last:]
        return EventView(out)


class EventView:
    """A filtered list of events; ``str()`` gives one line per event."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __getitem__(self, i: int) -> Event:
        return self.events[i]

    def lines(self) -> list[str]:
        return [ev.line() for ev in self.events]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The events as JSON-ready dicts (step, cpu, pid, task, kind, what, site, ctx)."""
        return [{k: v for k, v in ev._asdict().items() if k != "ref"} for ev in self.events]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<EventView {len(self.events)} events>"


def _describe_decision(d: Decision, comms: dict[int, str]) -> str:
    def name(pid: int) -> str:
        return f"{comms.get(pid, '?')}/{pid}"
    return f"-> {describe(d, name)} (at {d.event})"


def _decision_event(d: Decision, comms: dict[int, str], where: dict[int, int]) -> Event:
    return Event(d.step, where.get(d.pid, -1), d.pid, f"{comms.get(d.pid, '?')}/{d.pid}", "sched",
                 _describe_decision(d, comms), "", "...", d)


def _kinds_arg(kind: Any) -> frozenset[str] | None:
    if kind is None:
        return None
    kinds = [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, Iterable) else [kind]
    for k in kinds:
        if not isinstance(k, str) or k not in EVENT_KINDS:
            raise KmemUsageError(f"event_log: kind(={kind!r}) must be one or more of {', '.join(EVENT_KINDS)}")
    return frozenset(kinds)


def _task_matcher(task: Any) -> Any:
    """A predicate on events for ``task=``: the task's own events, and decisions naming it."""
    if task is None:
        return None
    if isinstance(task, Task):
        pid: int | None = task.pid
        name: str | None = None
    elif task.__class__ is int and task >= 0:
        pid, name = task, None
    elif isinstance(task, str) and task:
        _comm, sep, p = task.rpartition("/")
        if sep and p.isdigit():
            pid, name = int(p), None
        else:
            pid, name = None, task
    else:
        raise KmemUsageError(f"event_log: task(={task!r}) must be a task (current()), 'comm/pid', a comm or a pid")

    def match(ev: Event) -> bool:
        if pid is not None:
            if ev.pid == pid:
                return True
            d = ev.ref
            return ev.kind == "sched" and d.action in "SD" and d.arg == pid
        return ev.task.rpartition("/")[0] == name
    return match


def _up_to(rows: list[Event], before: Report | int) -> list[Event]:
    """The rows up to the report ``before`` (its first event, included), or up to a step."""
    if isinstance(before, Report):
        for i, ev in enumerate(rows):
            if ev.kind == "report" and ev.ref is before:
                return rows[: i + 1]
        step = before.step
    else:
        step = before
    return [ev for ev in rows if ev.step <= step]


__all__ = ["EVENT_KINDS", "Event", "EventLog", "EventView"]
