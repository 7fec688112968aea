"""Memory pressure: GFP_KERNEL sleepers, kswapd and direct reclaim on a small machine.

An 8 MiB machine whose page cache is filled first (clean, dirty and anonymous pages that
reclaim can take back) runs three threads that allocate pages and kmalloc buffers with
GFP_KERNEL, each holding a working set of 80 pages for a while and then freeing it. The
allocations fall below the zone watermarks: kswapd is woken, and allocations that
still find nothing enter direct reclaim (they may sleep, so the threads hold no
spinlock across them; a mutex guards the shared tally). GFP_KERNEL allocations of
order 0 do not fail here while reclaim can make progress; a refused allocation of a
higher order is allowed (the thread carries on without it).

Checked at the end: every page and buffer the threads took is back (the leak check
leaves the page cache out: reclaim owns it), ``m.check()``'s walk of the buddy lists,
per-CPU lists and slabs, and that reclaim ran (``pgscan`` grew).
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    __free_pages,
    alloc_pages,
    fill_page_cache,
    init_waitqueue_head,
    kfree,
    kmalloc,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    page_address,
    wait_event,
    wake_up,
    write_u32,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

SETS = 2
HELD_PAGES = 160


@stress(cpus=2, memory="8M", seeds=21)
def gfp_kernel_sleepers(m):
    """Three threads hold 80 pages at a time on an 8 MiB machine full of page cache: kswapd and direct reclaim."""
    before = leak_snapshot(m)
    scanned = m.mm.counters()["pgscan"]
    tally_lock = mutex_init("tally")
    tally = {"pages": 0}
    filled = []
    boot_done = init_waitqueue_head("filled")

    def filler():
        fill_page_cache(1400, "clean")
        fill_page_cache(300, "dirty")
        fill_page_cache(200, "anon")
        filled.append(True)
        wake_up(boot_done)

    def sleeper(n):
        def run():
            wait_event(boot_done, lambda: filled)
            for _ in range(SETS):
                held = []
                for i in range(HELD_PAGES // SETS):
                    page = alloc_pages(GFP_KERNEL, 1 if i % 16 == 0 else 0)
                    if page is None:
                        continue  # order 1 may be refused under pressure
                    write_u32(page_address(page), n)
                    held.append((page, 1 if i % 16 == 0 else 0))
                buf = kmalloc(2048, GFP_KERNEL)
                assert buf is not None, "GFP_KERNEL kmalloc of 2 KiB fails only when reclaim cannot help"
                mutex_lock(tally_lock)
                tally["pages"] += len(held)
                mutex_unlock(tally_lock)
                for page, order in held:
                    __free_pages(page, order)
                kfree(buf)
        run.__name__ = f"sleeper{n}"
        return run

    m.run(filler, sleeper(0), sleeper(1), sleeper(2))
    assert tally["pages"] > 0
    assert m.mm.counters()["pgscan"] > scanned, "no memory pressure: reclaim never scanned"
    assert_no_leaks(m, before)
