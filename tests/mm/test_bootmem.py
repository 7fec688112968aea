"""bootmem and the boot phase: first fit, goals, alignment, packing, rounding, BUGs, hand-over."""

from __future__ import annotations

import pytest

from percpu_kmem import (
    __GFP_NOWARN,
    GFP_ATOMIC,
    GFP_KERNEL,
    PAGE_OFFSET,
    PAGE_SIZE,
    KernelPanic,
    KmemUsageError,
    Machine,
    Oops,
    __alloc_bootmem,
    __free_page,
    __pa,
    alloc_bootmem,
    alloc_bootmem_low,
    alloc_bootmem_low_pages,
    alloc_bootmem_node,
    alloc_bootmem_pages,
    alloc_page,
    alloc_pages,
    free_all_bootmem,
    free_bootmem,
    get_cpu,
    mem_read,
    mem_write,
    might_sleep,
    nr_free_pages,
    page_to_pfn,
    put_cpu,
    reserve_bootmem,
    spin_lock,
    spin_unlock,
)
from percpu_kmem.mm.bootmem import bootmem_bootmap_pages
from percpu_kmem.mm.physmem import InconsistentState, PG_reserved
from percpu_kmem.runtime.locks import spinlock_t
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(60)
MB = 1 << 20


def boot(*fns, memory="64M", **kw) -> Machine:
    return Machine(cpus=2, memory=memory, init=list(fns), **kw)


def phys(addr: int) -> int:
    return addr - PAGE_OFFSET


# -- the allocator -----------------------------------------------------------------------------


def test_goal_alignment_and_low_variants() -> None:
    got: dict[str, int] = {}

    def early() -> None:
        got["plain"] = alloc_bootmem(100)
        got["pages"] = alloc_bootmem_pages(3 * PAGE_SIZE)
        got["low"] = alloc_bootmem_low(40)
        got["low_pages"] = alloc_bootmem_low_pages(PAGE_SIZE)
        got["aligned"] = __alloc_bootmem(10, 64 * 1024, 0)

    boot(early)
    p = {k: phys(v) for k, v in got.items()}
    assert all(v >= PAGE_OFFSET for v in got.values())  # kernel virtual addresses (direct map)
    assert p["plain"] == 16 * MB  # goal __pa(MAX_DMA_ADDRESS)
    assert p["pages"] == 16 * MB + PAGE_SIZE and p["pages"] % PAGE_SIZE == 0
    assert p["low"] == 0  # goal 0: first fit from the start, below 16 MB
    assert p["low_pages"] == PAGE_SIZE  # not packed after "low": PAGE_SIZE alignment
    assert p["aligned"] == 64 * 1024  # stepping align >> PAGE_SHIFT pages
    assert p["low"] < 16 * MB and p["low_pages"] < 16 * MB


def test_small_requests_are_packed_into_the_previous_page() -> None:
    got: list[int] = []

    def early() -> None:
        got.append(alloc_bootmem(100))  # 16 MB, last_offset 100
        got.append(alloc_bootmem(50))  # packed: offset ALIGN(100, 32) = 128, last_offset 178
        got.append(alloc_bootmem(4000))  # at ALIGN(178, 32) = 192; 3904 fit, 96 spill into the next page
        got.append(alloc_bootmem(8))  # packed after the spill: ALIGN(96, 32) = 96 in that page

    m = boot(early)
    base = 16 * MB
    assert [phys(a) for a in got] == [base, base + 128, base + 192, base + PAGE_SIZE + 96]
    st = m.bootmem.statistics()
    assert st.reserved_pages == 2 and st.allocations == 4


def test_plain_requests_fall_back_below_the_goal() -> None:
    got: list[int] = []

    def early() -> None:
        got.append(alloc_bootmem_pages(8 * MB))  # a 16 MB machine: goal is past memory, start at 0

    boot(early, memory="16M")
    assert phys(got[0]) == MB + PAGE_SIZE  # first fit: the bitmap's page at 1 MB splits [0, 8 MB)

    def fill() -> None:  # 32 MB: the top 16 MB taken, then the rescan from 0
        got.append(alloc_bootmem_pages(16 * MB - PAGE_SIZE))
        got.append(alloc_bootmem_pages(2 * PAGE_SIZE))

    m = boot(fill, memory="32M")
    assert phys(got[1]) == 16 * MB and phys(got[2]) == 0
    m.check()


def test_returned_memory_is_zeroed_and_readable() -> None:
    seen: list[bytes] = []

    def early() -> None:
        a = alloc_bootmem_low_pages(2 * PAGE_SIZE)
        seen.append(mem_read(a, 2 * PAGE_SIZE))
        mem_write(a, b"boot data")
        b = alloc_bootmem(300)
        seen.append(mem_read(b, 300))

    m = boot(early)
    assert seen[0] == bytes(2 * PAGE_SIZE) and seen[1] == bytes(300)
    assert m.mem.read(0, 9) == b"boot data"
    assert m.mem.read(2 * PAGE_SIZE, 4) == b"\xcc" * 4  # never allocated: never zeroed


def test_reserve_and_free_bootmem_rounding() -> None:
    got: list[int] = []

    def early() -> None:
        reserve_bootmem(PAGE_SIZE + 5, 3 * PAGE_SIZE)  # partial pages round out: pages 1..4
        free_bootmem(PAGE_SIZE + 1, 3 * PAGE_SIZE)  # start rounds up (2), end down (4): pages 2, 3
        reserve_bootmem(100, 10)  # page 0, wholly
        got.append(phys(alloc_bootmem_low_pages(PAGE_SIZE)))

    m = boot(early)
    assert got == [2 * PAGE_SIZE]  # the first free page: 0 and 1 reserved
    assert m.bootmem.reserved_ranges == [(0, 3), (4, 5)]

    def partial_free() -> None:
        a = alloc_bootmem_low_pages(3 * PAGE_SIZE)
        free_bootmem(__pa(a) + 1, 3 * PAGE_SIZE - 2)  # only the middle page is wholly inside

    m = boot(partial_free)
    assert m.bootmem.reserved_ranges == [(0, 1), (2, 3)]
    assert (m.mem.flags[0] & PG_reserved, m.mem.flags[1] & PG_reserved) == (PG_reserved, 0)


def test_reserve_twice_prints_the_debug_line() -> None:
    def early() -> None:
        reserve_bootmem(0x5000, PAGE_SIZE)
        reserve_bootmem(0x5000, 10)

    m = boot(early)
    assert any(line.endswith("hm, page 00005000 reserved twice.") for line in m.dmesg)
    assert m.bootmem.statistics().reserved_twice == 1


def test_double_free_is_a_bug() -> None:
    def early() -> None:
        a = alloc_bootmem_low_pages(PAGE_SIZE)
        free_bootmem(__pa(a), PAGE_SIZE)
        free_bootmem(__pa(a), PAGE_SIZE)

    with pytest.raises(Oops) as ei:
        boot(early)
    rep = ei.value.report
    assert rep.kind == "bug" and rep.lines[0].startswith("kernel BUG at percpu_kmem/mm/bootmem.py:")
    assert "is free already" in rep.lines[1]
    assert any("boot failed in init function 'early'" in n for n in ei.value.__notes__)


@pytest.mark.parametrize("call, words", [
    (lambda: free_bootmem(0, 0), "BUG_ON(!size)"),
    (lambda: reserve_bootmem(0, 0), "BUG_ON(!size)"),
    (lambda: reserve_bootmem(64 * MB, 1), "BUG_ON((addr >> PAGE_SHIFT) >= bdata->node_low_pfn)"),
    (lambda: free_bootmem(64 * MB - PAGE_SIZE, 2 * PAGE_SIZE), "BUG_ON(end > bdata->node_low_pfn)"),
    (lambda: __alloc_bootmem(10, 48, 0), "BUG_ON(align & (align-1))"),
])
def test_bug_on_cases(call, words) -> None:
    with pytest.raises(Oops) as ei:
        boot(call)
    assert ei.value.report.lines[0].startswith("kernel BUG at percpu_kmem/mm/bootmem.py:")
    assert ei.value.report.lines[1] == words


def test_zero_sized_request() -> None:
    with pytest.raises(Oops) as ei:
        boot(lambda: alloc_bootmem(0))
    assert ei.value.report.lines[0].startswith("kernel BUG at percpu_kmem/mm/bootmem.py:")
    notes = "\n".join(ei.value.__notes__)
    assert "__alloc_bootmem_core(): zero-sized request" in notes


def test_out_of_memory_panics_the_boot() -> None:
    with pytest.raises(KernelPanic) as ei:
        boot(lambda: alloc_bootmem(65 * MB))
    assert str(ei.value) == "Kernel panic - not syncing: Out of memory"
    notes = "\n".join(ei.value.__notes__)
    assert "bootmem alloc of 68157440 bytes failed!" in notes
    # the bitmap's own page is reserved during boot: all of memory cannot be had either
    with pytest.raises(KernelPanic):
        boot(lambda: alloc_bootmem_low_pages(64 * MB))


def test_python_errors_and_misuse_in_init_functions() -> None:
    def broken() -> None:
        raise ValueError("driver table corrupt")

    with pytest.raises(ValueError, match="driver table corrupt") as ei:
        boot(broken)
    assert any("boot failed in init function 'broken'" in n for n in ei.value.__notes__)
    with pytest.raises(KmemUsageError, match="page allocator does not exist during the boot phase"):
        boot(lambda: alloc_pages(GFP_KERNEL, 0))
    with pytest.raises(KmemUsageError, match="physical address"):
        boot(lambda: free_bootmem(-1, 10))
    with pytest.raises(KmemUsageError, match="size"):
        boot(lambda: alloc_bootmem(1.5))
    with pytest.raises(KmemUsageError, match="Machine.run"):
        alloc_bootmem(10)  # outside any task


def test_a_bad_pointer_in_an_init_function_oopses_and_ends_the_boot() -> None:
    """The early stand-in for the page allocator keeps the Oops counter, so a NULL or wild
    pointer at boot is the kernel's Oops, not a complaint about the missing page allocator."""
    with pytest.raises(Oops) as ei:
        boot(lambda: mem_read(0x10, 4))
    assert str(ei.value).startswith("BUG: kernel NULL pointer dereference, address: 00000010")
    assert "Oops: 0000 [#1] SMP" in str(ei.value)
    with pytest.raises(Oops, match="unable to handle page fault for address: f8000000"):
        boot(lambda: mem_write(0xF8000000, b"x"))


def test_boot_context_preempt_off_might_sleep_silent() -> None:
    seen: list[tuple[int, int]] = []
    lock = spinlock_t("boot_lock")

    def early() -> None:
        cpu = get_cpu()
        put_cpu()
        spin_lock(lock)
        might_sleep()  # silent while SYSTEM_BOOTING, as 2.6's __might_sleep
        spin_unlock(lock)
        from percpu_kmem import preempt_count
        seen.append((cpu, preempt_count()))

    m = boot(early)
    assert seen == [(0, 1)]  # the boot CPU, preemption disabled by start_kernel
    assert m.reports == []

    def later() -> None:
        spin_lock(lock)
        might_sleep()
        spin_unlock(lock)

    m.run(later)
    assert [r.kind for r in m.reports] == ["sleep_in_atomic"]  # SYSTEM_RUNNING now


def test_node_variants() -> None:
    got: list[int] = []

    def early() -> None:
        got.append(phys(alloc_bootmem_node(1, 10)))
        got.append(phys(alloc_bootmem_node(0, 10)))

    m = Machine(cpus=2, nodes=2, memory="64M", init=[early])
    n1 = m.mem.nodes[1]
    assert n1.start_pfn * PAGE_SIZE == 32 * MB  # above the goal: node 1's own bitmap page comes first
    assert got[0] == 32 * MB + PAGE_SIZE
    assert got[1] == 16 * MB
    m.check()


# -- the hand-over -----------------------------------------------------------------------------


def test_accounting_reserved_plus_buddy_is_total() -> None:
    def early() -> None:
        alloc_bootmem(5000)
        alloc_bootmem_low_pages(3 * PAGE_SIZE)
        reserve_bootmem(40 * MB, 2 * PAGE_SIZE)

    m = boot(early, memory="1G")
    st = m.bootmem.statistics()
    assert st.handed_over and st.total_pages == m.mem.nr_pages == 262144
    assert st.reserved_pages == 2 + 3 + 2
    assert st.reserved_pages + st.handed_to_buddy == st.total_pages
    assert st.highmem_pages == 262144 - 229376
    assert st.free_all_bootmem == 229376 - st.reserved_pages  # bitmap pages included
    assert st.bitmap_pages == bootmem_bootmap_pages(229376) == 7
    assert m.mem.count_flag(PG_reserved) == st.reserved_pages
    mem_line = [ln for ln in m.dmesg if "Memory:" in ln][0]
    assert mem_line.endswith(f"Memory: {st.handed_to_buddy * 4}k/{262144 * 4}k available (0k kernel code, "
                             f"28k reserved, 0k data, 0k init, {st.highmem_pages * 4}k highmem)")
    assert any(ln.endswith("896MB LOWMEM available.") for ln in m.dmesg)
    assert any(ln.endswith("128MB HIGHMEM available.") for ln in m.dmesg)
    m.check()


def test_no_init_functions_reserve_nothing() -> None:
    m = Machine(cpus=1, memory="64M")
    st = m.bootmem.statistics()
    assert (st.reserved_pages, st.handed_to_buddy) == (0, 16384)
    assert m.mem.count_flag(PG_reserved) == 0
    assert any(ln.endswith("Memory: 65536k/65536k available (0k kernel code, 0k reserved, 0k data, 0k init, "
                           "0k highmem)") for ln in m.dmesg)  # every page was free in the buddy
    assert m.run(nr_free_pages)[0] <= 16384


def test_init_allocations_survive_into_runs() -> None:
    table: list[int] = []

    def early() -> None:
        a = alloc_bootmem(256)
        mem_write(a, b"persistent boot table")
        table.append(a)

    m = boot(early, memory="32M")
    pfn = phys(table[0]) >> 12

    def later() -> bytes:
        pages = []
        while (p := alloc_page(GFP_ATOMIC | __GFP_NOWARN)) is not None:  # take everything
            pages.append(p)
        assert pfn not in {page_to_pfn(p) for p in pages}  # reserved memory never reaches the buddy
        data = mem_read(table[0], 21)
        for p in pages:
            __free_page(p)
        return data

    assert m.run(later) == [b"persistent boot table"]
    assert m.reports == []
    m.check()
    m.mem.flags[pfn] &= ~PG_reserved  # the checker notices a bootmem page losing PG_reserved
    with pytest.raises(InconsistentState, match="lost PG_reserved"):
        m.check()


def test_use_after_boot_is_reported_and_does_nothing() -> None:
    m = boot(lambda: alloc_bootmem(10))
    free0 = m.bootmem.statistics()

    def late() -> list:
        return [alloc_bootmem(100), alloc_bootmem_pages(PAGE_SIZE), free_bootmem(0, PAGE_SIZE),
                reserve_bootmem(0, PAGE_SIZE), free_all_bootmem()]

    assert m.run(late) == [[None, None, None, None, 0]]
    kinds = [r.kind for r in m.reports]
    assert kinds == ["bootmem_after_boot"] * 5
    first = m.reports[0].lines
    assert first[0].startswith("WARNING: CPU: ") and first[0].endswith(" alloc_bootmem")
    assert " at percpu_kmem/mm/bootmem.py:" in first[0]
    assert first[1].startswith("alloc_bootmem() after free_all_bootmem()")
    assert m.bootmem.statistics() == free0
    m.check()


def test_free_all_bootmem_from_an_init_function_ends_bootmem_early() -> None:
    got: list = []

    def mem_init() -> None:
        alloc_bootmem(10)
        got.append(free_all_bootmem())

    def too_late() -> None:
        got.append(alloc_bootmem(10))

    m = boot(mem_init, too_late)
    assert got == [16384 - 1, None]
    assert [r.kind for r in m.reports] == ["bootmem_after_boot"]
    assert m.reports[0].task == "too_late/0"
    m.check()


# -- determinism and replay ----------------------------------------------------------------------


def _workload(m: Machine) -> list[int]:
    lock = spinlock_t("w")
    counter = [0]

    def worker() -> None:
        for _ in range(20):
            p = alloc_page(GFP_KERNEL)
            spin_lock(lock)
            counter[0] += 1
            spin_unlock(lock)
            __free_page(p)

    m.run(worker, worker, worker)
    return counter


def _early() -> None:
    for _ in range(30):
        alloc_bootmem(700)
    alloc_bootmem_low_pages(5 * PAGE_SIZE)


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_boot_does_not_disturb_the_first_run_and_replays(policy: str) -> None:
    # the pages bootmem keeps change the buddy's layout, hence its split/merge steps and
    # their virtual-time charge: that cost is set to 0 so only the scheduling is compared
    flat = {"buddy_order": 0}
    plain = Machine(cpus=2, memory="64M", policy=policy, seed=11, costs=flat)
    _workload(plain)
    m = Machine(cpus=2, memory="64M", policy=policy, seed=11, init=[_early], costs=flat)
    assert m._runs == 0 and m.last_trace is None and m.steps == 0 and m.now == 0
    assert [c.clock for c in m.cpus] == [0, 0] and m._next_pid == 1
    _workload(m)
    assert m.trace.decisions == plain.trace.decisions  # same seed, same schedule: boot took nothing
    assert str(m.trace) == str(plain.trace)
    again = Machine(cpus=2, memory="64M", policy=policy, seed=99, init=[_early], replay=m.trace, costs=flat)
    _workload(again)
    assert again.diverged is None and again.trace.decisions == m.trace.decisions
    assert m.bootmem.reserved_ranges == again.bootmem.reserved_ranges  # the boot is deterministic


def test_concurrent_runs_never_touch_boot_memory() -> None:
    def scenario(m: Machine) -> None:
        held = {p for a, b in m.bootmem.reserved_ranges for p in range(a, b)}
        seen: set[int] = set()

        def worker() -> None:
            pages = [alloc_page(GFP_KERNEL) for _ in range(8)]
            seen.update(page_to_pfn(p) for p in pages)
            for p in pages:
                __free_page(p)

        m.run(worker, worker, worker)
        assert not seen & held
        assert m.mem.count_flag(PG_reserved) == len(held)

    explore(scenario, seeds=range(6), policies=("random", "pct"), cpus=2, memory="16M", init=[_early])
    explore(scenario, seeds=range(1), policies=("free",), cpus=2, memory="16M", init=[_early])


@pytest.mark.parametrize("call", ["kmalloc", "kmem_cache_create", "alloc_percpu"])
def test_slab_and_percpu_in_an_init_function_are_a_clear_usage_error(call: str) -> None:
    from percpu_kmem.linux import GFP_KERNEL, alloc_percpu, kmalloc, kmem_cache_create
    from percpu_kmem.mm.ctype import u32
    fn = {"kmalloc": lambda: kmalloc(10, GFP_KERNEL),
          "kmem_cache_create": lambda: kmem_cache_create("early", 32, 0, 0),
          "alloc_percpu": lambda: alloc_percpu(u32)}[call]
    with pytest.raises(KmemUsageError, match="does not exist during the boot phase"):
        Machine(init=[fn])
