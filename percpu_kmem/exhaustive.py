"""Bounded exhaustive search: every schedule of a small scenario with at most k preemptions.

    from percpu_kmem.exhaustive import explore_exhaustive
    res = explore_exhaustive(scenario, cpus=2, preemptions=2)
    assert res.complete and not res.failures, res

Stateless model checking as CHESS does it (Musuvathi and Qadeer, PLDI 2007): each
schedule is a real run of the scenario on a fresh machine. A run replays a prefix of
decisions, then follows the default continuation (the running task goes on; where it
cannot, the first runnable task in pid order), and records at each scheduling
decision the legal choices (the Options the engine offers). Every choice not taken is
a new prefix to run later. A *preemption* is a choice that switches away from a task
that could go on (another CPU's task steps instead, a kernel preemption, an injected
interrupt); choices where the task sleeps, spins or ended are free. Prefixes are run
in order of their preemptions, 0 first (iterative context bounding), up to
``preemptions``; ``complete`` says that every one within the bound was run.

Partial-order reduction (``reduction=True``): sleep sets (Godefroid, 1996) with a
footprint-based independence. Hooks where events happen (spinlocks in
runtime/locks.py, wake-ups in the engine, simulated-memory accesses in mm/access.py,
which atomics and per-CPU data go through; see runtime/footprint.py) record what each
step touched: lock classes, 64-byte lines of simulated memory (read or written),
woken tasks. Two steps of different tasks are independent when neither writes what
the other touches. After a task's step x was explored from a decision, a sibling
choice y's subtree does not run x's same step first again until a step dependent on
it ran: that order is the same schedule up to the order of independent steps.

Kept sound, and how:

- A step is *opaque* (dependent with everything) unless every scheduling point it
  started at, passed or ended at is one of the tracked primitives (spin_lock*,
  preempt_enable, local_irq_enable, mem_read/mem_write, atomic_*, cmpxchg, xchg,
  READ_ONCE/WRITE_ONCE, this_cpu_*, the start and the end of a task). Steps inside
  the allocators, waits, mutexes, an explicit ``preempt_point()`` (the way tests mark
  an access to a shared Python object) are opaque, so Python state they touch is
  never assumed independent. Kernel preemptions, CPU pick-ups, idle CPUs serving
  interrupts, injected interrupts, and any step during which an interrupt handler ran
  are opaque too.
- Sleep sets and a preemption bound do not mix naively (Musuvathi and Qadeer,
  MSR-TR-2007-12): the schedule a sleeping step stands for may need more preemptions
  than the one it prunes. A step x explored first goes to sibling y's sleep set only
  when cost(x) + cost(switching from x to y) <= cost(y); then the schedule explored
  instead never has more preemptions than the one pruned (the usual case: x is the
  task going on and y a switch to another task).

Simplified: sleep sets only (no DPOR backtracking), and only the default choice of a
decision is put to sleep for its siblings (the footprints of the other siblings are
not known when their prefixes are made). A scenario whose tasks share Python objects
between tracked points without a ``preempt_point()`` at the access is outside what the
reduction can see: run it with ``reduction=False``. Where tasks start is not a
decision: with fewer CPUs than tasks, the first ones passed start first (a preemption
at a task's first point lets another go first), so a bug needing another start order
may need one more preemption. A task that gets a CPU gets its last one if it is idle,
else the lowest-numbered idle one it may use (a wake-up prefers the previous CPU);
moving it to another idle CPU is not explored. A daemon (kswapd) waiting for a CPU gets
one when one frees: no task is preempted for it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final

from .machine import Machine
from .runtime import footprint as _fp
from .runtime.engine import BatonEngine
from .runtime.errors import KmemUsageError
from .runtime.policies import CONTINUE, Options, Policy
from .runtime.task import Task
from .runtime.trace import Trace
from .testing import UnexpectedReport, _annotate, _expect_kinds, _raise_unexpected, _unexpected

#: A choice at a decision, in pid terms (stable across runs): ("C",) the running task goes
#: on, ("S", pid), ("D", pid, cpu), ("P",), ("V", cpu), ("I", irq).
Choice = tuple[Any, ...]
#: What a step touched: (kind, key) -> written; None for an opaque step.
Footprint = dict[tuple[str, Any], bool] | None

#: Events of the scheduling points whose steps the footprint hooks see completely.
TRACKED_EVENTS: Final = frozenset({"start", "exit", "spin_lock", "spin_lock_irq", "spin_lock_irqsave",
                                   "spin_lock_bh", "preempt_enable", "local_irq_enable", "mem_read",
                                   "mem_write", "cmpxchg", "xchg", "READ_ONCE", "WRITE_ONCE"})
_TRACKED_PREFIXES: Final = ("atomic_", "this_cpu_", "__this_cpu_")
#: Schedules run at most, by default.
MAX_SCHEDULES: Final = 10_000


def tracked(event: str) -> bool:
    """Is a step that starts, passes or ends at a point of this event fully seen by the hooks?"""
    return event in TRACKED_EVENTS or event.startswith(_TRACKED_PREFIXES)


def independent(a: Footprint, b: Footprint) -> bool:
    """Two steps commute: both seen completely, and neither writes what the other touches."""
    if a is None or b is None:
        return False
    if len(a) > len(b):
        a, b = b, a
    for k, w in a.items():
        w2 = b.get(k)
        if w2 is not None and (w or w2):
            return False
    return True


def _choices(t: Task, opts: Options, forced: bool, waiting: bool) -> list[tuple[Choice, tuple[Any, ...]]]:
    """The legal choices at a decision, the default first, then in pid/CPU order."""
    out: list[tuple[Choice, tuple[Any, ...]]] = []
    if not forced:
        out.append((("C",), CONTINUE))
    for u in sorted(opts.running, key=lambda u: u.pid):
        if u is t and not forced:
            continue
        out.append((("S", u.pid), ("S", u)))
    for r in sorted(opts.ready, key=lambda r: r.pid):
        cpus = opts.cpus_for(r) or opts.idle_cpus
        c = next((c for c in cpus if c.id == r.last_cpu), cpus[0])  # its last CPU if idle, as a wake-up prefers
        out.append((("D", r.pid, c.id), ("D", r, c)))
    for c in opts.idle_irq_cpus:
        out.append((("V", c.id), ("V", c)))
    if not forced:
        if opts.can_preempt and waiting and not opts.idle_cpus:  # for a task (not a daemon) waiting for a CPU
            out.append((("P",), ("P",)))
        for irq, _ in opts.irqs:
            out.append((("I", irq), ("I", irq, 1)))
    return out


def _cost(choice: Choice, forced: bool) -> int:
    return 0 if forced or choice[0] == "C" else 1


@dataclass
class _Node:
    """One decision of a run's free part (after its prefix)."""

    index: int
    forced: bool
    cost: int  # preemptions before this decision
    pid: int  # the task deciding
    sleep: dict[int, Footprint]  # the sleep set here: pid -> footprint of its next step
    taken: Choice
    alternatives: list[Choice]
    step: Footprint = None  # footprint of the step the taken choice ran (None: opaque/unknown)
    after_enabled: bool = True  # that step's task could go on after it


@dataclass(order=True)
class _Item:
    cost: int
    seq: int
    prefix: list[Choice] = field(compare=False)
    sleep: dict[int, Footprint] = field(compare=False)


class ExhaustivePolicy(Policy):
    """Replays a prefix of choices, then the default continuation, recording every decision.

    Decides at every scheduling point. Not a user policy (``Machine(policy=...)`` does not
    take it): :func:`explore_exhaustive` gives it to the machines it makes.
    """

    name = "exhaustive"
    every_point = True

    def __init__(self, prefix: list[Choice], sleep: dict[int, Footprint], bound: int, reduction: bool) -> None:
        super().__init__(0)
        self.prefix = prefix
        self.sleep = dict(sleep) if reduction else {}
        self.bound = bound
        self.reduction = reduction
        self.nodes: list[_Node] = []
        self.schedule: list[Choice] = []
        self.cost = 0
        self.covered = False  # the rest of this run is explored elsewhere
        self.diverged: str | None = None
        self._fp: dict[tuple[str, Any], bool] = {}
        self._opaque = True  # the pending step (none yet)
        self._runner = -1
        self._last_event: dict[int, str] = {}
        self._irqs = -1  # interrupts handled on every CPU, at the last decision

    # -- the engine's side -------------------------------------------------------
    def start(self, engine: Any) -> None:
        engine.footprint = self._touch
        decide = engine.decide

        def deciding(t: Task, event: str) -> None:
            if not tracked(event):
                self._opaque = True
            decide(t, event)

        engine.decide = deciding
        self._opaque = True  # a step left over from an earlier run of the machine
        self._runner = -1

    def _touch(self, kind: str, key: Any, write: bool) -> None:
        k = (kind, key)
        if write or k not in self._fp:
            self._fp[k] = write

    def budget(self, engine: Any, t: Task) -> int:
        return 1

    def _close_step(self, engine: Any, t: Task, event: str) -> Footprint:
        irqs = 0
        for c in engine.cpus:
            irqs += c.nr_irqs
        handled, self._irqs = irqs != self._irqs, irqs  # a handler ran in the step: it is opaque
        if self._opaque or handled or self._runner != t.pid or not tracked(event):
            return None
        fp = self._fp
        fp.setdefault(("task", t.pid), False)
        return fp

    def choose(self, engine: Any, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        i = len(self.schedule)
        step = self._close_step(engine, t, event)
        if self.nodes and self.nodes[-1].index == i - 1:
            node = self.nodes[-1]
            node.step = step
            node.after_enabled = not forced or self._runner != t.pid
        if self.sleep and i >= len(self.prefix):
            self.sleep = {p: f for p, f in self.sleep.items() if independent(f, step)}
        self._last_event[t.pid] = event
        choices = _choices(t, opts, forced, any(not r.daemon for r in engine.ready))
        if i < len(self.prefix):
            want = self.prefix[i]
            pick = next((c for c in choices if c[0] == want), None)
            if pick is None:
                self.diverged = (f"decision {i}: {want} is not a legal choice at {t.name}:{event} "
                                 f"(the scenario is not deterministic)")
                self.covered = True
                pick = choices[0]
        else:
            sleeping = self.sleep
            explorable = [c for c in choices
                          if not (c[0][0] in "CS" and self._pid_of(c[0], t) in sleeping)
                          and self.cost + _cost(c[0], forced) <= self.bound]
            if self.covered or not explorable:
                self.covered = True
                pick = choices[0]
            else:
                pick = explorable[0]
                self.nodes.append(_Node(i, forced, self.cost, t.pid, dict(sleeping), pick[0],
                                        [c[0] for c in explorable[1:]]))
        key, action = pick
        self.cost += _cost(key, forced)
        self.schedule.append(key)
        self._fp = {}
        if key[0] in "CS":
            self._runner = self._pid_of(key, t)
            self._opaque = not tracked(self._last_event.get(self._runner, "start"))
        else:
            self._runner = -1
            self._opaque = True
        return action

    @staticmethod
    def _pid_of(choice: Choice, t: Task) -> int:
        return t.pid if choice[0] == "C" else int(choice[1])


def schedule_text(schedule: list[Choice]) -> str:
    """A schedule in short form: ``index:choice`` for every decision that did not go on
    (``4:S2 9:D3@0 12:P``); ``replay_schedule`` takes it back."""
    out = []
    for i, c in enumerate(schedule):
        kind = c[0]
        if kind == "C":
            continue
        if kind == "D":
            out.append(f"{i}:D{c[1]}@{c[2]}")
        elif kind == "P":
            out.append(f"{i}:P")
        else:
            out.append(f"{i}:{kind}{c[1]}")
    return " ".join(out)


def parse_schedule(text: str) -> list[Choice]:
    """The choices of ``schedule_text`` (decisions it does not name go on)."""
    if not isinstance(text, str):
        raise KmemUsageError(f"replay_schedule: schedule(={text!r}) must be a schedule's text or its choices")
    marks: dict[int, Choice] = {}
    for tok in text.split():
        try:
            i_s, body = tok.split(":", 1)
            i = int(i_s)
            kind = body[0]
            if kind == "D":
                a, b = body[1:].split("@")
                marks[i] = ("D", int(a), int(b))
            elif kind == "P" and body == "P":
                marks[i] = ("P",)
            elif kind in "SVI" and len(body) > 1:
                marks[i] = (kind, int(body[1:]))
            else:
                raise ValueError(tok)
        except (ValueError, IndexError):
            raise KmemUsageError(f"replay_schedule: bad schedule token {tok!r} (expected index:choice, "
                                 f"e.g. 4:S2, 9:D3@0, 12:P)") from None
    n = max(marks) + 1 if marks else 0
    return [marks.get(i, ("C",)) for i in range(n)]


@dataclass
class ExhaustiveFailure:
    """A schedule on which the scenario failed."""

    schedule: list[Choice]  #: its choices (``replay_schedule`` runs it again)
    preemptions: int
    kind: str  #: the report kind, or the exception's type name
    error: BaseException
    hint: str  #: how to repeat the run (``replay_schedule``; with daemons, ``Machine(replay=...)`` too)
    trace: Trace | None = None  #: the last run's decision log
    #: the scenario ran its machine once, so ``trace`` replays the whole failure
    #: (``Machine(replay=trace)``, ``percpu-kmem replay --trace``); a scenario that runs its
    #: machine several times repeats its failure only through ``replay_schedule``
    single_run: bool = True

    @property
    def schedule_text(self) -> str:
        return schedule_text(self.schedule)

    def __str__(self) -> str:
        return f"{self.kind} with {self.preemptions} preemption(s): {self.error}\n{self.hint}"


@dataclass
class ExhaustiveResult:
    """What :func:`explore_exhaustive` did."""

    schedules: int  #: runs made
    complete: bool  #: every schedule within the bound was run (or is equivalent to one that was)
    preemptions: int  #: the bound
    reduction: bool
    failures: list[ExhaustiveFailure]
    by_preemptions: dict[int, int]  #: schedules run per number of preemptions
    elapsed: float  #: wall seconds
    pruned: int  #: runs that ended inside a sleep set (their rest was explored elsewhere)

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result for JSON: numbers, the bound, and each failure's kind, preemptions and replay."""
        return {"mode": "exhaustive", "schedules": self.schedules, "complete": self.complete,
                "preemptions": self.preemptions, "reduction": self.reduction,
                "by_preemptions": {str(k): v for k, v in sorted(self.by_preemptions.items())},
                "elapsed": round(self.elapsed, 3), "schedules_per_second": round(self.schedules_per_second, 1),
                "pruned": self.pruned,
                "failures": [{"kind": f.kind, "preemptions": f.preemptions, "replay": f.hint}
                             for f in self.failures]}

    def __str__(self) -> str:
        state = "complete" if self.complete else "NOT complete"
        per = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_preemptions.items()))
        lines = [f"exhaustive search, at most {self.preemptions} preemption(s), reduction "
                 f"{'on' if self.reduction else 'off'}: {self.schedules} schedules ({per}) in "
                 f"{self.elapsed:.2f} s ({self.schedules_per_second:.0f}/s), {state}; "
                 f"{len(self.failures)} failing"]
        for f in self.failures[:3]:
            lines.append(str(f))
        return "\n".join(lines)


def _check_args(scenario: Any, cpus: Any, preemptions: Any, max_schedules: Any) -> None:
    if not callable(scenario):
        raise KmemUsageError(f"explore_exhaustive() takes a scenario callable, got {scenario!r}")
    for name, value, low in (("cpus", cpus, 1), ("preemptions", preemptions, 0), ("max_schedules", max_schedules, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise KmemUsageError(f"explore_exhaustive: {name}(={value!r}) must be an int >= {low}")


def _machine(policy: ExhaustivePolicy, cpus: int, machine_kw: dict[str, Any], daemons: bool) -> Machine:
    m = Machine(cpus=cpus, policy="random", seed=0, **machine_kw)
    if not daemons:
        m._daemons.clear()  # kswapd does not start with the runs
    # every run of this machine is decided by ``policy`` (its trace still replays with the
    # machine's own arguments: the replay follows the recorded decisions)
    setattr(m, "_new_engine", lambda: BatonEngine(m, policy))  # noqa: B010
    return m


def _run_one(scenario: Callable[[Machine], Any], m: Machine, check: bool, expected: frozenset[str],
             hint: Callable[[], str]) -> BaseException | None:
    _fp.active += 1
    try:
        scenario(m)
        if check:
            m.check()
        if _single_run(m):
            _raise_unexpected(m, expected, "exhaustive", 0, "explore_exhaustive")
        else:
            # the machine's own hint would offer Machine(seed=0) for the whole scenario, but the
            # search, not the seed, decided its runs: the schedule (``hint``) is what repeats them
            unexpected = _unexpected(m, expected)
            if unexpected:
                raise UnexpectedReport(unexpected, policy="exhaustive", seed=0, expect=expected, replay=hint(),
                                       where="explore_exhaustive")
    except Exception as e:
        if _single_run(m):
            _annotate(e, m, "exhaustive", 0, expected, "explore_exhaustive")
        elif not isinstance(e, UnexpectedReport):
            e.add_note(hint())
        return e
    finally:
        _fp.active -= 1
    return None


def _hint(m: Machine, schedule: list[Choice], cpus: int, daemons: bool, machine_kw: dict[str, Any]) -> str:
    args = "".join(f", {k}={v!r}" if v is None or isinstance(v, (bool, int, float, str)) else f", {k}=..."
                   for k, v in machine_kw.items())  # functions (init=) are passed again as they were
    if not daemons:
        args += ", daemons=False"
    how = (f"explore_exhaustive: replay with percpu_kmem.exhaustive.replay_schedule(scenario, "
           f"{schedule_text(schedule)!r}, cpus={cpus}{args})")
    if daemons and _single_run(m):
        # the machine's own hint replays its last run by trace: the whole failure only when
        # the scenario ran the machine once (its runs were decided by the search, not by
        # the machine's seed, so the hint's "every run of it" advice would not hold)
        how += "\n" + m.replay_hint()
    return how


def _single_run(m: Machine) -> bool:
    """Did the scenario run its machine once (its last trace is its first run's)?"""
    tr = m.last_trace
    return tr is not None and tr.seed == m.seed  # run k > 1 of a machine has a seed of its own


def _failure_kind(m: Machine, e: BaseException, expected: frozenset[str]) -> str:
    rep = getattr(e, "report", None)
    if rep is not None and getattr(rep, "kind", None):
        return str(rep.kind)
    for r in m.reports:
        if r.kind not in expected:
            return r.kind
    return type(e).__name__


def explore_exhaustive(scenario: Callable[[Machine], Any], *, cpus: int = 2, preemptions: int = 2,
                       max_schedules: int = MAX_SCHEDULES, reduction: bool = True, check: bool = True,
                       expect: str | Collection[str] = (), stop_on_failure: bool = True,
                       daemons: bool = True, **machine_kw: Any) -> ExhaustiveResult:
    """Run ``scenario(machine)`` under every schedule with at most ``preemptions`` preemptions.

    Each run gets a fresh ``Machine(cpus=cpus, **machine_kw)``; the verdict of a run is
    explore()'s: the scenario raised, ``m.check()`` failed (``check=True``), or a report
    of a kind not in ``expect`` was recorded. Schedules are run fewest preemptions first;
    the search stops at the first failure (``stop_on_failure``) or after
    ``max_schedules`` runs (then ``complete`` is False). ``reduction=False`` runs every
    schedule, without the partial-order reduction (for comparison, or for scenarios that
    share Python objects between tracked points). ``daemons=False`` keeps kswapd from
    starting with the runs (fewer schedules: a small scenario seldom needs background
    reclaim; but a failure's trace then replays only through ``replay_schedule``).
    A scenario that runs its machine several times is repeated by its failure's schedule
    (``replay_schedule``) only: its last run's trace covers one run, and the machine's seed
    decided none of them, so its failures name no ``Machine(...)`` to replay.
    """
    _check_args(scenario, cpus, preemptions, max_schedules)
    expected = _expect_kinds(expect, "explore_exhaustive")
    for k in ("policy", "seed", "replay"):
        if k in machine_kw:
            raise KmemUsageError(f"explore_exhaustive() chooses every decision itself: it takes no {k}=")
    t0 = time.perf_counter()
    heap: list[_Item] = [_Item(0, 0, [], {})]
    seq = 1
    runs = 0
    pruned = 0
    by_cost: dict[int, int] = {}
    failures: list[ExhaustiveFailure] = []
    complete = True
    while heap:
        if runs >= max_schedules:
            complete = False
            break
        item = heapq.heappop(heap)
        policy = ExhaustivePolicy(item.prefix, item.sleep, preemptions, reduction)
        m = _machine(policy, cpus, machine_kw, daemons)
        err = _run_one(scenario, m, check, expected,
                       lambda: _hint(m, policy.schedule, cpus, daemons, machine_kw))  # noqa: B023 - called at once
        runs += 1
        by_cost[policy.cost] = by_cost.get(policy.cost, 0) + 1
        if policy.diverged is not None:
            raise KmemUsageError(f"explore_exhaustive: {policy.diverged}: a scenario must do the same "
                                 f"under the same schedule (no wall clock, no randomness of its own, no "
                                 f"state kept between runs)")
        pruned += policy.covered
        if err is not None:
            failures.append(ExhaustiveFailure(list(policy.schedule), policy.cost,
                                              _failure_kind(m, err, expected), err,
                                              _hint(m, policy.schedule, cpus, daemons, machine_kw),
                                              m.last_trace, _single_run(m)))
            if stop_on_failure:
                complete = False
                break
        for node in policy.nodes:
            for y in node.alternatives:
                sleep = dict(node.sleep)
                x = node.taken
                if (reduction and x[0] in "CS" and node.step is not None
                        and _cost(x, node.forced) + int(node.after_enabled) <= _cost(y, node.forced)):
                    sleep[node.pid if x[0] == "C" else int(x[1])] = node.step
                heapq.heappush(heap, _Item(node.cost + _cost(y, node.forced), seq,
                                           [*policy.schedule[:node.index], y], sleep))
                seq += 1
    return ExhaustiveResult(schedules=runs, complete=complete and not failures, preemptions=preemptions,
                            reduction=reduction, failures=failures, by_preemptions=by_cost,
                            elapsed=time.perf_counter() - t0, pruned=pruned)


def replay_schedule(scenario: Callable[[Machine], Any], schedule: list[Choice] | str, *, cpus: int = 2,
                    daemons: bool = True, **machine_kw: Any) -> Machine:
    """Run ``scenario`` once on the schedule of a failure (``ExhaustiveFailure.schedule`` or its
    text); returns the machine (its reports, its trace). The scenario's exception propagates.
    Every run of the scenario follows it (a multi-run scenario replays whole)."""
    choices = parse_schedule(schedule) if isinstance(schedule, str) else list(schedule)
    policy = ExhaustivePolicy(choices, {}, 1 << 30, False)
    m = _machine(policy, cpus, machine_kw, daemons)
    _fp.active += 1
    try:
        scenario(m)
    finally:
        _fp.active -= 1
    return m


__all__ = ["Choice", "Footprint", "TRACKED_EVENTS", "MAX_SCHEDULES", "tracked", "independent", "ExhaustivePolicy",
           "ExhaustiveFailure", "ExhaustiveResult", "explore_exhaustive", "replay_schedule", "schedule_text",
           "parse_schedule"]
