"""A lock shared with an interrupt handler, taken without irqsave.

The device's status lock is taken by the interrupt handler and, in process
context, with a plain spin_lock(). If the interrupt arrives on the CPU that
holds the lock, the handler spins on it for ever (CONFIG_DEBUG_SPINLOCK:
"BUG: spinlock recursion"). lockdep reports the pattern the first time both
uses have been seen, whether or not the interrupt ever landed inside the
section: "WARNING: inconsistent lock state", {IN-HARDIRQ-W} -> {HARDIRQ-ON-W}.
The fix is spin_lock_irqsave() in process context. Found by lockdep.
"""

from percpu_kmem.linux import (
    preempt_point,
    raise_irq,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from percpu_kmem.scenarios import stress

DETECTOR = "lockdep"
REPORTS = ("lockdep_inconsistent",)

DEV_IRQ = 9


def _dev(m, irqsave):
    lock = spin_lock_init("dev_status_lock")
    status = {"events": 0}

    def dev_interrupt(irq, dev):
        flags = spin_lock_irqsave(lock)
        status["events"] += 1
        spin_unlock_irqrestore(lock, flags)

    m.request_irq(DEV_IRQ, dev_interrupt, "mydev", rate=0.05)

    def ioctl_reset():
        for _ in range(3):
            if irqsave:
                flags = spin_lock_irqsave(lock)
            else:
                spin_lock(lock)
            status["events"] = 0
            preempt_point("status_reset")
            if irqsave:
                spin_unlock_irqrestore(lock, flags)
            else:
                spin_unlock(lock)

    def device():
        for _ in range(3):
            raise_irq(DEV_IRQ, 0)

    m.run(ioctl_reset, device)


@stress(cpus=2, lockdep=True)
def buggy(m):
    """spin_lock() in process context on a lock the handler takes."""
    _dev(m, False)


@stress(cpus=2, lockdep=True)
def fixed(m):
    """spin_lock_irqsave() in process context."""
    _dev(m, True)
