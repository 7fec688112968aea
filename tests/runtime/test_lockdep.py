"""Lock validation (runtime/lockdep.py): circular dependencies, inconsistent irq usage,
recursion, the fs_reclaim annotation and the memalloc scopes, in the kernel's words."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import (
    KmemUsageError,
    Machine,
    NotInTaskError,
    Oops,
    init_waitqueue_head,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    local_irq_restore,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    open_softirq,
    preempt_point,
    raise_irq,
    raise_softirq,
    request_irq,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    wait_event,
    wake_up,
)
from percpu_kmem.linux import (
    __GFP_FS,
    __GFP_IO,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOFS,
    GFP_NOIO,
    current_gfp_context,
    fs_reclaim_acquire,
    fs_reclaim_release,
    kfree,
    kmalloc,
    memalloc_nofs_restore,
    memalloc_nofs_save,
    memalloc_noio_restore,
    memalloc_noio_save,
)
from percpu_kmem.runtime import lockdep as ld_mod
from percpu_kmem.runtime.preempt import X86_EFLAGS_IF

pytestmark = pytest.mark.timeout(60)

SEEDS = range(6)
POLICIES = ("random", "pct", "virtual")
LOCKDEP_KINDS = ("lockdep_circular", "lockdep_inconsistent", "lockdep_irq_order", "lockdep_irq_inversion",
                 "lockdep_recursive", "lockdep_bad_unlock", "lockdep_irqs_on_in_hardirq")


def _lockdep_reports(m: Machine) -> list[Any]:
    return [r for r in m.reports if r.kind.startswith("lockdep_")]


# -- circular dependencies ------------------------------------------------------------------
def _abba_in_sequence(m: Machine) -> list[Any]:
    """Path one takes A then B; path two, in another task, B then A, but only after path
    one has finished: the run can never deadlock."""
    a, b = spin_lock_init("A"), spin_lock_init("B")
    wq = init_waitqueue_head("done")
    done = [False]

    def one() -> str:
        spin_lock(a)
        spin_lock(b)
        spin_unlock(b)
        spin_unlock(a)
        done[0] = True
        wake_up(wq)
        return "one"

    def two() -> str:
        wait_event(wq, lambda: done[0])
        spin_lock(b)
        spin_lock(a)
        spin_unlock(a)
        spin_unlock(b)
        return "two"

    return m.run(one, two)


@pytest.mark.parametrize("policy", POLICIES)
def test_abba_between_two_tasks_is_reported_the_first_run_both_orders_are_seen(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
        assert _abba_in_sequence(m) == ["one", "two"]  # no deadlock
        (rep,) = _lockdep_reports(m)
        assert rep.kind == "lockdep_circular" and rep.task == f"two/{rep.pid}"
        assert rep.extra["chain"] == ["A", "B"] and rep.extra["held"] == "B"
        assert not m.reports_of("deadlock") and not m.reports_of("livelock")


def test_the_graph_persists_across_runs_of_one_machine() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    a, b = spin_lock_init("A"), spin_lock_init("B")

    def ab() -> None:
        spin_lock(a)
        spin_lock(b)
        spin_unlock(b)
        spin_unlock(a)

    def ba() -> None:
        spin_lock(b)
        spin_lock(a)
        spin_unlock(a)
        spin_unlock(b)

    m.run(ab)
    assert m.lockdep is not None and m.lockdep.dependencies() == [("A", "B")]
    assert not _lockdep_reports(m)
    m.run(ab)  # the same order again: nothing new
    assert not _lockdep_reports(m)
    m.run(ba)
    assert [r.kind for r in _lockdep_reports(m)] == ["lockdep_circular"]
    m.run(ba)  # each distinct problem is reported once
    assert len(_lockdep_reports(m)) == 1
    assert m.lockdep.dependencies() == [("A", "B")]  # the closing edge was never added
    assert not any(m.lockdep.held.values())  # nothing is held between runs


def test_circular_report_has_the_kernels_layout() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    _abba_in_sequence_one_task(m)
    (rep,) = m.reports_of("lockdep_circular")
    lines = rep.lines
    pid = rep.pid
    # print_circular_bug_header(), print_circular_bug_entry(), print_circular_lock_scenario()
    assert lines[:4] == ["======================================================",
                         "WARNING: possible circular locking dependency detected",
                         "------------------------------------------------------",
                         f"path/{pid} is trying to acquire lock:"]
    assert lines[4].startswith("A (A){+.+.}-{2:2}, at: tests/runtime/test_lockdep.py:")
    assert lines[5:7] == ["", "but task is already holding lock:"]
    assert lines[7].startswith("B (B){+.+.}-{2:2}, at: tests/runtime/test_lockdep.py:")
    assert lines[8:13] == ["", "which lock already depends on the new lock.", "", "",
                           "the existing dependency chain (in reverse order) is:"]
    assert lines[13:15] == ["", "-> #1 (B){+.+.}-{2:2}:"]
    assert lines[15].startswith("       path (tests/runtime/test_lockdep.py:")  # print_lock_trace(, 6): 7 spaces
    i = lines.index("-> #0 (A){+.+.}-{2:2}:")
    assert lines[i + 1].startswith("       path (tests/runtime/test_lockdep.py:")
    j = lines.index("other info that might help us debug this:")
    assert "Chain exists of:" not in lines  # a cycle of two shows no chain line
    assert lines[j + 1:j + 17] == [
        "",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        "  lock(B);",
        "                               lock(A);",
        "                               lock(B);",
        "  lock(A);",
        "",
        " *** DEADLOCK ***",
        "",
        f"1 lock held by path/{pid}:",
        lines[j + 14],
        "",
        "stack backtrace:",
    ]
    assert lines[j + 14].startswith(" #0: B (B){+.+.}-{2:2}, at: ")
    assert lines[j + 17] == f"CPU: 0 PID: {pid} Comm: path"


def _abba_in_sequence_one_task(m: Machine) -> None:
    a, b = spin_lock_init("A"), spin_lock_init("B")

    def path() -> None:
        spin_lock(a)
        spin_lock(b)
        spin_unlock(b)
        spin_unlock(a)
        spin_lock(b)
        spin_lock(a)
        spin_unlock(a)
        spin_unlock(b)

    m.run(path)


def test_a_longer_cycle_prints_the_chain_and_the_middle_lock() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    a, b, c = spin_lock_init("A"), spin_lock_init("B"), spin_lock_init("C")

    def nest(x: Any, y: Any) -> None:
        spin_lock(x)
        spin_lock(y)
        spin_unlock(y)
        spin_unlock(x)

    m.run(lambda: (nest(a, b), nest(b, c), nest(c, a)))
    (rep,) = m.reports_of("lockdep_circular")
    lines = rep.lines
    assert rep.extra["chain"] == ["A", "B", "C"]
    assert [ln for ln in lines if ln.startswith("-> #")] == [
        "-> #2 (C){+.+.}-{2:2}:", "-> #1 (B){+.+.}-{2:2}:", "-> #0 (A){+.+.}-{2:2}:"]
    k = lines.index("Chain exists of:")
    assert lines[k + 1:k + 3] == ["  A --> B --> C", ""]
    s = lines.index(" Possible unsafe locking scenario:")
    assert lines[s + 4:s + 8] == ["  lock(C);", "                               lock(B);",
                                  "                               lock(C);", "  lock(A);"]


def test_a_trylock_adds_no_dependency_of_its_own_but_the_next_lock_depends_on_it() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    a, b, c = spin_lock_init("A"), spin_lock_init("B"), spin_lock_init("C")

    def body() -> None:
        spin_lock(a)
        assert spin_trylock(b) == 1
        spin_lock(c)
        spin_unlock(c)
        spin_unlock(b)
        spin_unlock(a)

    m.run(body)
    assert m.lockdep is not None and m.lockdep.dependencies() == [("A", "C"), ("B", "C")]


def test_mutexes_take_part_and_print_their_wait_type() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    x, y = mutex_init("x_mutex"), mutex_init("y_mutex")

    def body() -> None:
        mutex_lock(x)
        mutex_lock(y)
        mutex_unlock(y)
        mutex_unlock(x)
        mutex_lock(y)
        mutex_lock(x)
        mutex_unlock(x)
        mutex_unlock(y)

    m.run(body)
    (rep,) = m.reports_of("lockdep_circular")
    assert "-> #1 (y_mutex){+.+.}-{3:3}:" in rep.lines


def test_locks_of_an_interrupt_do_not_depend_on_the_locks_it_interrupted() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    a, b = spin_lock_init("A"), spin_lock_init("B")
    m.request_irq(5, lambda irq, dev: (spin_lock(b), spin_unlock(b)))

    def body() -> None:
        spin_lock(a)
        raise_irq(5)
        preempt_point()  # interrupts are on: the handler runs here, inside A's section
        spin_unlock(a)

    m.run(body)
    assert m.cpus[0].nr_irqs == 1
    assert m.lockdep is not None and m.lockdep.dependencies() == []
    assert not _lockdep_reports(m)


# -- inconsistent irq usage --------------------------------------------------------------
def _irq_then_process(m: Machine, lock_in_process: str) -> None:
    """The handler takes the lock first; the task takes it after the interrupt is over,
    so the interrupt never lands inside the task's critical section."""
    lock = spin_lock_init("dev_lock")
    m.request_irq(5, lambda irq, dev: (spin_lock(lock), spin_unlock(lock)))

    def task() -> None:
        raise_irq(5)
        preempt_point()
        if lock_in_process == "irqsave":
            flags = spin_lock_irqsave(lock)
            spin_unlock_irqrestore(lock, flags)
        else:
            spin_lock(lock)
            spin_unlock(lock)

    m.run(task)
    assert m.cpus[0].nr_irqs == 1


def test_a_lock_taken_in_hardirq_and_with_irqs_on_is_inconsistent_without_an_interrupt_inside() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    _irq_then_process(m, "plain")
    (rep,) = m.reports_of("lockdep_inconsistent")
    lines = rep.lines
    pid = rep.pid
    # print_usage_bug() and print_usage_bug_scenario()
    assert lines[:5] == ["================================",
                         "WARNING: inconsistent lock state",
                         "--------------------------------",
                         "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage.",
                         f"task/{pid} [HC0[0]:SC0[0]:HE1:SE1] takes:"]
    assert lines[5].startswith("dev_lock (dev_lock){?...}-{2:2}, at: tests/runtime/test_lockdep.py:")
    assert lines[6] == "{IN-HARDIRQ-W} state was registered at:"
    assert lines[7].startswith("  <lambda> (tests/runtime/test_lockdep.py:")  # print_lock_trace(, 1): 2 spaces
    j = lines.index("other info that might help us debug this:")
    assert lines[j + 1:j + 15] == [" Possible unsafe locking scenario:", "",
                                   "       CPU0", "       ----",
                                   "  lock(dev_lock);", "  <Interrupt>", "    lock(dev_lock);",
                                   "", " *** DEADLOCK ***", "",
                                   f"no locks held by task/{pid}.", "", "stack backtrace:",
                                   f"CPU: 0 PID: {pid} Comm: task"]


def test_the_other_order_is_hardirq_on_then_in_hardirq_reported_from_the_handler() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    lock = spin_lock_init("dev_lock")
    m.request_irq(5, lambda irq, dev: (spin_lock(lock), spin_unlock(lock)))

    def task() -> None:
        spin_lock(lock)
        spin_unlock(lock)
        raise_irq(5)
        preempt_point()

    m.run(task)
    (rep,) = m.reports_of("lockdep_inconsistent")
    assert rep.lines[3] == "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage."
    assert rep.lines[4] == f"task/{rep.pid} [HC1[1]:SC0[0]:HE0:SE1] takes:"
    assert rep.lines[6] == "{HARDIRQ-ON-W} state was registered at:"
    assert rep.preempt_count & 0x10000


@pytest.mark.parametrize("how", ["local_irq_enable", "local_irq_restore", "spin_unlock_irq", "fixed"])
def test_enabling_interrupts_with_a_lock_held_marks_the_lock_hardirq_on(how: str) -> None:
    """mark_held_locks(): a lock taken with interrupts off, held while they come back on,
    is HARDIRQ-ON from then: with the handler taking it too, an inconsistent state."""
    m = Machine(cpus=1, boot=False, lockdep=True)
    lock, inner = spin_lock_init("dev_lock"), spin_lock_init("inner_lock")
    m.request_irq(5, lambda irq, dev: (spin_lock(lock), spin_unlock(lock)))

    def task() -> None:
        raise_irq(5)
        preempt_point()  # the handler ran: dev_lock is IN-HARDIRQ-W
        flags = spin_lock_irqsave(lock)
        if how == "local_irq_enable":
            local_irq_enable()
            local_irq_disable()
        elif how == "local_irq_restore":
            local_irq_restore(X86_EFLAGS_IF)
            local_irq_disable()
        elif how == "spin_unlock_irq":
            spin_lock_irq(inner)
            spin_unlock_irq(inner)
            local_irq_disable()
        else:  # the inner lock's own flags: interrupts stay off
            inner_flags = spin_lock_irqsave(inner)
            spin_unlock_irqrestore(inner, inner_flags)
        spin_unlock_irqrestore(lock, flags)

    m.run(task)
    reps = m.reports_of("lockdep_inconsistent")
    if how == "fixed":
        assert not _lockdep_reports(m)
    else:
        (rep,) = reps
        assert rep.lines[3] == "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage."
        assert rep.lines[4].endswith(":HE1:SE1] takes:")
        assert rep.lines[5].startswith("dev_lock (dev_lock)")


@pytest.mark.parametrize("how", ["spin_unlock_irq", "local_irq_enable", "fixed"])
def test_enabling_interrupts_in_an_interrupt_handler_is_lockdeps_warning_and_marks_nothing(how: str) -> None:
    """A handler that takes its lock with spin_lock_irq() re-enables interrupts on the way
    out (a classic driver bug): lockdep_hardirqs_on_prepare()'s DEBUG_LOCKS_WARN_ON, once,
    and no usage bit for what the handler or the interrupted task holds."""
    for policy in POLICIES:
        for seed in range(3):
            m = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
            dev, outer = spin_lock_init("dev_lock"), spin_lock_init("outer_lock")

            def handler(irq: int, dev_id: Any) -> None:
                if how == "spin_unlock_irq":
                    spin_lock_irq(dev)
                    spin_unlock_irq(dev)
                elif how == "local_irq_enable":
                    spin_lock(dev)
                    local_irq_enable()
                    local_irq_disable()
                    spin_unlock(dev)
                else:
                    flags = spin_lock_irqsave(dev)
                    spin_unlock_irqrestore(dev, flags)

            def task() -> None:
                request_irq(5, handler)
                raise_irq(5)
                spin_lock_bh(outer)  # bottom halves off, interrupts on
                raise_irq(5)  # the handler runs inside outer's section
                spin_unlock_bh(outer)

            m.run(task)
            if how == "fixed":
                assert m.reports == []
                continue
            (rep, *rest) = m.reports
            assert rep.kind == "lockdep_irqs_on_in_hardirq" and rep.count == 1
            # returning with interrupts on is the handler's own WARN_ONCE (runtime/irq.py)
            assert [r.kind for r in rest] == (["warning"] if how == "spin_unlock_irq" else [])
            assert rep.lines[0] == (f"WARNING: CPU: {rep.cpu} PID: {rep.pid} at tests/runtime/test_lockdep.py:"
                                    f"{rep.site.rsplit(':', 1)[1]} lockdep_hardirqs_on_prepare")
            assert rep.lines[1] == "DEBUG_LOCKS_WARN_ON(lockdep_hardirq_context())"
            assert m.lockdep is not None
            usage = {name: m.lockdep.class_named(name).usage_chars() for name in ("dev_lock", "outer_lock")}
            assert usage == {"dev_lock": "-...", "outer_lock": "+..."}  # nothing marked by the enable


@pytest.mark.parametrize("where", ["hardirq_handler", "irqs_saved"])
def test_bottom_halves_enabled_with_interrupts_disabled_is_warned(where: str) -> None:
    """spin_unlock_bh() in an interrupt handler, or inside spin_lock_irqsave(): the
    kernel's WARN_ON(irqs_disabled()) in local_bh_enable(), at the driver's line."""
    m = Machine(cpus=1, boot=False, lockdep=True)
    lock, outer = spin_lock_init("dev_lock"), spin_lock_init("outer_lock")

    def task() -> None:
        if where == "hardirq_handler":
            request_irq(5, lambda irq, dev: (spin_lock_bh(lock), spin_unlock_bh(lock)))
            raise_irq(5)
        else:
            flags = spin_lock_irqsave(outer)
            spin_lock_bh(lock)
            spin_unlock_bh(lock)  # bottom halves back on with interrupts off
            spin_unlock_irqrestore(outer, flags)

    m.run(task)
    assert any("local_bh_enable" in r.text for r in m.reports), [r.kind for r in m.reports]
    warning = next(r for r in m.reports if r.kind == "warning")
    assert warning.site.startswith("tests/runtime/test_lockdep.py:"), warning.site


def _serve_softirq_taking(lock: Any) -> None:
    """In a task: register softirq 3 with an action that takes ``lock``, and run it once
    (``lock`` becomes IN-SOFTIRQ-W)."""
    def action() -> None:
        spin_lock(lock)
        spin_unlock(lock)

    open_softirq(3, action)
    local_bh_disable()
    raise_softirq(3)
    local_bh_enable()  # the softirq runs here


def test_enabling_bottom_halves_with_a_lock_held_marks_the_lock_softirq_on() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    lock = spin_lock_init("queue_lock")

    def task() -> None:
        _serve_softirq_taking(lock)
        spin_lock_bh(lock)
        local_bh_enable()  # bottom halves on with queue_lock held
        local_bh_disable()
        spin_unlock_bh(lock)

    m.run(task)
    (rep,) = m.reports_of("lockdep_inconsistent")
    assert rep.lines[3] == "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage."


def test_irqsave_in_process_context_is_consistent() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    _irq_then_process(m, "irqsave")
    assert not _lockdep_reports(m)


def test_softirq_usage_against_softirqs_on_and_spin_lock_bh() -> None:
    for bh in (False, True):
        m = Machine(cpus=1, boot=False, lockdep=True)
        lock = spin_lock_init("queue_lock")

        def task() -> None:
            _serve_softirq_taking(lock)
            if bh:
                spin_lock_bh(lock)
                spin_unlock_bh(lock)
            else:
                spin_lock(lock)
                spin_unlock(lock)

        m.run(task)
        reps = m.reports_of("lockdep_inconsistent")
        if bh:
            assert not reps
        else:
            (rep,) = reps
            assert rep.lines[3] == "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage."
            assert rep.lines[5].startswith("queue_lock (queue_lock){+.?.}-{2:2}, at: ")


# -- irq safety across the graph (check_irq_usage, mark_lock_irq) -----------------------------
def _irq_driver(m: Machine, order: str, fixed: bool = False, middle: bool = False) -> Any:
    """A driver whose interrupt handler takes ``dev_lock`` (HARDIRQ-safe) and whose process
    context takes ``list_lock`` under dev_lock (irqs saved) and, elsewhere, alone with
    interrupts on (HARDIRQ-unsafe) - unless ``fixed``, where it saves irqs there too.
    ``order`` says which of the three facts the validator learns last: the dependency
    ("edge"), list_lock's irqs-on use ("unsafe") or dev_lock's use in the handler ("safe").
    ``middle``: dev_lock -> stats_lock -> list_lock instead of dev_lock -> list_lock."""
    dev, lst, stats = spin_lock_init("dev_lock"), spin_lock_init("list_lock"), spin_lock_init("stats_lock")
    m.request_irq(5, lambda irq, d: (spin_lock(dev), spin_unlock(dev)))

    def edge() -> None:
        f = spin_lock_irqsave(dev)
        if middle:
            spin_lock(stats)
        spin_lock(lst)
        spin_unlock(lst)
        if middle:
            spin_unlock(stats)
        spin_unlock_irqrestore(dev, f)

    def unsafe() -> None:
        if fixed:
            f = spin_lock_irqsave(lst)
            spin_unlock_irqrestore(lst, f)
        else:
            spin_lock(lst)
            spin_unlock(lst)

    def safe() -> None:
        raise_irq(5)
        preempt_point()

    steps = {"edge": [safe, unsafe, edge], "unsafe": [safe, edge, unsafe], "safe": [unsafe, edge, safe]}[order]

    def task() -> None:
        for step in steps:
            step()

    m.run(task)
    return _lockdep_reports(m)


def test_a_hardirq_safe_lock_taking_a_hardirq_unsafe_one_is_reported_at_the_new_edge() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    (rep,) = _irq_driver(m, "edge")
    pid = rep.pid
    lines = rep.lines
    assert rep.kind == "lockdep_irq_order"
    assert lines[:5] == ["=====================================================",
                         "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
                         "-----------------------------------------------------",
                         f"task/{pid} [HC0[0]:SC0[0]:HE0:SE1] is trying to acquire:",
                         lines[4]]
    assert lines[4].startswith("list_lock (list_lock){+.+.}-{2:2}, at: tests/runtime/test_lockdep.py:")
    i = lines.index("which would create a new lock dependency:")
    assert lines[i - 2] == "and this task is already holding:"
    assert lines[i + 1:i + 5] == [" (dev_lock){-...}-{2:2} -> (list_lock){+.+.}-{2:2}", "",
                                  "but this new dependency connects a HARDIRQ-irq-safe lock:",
                                  " (dev_lock){-...}-{2:2}"]
    assert lines[i + 6] == "... which became HARDIRQ-irq-safe at:"
    assert lines[i + 7].startswith("  <lambda> (tests/runtime/test_lockdep.py:")
    j = lines.index("to a HARDIRQ-irq-unsafe lock:")
    assert lines[j + 1:j + 5] == [" (list_lock){+.+.}-{2:2}", "", "... which became HARDIRQ-irq-unsafe at:", "..."]
    k = lines.index(" Possible interrupt unsafe locking scenario:")
    assert lines[k - 1] == "" and lines[k - 2] == "other info that might help us debug this:"
    assert lines[k + 1:k + 14] == ["", "       CPU0                    CPU1",
                                   "       ----                    ----",
                                   "  lock(list_lock);",
                                   "                               local_irq_disable();",
                                   "                               lock(dev_lock);",
                                   "                               lock(list_lock);",
                                   "  <Interrupt>",
                                   "    lock(dev_lock);", "", " *** DEADLOCK ***", "",
                                   f"1 lock held by task/{pid}:"]
    assert "the dependencies between HARDIRQ-irq-safe lock and the holding lock:" in lines
    d = lines.index("the dependencies between the lock to be acquired")  # two pr_warn()s: two lines
    assert lines[d + 1:d + 4] == [" and HARDIRQ-irq-unsafe lock:", "-> (list_lock){+.+.}-{2:2} {", "   HARDIRQ-ON-W at:"]
    assert lines[d + 4].startswith(" " * 20 + "unsafe (tests/runtime/test_lockdep.py:")  # indented as the kernel does
    h = lines.index("the dependencies between HARDIRQ-irq-safe lock and the holding lock:")
    # the safe lock is the held one: its class, and no "acquired at" (print_shortest_lock_dependencies_backwards)
    assert lines[h + 1:h + 3] == ["-> (dev_lock){-...}-{2:2} {", "   IN-HARDIRQ-W at:"]
    assert lines[lines.index(" }", h) + 1:lines.index(" }", h) + 3] == ["", "the dependencies between the lock to be acquired"]
    assert lines[lines.index(" }", d) + 1] == " ... acquired at:"
    assert rep.extra == {"irqclass": "HARDIRQ", "safe": "dev_lock", "unsafe": "list_lock",
                         "held": "dev_lock", "acquiring": "list_lock"}
    assert ("dev_lock", "list_lock") not in m.lockdep.dependencies()  # the edge is not added


@pytest.mark.parametrize("order, forwards", [("unsafe", False), ("safe", True)])
def test_the_same_pair_found_when_a_usage_bit_changes_is_an_irq_lock_inversion(order: str, forwards: bool) -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    (rep,) = _irq_driver(m, order)
    lines = rep.lines
    title = "WARNING: possible irq lock inversion dependency detected"
    assert rep.kind == "lockdep_irq_inversion"
    assert lines[:3] == ["=" * len(title), title, "-" * len(title)]
    assert lines[3].endswith(" just changed the state of lock:")
    if forwards:  # dev_lock became HARDIRQ-safe in the handler, and it took list_lock before
        assert lines[4].startswith("dev_lock (dev_lock){-...}-{2:2}, at: ")
        assert lines[5:7] == ["but this lock took another, HARDIRQ-unsafe lock in the past:",
                              " (list_lock){+.+.}-{2:2}"]
    else:  # list_lock became HARDIRQ-unsafe, and dev_lock took it before
        assert lines[4].startswith("list_lock (list_lock){+...}-{2:2}, at: ")
        assert lines[5:7] == ["but this lock was taken by another, HARDIRQ-safe lock in the past:",
                              " (dev_lock){-...}-{2:2}"]
    assert lines[7:11] == ["", "", "and interrupts could create inverse lock ordering between them.", ""]
    assert "the shortest dependencies between 2nd lock and 1st lock:" in lines
    assert "  lock(list_lock);" in lines and "    lock(dev_lock);" in lines
    assert rep.extra["safe"] == "dev_lock" and rep.extra["unsafe"] == "list_lock"


@pytest.mark.parametrize("order", ["edge", "unsafe", "safe"])
def test_the_fixed_driver_saves_irqs_everywhere_and_is_never_reported(order: str) -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    assert _irq_driver(m, order, fixed=True) == []
    assert ("dev_lock", "list_lock") in m.lockdep.dependencies()


def test_a_lock_between_the_safe_and_the_unsafe_one_prints_the_chain() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    (rep,) = _irq_driver(m, "edge", middle=True)
    assert rep.kind == "lockdep_irq_order"
    assert rep.extra["held"] == "stats_lock" and rep.extra["safe"] == "dev_lock"
    i = rep.lines.index("Chain exists of:")
    assert rep.lines[i + 1] == "  dev_lock --> stats_lock --> list_lock"
    assert "                               lock(stats_lock);" in rep.lines
    # print_shortest_lock_dependencies_backwards(): the safe class one level in, without a
    # stack of its own; the held lock below it with the stack of dev_lock -> stats_lock
    h = rep.lines.index("the dependencies between HARDIRQ-irq-safe lock and the holding lock:")
    assert rep.lines[h + 1:h + 3] == [" -> (dev_lock){-...}-{2:2} {", "    IN-HARDIRQ-W at:"]
    assert rep.lines[h + 3].startswith(" " * 22 + "<lambda> (tests/runtime/test_lockdep.py:")
    k = rep.lines.index("  }", h)
    assert rep.lines[k + 1:k + 4] == ["-> (stats_lock){....}-{2:2} {", " }", " ... acquired at:"]
    assert rep.lines[k + 4].startswith("   edge (tests/runtime/test_lockdep.py:")


def test_softirq_safe_to_softirq_unsafe_order() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    q, other = spin_lock_init("queue_lock"), spin_lock_init("other_lock")

    def task() -> None:
        _serve_softirq_taking(q)  # queue_lock: SOFTIRQ-safe
        spin_lock(other)  # other_lock: SOFTIRQ-unsafe (and HARDIRQ-unsafe)
        spin_unlock(other)
        spin_lock_bh(q)
        spin_lock(other)  # queue_lock -> other_lock
        spin_unlock(other)
        spin_unlock_bh(q)

    m.run(task)
    (rep,) = _lockdep_reports(m)
    assert rep.lines[1] == "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"
    assert rep.extra["safe"] == "queue_lock" and rep.extra["unsafe"] == "other_lock"


# -- recursion ------------------------------------------------------------------------------
def test_two_locks_of_one_class_nested_is_recursive_locking() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    locks = [spin_lock_init() for _ in range(2)]  # one initialisation site: one class

    def body() -> None:
        spin_lock(locks[0])
        spin_lock(locks[1])
        spin_unlock(locks[1])
        spin_unlock(locks[0])

    m.run(body)
    (rep,) = m.reports_of("lockdep_recursive")
    lines = rep.lines
    cls = rep.extra["class"]
    assert cls.startswith("tests/runtime/test_lockdep.py:")
    assert lines[:4] == ["============================================",
                         "WARNING: possible recursive locking detected",
                         "--------------------------------------------",
                         f"body/{rep.pid} is trying to acquire lock:"]
    assert lines[4].startswith(f"{locks[1].name} ({cls}){{+.+.}}-{{2:2}}, at: ")
    assert lines[5:7] == ["", "but task is already holding lock:"]
    assert lines[7].startswith(f"{locks[0].name} ({cls})")
    j = lines.index("other info that might help us debug this:")
    assert lines[j + 1:j + 13] == [" Possible unsafe locking scenario:", "", "       CPU0", "       ----",
                                   f"  lock({cls});", f"  lock({cls});", "", " *** DEADLOCK ***", "",
                                   " May be due to missing lock nesting notation", "",
                                   f"1 lock held by body/{rep.pid}:"]
    assert not m.reports_of("lockdep_circular")


def test_classes_by_site_name_and_bytecode_offset() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    p, q = spin_lock_init(), spin_lock_init()  # two calls on one line: two classes
    # one name at two sites: two classes, printed "same" and "same#2", as the kernel's
    # "&dev->lock" initialised in two functions; nesting them is no recursion
    n1, n2 = spin_lock_init("same"), spin_lock_init("same")
    # one site (a loop, a helper): one class, whatever the instances, as the kernel's
    # static lock_class_key per spin_lock_init() expansion; and a name is part of the class
    looped = [spin_lock_init("dev") for _ in range(2)]
    helper = [spin_lock_init(name) for name in ("A", "B")]

    def body() -> None:
        for a, b in ((p, q), (n1, n2), helper, looped):
            spin_lock(a)
            spin_lock(b)
            spin_unlock(b)
            spin_unlock(a)

    m.run(body)
    assert p.dep_class is not q.dep_class and p.dep_class.name != q.dep_class.name
    assert n1.dep_class is not n2.dep_class
    assert (n1.dep_class.name, n2.dep_class.name) == ("same", "same#2")
    assert helper[0].dep_class is not helper[1].dep_class
    assert looped[0].dep_class is looped[1].dep_class
    assert [r.extra["class"] for r in m.reports_of("lockdep_recursive")] == ["dev"]


@pytest.mark.parametrize("kind", ["spinlock", "mutex"])
def test_the_same_instance_twice_is_lockdeps_recursion_first_then_the_locks_own_check(kind: str) -> None:
    """spin_acquire()/mutex_acquire() come before the lock is taken: with lockdep on, the
    kernel prints "possible recursive locking detected" first (and its debug_locks_off()
    silences the spinlock's own "spinlock recursion"; the CPU then spins for ever, the
    task of a mutex sleeps for ever). The model then ends the task with the lock's own
    report, its stand-in for the hang."""
    m = Machine(cpus=1, boot=False, lockdep=True)
    lock = spin_lock_init("L") if kind == "spinlock" else mutex_init("L")

    def body() -> None:
        if kind == "spinlock":
            spin_lock(lock)
            spin_lock(lock)
        else:
            mutex_lock(lock)
            mutex_lock(lock)

    m.run(body)  # the Oops kills the task, as the kernel's does; the run goes on
    assert [r.kind for r in m.reports] == ["lockdep_recursive", f"{kind}_recursion"]
    rep = m.reports[0]
    assert rep.lines[1] == "WARNING: possible recursive locking detected"
    assert rep.lines[4].startswith("L (L){+.+.}-")
    assert rep.lines[7].startswith("L (L){+.+.}-")
    assert rep.extra == {"class": "L", "instances": ["L", "L"]}
    assert m.engine is not None and isinstance(m.engine.tasks[0].exc, Oops)


# -- fs_reclaim and the memalloc scopes -------------------------------------------------------
def _reclaim_then_alloc(m: Machine, alloc_body: Any) -> None:
    fs_lock = mutex_init("sb->s_umount")

    def reclaim() -> None:  # reclaim (a shrinker, writeback) takes the filesystem lock
        fs_reclaim_acquire(GFP_KERNEL)
        mutex_lock(fs_lock)
        mutex_unlock(fs_lock)
        fs_reclaim_release(GFP_KERNEL)

    def alloc() -> None:
        mutex_lock(fs_lock)
        alloc_body()
        mutex_unlock(fs_lock)

    m.run(reclaim)
    m.run(alloc)


def _gfp_kernel_allocation() -> None:
    fs_reclaim_acquire(GFP_KERNEL)
    fs_reclaim_release(GFP_KERNEL)


def test_gfp_kernel_under_a_lock_reclaim_takes_is_a_cycle_through_fs_reclaim() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    _reclaim_then_alloc(m, _gfp_kernel_allocation)
    (rep,) = _lockdep_reports(m)
    assert rep.kind == "lockdep_circular"
    assert rep.extra["chain"] == ["fs_reclaim", "sb->s_umount"]
    lines = rep.lines
    assert lines[1] == "WARNING: possible circular locking dependency detected"
    assert lines[4].startswith("fs_reclaim (fs_reclaim){+.+.}-{0:0}, at: tests/runtime/test_lockdep.py:")
    assert lines[7].startswith("sb->s_umount (sb->s_umount){+.+.}-{3:3}, at: ")
    assert "-> #1 (sb->s_umount){+.+.}-{3:3}:" in lines and "-> #0 (fs_reclaim){+.+.}-{0:0}:" in lines
    assert "  lock(fs_reclaim);" in lines


def test_a_gfp_kernel_allocation_in_an_interrupt_handler_is_lockdeps_report_first() -> None:
    """might_alloc() takes fs_reclaim before might_sleep_if(): lockdep speaks first."""
    m = Machine(cpus=1, memory="16M", lockdep=True)

    def handler(irq: int, dev: Any) -> None:
        kfree(kmalloc(32, GFP_KERNEL))  # the bug: GFP_KERNEL in hardirq context

    def task() -> None:
        request_irq(3, handler)
        kfree(kmalloc(32, GFP_KERNEL))  # fs_reclaim: HARDIRQ-ON-W
        raise_irq(3)

    m.run(task)
    assert [r.kind for r in m.reports][:2] == ["lockdep_inconsistent", "sleep_in_atomic"]


@pytest.mark.parametrize("how", ["nofs_scope", "noio_scope", "gfp_nofs", "gfp_noio", "gfp_atomic"])
def test_allocations_that_cannot_enter_fs_reclaim_take_no_fs_reclaim(how: str) -> None:
    def body() -> None:
        if how == "nofs_scope":
            flags = memalloc_nofs_save()
            _gfp_kernel_allocation()
            memalloc_nofs_restore(flags)
        elif how == "noio_scope":
            flags = memalloc_noio_save()
            _gfp_kernel_allocation()
            memalloc_noio_restore(flags)
        else:
            gfp = {"gfp_nofs": GFP_NOFS, "gfp_noio": GFP_NOIO, "gfp_atomic": GFP_ATOMIC}[how]
            fs_reclaim_acquire(gfp)
            fs_reclaim_release(gfp)

    m = Machine(cpus=1, boot=False, lockdep=True)
    _reclaim_then_alloc(m, body)
    assert not _lockdep_reports(m)
    assert m.lockdep is not None and m.lockdep.dependencies() == [("fs_reclaim", "sb->s_umount")]


def test_current_gfp_context_narrows_the_mask_in_nested_scopes() -> None:
    seen = []

    def body() -> None:
        seen.append(current_gfp_context(GFP_KERNEL))
        outer = memalloc_nofs_save()
        seen.append(current_gfp_context(GFP_KERNEL))
        inner = memalloc_nofs_save()  # nested: restoring the inner keeps the outer scope
        memalloc_nofs_restore(inner)
        seen.append(current_gfp_context(GFP_KERNEL))
        io = memalloc_noio_save()
        seen.append(current_gfp_context(GFP_KERNEL))
        memalloc_noio_restore(io)
        memalloc_nofs_restore(outer)
        seen.append(current_gfp_context(GFP_KERNEL))
        return None

    Machine(cpus=1, boot=False).run(body)
    assert seen == [GFP_KERNEL, GFP_KERNEL & ~__GFP_FS, GFP_KERNEL & ~__GFP_FS,
                    GFP_KERNEL & ~(__GFP_FS | __GFP_IO), GFP_KERNEL]


def test_fs_reclaim_release_without_acquire_is_a_bad_unlock_balance() -> None:
    m = Machine(cpus=1, boot=False, lockdep=True)
    m.run(lambda: fs_reclaim_release(GFP_KERNEL))
    (rep,) = m.reports_of("lockdep_bad_unlock")
    assert rep.lines[:3] == ["=====================================", "WARNING: bad unlock balance detected!",
                             "-------------------------------------"]
    assert rep.lines[3] == f"<lambda>/{rep.pid} is trying to release lock (fs_reclaim) at:"
    assert rep.lines[5] == "but there are no more locks to release!"


def test_bad_arguments_are_refused_before_anything_happens() -> None:
    errors: list[str] = []

    def body() -> None:
        for call in (lambda: fs_reclaim_acquire("GFP_KERNEL"), lambda: fs_reclaim_release(-1),
                     lambda: fs_reclaim_acquire(0x10000), lambda: current_gfp_context(None),
                     lambda: memalloc_nofs_restore(5), lambda: memalloc_noio_restore(True)):
            with pytest.raises(KmemUsageError) as e:
                call()
            errors.append(str(e.value))

    m = Machine(cpus=1, boot=False, lockdep=True)
    m.run(body)
    assert not m.reports and m.lockdep is not None and not m.lockdep.classes
    assert "fs_reclaim_acquire: gfp_mask(='GFP_KERNEL')" in errors[0]
    assert "memalloc_nofs_restore: flags(=5) must be what memalloc_nofs_save() returned" in errors[4]
    for fn in (lambda: fs_reclaim_acquire(GFP_KERNEL), lambda: memalloc_nofs_save(),
               lambda: current_gfp_context(GFP_KERNEL)):
        with pytest.raises(NotInTaskError):
            fn()
    with pytest.raises(KmemUsageError, match=r"lockdep\(=1\) must be True or False"):
        Machine(cpus=1, boot=False, lockdep=1)


def test_the_runtime_copies_of_the_gfp_bits_agree_with_mm() -> None:
    from percpu_kmem.mm import gfp, page_alloc
    assert ld_mod.GFP_WAIT_BIT == gfp.GFP_NOIO == getattr(gfp, "__GFP_WAIT")
    assert ld_mod.GFP_IO_BIT == getattr(gfp, "__GFP_IO")
    assert ld_mod.GFP_FS_BIT == getattr(gfp, "__GFP_FS")
    assert ld_mod.GFP_BITS_MASK == getattr(gfp, "__GFP_BITS_MASK")
    assert ld_mod.PF_MEMALLOC == page_alloc.PF_MEMALLOC


# -- off versus on ----------------------------------------------------------------------------
def test_lockdep_off_reports_nothing_of_the_kind() -> None:
    m = Machine(cpus=2, boot=False)
    _abba_in_sequence(m)
    m2 = Machine(cpus=1, boot=False)
    _irq_then_process(m2, "plain")
    m3 = Machine(cpus=1, boot=False)
    _reclaim_then_alloc(m3, _gfp_kernel_allocation)
    assert m.lockdep is None and not (_lockdep_reports(m) + _lockdep_reports(m2) + _lockdep_reports(m3))


def _mixed_workload(m: Machine) -> list[Any]:
    """Spinlocks (some with irqs saved), a mutex, an ABBA between two tasks, an
    interrupt handler taking a lock, and allocations under a filesystem lock."""
    a, b = spin_lock_init("A"), spin_lock_init("B")
    dev = spin_lock_init("dev_lock")
    fs = mutex_init("fs_lock")
    count = [0]
    m.request_irq(9, lambda irq, dev_id: (spin_lock(dev), count.__setitem__(0, count[0] + 1),
                                          spin_unlock(dev)), rate=0.05)

    def worker(first: Any, second: Any) -> Any:
        def body() -> int:
            total = 0
            for i in range(15):
                spin_lock(first)
                preempt_point()
                spin_unlock(first)
                spin_lock(second)
                spin_unlock(second)
                if i % 3 == 0:
                    spin_lock(dev)  # irqs on: inconsistent with the handler
                    total += 1
                    spin_unlock(dev)
                mutex_lock(fs)
                _gfp_kernel_allocation()
                mutex_unlock(fs)
                total += i
            return total
        return body

    return [*m.run(worker(a, b), worker(b, a)), count[0]]


@pytest.mark.parametrize("policy", POLICIES)
def test_the_same_seed_runs_the_same_with_lockdep_on_or_off(policy: str) -> None:
    for seed in SEEDS:
        off = Machine(cpus=2, policy=policy, seed=seed, boot=False)
        on = Machine(cpus=2, policy=policy, seed=seed, boot=False, lockdep=True)
        r_off, r_on = _mixed_workload(off), _mixed_workload(on)
        assert r_off == r_on
        assert off.trace == on.trace and off.now == on.now
        assert [(r.kind, r.step) for r in off.reports] == [
            (r.kind, r.step) for r in on.reports if not r.kind.startswith("lockdep_")]


def test_on_a_booted_machine_the_replay_hint_carries_lockdep() -> None:
    m = Machine(cpus=2, seed=3, lockdep=True)
    _abba_in_sequence(m)
    hint = m.replay_hint()
    assert "lockdep=True" in hint
    assert "lockdep" not in Machine(cpus=1, boot=False).shaping_args()
    assert [r.kind for r in _lockdep_reports(m)] == ["lockdep_circular"]


@pytest.mark.parametrize("kind", LOCKDEP_KINDS)
def test_every_report_kind_is_named_in_the_docs(kind: str) -> None:
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "lockdep.md").read_text()
    assert f"`{kind}`" in doc


@pytest.mark.parametrize("policy", ["random", "pct", "free"])
def test_the_stock_stress_scenarios_report_nothing_with_lockdep_on(policy: str) -> None:
    """The model's own locking (zone and cache lists, the depot, mempools, vmalloc, the per-CPU
    allocator, reclaim, IPIs and interrupt handlers allocating) under every lockdep check:
    correct scenarios are never reported."""
    from pathlib import Path

    from percpu_kmem.scenarios import load_scenarios
    stress_dir = Path(__file__).resolve().parents[2] / "stress"
    scenarios = [s for f in sorted(stress_dir.glob("*.py")) for s in load_scenarios(str(f))]  # not the zoo
    assert len(scenarios) >= 7
    for s in scenarios:
        for seed in range(2):
            m = s.make_machine(lockdep=True, seed=seed, policy=policy)
            s.run(m)
            assert _lockdep_reports(m) == [], (s.name, seed, _lockdep_reports(m)[0].text)


def test_a_lockdep_report_under_on_bug_panic_panics_with_its_title() -> None:
    """The panic line names the report (its first line that is not a rule), not '====='."""
    from percpu_kmem import KernelPanic
    m = Machine(cpus=1, boot=False, lockdep=True, on_bug="panic")
    a, b = spin_lock_init("panic_A"), spin_lock_init("panic_B")

    def body() -> None:
        for first, second in ((a, b), (b, a)):
            spin_lock(first)
            spin_lock(second)
            spin_unlock(second)
            spin_unlock(first)

    with pytest.raises(KernelPanic, match="not syncing: WARNING: possible circular locking dependency detected"):
        m.run(body)


def test_lockdep_assert_held_warns_when_the_lock_is_not_held() -> None:
    """lockdep_assert_held(): a WARNING at the caller's line when the current task does not
    hold the spinlock or mutex, silence when it does; nothing at all without lockdep."""
    from percpu_kmem.linux import lockdep_assert_held

    def run(lockdep: bool) -> Machine:
        m = Machine(cpus=2, boot=False, lockdep=lockdep)
        lock, mtx = spin_lock_init("assert_A"), mutex_init("assert_M")

        def body() -> None:
            spin_lock(lock)
            lockdep_assert_held(lock)
            spin_unlock(lock)
            mutex_lock(mtx)
            lockdep_assert_held(mtx)
            mutex_unlock(mtx)
            lockdep_assert_held(lock)  # the bug: the caller forgot the lock
            lockdep_assert_held(mtx)

        m.run(body)
        return m

    m = run(True)
    assert [r.kind for r in m.reports] == ["warning", "warning"]
    assert m.reports[0].lines[0].startswith("WARNING: CPU: ") and "test_lockdep.py:" in m.reports[0].lines[0]
    assert m.reports[0].lines[1] == f"lockdep_assert_held(assert_A): not held by body/{m.reports[0].pid}"
    assert not run(False).reports
    with pytest.raises(KmemUsageError, match="lockdep_assert_held"):
        Machine(cpus=1, boot=False, lockdep=True).run(lambda: lockdep_assert_held(object()))
