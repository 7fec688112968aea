"""A reference taken after a lookup outside the lock that protects the table.

open() finds the device in the driver's table and takes a reference
(kref_get(), an atomic_inc()) without holding the table lock; remove() unlinks
the device under the lock and drops the table's reference, the last one, so
the device is freed. If remove() runs between open()'s load of the pointer
and its atomic_inc(), the increment lands on freed memory and open() goes on
using the device: KASAN reports "BUG: KASAN: slab-use-after-free". The window
is two accesses wide, so random walks rarely hit it; PCT does when a change
point falls inside it. The fix does the lookup and the kref_get() under the
table lock (the lock remove() unlinks under). Found by KASAN.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    READ_ONCE,
    WRITE_ONCE,
    atomic_dec_and_test,
    atomic_inc,
    atomic_set,
    kfree,
    kmemleak_not_leak,
    kzalloc,
    read_u32,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    write_u32,
)
from percpu_kmem.scenarios import stress

DETECTOR = "kasan"
REPORTS = ("kasan",)

REFCOUNT = 0                                   # offsetof(struct my_dev, kref)
FLAGS = 4                                      # offsetof(struct my_dev, flags)


def _table(m, get_under_lock):
    lock = spin_lock_init("my_dev_table_lock")
    box = {}

    def kref_put(dev):
        if atomic_dec_and_test(dev + REFCOUNT):
            kfree(dev)                         # my_dev_release()

    def probe():
        table = kzalloc(4, GFP_KERNEL)         # static struct my_dev *my_devs[1]
        kmemleak_not_leak(table)
        dev = kzalloc(32, GFP_KERNEL)
        atomic_set(dev + REFCOUNT, 1)          # kref_init(): the table's reference
        write_u32(table, dev)
        box["table"] = table

    def my_open():
        table = box["table"]
        if get_under_lock:
            spin_lock(lock)
        dev = READ_ONCE(table)
        if dev:
            atomic_inc(dev + REFCOUNT)         # kref_get()
        if get_under_lock:
            spin_unlock(lock)
        if dev:
            read_u32(dev + FLAGS)              # use the device
            kref_put(dev)                      # release()

    def my_remove():
        table = box["table"]
        spin_lock(lock)
        dev = READ_ONCE(table)
        WRITE_ONCE(table, 0)                   # unlink
        spin_unlock(lock)
        if dev:
            kref_put(dev)                      # the table's reference

    m.run(probe)
    m.run(my_open, my_remove)
    m.run(lambda: kfree(box["table"]))


@stress(cpus=2, kasan=True)
def buggy(m):
    """open() looks the device up and takes its reference without the table lock."""
    _table(m, False)


@stress(cpus=2, kasan=True)
def fixed(m):
    """open() looks up and takes the reference under the table lock."""
    _table(m, True)
