"""A GFP_KERNEL allocation under a filesystem lock that reclaim takes.

A filesystem's inode-cache shrinker takes the fs lock to walk its cache, so
memory reclaim depends on that lock (lockdep's fs_reclaim -> fs_lock). The
write path allocates a buffer with GFP_KERNEL while holding the same lock:
that allocation may enter reclaim, which may call the shrinker, which waits
for the lock the writer holds. lockdep reports the cycle through its
fs_reclaim annotation ("WARNING: possible circular locking dependency
detected", fs_lock -> fs_reclaim) even when no reclaim happened in that
call. The fix allocates with GFP_NOFS (or inside memalloc_nofs_save()).
Found by lockdep's fs_reclaim annotation.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    GFP_NOFS,
    __free_pages,
    alloc_pages,
    fill_page_cache,
    kfree,
    kmalloc,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    register_shrinker,
)
from percpu_kmem.scenarios import stress

DETECTOR = "lockdep"
REPORTS = ("lockdep_circular",)


def _fs(m, write_gfp):
    fs_lock = mutex_init("zoofs_lock")
    cache = {"inodes": 64}

    def count_objects(gfp):
        return cache["inodes"]

    def scan_objects(nr, gfp):
        mutex_lock(fs_lock)                      # reclaim takes the fs lock
        freed = min(nr, cache["inodes"])
        cache["inodes"] -= freed
        mutex_unlock(fs_lock)
        return freed

    def mount():
        register_shrinker("zoofs_inodes", count_objects, scan_objects)
        fill_page_cache(1500)
        held = [alloc_pages(GFP_KERNEL, 0) for _ in range(650)]   # memory pressure: reclaim runs
        for p in held:
            if p is not None:
                __free_pages(p, 0)

    def write_begin():
        mutex_lock(fs_lock)
        buf = kmalloc(4096, write_gfp)           # may enter reclaim with fs_lock held
        mutex_unlock(fs_lock)
        kfree(buf)

    m.run(mount)
    m.run(write_begin)


@stress(cpus=1, memory="8M", lockdep=True)
def buggy(m):
    """kmalloc(GFP_KERNEL) with the fs lock held."""
    _fs(m, GFP_KERNEL)


@stress(cpus=1, memory="8M", lockdep=True)
def fixed(m):
    """kmalloc(GFP_NOFS) with the fs lock held."""
    _fs(m, GFP_NOFS)
