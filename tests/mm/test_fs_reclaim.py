"""lockdep's fs_reclaim annotation, wired into the page allocator and reclaim."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import (
    GFP_KERNEL,
    __free_pages,
    alloc_pages,
    fill_page_cache,
    kfree,
    kmalloc,
    memalloc_nofs_restore,
    memalloc_nofs_save,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    register_shrinker,
)

pytestmark = pytest.mark.timeout(120)


def _fs_driver(nofs: bool) -> Machine:
    """A filesystem-like driver: its shrinker takes fs_lock (so reclaim depends on it), and
    elsewhere it allocates with fs_lock held (GFP_KERNEL: the allocation may enter reclaim)."""
    m = Machine(cpus=1, memory="16M", lockdep=True)
    fs_lock = mutex_init("fs_lock")  # a filesystem's lock: a sleeping one

    def count(gfp: int) -> int:
        return 1

    def scan(nr: int, gfp: int) -> int:
        scans.append(nr)
        mutex_lock(fs_lock)  # reclaim takes fs_lock: fs_reclaim -> fs_lock
        mutex_unlock(fs_lock)
        return 0

    def body() -> None:
        register_shrinker("fs_cache", count, scan)
        fill_page_cache(3000)
        held = [alloc_pages(GFP_KERNEL, 0) for _ in range(1300)]  # memory pressure: kswapd reclaims
        for p in held:
            if p is not None:
                __free_pages(p, 0)
        mutex_lock(fs_lock)
        flags = memalloc_nofs_save() if nofs else 0
        buf = kmalloc(4096, GFP_KERNEL)  # may enter reclaim: fs_lock -> fs_reclaim, the cycle
        if nofs:
            memalloc_nofs_restore(flags)
        mutex_unlock(fs_lock)
        kfree(buf)

    scans: list[int] = []
    m.run(body)
    assert scans, "reclaim never ran the shrinker: no pressure"
    return m


def test_gfp_kernel_under_a_lock_that_reclaim_takes_is_a_circular_dependency() -> None:
    m = _fs_driver(nofs=False)
    (rep,) = m.reports_of("lockdep_circular")
    assert "WARNING: possible circular locking dependency detected" in rep.text
    assert "fs_reclaim" in rep.text and "fs_lock" in rep.text


def test_a_nofs_scope_narrows_the_mask_and_silences_it() -> None:
    m = _fs_driver(nofs=True)
    assert not m.reports_of("lockdep_circular")
