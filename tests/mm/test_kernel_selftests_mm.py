"""The kernel's own allocator self-tests, translated: a verdict audit of vmalloc, ioremap,
per-CPU memory, mempools, bootmem and memory zeroing.

Sources (facts, not code): lib/test_vmalloc.c (fix_size_alloc, random_size_alloc,
long_busy_list_alloc, full_fit_alloc, pcpu_alloc, vm_map_ram), lib/test_meminit.c
(zeroed pages, kmalloc/vmalloc, kmem_cache with a constructor), lib/percpu_test.c
(this_cpu_* arithmetic, here with i386's 32-bit long), mm/mempool.c and mm/bootmem.c
of 2.6.11. Each scenario is correct kernel code (no report may appear) or a classic
bug (the report must). The loop counts are scaled down from the kernel's (1,000,000
loops, 15,000 areas) to keep the suite fast; the shapes are the same. Concurrent
scenarios run under random, pct and free, several seeds each.
"""

from __future__ import annotations

import random
import re

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import (
    __GFP_HIGHMEM,
    __GFP_NOWARN,
    __GFP_ZERO,
    DEFINE_PER_CPU,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOIO,
    PAGE_OFFSET,
    PAGE_SIZE,
    PCPU_MIN_UNIT_SIZE,
    SLAB_CTOR_CONSTRUCTOR,
    SLAB_DESTROY_BY_RCU,
    __alloc_percpu,
    __free_pages,
    __pa,
    __this_cpu_add,
    __this_cpu_dec,
    __this_cpu_dec_return,
    __this_cpu_inc_return,
    __this_cpu_read,
    __this_cpu_sub,
    __this_cpu_sub_return,
    __this_cpu_write,
    __vmalloc,
    __vmalloc_node,
    alloc_bootmem,
    alloc_bootmem_low,
    alloc_bootmem_pages,
    alloc_pages,
    alloc_percpu,
    c_int,
    c_long,
    c_ulong,
    free_bootmem,
    free_page,
    free_percpu,
    get_zeroed_page,
    ioremap,
    iounmap,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kzalloc,
    mem_read,
    mem_write,
    mempool_alloc,
    mempool_create,
    mempool_create_kmalloc_pool,
    mempool_create_page_pool,
    mempool_destroy,
    mempool_free,
    mempool_resize,
    memset,
    msleep,
    page_address,
    per_cpu,
    per_cpu_ptr,
    preempt_disable,
    preempt_enable,
    read_u8,
    read_u32,
    readl,
    register_io_device,
    reserve_bootmem,
    this_cpu_add_return,
    this_cpu_dec_return,
    this_cpu_inc_return,
    this_cpu_read,
    this_cpu_sub,
    this_cpu_sub_return,
    vfree,
    vmalloc,
    vmalloc_user,
    vmap,
    vunmap,
    vzalloc,
    write_u8,
    write_u32,
    writel,
)
from percpu_kmem.runtime.errors import KernelPanic
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(120)

PAGE = PAGE_SIZE
CONCURRENT = ("random", "pct", "free")
SEEDS = range(5)
GARBAGE_INT = 0x09A7BA9E
VMALLOCINFO = re.compile(r"^0x([0-9a-f]{8})-0x([0-9a-f]{8}) +(\d+) \S+@\S+:\d+( pages=\d+)?( phys=0x[0-9a-f]{8})?"
                         r"( ioremap| vmalloc| vmap)( user)?$")


def in_task(m: Machine, fn):  # type: ignore[no-untyped-def]
    return m.run(fn)[0]


def meminfo(m: Machine) -> dict[str, int]:
    out = {}
    for ln in m.proc("meminfo").splitlines():
        key, rest = ln.split(":", 1)
        assert rest.endswith(" kB"), ln
        out[key] = int(rest[:-3])
    return out


def vmallocinfo(m: Machine) -> list[tuple[int, int, str]]:
    out = []
    for ln in m.proc("vmallocinfo").splitlines():
        mt = VMALLOCINFO.match(ln)
        assert mt, ln
        start, end, size = int(mt[1], 16), int(mt[2], 16), int(mt[3])
        assert end - start == size, ln
        out.append((start, end, mt[6].strip()))
    return out


def nothing_left(m: Machine, free0: int) -> None:
    """After a scenario: no vmalloc area, VmallocUsed 0, every page back (MemFree as before)."""
    assert vmallocinfo(m) == []
    mi = meminfo(m)
    assert mi["VmallocUsed"] == 0 and mi["VmallocChunk"] == mi["VmallocTotal"]
    assert mi["MemFree"] == free0, (mi["MemFree"], free0)


def fill_with_garbage(addr: int, size: int, skip: int = 0) -> None:
    n = (size - skip) // 4
    mem_write(addr + skip, GARBAGE_INT.to_bytes(4, "little") * n)
    if (size - skip) % 4:
        mem_write(addr + skip + 4 * n, b"\x9e" * ((size - skip) % 4))


def nonzero(addr: int, size: int) -> int:
    return sum(1 for b in mem_read(addr, size) if b)


# ================================================================================================
# lib/test_vmalloc.c
# ================================================================================================
def _vmalloc_selftest(m: Machine) -> None:
    """fix_size, random_size, long_busy_list and full_fit, scaled; one worker per CPU
    (test_vmalloc's nr_threads), every worker running every test in its own shuffled order."""
    free0 = meminfo(m)["MemFree"]
    results: dict[str, int] = {}

    def fix_size_alloc_test(rng: random.Random) -> int:
        for _ in range(6):
            p = vmalloc(1 * PAGE)
            if p is None:
                return -1
            write_u8(p, 0)
            vfree(p)
        return 0

    def random_size_alloc_test(rng: random.Random) -> int:
        for _ in range(4):
            n = rng.randint(1, 100)
            p = vmalloc(n * PAGE)
            if p is None:
                return -1
            write_u8(p, 1)
            write_u8(p + n * PAGE - 1, 2)  # the last byte is mapped too
            vfree(p)
        return 0

    def long_busy_list_alloc_test(rng: random.Random) -> int:
        nr = 24
        ptr = vmalloc(4 * nr)
        if ptr is None:
            return -1
        for i in range(nr):
            write_u32(ptr + 4 * i, vmalloc(1 * PAGE) or 0)
        rv = 0
        for _ in range(3):
            p1 = vmalloc(100 * PAGE)
            p2 = vmalloc(1 * PAGE)
            if p1 is None or p2 is None:
                vfree(p1)
                vfree(p2)
                rv = -1
                break
            write_u8(p1, 0)
            write_u8(p2, 1)
            vfree(p1)
            vfree(p2)
        for i in range(nr):
            vfree(read_u32(ptr + 4 * i) or None)
        vfree(ptr)
        return rv

    def full_fit_alloc_test(rng: random.Random) -> int:
        junk_length = 12
        ptr: list[int | None] = []
        junk: list[int | None] = []
        for _ in range(junk_length):
            ptr.append(vmalloc(1 * PAGE))
            junk.append(vmalloc(1 * PAGE))
        if None in ptr or None in junk:
            return -1
        for j in junk:
            vfree(j)
        rv = 0
        for _ in range(4):
            tmp = vmalloc(1 * PAGE)
            if tmp is None:
                rv = -1
                break
            write_u8(tmp, 1)
            vfree(tmp)
        for p in ptr:
            vfree(p)
        return rv

    tests = [fix_size_alloc_test, full_fit_alloc_test, long_busy_list_alloc_test, random_size_alloc_test]

    def worker(i: int):  # type: ignore[no-untyped-def]
        def fn() -> None:
            rng = random.Random(i)
            order = list(range(len(tests)))
            rng.shuffle(order)
            for idx in order:
                t = tests[idx]
                rv = t(rng)
                results[f"{t.__name__}/{i}"] = rv
        fn.__name__ = f"vmalloc_test/{i}"
        return fn

    m.run(*(worker(i) for i in range(m.nr_cpus)))
    assert all(rv == 0 for rv in results.values()), results
    assert len(results) == 4 * m.nr_cpus
    assert m.reports == []
    nothing_left(m, free0)


@pytest.mark.parametrize("policy", CONCURRENT)
def test_vmalloc_selftest_workers_on_every_cpu(policy: str) -> None:
    explore(_vmalloc_selftest, seeds=SEEDS, policies=policy, cpus=3, memory="32M")


def test_full_fit_reuses_the_exact_holes_first_fit() -> None:
    """full_fit_alloc_test's point: one-page areas freed between live ones leave holes of exactly
    one page plus its guard; a new one-page vmalloc fits the lowest hole exactly."""
    m = Machine(cpus=1, memory="32M", seed=0)

    def body() -> tuple[list[int], list[int], list[tuple[int, int, str]]]:
        ptr, junk = [], []
        for _ in range(6):
            ptr.append(vmalloc(PAGE))
            junk.append(vmalloc(PAGE))
        for j in junk:
            vfree(j)
        mid = vmallocinfo(m)
        got = [vmalloc(PAGE) for _ in range(6)]
        for p in ptr + got:
            vfree(p)
        return junk, got, mid

    junk, got, mid = in_task(m, body)
    assert got == junk  # lowest hole first, each hole exactly full
    assert len(mid) == 6 and all(e - s == 2 * PAGE and kind == "vmalloc" for s, e, kind in mid)
    assert m.reports == []


def _first_fit(areas: list[tuple[int, int, str]], start: int, end: int, size: int, align: int) -> int | None:
    """2.6.11 __get_vm_area's loop over the address-sorted vmlist, written out plainly."""
    def up(x: int) -> int:
        return (x + align - 1) & ~(align - 1)

    size += PAGE  # the guard page
    addr = up(start)
    for a, e, _ in areas:
        if a < addr:
            if e >= addr:
                addr = up(e)
            continue
        if addr + size <= a:
            break
        addr = up(e)
        if addr > end - size:
            break
    return None if addr > end - size else addr


def test_long_busy_list_and_random_churn_place_areas_where_the_kernels_first_fit_does() -> None:
    """long_busy_list_alloc_test (5000 packed one-page areas, then 100-page and one-page areas
    behind them) and a random churn of vmalloc, ioremap (aligned to its size), vfree and
    iounmap: every area lands at the address the kernel's first-fit loop gives."""
    m = Machine(cpus=1, memory="64M", seed=0)
    register_io_device(m, 0xF0000000, 0x01000000, name="bar")
    sp = m.vmalloc
    rng = random.Random(3)

    def body() -> list[tuple[str, int, int | None]]:
        wrong = []

        def place(what: str, size: int, align: int, call, check: bool = True):  # type: ignore[no-untyped-def]
            want = _first_fit([(a.addr, a.end, "") for a in sp.vmlist], sp.start, sp.end, size, align) \
                if check else None
            got = call()
            if check and got != want:
                wrong.append((what, got, want))
            return got

        busy = [place("busy", PAGE, 1, lambda: vmalloc(PAGE), i % 500 == 0) for i in range(5000)]
        for _ in range(3):
            p1 = place("100 pages", 100 * PAGE, 1, lambda: vmalloc(100 * PAGE))
            p2 = place("1 page", PAGE, 1, lambda: vmalloc(PAGE))
            write_u8(p1, 0)
            write_u8(p2, 1)
            vfree(p1)
            vfree(p2)
        for p in busy[::3]:
            vfree(p)
        live: list[tuple[str, int]] = [("v", p) for i, p in enumerate(busy) if i % 3]
        for _ in range(300):
            r = rng.random()
            if r < 0.4:
                n = rng.randint(1, 6) * PAGE
                live.append(("v", place("vmalloc", n, 1, lambda n=n: vmalloc(n))))
            elif r < 0.55:
                n = rng.choice([1, 2, 5, 16, 40]) * PAGE
                bit = min(max(n.bit_length(), 12), 19)
                live.append(("io", place("ioremap", n, 1 << bit, lambda n=n: ioremap(0xF0000000, n))))
            elif live:
                kind, p = live.pop(rng.randrange(len(live)))
                (vfree if kind == "v" else iounmap)(p)
        for kind, p in live:
            (vfree if kind == "v" else iounmap)(p)
        return wrong

    assert in_task(m, body) == []
    assert vmallocinfo(m) == [] and m.reports == []


def test_vm_map_ram_test_with_vmap() -> None:
    """vm_map_ram_test: map the caller's pages, write through the mapping, unmap; the pages
    stay the caller's and keep the bytes."""
    m = Machine(cpus=1, memory="32M", seed=0)

    def body() -> list[bytes]:
        pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(3)]
        seen = []
        for i in range(4):
            v = vmap(pages, 3)
            assert v is not None
            write_u8(v, ord("a") + i)
            write_u8(v + 2 * PAGE + 7, i)
            vunmap(v)
        for p in pages:
            seen.append(mem_read(page_address(p), 8))
        seen.append(mem_read(page_address(pages[2]) + 7, 1))
        for p in pages:
            __free_pages(p, 0)
        return seen

    seen = in_task(m, body)
    assert seen[0][0] == ord("d") and seen[3] == b"\x03"
    assert m.reports == [] and vmallocinfo(m) == []


def test_pcpu_alloc_test_random_sizes_and_alignments() -> None:
    """pcpu_alloc_test: __alloc_percpu(1..PAGE_SIZE/4 bytes, align 2..2048), every one succeeds,
    aligned and zeroed on every CPU, disjoint; all freed; the chunks beyond the spare go back."""
    m = Machine(cpus=2, memory="32M", seed=0)

    def body() -> tuple[int, int, int]:
        rng = random.Random(5)
        free0 = m.mm.nr_free_pages()
        live: list[tuple[int, int, int]] = []
        for _ in range(120):
            size = rng.randint(1, PAGE // 4)
            align = 1 << rng.randint(1, 11)
            p = __alloc_percpu(size, align)
            assert p is not None, (size, align)
            for cpu in range(m.nr_cpus):
                a = per_cpu_ptr(p, cpu)
                assert a % align == 0, (hex(a), align)
                assert nonzero(a, size) == 0
                memset(a, 0xA5, size)
            live.append((p, size, align))
        spans = sorted((per_cpu_ptr(p, 0), per_cpu_ptr(p, 0) + s) for p, s, _ in live)
        assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:]))
        mid = m.mm.nr_free_pages()
        for p, _, _ in live:
            free_percpu(p)
        return free0, mid, m.mm.nr_free_pages()

    free0, mid, end = in_task(m, body)
    assert mid < free0
    # one empty chunk is kept (pcpu_balance_workfn's spare): at most 8 pages per CPU
    assert free0 - 8 * m.nr_cpus <= end <= free0
    assert m.reports == []


# -- vmalloc zeroing and the zero-sized cases (test_meminit's do_vmalloc_size) -----------------------
def test_vmalloc_with_gfp_zero_reads_zero_after_garbage() -> None:
    """__vmalloc(.., GFP_KERNEL | __GFP_HIGHMEM | __GFP_ZERO, ..) (what vzalloc and vmalloc_user
    are) gives zeroed pages even when the same pages held garbage just before."""
    m = Machine(cpus=1, memory="32M", seed=0)
    from percpu_kmem.linux import PAGE_KERNEL

    def body() -> list[int]:
        out = []
        for order in range(0, 20, 3):
            size = 1 << order
            buf = vmalloc(size)
            fill_with_garbage(buf, size)
            vfree(buf)
            buf = __vmalloc(size, GFP_KERNEL | __GFP_HIGHMEM | __GFP_ZERO, PAGE_KERNEL)
            out.append(nonzero(buf, size))
            vfree(buf)
        return out

    assert in_task(m, body) == [0] * 7
    assert m.reports == []


def test_vzalloc_and_vmalloc_user_are_zeroed_and_vmalloc_user_is_listed_as_user() -> None:
    """do_vmalloc_size with the zeroing interfaces: vzalloc and vmalloc_user hand out zeros
    where garbage just was; /proc/vmallocinfo marks the vmalloc_user area ``user`` (VM_USERMAP)."""
    m = Machine(cpus=1, memory="32M", seed=0)

    def body() -> tuple[list[int], list[str]]:
        counts = []
        for order in (0, 6, 12, 14, 17):
            size = 1 << order
            for zalloc in (vzalloc, vmalloc_user):
                buf = vmalloc(size)
                fill_with_garbage(buf, size)
                vfree(buf)
                buf = zalloc(size)
                counts.append(nonzero(buf, size))
                vfree(buf)
        a, b = vzalloc(3 * PAGE), vmalloc_user(PAGE + 1)
        lines = m.proc("vmallocinfo").splitlines()
        vfree(a)
        vfree(b)
        return counts, lines

    counts, lines = in_task(m, body)
    assert counts == [0] * 10
    assert [ln.split()[-1] for ln in lines] == ["vmalloc", "user"]
    assert lines[1].endswith(" pages=2 vmalloc user") and lines[0].endswith(" pages=3 vmalloc")
    assert all(VMALLOCINFO.match(ln) for ln in lines)
    assert m.reports == [] and vmallocinfo(m) == []


# ================================================================================================
# ioremap / iounmap
# ================================================================================================
def _ioremap_scenario(m: Machine) -> None:
    regs: dict[int, int] = {}
    register_io_device(m, 0xFEB00000, 0x4000, read_fn=lambda off, w: regs.get(off, 0),
                       write_fn=lambda off, w, v: regs.__setitem__(off, v), name="nic")
    seen: list[int] = []

    def worker(i: int):  # type: ignore[no-untyped-def]
        def fn() -> None:
            for k in range(3):
                io = ioremap(0xFEB00000 + 0x1000 * i + 0x10, 0x100)
                assert io is not None and io & 0xFFF == 0x10
                writel(0x1000 * i + k, io + 4 * k)
                seen.append(readl(io + 4 * k))
                iounmap(io)
        fn.__name__ = f"io{i}"
        return fn

    m.run(*(worker(i) for i in range(3)))
    assert sorted(seen) == sorted(0x1000 * i + k for i in range(3) for k in range(3))
    assert regs == {0x1000 * i + 0x10 + 4 * k: 0x1000 * i + k for i in range(3) for k in range(3)}
    assert vmallocinfo(m) == [] and meminfo(m)["VmallocUsed"] == 0
    assert m.reports == []


@pytest.mark.parametrize("policy", CONCURRENT)
def test_ioremap_iounmap_from_several_cpus(policy: str) -> None:
    explore(_ioremap_scenario, seeds=SEEDS, policies=policy, cpus=3, memory="16M")


def test_ioremap_area_in_vmallocinfo_and_meminfo() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    register_io_device(m, 0xFEB00000, 0x10000, name="fb")

    def body() -> tuple[int, list[tuple[int, int, str]], dict[str, int]]:
        io = ioremap(0xFEB00000, 0x5000)
        return io, vmallocinfo(m), meminfo(m)

    io, info, mi = in_task(m, body)
    assert len(info) == 1 and info[0][2] == "ioremap" and info[0][0] == io
    assert info[0][1] - info[0][0] == 0x6000  # five pages and the guard
    assert "phys=0xfeb00000" in m.proc("vmallocinfo")
    assert mi["VmallocUsed"] == 0x6000 >> 10
    m.run(lambda: iounmap(io))
    assert vmallocinfo(m) == [] and m.reports == []


# ================================================================================================
# lib/test_meminit.c: zeroing
# ================================================================================================
def test_meminit_pages_kmalloc_and_zeroing_interfaces() -> None:
    """test_pages / do_kmalloc_size in the form the 2.6 model promises: the zeroing interfaces
    (get_zeroed_page, alloc_pages with __GFP_ZERO, kzalloc) hand out zeros after garbage."""
    m = Machine(cpus=1, memory="32M", seed=0)

    def body() -> list[tuple[str, int, int]]:
        bad = []
        for order in range(0, 5):
            size = PAGE << order
            page = alloc_pages(GFP_KERNEL, order)
            fill_with_garbage(page_address(page), size)
            __free_pages(page, order)
            page = alloc_pages(GFP_KERNEL | __GFP_ZERO, order)
            n = nonzero(page_address(page), size)
            if n:
                bad.append(("alloc_pages", order, n))
            fill_with_garbage(page_address(page), size)
            __free_pages(page, order)
        for _ in range(3):
            a = get_zeroed_page(GFP_KERNEL)
            if nonzero(a, PAGE):
                bad.append(("get_zeroed_page", 0, nonzero(a, PAGE)))
            fill_with_garbage(a, PAGE)
            free_page(a)
        for i in range(0, 17):
            size = 1 << i
            buf = kmalloc(size, GFP_KERNEL)
            fill_with_garbage(buf, size)
            kfree(buf)
            buf = kzalloc(size, GFP_KERNEL)
            if nonzero(buf, size):
                bad.append(("kzalloc", size, nonzero(buf, size)))
            kfree(buf)
        return bad

    assert in_task(m, body) == []
    assert m.reports == []


CTOR_PATTERN = 0x41414141


def _ctor(obj: int, cache, flags: int) -> None:  # type: ignore[no-untyped-def]
    if flags & SLAB_CTOR_CONSTRUCTOR:
        write_u32(obj, CTOR_PATTERN)


@pytest.mark.parametrize("slab_debug", [False, True])
def test_meminit_kmem_cache_with_ctor_keeps_the_constructed_bytes(slab_debug: bool) -> None:
    """do_kmem_cache_size(want_ctor): the first 4 bytes always hold the ctor's pattern, whatever
    the user scribbled after them, also with poisoning on (2.6 SLAB re-runs the ctor)."""
    m = Machine(cpus=2, memory="32M", seed=0, slab_debug=slab_debug)

    def body() -> list[tuple[int, int]]:
        bad = []
        for i in range(5):
            size = 8 << i
            c = kmem_cache_create("test_cache", size, 0, 0, _ctor, None)
            for _ in range(10):
                buf = kmem_cache_alloc(c, GFP_KERNEL)
                if read_u32(buf) != CTOR_PATTERN:
                    bad.append((size, read_u32(buf)))
                fill_with_garbage(buf, size, 4)
                kmem_cache_free(c, buf)
            kmem_cache_destroy(c)
        return bad

    assert in_task(m, body) == []
    assert m.reports == []


def test_meminit_kmem_cache_gfp_zero_without_ctor() -> None:
    m = Machine(cpus=1, memory="32M", seed=0)

    def body() -> list[int]:
        bad = []
        for i in range(6):
            size = 8 << i
            c = kmem_cache_create("test_cache", size, 1, 0, None, None)
            for _ in range(6):
                buf = kmem_cache_alloc(c, GFP_KERNEL | __GFP_ZERO)
                if nonzero(buf, size):
                    bad.append(size)
                fill_with_garbage(buf, size)
                kmem_cache_free(c, buf)
            kmem_cache_destroy(c)
        return bad

    assert in_task(m, body) == []
    assert m.reports == []


# ================================================================================================
# lib/percpu_test.c, with i386's 32-bit long
# ================================================================================================
long_counter = DEFINE_PER_CPU(c_long, "selftest_long_counter")
ulong_counter = DEFINE_PER_CPU(c_ulong, "selftest_ulong_counter")
ULONG_MAX = 0xFFFFFFFF


def test_percpu_test_arithmetic_wraps_as_i386_long() -> None:
    """percpu_test_init's sequence, CHECK() reading with __this_cpu_read, ending with
    this_cpu_sub_return and __this_cpu_sub_return. On i386 long and unsigned int are both 32 bits, so
    -ui_one added to a long is -1 and (long)0x100000000LL is 0 (the CHECK()s the 64-bit
    build writes with 0xffffffff and 0x100000000 read that way here)."""
    m = Machine(cpus=2, memory="16M", seed=0)
    ui_one = 1

    def body() -> list[tuple[int, object, object]]:
        bad: list[tuple[int, object, object]] = []

        def check(step: int, native: int, pcp, expected: int) -> None:  # type: ignore[no-untyped-def]
            got = __this_cpu_read(pcp)
            if (got - native) % 2**32 or (native - expected) % 2**32:
                bad.append((step, got, expected))

        preempt_disable()
        l_, ul = 0, 0
        __this_cpu_write(long_counter, 0)
        l_ += -1
        __this_cpu_add(long_counter, -1)
        check(1, l_, long_counter, -1)
        l_ += 1
        __this_cpu_add(long_counter, 1)
        check(2, l_, long_counter, 0)
        __this_cpu_write(ulong_counter, 0)
        ul += 1
        __this_cpu_add(ulong_counter, 1)
        check(3, ul, ulong_counter, 1)
        ul += ULONG_MAX  # -1UL
        __this_cpu_add(ulong_counter, ULONG_MAX)
        check(4, ul, ulong_counter, 0)
        ul = 0
        __this_cpu_write(ulong_counter, 0)
        ul -= 1
        __this_cpu_dec(ulong_counter)
        check(5, ul, ulong_counter, ULONG_MAX)
        if this_cpu_read(ulong_counter) != ULONG_MAX:  # unsigned: reads back as ULONG_MAX
            bad.append((6, this_cpu_read(ulong_counter), ULONG_MAX))
        l_ += -ui_one
        __this_cpu_add(long_counter, (-ui_one) & 0xFFFFFFFF)  # -ui_one is 0xffffffff
        check(7, l_, long_counter, 0xFFFFFFFF)
        if this_cpu_read(long_counter) != -1:  # a signed 32-bit long reads back -1
            bad.append((8, this_cpu_read(long_counter), -1))
        l_ += ui_one
        __this_cpu_add(long_counter, ui_one)
        check(9, l_, long_counter, 0)  # (long)0x100000000LL on i386
        l_ = 0
        __this_cpu_write(long_counter, 0)
        l_ -= ui_one
        __this_cpu_sub(long_counter, ui_one)
        check(10, l_, long_counter, -1)
        l_ = 0
        __this_cpu_write(long_counter, 0)
        l_ -= ui_one
        this_cpu_sub(long_counter, ui_one)
        check(11, l_, long_counter, ULONG_MAX)
        ul = 0
        __this_cpu_write(ulong_counter, 0)
        ul -= ui_one
        __this_cpu_sub(ulong_counter, ui_one)
        check(12, ul, ulong_counter, ULONG_MAX)
        ul = 3
        __this_cpu_write(ulong_counter, 3)
        ul = this_cpu_sub_return(ulong_counter, ui_one)
        check(13, ul, ulong_counter, 2)
        ul = __this_cpu_sub_return(ulong_counter, ui_one)
        check(14, ul, ulong_counter, 1)
        if (this_cpu_add_return(long_counter, 5), __this_cpu_dec_return(ulong_counter),
                this_cpu_dec_return(ulong_counter)) != (4, 0, ULONG_MAX):
            bad.append((15, __this_cpu_read(long_counter), __this_cpu_read(ulong_counter)))
        preempt_enable()
        return bad

    assert in_task(m, body) == []
    assert m.reports == []


def _percpu_alloc_scenario(m: Machine) -> None:
    """alloc_percpu from every CPU at once: every possible CPU's copy is zeroed, private to its
    allocation; each task writes its own pattern into every CPU's copy and reads it back."""
    errors: list[str] = []
    free0 = meminfo(m)["MemFree"]

    def worker(i: int):  # type: ignore[no-untyped-def]
        def fn() -> None:
            held = []
            for k in range(4):
                p = alloc_percpu(c_int * 8)
                assert p is not None
                for cpu in range(m.nr_cpus):
                    a = per_cpu_ptr(p, cpu)
                    if nonzero(a, 32):
                        errors.append(f"task {i}: cpu {cpu} copy of {p:#x} not zeroed")
                    write_u32(a, (i << 16) | (k << 8) | cpu)
                held.append((p, k))
                if k % 2:
                    q, kk = held.pop(0)
                    free_percpu(q)
            for p, k in held:
                for cpu in range(m.nr_cpus):
                    if read_u32(per_cpu_ptr(p, cpu)) != (i << 16) | (k << 8) | cpu:
                        errors.append(f"task {i}: copy of cpu {cpu} overwritten")
                free_percpu(p)
        fn.__name__ = f"pcpu{i}"
        return fn

    m.run(*(worker(i) for i in range(3)))
    assert errors == []
    assert m.reports == []
    assert m.percpu.nr_allocs == 0
    # one spare chunk stays: a 32 KiB unit per CPU; nothing else is held
    assert len(m.percpu.chunks) == 1
    assert free0 - meminfo(m)["MemFree"] == m.nr_cpus * PCPU_MIN_UNIT_SIZE // 1024


@pytest.mark.parametrize("policy", CONCURRENT)
def test_alloc_percpu_from_several_cpus(policy: str) -> None:
    explore(_percpu_alloc_scenario, seeds=SEEDS, policies=policy, cpus=3, memory="16M")


# ================================================================================================
# mm/mempool.c
# ================================================================================================
class Allocator:
    """kmalloc(64) behind a pool, which can be made to fail (memory pressure)."""

    def __init__(self) -> None:
        self.failing = False
        self.calls: list[int] = []

    def alloc(self, gfp: int, data: object) -> int | None:
        self.calls.append(gfp)
        if self.failing:
            return None
        return kmalloc(64, gfp)

    def free(self, element: int, data: object) -> None:
        kfree(element)


def test_mempool_create_prefills_and_free_refills_before_freeing() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    a = Allocator()

    def body() -> dict[str, object]:
        pool = mempool_create(4, a.alloc, a.free, None)
        st: dict[str, object] = {"prefill": (pool.curr_nr, list(a.calls))}
        reserve = list(pool.elements)
        a.failing = True
        got = [mempool_alloc(pool, GFP_KERNEL) for _ in range(3)]
        st["lifo"] = got == reserve[::-1][:3]
        st["after_take"] = pool.curr_nr
        a.failing = False
        extra = mempool_alloc(pool, GFP_KERNEL)  # from the allocator: the reserve is untouched
        st["extra_from_allocator"] = extra not in reserve and pool.curr_nr == 1
        mempool_free(got[0], pool)  # below min_nr: into the reserve
        st["refilled"] = pool.curr_nr
        for e in got[1:]:
            mempool_free(e, pool)
        mempool_free(extra, pool)  # reserve full: back to the allocator
        st["full"] = (pool.curr_nr, extra in pool.elements)
        slab_mid = m.proc("slabinfo")
        mempool_destroy(pool)
        st["slab_mid"] = slab_mid
        return st

    st = in_task(m, body)
    assert st["prefill"] == (4, [GFP_KERNEL] * 4)
    assert st["lifo"] and st["after_take"] == 1
    assert st["extra_from_allocator"]
    assert st["refilled"] == 2
    assert st["full"] == (4, False)
    assert m.reports == []


def _mempool_pressure(m: Machine) -> None:
    """Five tasks on three CPUs share a pool of two while the allocator fails: GFP_KERNEL and
    GFP_NOIO callers sleep on pool->wait and are fed by mempool_free; GFP_ATOMIC callers get
    NULL at once and never sleep. Nothing is lost, no report."""
    a = Allocator()
    st: dict[str, object] = {}
    atomic_nulls = [0]

    def setup() -> None:
        st["pool"] = mempool_create(2, a.alloc, a.free, None)
        a.failing = True

    m.run(setup)
    pool = st["pool"]

    def worker(i: int):  # type: ignore[no-untyped-def]
        def fn() -> None:
            for k in range(3):
                if i == 4:
                    e = mempool_alloc(pool, GFP_ATOMIC)
                    if e is None:
                        atomic_nulls[0] += 1
                        continue
                else:
                    e = mempool_alloc(pool, GFP_KERNEL if (i + k) % 2 else GFP_NOIO)
                    assert e is not None
                write_u32(e, i)
                if i != 4:
                    msleep(1)  # hold it a while (a request in flight): the others must wait
                assert read_u32(e) == i
                mempool_free(e, pool)
        fn.__name__ = f"mp{i}"
        return fn

    m.run(*(worker(i) for i in range(5)))
    assert pool.curr_nr == pool.min_nr == 2 and pool.nr_out == 0
    sleeps = {t.comm: t.nvcsw for t in m.engine.tasks if t.comm.startswith("mp")}
    assert sum(sleeps.values()) > 0  # someone waited on pool->wait (or in msleep)
    if m.policy_name != "free":  # the GFP_ATOMIC caller never slept (free runs count host switches)
        assert sleeps["mp4"] == 0
    m.run(lambda: mempool_destroy(pool))
    assert m.reports == []


@pytest.mark.parametrize("policy", CONCURRENT)
def test_mempool_under_pressure_from_several_tasks(policy: str) -> None:
    explore(_mempool_pressure, seeds=SEEDS, policies=policy, cpus=3, memory="16M")


def test_mempool_resize_grow_fill_and_shrink() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    a = Allocator()

    def body() -> list[tuple[int, int]]:
        pool = mempool_create(2, a.alloc, a.free, None)
        out = [(pool.min_nr, pool.curr_nr)]
        assert mempool_resize(pool, 5, GFP_KERNEL) == 0
        out.append((pool.min_nr, pool.curr_nr))
        assert mempool_resize(pool, 1, GFP_KERNEL) == 0
        out.append((pool.min_nr, pool.curr_nr))
        e = mempool_alloc(pool, GFP_KERNEL)
        mempool_free(e, pool)
        out.append((pool.min_nr, pool.curr_nr))
        mempool_destroy(pool)
        return out

    assert in_task(m, body) == [(2, 2), (5, 5), (1, 1), (1, 1)]
    assert m.reports == []


def test_mempool_destroy_with_an_element_out_is_a_bug() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    st: dict[str, object] = {}

    def body() -> None:
        pool = mempool_create_page_pool(2, 0)
        st["pool"] = pool
        st["e"] = mempool_alloc(pool, GFP_KERNEL)
        mempool_destroy(pool)

    m.run(body)
    bugs = m.reports_of("bug")
    assert len(bugs) == 1 and re.match(r"kernel BUG at \S*mempool\.py:\d+!", bugs[0].text)
    m.run(lambda: (mempool_free(st["e"], st["pool"]), mempool_destroy(st["pool"])))
    assert len(m.reports) == 1


# ================================================================================================
# mm/bootmem.c (2.6.11)
# ================================================================================================
def test_bootmem_alloc_low_free_reserve_and_meminfo() -> None:
    got: dict[str, int] = {}

    def init() -> None:
        a = alloc_bootmem(100)
        lo = alloc_bootmem_low(100)
        pg = alloc_bootmem_pages(3 * PAGE)
        got.update(a=a, lo=lo, pg=pg, zero=nonzero(a, 100) + nonzero(pg, 3 * PAGE))
        write_u8(a, 7)
        free_bootmem(__pa(pg), 3 * PAGE)  # given back: the next page request may reuse it
        got["again"] = alloc_bootmem_pages(3 * PAGE)
        reserve_bootmem(__pa(pg) + 8 * PAGE, PAGE)
        got["resv"] = __pa(pg) + 8 * PAGE

    m = Machine(cpus=1, memory="64M", seed=0, init=[init])
    base = Machine(cpus=1, memory="64M", seed=0)
    assert got["zero"] == 0
    assert got["a"] - PAGE_OFFSET >= 16 << 20 and got["lo"] - PAGE_OFFSET < 16 << 20
    assert got["pg"] % PAGE == 0 and got["again"] == got["pg"]
    # what bootmem kept is not free memory after mem_init: a's page, lo's page, the three pages
    # allocated again and the reserved one
    kept = sum(e - s for s, e in m.bootmem.reserved_ranges)
    assert kept == 6
    assert meminfo(base)["MemFree"] - meminfo(m)["MemFree"] == kept * 4
    assert in_task(m, lambda: read_u8(got["a"])) == 7
    assert m.reports == []


def test_bootmem_alloc_failure_panics() -> None:
    def init() -> None:
        alloc_bootmem(128 << 20)

    with pytest.raises(KernelPanic, match="Out of memory"):
        Machine(cpus=1, memory="16M", seed=0, init=[init])


def test_bootmem_is_gone_after_mem_init() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    assert in_task(m, lambda: alloc_bootmem(64)) is None
    assert [r.kind for r in m.reports] == ["bootmem_after_boot"]
    assert m.reports[0].text.startswith("WARNING: CPU: 0 PID:")


def _slow_holder(m: Machine) -> None:
    """Correct code: the only element is held for 130 s (a slow device), a GFP_KERNEL caller
    waits for it. The kernel's waiter wakes every 5 s (io_schedule_timeout), so khungtaskd
    never reports it; it gets the element when the holder frees it."""
    st: dict[str, object] = {}
    a = Allocator()

    def setup() -> None:
        st["pool"] = mempool_create(1, a.alloc, a.free, None)
        a.failing = True

    m.run(setup)
    pool = st["pool"]

    def holder() -> None:
        e = mempool_alloc(pool, GFP_KERNEL)
        st["held"] = e
        msleep(130_000)
        mempool_free(e, pool)

    def waiter() -> None:
        msleep(10)
        st["got"] = mempool_alloc(pool, GFP_NOIO)

    m.run(holder, waiter)
    assert m.reports == []
    assert st["got"] == st["held"] and m.now >= 130 * 10**9
    m.run(lambda: (mempool_free(st["got"], pool), mempool_destroy(pool)))


@pytest.mark.parametrize("policy", ("random", "pct", "free", "virtual"))
def test_mempool_waiter_fed_after_130_seconds_is_not_a_hung_task(policy: str) -> None:
    explore(_slow_holder, seeds=range(2), policies=policy, cpus=2, memory="16M")


def test_two_pools_waiting_on_each_other_are_reported_hung() -> None:
    """The classic mempool deadlock: each task holds the only element of one pool and waits
    for the other's. Both wait for ever in the kernel; the model reports both after 120 s."""
    m = Machine(cpus=2, memory="16M", policy="random", seed=1)
    a, b = Allocator(), Allocator()
    st: dict[str, object] = {}

    def setup() -> None:
        st["A"] = mempool_create(1, a.alloc, a.free, None)
        st["B"] = mempool_create(1, b.alloc, b.free, None)
        a.failing = b.failing = True

    m.run(setup)

    def one(first: str, second: str):  # type: ignore[no-untyped-def]
        def fn() -> None:
            mempool_alloc(st[first], GFP_KERNEL)
            msleep(1)
            mempool_alloc(st[second], GFP_KERNEL)
        fn.__name__ = f"holds{first}"
        return fn

    m.run(one("A", "B"), one("B", "A"))
    assert sorted(r.kind for r in m.reports) == ["hung_task", "hung_task"]
    assert all(r.text.startswith("INFO: task holds") for r in m.reports)


def test_meminfo_memtotal_leaves_out_what_bootmem_kept() -> None:
    """mem_init: totalram_pages += free_all_bootmem(); si_meminfo: totalram = totalram_pages.
    Pages bootmem kept for good are not in MemTotal, as the boot line "Memory: %luk/%luk
    available" already says."""
    def init() -> None:
        alloc_bootmem_pages(64 * PAGE)

    m = Machine(cpus=1, memory="16M", seed=0, init=[init])
    avail = re.search(r"Memory: (\d+)k/(\d+)k available", "\n".join(m.dmesg))
    assert avail is not None and avail[1] == "16128"
    assert meminfo(m)["MemTotal"] == int(avail[1])


def test_meminfo_totals_of_a_highmem_machine_follow_totalram_pages() -> None:
    """si_meminfo: LowTotal = totalram - totalhigh, CommitLimit = totalram * 50 / 100: the
    pages bootmem kept (lowmem only) are out of MemTotal, LowTotal and CommitLimit, HighTotal
    is every highmem page; a machine whose boot kept nothing shows all of its memory."""
    def init() -> None:
        alloc_bootmem_pages(256 * PAGE)

    full = meminfo(Machine(cpus=1, memory="1G", seed=0))
    m = Machine(cpus=1, memory="1G", seed=0, init=[init])
    got = meminfo(m)
    assert full["MemTotal"] == 1 << 20 and full["HighTotal"] == 128 << 10
    assert got["MemTotal"] == full["MemTotal"] - 1024 == m.mm.totalram_pages * 4
    assert got["HighTotal"] == full["HighTotal"] and got["LowTotal"] == got["MemTotal"] - got["HighTotal"]
    assert got["CommitLimit"] == got["MemTotal"] // 2


def test_this_cpu_return_ops_from_preemptible_code_are_reported_as_add_return() -> None:
    """__this_cpu_{sub,inc,dec}_return expand to __this_cpu_add_return: DEBUG_PREEMPT names that.
    The this_cpu_*_return forms are silent anywhere."""
    m = Machine(cpus=2, memory="16M", seed=0)

    def body() -> list[int]:
        return [this_cpu_inc_return(long_counter) - this_cpu_dec_return(long_counter),
                __this_cpu_inc_return(long_counter) - __this_cpu_sub_return(long_counter, 1)]

    assert in_task(m, body) == [1, 1]
    texts = [r.text.splitlines()[0] for r in m.reports]
    assert texts == ["BUG: using __this_cpu_add_return() in preemptible [00000000] code: body/1"]
    assert [r.kind for r in m.reports] == ["preempt_this_cpu"]


hits = DEFINE_PER_CPU(c_ulong, "selftest_hits")


def _inc_return_scenario(m: Machine) -> None:
    """this_cpu_inc_return from four tasks on two CPUs (they migrate) and an interrupt handler:
    no update is lost, and on each CPU every value is returned once."""
    got: list[int] = []

    def handler(irq: int, dev: object) -> None:
        got.append(this_cpu_inc_return(hits))

    m.request_irq(9, handler, "tick", None, rate=0.05)

    def worker() -> None:
        for _ in range(15):
            got.append(this_cpu_inc_return(hits))

    m.run(worker, worker, worker, worker)
    m.free_irq(9)
    counts = in_task(m, lambda: [per_cpu(hits, c).value for c in range(m.nr_cpus)])
    assert sum(counts) == len(got) >= 60
    assert sorted(got) == sorted(v for n in counts for v in range(1, n + 1))
    assert m.reports == []


@pytest.mark.parametrize("policy", CONCURRENT)
def test_this_cpu_inc_return_loses_nothing(policy: str) -> None:
    explore(_inc_return_scenario, seeds=SEEDS, policies=policy, cpus=2, memory="16M")


def test_mempool_with_no_reserve_is_legal_and_resize_to_zero_is_a_bug() -> None:
    """2.6.11 mempool_create takes min_nr 0 (kmalloc(0) of the elements array succeeds): a pool
    that only forwards to its allocator. mempool_resize(pool, 0) is BUG_ON(new_min_nr <= 0)."""
    m = Machine(cpus=1, memory="16M", seed=0)
    st: dict[str, object] = {}

    def body() -> None:
        pool = mempool_create_kmalloc_pool(0, 100)
        assert pool is not None and pool.min_nr == pool.curr_nr == 0
        e = mempool_alloc(pool, GFP_KERNEL)
        mempool_free(e, pool)  # reserve full (0 of 0): back to kfree
        st["curr"] = pool.curr_nr
        st["pool"] = pool
        mempool_resize(pool, 0, GFP_KERNEL)
        st["after"] = "not reached"

    m.run(body)
    assert st["curr"] == 0 and "after" not in st
    (rep,) = m.reports
    assert rep.kind == "bug" and re.match(r"kernel BUG at \S*mempool\.py:\d+!$", rep.text.splitlines()[0])
    assert "BUG_ON(new_min_nr <= 0)" in rep.text
    m.run(lambda: mempool_destroy(st["pool"]))
    assert len(m.reports) == 1


@pytest.mark.parametrize("kasan", [False, True])
def test_meminit_rcu_cache_keeps_contents_after_free(kasan: bool) -> None:
    """do_kmem_cache_size(want_rcu) and do_kmem_cache_rcu_persistent: an object of a
    SLAB_DESTROY_BY_RCU cache may be read after kmem_cache_free (inside rcu_read_lock, which
    the model does not have), its bytes intact, and when handed out again it still holds them
    (no ctor, no __GFP_ZERO). Also with slab debugging: 2.6.11 never poisons such caches."""
    m = Machine(cpus=1, memory="16M", seed=0, kasan=kasan)
    m2 = Machine(cpus=1, memory="16M", seed=0, slab_debug=True)

    def body() -> tuple[bool, bool]:
        c = kmem_cache_create("test_cache", 64, 0, SLAB_DESTROY_BY_RCU, None, None)
        buf = kmem_cache_alloc(c, GFP_KERNEL)
        fill_with_garbage(buf, 64)
        kmem_cache_free(c, buf)
        intact = nonzero(buf, 64) == 64 and read_u32(buf) == GARBAGE_INT
        again = kmem_cache_alloc(c, GFP_KERNEL)
        persistent = again != buf or read_u32(again) == GARBAGE_INT
        kmem_cache_free(c, again)
        kmem_cache_destroy(c)
        return intact, persistent

    for mm_ in (m2, m):
        assert in_task(mm_, body) == (True, True)
        assert mm_.reports == []


def test_vmalloc_align_tests_with_vmalloc_node() -> None:
    """fix_align_alloc_test, random_size_align_alloc_test and align_shift_alloc_test ("supposed
    to be failed"): __vmalloc_node(size, align, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE, caller)
    returns zeroed areas at that alignment while the window can offer one, None past that."""
    m = Machine(cpus=1, memory="64M", seed=0)
    rng = random.Random(9)

    def body() -> tuple[list[tuple[int, int]], list[int], int]:
        bad = []
        for _ in range(6):  # fix_align_alloc_test: THREAD_ALIGN << 1 (16 KiB on i386)
            p = __vmalloc_node(5 * PAGE, 16384, GFP_KERNEL | __GFP_ZERO, -1, None)
            if p is None or p % 16384 or nonzero(p, 5 * PAGE):
                bad.append((p or 0, 16384))
            fill_with_garbage(p, 5 * PAGE)
            vfree(p)
        for _ in range(12):  # random_size_align_alloc_test, aligns up to 1024 pages
            rnd = rng.randrange(256)
            align, size = 1 << (rnd % 23), (rnd % 10 + 1) * PAGE
            p = __vmalloc_node(size, align, GFP_KERNEL | __GFP_ZERO, -1, None)
            if p is None or p % align or nonzero(p, size):
                bad.append((p or 0, align))
            vfree(p)
        shifts = []  # align_shift_alloc_test: 1 << 0 .. 1 << 31 on a 32-bit kernel
        for i in range(32):
            p = __vmalloc_node(PAGE, 1 << i, GFP_KERNEL | __GFP_ZERO, -1, None)
            if p is None:
                shifts.append(i)
            elif p % (1 << i):
                bad.append((p, 1 << i))
            vfree(p)
        return bad, shifts, len(vmallocinfo(m))

    bad, shifts, left = in_task(m, body)
    assert bad == [] and left == 0
    # the window 0xc4800000-0xff7fe000 holds a 2**29-aligned address (0xe0000000) but none at 2**30
    assert shifts == [30, 31]
    assert not m.reports
    assert sum("out of vmalloc space" in ln for ln in m.dmesg) == 2


def test_vmalloc_node_alignment_that_is_not_a_power_of_two_is_a_bug() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    m.run(lambda: __vmalloc_node(PAGE, 3 * PAGE, GFP_KERNEL, -1, None))
    (rep,) = m.reports
    assert rep.kind == "bug" and "BUG_ON(!is_power_of_2(align))" in rep.text
    assert vmallocinfo(m) == []


def test_a_waiter_and_a_poller_waiting_on_each_other_end_after_ten_minutes() -> None:
    """A worker waits for an element nothing will return; the remover polls with msleep() for
    the worker to finish. Each keeps the other going, so the model ends the waiter after 10
    minutes of virtual time (hung_task), and the poller then sees it gone."""
    m = Machine(cpus=2, memory="16M", policy="random", seed=2)
    a = Allocator()
    st: dict[str, object] = {"done": False}

    def setup() -> None:
        st["pool"] = mempool_create(1, a.alloc, a.free, None)
        a.failing = True
        st["lost"] = mempool_alloc(st["pool"], GFP_KERNEL)  # the only element, never freed

    m.run(setup)

    def worker() -> None:
        try:
            mempool_alloc(st["pool"], GFP_KERNEL)
        finally:
            st["done"] = True

    def remover() -> None:
        while not st["done"]:
            msleep(1000)

    m.run(worker, remover)
    assert [r.kind for r in m.reports] == ["hung_task"]
    assert 600 <= m.now // 10**9 < 700


def test_kfree_of_a_percpu_pointer_is_a_kernel_report() -> None:
    """The classic slip: kfree(p) for a pointer from alloc_percpu (free_percpu was meant). In C it
    compiles (sparse warns); the kernel's kfree then works on a bogus address. vfree() of it is
    reported ("Trying to vfree() bad address"); kfree() should be reported too, not raise."""
    m = Machine(cpus=1, memory="16M", seed=0)
    m.run(lambda: kfree(alloc_percpu(c_long)))
    assert len(m.reports) == 1


@pytest.mark.parametrize("kasan", [False, True])
def test_kfree_of_a_percpu_pointer_frees_nothing_and_the_area_stays_usable(kasan: bool) -> None:
    """kfree_debugcheck: out of range ptr (KASAN: invalid-free in kfree); nothing is freed, the
    per-CPU area is still there for the free_percpu() that was meant. A bool is no pointer."""
    from percpu_kmem import KmemUsageError

    m = Machine(cpus=1, memory="16M", seed=0, kasan=kasan)
    box: dict[str, object] = {}

    def slip() -> None:
        p = box["p"] = alloc_percpu(c_long)
        kfree(p)

    m.run(slip)
    p = box["p"]
    want = "BUG: KASAN: invalid-free in kfree" if kasan else f"kfree_debugcheck: out of range ptr {int(p):x}h."  # type: ignore[call-overload]
    assert [r.lines[1 if kasan else 0] for r in m.reports] == [want]
    m.run(lambda: free_percpu(p))
    assert len(m.reports) == 1
    m.check()
    with pytest.raises(KmemUsageError, match=r"^kfree: objp must be an address \(int\) from kmalloc, got True"):
        m.run(lambda: kfree(True))  # type: ignore[arg-type]


def test_page_allocation_waiting_130_seconds_for_pages_is_not_a_hung_task() -> None:
    """The page allocator's counterpart of the mempool case: 2.6.11 loops for an order-0
    GFP_NOIO allocation (no OOM kill without __GFP_FS), sleeping 20 ms in blk_congestion_wait
    each time; a task that frees its pages after 130 s lets it succeed, without a report."""
    m = Machine(cpus=2, memory="16M", policy="virtual", seed=0)
    st: dict[str, object] = {"held": [], "filled": False, "got": None}

    def holder() -> None:
        held: list = []
        while (p := alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0)) is not None:
            held.append(p)
        st["filled"] = True
        msleep(130_000)
        for p in held:
            __free_pages(p, 0)

    def waiter() -> None:
        while not st["filled"]:
            msleep(10)
        p = alloc_pages(GFP_NOIO, 0)
        st["got"] = p
        __free_pages(p, 0)

    m.run(holder, waiter)
    assert [r.kind for r in m.reports] == []
    assert st["got"] is not None


def _fill_then(m: Machine, holder_after) -> dict:  # type: ignore[no-untyped-def]
    """A holder takes every page it can, then runs ``holder_after(st)``; a waiter then asks for
    one page with GFP_NOIO (it retries for ever in 2.6.11). Returns the state."""
    st: dict = {"held": [], "filled": False, "done": False}

    def holder() -> None:
        while (p := alloc_pages(GFP_ATOMIC | __GFP_NOWARN, 0)) is not None:
            st["held"].append(p)
        st["filled"] = True
        holder_after(st)

    def waiter() -> None:
        try:
            while not st["filled"]:
                msleep(10)
            st["got"] = alloc_pages(GFP_NOIO, 0)
        finally:
            st["done"] = True

    m.run(holder, waiter)
    st["seconds"] = m.now // 10**9
    m.run(lambda: [__free_pages(p, 0) for p in st["held"]])
    m.check()
    return st


@pytest.mark.parametrize("policy,seed", [("random", 1), ("virtual", 2)])
def test_page_allocation_nothing_can_free_for_is_a_hung_task_after_120_seconds(policy: str, seed: int) -> None:
    """The holder ends without giving its pages back (a leak): no other task can free one,
    so the retry loop is reported in khungtaskd's words after 120 s and ended."""
    m = Machine(cpus=2, memory="16M", policy=policy, seed=seed)
    st = _fill_then(m, lambda st: None)
    assert [r.kind for r in m.reports] == ["hung_task"] and "got" not in st
    assert m.reports[0].lines[0].endswith("blocked for more than 120 seconds.")
    assert 120 <= st["seconds"] < 125


def test_page_allocation_kept_waiting_by_a_poller_ends_at_the_wait_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder polls with msleep() for the waiter to finish and frees nothing meanwhile: each
    keeps the other going, so the wait is ended at the limit (10 minutes; shortened here to
    keep the test fast), not at 120 s, and the poller then sees the waiter gone."""
    from percpu_kmem.mm import page_alloc
    monkeypatch.setattr(page_alloc, "PAGE_ALLOC_WAIT_LIMIT_NS", 125 * 10**9)

    def poll(st: dict) -> None:
        while not st["done"]:
            msleep(1000)

    m = Machine(cpus=2, memory="16M", policy="random", seed=3)
    st = _fill_then(m, poll)
    assert [r.kind for r in m.reports] == ["hung_task"] and "got" not in st
    assert 125 <= st["seconds"] < 130


def test_vmallocinfo_lists_no_page_count_for_vmap_areas() -> None:
    """s_show prints ``pages=%d`` when vm_struct.nr_pages is set: __vmalloc sets it, vmap()
    does not (only VM_MAP_PUT_PAGES users, later), so a vmap line has no pages= field."""
    m = Machine(cpus=1, memory="16M", seed=0)

    def body() -> list[str]:
        pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(2)]
        v, a = vmap(pages, 2), vmalloc(2 * PAGE)
        lines = m.proc("vmallocinfo").splitlines()
        vunmap(v)
        vfree(a)
        for p in pages:
            __free_pages(p, 0)
        return lines

    lines = in_task(m, body)
    assert [ln.split()[-1] for ln in lines] == ["vmap", "vmalloc"]
    assert "pages=" not in lines[0] and lines[1].endswith(" pages=2 vmalloc")


def test_vmalloc_node_takes_pages_from_the_node_asked() -> None:
    m = Machine(cpus=2, memory="64M", nodes=2, seed=0)

    def body() -> list[str]:
        a = __vmalloc_node(3 * PAGE, PAGE, GFP_KERNEL, 1, None)
        b = __vmalloc_node(3 * PAGE, PAGE, GFP_KERNEL, 0, None)
        lines = m.proc("vmallocinfo").splitlines()
        vfree(a)
        vfree(b)
        return lines

    lines = in_task(m, body)
    assert [ln.split()[-1] for ln in lines] == ["N1=3", "N0=3"]
    assert m.reports == []
