"""Texts and /proc layouts checked against the kernel's strings (2.6.11 source, today's diagnostics)."""

from __future__ import annotations

import re

import pytest

from percpu_kmem import (
    __GFP_NORETRY,
    __GFP_NOWARN,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOFS,
    Machine,
    __free_page,
    alloc_page,
    alloc_pages,
    fill_page_cache,
    kfree,
    kmalloc,
    msleep,
    vfree,
    vmalloc,
)
from percpu_kmem.mm.gfp import c_hex
from percpu_kmem.mm.vmalloc import _caller_token

pytestmark = pytest.mark.timeout(60)

#: fs/proc/proc_misc.c meminfo_read_proc of 2.6.11, in order
MEMINFO_2_6_11 = ["MemTotal", "MemFree", "Buffers", "Cached", "SwapCached", "Active", "Inactive", "HighTotal",
                  "HighFree", "LowTotal", "LowFree", "SwapTotal", "SwapFree", "Dirty", "Writeback", "Mapped",
                  "Slab", "CommitLimit", "Committed_AS", "PageTables", "VmallocTotal", "VmallocUsed",
                  "VmallocChunk"]
#: mm/page_alloc.c vmstat_text of 2.6.11, in order
VMSTAT_2_6_11 = [
    "nr_dirty", "nr_writeback", "nr_unstable", "nr_page_table_pages", "nr_mapped", "nr_slab", "pgpgin", "pgpgout",
    "pswpin", "pswpout", "pgalloc_high", "pgalloc_normal", "pgalloc_dma", "pgfree", "pgactivate", "pgdeactivate",
    "pgfault", "pgmajfault", "pgrefill_high", "pgrefill_normal", "pgrefill_dma", "pgsteal_high", "pgsteal_normal",
    "pgsteal_dma", "pgscan_kswapd_high", "pgscan_kswapd_normal", "pgscan_kswapd_dma", "pgscan_direct_high",
    "pgscan_direct_normal", "pgscan_direct_dma", "pginodesteal", "slabs_scanned", "kswapd_steal",
    "kswapd_inodesteal", "pageoutrun", "allocstall", "pgrotated"]


# -- page allocation failure: today's warn_alloc line ---------------------------------------------------
def test_page_allocation_failure_is_the_warn_alloc_line() -> None:
    m = Machine(cpus=1, memory="8M")

    def hog() -> None:
        got = []
        while (p := alloc_page(GFP_ATOMIC | __GFP_NOWARN)) is not None:
            got.append(p)
        alloc_page(GFP_ATOMIC)  # warns
        alloc_pages(GFP_KERNEL | __GFP_NORETRY, 3)  # warns, with the flag names
        for p in got:
            __free_page(p)

    m.run(hog)
    lines = [r.lines[0] for r in m.reports_of("page_alloc_failure")]
    assert lines == [
        "hog: page allocation failure: order:0, mode:0x20(GFP_ATOMIC), nodemask=(null)",
        "hog: page allocation failure: order:3, mode:0x10d0(GFP_KERNEL|__GFP_NORETRY), nodemask=(null)"]
    # same shape as the vmalloc failure line: "<comm>: <what>, mode:%#x(%pGg), nodemask=(null)"
    shape = re.compile(r"^\S+: page allocation failure: order:\d+, mode:(0|0x[0-9a-f]+)\([^)]*\), nodemask=\(null\)$")
    assert all(shape.match(ln) for ln in lines)
    m.check()


def test_c_hex_prints_zero_without_prefix() -> None:
    assert [c_hex(0), c_hex(0x20), c_hex(0xd0)] == ["0", "0x20", "0xd0"]  # printf("%#x")


# -- /proc/zoneinfo ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("memory, reserve", [("64M", 48), ("512M", 496)])
def test_zoneinfo_dma_protection_for_the_missing_highmem_zone(memory: str, reserve: int) -> None:
    m = Machine(cpus=1, memory=memory)
    dma = m.proc("zoneinfo").split("Node 0, zone   Normal")[0]
    assert f"        protection: (0, {reserve}, {reserve})\n" in dma  # Normal's pages / 256, both entries
    assert m.mm.zones[0].lowmem_reserve == [0, reserve, reserve]


def test_zoneinfo_layout_skips_cpus_with_empty_lists() -> None:
    m = Machine(cpus=2, memory="64M", policy="virtual")
    m.run(lambda: __free_page(alloc_page(GFP_KERNEL)))  # fills one CPU's hot list of Normal
    busy = [cpu for cpu in range(2) if any(pcp.count for pcp in m.mm.zones[1].pageset[cpu])]
    (cpu,) = busy
    hot, cold = m.mm.zones[1].pageset[cpu]
    normal = m.proc("zoneinfo").split("Node 0, zone   Normal\n")[1]
    z = m.mm.zones[1]
    assert normal == (
        f"  pages free     {z.buddy.free_pages}\n"
        f"        min      {z.pages_min}\n"
        f"        low      {z.pages_low}\n"
        f"        high     {z.pages_high}\n"
        "        active   0\n"
        "        inactive 0\n"
        "        scanned  0 (a: 0 i: 0)\n"
        "        spanned  12288\n"
        "        present  12288\n"
        "        protection: (0, 0, 0)\n"
        "  pagesets\n"
        f"    cpu: {cpu} pcp: 0\n"
        f"              count: {hot.count}\n"
        f"              low:   {hot.low}\n"
        f"              high:  {hot.high}\n"
        f"              batch: {hot.batch}\n"
        f"    cpu: {cpu} pcp: 1\n"
        f"              count: {cold.count}\n"
        f"              low:   {cold.low}\n"
        f"              high:  {cold.high}\n"
        f"              batch: {cold.batch}\n"
        "  all_unreclaimable: 0\n"
        "  prev_priority:     12\n"
        "  temp_priority:     12\n"
        "  start_pfn:         4096\n")
    assert "cpu: " not in m.proc("zoneinfo").split("Node 0, zone   Normal")[0]  # DMA: nothing cached


# -- /proc/meminfo and /proc/vmstat: one kernel's keys ------------------------------------------------------
@pytest.mark.parametrize("memory", ["64M", "1G"])
def test_meminfo_has_2_6_11_keys_order_and_widths(memory: str) -> None:
    m = Machine(cpus=2, memory=memory)
    keep = []
    m.run(lambda: keep.extend([kmalloc(4000, GFP_KERNEL), vmalloc(8192)]))
    lines = m.proc("meminfo").splitlines()
    assert [ln.split(":")[0] for ln in lines] == MEMINFO_2_6_11
    for ln in lines:  # "MemTotal:     %8lu kB": the label padded to 14 columns, the value to 8
        assert re.fullmatch(r"[A-Za-z_]+:\s+\d{1,8} kB", ln) and len(ln) == 25, ln
    values = {ln.split(":")[0]: int(ln.split()[1]) for ln in lines}
    assert values["Slab"] > 0 and values["VmallocUsed"] == 12
    assert values["CommitLimit"] == values["MemTotal"] // 2  # overcommit_ratio 50, no swap
    m.run(lambda: (kfree(keep[0]), vfree(keep[1])))
    m.check()


def test_vmstat_prints_2_6_11_names_only_with_modelled_values() -> None:
    m = Machine(cpus=2, memory="8M")

    def body() -> None:
        fill_page_cache(1500, "dirty")
        got = []
        while (p := alloc_page(GFP_NOFS | __GFP_NORETRY | __GFP_NOWARN)) is not None:
            got.append(p)
        got.append(alloc_page(GFP_KERNEL))  # direct reclaim writes dirty pages back
        msleep(100)
        for p in got:
            if p is not None:
                __free_page(p)

    m.run(body)
    rows = [ln.split(" ") for ln in m.proc("vmstat").splitlines()]
    assert [r[0] for r in rows] == VMSTAT_2_6_11
    ev = {k: int(v) for k, v in rows}
    c = m.mm.counters()
    assert ev["pgalloc_dma"] == c["pgalloc_dma"] > 0  # an 8M machine is all ZONE_DMA
    assert ev["pgsteal_dma"] == c["pgsteal"] > 0 and ev["pgsteal_normal"] == 0
    assert ev["pgscan_direct_dma"] + ev["pgscan_kswapd_dma"] == c["pgscan"]
    assert ev["kswapd_steal"] <= ev["pgsteal_dma"] and ev["pageoutrun"] == c["kswapd_runs"]
    assert ev["allocstall"] >= 1 and ev["nr_dirty"] == c["nr_dirty"]
    assert ev["pgpgout"] == 4 * (c["pageout"] + c["pswpout"])
    for invented in ("nr_free_pages", "pcp_refill", "pcp_hit", "pcp_drain", "pgalloc_fail", "kswapd_wake",
                     "oom_kill", "zone_lock_acquisitions", "pageout", "pgscan", "pgsteal", "slab_freed"):
        assert invented in c and invented not in ev
    m.check()


# -- /proc/vmallocinfo: the caller is one token ----------------------------------------------------------------
def test_vmallocinfo_fields_split_on_whitespace() -> None:
    m = Machine(cpus=1, memory="64M")
    keep = []

    def probe() -> None:
        keep.append(vmalloc(3 * 4096))

    m.run(probe)
    (line,) = m.proc("vmallocinfo").splitlines()
    fields = line.split()
    assert len(fields) == 5
    rng, size, caller, pages, kind = fields
    assert re.fullmatch(r"0x[0-9a-f]{8}-0x[0-9a-f]{8}", rng) and size == "16384"
    assert re.fullmatch(r"probe@tests/mm/test_kernel_formats\.py:\d+", caller)
    assert (pages, kind) == ("pages=3", "vmalloc")


def test_vmallocinfo_caller_escapes_whitespace_in_a_path() -> None:
    assert _caller_token(("my drivers/foo\tbar.py", 12, "probe")) == r"probe@my\040drivers/foo\011bar.py:12"
