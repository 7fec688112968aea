"""Slab shrinking under pressure: a dentry-like cache that reclaim trims through its shrinker.

A filesystem keeps unused objects cached on an LRU list (as the dcache keeps unused
dentries) so that a later lookup finds them again, and registers a shrinker so that
memory pressure can take them back: ``count_objects`` says how many are on the LRU,
``scan_objects`` frees some of them with ``kmem_cache_free``, taking the LRU's
spinlock. On an 8 MiB machine filled with page cache, three threads look objects up
(one lookup in four reuses an object from the LRU, the others allocate a new one
with GFP_KERNEL), use them, put them
back on the LRU, and hold page sets that push the zone below its watermarks, so
reclaim (kswapd or direct) calls the shrinker while the threads use the same list.

At the end the threads empty the LRU, ``kmem_cache_shrink`` gives the empty slabs back,
``kmem_cache_destroy`` finds no object in use, and the shrinker ran at least once.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    __free_pages,
    alloc_pages,
    fill_page_cache,
    init_waitqueue_head,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_shrink,
    read_u32,
    register_shrinker,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    wait_event,
    wake_up,
    write_u32,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

LOOKUPS = 40
PRESSURE_PAGES = 150


@stress(cpus=2, memory="8M", seeds=21)
def shrinker_under_pressure(m):
    """Three threads use a cached LRU of slab objects while reclaim shrinks it."""
    before = leak_snapshot(m)
    lru = []
    lru_lock = spin_lock_init("lru_lock")
    state = {"cache": None, "filled": False, "scanned": 0, "done": 0}
    ready = init_waitqueue_head("ready")

    def count_objects(gfp):
        return len(lru)

    def scan_objects(nr, gfp):
        freed = 0
        while freed < nr:
            spin_lock(lru_lock)
            obj = lru.pop(0) if lru else None
            spin_unlock(lru_lock)
            if obj is None:
                break
            kmem_cache_free(state["cache"], obj)
            freed += 1
        state["scanned"] += freed
        return freed

    def owner():
        state["cache"] = kmem_cache_create("stress_dentry", 192, 0, 0)
        register_shrinker("stress_dentry", count_objects, scan_objects)
        fill_page_cache(1850, "clean")
        state["filled"] = True
        wake_up(ready)
        user(0)
        wait_event(ready, lambda: state["done"] == 3)
        assert kmem_cache_shrink(state["cache"]) == 0, "a slab still has objects in use"
        kmem_cache_destroy(state["cache"])

    def user(n):
        for i in range(LOOKUPS):
            obj = None
            if i % 4 == 3:  # a lookup that hits the cache; the others are new names
                spin_lock(lru_lock)
                obj = lru.pop() if lru else None
                spin_unlock(lru_lock)
            if obj is None:
                obj = kmem_cache_alloc(state["cache"], GFP_KERNEL)
                assert obj is not None, "GFP_KERNEL slab allocation failed while reclaim could shrink"
            write_u32(obj, n * 1000 + i)
            if i % 20 == 10:
                held = [alloc_pages(GFP_KERNEL, 0) for _ in range(PRESSURE_PAGES)]
                for page in held:
                    if page is not None:
                        __free_pages(page, 0)
            assert read_u32(obj) == n * 1000 + i, "an object on the LRU was freed while in use"
            spin_lock(lru_lock)
            lru.append(obj)
            spin_unlock(lru_lock)
        while True:  # umount: drop every cached object
            spin_lock(lru_lock)
            obj = lru.pop() if lru else None
            spin_unlock(lru_lock)
            if obj is None:
                break
            kmem_cache_free(state["cache"], obj)
        spin_lock(lru_lock)
        state["done"] += 1
        spin_unlock(lru_lock)
        wake_up(ready)

    def other(n):
        def run():
            wait_event(ready, lambda: state["filled"])
            user(n)
        run.__name__ = f"user{n}"
        return run

    m.run(owner, other(1), other(2))
    assert state["scanned"] > 0, "reclaim never called the shrinker: no pressure"
    assert_no_leaks(m, before)
