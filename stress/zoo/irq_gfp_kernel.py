"""kmalloc(GFP_KERNEL) in an interrupt handler.

The rx interrupt handler of a network card refills its ring with a buffer
allocated with GFP_KERNEL. GFP_KERNEL may sleep to reclaim memory, and a
hardirq handler must never sleep: the allocator's might_sleep_if() check
(CONFIG_DEBUG_ATOMIC_SLEEP) reports "BUG: sleeping function called from
invalid context" the first time the handler runs. The fix is GFP_ATOMIC (and
a handler that copes with NULL). Found by might_sleep.
"""

from percpu_kmem.linux import (
    GFP_ATOMIC,
    GFP_KERNEL,
    kfree,
    kmalloc,
    raise_irq,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)
from percpu_kmem.scenarios import stress

DETECTOR = "might_sleep"
REPORTS = ("sleep_in_atomic",)

RX_IRQ = 11
RING = 4


def _nic(m, rx_gfp):
    lock = spin_lock_init("nic_rx_lock")
    ring = []

    def rx_interrupt(irq, dev):
        buf = kmalloc(1536, rx_gfp)            # refill the slot the packet came in
        if buf is None:
            return                             # dropped: the next interrupt refills
        flags = spin_lock_irqsave(lock)
        ring.append(buf)
        spin_unlock_irqrestore(lock, flags)

    m.request_irq(RX_IRQ, rx_interrupt, "eth0")

    def napi_poll():                           # the process side: consumes packets
        for _ in range(RING):
            raise_irq(RX_IRQ)                  # the card signals a received frame
            flags = spin_lock_irqsave(lock)
            buf = ring.pop() if ring else None
            spin_unlock_irqrestore(lock, flags)
            kfree(buf)

    m.run(napi_poll, napi_poll)
    for buf in ring:
        m.run(lambda b=buf: kfree(b))


@stress(cpus=2)
def buggy(m):
    """The rx handler allocates with GFP_KERNEL."""
    _nic(m, GFP_KERNEL)


@stress(cpus=2)
def fixed(m):
    """The rx handler allocates with GFP_ATOMIC."""
    _nic(m, GFP_ATOMIC)
