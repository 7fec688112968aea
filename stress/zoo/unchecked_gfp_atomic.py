"""An unchecked GFP_ATOMIC allocation under memory pressure.

The rx interrupt handler allocates a page for the next receive buffer with
GFP_ATOMIC and writes the descriptor into it without checking for NULL. An
atomic allocation cannot sleep to reclaim, so under memory pressure (here
another driver's burst of atomic allocations has taken all it could get) it
fails, and the handler writes through a NULL pointer: "BUG: kernel NULL
pointer dereference", an Oops (in an interrupt: "Fatal exception in
interrupt"). The fix drops the frame and counts it (rx_dropped) when the
allocation fails. The allocation-failure warning is expected in both twins.
Found by the Oops on the NULL dereference.
"""

from percpu_kmem.linux import (
    __GFP_NOWARN,
    GFP_ATOMIC,
    __free_pages,
    __get_free_page,
    alloc_pages,
    free_page,
    raise_irq,
    write_u32,
)
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

    def memory_hog():                            # another driver's rx burst takes all it can
        held = []
        for order in range(5, -1, -1):
            while True:
                p = alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order)
                if p is None:
                    break
                held.append((p, order))
        for _ in range(3):
            raise_irq(RX_IRQ)                    # frames arrive while memory is short
        for p, order in held:
            __free_pages(p, order)

    m.run(memory_hog)
    for page in ring:
        m.run(lambda p=page: free_page(p))


@stress(cpus=2, memory="8M", expect="page_alloc_failure")
def buggy(m):
    """The handler writes the descriptor without checking the allocation."""
    _rx(m, False)


@stress(cpus=2, memory="8M", expect="page_alloc_failure")
def fixed(m):
    """The handler drops the frame when the allocation fails."""
    _rx(m, True)
