"""Scheduling policies: who runs next, and when a preemption or interrupt happens.

A policy only decides; the engine applies. At a decision the engine hands the
policy an :class:`Options` holding exactly the legal choices at that point
(preemption only where preempt_count == 0 and irqs are on, an interrupt only
where irqs are on), so every policy explores only schedules a kernel could run.

- :class:`RandomPolicy` ("random"): a seeded random walk.
- :class:`PCTPolicy` ("pct"): probabilistic concurrency testing (Burckhardt et
  al., ASPLOS 2010) with a depth ``d``; steps are counted only where more than
  one choice is legal.
- :class:`VirtualTimePolicy` ("virtual"): the CPU with the smallest virtual clock
  runs next; contention emerges from the cycles each primitive charges; a
  scheduler tick every 1/HZ of virtual time preempts when tasks wait for a CPU.
- :class:`ReplayPolicy`: follows a recorded trace, says where a replay diverges
  and carries on randomly from there.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Final

from loguru import logger

from .errors import KmemUsageError
from .preempt import NSEC_PER_JIFFY
from .trace import Decision, Trace

if TYPE_CHECKING:
    from .engine import BatonEngine
    from .task import CPU, Task

_log = logger.bind(subsystem="sched")

CONTINUE: Final = ("C",)


class Options:
    """The legal choices at one decision, in a deterministic order."""

    __slots__ = ("running", "ready", "idle_cpus", "idle_irq_cpus", "can_preempt", "irqs")

    def __init__(self, running: list[Task], ready: list[Task], idle_cpus: list[CPU],
                 idle_irq_cpus: list[CPU], can_preempt: bool, irqs: list[tuple[int, float]]) -> None:
        self.running = running
        if not idle_cpus:
            ready = []
        elif ready and any(r.cpus_allowed is not None for r in ready):
            # a task bound to busy CPUs waits for one of them (kthread_bind, set_cpus_allowed)
            ready = [r for r in ready if _fits(r, idle_cpus)]
        self.ready = ready
        self.idle_cpus = idle_cpus
        self.idle_irq_cpus = idle_irq_cpus
        self.can_preempt = can_preempt
        self.irqs = irqs

    def runnable_count(self) -> int:
        return len(self.running) + len(self.ready) + len(self.idle_irq_cpus)

    def cpus_for(self, t: Task) -> list[CPU]:
        allowed = t.cpus_allowed
        if allowed is None:
            return self.idle_cpus
        return [c for c in self.idle_cpus if c.id in allowed]


def _fits(t: Task, idle_cpus: list[CPU]) -> bool:
    """May ready ``t`` run on one of the idle CPUs?"""
    allowed = t.cpus_allowed
    return allowed is None or any(c.id in allowed for c in idle_cpus)


def _check_int(policy: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise KmemUsageError(f"policy {policy!r}: {name}(={value!r}) must be an int >= {low}")
    return value


def _check_prob(policy: str, name: str, value: Any, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= high:
        raise KmemUsageError(f"policy {policy!r}: {name}(={value!r}) must be a number within [0, {high}]")
    return float(value)


class Policy:
    """Interface of a scheduling policy."""

    name = "policy"
    #: Deciding at every point (PCT) rather than after a drawn number of points.
    every_point = False
    #: Scheduling points cost ``costs.POINT`` cycles of virtual time (the virtual policy).
    charges_points = False
    #: A lock released with spinners waiting ends the holder's budget (the virtual policy:
    #: a waiter earlier on the virtual clock must get the lock before the holder goes on).
    reopens_on_release = False

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def start(self, engine: BatonEngine) -> None:
        """Called once before the first task runs."""

    def budget(self, engine: BatonEngine, t: Task) -> int:
        """Scheduling points ``t`` may pass before the next decision (>= 1)."""
        return 1

    def quiet_budget(self, engine: BatonEngine, t: Task) -> int:
        """Budget after a decision with nothing to choose (no randomness spent)."""
        return self.budget(engine, t)

    def choose(self, engine: BatonEngine, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        """Pick an action: ("C",) continue, ("S", task), ("D", task, cpu), ("P",),
        ("I", irq, times) or ("V", cpu). ``forced``: ``t`` cannot go on (it sleeps, spins or ended)."""
        raise NotImplementedError

    def vlimit(self, engine: BatonEngine, t: Task) -> int:
        """Virtual-clock value past which ``t`` must let the policy decide."""
        return 1 << 62

    def on_relax(self, engine: BatonEngine, t: Task) -> None:
        """``t`` turned once more in a busy-wait loop (cpu_relax())."""

    # Shared helpers -----------------------------------------------------
    def _irq(self, engine: BatonEngine, opts: Options) -> tuple[Any, ...] | None:
        """Deliver injectable interrupts here? A source of rate ``r`` fires with probability
        ``r`` at each scheduling point (with interrupts enabled) that passed since the last
        decision; the fires are delivered now, one after the other, so the count per run is
        the same under every policy whatever its decisions' spacing."""
        k = engine.points_run if engine.points_run > 0 else 1
        rng = self.rng
        for irq, rate in opts.irqs:
            n = 0
            for _ in range(k):
                if rng.random() < rate:
                    n += 1
            if n:
                return ("I", irq, n)
        return None

    def _pick_uniform(self, t: Task, opts: Options, forced: bool) -> tuple[Any, ...]:
        rng = self.rng
        n_run = len(opts.running)
        n_ready = len(opts.ready)
        total = n_run + n_ready + len(opts.idle_irq_cpus)
        # rng.randrange(total), inline (see RandomPolicy.budget)
        getrandbits = rng.getrandbits
        k = total.bit_length()
        i = getrandbits(k)
        while i >= total:
            i = getrandbits(k)
        if i < n_run:
            u = opts.running[i]
            return CONTINUE if (u is t and not forced) else ("S", u)
        i -= n_run
        if i < n_ready:
            r = opts.ready[i]
            cpus = opts.cpus_for(r)
            return ("D", r, cpus[rng.randrange(len(cpus))])
        return ("V", opts.idle_irq_cpus[i - n_ready])


class RandomPolicy(Policy):
    """A seeded random walk over the legal choices.

    After each decision the running task gets a random number of points (mean
    ``mean_run``) before the next one. At a decision: preempt with probability
    ``preempt_prob`` where legal, fire each injectable IRQ with its rate where
    legal, else pick uniformly among the runnable tasks (itself included).
    """

    name = "random"

    def __init__(self, seed: int, mean_run: int = 4, preempt_prob: float = 0.2) -> None:
        super().__init__(seed)
        _check_int("random", "mean_run", mean_run, 1)
        self.span = max(1, 2 * mean_run - 1)
        self.span_bits = self.span.bit_length()
        self.preempt_prob = _check_prob("random", "preempt_prob", preempt_prob)

    def budget(self, engine: BatonEngine, t: Task) -> int:
        # rng.randrange(span) + 1, drawn as randrange draws it (the same stream), without
        # its two Python-level calls: this runs at every decision
        n = self.span
        getrandbits = self.rng.getrandbits
        k = self.span_bits
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return r + 1

    def quiet_budget(self, engine: BatonEngine, t: Task) -> int:
        return self.span

    def choose(self, engine: BatonEngine, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        rng = self.rng
        if not forced:
            if opts.can_preempt and rng.random() < self.preempt_prob:
                return ("P",)
            if opts.irqs:
                act = self._irq(engine, opts)
                if act is not None:
                    return act
        running = opts.running
        n = len(running)
        if n and not opts.ready and not opts.idle_irq_cpus:
            # _pick_uniform among running tasks only (the same draw), without its call
            getrandbits = rng.getrandbits
            k = n.bit_length()
            i = getrandbits(k)
            while i >= n:
                i = getrandbits(k)
            u = running[i]
            return CONTINUE if (u is t and not forced) else ("S", u)
        return self._pick_uniform(t, opts, forced)


class PCTPolicy(Policy):
    """Probabilistic Concurrency Testing with bug depth ``depth``.

    Every task gets a distinct random priority; the highest-priority runnable
    task runs. ``depth - 1`` change points are drawn in ``[1, steps]``; at each,
    the running task drops below every other. One run finds a bug of depth d with
    probability at least 1/(n * k^(d-1)) for n tasks and k steps, so ``steps``
    should be at least the number of contended steps of the scenario.
    """

    name = "pct"
    every_point = True

    def __init__(self, seed: int, depth: int = 2, steps: int = 200) -> None:
        super().__init__(seed)
        _check_int("pct", "depth", depth, 1)
        _check_int("pct", "steps", steps, 1)
        self.depth = depth
        self.steps = steps
        self.change_points = sorted(self.rng.sample(range(1, steps + 1), min(depth - 1, steps)))
        self.pct_step = 0
        self.low = 0.0  # priorities handed out at change points go below every initial one

    def _prio(self, t: Task) -> float:
        if t.prio == 0.0:
            t.prio = 1.0 + self.rng.random()  # initial priorities in (1, 2)
        return t.prio

    def choose(self, engine: BatonEngine, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        if opts.runnable_count() + (0 if forced or t in opts.running else 1) > 1:
            self.pct_step += 1
            if self.change_points and self.pct_step == self.change_points[0]:
                self.change_points.pop(0)
                self.low -= 1.0
                t.prio = self.low
        if opts.irqs and not forced:
            act = self._irq(engine, opts)
            if act is not None:
                return act
        best: tuple[Any, ...] | None = None
        best_prio = float("-inf")
        for u in opts.running:
            p = self._prio(u)
            if p > best_prio:
                best, best_prio = (("C",) if (u is t and not forced) else ("S", u)), p
        for r in opts.ready:
            p = self._prio(r)
            if p > best_prio:
                cpus = opts.cpus_for(r)
                best, best_prio = ("D", r, cpus[0]), p
        if (opts.can_preempt and engine.ready and not opts.idle_cpus and best is not None
                and (best is CONTINUE or best[0] == "S")):
            # a task waiting for a CPU outranks the task that would run next: ``t`` (no higher
            # than that one) gives up its CPU. Checked for a switch too, not only when ``t``
            # would go on: busy-waiters that drop below every other (on_relax) only ever
            # switch to each other, and would starve a waiting task for ever
            top = max(engine.ready, key=self._prio)
            if self._prio(top) > (self._prio(t) if best is CONTINUE else best_prio):
                return ("P",)
        if best is None:
            return ("V", opts.idle_irq_cpus[0])
        if opts.idle_irq_cpus:
            # an idle CPU with an interrupt to take runs ahead of a busy-waiter (a task that
            # dropped below every other in on_relax()): it may be what the waiter polls for
            u = t if best[0] == "C" else best[1]
            if u.relax_streak:
                return ("V", opts.idle_irq_cpus[0])
        return best

    def on_relax(self, engine: BatonEngine, t: Task) -> None:
        """A busy-waiting task drops below every other, as the PCT paper treats a yield:
        otherwise a high-priority spinner would starve the task it waits for."""
        self.low -= 1.0
        t.prio = self.low


class VirtualTimePolicy(Policy):
    """Smallest virtual clock runs next; ties are broken by the seed.

    Primitives charge cycles to the running CPU (runtime/costs.py); once its clock
    passes the smallest clock of any other runnable CPU, the next point hands over.
    Every scheduling point costs ``costs.POINT``, so code that only passes points still
    advances its clock. Lock contention, spinning and cache-line transfers then show as
    elapsed virtual time, which is what the scalability study measures.

    Each CPU has a scheduler tick every ``tick`` ns (1/HZ) of virtual time; the seed
    sets its phase and a jitter of up to ``jitter`` of a period. A tick sets
    need_resched: at the next point where preempt_count == 0 and interrupts are on, a
    task that waits for a CPU gets this one (round robin). Interrupt sources fire with
    their rate per scheduling point, as under every policy.
    """

    name = "virtual"
    charges_points = True
    reopens_on_release = True
    #: Points between two decisions when no clock limit stops the task earlier.
    BUDGET: Final = 64
    #: The same while interrupt sources are registered: they fire at decisions (for the
    #: points passed since the last), so a short run must still reach some
    IRQ_BUDGET: Final = 4

    def __init__(self, seed: int, quantum: int = 0, tick: int = NSEC_PER_JIFFY, jitter: float = 0.1) -> None:
        super().__init__(seed)
        self.quantum = _check_int("virtual", "quantum", quantum, 0)
        self.tick = _check_int("virtual", "tick", tick, 1)
        self.jitter = _check_prob("virtual", "jitter", jitter, 0.5)
        self.need_resched: set[int] = set()

    def start(self, engine: BatonEngine) -> None:
        for c in engine.cpus:
            c.next_tick = c.clock + self.rng.randrange(self.tick)

    def _next_tick(self, c: CPU) -> None:
        span = int(self.tick * self.jitter)
        while c.next_tick <= c.clock:
            c.next_tick += self.tick + (self.rng.randint(-span, span) if span else 0)

    def budget(self, engine: BatonEngine, t: Task) -> int:
        return self.IRQ_BUDGET if engine.m.irq.sources else self.BUDGET

    def vlimit(self, engine: BatonEngine, t: Task) -> int:
        lim = 1 << 62
        ready = engine.ready
        first_ready = -1  # the earliest ready_at of a ready task, once needed
        for c in engine.cpus:
            u = c.curr
            if u is None:
                if ready:
                    if first_ready < 0:
                        first_ready = min(r.ready_at for r in ready)
                    at = c.clock if c.clock > first_ready else first_ready
                    if at < lim:
                        lim = at
            elif u is not t and (u.spinning is None or not u.spinning.locked()):
                if c.clock < lim:
                    lim = c.clock
        c = t.cpu
        if engine.ready and c is not None and c.next_tick < lim:
            lim = c.next_tick
        return lim + self.quantum

    def choose(self, engine: BatonEngine, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        if not forced:
            c = t.cpu
            if c is not None and c.clock >= c.next_tick:
                self._next_tick(c)
                self.need_resched.add(c.id)
            if opts.can_preempt and c is not None and c.id in self.need_resched and engine.ready \
                    and not opts.idle_cpus:
                self.need_resched.discard(c.id)
                return ("P",)
            if opts.irqs:
                act = self._irq(engine, opts)
                if act is not None:
                    return act
        rnd = self.rng.random
        best: tuple[Any, ...] | None = None
        best_key: tuple[int, float] = (1 << 62, 2.0)
        for u in opts.running:
            key = (u.cpu.clock if u.cpu else 0, rnd())
            if key < best_key:
                best, best_key = ((("C",) if (u is t and not forced) else ("S", u)), key)
        for r in opts.ready:
            for c in opts.cpus_for(r):
                key = (max(c.clock, r.ready_at), rnd())
                if key < best_key:
                    best, best_key = ("D", r, c), key
        for c in opts.idle_irq_cpus:
            key = (c.clock, rnd())
            if key < best_key:
                best, best_key = ("V", c), key
        assert best is not None
        return best


#: The events a decision taken before a spinlock is recorded with (runtime/locks.py _acquire).
_PRELOCK_EVENTS: Final = frozenset({"spin_lock", "spin_lock_irq", "spin_lock_irqsave", "spin_lock_bh"})


class ReplayPolicy(Policy):
    """Follows a recorded trace exactly; on divergence, says where and goes on randomly."""

    def __init__(self, trace: Trace, fallback: Policy) -> None:
        super().__init__(trace.seed)
        self.name = trace.policy
        self.charges_points = fallback.charges_points
        # "T" (the clock advanced to a timer) is the engine's own entry, not a choice: the
        # replay advances the clock where the run did and records it again
        self.decisions = [d for d in trace.decisions if d.action != "T"]
        self.pos = 0
        self.fallback = fallback
        self.diverged: str | None = None

    def _next(self) -> Decision | None:
        return self.decisions[self.pos] if self.pos < len(self.decisions) else None

    def start(self, engine: BatonEngine) -> None:
        self.fallback.start(engine)
        engine.due_before_lock = self.due_before_lock

    def due_before_lock(self, t: Task, event: str) -> bool:
        """Did the recorded run decide right here, before taking a spinlock?

        A policy whose clock limit ended a budget (a charge, not a point) decides at the
        next spinlock before trying it, at the step of the last point passed. The replay
        cannot grant a budget that ends there (budgets end at points), so it asks here:
        the next recorded decision is at this very step, for this task and this lock event.
        """
        d = self._next()
        if self.diverged is not None or d is None or d.pid != t.pid or d.event != event:
            return False
        engine = t.engine
        return d.step == engine.steps + engine.granted - t.budget

    def budget(self, engine: BatonEngine, t: Task) -> int:
        if self.diverged is not None:
            return self.fallback.budget(engine, t)
        d = self._next()
        if d is None:
            return 1 << 30
        return max(1, d.step - engine.steps)

    def vlimit(self, engine: BatonEngine, t: Task) -> int:
        return self.fallback.vlimit(engine, t) if self.diverged is not None else 1 << 62

    def _diverge(self, engine: BatonEngine, why: str) -> None:
        self.diverged = f"replay diverged at step {engine.steps}: {why}; continuing with {self.fallback.name}"
        _log.warning(self.diverged)

    def choose(self, engine: BatonEngine, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        if self.diverged is not None:
            return self.fallback.choose(engine, t, event, opts, forced)
        d = self._next()
        if d is None or d.step > engine.steps:
            if forced:  # the recorded run did not block here
                self._diverge(engine, f"expected {d.token() if d else 'end of trace'}, got "
                              f"{t.pid}:{event} (forced)")
                return self.fallback.choose(engine, t, event, opts, forced)
            return CONTINUE  # the recorded run went on here too
        if d.step < engine.steps:
            self._diverge(engine, f"expected {d.token()}, but the run is at step {engine.steps}")
            return self.fallback.choose(engine, t, event, opts, forced)
        if d.pid == t.pid and d.event != event and not forced and d.event in _PRELOCK_EVENTS:
            # recorded just before a spinlock that comes after this point (see
            # due_before_lock): go on one point; the lock's check takes it
            return CONTINUE
        if d.pid != t.pid or d.event != event:
            self._diverge(engine, f"expected {d.token()}, got {engine.steps}:{t.pid}:{event}")
            return self.fallback.choose(engine, t, event, opts, forced)
        self.pos += 1
        act = self._resolve(engine, t, d, opts, forced)
        if act is None:
            self._diverge(engine, f"{d.token()} is not a legal choice here")
            return self.fallback.choose(engine, t, event, opts, forced)
        return act

    @staticmethod
    def _resolve(engine: BatonEngine, t: Task, d: Decision, opts: Options, forced: bool) -> tuple[Any, ...] | None:
        a = d.action
        if a == "P":
            return ("P",) if opts.can_preempt and not forced else None
        if a == "I":
            return ("I", d.arg, d.arg2 or 1) if not forced and any(irq == d.arg for irq, _ in opts.irqs) else None
        if a == "S":
            for u in opts.running:
                if u.pid == d.arg:
                    return ("S", u)
            return None
        if a == "D":
            for r in opts.ready:
                if r.pid == d.arg:
                    for c in opts.idle_cpus:
                        if c.id == d.arg2:
                            return ("D", r, c)
            return None
        if a == "V":
            for c in opts.idle_irq_cpus:
                if c.id == d.arg:
                    return ("V", c)
            return None
        return None


POLICIES: Final = ("free", "random", "pct", "virtual")


def make_policy(name: str, seed: int, **kw: Any) -> Policy:
    """Build a deterministic policy by name; bad names and options are usage errors."""
    cls = {"random": RandomPolicy, "pct": PCTPolicy, "virtual": VirtualTimePolicy}.get(name)
    if cls is None:
        raise KmemUsageError(f"unknown policy {name!r}: choose one of {', '.join(POLICIES)}")
    try:
        return cls(seed, **kw)
    except TypeError:
        import inspect
        known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "seed")]
        raise KmemUsageError(f"policy {name!r} takes the options {', '.join(known)}; got "
                             f"{', '.join(sorted(kw))}") from None


__all__ = ["CONTINUE", "Options", "Policy", "RandomPolicy", "PCTPolicy", "VirtualTimePolicy", "ReplayPolicy",
           "POLICIES", "make_policy"]
