"""vmalloc churn: areas of many sizes mapped, used and unmapped from several CPUs.

Three threads allocate virtually contiguous areas with ``vmalloc`` (one to eight
pages, plus a ``vmalloc_32`` and a ``__vmalloc`` with GFP_KERNEL | __GFP_ZERO), write
a pattern across each page boundary (a word that straddles two unrelated physical
pages) and at the end of each request (the last word asked for: a request of
``pages * PAGE_SIZE - 100`` bytes ends 100 bytes before its last page does, and
KASAN watches those 100), read it back, check ``vmalloc_to_page`` against
the page allocator's view, and ``vfree`` them in another order than they came. The
vmalloc window fragments and its free holes are reused; at the end
``/proc/vmallocinfo`` is what it was before, and every page and page-table entry is
given back (the leak check counts areas and pages; ``m.check()`` walks the
page tables).
"""

from percpu_kmem.linux import (
    __GFP_ZERO,
    GFP_KERNEL,
    PAGE_KERNEL,
    PAGE_SIZE,
    __vmalloc,
    page_to_pfn,
    read_u32,
    vfree,
    vmalloc,
    vmalloc_32,
    vmalloc_to_page,
    vmalloc_to_pfn,
    write_u32,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

SIZES = (1, 3, 2, 8, 1, 4)  # in pages


def word_of(addr, size, p):
    """The word of page ``p`` of an area of ``size`` bytes at ``addr``: across the boundary
    to the next page, or, on the last page, the last word of the request (never past it)."""
    if (p + 1) * PAGE_SIZE < size:
        return addr + (p + 1) * PAGE_SIZE - 2
    return addr + size - 4


@stress(cpus=2)
def vmalloc_churn(m):
    """Three threads vmalloc 1-8 pages, write across page boundaries, vfree out of order."""
    before = leak_snapshot(m)
    info_before = m.proc("vmallocinfo")

    def churn(n):
        def run():
            live = []
            for i, pages in enumerate(SIZES[n:] + SIZES[:n]):
                size = pages * PAGE_SIZE
                if i == 2:
                    addr = vmalloc_32(size)
                elif i == 5:
                    addr = __vmalloc(size, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL)
                    assert addr is not None and read_u32(addr + size - 4) == 0, "__GFP_ZERO area"
                else:
                    size -= 100
                    addr = vmalloc(size)  # rounded up to whole pages
                assert addr is not None, "vmalloc of a few pages on an idle machine"
                for p in range(pages):
                    write_u32(word_of(addr, size, p), n * 1000 + p)
                    assert vmalloc_to_pfn(addr + p * PAGE_SIZE) == page_to_pfn(vmalloc_to_page(addr + p * PAGE_SIZE))
                live.append((addr, size, pages))
                if len(live) == 3:  # free the middle one: the window fragments
                    a, _, _ = live.pop(1)
                    vfree(a)
            for addr, size, pages in live:
                for p in range(pages):
                    assert read_u32(word_of(addr, size, p)) == n * 1000 + p, "another area overlapped"
            for addr, _, _ in reversed(live):
                vfree(addr)
        run.__name__ = f"churn{n}"
        return run

    m.run(churn(0), churn(1), churn(2))
    assert m.proc("vmallocinfo") == info_before, "/proc/vmallocinfo lists an area that was freed"
    assert_no_leaks(m, before)
