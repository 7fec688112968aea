"""Runnable scenarios: the stress tests and demonstrations the command line runs.

Each scenario builds its tasks on a given machine, runs them and returns a dict
of results; ``explore_scenario`` runs one over many seeds and counts the runs in
which the kernel-style reports it looks for appeared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .linux import (
    get_cpu,
    might_sleep,
    preempt_point,
    put_cpu,
    raise_irq,
    raw_smp_processor_id,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from .machine import Machine
from .mm.gfp import GFP_ATOMIC, GFP_KERNEL
from .mm.kmalloc import kfree, kmalloc
from .mm.slab import SLAB_POISON, SLAB_RED_ZONE, kmem_cache_alloc, kmem_cache_create, kmem_cache_free


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    run: Callable[..., dict[str, Any]]
    tasks: int = 4


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, tasks: int = 4) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        SCENARIOS[name] = Scenario(name, (fn.__doc__ or "").strip().splitlines()[0], fn, tasks)
        return fn
    return deco


@scenario("percpu-counter")
def percpu_counter(m: Machine, tasks: int = 4, iterations: int = 20, fixed: bool = False) -> dict[str, Any]:
    """Per-CPU counter incremented without get_cpu() (or with it, --fixed): lost updates."""
    counts = [0] * m.nr_cpus

    def worker() -> None:
        for _ in range(iterations):
            cpu = get_cpu() if fixed else raw_smp_processor_id()
            v = counts[cpu]
            preempt_point("percpu_read")
            counts[cpu] = v + 1
            if fixed:
                put_cpu()
            else:
                preempt_point("percpu_write")

    m.run(*([worker] * tasks))
    return {"expected": tasks * iterations, "counted": sum(counts),
            "lost": tasks * iterations - sum(counts)}


@scenario("irq-lock")
def irq_lock(m: Machine, tasks: int = 2, iterations: int = 20, fixed: bool = False) -> dict[str, Any]:
    """An IRQ handler takes a lock its CPU holds with plain spin_lock (or irqsave, --fixed)."""
    lock = spin_lock_init("dev_lock")

    def handler(irq: int, dev: object) -> None:
        flags = spin_lock_irqsave(lock)
        spin_unlock_irqrestore(lock, flags)

    m.request_irq(10, handler, "dev", rate=0.2)

    def worker() -> None:
        for _ in range(iterations):
            if fixed:
                flags = spin_lock_irqsave(lock)
                preempt_point("critical")
                spin_unlock_irqrestore(lock, flags)
            else:
                spin_lock(lock)
                preempt_point("critical")
                spin_unlock(lock)

    m.run(*([worker] * tasks))
    return {"recursions": len(m.reports_of("spinlock_recursion"))}


@scenario("sleep-in-atomic", tasks=2)
def sleep_in_atomic(m: Machine, tasks: int = 2, iterations: int = 1, fixed: bool = False) -> dict[str, Any]:
    """might_sleep() inside a spinlock (or after it, --fixed)."""
    lock = spin_lock_init("my_lock")

    def worker() -> None:
        for _ in range(iterations):
            spin_lock(lock)
            if not fixed:
                might_sleep()
            spin_unlock(lock)
            might_sleep()

    m.run(*([worker] * tasks))
    return {"reports": len(m.reports_of("sleep_in_atomic"))}


@scenario("free-race", tasks=2)
def free_race(m: Machine, tasks: int = 2, iterations: int = 20, fixed: bool = False) -> dict[str, Any]:
    """Tasks drain a shared list of slab objects without a lock (or with one, --fixed): double frees."""
    lock = spin_lock_init("list_lock")
    box: list[Any] = []
    pending: list[int] = []

    def setup() -> None:
        box.append(kmem_cache_create("dev_buf", 64, 0, SLAB_RED_ZONE | SLAB_POISON))
        for _ in range(iterations):
            obj = kmem_cache_alloc(box[0], GFP_KERNEL)
            assert obj is not None, "a 64-byte object on a fresh machine"
            pending.append(obj)

    m.run(setup)

    def worker() -> None:
        while True:
            if fixed:
                spin_lock(lock)
            if not pending:
                if fixed:
                    spin_unlock(lock)
                return
            obj = pending[-1]  # look at the tail ...
            preempt_point("list_peek")
            if pending and pending[-1] == obj:
                pending.pop()  # ... and unlink it: another CPU may have seen the same tail
            if fixed:
                spin_unlock(lock)
            kmem_cache_free(box[0], obj)

    m.run(*([worker] * tasks))
    return {"double_frees": sum(r.count for r in m.reports_of("slab_double_free"))}


@scenario("irq-kmalloc", tasks=2)
def irq_kmalloc(m: Machine, tasks: int = 2, iterations: int = 10, fixed: bool = False) -> dict[str, Any]:
    """An interrupt handler calls kmalloc(GFP_KERNEL) (or GFP_ATOMIC, --fixed): sleeping in atomic context."""
    def handler(irq: int, dev: object) -> None:
        kfree(kmalloc(128, GFP_ATOMIC if fixed else GFP_KERNEL))

    m.request_irq(11, handler, "nic")

    def worker() -> None:
        for _ in range(iterations):
            kfree(kmalloc(256, GFP_KERNEL))
            raise_irq(11)

    m.run(*([worker] * tasks))
    return {"reports": len(m.reports_of("sleep_in_atomic"))}


DEFAULT_SCENARIO = "percpu-counter"


def explore_scenario(name: str, *, seeds: range, cpus: int, policy: str, tasks: int | None = None,
                     iterations: int | None = None, fixed: bool = False,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run scenario ``name`` for every seed; collect which seeds showed a bug."""
    sc = SCENARIOS[name]
    kw: dict[str, Any] = {"fixed": fixed}
    if tasks is not None:
        kw["tasks"] = tasks
    if iterations is not None:
        kw["iterations"] = iterations
    buggy: list[int] = []
    kinds: dict[str, int] = {}
    first: dict[str, Any] | None = None
    for seed in seeds:
        m = Machine(cpus=cpus, policy=policy, seed=seed)
        res = sc.run(m, **kw)
        m.check()
        bad = bool(m.reports) or bool(res.get("lost"))
        for r in m.reports:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        if bad:
            buggy.append(seed)
            if first is None:
                first = {"seed": seed, "result": res, "reports": [r.text for r in m.reports],
                         "replay": m.replay_hint() if policy != "free" else None}
        if progress:
            progress(1)
    return {"scenario": name, "policy": policy, "cpus": cpus, "runs": len(seeds), "buggy_seeds": buggy,
            "report_kinds": kinds, "first": first}


__all__ = ["Scenario", "SCENARIOS", "scenario", "percpu_counter", "irq_lock", "sleep_in_atomic", "free_race",
           "irq_kmalloc", "DEFAULT_SCENARIO", "explore_scenario"]
