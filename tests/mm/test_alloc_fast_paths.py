"""The written-out fast paths of kmalloc/kfree and of the order-0 page allocator are the
full paths' common case: a run that takes them and the same run made to take the full
paths (the event log of Machine(events=True) sends every kmalloc, kfree, alloc_pages and
free into the full paths, and changes nothing of the run) decide, charge and report alike.
And the slab checker holds kfree's page -> slab table to the pages marked PG_slab."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import (
    GFP_ATOMIC,
    GFP_DMA,
    GFP_KERNEL,
    Machine,
    __free_pages,
    alloc_pages,
    kfree,
    kmalloc,
    local_irq_disable,
    local_irq_enable,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)
from percpu_kmem.mm.kmalloc import kmalloc_index
from percpu_kmem.mm.slab import KMALLOC_SMALL, kmem_cache_tune_model
from percpu_kmem.runtime.errors import InconsistentState
from percpu_kmem.runtime.task import current_task

PROCS = ("slabinfo", "buddyinfo", "meminfo", "vmstat")
SIZES = (0, 8, 64, 64, 200, 256, 300, 64, 2000)


def scenario(policy: str, seed: int, events: bool, lists_off: bool = False) -> tuple[Any, ...]:
    """Three tasks on two CPUs and an interrupt that allocates: the fast paths' every
    condition both ways (irqs off, a spinlock held, GFP_ATOMIC and GFP_DMA, sizes above
    the table, a budget ending at the might_sleep point, frees filling a magazine);
    ``lists_off``: no per-CPU page lists and no size-64 magazines (a study's tuning)."""
    opts = {"mean_run": 2} if policy == "random" else {}
    m = Machine(cpus=2, policy=policy, seed=seed, events=events, **opts)
    lock = spin_lock_init("t")

    def handler(irq: int, dev: Any) -> None:
        kfree(kmalloc(64, GFP_ATOMIC))
        __free_pages(alloc_pages(GFP_ATOMIC, 0), 0)

    m.request_irq(7, handler, rate=0.05)

    def body() -> None:
        held: list[int | None] = []
        pages: list[Any] = []
        for i, size in enumerate(SIZES * 3):
            if i % 7 == 3:
                spin_lock(lock)
                held.append(kmalloc(size, GFP_ATOMIC))
                spin_unlock(lock)
            elif i % 7 == 5:
                local_irq_disable()
                held.append(kmalloc(size, GFP_ATOMIC | (GFP_DMA if i % 2 else 0)))
                local_irq_enable()
            else:
                held.append(kmalloc(size, GFP_KERNEL))
            pg = alloc_pages(GFP_KERNEL if i % 3 else GFP_ATOMIC, 0)
            pg.private, pg.owner = i + 1, i + 2  # an upper layer's page fields: the free clears them
            pages.append(pg)
            if i % 4 == 3:
                kfree(held.pop(0))
                __free_pages(pages.pop(0), 0)
        for p in held:
            kfree(p)
        for pg in pages:
            __free_pages(pg, 0)
        for _ in range(40):  # fill the loaded magazine: the frees that miss it
            kfree(kmalloc(64, GFP_KERNEL))

    if lists_off:
        def tune() -> None:
            m.mm.set_pagesets(current_task(), 0, 0)
            cache = m.slab.find("size-64")
            assert cache is not None
            kmem_cache_tune_model(cache, 0, 0, 0)
        m.run(tune)
    m.run(body, body, body)
    m.slab.check()
    mem = m.mem
    return (m.trace.decisions, m.now, [c.clock for c in m.cpus], {p: m.proc(p) for p in PROCS},
            [r.text for r in m.reports], [bytes(a) for a in (mem.flags, mem.count, mem.order, mem.private, mem.owner)])


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_paths_make_the_run_the_full_paths_make(policy: str, seed: int) -> None:
    fast = scenario(policy, seed, events=False)
    full = scenario(policy, seed, events=True)
    assert fast[0] == full[0], "decisions differ"
    assert fast[1:] == full[1:]


@pytest.mark.parametrize("policy", ["random", "virtual"])
def test_fast_paths_with_the_per_cpu_layers_off(policy: str) -> None:
    fast = scenario(policy, 0, events=False, lists_off=True)
    full = scenario(policy, 0, events=True, lists_off=True)
    assert fast[0] == full[0], "decisions differ"
    assert fast[1:] == full[1:]


def test_the_slab_checker_holds_the_page_table_of_kfree_to_the_slab_pages() -> None:
    m = Machine(cpus=1, seed=0)
    m.run(lambda: kfree(kmalloc(64, GFP_KERNEL)))
    sa = m.slab
    sa.check()
    pfn, slab = next(iter(sa.slab_page.items()))
    del sa.slab_page[pfn]
    with pytest.raises(InconsistentState, match="not marked as this cache's slab"):
        sa.check()
    sa.slab_page[pfn] = slab
    sa.slab_page[m.mem.nr_pages - 1] = slab  # a page no slab has
    with pytest.raises(InconsistentState, match="pages known as slab pages"):
        sa.check()


def test_kmallocs_size_table_gives_the_class_kmalloc_index_gives() -> None:
    m = Machine(cpus=1, seed=0)
    sa = m.slab
    assert len(sa.kmalloc_small) == KMALLOC_SMALL + 1
    for size in range(KMALLOC_SMALL + 1):
        assert sa.kmalloc_small[size] is sa.kmalloc_normal[kmalloc_index(size)], size
    got = m.run(lambda: [kmalloc(size, GFP_KERNEL) for size in (0, 1, 32, 33, 96, 97, 192, 193, 256)])[0]
    names = [sa.page_cache(p, "test").name for p in got]
    assert names == ["size-32", "size-32", "size-32", "size-64", "size-96", "size-128", "size-192", "size-256",
                     "size-256"]
