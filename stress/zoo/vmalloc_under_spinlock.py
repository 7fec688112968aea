"""vmalloc() under a spinlock.

A firmware-update path takes the device's spinlock and then vmallocs the new
image buffer. vmalloc() allocates its pages with GFP_KERNEL and may sleep
(page tables, reclaim); holding a spinlock makes the context atomic, so
might_sleep() inside __vmalloc reports "BUG: sleeping function called from
invalid context". The fix allocates before taking the lock and only swaps
the pointer under it. Found by might_sleep.
"""

from percpu_kmem.linux import spin_lock, spin_lock_init, spin_unlock, vfree, vmalloc
from percpu_kmem.scenarios import stress

DETECTOR = "might_sleep"
REPORTS = ("sleep_in_atomic",)

FW_SIZE = 3 * 4096


def _fw_update(m, alloc_under_lock):
    lock = spin_lock_init("fw_lock")
    dev = {"image": None}

    def update():
        if alloc_under_lock:
            spin_lock(lock)
            new = vmalloc(FW_SIZE)             # sleeps with fw_lock held
        else:
            new = vmalloc(FW_SIZE)
            spin_lock(lock)
        old, dev["image"] = dev["image"], new
        spin_unlock(lock)
        vfree(old)

    m.run(update, update)
    m.run(lambda: vfree(dev["image"]))


@stress(cpus=2)
def buggy(m):
    """vmalloc() with fw_lock held."""
    _fw_update(m, True)


@stress(cpus=2)
def fixed(m):
    """vmalloc() first, then swap the pointer under fw_lock."""
    _fw_update(m, False)
