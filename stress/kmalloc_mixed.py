"""Mixed kmalloc traffic with interrupts.

Four kernel threads on two CPUs allocate buffers of every kmalloc size class with
GFP_KERNEL, keep some on a shared list and free others at once, while a device's
interrupt handler (raised at random, ``rate``) allocates GFP_ATOMIC buffers and puts
them on the same list. The list is protected by ``spin_lock_irqsave``, since the
handler takes the lock too. At the end every buffer is freed; the campaign runs
``m.check()`` (slab lists, magazines, page accounting) and the leak check compares
the allocation counters with the ones before the run.

Copy this file and change the workload: the shape (snapshot, run, free everything,
assert_no_leaks) stays.
"""

from percpu_kmem.linux import (
    GFP_ATOMIC,
    GFP_KERNEL,
    kfree,
    kmalloc,
    ksize,
    kzalloc,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

SIZES = (8, 24, 64, 100, 128, 250, 512, 1000, 2048, 4000)


@stress(cpus=2)
def kmalloc_with_interrupts(m):
    """GFP_KERNEL traffic in four threads, GFP_ATOMIC in an interrupt handler, one shared list."""
    before = leak_snapshot(m)
    lock = spin_lock_init("buf_lock")
    kept = []

    def handler(irq, dev):
        buf = kmalloc(96, GFP_ATOMIC)
        if buf is not None:  # GFP_ATOMIC may fail: a handler copes
            flags = spin_lock_irqsave(lock)
            kept.append(buf)
            spin_unlock_irqrestore(lock, flags)

    m.request_irq(12, handler, "eth0", rate=0.05)

    def worker(n):
        def run():
            for i in range(8):
                size = SIZES[(n * 3 + i) % len(SIZES)]
                buf = kzalloc(size, GFP_KERNEL) if i % 3 == 0 else kmalloc(size, GFP_KERNEL)
                assert buf is not None and ksize(buf) >= size
                if i % 2:
                    kfree(buf)
                    continue
                flags = spin_lock_irqsave(lock)
                kept.append(buf)
                spin_unlock_irqrestore(lock, flags)
            flags = spin_lock_irqsave(lock)
            mine = kept[:]
            del kept[:]
            spin_unlock_irqrestore(lock, flags)
            for buf in mine:
                kfree(buf)
        run.__name__ = f"worker{n}"
        return run

    m.run(*(worker(n) for n in range(4)))
    m.free_irq(12)
    if kept:  # buffers an interrupt added after the last worker drained the list

        def drain():
            for buf in kept:
                kfree(buf)
        m.run(drain)
    assert_no_leaks(m, before)
