"""free_pages() with the wrong order.

The DMA ring is allocated with __get_free_pages(GFP_KERNEL, get_order(size))
for the size at open time; the ring is later shrunk and dev->ring_size
updated, and release frees it with get_order(dev->ring_size): a smaller
order than the block was allocated with. The rest of the block is lost, or
worse, the buddy allocator merges it wrongly. The page allocator's checks at
free time report "BUG: Bad page state". The fix remembers the order the ring
was allocated with. Found by the page allocator's free-time checks.
"""

from percpu_kmem.linux import GFP_KERNEL, PAGE_SIZE, __get_free_pages, free_pages, get_order
from percpu_kmem.scenarios import stress

DETECTOR = "bad_page"
REPORTS = ("bad_page_order", "bad_page")


def _ring(m, remember_order):
    def open_close():
        dev = {"ring_size": 4 * PAGE_SIZE}
        order = get_order(dev["ring_size"])
        ring = __get_free_pages(GFP_KERNEL, order)
        dev["ring_size"] = PAGE_SIZE           # ethtool -G shrinks the ring
        free_pages(ring, order if remember_order else get_order(dev["ring_size"]))

    m.run(open_close, open_close)


@stress(cpus=2)
def buggy(m):
    """free_pages() with the order of the new ring size."""
    _ring(m, False)


@stress(cpus=2)
def fixed(m):
    """free_pages() with the order the ring was allocated with."""
    _ring(m, True)
