"""The optional greenlet engine: the same traces and reports as the thread engine, seed for seed.

Every scenario of percpu_kmem.scenarios, the runtime workloads below and every zoo
driver (both twins; stress/zoo) are run under each policy on both engines.

Machine(engine="greenlet") runs the deterministic policies' tasks as greenlets of one
driver thread instead of OS threads. Every decision is the baton engine's, so each
scenario below must give, under each policy and seed, the same trace (byte for byte),
the same reports, results and clocks under both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    GFP_KERNEL,
    init_waitqueue_head,
    kfree,
    kmalloc,
    kthread_run,
    msleep,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    preempt_point,
    schedule,
    schedule_timeout_uninterruptible,
    smp_call_function,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    wait_event,
    wake_up,
)
from percpu_kmem.runtime import greenlet_engine
from percpu_kmem.scenarios import SCENARIOS

pytest.importorskip("greenlet")
pytestmark = pytest.mark.timeout(60)

Scenario = Callable[[Machine], Any]


def spin_contention(m: Machine) -> Any:
    lock = spin_lock_init("contended")

    def body() -> None:
        for _ in range(8):
            spin_lock(lock)
            preempt_point("inside")
            spin_unlock(lock)

    return m.run(body, body, body)


def sleepers(m: Machine) -> Any:
    """Mutexes, a wait queue, msleep and schedule_timeout (timers), a kthread_run'd task."""
    mx = mutex_init("mx")
    wq = init_waitqueue_head()
    state = {"n": 0}

    def producer() -> int:
        for _ in range(6):
            mutex_lock(mx)
            state["n"] += 1
            mutex_unlock(mx)
            wake_up(wq)
            msleep(1)
        return state["n"]

    def consumer() -> int:
        wait_event(wq, lambda: state["n"] >= 6)
        return state["n"]

    def spawner() -> None:
        kthread_run(lambda data: schedule_timeout_uninterruptible(3), None, "child")
        schedule()

    return m.run(producer, consumer, spawner)


def cross_cpu_calls(m: Machine) -> Any:
    """smp_call_function (IPIs: interrupts pending on CPUs, idle CPUs serving them)."""
    hits: list[int] = []

    def body() -> None:
        for _ in range(2):
            smp_call_function(lambda info: hits.append(1), None, True)
            kfree(kmalloc(64, GFP_KERNEL))

    m.run(body, body)
    return len(hits)


def broken_task(m: Machine) -> Any:
    """A task raises: the run drains (the others unwind at safe points) and re-raises."""
    lock = spin_lock_init("l")

    def bad() -> None:
        for _ in range(3):
            preempt_point("x")
        raise ValueError("task broke")

    def good() -> None:
        while True:
            spin_lock(lock)
            spin_unlock(lock)

    try:
        m.run(bad, good)
    except ValueError as e:
        return f"raised {e}"
    return "no error"


def deadlock(m: Machine) -> Any:
    """AB-BA on two mutexes, each task sleeping in between: a deadlock report ends the run."""
    a, b = mutex_init("a"), mutex_init("b")

    def ab() -> None:
        mutex_lock(a)
        msleep(1)
        mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)

    def ba() -> None:
        mutex_lock(b)
        msleep(1)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    m.run(ab, ba)
    return [r.kind for r in m.reports]


def from_suite(name: str) -> Scenario:
    sc = SCENARIOS[name]
    return lambda m: sc.run(m, tasks=sc.tasks)


CASES: dict[str, Scenario] = {
    **{f"scenario-{name}": from_suite(name) for name in SCENARIOS},
    "spin-contention": spin_contention,
    "sleepers": sleepers,
    "cross-cpu-calls": cross_cpu_calls,
    "broken-task": broken_task,
    "deadlock": deadlock,
}


def outcome(case: str, engine: str, policy: str, seed: int, cpus: int) -> dict[str, Any]:
    m = Machine(cpus=cpus, memory="16M", policy=policy, seed=seed, engine=engine)
    result = CASES[case](m)
    return {"trace": str(m.last_trace), "reports": [r.text for r in m.reports], "result": repr(result),
            "steps": m.steps, "now": m.now, "clocks": [c.clock for c in m.cpus], "dmesg": m.dmesg}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_greenlet_engine_gives_the_thread_engines_trace_and_reports(case: str, policy: str, seed: int) -> None:
    cpus = 1 + seed  # one CPU (preemption only) and two (migration, idle CPUs)
    want = outcome(case, "thread", policy, seed, cpus)
    got = outcome(case, "greenlet", policy, seed, cpus)
    assert len(want["trace"]) > 30  # the scenario did schedule
    assert got == want


def _zoo_twins() -> list[Any]:
    from percpu_kmem.zoo import load_zoo
    return [sc for d in load_zoo() if not d.unavailable() for sc in (d.buggy, d.fixed)]


@pytest.mark.parametrize("twin", _zoo_twins(), ids=lambda sc: sc.name.rsplit("/", 1)[-1])
@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_every_zoo_driver_gives_the_same_verdict_and_schedule_on_both_engines(twin: Any, policy: str) -> None:
    from dataclasses import replace

    from percpu_kmem.campaign import run_one
    seed = len(twin.name) % 3  # a seed per driver, spread
    want = replace(run_one(twin, policy, {}, seed), seconds=0.0)
    got = replace(run_one(twin, policy, {}, seed, engine="greenlet"), seconds=0.0)
    assert want.schedule  # it did schedule
    assert got == want


def test_a_thread_engine_trace_replays_on_the_greenlet_engine() -> None:
    m = Machine(cpus=2, memory="16M", seed=5)
    spin_contention(m)
    r = Machine(cpus=2, memory="16M", seed=5, replay=m.trace, engine="greenlet")
    spin_contention(r)
    assert r.diverged is None
    assert str(r.trace) == str(m.trace)


def test_a_greenlet_machine_runs_again_and_uses_no_thread_per_task() -> None:
    m = Machine(cpus=2, memory="16M", engine="greenlet")
    first = spin_contention(m)
    second = spin_contention(m)
    assert first == second == [None, None, None]
    assert m.engine is not None and m.engine.threads_alive() == 0
    m.check()


def test_a_greenlet_run_that_never_ends_times_out_and_the_machine_runs_again() -> None:
    from percpu_kmem import RunTimeout
    m = Machine(cpus=2, memory="16M", engine="greenlet", timeout=0.3)

    def forever() -> None:
        while True:
            kfree(kmalloc(32, GFP_KERNEL))

    with pytest.raises(RunTimeout):
        m.run(forever, forever)
    m.check()
    assert spin_contention(m) == [None, None, None]


@pytest.mark.parametrize("bad", ["fiber", "", None, 1, "Thread"])
def test_bad_engines_are_refused(bad: Any) -> None:
    with pytest.raises(KmemUsageError, match="engine"):
        Machine(cpus=1, boot=False, engine=bad)


def test_the_free_policy_runs_on_threads_only() -> None:
    with pytest.raises(KmemUsageError, match="policy 'free' runs real threads"):
        Machine(cpus=2, boot=False, policy="free", engine="greenlet")


def test_without_the_greenlet_package_the_engine_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(greenlet_engine, "greenlet_available", lambda: False)
    with pytest.raises(KmemUsageError, match=r"pip install 'percpu_kmem\[greenlet\]'"):
        Machine(cpus=1, boot=False, engine="greenlet")
