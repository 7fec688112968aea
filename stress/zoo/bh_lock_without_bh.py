"""A list shared with a bottom half, taken without spin_lock_bh().

The interrupt handler of a "short"-style driver only acknowledges the device
and schedules its bottom half (a tasklet, here the softirq it runs in), which
allocates a completion record with GFP_ATOMIC and queues it under the queue
lock. The read() path takes the same lock with a plain spin_lock(): if the
softirq runs on the CPU whose task holds the lock (on irq exit, or when
bottom halves are re-enabled), it spins on it for ever. lockdep reports the
pattern the first time both uses have been seen, whether or not the softirq
ever landed inside the section: "WARNING: inconsistent lock state",
{IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W}. The fix is spin_lock_bh() in process
context. Found by lockdep.
"""

from percpu_kmem.linux import (
    GFP_ATOMIC,
    kfree,
    kmalloc,
    open_softirq,
    raise_irq,
    raise_softirq,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_unlock,
    spin_unlock_bh,
)
from percpu_kmem.scenarios import stress

DETECTOR = "lockdep"
REPORTS = ("lockdep_inconsistent",)

SHORT_IRQ = 7
TASKLET_SOFTIRQ = 6
READS = 3


def _short(m, bh_safe):
    lock = spin_lock_init("short_queue_lock")
    queue = []

    def short_do_tasklet():                    # the bottom half
        rec = kmalloc(32, GFP_ATOMIC)
        if rec is None:
            return
        spin_lock(lock)                        # softirq context: other softirqs cannot interrupt it
        queue.append(rec)
        spin_unlock(lock)

    def short_interrupt(irq, dev):             # the top half
        raise_softirq(TASKLET_SOFTIRQ)         # tasklet_schedule()

    def short_read():
        for _ in range(READS):
            raise_irq(SHORT_IRQ)               # the device completes a transfer
            if bh_safe:
                spin_lock_bh(lock)
            else:
                spin_lock(lock)
            rec = queue.pop() if queue else None
            if bh_safe:
                spin_unlock_bh(lock)
            else:
                spin_unlock(lock)
            kfree(rec)

    def short_release():
        while queue:
            kfree(queue.pop())

    m.request_irq(SHORT_IRQ, short_interrupt, "short")
    m.run(lambda: open_softirq(TASKLET_SOFTIRQ, short_do_tasklet))
    m.run(short_read, short_read)
    m.run(short_release)


@stress(cpus=2, lockdep=True)
def buggy(m):
    """read() takes the queue lock with spin_lock()."""
    _short(m, False)


@stress(cpus=2, lockdep=True)
def fixed(m):
    """read() takes the queue lock with spin_lock_bh()."""
    _short(m, True)
