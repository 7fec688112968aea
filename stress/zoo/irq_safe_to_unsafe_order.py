"""An interrupt-safe lock that takes a lock the driver also takes with interrupts on.

A network driver's interrupt handler takes priv->lock, so process context takes it
with spin_lock_irqsave(). Under priv->lock, the transmit path updates the
statistics under stats_lock. The ethtool statistics reader takes stats_lock alone
with a plain spin_lock(): no interrupt handler ever takes stats_lock, so it looks
safe. It is not: CPU0 holds stats_lock with interrupts on; CPU1 holds priv->lock
(interrupts off) and waits for stats_lock; the device interrupts CPU0, whose
handler spins on priv->lock for ever. lockdep reports the pattern from one
occurrence of each use: "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order
detected" when the transmit path adds the dependency, or "possible irq lock
inversion dependency detected" when the reader's use comes last. The fix takes
stats_lock with spin_lock_irqsave() in the reader too. Found by lockdep.
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
REPORTS = ("lockdep_irq_order", "lockdep_irq_inversion")

NIC_IRQ = 11


def _nic(m, reader_irqsave):
    priv_lock = spin_lock_init("priv->lock")
    stats_lock = spin_lock_init("stats_lock")
    priv = {"rx": 0, "tx_packets": 0}

    def nic_interrupt(irq, dev):
        spin_lock(priv_lock)
        priv["rx"] += 1
        spin_unlock(priv_lock)

    m.request_irq(NIC_IRQ, nic_interrupt, "nic", rate=0.05)

    def start_xmit():
        for _ in range(3):
            flags = spin_lock_irqsave(priv_lock)
            spin_lock(stats_lock)
            priv["tx_packets"] += 1
            spin_unlock(stats_lock)
            spin_unlock_irqrestore(priv_lock, flags)
            preempt_point("xmit_done")

    def ethtool_get_stats():
        for _ in range(3):
            if reader_irqsave:
                flags = spin_lock_irqsave(stats_lock)
            else:
                spin_lock(stats_lock)
            total = priv["tx_packets"]
            preempt_point("copy_stats")
            if reader_irqsave:
                spin_unlock_irqrestore(stats_lock, flags)
            else:
                spin_unlock(stats_lock)
        return total

    def device():
        for _ in range(3):
            raise_irq(NIC_IRQ, 0)

    m.run(start_xmit, ethtool_get_stats, device)


@stress(cpus=2, lockdep=True)
def buggy(m):
    """The statistics reader takes stats_lock with interrupts on."""
    _nic(m, False)


@stress(cpus=2, lockdep=True)
def fixed(m):
    """The statistics reader takes stats_lock with spin_lock_irqsave()."""
    _nic(m, True)
