"""An unchecked GFP_ATOMIC allocation under memory pressure.

The rx interrupt handler allocates a page for the next receive buffer with
GFP_ATOMIC and writes the descriptor into it without checking for NULL. An
atomic allocation cannot sleep to reclaim, so under memory pressure (here a
workload holding nearly all free memory) it fails, and the handler writes
through a NULL pointer: "BUG: kernel NULL pointer dereference", an Oops.
The fix drops the frame and counts it (rx_dropped) when the allocation
fails. The allocation-failure warning is expected in both twins. Found by
the Oops on the NULL dereference.
"""

from percpu_kmem.linux import GFP_ATOMIC, GFP_KERNEL, __GFP_NORETRY, __GFP_NOWARN, __free_pages
from percpu_kmem.linux import __get_free_page, alloc_pages, free_page, raise_irq, write_u32
from percpu_kmem.scenarios import stress

DETECTOR = "oops"
REPORTS = ("page_fault",)

RX_IRQ = 10


def _rx(m, check_null):
    stats = {"rx_dropped": 0}
    ring = []

    def rx_interrupt(irq, dev):
        page = __get_free_page(GFP_ATOMIC)
        if check_null and page is None:
            stats["rx_dropped"] += 1
            return
        write_u32(page, 0x8000_0000)             # descriptor: owned by the card
        ring.append(page)

    m.request_irq(RX_IRQ, rx_interrupt, "eth0")

    def memory_hog():                            # a workload that takes all it can
        held = []
        while True:
            p = alloc_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0)
            if p is None:
                break
            held.append(p)
        for _ in range(3):
            raise_irq(RX_IRQ)                    # frames arrive while memory is short
        for p in held:
            __free_pages(p, 0)

    m.run(memory_hog)
    for page in ring:
        m.run(lambda p=page: free_page(p))


@stress(cpus=2, memory="16M", expect="page_alloc_failure")
def buggy(m):
    """The handler writes the descriptor without checking the allocation."""
    _rx(m, False)


@stress(cpus=2, memory="16M", expect="page_alloc_failure")
def fixed(m):
    """The handler drops the frame when the allocation fails."""
    _rx(m, True)
