"""percpu_kmem.exhaustive: every schedule up to k preemptions, with partial-order reduction."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.exhaustive import explore_exhaustive, parse_schedule, replay_schedule, schedule_text
from percpu_kmem.linux import alloc_bootmem, preempt_point, read_u32, spin_lock, spin_lock_init, spin_unlock, write_u32
from percpu_kmem.runtime import footprint

pytestmark = pytest.mark.timeout(120)

_AREAS: list[int] = []
# The counter scenarios below search without kswapd (daemons=False: it takes no part and
# would multiply the schedules); test_with_daemons... searches with it, the default.


def _init() -> None:
    """Boot-time memory for the scenario: a counter line and one line per task."""
    p = alloc_bootmem(256)
    write_u32(p, 0)
    _AREAS.append(p)


def counter(locked: bool, order: int = 0) -> Callable[[Machine], None]:
    """Two tasks increment a counter in simulated memory (under a spinlock, or not: the buggy
    twin loses an update), each also writing a line of its own before and after."""

    def scenario(m: Machine) -> None:
        base = _AREAS[-1]  # this machine's (its init ran last)
        lock = spin_lock_init("counter_lock")
        seen: list[int] = []

        def worker(mine: int) -> Callable[[], None]:
            def fn() -> None:
                write_u32(base + 64 * mine, 1)
                if locked:
                    spin_lock(lock)
                x = read_u32(base)
                write_u32(base, x + 1)
                if locked:
                    spin_unlock(lock)
                write_u32(base + 64 * mine, 2)
                seen.append(x)
            return fn

        a, b = worker(1), worker(2)
        m.run(*((a, b) if order == 0 else (b, a)))
        assert sorted(seen) == [0, 1], f"lost update: both tasks read {seen[0]}"

    return scenario


def test_the_locked_counter_is_clean_under_every_schedule_up_to_2_preemptions_and_reduction_runs_fewer() -> None:
    full = explore_exhaustive(counter(True), cpus=2, preemptions=2, reduction=False, init=[_init], daemons=False)
    reduced = explore_exhaustive(counter(True), cpus=2, preemptions=2, init=[_init], daemons=False)
    print(full)
    print(reduced)
    assert full.complete and reduced.complete
    assert not full.failures and not reduced.failures
    assert reduced.schedules < full.schedules
    assert reduced.by_preemptions[2] < full.by_preemptions[2]
    assert full.by_preemptions[0] == reduced.by_preemptions[0] >= 1
    assert "complete" in str(reduced) and f"{reduced.schedules} schedules" in str(reduced)
    d = reduced.as_dict()
    assert d["schedules"] == reduced.schedules and d["complete"] is True and d["preemptions"] == 2
    assert footprint.active == 0, "the hooks are off again after the search"


def test_the_buggy_twin_is_found_with_one_preemption_and_its_schedule_replays() -> None:
    res = explore_exhaustive(counter(False), cpus=2, preemptions=2, init=[_init], daemons=False)
    assert not res.complete and len(res.failures) == 1
    f = res.failures[0]
    assert f.kind == "AssertionError" and f.preemptions == 1
    assert "lost update" in str(f.error)
    assert "replay_schedule(scenario, " in f.hint
    assert parse_schedule(f.schedule_text) == f.schedule[:len(parse_schedule(f.schedule_text))]
    with pytest.raises(AssertionError, match="lost update"):
        replay_schedule(counter(False), f.schedule_text, cpus=2, init=[_init], daemons=False)
    # the bound is a bound: with no preemption at all, the bug cannot show
    none = explore_exhaustive(counter(False), cpus=2, preemptions=0, init=[_init], daemons=False)
    assert none.complete and not none.failures and none.schedules == none.by_preemptions[0]


def test_with_daemons_the_failing_trace_replays_through_machine_replay() -> None:
    res = explore_exhaustive(counter(False), cpus=2, preemptions=1, init=[_init], daemons=True)
    assert res.failures
    f = res.failures[0]
    assert f.trace is not None
    m = Machine(cpus=2, init=[_init], replay=f.trace)
    with pytest.raises(AssertionError, match="lost update"):
        counter(False)(m)
    assert m.diverged is None


@pytest.mark.parametrize(("reduction", "bound"), [(True, 2), (False, 1)])
def test_the_result_does_not_depend_on_the_order_tasks_are_passed_in(reduction: bool, bound: int) -> None:
    clean = [explore_exhaustive(counter(True, order), cpus=2, preemptions=bound, reduction=reduction,
                                init=[_init], daemons=False) for order in (0, 1)]
    assert all(r.complete and not r.failures for r in clean)
    assert clean[0].schedules == clean[1].schedules
    buggy = [explore_exhaustive(counter(False, order), cpus=2, preemptions=bound, reduction=reduction,
                                init=[_init], daemons=False) for order in (0, 1)]
    assert all(r.failures and r.failures[0].preemptions == 1 for r in buggy)


def test_on_one_cpu_the_lost_update_needs_a_kernel_preemption() -> None:
    res = explore_exhaustive(counter(False), cpus=1, preemptions=1, init=[_init], daemons=False)
    assert res.failures and "P" in res.failures[0].schedule_text


def test_python_state_shared_at_an_explicit_preempt_point_is_never_reduced_away() -> None:
    """Steps around preempt_point() are opaque: a lost update of a Python counter is found."""

    def scenario(m: Machine) -> None:
        shared = [0]

        def inc() -> None:
            x = shared[0]
            preempt_point()
            shared[0] = x + 1

        m.run(inc, inc)
        assert shared[0] == 2, "lost update"

    res = explore_exhaustive(scenario, cpus=2, preemptions=1, boot=False)
    assert res.failures and res.failures[0].kind == "AssertionError"


def test_schedule_text_round_trips_and_bad_arguments_are_refused() -> None:
    sched = [("C",), ("S", 2), ("C",), ("D", 3, 0), ("P",), ("V", 1), ("I", 5)]
    text = schedule_text(sched)
    assert text == "1:S2 3:D3@0 4:P 5:V1 6:I5"
    assert parse_schedule(text) == sched
    with pytest.raises(KmemUsageError, match="bad schedule token"):
        parse_schedule("1:Q2")
    for kw in ({"cpus": 0}, {"preemptions": -1}, {"max_schedules": 0}, {"preemptions": True}):
        with pytest.raises(KmemUsageError):
            explore_exhaustive(counter(True), **kw)  # type: ignore[arg-type]
    with pytest.raises(KmemUsageError, match="scenario callable"):
        explore_exhaustive(42)  # type: ignore[arg-type]
    with pytest.raises(KmemUsageError, match="takes no seed="):
        explore_exhaustive(counter(True), seed=3)


def test_max_schedules_stops_the_search_and_says_it_is_not_complete() -> None:
    res = explore_exhaustive(counter(True), cpus=2, preemptions=2, max_schedules=3, init=[_init], daemons=False)
    assert res.schedules == 3 and not res.complete and not res.failures
    assert "NOT complete" in str(res)


def test_the_reduction_reaches_every_outcome_the_full_search_reaches() -> None:
    """A reader reads a line twice while a writer writes it twice and touches a line of its
    own: (1, 2) needs writer, reader, writer, reader; the reduction must still reach it."""

    def run(reduction: bool) -> tuple[set[tuple[int, ...]], int]:
        outcomes: set[tuple[int, ...]] = set()

        def scenario(m: Machine) -> None:
            base = _AREAS[-1]
            seen: list[int] = []

            def reader() -> None:
                write_u32(base + 128, 7)  # a line nobody else touches: independent steps
                seen.append(read_u32(base + 64))
                seen.append(read_u32(base + 64))

            def writer() -> None:
                write_u32(base + 64, 1)
                write_u32(base + 192, 7)
                write_u32(base + 64, 2)

            m.run(reader, writer)
            outcomes.add(tuple(seen))

        res = explore_exhaustive(scenario, cpus=2, preemptions=2, reduction=reduction, init=[_init], daemons=False)
        assert res.complete
        return outcomes, res.schedules

    (full, n_full), (reduced, n_reduced) = run(False), run(True)
    assert (1, 2) in full and reduced == full
    assert n_reduced < n_full


def test_a_scenario_that_does_not_repeat_itself_is_refused_with_the_reason() -> None:
    calls = [0]

    def scenario(m: Machine) -> None:
        calls[0] += 1
        m.run(*[lambda: preempt_point()] * (1 + calls[0] % 2))  # a task more every other run

    with pytest.raises(KmemUsageError, match="not deterministic"):
        explore_exhaustive(scenario, cpus=2, preemptions=1, boot=False)


@pytest.mark.parametrize("name", ["depth3_ordering", "narrow_abba", "lost_wakeup"])
def test_the_search_finds_the_zoo_bugs_that_need_an_order_and_the_lost_wakeup_fix_is_proved(name: str) -> None:
    from percpu_kmem.zoo import load_zoo

    driver = next(d for d in load_zoo() if d.name == name)
    kw = dict(driver.buggy.machine)
    cpus = kw.pop("cpus", 2)
    res = explore_exhaustive(driver.buggy.run, cpus=cpus, preemptions=2, max_schedules=400,
                             expect=driver.buggy.expect, daemons=False, **kw)  # kswapd takes no part
    assert res.failures and driver.matches(res.failures[0].kind), res
    assert res.failures[0].preemptions <= 1
    if name == "lost_wakeup":
        kw = dict(driver.fixed.machine)
        cpus = kw.pop("cpus", 2)
        fixed = explore_exhaustive(driver.fixed.run, cpus=cpus, preemptions=2, expect=driver.fixed.expect,
                                   daemons=False, **kw)
        assert fixed.complete and not fixed.failures
