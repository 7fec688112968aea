"""copy_to_user() with a spinlock held.

A character driver's read() protects its buffer with a spinlock (where LDD3's scull
uses a semaphore) and copies to user space inside it. copy_to_user() may fault the
user page in and so may sleep; it calls might_sleep() first, so the bug is reported
on every run, whether or not the page is present: "BUG: sleeping function called
from invalid context". The fix copies into a bounce buffer under the lock and to
user space after the unlock. Found by might_sleep.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    copy_to_user,
    kfree,
    kmalloc,
    memcpy,
    memset,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)
from percpu_kmem.scenarios import stress

DETECTOR = "might_sleep"
REPORTS = ("sleep_in_atomic",)

BUF = 64


def _read_path(m, copy_under_lock):
    lock = spin_lock_init("dev_lock")
    dev = {}

    def probe():
        dev["buf"] = kmalloc(BUF, GFP_KERNEL)
        memset(dev["buf"], 0x2A, BUF)

    def read():
        user = bytearray(BUF)
        if copy_under_lock:
            spin_lock(lock)
            left = copy_to_user(user, dev["buf"], BUF)    # may sleep with dev_lock held
            spin_unlock(lock)
        else:
            bounce = kmalloc(BUF, GFP_KERNEL)
            spin_lock(lock)
            memcpy(bounce, dev["buf"], BUF)
            spin_unlock(lock)
            left = copy_to_user(user, bounce, BUF)
            kfree(bounce)
        assert left == 0 and user == b"\x2a" * BUF

    m.run(probe)
    m.run(read, read)
    m.run(lambda: kfree(dev["buf"]))


@stress(cpus=2)
def buggy(m):
    """copy_to_user() inside spin_lock(&dev_lock)."""
    _read_path(m, True)


@stress(cpus=2)
def fixed(m):
    """Copy to a bounce buffer under the lock, to user space after it."""
    _read_path(m, False)
