"""/proc views of the page allocator in the kernel's formats: buddyinfo, zoneinfo,
meminfo (the lines that apply, 2.6 label widths) and vmstat counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .page_alloc import VM_EVENT_NAMES
from .physmem import PAGE_SHIFT

if TYPE_CHECKING:
    from .page_alloc import PageAllocator


def buddyinfo(pa: PageAllocator) -> str:
    return pa.mem.buddyinfo()


def zoneinfo(pa: PageAllocator) -> str:
    """/proc/zoneinfo as 2.6.1x printed it: free pages, watermarks, protection, pagesets."""
    out: list[str] = []
    reclaim = pa.reclaim
    for z in pa.zones:
        lru = len(reclaim.lru[z.zone.id]) if reclaim else 0
        out.append(f"Node {z.node}, zone {z.name:>8}")
        out.append(f"  pages free     {z.buddy.free_pages}")
        out.append(f"        min      {z.pages_min}")
        out.append(f"        low      {z.pages_low}")
        out.append(f"        high     {z.pages_high}")
        out.append(f"        active   {lru}")
        out.append("        inactive 0")
        out.append(f"        scanned  {z.pages_scanned} (a: 0 i: 0)")
        out.append(f"        spanned  {z.zone.end_pfn - z.zone.start_pfn}")
        out.append(f"        present  {z.present}")
        out.append(f"        protection: ({', '.join(str(r) for r in z.lowmem_reserve)})")
        out.append("  pagesets")
        for cpu, pair in enumerate(z.pageset):
            for j, pcp in enumerate(pair):
                out.append(f"    cpu: {cpu} pcp: {j}")
                out.append(f"              count: {pcp.count}")
                out.append(f"              low:   {pcp.low}")
                out.append(f"              high:  {pcp.high}")
                out.append(f"              batch: {pcp.batch}")
        out.append("  all_unreclaimable: 0")
        out.append("  prev_priority:     12")
        out.append("  temp_priority:     12")
        out.append(f"  start_pfn:         {z.zone.start_pfn}")
    return "\n".join(out) + "\n"


#: Extra meminfo lines other layers contribute: name -> pages (Slab, Vmalloc...)
MeminfoHook = Callable[[], list[tuple[str, int]]]


def meminfo(pa: PageAllocator, hooks: list[MeminfoHook]) -> str:
    kb = 1 << (PAGE_SHIFT - 10)
    free = pa.nr_free_pages()
    high = [z for z in pa.zones if z.idx == 2]
    high_total = sum(z.present for z in high)
    high_free = sum(z.buddy.free_pages + z.pcp_pages() for z in high)
    counts = pa.reclaim.counts() if pa.reclaim else {"clean": 0, "dirty": 0, "anon": 0}
    stats = pa.reclaim.stats if pa.reclaim else {}
    lines: list[tuple[str, int]] = [
        ("MemTotal", pa.total_pages * kb), ("MemFree", free * kb), ("Buffers", 0),
        ("Cached", (counts["clean"] + counts["dirty"]) * kb), ("SwapCached", 0),
        ("Active", sum(counts.values()) * kb), ("Inactive", 0),
        ("HighTotal", high_total * kb), ("HighFree", high_free * kb),
        ("LowTotal", (pa.total_pages - high_total) * kb), ("LowFree", (free - high_free) * kb),
        ("SwapTotal", 0), ("SwapFree", 0), ("Dirty", counts["dirty"] * kb), ("Writeback", 0),
        ("Mapped", counts["anon"] * kb), ("Swapped", stats.get("pswpout", 0) * kb),
    ]
    for hook in hooks:
        lines.extend(hook())
    return "".join(f"{name + ':':<13}{value:>9} kB\n" for name, value in lines)


def vmstat(pa: PageAllocator) -> str:
    ev = pa.vm_events()
    rows: list[tuple[str, int]] = [("nr_free_pages", pa.nr_free_pages())]
    counts = pa.reclaim.counts() if pa.reclaim else {"clean": 0, "dirty": 0, "anon": 0}
    rows += [("nr_dirty", counts["dirty"]), ("nr_page_cache", counts["clean"] + counts["dirty"]),
             ("nr_anon", counts["anon"])]
    rows += list(zip(VM_EVENT_NAMES, ev))
    if pa.reclaim:
        rows += sorted(pa.reclaim.stats.items())
    rows.append(("zone_lock_acquisitions", sum(z.lock.acquisitions for z in pa.zones)))
    rows.append(("zone_lock_contentions", sum(z.lock.contentions for z in pa.zones)))
    return "".join(f"{k} {v}\n" for k, v in rows)


def lock_stat(locks: list) -> str:  # type: ignore[type-arg]
    """A lock_stat-like table: acquisitions, contentions, wait and hold time (virtual cycles)."""
    head = f"{'class name':>40} {'con-bounces':>12} {'contentions':>12} {'waittime-total':>15} " \
           f"{'acq-bounces':>12} {'acquisitions':>12} {'holdtime-total':>15}\n"
    rows = [f"{lk.name:>40} {lk.contentions:>12} {lk.contentions:>12} {lk.wait_cycles:>15} "
            f"{0:>12} {lk.acquisitions:>12} {lk.hold_cycles:>15}\n" for lk in locks]
    return "lock_stat version 0.4\n" + head + "".join(rows)
