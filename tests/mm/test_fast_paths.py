"""The allocators' fast paths and the cheap boot keep behaviour: the written-out fast paths
pass the scheduling points the helpers they replace passed (so every seed's trace stays),
a freshly booted machine equals one booted with nothing cached, and machines share no
mutable state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import (
    GFP_ATOMIC,
    GFP_KERNEL,
    Machine,
    __free_pages,
    alloc_pages,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_free,
    raise_irq,
)
from percpu_kmem.boot import boot_templates
from percpu_kmem.mm import slab as slab_mod
from percpu_kmem.runtime.errors import NoMemoryLayers

PROCS = ("slabinfo", "buddyinfo", "zoneinfo", "meminfo", "vmstat")


def views(m: Machine) -> dict[str, str]:
    return {name: m.proc(name) for name in PROCS}


def steps_of(body: Callable[[], Any]) -> int:
    """Scheduling points one task passes running ``body`` (the policy never decides)."""
    m = Machine(cpus=1, seed=0, mean_run=10**9)
    m.run(body)
    assert not m.reports, [r.text for r in m.reports]
    return m.steps


def warm() -> None:
    for _ in range(4):
        kfree(kmalloc(64, GFP_KERNEL))
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0)


@pytest.mark.parametrize("op, points", [
    (lambda: kfree(kmalloc(64, GFP_KERNEL)), 3),  # might_sleep, the irq restores of kmalloc and kfree
    (lambda: kfree(kmalloc(64, GFP_ATOMIC)), 2),  # the two irq restores
    (lambda: __free_pages(alloc_pages(GFP_KERNEL, 0), 0), 3),
    (lambda: __free_pages(alloc_pages(GFP_ATOMIC, 0), 0), 2),
])
def test_fast_paths_pass_the_scheduling_points_of_the_helpers_they_replace(op: Callable[[], None], points: int) -> None:
    def base() -> None:
        warm()

    def with_ops() -> None:
        warm()
        for _ in range(10):
            op()

    assert steps_of(with_ops) - steps_of(base) == 10 * points


def test_kmem_cache_fast_path_points() -> None:
    cache: list[Any] = []

    def base() -> None:
        cache.append(kmem_cache_create(f"fp{len(cache)}", 100))
        kmem_cache_free(cache[-1], kmem_cache_alloc(cache[-1], GFP_KERNEL))

    def with_ops() -> None:
        base()
        for _ in range(10):
            kmem_cache_free(cache[-1], kmem_cache_alloc(cache[-1], GFP_KERNEL))

    assert steps_of(with_ops) - steps_of(base) == 30


@pytest.mark.parametrize("kw", [{"cpus": 2}, {"cpus": 3, "memory": "32M", "nodes": 2}, {"cpus": 1, "slab_debug": True},
                                {"cpus": 2, "memory": "1G"}])
def test_fresh_machine_equals_one_booted_with_nothing_cached(kw: dict[str, Any]) -> None:
    """Cache layouts are worked out once per process and locks and magazines are made at
    first use: a machine booted that way shows exactly what one booted from scratch shows,
    before and after the same workload."""
    def work() -> None:
        objs = [kmalloc(n, GFP_KERNEL) for n in (8, 64, 100, 200, 1000, 5000)]
        page = alloc_pages(GFP_KERNEL, 1)
        for o in objs:
            kfree(o)
        __free_pages(page, 1)

    saved = dict(slab_mod._LAYOUTS)
    slab_mod._LAYOUTS.clear()
    templates = boot_templates(False)  # both boot from scratch (tests/test_boot_template.py: templates)
    try:
        scratch = Machine(seed=3, **kw)
        assert slab_mod._LAYOUTS, "booting filled the layout cache"
        cached = Machine(seed=3, **kw)
    finally:
        slab_mod._LAYOUTS.update(saved)
        boot_templates(templates)
    assert views(cached) == views(scratch)
    scratch.run(work)
    cached.run(work)
    assert views(cached) == views(scratch)
    assert [r.text for r in cached.reports] == [r.text for r in scratch.reports]
    assert cached.proc("lock_stat") == scratch.proc("lock_stat")


def test_machines_share_no_mutable_state() -> None:
    """Two machines of the same configuration: allocating in one, or tuning one of its
    caches, leaves the other (and the next machine made) as it was."""
    a = Machine(cpus=2, seed=1)
    b = Machine(cpus=2, seed=1)
    before = views(b)

    def work() -> None:
        kmalloc(64, GFP_KERNEL)
        alloc_pages(GFP_KERNEL, 0)

    a.run(work)
    a.run(lambda: a.slab.slabinfo_write("size-64 60 30 4"))
    assert views(a) != before
    assert views(b) == before
    c = Machine(cpus=2, seed=1)
    assert views(c) == before
    ca, cb = a.slab.find("size-64"), b.slab.find("size-64")
    assert ca is not None and cb is not None
    assert (ca.limit, ca.batchcount, ca.shared) == (60, 30, 4)
    assert (cb.limit, cb.batchcount, cb.shared) == (120, 60, 8)
    assert ca.list_lock is not cb.list_lock and ca.cpu is not cb.cpu and ca.cpu[0] is not cb.cpu[0]
    assert ca.slabs_partial is not cb.slabs_partial and ca.depot_full is not cb.depot_full


def test_cache_locks_made_at_first_use_are_the_usual_ones() -> None:
    m = Machine(cpus=2, seed=0)
    c = m.slab.find("size-128")
    assert c is not None
    assert "list_lock" not in vars(c) and "depot_lock" not in vars(c)
    assert c.list_lock.name == "size-128->spinlock" and c.depot_lock.name == "size-128->depot_lock"
    assert c.list_lock.internal and c.list_lock is c.list_lock and c.list_lock is not c.depot_lock
    assert len(c.cpu) == 2 and c.cpu[0].avail() == 0
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        c.nonesuch  # type: ignore[attr-defined]


@pytest.mark.parametrize("flags", [GFP_ATOMIC, GFP_KERNEL])
def test_an_interrupt_raised_inside_the_allocation_runs_when_it_restores_interrupts(flags: int) -> None:
    """The written-out local_irq_restore() delivers what was raised while interrupts were
    off. A GFP_ATOMIC slab grows with interrupts off, so the constructor raises the IRQ
    inside kmem_cache_alloc's critical section; a GFP_KERNEL one grows with them on (and
    the IRQ runs at once, before the allocation returns as well)."""
    order: list[str] = []
    m = Machine(cpus=1, seed=0, mean_run=10**9)
    m.request_irq(5, lambda irq, dev: order.append("irq"))

    def ctor(obj: int, cache: Any, fl: int) -> None:
        if not order:
            order.append("ctor")
            raise_irq(5)

    def body() -> None:
        cache = kmem_cache_create("irqtest", 64, 0, 0, ctor)
        obj = kmem_cache_alloc(cache, flags)
        order.append("returned")
        kmem_cache_free(cache, obj)

    m.run(body)
    assert order == ["ctor", "irq", "returned"]
    assert not m.reports


def test_an_unbooted_machine_answers_no_memory_layers_and_keeps_its_class_name() -> None:
    class MyMachine(Machine):
        pass

    m = Machine(cpus=1, boot=False)
    assert isinstance(m, Machine) and type(m).__name__ == "Machine" and repr(m).startswith("<Machine ")
    with pytest.raises(NoMemoryLayers, match="no m.slab"):
        m.slab
    assert getattr(m, "mm", None) is None
    with pytest.raises(AttributeError, match="'Machine' object has no attribute 'nonesuch'"):
        m.nonesuch  # type: ignore[attr-defined]
    mine = MyMachine(cpus=1, boot=False)
    assert isinstance(mine, MyMachine) and type(mine).__name__ == "MyMachine"
    with pytest.raises(NoMemoryLayers):
        mine.vmalloc
    booted = Machine(cpus=1)
    assert type(booted) is Machine and "__getattr__" not in vars(Machine)
    with pytest.raises(AttributeError, match="'Machine' object has no attribute 'nonesuch'"):
        booted.nonesuch  # type: ignore[attr-defined]
