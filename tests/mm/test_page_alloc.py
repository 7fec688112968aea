"""The page allocator: GFP semantics, watermarks, reclaim, per-CPU lists, concurrency."""

from __future__ import annotations

import pytest

from percpu_kmem import (
    __GFP_COLD,
    __GFP_HIGHMEM,
    __GFP_NOFAIL,
    __GFP_NORETRY,
    __GFP_NOWARN,
    GFP_ATOMIC,
    GFP_HIGHUSER,
    GFP_KERNEL,
    GFP_NOFS,
    GFP_NOIO,
    Machine,
    __free_page,
    __free_pages,
    __get_free_page,
    __get_free_pages,
    alloc_page,
    alloc_pages,
    fill_page_cache,
    free_cold_page,
    free_hot_page,
    free_page,
    free_pages,
    get_order,
    get_zeroed_page,
    mem_read,
    mem_write,
    msleep,
    nr_free_pages,
    page_address,
    preempt_point,
    raise_irq,
    raw_smp_processor_id,
    read_u32,
    write_u32,
)
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(90)
SMALL = "8M"  # 2048 pages, all in ZONE_DMA: pages_min 90, low 112, high 135


def grab(gfp: int, limit: int = 100000) -> list:
    """Allocate order-0 pages until the allocator says no."""
    got = []
    for _ in range(limit):
        p = alloc_page(gfp | __GFP_NOWARN)
        if p is None:
            break
        got.append(p)
    return got


def test_watermarks_follow_the_2_6_11_formulas() -> None:
    m = Machine(cpus=1, memory="1G")
    zones = {z.name: z for z in m.mm.zones}
    assert m.mm.min_free_kbytes == 3831  # int_sqrt(917504 * 16)
    dma, normal, high = zones["DMA"], zones["Normal"], zones["HighMem"]
    lowmem = dma.present + normal.present
    assert dma.pages_min == (3831 >> 2) * dma.present // lowmem
    assert (dma.pages_low, dma.pages_high) == (dma.pages_min * 5 // 4, dma.pages_min * 6 // 4)
    assert high.pages_min == min(128, max(32, high.present // 1024))
    assert dma.lowmem_reserve == [0, normal.present // 256, (normal.present + high.present) // 256]
    assert normal.lowmem_reserve == [0, 0, high.present // 32]
    # pcp sizing: Normal has 225280 pages -> batch 16 (hot 32/96, cold 0/32); DMA 4096 -> batch 1
    assert (normal.batch, normal.pageset[0][0].high, normal.pageset[0][1].high) == (16, 96, 32)
    assert (dma.batch, dma.pageset[0][0].low, dma.pageset[0][0].high) == (1, 2, 6)


def test_zone_fallback_order() -> None:
    m = Machine(cpus=1, memory="1G")
    names = lambda gfp: [z.name for z in m.mm.zonelist(gfp, 0)]  # noqa: E731
    assert names(GFP_KERNEL) == ["Normal", "DMA"]
    assert names(GFP_HIGHUSER) == ["HighMem", "Normal", "DMA"]
    assert names(0x01) == ["DMA"]


def test_pages_round_trip_and_zeroing() -> None:
    m = Machine(cpus=1, memory="64M")

    def body() -> None:
        free0 = nr_free_pages()
        addr = __get_free_pages(GFP_KERNEL, 2)
        assert addr is not None and addr % 4096 == 0
        write_u32(addr + 4094, 0xDEADBEEF)  # across a page boundary
        assert read_u32(addr + 4094) == 0xDEADBEEF
        raw = __get_free_page(GFP_KERNEL)
        assert mem_read(raw, 4) == b"\xcc" * 4  # not promised to be zero, and here it is not
        z = get_zeroed_page(GFP_KERNEL)
        assert mem_read(z, 4096) == bytes(4096)
        free_pages(addr, 2)
        free_page(raw)
        free_page(z)
        page = alloc_pages(GFP_KERNEL, get_order(3 * 4096))
        assert page is not None and page.order == 2
        __free_pages(page, 2)
        assert nr_free_pages() == free0

    m.run(body)
    assert m.reports == []
    m.check()


def test_double_free_is_reported_and_loses_nothing() -> None:
    m = Machine(cpus=1, memory="16M")

    def body() -> None:
        p = alloc_page(GFP_KERNEL)
        before = nr_free_pages()
        __free_page(p)
        __free_page(p)  # the bug
        assert nr_free_pages() == before + 1

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "double_free" and rep.lines[0].startswith("BUG: Bad page state in process body")
    m.check()


def test_use_after_free_and_wild_pointer() -> None:
    m = Machine(cpus=1, memory="16M")

    def body() -> None:
        a = __get_free_page(GFP_KERNEL)
        free_page(a)
        mem_write(a, b"x")
        mem_read(0x1000, 4)  # nothing maps this: a page fault oopses the task

    m.run(body)
    kinds = [r.kind for r in m.reports]
    assert kinds == ["use_after_free", "page_fault"]
    assert m.reports[0].lines[0] == "BUG: KASAN: use-after-free in body"
    assert m.reports[1].lines[0] == "BUG: unable to handle page fault for address: 00001000"


def test_get_free_pages_with_highmem_is_reported() -> None:
    m = Machine(cpus=1, memory="1G")
    m.run(lambda: free_page(__get_free_pages(GFP_KERNEL | __GFP_HIGHMEM, 0)))
    assert m.reports[0].kind == "bug" and "__GFP_HIGHMEM" in m.reports[0].text
    m.check()


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
def test_gfp_atomic_in_hardirq_never_sleeps_under_exhaustion(policy: str) -> None:
    m = Machine(cpus=2, memory=SMALL, policy=policy, seed=3)
    results: list[object] = []

    def handler(irq: int, dev: object) -> None:
        got = grab(GFP_ATOMIC)
        results.append(len(got))
        results.append(alloc_page(GFP_ATOMIC))  # warns: page allocation failure
        for p in got:
            __free_page(p)

    m.request_irq(12, handler)

    def body() -> None:
        hog = grab(GFP_ATOMIC)  # everything down to the atomic reserve
        raise_irq(12)
        for p in hog:
            __free_page(p)

    m.run(body)
    assert results[0] == 0 and results[1] is None
    kinds = {r.kind for r in m.reports}
    assert kinds == {"page_alloc_failure"}, [r.text for r in m.reports]
    assert m.reports_of("page_alloc_failure")[0].lines[0] == \
        "body: page allocation failure: order:0, mode:0x20(GFP_ATOMIC), nodemask=(null)"  # current: the interrupted task
    assert m.now == 0  # no virtual time passed: nobody slept
    assert not any(t.nvcsw for t in m.engine.tasks if t.comm == "body")
    m.check()


def test_atomic_reserve_serves_what_gfp_kernel_would_reclaim_for() -> None:
    m = Machine(cpus=1, memory=SMALL)
    out = {}

    def body() -> None:
        normal = grab(GFP_KERNEL | __GFP_NORETRY)  # stops at the min watermark (nothing to reclaim)
        out["stall"] = m.mm.vm_events()[4]
        atomic = grab(GFP_ATOMIC)  # may dip to 3/8 of min
        out["atomic"] = len(atomic)
        for p in normal + atomic:
            __free_page(p)

    m.run(body)
    z = m.mm.zones[0]
    assert out["stall"] >= 1  # GFP_KERNEL had to try reclaim
    # GFP_ATOMIC goes from pages_min down to min - min/2 - (min/2)/4 (zone_watermark_ok)
    mn = z.pages_min
    reserve = mn - (mn - mn // 2 - (mn - mn // 2) // 4)
    assert abs(out["atomic"] - reserve) <= 2 + z.batch
    m.check()


def test_noretry_fails_and_warns() -> None:
    m = Machine(cpus=1, memory=SMALL)

    def body() -> None:
        pages = grab(GFP_KERNEL | __GFP_NORETRY)
        assert alloc_page(GFP_KERNEL | __GFP_NORETRY) is None
        for p in pages:
            __free_page(p)

    m.run(body)
    assert m.reports_of("page_alloc_failure")


def _sleeper_woken_by_free(m: Machine, gfp: int) -> dict:
    out: dict = {}
    held: list = []

    def hog() -> None:
        held.extend(grab(GFP_KERNEL | __GFP_NORETRY))
        out["hogged"] = True
        msleep(50)  # the sleeper runs out of memory meanwhile
        batch = held[:200]
        del held[:200]  # before freeing: the sleeper frees what is left in held, never these
        for p in batch:
            __free_page(p)

    def sleeper() -> None:
        while "hogged" not in out:
            msleep(1)
        p = alloc_page(gfp)
        out["got"] = p is not None
        out["at"] = m.engine.now
        if p is not None:
            __free_page(p)
        for q in held:
            __free_page(q)
        held.clear()

    m.run(hog, sleeper)
    return out


@pytest.mark.parametrize("gfp", [GFP_NOFS, GFP_NOIO, GFP_NOFS | __GFP_NOFAIL])
def test_sleeping_allocation_waits_on_reclaim_queue_until_another_cpu_frees(gfp: int) -> None:
    def scenario(m: Machine) -> None:
        out = _sleeper_woken_by_free(m, gfp)
        assert out["got"] and out["at"] >= 50_000_000  # it waited for the free at 50 ms
        assert not m.reports_of("oom")

    explore(scenario, seeds=range(4), policies=("random", "pct", "free"), cpus=2, memory=SMALL)


def test_gfp_kernel_without_reclaimable_memory_invokes_the_oom_killer() -> None:
    m = Machine(cpus=1, memory=SMALL)

    def body() -> None:
        pages = grab(GFP_KERNEL | __GFP_NORETRY)
        try:
            alloc_page(GFP_KERNEL)
        finally:
            for p in pages:
                __free_page(p)

    m.run(body)
    (rep,) = m.reports_of("oom")
    assert rep.lines[1] == f"Out of memory: Killed process {rep.pid} (body)"


def test_reclaim_respects_gfp_nofs_and_noio() -> None:
    def run(gfp: int, kind: str) -> int:
        # no preemption, so kswapd (which may write and swap) stays asleep
        m = Machine(cpus=1, memory=SMALL, mean_run=10**6)
        freed = {}

        def body() -> None:
            fill_page_cache(1000, kind)
            hog = grab(GFP_ATOMIC)  # never reclaims by itself
            pa = m.mm
            t = m.engine.tasks[0]
            freed["n"] = pa.reclaim.try_to_free_pages(t, pa.zonelist(gfp, 0), gfp, 0)
            for p in hog:
                __free_page(p)

        m.run(body)
        m.check()
        return freed["n"]

    assert run(GFP_KERNEL, "dirty") > 0 and run(GFP_NOFS, "dirty") == 0
    assert run(GFP_NOFS, "anon") > 0 and run(GFP_NOIO, "anon") == 0
    assert run(GFP_NOIO, "clean") > 0


def test_kswapd_reclaims_in_the_background() -> None:
    m = Machine(cpus=2, memory=SMALL)

    def body() -> None:
        fill_page_cache(1500, "dirty")
        hog = grab(GFP_NOFS | __GFP_NORETRY)  # below low: kswapd is woken
        msleep(100)
        for p in hog:
            __free_page(p)

    m.run(body)
    stats = m.mm.reclaim.stats
    assert stats["kswapd_runs"] >= 1 and stats["pageout"] > 0
    m.check()


def test_order0_pages_come_from_the_per_cpu_list_without_zone_lock() -> None:
    m = Machine(cpus=1, memory="64M", mean_run=10**6)
    out = {}

    def body() -> None:
        zone = m.mm.zones[1]
        lock0 = zone.lock.acquisitions
        for _ in range(1000):
            p = alloc_page(GFP_KERNEL)
            __free_page(p)
        out["locks"] = zone.lock.acquisitions - lock0

    m.run(body)
    pcp = m.mm.zones[1].pageset[0][0]
    # zone->lock only for the refills that fill the hot list up to its low mark, never per page
    assert out["locks"] <= pcp.low // pcp.batch + 1
    ev = m.mm.counters()  # the model's own counters: /proc/vmstat prints only the kernel's
    assert ev["pcp_refill"] == out["locks"]
    assert ev["pcp_hit"] >= 1000 - out["locks"]


def test_cold_frees_are_handed_out_after_hot_ones() -> None:
    m = Machine(cpus=1, memory="64M")
    out = {}

    def body() -> None:
        a, b = alloc_page(GFP_KERNEL), alloc_page(GFP_KERNEL)
        free_cold_page(a)
        free_hot_page(b)
        out["next"] = alloc_page(GFP_KERNEL)  # hottest first: b
        out["cold"] = alloc_page(GFP_KERNEL | __GFP_COLD)  # the cold list: a
        out["ab"] = (a, b)

    m.run(body)
    a, b = out["ab"]
    assert out["next"] == b and out["cold"] == a


def test_concurrent_alloc_free_with_atomic_interrupts() -> None:
    def scenario(m: Machine) -> None:
        def handler(irq: int, dev: object) -> None:
            p = alloc_page(GFP_ATOMIC | __GFP_NOWARN)
            if p is not None:
                __free_page(p)

        m.request_irq(14, handler, rate=0.1)
        start = {}

        def worker() -> None:
            held = []
            for i in range(40):
                if i % 3 == 2 and held:
                    __free_pages(held.pop(0), 0)
                p = alloc_pages(GFP_KERNEL, i % 3 and 0)
                if p is not None:
                    held.append(p)
                preempt_point()
            for p in held:
                __free_pages(p, 0)

        def first() -> None:
            start["free"] = nr_free_pages()
            worker()

        m.run(first, worker, worker)
        m.check()
        assert not [r for r in m.reports if r.kind != "page_alloc_failure"], m.reports[0].text

    explore(scenario, seeds=range(50), policies=("random",), cpus=2, memory="16M")
    explore(scenario, seeds=range(10), policies=("pct", "virtual", "free"), cpus=2, memory="16M")


def test_proc_views() -> None:
    m = Machine(cpus=2, memory="1G")
    info = m.proc("zoneinfo")
    assert "Node 0, zone      DMA" in info and "protection: (0, " in info
    assert "cpu: " not in info  # nothing on any per-CPU list yet: zoneinfo skips those CPUs
    meminfo = m.proc("meminfo").splitlines()
    assert meminfo[0] == "MemTotal:      1048576 kB"
    assert any(line.startswith("HighTotal:") for line in meminfo)
    assert m.proc("buddyinfo").startswith("Node 0, zone      DMA ")
    assert "zone_lock_acquisitions" not in m.proc("vmstat") and "zone_lock_acquisitions" in m.mm.counters()
    _ = (raw_smp_processor_id, page_address)


def test_gfp_nowait_never_sleeps_and_leaves_the_atomic_reserve_alone() -> None:
    """GFP_NOWAIT (2.6.21: GFP_ATOMIC & ~__GFP_HIGH) under a spinlock is quiet, and at the
    watermark it stops where GFP_ATOMIC still digs: 3/4 of min against 3/8."""
    from percpu_kmem.linux import __GFP_NOWARN, GFP_ATOMIC, GFP_NOWAIT, spin_lock, spin_lock_init, spin_unlock

    assert GFP_NOWAIT == GFP_ATOMIC & ~0x20 == 0
    got: dict[str, int] = {}

    def body() -> None:
        lock = spin_lock_init("l")
        spin_lock(lock)
        for name, gfp in (("nowait", GFP_NOWAIT), ("atomic", GFP_ATOMIC)):
            pages = []
            while (p := alloc_pages(gfp | __GFP_NOWARN, 0)) is not None:
                pages.append(p)
            got[name] = len(pages)
            if name == "nowait":
                held = pages            # keep them: GFP_ATOMIC starts where GFP_NOWAIT stopped
        spin_unlock(lock)
        for p in held:
            __free_pages(p, 0)

    m = Machine(cpus=1, memory="16M", seed=0)
    m.run(body)
    assert not m.reports
    assert got["nowait"] > 0 and got["atomic"] > 0    # GFP_ATOMIC digs below where NOWAIT stopped
