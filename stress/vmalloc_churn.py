"""vmalloc churn: areas of many sizes mapped, used and unmapped from several CPUs.

Three threads allocate virtually contiguous areas with ``vmalloc`` (one to eight
pages, plus a ``vmalloc_32`` and a ``__vmalloc`` with GFP_KERNEL | __GFP_ZERO), write
a pattern across each page boundary, read it back, check ``vmalloc_to_page`` against
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


@stress(cpus=2)
def vmalloc_churn(m):
    """Three threads vmalloc 1-8 pages, write across page boundaries, vfree out of order."""
    before = leak_snapshot(m)
    info_before = m.proc("vmallocinfo")

    def churn(n):
        def run():
            live = []
            for i, pages in enumerate(SIZES[n:] + SIZES[:n]):
                if i == 2:
                    addr = vmalloc_32(pages * PAGE_SIZE)
                elif i == 5:
                    addr = __vmalloc(pages * PAGE_SIZE, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL)
                    assert addr is not None and read_u32(addr + pages * PAGE_SIZE - 4) == 0, "__GFP_ZERO area"
                else:
                    addr = vmalloc(pages * PAGE_SIZE - 100)  # rounded up to whole pages
                assert addr is not None, "vmalloc of a few pages on an idle machine"
                for p in range(pages):
                    write_u32(addr + p * PAGE_SIZE + PAGE_SIZE - 4, n * 1000 + p)  # the last word of each page
                    assert vmalloc_to_pfn(addr + p * PAGE_SIZE) == page_to_pfn(vmalloc_to_page(addr + p * PAGE_SIZE))
                live.append((addr, pages))
                if len(live) == 3:  # free the middle one: the window fragments
                    a, _ = live.pop(1)
                    vfree(a)
            for addr, pages in live:
                for p in range(pages):
                    assert read_u32(addr + p * PAGE_SIZE + PAGE_SIZE - 4) == n * 1000 + p, "another area overlapped"
            for addr, _ in reversed(live):
                vfree(addr)
        run.__name__ = f"churn{n}"
        return run

    m.run(churn(0), churn(1), churn(2))
    assert m.proc("vmallocinfo") == info_before, "/proc/vmallocinfo lists an area that was freed"
    assert_no_leaks(m, before)
