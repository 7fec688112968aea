"""lib/locking-selftest.c (2.6.18 and later), translated: every testcase the model can
express, with the verdict the kernel's ``dotest(..., FAILURE/SUCCESS, ...)`` expects
(FAILURE: lockdep reports and turns itself off; SUCCESS: it stays silent) and the report
the kernel prints first, in its words.

The kernel stops validating after its first report (``debug_locks_off()``); the model
goes on and may report more (docs/lockdep.md), so a FAILURE case checks the *first*
report, and a SUCCESS case checks that there is no report of any kind.

Columns: ``spin`` (spinlock_t), ``mutex``, and (at the end) ``wlock``/``rlock``
(rwlock_t) and ``wsem``/``rsem`` (rw_semaphore) with the recursive read-lock, mixed
read/write, irq_inversion and irq_read_recursion cases, as the 2.6.x selftest expects
them (lockdep's 2.6.x read rules; the 5.x read/write ABBA and irq_read_recursion2/3 cases
are not here, docs/lockdep.md says why). Not expressible: rt_mutex and ww_mutex; ``init_held`` (``spin_lock_init()``/``mutex_init()`` return a new lock, there
is no re-initialisation of a held one); ``spin_lock_nested()`` subclasses.

Each single-task case runs on a fresh ``Machine(lockdep=True)`` under the random, pct,
free and virtual policies with three seeds, on two CPUs (the task may migrate), and its
verdict must not depend on the run. The interrupt of HARDIRQ_ENTER() is raised on the
task's own CPU with interrupts on, so its handler runs at once; SOFTIRQ_ENTER() is a
raised softirq whose action, as the selftest's, runs with interrupts off. The cases of
several tasks (each pair of a cycle, each event of an irq case, in its own task) depend
on the interleaving: any order must give the same verdict.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import (
    GFP_KERNEL,
    GFP_NOFS,
    down_read,
    down_write,
    downgrade_write,
    fs_reclaim_acquire,
    fs_reclaim_release,
    init_rwsem,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    memalloc_nofs_restore,
    memalloc_nofs_save,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    open_softirq,
    raise_irq,
    raise_softirq,
    read_lock,
    read_lock_bh,
    read_lock_irqsave,
    read_unlock,
    read_unlock_bh,
    read_unlock_irqrestore,
    request_irq,
    rwlock_init,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irqrestore,
    up_read,
    up_write,
    write_lock,
    write_lock_bh,
    write_lock_irqsave,
    write_unlock,
    write_unlock_bh,
    write_unlock_irqrestore,
)

pytestmark = pytest.mark.timeout(60)

SEEDS = range(3)
RUNS = [(policy, seed) for policy in ("random", "pct", "free", "virtual") for seed in SEEDS]
CONCURRENT_POLICIES = ("random", "pct", "free")
IRQ = 7
SOFTIRQ = 5


# -- the selftest's lock types (locking-selftest-spin.h, -mutex.h) -------------------------------
class Spin:
    name = "spin"
    wait = "{2:2}"
    init = staticmethod(spin_lock_init)
    lock = staticmethod(spin_lock)
    unlock = staticmethod(spin_unlock)
    lock_irqsave = staticmethod(spin_lock_irqsave)
    unlock_irqrestore = staticmethod(spin_unlock_irqrestore)
    lock_bh = staticmethod(spin_lock_bh)
    unlock_bh = staticmethod(spin_unlock_bh)


class Mutex:
    name = "mutex"
    wait = "{3:3}"
    init = staticmethod(mutex_init)
    lock = staticmethod(mutex_lock)
    unlock = staticmethod(mutex_unlock)


LOCKTYPES = (Spin, Mutex)


def _init_class(lt: Any, name: str) -> Any:
    """INIT_CLASS_FUNC(): one initialisation site, so every lock it makes under one name is
    of one class (X1 and X2 are two instances of class X)."""
    return lt.init(name)


def _locks(lt: Any) -> dict[str, Any]:
    """The selftest's locks of one type: A..D (four classes), X1/X2, Y1/Y2 (two classes)."""
    prefix = getattr(lt, "prefix", "lock" if lt is Spin else "mutex")
    k = {c: lt.init(f"{prefix}_{c}") for c in "ABCD"}
    for c in "XY":
        k[f"{c}1"] = _init_class(lt, f"{prefix}_{c}")
        k[f"{c}2"] = _init_class(lt, f"{prefix}_{c}")
    return k


def _verdict(m: Machine) -> list[tuple[Any, ...]]:
    """Every report of the run, as what must not depend on the schedule: kind, title and
    the classes involved."""
    return [(r.kind, r.lines[1] if len(r.lines) > 1 else r.lines[0],
             tuple(sorted((key, str(v)) for key, v in r.extra.items()))) for r in m.reports]


def _run_everywhere(make: Callable[[], Callable[[], Any]]) -> tuple[Machine, list[tuple[Any, ...]]]:
    """Run the task ``make()`` returns (made afresh, with new locks, for every run) on a
    fresh two-CPU lockdep machine for every policy and seed; the verdicts must all agree.
    Returns the last machine and the verdict."""
    verdicts = []
    m = None
    for policy, seed in RUNS:
        m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
        m.run(make())
        verdicts.append(_verdict(m))
    assert m is not None
    assert all(v == verdicts[0] for v in verdicts), verdicts
    return m, verdicts[0]


def _first_lockdep(m: Machine) -> Any:
    reps = [r for r in m.reports if r.kind.startswith("lockdep_")]
    assert reps, [r.kind for r in m.reports]
    return reps[0]


# -- A-A deadlock (DO_TESTCASE_6R: spin and mutex FAILURE) ---------------------------------
def _case_AA(lt: Any) -> Callable[[], None]:
    k = _locks(lt)

    def body() -> None:
        lt.lock(k["X1"])
        lt.lock(k["X2"])  # this one should fail
        lt.unlock(k["X2"])
        lt.unlock(k["X1"])
    return body


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
def test_AA_two_instances_of_one_class_is_recursive_locking(lt: Any) -> None:
    m, verdict = _run_everywhere(lambda: _case_AA(lt))
    rep = _first_lockdep(m)
    prefix = "lock" if lt is Spin else "mutex"
    assert [v[0] for v in verdict] == ["lockdep_recursive"]
    assert rep.lines[1] == "WARNING: possible recursive locking detected"
    assert rep.lines[4].startswith(f"{prefix}_X ({prefix}_X){{+.+.}}-{lt.wait}, at: ")
    assert rep.lines[6:8] == ["but task is already holding lock:", rep.lines[7]]
    assert rep.lines[7].startswith(f"{prefix}_X ({prefix}_X)")
    assert f"  lock({prefix}_X);" in rep.lines and " May be due to missing lock nesting notation" in rep.lines


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
def test_AA_twin_two_classes_nested_is_silent(lt: Any) -> None:
    def make() -> Callable[[], None]:
        k = _locks(lt)

        def body() -> None:
            lt.lock(k["X1"])
            lt.lock(k["Y1"])
            lt.unlock(k["Y1"])
            lt.unlock(k["X1"])
        return body
    _, verdict = _run_everywhere(make)
    assert verdict == []


# -- circular dependencies (DO_TESTCASE_6R: spin and mutex FAILURE) ------------------------
#: name -> (the LOCK_UNLOCK_2 pairs in order, the cycle from the lock being acquired to the
#: one held, the "Chain exists of:" line or None for a cycle of two)
CYCLES = {
    "ABBA": (("AB", "BA"), "AB", None),
    "ABBCCA": (("AB", "BC", "CA"), "ABC", "A --> B --> C"),
    "ABCABC": (("AB", "CA", "BC"), "CAB", "C --> A --> B"),
    "ABBCCDDA": (("AB", "BC", "CD", "DA"), "ABCD", "A --> C --> D"),
    "ABCDBDDA": (("AB", "CD", "BD", "DA"), "ABD", "A --> B --> D"),
    "ABCDBCDA": (("AB", "CD", "BC", "DA"), "ABCD", "A --> C --> D"),
}


def _lock_unlock_2(lt: Any, x: Any, y: Any) -> None:
    lt.lock(x)
    lt.lock(y)
    lt.unlock(y)
    lt.unlock(x)


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
@pytest.mark.parametrize("case", CYCLES)
def test_a_cycle_in_one_task_is_a_circular_dependency(case: str, lt: Any) -> None:
    pairs, chain, chain_line = CYCLES[case]
    prefix = "lock" if lt is Spin else "mutex"

    def make() -> Callable[[], None]:
        k = _locks(lt)

        def body() -> None:
            for x, y in pairs:
                _lock_unlock_2(lt, k[x], k[y])
        return body

    m, verdict = _run_everywhere(make)
    assert [v[0] for v in verdict] == ["lockdep_circular"]
    rep = _first_lockdep(m)
    names = [f"{prefix}_{c}" for c in chain]
    held, acquiring = f"{prefix}_{pairs[-1][0]}", f"{prefix}_{pairs[-1][1]}"
    assert rep.extra == {"chain": names, "held": held, "acquiring": acquiring}
    assert rep.lines[1] == "WARNING: possible circular locking dependency detected"
    assert rep.lines[4].startswith(f"{acquiring} ({acquiring}){{+.+.}}-{lt.wait}, at: ")
    assert rep.lines[7].startswith(f"{held} ({held}){{+.+.}}-{lt.wait}, at: ")
    assert [ln for ln in rep.lines if ln.startswith("-> #")] == [
        f"-> #{i} ({names[i]}){{+.+.}}-{lt.wait}:" for i in range(len(names) - 1, -1, -1)]
    if chain_line is None:
        assert "Chain exists of:" not in rep.lines
    else:
        i = rep.lines.index("Chain exists of:")
        assert rep.lines[i + 1] == "  " + chain_line.replace("A", f"{prefix}_A").replace(
            "B", f"{prefix}_B").replace("C", f"{prefix}_C").replace("D", f"{prefix}_D")
    parent = names[-2]  # the class the held one was reached from (the acquired one in an ABBA)
    s = rep.lines.index(" Possible unsafe locking scenario:")
    assert rep.lines[s + 4:s + 8] == [f"  lock({held});", f"                               lock({parent});",
                                      f"                               lock({held});", f"  lock({acquiring});"]


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
@pytest.mark.parametrize("case", CYCLES)
def test_the_same_pairs_in_one_order_are_silent(case: str, lt: Any) -> None:
    """The fixed twin: every pair taken in the alphabetical order is a DAG."""
    pairs = CYCLES[case][0]

    def make() -> Callable[[], None]:
        k = _locks(lt)

        def body() -> None:
            for pair in pairs:
                _lock_unlock_2(lt, k[min(pair)], k[max(pair)])
        return body

    _, verdict = _run_everywhere(make)
    assert verdict == []


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
@pytest.mark.parametrize("case", ["ABBA", "ABBCCA", "ABCDBCDA"])
def test_a_cycle_whose_pairs_run_in_concurrent_tasks_is_reported_whatever_the_order(case: str, lt: Any) -> None:
    """Each LOCK_UNLOCK_2 in a task of its own, all at once: whichever pair closes the
    cycle, lockdep reports it once, before a real deadlock could hang anything."""
    pairs = CYCLES[case][0]
    prefix = "lock" if lt is Spin else "mutex"
    for policy in CONCURRENT_POLICIES:
        for seed in SEEDS:
            m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
            k = _locks(lt)
            m.run(*[(lambda p=p: _lock_unlock_2(lt, k[p[0]], k[p[1]])) for p in pairs])
            reps = [r for r in m.reports if r.kind.startswith("lockdep_")]
            assert [r.kind for r in reps] == ["lockdep_circular"], (policy, seed, [r.kind for r in m.reports])
            assert sorted(reps[0].extra["chain"]) == sorted({f"{prefix}_{c}" for p in pairs for c in p})
            # a real deadlock of the interleaving may be reported too, never anything else
            assert {r.kind for r in m.reports} <= {"lockdep_circular", "deadlock", "livelock"}, (
                policy, seed, [r.kind for r in m.reports])


# -- double unlock (DO_TESTCASE_6: FAILURE), bad unlock order (2.6.18: SUCCESS) ----------------
def _case_double_unlock(lt: Any) -> Callable[[], None]:
    k = _locks(lt)

    def body() -> None:
        lt.lock(k["A"])
        lt.unlock(k["A"])
        lt.unlock(k["A"])  # fail
    return body


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
def test_double_unlock_is_reported(lt: Any) -> None:
    _, verdict = _run_everywhere(lambda: _case_double_unlock(lt))
    assert verdict  # FAILURE: something is reported (the lock's own debug check today)


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
def test_double_unlock_is_lockdeps_bad_unlock_balance(lt: Any) -> None:
    """lock_release() comes before the lock's own checks: lockdep's report is first."""
    m = Machine(cpus=1, boot=False, lockdep=True)
    m.run(_case_double_unlock(lt))
    rep = _first_lockdep(m)
    assert rep.kind == "lockdep_bad_unlock"
    prefix = "lock" if lt is Spin else "mutex"
    assert rep.lines[:5] == ["=====================================", "WARNING: bad unlock balance detected!",
                             "-------------------------------------",
                             f"body/{rep.pid} is trying to release lock ({prefix}_A) at:", rep.lines[4]]
    assert "but there are no more locks to release!" in rep.lines


@pytest.mark.parametrize("lt", LOCKTYPES, ids=lambda lt: lt.name)
def test_bad_unlock_order_is_silent_and_leaves_the_held_stack_right(lt: Any) -> None:
    """DO_TESTCASE_6_SUCCESS("bad unlock order"): lockdep takes releases in any order
    (CONFIG_DEBUG_NON_NESTED_UNLOCKS is gone). What stays held is still tracked: B, taken
    again after A was released out of order, depends on nothing new, and C under B does."""
    def make() -> Callable[[], None]:
        k = _locks(lt)

        def body() -> None:
            lt.lock(k["A"])
            lt.lock(k["B"])
            lt.unlock(k["A"])  # out of order: no report
            lt.lock(k["C"])  # under B only
            lt.unlock(k["C"])
            lt.unlock(k["B"])
        return body

    m, verdict = _run_everywhere(make)
    assert verdict == []
    prefix = "lock" if lt is Spin else "mutex"
    assert m.lockdep is not None
    assert m.lockdep.dependencies() == [(f"{prefix}_A", f"{prefix}_B"), (f"{prefix}_B", f"{prefix}_C")]


# -- irq contexts: irqsafe1, 2A, 2B, 3, 4 (spin column; FAILURE in every permutation) -------------
class Ctx:
    """HARDIRQ_ENTER/EXIT, SOFTIRQ_ENTER/EXIT and IRQ_DISABLE/ENABLE of one run (the
    locking-selftest-hardirq.h / -softirq.h pairs), and the lock helpers of the events;
    ``fixed``: the fixed twin, which takes a lock irq-safely where the case does not."""

    def __init__(self, irq: str, fixed: bool = False, lt: Any = None) -> None:
        self.irq = irq
        self.fixed = fixed
        self.lt = Spin if lt is None else lt
        self.k = _locks(self.lt)
        self.ran = 0
        self._fn: list[Callable[[], None]] = []

    def _hardirq_handler(self, irq: int, dev: Any) -> None:
        self._fn.pop()()
        self.ran += 1

    def _softirq_action(self) -> None:
        local_irq_disable()  # SOFTIRQ_ENTER(): local_bh_disable(); local_irq_disable(); ...
        self._fn.pop()()
        self.ran += 1
        local_irq_enable()

    def setup(self) -> None:
        """In the task: the handler and the softirq action that run what enter() gives them."""
        request_irq(IRQ, self._hardirq_handler)
        open_softirq(SOFTIRQ, self._softirq_action)

    def setup_on(self, m: Machine) -> None:
        """The same, before a run of several tasks (none may raise before it is done)."""
        m.request_irq(IRQ, self._hardirq_handler)
        m.open_softirq(SOFTIRQ, self._softirq_action)

    def hardirq(self, fn: Callable[[], None]) -> None:
        self._fn.append(fn)
        raise_irq(IRQ)  # interrupts are on: the handler runs now, in hardirq context

    def softirq(self, fn: Callable[[], None]) -> None:
        self._fn.append(fn)
        raise_softirq(SOFTIRQ)  # bottom halves are on: the action runs now

    def enter(self, fn: Callable[[], None]) -> None:
        """IRQ_ENTER(); fn(); IRQ_EXIT()."""
        (self.hardirq if self.irq == "hard" else self.softirq)(fn)

    def disable(self) -> None:
        (local_irq_disable if self.irq == "hard" else local_bh_disable)()

    def enable(self) -> None:
        (local_irq_enable if self.irq == "hard" else local_bh_enable)()

    def lu(self, c: str) -> None:
        """LOCK(c); UNLOCK(c) with the irq on - in the fixed twin with it off."""
        lock = self.k[c]
        lt = self.lt
        if not self.fixed:
            lt.lock(lock)
            lt.unlock(lock)
        elif self.irq == "hard":
            f = lt.lock_irqsave(lock)
            lt.unlock_irqrestore(lock, f)
        else:
            lt.lock_bh(lock)
            lt.unlock_bh(lock)

    def lu_plain(self, c: str) -> None:
        self.L(c)
        self.U(c)

    def L(self, c: str) -> None:  # the selftest's LOCK()
        self.lt.lock(self.k[c])

    def U(self, c: str) -> None:  # the selftest's UNLOCK()
        self.lt.unlock(self.k[c])


def _events(family: str, x: Ctx) -> dict[str, Callable[[], None]]:
    if family == "irqsafe1":  # irqs-on + irq-safe-A
        return {"1": lambda: x.enter(lambda: x.lu_plain("A")), "2": lambda: x.lu("A")}
    if family == "irqsafe2A":  # sirq-safe-A => hirqs-on (softirq and hardirqs whatever x.irq says)
        def e2a() -> None:
            local_irq_disable()
            x.L("A")
            if x.fixed:  # the twin releases A before interrupts come back on
                x.U("A")
                local_irq_enable()
            else:
                local_irq_enable()  # softirqs too come back on with A held
                x.U("A")
        return {"1": lambda: x.softirq(lambda: x.lu_plain("A")), "2": e2a}
    if family == "irqsafe2B":  # safe-A + irqs-on
        def e2b() -> None:
            x.disable()
            x.L("A")
            if x.fixed:
                x.U("A")
                x.enable()
            else:
                x.enable()
                x.U("A")
        return {"1": lambda: x.enter(lambda: x.lu_plain("A")), "2": e2b}
    if family == "irqsafe3":  # safe-A + unsafe-B #1
        def e31() -> None:
            if x.fixed:
                x.disable()
            x.L("A")
            x.L("B")
            x.U("B")
            x.U("A")
            if x.fixed:
                x.enable()
        return {"1": e31, "2": lambda: x.lu("B"), "3": lambda: x.enter(lambda: x.lu_plain("A"))}
    assert family == "irqsafe4"  # safe-A + unsafe-B #2

    def e41() -> None:
        x.disable()
        x.L("A")
        x.L("B")
        x.U("B")
        x.U("A")
        x.enable()
    return {"1": e41, "2": lambda: x.lu("B"), "3": lambda: x.enter(lambda: x.lu_plain("A"))}


def _usage(bits: str, irq: str) -> str:
    """'IN->ON' -> "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage." (or SOFTIRQ)."""
    name = {"IN": f"IN-{irq}-W", "ON": f"{irq}-ON-W"}
    a, b = bits.split("->")
    return f"inconsistent {{{name[a]}}} -> {{{name[b]}}} usage."


#: (family, permutation) -> what the kernel prints first: ("inconsistent", "IN->ON"),
#: ("inversion", forwards?) or ("order", None); worked out from mark_lock_irq() (the
#: class's own bits first, then the graph) and check_irq_usage() at a new edge
EXPECTED: dict[tuple[str, str], tuple[str, Any]] = {
    ("irqsafe1", "12"): ("inconsistent", "IN->ON"), ("irqsafe1", "21"): ("inconsistent", "ON->IN"),
    ("irqsafe2A", "12"): ("inconsistent", "IN->ON"), ("irqsafe2A", "21"): ("inconsistent", "ON->IN"),
    ("irqsafe2B", "12"): ("inconsistent", "IN->ON"), ("irqsafe2B", "21"): ("inconsistent", "ON->IN"),
    ("irqsafe3", "123"): ("inconsistent", "ON->IN"), ("irqsafe3", "132"): ("inconsistent", "ON->IN"),
    ("irqsafe3", "213"): ("inconsistent", "ON->IN"), ("irqsafe3", "231"): ("inconsistent", "IN->ON"),
    ("irqsafe3", "312"): ("inconsistent", "IN->ON"), ("irqsafe3", "321"): ("inconsistent", "IN->ON"),
    ("irqsafe4", "123"): ("inversion", True), ("irqsafe4", "132"): ("inversion", False),
    ("irqsafe4", "213"): ("inversion", True), ("irqsafe4", "231"): ("order", None),
    ("irqsafe4", "312"): ("inversion", False), ("irqsafe4", "321"): ("order", None),
}
IRQ_CASES = [(fam, perm, irq) for (fam, perm) in EXPECTED
             for irq in (("soft",) if fam == "irqsafe2A" else ("hard", "soft"))]


def _irq_body(family: str, perm: str, irq: str, fixed: bool) -> tuple[Ctx, Callable[[], None]]:
    x = Ctx(irq, fixed)

    def body() -> None:
        x.setup()
        events = _events(family, x)
        for e in perm:
            events[e]()
    return x, body


@pytest.mark.parametrize("family, perm, irq", IRQ_CASES)
def test_irq_safety_case_reports_what_the_kernel_reports_first(family: str, perm: str, irq: str) -> None:
    ctxs: list[Ctx] = []

    def make() -> Callable[[], None]:
        x, body = _irq_body(family, perm, irq, False)
        ctxs.append(x)
        return body

    m, verdict = _run_everywhere(make)
    assert all(x.ran == perm.count("3" if family in ("irqsafe3", "irqsafe4") else "1") for x in ctxs)
    rep = _first_lockdep(m)
    IRQ_NAME = "HARDIRQ" if irq == "hard" else "SOFTIRQ"
    what, arg = EXPECTED[(family, perm)]
    if what == "inconsistent":
        assert rep.kind == "lockdep_inconsistent"
        assert rep.lines[1] == "WARNING: inconsistent lock state"
        assert rep.lines[3] == _usage(arg, IRQ_NAME)
        assert rep.lines[5].startswith("lock_A (lock_A){")
        assert rep.extra["class"] == "lock_A"
    elif what == "inversion":
        assert rep.kind == "lockdep_irq_inversion"
        assert rep.lines[1] == "WARNING: possible irq lock inversion dependency detected"
        if arg:  # A just became irq-safe, and it took B before
            assert rep.lines[4].startswith("lock_A (lock_A){")
            assert rep.lines[5] == f"but this lock took another, {IRQ_NAME}-unsafe lock in the past:"
            assert rep.lines[6].startswith(" (lock_B)")
        else:  # B just became irq-unsafe, and A took it before
            assert rep.lines[4].startswith("lock_B (lock_B){")
            assert rep.lines[5] == f"but this lock was taken by another, {IRQ_NAME}-safe lock in the past:"
            assert rep.lines[6].startswith(" (lock_A)")
        assert (rep.extra["safe"], rep.extra["unsafe"], rep.extra["irqclass"]) == ("lock_A", "lock_B", IRQ_NAME)
    else:
        assert rep.kind == "lockdep_irq_order"
        assert rep.lines[1] == f"WARNING: {IRQ_NAME}-safe -> {IRQ_NAME}-unsafe lock order detected"
        assert (rep.extra["safe"], rep.extra["unsafe"]) == ("lock_A", "lock_B")
        assert (rep.extra["held"], rep.extra["acquiring"]) == ("lock_A", "lock_B")
    assert all(v[0].startswith("lockdep_") for v in verdict), verdict


@pytest.mark.parametrize("family, perm, irq", IRQ_CASES)
def test_irq_safety_case_fixed_twin_is_silent(family: str, perm: str, irq: str) -> None:
    _, verdict = _run_everywhere(lambda: _irq_body(family, perm, irq, True)[1])
    assert verdict == []


@pytest.mark.parametrize("family", ["irqsafe3", "irqsafe4"])
@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_irq_safety_events_in_concurrent_tasks_fail_in_every_interleaving(family: str, irq: str) -> None:
    """E1, E2 and E3 in three tasks at once: whichever order the interleaving gives them
    (or a mix), the case is reported, and its fixed twin never is."""
    for fixed in (False, True):
        for policy in CONCURRENT_POLICIES:
            for seed in SEEDS:
                m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
                x = Ctx(irq, fixed)
                x.setup_on(m)

                def ev(e: str, x: Ctx = x) -> Callable[[], None]:
                    return lambda: _events(family, x)[e]()

                m.run(ev("1"), ev("2"), ev("3"))
                kinds = [r.kind for r in m.reports]
                assert x.ran == 1
                if fixed:
                    assert kinds == [], (policy, seed, kinds)
                else:
                    assert kinds and all(kd in ("lockdep_inconsistent", "lockdep_irq_inversion", "lockdep_irq_order")
                                         for kd in kinds), (policy, seed, kinds)


# -- hardirq_unsafe_softirq_safe (5.13+: LOCKTYPE_SPECIAL, FAILURE) ------------------------------
@pytest.mark.parametrize("fixed", [False, True])
def test_hardirq_unsafe_softirq_safe_pairs_the_irq_states_right(fixed: bool) -> None:
    """hardirq_deadlock_softirq_not_deadlock(): mutex_A -> lock_C -> lock_D is
    softirq-unsafe -> softirq-safe (no deadlock), but lock_A -> lock_B -> lock_C -> lock_D
    is hardirq-safe -> hardirq-unsafe: the new edge lock_C -> lock_D is reported, the safe
    and unsafe classes of one irq state paired. The twin takes lock_D with interrupts off."""
    def make() -> Callable[[], None]:
        x = Ctx("hard")
        k = x.k
        mutex_a = mutex_init("mutex_A")

        def nest(a: str, b: str) -> None:
            local_irq_disable()
            spin_lock(k[a])
            spin_lock(k[b])
            spin_unlock(k[b])
            spin_unlock(k[a])
            local_irq_enable()

        def body() -> None:
            x.setup()
            mutex_lock(mutex_a)  # mutex_A: hardirq-unsafe and softirq-unsafe; mutex_A -> lock_C
            local_irq_disable()
            spin_lock(k["C"])
            spin_unlock(k["C"])
            local_irq_enable()
            mutex_unlock(mutex_a)
            x.hardirq(lambda: x.lu_plain("A"))  # lock_A: hardirq-safe
            nest("A", "B")
            nest("B", "C")
            x.softirq(lambda: x.lu_plain("D"))  # lock_D: softirq-safe
            if fixed:
                f = spin_lock_irqsave(k["D"])
                spin_unlock_irqrestore(k["D"], f)
            else:
                local_bh_disable()  # lock_D: hardirq-unsafe
                spin_lock(k["D"])
                spin_unlock(k["D"])
                local_bh_enable()
            nest("C", "D")
        return body

    m, verdict = _run_everywhere(make)
    if fixed:
        assert verdict == []
        return
    assert [v[0] for v in verdict] == ["lockdep_irq_order"]
    rep = _first_lockdep(m)
    assert rep.lines[1] == "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"
    assert rep.extra == {"irqclass": "HARDIRQ", "safe": "lock_A", "unsafe": "lock_D",
                         "held": "lock_C", "acquiring": "lock_D"}
    i = rep.lines.index("Chain exists of:")
    assert rep.lines[i + 1] == "  lock_A --> lock_C --> lock_D"


# -- trylock in irq context (mark_usage(): only a non-trylock use marks "used in irq") ----------
@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_a_trylock_in_an_interrupt_does_not_make_the_lock_irq_safe(irq: str) -> None:
    """A handler that spin_trylock()s a lock process context takes with interrupts on
    cannot deadlock on it (it gives up instead of spinning): the kernel marks no
    IN-HARDIRQ-W for a trylock, so there is no inconsistent lock state. A spin_lock() in
    the handler is the bug."""
    for trylock in (True, False):
        def make(trylock: bool = trylock) -> Callable[[], None]:
            x = Ctx(irq)

            def in_irq() -> None:
                if trylock:
                    if spin_trylock(x.k["A"]):
                        spin_unlock(x.k["A"])
                else:
                    x.lu_plain("A")

            def body() -> None:
                x.setup()
                x.lu_plain("A")  # irqs on: HARDIRQ-ON-W, SOFTIRQ-ON-W
                x.enter(in_irq)
                x.lu_plain("A")
            return body

        m, verdict = _run_everywhere(make)
        if trylock:
            assert verdict == []
            assert m.lockdep is not None
            cls = m.lockdep.class_named("lock_A")
            assert cls is not None and cls.usage_chars() == "+.+."
        else:
            assert [v[0] for v in verdict] == ["lockdep_inconsistent"]


# -- fs_reclaim tests (5.12+: correct nesting, wrong nesting, protected nesting) ----------------
def _might_alloc(gfp: int) -> None:
    """might_alloc(): the allocator's annotation, as kmalloc() and alloc_pages() make it."""
    fs_reclaim_acquire(gfp)
    fs_reclaim_release(gfp)


def test_fs_reclaim_correct_nesting_is_silent() -> None:
    def body() -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        _might_alloc(GFP_NOFS)
        fs_reclaim_release(GFP_KERNEL)
    _, verdict = _run_everywhere(lambda: body)
    assert verdict == []


def test_fs_reclaim_wrong_nesting_is_recursive_locking_of_fs_reclaim() -> None:
    """A __GFP_FS allocation inside reclaim takes fs_reclaim again: the same lockdep map
    twice is check_deadlock()'s report (no spinlock debug check stands in for it)."""
    def body() -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        _might_alloc(GFP_KERNEL)
        fs_reclaim_release(GFP_KERNEL)
    m, verdict = _run_everywhere(lambda: body)
    assert [v[0] for v in verdict] == ["lockdep_recursive"]
    rep = _first_lockdep(m)
    assert rep.lines[1] == "WARNING: possible recursive locking detected"
    assert rep.lines[4].startswith("fs_reclaim (fs_reclaim){+.+.}-{0:0}, at: ")
    assert rep.lines[7].startswith("fs_reclaim (fs_reclaim){+.+.}-{0:0}, at: ")
    assert rep.extra["class"] == "fs_reclaim"
    assert m.lockdep is not None and not any(m.lockdep.held.values())


def test_fs_reclaim_protected_nesting_is_silent() -> None:
    def body() -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        flags = memalloc_nofs_save()
        _might_alloc(GFP_KERNEL)
        memalloc_nofs_restore(flags)
        fs_reclaim_release(GFP_KERNEL)
    _, verdict = _run_everywhere(lambda: body)
    assert verdict == []


def test_every_permutation_is_listed() -> None:
    """The table covers the selftest's GENERATE_PERMUTATIONS_{2,3}_EVENTS of each family."""
    for family, n in (("irqsafe1", 2), ("irqsafe2A", 2), ("irqsafe2B", 2), ("irqsafe3", 3), ("irqsafe4", 3)):
        perms = {"".join(p) for p in itertools.permutations("123"[:n])}
        assert {p for f, p in EXPECTED if f == family} == perms


def test_interrupts_on_mark_every_held_lock_hardirq_on_before_any_softirq_on() -> None:
    """__trace_hardirqs_on_caller(): mark_held_locks(HARDIRQ) over every held lock, then
    mark_held_locks(SOFTIRQ). With a softirq-safe lock_A held outside a hardirq-safe
    lock_B, turning interrupts on finds lock_B's HARDIRQ-ON first: that is the report."""
    def make() -> Callable[[], None]:
        x = Ctx("hard")
        k = x.k

        def body() -> None:
            x.setup()
            x.softirq(lambda: x.lu_plain("A"))  # lock_A: SOFTIRQ-safe
            x.hardirq(lambda: x.lu_plain("B"))  # lock_B: HARDIRQ-safe
            local_irq_disable()
            spin_lock(k["A"])
            spin_lock(k["B"])
            local_irq_enable()  # both become HARDIRQ-ON, then both SOFTIRQ-ON
            local_irq_disable()
            spin_unlock(k["B"])
            spin_unlock(k["A"])
            local_irq_enable()
        return body

    m, verdict = _run_everywhere(make)
    rep = _first_lockdep(m)
    assert rep.kind == "lockdep_inconsistent"
    assert rep.lines[3] == "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage."
    assert rep.extra["class"] == "lock_B"


# -- the rwlock_t and rw_semaphore columns (locking-selftest-wlock.h, -rlock.h, -wsem.h, -rsem.h) --
class WLock:
    name = "wlock"
    prefix = "rwlock"
    wait = "{2:2}"
    chars = "{+.+.}"  # written with interrupts on
    init = staticmethod(rwlock_init)
    lock = staticmethod(write_lock)
    unlock = staticmethod(write_unlock)
    lock_irqsave = staticmethod(write_lock_irqsave)
    unlock_irqrestore = staticmethod(write_unlock_irqrestore)
    lock_bh = staticmethod(write_lock_bh)
    unlock_bh = staticmethod(write_unlock_bh)


class RLock:
    name = "rlock"
    prefix = "rwlock"
    wait = "{2:2}"
    chars = "{.+.+}"  # read with interrupts on: the _READ columns
    init = staticmethod(rwlock_init)
    lock = staticmethod(read_lock)
    unlock = staticmethod(read_unlock)
    lock_irqsave = staticmethod(read_lock_irqsave)
    unlock_irqrestore = staticmethod(read_unlock_irqrestore)
    lock_bh = staticmethod(read_lock_bh)
    unlock_bh = staticmethod(read_unlock_bh)


class WSem:
    name = "wsem"
    prefix = "rwsem"
    wait = "{3:3}"
    chars = "{+.+.}"
    init = staticmethod(init_rwsem)
    lock = staticmethod(down_write)
    unlock = staticmethod(up_write)


class RSem:
    name = "rsem"
    prefix = "rwsem"
    wait = "{3:3}"
    chars = "{.+.+}"
    init = staticmethod(init_rwsem)
    lock = staticmethod(down_read)
    unlock = staticmethod(up_read)


RW_TYPES = (WLock, RLock, WSem, RSem)
#: DO_TESTCASE_6R's verdicts of these columns: FAILURE (True) but for rlock, whose reads
#: are recursive: read_lock() nests in itself, and a cycle of recursive reads is no deadlock
FAILS_6R = {"wlock": True, "rlock": False, "wsem": True, "rsem": True}


@pytest.mark.parametrize("lt", RW_TYPES, ids=lambda lt: lt.name)
def test_AA_rw_columns(lt: Any) -> None:
    """AA_wlock, AA_wsem, AA_rsem: FAILURE ("possible recursive locking"); AA_rlock:
    SUCCESS (read_lock(X1); read_lock(X2) of one class)."""
    m, verdict = _run_everywhere(lambda: _case_AA(lt))
    if not FAILS_6R[lt.name]:
        assert verdict == []
        return
    assert [v[0] for v in verdict] == ["lockdep_recursive"]
    rep = _first_lockdep(m)
    p = lt.prefix
    assert rep.lines[1] == "WARNING: possible recursive locking detected"
    assert rep.lines[4].startswith(f"{p}_X ({p}_X){lt.chars}-{lt.wait}, at: ")
    assert rep.lines[7].startswith(f"{p}_X ({p}_X){lt.chars}-{lt.wait}, at: ")
    assert f"  lock({p}_X);" in rep.lines


#: "recursive read-lock", "recursive read-lock #2", "mixed read-write-lock", "mixed
#: write-read-lock": the ops (R read, W write) on X1/X2, and the kernel's verdict
READ_AA_CASES = {
    "rlock_AA1": ("rwlock", (("R", "X1"), ("R", "X1")), False),
    "rsem_AA1": ("rwsem", (("R", "X1"), ("R", "X1")), True),
    "rlock_AA1B": ("rwlock", (("R", "X1"), ("R", "X2")), False),
    "rsem_AA1B": ("rwsem", (("R", "X1"), ("R", "X2")), True),
    "rlock_AA2": ("rwlock", (("R", "X1"), ("W", "X2")), True),
    "rsem_AA2": ("rwsem", (("R", "X1"), ("W", "X2")), True),
    "rlock_AA3": ("rwlock", (("W", "X1"), ("R", "X2")), True),
    "rsem_AA3": ("rwsem", (("W", "X1"), ("R", "X2")), True),
}


@pytest.mark.parametrize("case", READ_AA_CASES)
def test_recursive_and_mixed_read_locks(case: str) -> None:
    """A second read_lock() of a class held for reading is allowed (recursive read), a
    second down_read() is not (a writer queued between them would deadlock both), and
    a read mixed with a write of one class is reported either way."""
    kind, ops, fails = READ_AA_CASES[case]
    rtype, wtype = (RLock, WLock) if kind == "rwlock" else (RSem, WSem)

    def make() -> Callable[[], None]:
        k = _locks(rtype)

        def body() -> None:
            for op, x in ops:
                (rtype if op == "R" else wtype).lock(k[x])
            for op, x in reversed(ops):
                (rtype if op == "R" else wtype).unlock(k[x])
        return body

    m, verdict = _run_everywhere(make)
    if not fails:
        assert verdict == []
        return
    assert verdict and verdict[0][0] == "lockdep_recursive", verdict
    rep = _first_lockdep(m)
    assert rep.lines[1] == "WARNING: possible recursive locking detected"
    # the usage is marked before the check: the class shows both the read and the write
    # columns when a write meets a read; the held lock is listed as it was taken
    both = ops[0][0] != ops[1][0]
    assert rep.lines[4].startswith(f"{kind}_X ({kind}_X){{{'++++' if both else '.+.+'}}}")
    assert rep.lines[7].startswith(f"{kind}_X ({kind}_X){{{'++++' if both else '.+.+'}}}")


@pytest.mark.parametrize("lt", RW_TYPES, ids=lambda lt: lt.name)
@pytest.mark.parametrize("case", CYCLES)
def test_a_cycle_of_rw_locks(case: str, lt: Any) -> None:
    """ABBA ... ABCDBCDA in the wlock, wsem and rsem columns: FAILURE, the circular
    dependency (down_read()s are non-recursive: their dependencies count); rlock: SUCCESS
    (2.6.x: a recursive read adds no dependency, so read-only cycles leave no trace)."""
    pairs, chain, _ = CYCLES[case]

    def make() -> Callable[[], None]:
        k = _locks(lt)

        def body() -> None:
            for x, y in pairs:
                _lock_unlock_2(lt, k[x], k[y])
        return body

    m, verdict = _run_everywhere(make)
    if not FAILS_6R[lt.name]:
        assert verdict == []
        assert m.lockdep is not None and m.lockdep.dependencies() == []
        return
    assert [v[0] for v in verdict] == ["lockdep_circular"]
    rep = _first_lockdep(m)
    p = lt.prefix
    names = [f"{p}_{c}" for c in chain]
    assert rep.extra["chain"] == names
    assert rep.lines[1] == "WARNING: possible circular locking dependency detected"
    assert [ln for ln in rep.lines if ln.startswith("-> #")] == [
        f"-> #{i} ({names[i]}){lt.chars}-{lt.wait}:" for i in range(len(names) - 1, -1, -1)]


@pytest.mark.parametrize("lt", RW_TYPES, ids=lambda lt: lt.name)
def test_double_unlock_rw_columns(lt: Any) -> None:
    """DO_TESTCASE_6("double unlock"): FAILURE in every column, "bad unlock balance"."""
    m, verdict = _run_everywhere(lambda: _case_double_unlock(lt))
    assert verdict
    assert m.reports[0].lines[1] == "WARNING: bad unlock balance detected!"


@pytest.mark.parametrize("lt", RW_TYPES, ids=lambda lt: lt.name)
def test_bad_unlock_order_rw_columns_is_silent(lt: Any) -> None:
    def make() -> Callable[[], None]:
        k = _locks(lt)

        def body() -> None:
            lt.lock(k["A"])
            lt.lock(k["B"])
            lt.unlock(k["A"])
            lt.unlock(k["B"])
        return body
    _, verdict = _run_everywhere(make)
    assert verdict == []


#: the irq-safety families in the wlock and rlock columns (DO_TESTCASE_3: wlock FAILURE as
#: spin, rlock SUCCESS: a read in an interrupt and a read with interrupts on never conflict)
RW_IRQ_CASES = [(fam, perm, irq) for (fam, perm, irq) in IRQ_CASES if fam != "irqsafe2A"] + [
    ("irqsafe2A", "12", "soft"), ("irqsafe2A", "21", "soft")]


@pytest.mark.parametrize("lt", (WLock, RLock), ids=lambda lt: lt.name)
@pytest.mark.parametrize("family, perm, irq", RW_IRQ_CASES)
def test_irq_safety_rw_columns(family: str, perm: str, irq: str, lt: Any) -> None:
    def make() -> Callable[[], None]:
        x = Ctx(irq, False, lt)

        def body() -> None:
            x.setup()
            events = _events(family, x)
            for e in perm:
                events[e]()
        return body

    m, verdict = _run_everywhere(make)
    if lt is RLock:
        assert verdict == []
        return
    irq_name = "HARDIRQ" if irq == "hard" else "SOFTIRQ"
    what, arg = EXPECTED[(family, perm)]
    rep = _first_lockdep(m)
    kind = {"inconsistent": "lockdep_inconsistent", "inversion": "lockdep_irq_inversion",
            "order": "lockdep_irq_order"}[what]
    assert rep.kind == kind
    if what == "inconsistent":
        assert rep.lines[3] == _usage(arg, irq_name)
        assert rep.extra["class"] == "rwlock_A"
    else:
        assert (rep.extra["safe"], rep.extra["unsafe"], rep.extra["irqclass"]) == ("rwlock_A", "rwlock_B", irq_name)


@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_irq_safety_wlock_fixed_twin_is_silent(irq: str) -> None:
    for family, perm in (("irqsafe1", "12"), ("irqsafe3", "231"), ("irqsafe4", "321")):
        def make(family: str = family, perm: str = perm) -> Callable[[], None]:
            x = Ctx(irq, True, WLock)

            def body() -> None:
                x.setup()
                events = _events(family, x)
                for e in perm:
                    events[e]()
            return body
        _, verdict = _run_everywhere(make)
        assert verdict == [], (family, perm)


def _irq_inversion_events(x: Ctx, a: Any) -> dict[str, Callable[[], None]]:
    """irq_inversion: A an rwlock written with interrupts off, read in an interrupt; B of
    the column's type, taken under A and (E2) with interrupts on."""
    def e1() -> None:
        x.disable()
        write_lock(a)
        x.L("B")
        x.U("B")
        write_unlock(a)
        x.enable()

    def e3() -> None:
        read_lock(a)
        read_unlock(a)
    return {"1": e1, "2": lambda: x.lu_plain("B"), "3": lambda: x.enter(e3)}


#: irq_inversion in the spin column: what the kernel reports first (2.6.x rules): A just
#: became IN-*-R and took B (inversion forwards), B just became *-ON-W and HARDIRQ-READ-safe
#: A took it (backwards), or the edge A -> B itself (order, with A irq-read-safe)
INVERSION_EXPECTED = {"123": ("inversion", True, ""), "132": ("inversion", False, "-READ"),
                      "213": ("inversion", True, ""), "231": ("order", None, "-READ"),
                      "312": ("inversion", False, "-READ"), "321": ("order", None, "-READ")}


@pytest.mark.parametrize("lt", (Spin, WLock, RLock), ids=lambda lt: lt.name)
@pytest.mark.parametrize("perm", INVERSION_EXPECTED)
@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_irq_inversion(irq: str, perm: str, lt: Any) -> None:
    """DO_TESTCASE_6x6RW("irq lock-inversion"): spin and wlock FAILURE, rlock SUCCESS (B
    read under A adds no dependency, and B read with interrupts on is no irq-unsafe write)."""
    def make() -> Callable[[], None]:
        x = Ctx(irq, False, lt)
        a = rwlock_init("rwlock_IA")

        def body() -> None:
            x.setup()
            events = _irq_inversion_events(x, a)
            for e in perm:
                events[e]()
        return body

    m, verdict = _run_everywhere(make)
    if lt is RLock:
        assert verdict == []
        return
    irq_name = "HARDIRQ" if irq == "hard" else "SOFTIRQ"
    what, forwards, read = INVERSION_EXPECTED[perm]
    rep = _first_lockdep(m)
    b = f"{'lock' if lt is Spin else 'rwlock'}_B"
    assert (rep.extra["safe"], rep.extra["unsafe"]) == ("rwlock_IA", b)
    if what == "inversion":
        assert rep.kind == "lockdep_irq_inversion"
        name = irq_name + (read if not forwards else "")
        assert rep.lines[5] == (f"but this lock took another, {name}-unsafe lock in the past:" if forwards
                                else f"but this lock was taken by another, {name}-safe lock in the past:")
    else:
        assert rep.kind == "lockdep_irq_order"
        assert rep.lines[1] == f"WARNING: {irq_name}{read}-safe -> {irq_name}{read}-unsafe lock order detected"
        assert rep.lines[rep.lines.index(f"but this new dependency connects a {irq_name}{read}-irq-safe lock:") + 1] \
            .startswith(" (rwlock_IA){")


@pytest.mark.parametrize("perm", ["123", "132", "213", "231", "312", "321"])
@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_irq_read_recursion_is_silent(irq: str, perm: str) -> None:
    """DO_TESTCASE_6x2("irq read-recursion"): SUCCESS. A written with interrupts off, read
    with interrupts on, and read in an interrupt (taking a spinlock B under it): the
    tasklist_lock pattern. A read in an interrupt that nests in a read of the interrupted
    code spins on nobody, so lockdep stays silent."""
    def make() -> Callable[[], None]:
        x = Ctx(irq)
        a = rwlock_init("rwlock_A")

        def e1() -> None:
            x.disable()
            write_lock(a)
            write_unlock(a)
            x.enable()

        def e2() -> None:
            read_lock(a)
            read_unlock(a)

        def e3() -> None:
            read_lock(a)
            x.lu_plain("B")
            read_unlock(a)

        def body() -> None:
            x.setup()
            events = {"1": e1, "2": e2, "3": lambda: x.enter(e3)}
            for e in perm:
                events[e]()
        return body

    _, verdict = _run_everywhere(make)
    assert verdict == []


@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_read_lock_in_an_interrupt_nests_in_the_interrupted_read(irq: str) -> None:
    """read_lock(&tasklist_lock) in a handler while the interrupted code reads it: the
    same lock read twice by one CPU, silent; the class shows both reads, ``{.-.-}``/``{-.-.}``
    style chars with '?' where read in an interrupt and with interrupts on."""
    def make() -> Callable[[], None]:
        x = Ctx(irq)
        a = rwlock_init("tasklist_lock")

        def in_irq() -> None:
            read_lock(a)
            read_unlock(a)

        def body() -> None:
            x.setup()
            read_lock(a)
            x.enter(in_irq)
            read_unlock(a)
        return body

    m, verdict = _run_everywhere(make)
    assert verdict == []
    assert m.lockdep is not None
    cls = m.lockdep.class_named("tasklist_lock")
    assert cls is not None
    assert cls.usage_chars() == (".?.+" if irq == "hard" else ".+.?")


@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_write_lock_with_irqs_on_of_a_class_read_in_an_interrupt_is_inconsistent(irq: str) -> None:
    """A class read in hardirq context (IN-HARDIRQ-R) written with interrupts on: the
    interrupt's reader would spin on the interrupted writer. "{IN-HARDIRQ-R} ->
    {HARDIRQ-ON-W}", and in the other order "{HARDIRQ-ON-W} -> {IN-HARDIRQ-R}"."""
    irq_name = "HARDIRQ" if irq == "hard" else "SOFTIRQ"
    for read_first in (True, False):
        def make(read_first: bool = read_first) -> Callable[[], None]:
            x = Ctx(irq)
            a = rwlock_init("rwlock_A")

            def in_irq() -> None:
                read_lock(a)
                read_unlock(a)

            def body() -> None:
                x.setup()
                if read_first:
                    x.enter(in_irq)
                write_lock(a)
                write_unlock(a)
                if not read_first:
                    x.enter(in_irq)
            return body

        m, verdict = _run_everywhere(make)
        assert [v[0] for v in verdict] == ["lockdep_inconsistent"]
        rep = _first_lockdep(m)
        assert rep.lines[1] == "WARNING: inconsistent lock state"
        first, then = (f"IN-{irq_name}-R", f"{irq_name}-ON-W")
        if not read_first:
            first, then = then, first
        assert rep.lines[3] == f"inconsistent {{{first}}} -> {{{then}}} usage."
        assert rep.lines[5].startswith("rwlock_A (rwlock_A){")
        assert rep.lines[6] == f"{{{first}}} state was registered at:"


def test_a_read_under_a_recursive_read_depends_on_the_lock_below() -> None:
    """check_prevs_add(): a recursive read held gets no dependency, the search goes on
    below it: L(C); RL(A); L(B) adds C -> B (and C -> A), not A -> B."""
    def make() -> Callable[[], None]:
        k = _locks(Spin)
        a = rwlock_init("rwlock_A")

        def body() -> None:
            spin_lock(k["C"])
            read_lock(a)
            spin_lock(k["B"])
            spin_unlock(k["B"])
            read_unlock(a)
            spin_unlock(k["C"])
        return body

    m, verdict = _run_everywhere(make)
    assert verdict == []
    assert m.lockdep is not None
    assert m.lockdep.dependencies() == [("lock_C", "lock_B")]


def test_a_recursive_read_closing_a_cycle_is_still_checked() -> None:
    """The dependencies of a recursive read are checked, not stored: W(A); L(B) then
    L(B); R(A) is a cycle (the reader would spin on the writer waiting for B)."""
    def make() -> Callable[[], None]:
        k = _locks(Spin)
        a = rwlock_init("rwlock_A")

        def body() -> None:
            write_lock(a)
            spin_lock(k["B"])
            spin_unlock(k["B"])
            write_unlock(a)
            spin_lock(k["B"])
            read_lock(a)
            read_unlock(a)
            spin_unlock(k["B"])
        return body

    m, verdict = _run_everywhere(make)
    assert [v[0] for v in verdict] == ["lockdep_circular"]
    rep = _first_lockdep(m)
    assert rep.extra["held"] == "lock_B" and rep.extra["acquiring"] == "rwlock_A"
    assert m.lockdep is not None and m.lockdep.dependencies() == [("rwlock_A", "lock_B")]


def test_downgrade_write_holds_the_rwsem_for_reading() -> None:
    """lock_downgrade(): after downgrade_write() the task holds the rwsem as a reader:
    a down_read() of the class then is the non-recursive read's report."""
    def make() -> Callable[[], None]:
        k = _locks(RSem)

        def body() -> None:
            down_write(k["X1"])
            downgrade_write(k["X1"])
            down_read(k["X2"])
            up_read(k["X2"])
            up_read(k["X1"])
        return body

    m, verdict = _run_everywhere(make)
    assert [v[0] for v in verdict] == ["lockdep_recursive"]
    rep = _first_lockdep(m)
    assert rep.lines[7].startswith("rwsem_X (rwsem_X)")


@pytest.mark.parametrize("lt", (WLock, RLock, RSem), ids=lambda lt: lt.name)
def test_a_cycle_of_rw_locks_in_concurrent_tasks(lt: Any) -> None:
    """ABBA with each pair in a task of its own: wlock and rsem are reported whatever the
    interleaving (down_read()s may deadlock once a writer queues), rlock never is (and its
    readers never wait for each other)."""
    for policy in CONCURRENT_POLICIES:
        for seed in SEEDS:
            m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
            k = _locks(lt)
            m.run(*[(lambda p=p: _lock_unlock_2(lt, k[p[0]], k[p[1]])) for p in ("AB", "BA")])
            kinds = [r.kind for r in m.reports]
            if lt is RLock:
                assert kinds == [], (policy, seed, kinds)
            else:
                assert [kd for kd in kinds if kd.startswith("lockdep_")] == ["lockdep_circular"], (policy, seed, kinds)
                assert set(kinds) <= {"lockdep_circular", "deadlock", "livelock"}, (policy, seed, kinds)


@pytest.mark.parametrize("irq", ["hard", "soft"])
def test_irq_inversion_events_in_concurrent_tasks(irq: str) -> None:
    """irq_inversion's three events in three tasks at once: with B a spinlock it is
    reported in every interleaving, with B read-locked never."""
    for lt in (Spin, RLock):
        for policy in CONCURRENT_POLICIES:
            for seed in SEEDS:
                m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
                x = Ctx(irq, False, lt)
                a = rwlock_init("rwlock_IA")
                x.setup_on(m)

                def ev(e: str, x: Ctx = x, a: Any = a) -> Callable[[], None]:
                    return lambda: _irq_inversion_events(x, a)[e]()

                m.run(ev("1"), ev("2"), ev("3"))
                kinds = [r.kind for r in m.reports]
                assert x.ran == 1
                if lt is RLock:
                    assert kinds == [], (policy, seed, kinds)
                else:
                    assert kinds and set(kinds) <= {"lockdep_irq_inversion", "lockdep_irq_order"}, (
                        policy, seed, kinds)
