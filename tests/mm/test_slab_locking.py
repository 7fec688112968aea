"""The slab allocator's own locking under the lock validator and the data-race detector:
correct use of caches is never reported (the kernel's lock and irq discipline kept)."""

from __future__ import annotations

import pytest

from percpu_kmem import GFP_ATOMIC, GFP_KERNEL, Machine
from percpu_kmem.linux import (
    SLAB_HWCACHE_ALIGN,
    free_irq,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_shrink,
    kmem_cache_tune,
    raise_irq,
    read_u32,
    request_irq,
    write_u32,
)

SEEDS = range(3)


@pytest.mark.parametrize("policy", ["random", "pct", "free"])
@pytest.mark.parametrize("seed", SEEDS)
def test_shrink_tune_and_destroy_with_interrupts_on_are_not_inconsistent(policy: str, seed: int) -> None:
    """kmem_cache_shrink/destroy drain every CPU by IPI (the cache lists taken in hardirq
    context) and then take the lists themselves: with spin_lock_irq, as 2.6.11, so lockdep
    sees no {IN-HARDIRQ-W} -> {HARDIRQ-ON-W}; the same for the tunables' lock, which an
    interrupt handler's GFP_ATOMIC allocation takes."""
    m = Machine(cpus=2, policy=policy, seed=seed, lockdep=True, timeout=60)
    cache = m.run(lambda: kmem_cache_create("drv_cache", 200))[0]

    def handler(irq: int, dev: object) -> None:
        obj = kmem_cache_alloc(cache, GFP_ATOMIC)
        if obj is not None:
            kmem_cache_free(cache, obj)

    def user() -> None:
        objs = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(12)]
        raise_irq(9)
        for obj in objs:
            kmem_cache_free(cache, obj)
        kmem_cache_shrink(cache)
        kmem_cache_tune(cache, 32, 8, 0)

    m.run(lambda: request_irq(9, handler, 0, "drv"))
    m.run(user, user)
    m.run(lambda: (free_irq(9), kmem_cache_destroy(cache)))
    assert m.reports == [], m.reports[0].text


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_constructor_never_races_with_the_users_of_its_objects(policy: str, seed: int) -> None:
    """An object a constructor initialised reaches another task through the slab lists (a
    lock) or a CPU's magazine (interrupts off on that CPU): KCSAN reports no race between
    the constructor's writes and the reads of the task that allocated the object."""
    m = Machine(cpus=2, policy=policy, seed=seed, kcsan=True, timeout=60)
    cache = m.run(lambda: kmem_cache_create("ctor_cache", 100, 0, SLAB_HWCACHE_ALIGN,
                                            lambda obj, c, flags: write_u32(obj, 0x1234)))[0]

    def user() -> None:
        objs = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(6)]
        for obj in objs:
            assert read_u32(obj) == 0x1234
        for obj in objs:
            kmem_cache_free(cache, obj)

    m.run(user, user)
    assert m.reports == [], m.reports[0].text
