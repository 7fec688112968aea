"""/proc views of the page allocator in the kernel's formats: buddyinfo, zoneinfo (2.6.13,
the first), meminfo and vmstat (2.6.11's keys and order); /proc/lock_stat is the
runtime's (runtime/lockstat.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .layout import PAGE_SHIFT

if TYPE_CHECKING:
    from .page_alloc import PageAllocator


def buddyinfo(pa: PageAllocator) -> str:
    return pa.mem.buddyinfo()


def zoneinfo(pa: PageAllocator) -> str:
    """/proc/zoneinfo in the layout it had when it appeared (2.6.13 ``zoneinfo_show``).

    2.6.11 had no /proc/zoneinfo; the first one printed, per populated zone: free pages,
    the watermarks, active/inactive, scanned, spanned, present, ``protection:`` (the
    zone's lowmem_reserve, one entry per zone index, as the kernel computes them), then
    the per-CPU pagesets, skipping a CPU whose hot and cold lists are both empty.
    Modelled values: ``active`` is the zone's LRU (the model has no inactive list).
    """
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
            if not any(pcp.count for pcp in pair):
                continue  # zoneinfo_show: "if (j == ARRAY_SIZE(pageset->pcp)) continue;"
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


#: Extra meminfo lines other layers contribute: name -> kB (Slab, Vmalloc...)
MeminfoHook = Callable[[], list[tuple[str, int]]]

#: The keys of 2.6.11's meminfo_read_proc, in its order (fs/proc/proc_misc.c). Lines a hook
#: offers under another name (Percpu, a modern key) are not printed.
MEMINFO_KEYS: Final = ("MemTotal", "MemFree", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
                       "HighTotal", "HighFree", "LowTotal", "LowFree", "SwapTotal", "SwapFree", "Dirty",
                       "Writeback", "Mapped", "Slab", "CommitLimit", "Committed_AS", "PageTables",
                       "VmallocTotal", "VmallocUsed", "VmallocChunk")
#: sysctl_overcommit_ratio's default (mm/mmap.c): CommitLimit = ram * 50% + swap
OVERCOMMIT_RATIO: Final = 50


def _hook_values(hooks: list[MeminfoHook]) -> dict[str, int]:
    values: dict[str, int] = {}
    for hook in hooks:
        for name, kb in hook():
            values[name] = values.get(name, 0) + kb
    return values


def meminfo(pa: PageAllocator, hooks: list[MeminfoHook]) -> str:
    """/proc/meminfo with 2.6.11's keys, order and ``"%-14s%8lu kB"`` layout.

    Modelled values: Cached is the page cache (clean + dirty file pages), Active every
    LRU page, Mapped and Committed_AS the anonymous pages (the model has no user
    mappings), CommitLimit ``totalram * 50 / 100 + total_swap_pages`` with no swap
    device; Slab and Vmalloc* come from their layers (``m.meminfo_hooks``). MemTotal is
    ``totalram_pages`` (si_meminfo): the pages free_all_bootmem handed over, so pages
    bootmem kept for good are not in it (nor in LowTotal), as in 2.6.11.
    """
    kb = 1 << (PAGE_SHIFT - 10)
    free = pa.nr_free_pages()
    high = [z for z in pa.zones if z.idx == 2]
    high_total = sum(z.present for z in high)
    high_free = sum(z.buddy.free_pages + z.pcp_pages() for z in high)
    counts = pa.reclaim.counts() if pa.reclaim else {"clean": 0, "dirty": 0, "anon": 0}
    values = {
        "MemTotal": pa.totalram_pages * kb, "MemFree": free * kb, "Buffers": 0,
        "Cached": (counts["clean"] + counts["dirty"]) * kb, "SwapCached": 0,
        "Active": sum(counts.values()) * kb, "Inactive": 0,
        "HighTotal": high_total * kb, "HighFree": high_free * kb,
        "LowTotal": (pa.totalram_pages - high_total) * kb, "LowFree": (free - high_free) * kb,
        "SwapTotal": 0, "SwapFree": 0, "Dirty": counts["dirty"] * kb, "Writeback": 0,
        "Mapped": counts["anon"] * kb,
        "CommitLimit": pa.totalram_pages * OVERCOMMIT_RATIO // 100 * kb,
        "Committed_AS": counts["anon"] * kb, "PageTables": 0,
    }
    extra = _hook_values(hooks)
    return "".join(f"{name + ':':<14}{values.get(name, extra.get(name, 0)):>8} kB\n" for name in MEMINFO_KEYS)


#: 2.6.11's vmstat_text (mm/page_alloc.c), in order: the names /proc/vmstat prints.
VMSTAT_TEXT: Final = (
    "nr_dirty", "nr_writeback", "nr_unstable", "nr_page_table_pages", "nr_mapped", "nr_slab",
    "pgpgin", "pgpgout", "pswpin", "pswpout", "pgalloc_high",
    "pgalloc_normal", "pgalloc_dma", "pgfree", "pgactivate", "pgdeactivate",
    "pgfault", "pgmajfault", "pgrefill_high", "pgrefill_normal", "pgrefill_dma",
    "pgsteal_high", "pgsteal_normal", "pgsteal_dma", "pgscan_kswapd_high", "pgscan_kswapd_normal",
    "pgscan_kswapd_dma", "pgscan_direct_high", "pgscan_direct_normal", "pgscan_direct_dma", "pginodesteal",
    "slabs_scanned", "kswapd_steal", "kswapd_inodesteal", "pageoutrun", "allocstall",
    "pgrotated",
)


def vmstat(pa: PageAllocator, hooks: list[MeminfoHook] | None = None) -> str:
    """/proc/vmstat: 2.6.11's names and order, ``"%s %lu"``; what the model does not do is 0.

    Modelled values: nr_mapped the anonymous pages, nr_slab the slab's pages,
    pgpgout the kB written by reclaim (dirty pages and swap-out; 2.6 counts sectors and
    prints kB), pageoutrun kswapd's balance passes. The model's own counters (per-CPU
    list refills and hits, zone lock statistics, ...) are not printed: ``m.mm.counters()``
    has them all.
    """
    c = pa.counters()
    kb = 1 << (PAGE_SHIFT - 10)
    if hooks is None:
        hooks = getattr(pa.m, "meminfo_hooks", [])
    c["nr_slab"] = _hook_values(hooks).get("Slab", 0) // kb
    c["pgpgout"] = (c.get("pageout", 0) + c.get("pswpout", 0)) * kb
    return "".join(f"{name} {c.get(name, 0)}\n" for name in VMSTAT_TEXT)


__all__ = ["buddyinfo", "zoneinfo", "MeminfoHook", "MEMINFO_KEYS", "OVERCOMMIT_RATIO", "meminfo", "VMSTAT_TEXT",
           "vmstat"]
