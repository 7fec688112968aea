"""The slab/kmalloc/page API a driver writer reaches for beyond LDD3's: the NUMA variants
(kmalloc_node, kzalloc_node, kcalloc_node, kmem_cache_alloc_node, vmalloc_node,
vzalloc_node), kmem_cache_zalloc, kmalloc_array, kmemdup, kstrdup/kstrndup, krealloc,
the kvmalloc family and kvfree, alloc_pages_exact/free_pages_exact, __get_dma_pages,
get_cpu_ptr/put_cpu_ptr.

First their semantics, then each classic misuse as a bug scenario with its fixed twin,
run on machines with lockdep, KASAN and kmemleak on (as tests/test_driver_pairs.py does)
under random, pct, free and virtual, three seeds each: the bug must be reported in the
kernel's words under every policy, the twin must get no report at all (explore(), which
also runs m.check()). krealloc's three cases are test_kasan.c's (krealloc_more_oob,
krealloc_less_oob, krealloc_uaf).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    DEFINE_PER_CPU,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOFS,
    GFP_ZERO,
    KMALLOC_MAX_SIZE,
    NUMA_NO_NODE,
    PAGE_OFFSET,
    PAGE_SIZE,
    SLAB_HWCACHE_ALIGN,
    __get_dma_pages,
    alloc_pages_exact,
    current,
    free_pages,
    free_pages_exact,
    get_cpu_ptr,
    get_order,
    in_atomic,
    is_vmalloc_addr,
    kcalloc_node,
    kfree,
    kfree_sensitive,
    kmalloc,
    kmalloc_array,
    kmalloc_node,
    kmem_cache_alloc,
    kmem_cache_alloc_node,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_zalloc,
    kmemdup,
    kmemdup_nul,
    krealloc,
    krealloc_array,
    ksize,
    kstrdup,
    kstrndup,
    kvcalloc,
    kvfree,
    kvmalloc,
    kvmalloc_array,
    kvmalloc_node,
    kvzalloc,
    kzalloc_node,
    kzfree,
    mem_read,
    mem_write,
    memset,
    msleep,
    nr_free_pages,
    per_cpu_ptr,
    put_cpu_ptr,
    read_u32,
    smp_processor_id,
    this_cpu_ptr,
    vfree,
    vmalloc_node,
    vmalloc_to_page,
    vzalloc_node,
    write_u8,
    write_u32,
)
from percpu_kmem.mm.context import current_machine
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(120)

DETECTORS: dict[str, Any] = {"lockdep": True, "kasan": True, "kmemleak": "fail"}
POLICIES = ("random", "pct", "free", "virtual")
SEEDS = range(3)


def _run(fn: Callable[[], Any], **kw: Any) -> tuple[Machine, Any]:
    m = Machine(cpus=kw.pop("cpus", 1), policy="random", seed=0, **kw)
    res = m.run(fn)[0]
    m.check()
    return m, res


# -- the NUMA variants ---------------------------------------------------------------------------
def test_node_variants_allocate_and_check_the_node() -> None:
    def probe() -> list[Any]:
        c = kmem_cache_create("slabapi_node", 48)
        objs = [kmalloc_node(100, GFP_KERNEL, 0), kzalloc_node(100, GFP_KERNEL, NUMA_NO_NODE),
                kcalloc_node(4, 25, GFP_KERNEL, 1), kmem_cache_alloc_node(c, GFP_KERNEL, 1)]
        zeroed = [mem_read(objs[1], 100), mem_read(objs[2], 100)]
        v = vmalloc_node(3 * PAGE_SIZE, 1)
        z = vzalloc_node(2 * PAGE_SIZE, 0)
        nodes = {vmalloc_to_page(v + i * PAGE_SIZE).node for i in range(3)}
        zbytes = mem_read(z, 2 * PAGE_SIZE)
        for o in objs[:3]:
            kfree(o)
        kmem_cache_free(c, objs[3])
        kmem_cache_destroy(c)
        vfree(v)
        vfree(z)
        return [all(o is not None for o in objs), zeroed, nodes, zbytes]

    _, (ok, zeroed, nodes, zbytes) = _run(probe, cpus=2, memory="64M", nodes=2)
    assert ok and zeroed == [bytes(100)] * 2
    assert nodes == {1}                       # vmalloc_node's pages come from the node asked for
    assert zbytes == bytes(2 * PAGE_SIZE)


@pytest.mark.parametrize("call", [
    lambda c: kmalloc_node(64, GFP_KERNEL, 2), lambda c: kzalloc_node(64, GFP_KERNEL, -2),
    lambda c: kcalloc_node(2, 8, GFP_KERNEL, 5), lambda c: kmem_cache_alloc_node(c, GFP_KERNEL, 2),
    lambda c: vmalloc_node(PAGE_SIZE, 2), lambda c: vzalloc_node(PAGE_SIZE, True),
    lambda c: kvmalloc_node(64, GFP_KERNEL, 7)])
def test_a_node_the_machine_lacks_is_refused_before_anything_happens(call: Callable[[Any], Any]) -> None:
    box: dict[str, Any] = {}

    def setup() -> None:
        box["c"] = kmem_cache_create("slabapi_badnode", 32)

    m = Machine(cpus=2, nodes=2, policy="random", seed=0)
    m.run(setup)
    before = (m.mm.nr_free_pages(), len(m.vmalloc.vmlist), box["c"].num_active)
    with pytest.raises(KmemUsageError, match=r"node must be"):
        m.run(lambda: call(box["c"]))
    assert (m.mm.nr_free_pages(), len(m.vmalloc.vmlist), box["c"].num_active) == before
    assert not m.reports
    m.check()


# -- kmem_cache_zalloc, kmalloc_array, kmemdup, kstrdup ---------------------------------------
def test_kmem_cache_zalloc_zeroes_the_whole_object() -> None:
    def probe() -> bytes:
        c = kmem_cache_create("slabapi_z", 40, 0, SLAB_HWCACHE_ALIGN)
        o = kmem_cache_alloc(c, GFP_KERNEL)
        memset(o, 0x5A, 40)
        kmem_cache_free(c, o)
        o = kmem_cache_zalloc(c, GFP_KERNEL)   # the same slot back (this CPU's magazine)
        data = mem_read(o, 40)
        kmem_cache_free(c, o)
        kmem_cache_destroy(c)
        return data

    assert _run(probe)[1] == bytes(40)


def test_kmalloc_array_and_kcalloc_node_overflow_give_null_without_allocating() -> None:
    def probe() -> list[Any]:
        free0 = nr_free_pages()
        out = [kmalloc_array(0x40000001, 4, GFP_KERNEL), kcalloc_node(0x10000, 0x10000, GFP_KERNEL, 0),
               kvmalloc_array(0x80000000, 2, GFP_KERNEL), kvcalloc(1 << 31, 4, GFP_KERNEL)]
        out.append(nr_free_pages() == free0)
        p = kmalloc_array(16, 4, GFP_KERNEL)
        out.append(ksize(p))
        kfree(p)
        return out

    m, out = _run(probe)
    assert out == [None, None, None, None, True, 64] and not m.reports


def test_kmemdup_and_kstrdup_copy() -> None:
    def probe() -> list[bytes]:
        src = kmalloc(10, GFP_KERNEL)
        mem_write(src, b"driver\0xyz")
        d = kmemdup(src, 10, GFP_KERNEL)
        s1 = kstrdup(src, GFP_KERNEL)        # a C string in simulated memory
        s2 = kstrdup("eth%d", GFP_KERNEL)    # a string constant of the driver's
        s3 = kstrndup(src, 3, GFP_KERNEL)
        t = kmemdup(b"\x01\x02\x03\x04", 3, GFP_KERNEL)   # a static table of the driver's
        out = [mem_read(d, 10), mem_read(s1, ksize(s1))[:7], mem_read(s2, 6), mem_read(s3, 4),
               bytes([kstrdup(None, GFP_KERNEL) is None]), mem_read(t, 3)]
        for p in (src, d, s1, s2, s3, t):
            kfree(p)
        return out

    m, out = _run(probe, kasan=True)
    assert out == [b"driver\0xyz", b"driver\0", b"eth%d\0", b"dri\0", b"\x01", b"\x01\x02\x03"]
    assert not m.reports


def test_kmemdup_of_a_source_too_short_is_a_kasan_read() -> None:
    def probe() -> None:
        src = kmalloc(8, GFP_KERNEL)
        d = kmemdup(src, 16, GFP_KERNEL)     # len past the source object
        kfree(d)
        kfree(src)

    m, _ = _run(probe, kasan=True)
    assert [r.kind for r in m.reports] == ["kasan_slab_out_of_bounds"]
    assert "Read of size 16" in m.reports[0].text


def test_kstrdup_of_an_unterminated_string_is_one_kasan_read_in_strnlen() -> None:
    def probe() -> None:
        name = kmalloc(8, GFP_KERNEL)
        mem_write(name, b"abcdefgh")         # no NUL in its 8 bytes
        kfree(kstrdup(name, GFP_KERNEL))
        kfree(name)

    m, _ = _run(probe, kasan=True)
    assert [r.kind for r in m.reports] == ["kasan_slab_out_of_bounds"]
    assert "BUG: KASAN: slab-out-of-bounds in strnlen" in m.reports[0].text


# -- krealloc ------------------------------------------------------------------------------------
def test_krealloc_semantics() -> None:
    def probe() -> list[Any]:
        p = krealloc(None, 100, GFP_KERNEL)           # krealloc(NULL) is kmalloc
        memset(p, 0x11, 100)
        same = krealloc(p, 120, GFP_KERNEL)           # ksize 128 holds it: the same object
        moved = krealloc(same, 500, GFP_KERNEL)       # a new object with the old bytes
        head = mem_read(moved, 100)
        gone = krealloc(moved, 0, GFP_KERNEL)         # frees, NULL (the first krealloc's answer)
        q = kmalloc(64, GFP_KERNEL)
        big = krealloc(q, KMALLOC_MAX_SIZE + 1, GFP_KERNEL)   # no such object: NULL, q kept
        write_u8(q, 1)
        kfree(q)
        return [same == p, moved != p, head, gone, big]

    m, (same, moved, head, gone, big) = _run(probe, kasan=True)
    assert same and moved and head == b"\x11" * 100 and gone is None and big is None
    assert not m.reports


def test_krealloc_with_gfp_zero_zeroes_past_the_new_size_in_place() -> None:
    def probe() -> list[Any]:
        p = kmalloc(128, GFP_KERNEL)
        memset(p, 0x22, 128)
        q = krealloc(p, 64, GFP_KERNEL | GFP_ZERO)   # shrunk in place: bytes 64.. zeroed
        r = krealloc(q, 128, GFP_KERNEL | GFP_ZERO)  # grown back in place
        data = mem_read(r, 128)
        kfree(r)
        return [q == p, r == p, data]

    assert _run(probe, kasan=True)[1] == [True, True, b"\x22" * 64 + bytes(64)]


@pytest.mark.parametrize("seed", SEEDS)
def test_krealloc_under_slab_debugging_moves_the_kmalloc_red_zone(seed: int) -> None:
    def probe() -> None:
        p = kmalloc(100, GFP_KERNEL)
        memset(p, 0x33, 100)
        p = krealloc(p, 120, GFP_KERNEL)     # grown in place: bytes 100..119 usable now
        memset(p, 0x44, 120)
        p = krealloc(p, 50, GFP_KERNEL)      # shrunk: 50.. is red zone again
        memset(p, 0x55, 50)
        q = krealloc(p, 300, GFP_KERNEL)     # moved
        memset(q, 0x66, 300)
        kfree(q)

    m = Machine(cpus=2, policy="random", seed=seed, slab_debug=True)
    m.run(probe, probe)
    assert not m.reports, m.reports[0].text
    m.check()

    def overrun() -> None:
        p = krealloc(kmalloc(100, GFP_KERNEL), 50, GFP_KERNEL)
        memset(p, 0x55, 51)                  # one byte into the moved red zone
        kfree(p)

    m = Machine(cpus=1, policy="random", seed=seed, slab_debug=True)
    m.run(overrun)
    assert m.reports, "the write past the shrunk size went unseen"


def test_krealloc_array_kmemdup_nul_and_kfree_sensitive() -> None:
    def probe() -> list[Any]:
        p = kmalloc(16, GFP_KERNEL)
        memset(p, 0x77, 16)
        out: list[Any] = [krealloc_array(p, 0x40000000, 8, GFP_KERNEL)]   # overflow: NULL, p kept
        p = krealloc_array(p, 8, 8, GFP_KERNEL)
        out.append(mem_read(p, 16))
        n = kmemdup_nul(p, 3, GFP_KERNEL)
        out.append(mem_read(n, 4))
        kfree_sensitive(p)
        kfree(n)
        kzfree(None)
        return out

    m, out = _run(probe, kasan=True)
    assert out == [None, b"\x77" * 16, b"\x77\x77\x77\0"] and not m.reports


def test_kfree_sensitive_zeroes_the_object_before_freeing_it() -> None:
    def probe() -> bytes:
        key = kmalloc(32, GFP_KERNEL)
        memset(key, 0xAB, 32)
        kfree_sensitive(key)
        return bytes(current_machine().mem.read(key - PAGE_OFFSET, 32))   # what is left there

    assert _run(probe)[1] == bytes(32)


def test_kmalloc_double_kzfree() -> None:
    """test_kasan.c kmalloc_double_kzfree: the second kfree_sensitive() is reported."""
    def probe() -> None:
        ptr = kmalloc(16, GFP_KERNEL)
        kfree_sensitive(ptr)
        kfree_sensitive(ptr)

    m, _ = _run(probe, kasan=True)
    kinds = [r.kind for r in m.reports]
    assert "kasan_slab_use_after_free" in kinds and "kasan_double_free" in kinds, kinds
    assert "in ksize" in m.reports_of("kasan_slab_use_after_free")[0].text


# -- kvmalloc and kvfree -------------------------------------------------------------------------
def test_kvmalloc_takes_kmalloc_first_then_vmalloc() -> None:
    def probe() -> list[Any]:
        small = kvmalloc(3000, GFP_KERNEL)
        large = kvzalloc(KMALLOC_MAX_SIZE + PAGE_SIZE, GFP_KERNEL)
        atomic_large = kvmalloc(KMALLOC_MAX_SIZE + PAGE_SIZE, GFP_ATOMIC)   # kmalloc only: NULL
        arr = kvmalloc_array(1000, 200, GFP_KERNEL)                          # 200000 > 131072
        out = [is_vmalloc_addr(small), is_vmalloc_addr(large), atomic_large,
               is_vmalloc_addr(arr), mem_read(large + KMALLOC_MAX_SIZE, 64) == bytes(64)]
        for p in (small, large, arr):
            kvfree(p)
        kvfree(None)
        out.append(is_vmalloc_addr(None))
        return out

    m, out = _run(probe, kasan=True, kmemleak="fail")
    assert out == [False, True, None, True, True, False]
    assert not m.reports
    assert not m.vmalloc.vmlist or all(a.flags & 1 for a in m.vmalloc.vmlist)  # nothing vmalloc'ed left


def test_kvmalloc_falls_back_to_vmalloc_quietly_when_kmalloc_fails() -> None:
    def probe() -> list[Any]:
        current().fail_nth = 1                 # kvmalloc's kmalloc is the first injectable call
        p = kvmalloc(8 * PAGE_SIZE, GFP_KERNEL)
        out = [is_vmalloc_addr(p)]
        current().fail_nth = 1
        out.append(kvmalloc(PAGE_SIZE, GFP_KERNEL))   # a page or less: kmalloc only, NULL
        kvfree(p)
        return out

    m, out = _run(probe, fault_inject={"failslab": {"verbose": 0, "ignore_gfp_wait": False}})
    assert out == [True, None] and not m.reports


def test_kvmalloc_with_flags_vmalloc_cannot_honour_is_kmalloc_only() -> None:
    def probe() -> list[Any]:
        vms = len(current_machine().vmalloc.vmlist)
        out = [kvmalloc(KMALLOC_MAX_SIZE + 1, GFP_NOFS), kvzalloc(KMALLOC_MAX_SIZE + 1, GFP_ATOMIC)]
        small = kvmalloc(512, GFP_NOFS)          # kmalloc can: it does
        out += [small is not None and not is_vmalloc_addr(small), len(current_machine().vmalloc.vmlist) == vms]
        kvfree(small)
        return out

    m, out = _run(probe)
    assert out == [None, None, True, True] and not m.reports


def test_kfree_of_a_vmalloced_buffer_without_kasan_is_kfree_debugchecks_report() -> None:
    def probe() -> None:
        table = kvmalloc(KMALLOC_MAX_SIZE + PAGE_SIZE, GFP_KERNEL)
        kfree(table)                          # kvfree was meant: refused, the area stays
        kvfree(table)

    m, _ = _run(probe)
    assert [r.kind for r in m.reports] == ["slab_invalid_free"]
    assert m.reports[0].text.startswith("kfree_debugcheck: out of range ptr"), m.reports[0].text


# -- pages ------------------------------------------------------------------------------------------
def test_alloc_pages_exact_keeps_only_the_pages_asked_for() -> None:
    def probe() -> list[Any]:
        free0 = nr_free_pages()
        size = 4 * PAGE_SIZE + 100                 # get_order: 8 pages; 5 kept
        p = alloc_pages_exact(size, GFP_KERNEL)
        held = free0 - nr_free_pages()
        for i in range(5):
            write_u32(p + i * PAGE_SIZE, i)
        free_pages_exact(p, size)
        dma = __get_dma_pages(GFP_KERNEL, 1)
        below_16m = dma - PAGE_OFFSET < 16 << 20
        free_pages(dma, 1)
        return [held, nr_free_pages() == free0, below_16m, get_order(size)]

    m, out = _run(probe, kasan=True)
    assert out == [5, True, True, 3] and not m.reports


def test_free_pages_of_an_exact_allocation_as_a_block_is_refused() -> None:
    def probe() -> None:
        p = alloc_pages_exact(4 * PAGE_SIZE, GFP_KERNEL)
        free_pages(p, 2)                             # split: no order-2 block any more
        free_pages_exact(p, 4 * PAGE_SIZE)

    m, _ = _run(probe)
    assert [r.kind for r in m.reports] == ["bad_page_order"]


# -- get_cpu_ptr/put_cpu_ptr -----------------------------------------------------------------------
STATS = DEFINE_PER_CPU(int, "slabapi_stats")


def test_get_cpu_ptr_disables_preemption_until_put_cpu_ptr() -> None:
    def probe() -> list[Any]:
        p = get_cpu_ptr(STATS)
        inside = [in_atomic(), p == this_cpu_ptr(STATS), smp_processor_id()]
        write_u32(p, read_u32(p) + 1)
        put_cpu_ptr(STATS)
        return [*inside, in_atomic(), read_u32(per_cpu_ptr(STATS, inside[2]))]

    m, (atomic, same, _cpu, after, count) = _run(probe, cpus=2)
    assert atomic and same and not after and count == 1 and not m.reports


# -- bug scenarios and their fixed twins ------------------------------------------------------------
def _two(fn: Callable[[int], Any]) -> Callable[[Machine], None]:
    """Two instances of a driver function on two CPUs (probe of two devices, two opens)."""
    def scenario(m: Machine) -> None:
        m.run(lambda: fn(0), lambda: fn(1))
    return scenario


def krealloc_more_oob(bug: bool) -> Callable[[Machine], None]:
    """test_kasan.c krealloc_more_oob: kmalloc(201), krealloc(235), then ptr2[235]."""
    def drv(i: int) -> None:
        p1 = kmalloc(201, GFP_KERNEL)
        p2 = krealloc(p1, 235, GFP_KERNEL)
        write_u8(p2 + 234, 0x5A)
        if bug:
            write_u8(p2 + 235, 0x5A)
        kfree(p2)
    return _two(drv)


def krealloc_less_oob(bug: bool) -> Callable[[Machine], None]:
    """test_kasan.c krealloc_less_oob: kmalloc(235), krealloc(201): the tail is red zone."""
    def drv(i: int) -> None:
        p1 = kmalloc(235, GFP_KERNEL)
        memset(p1, 0x11, 235)
        p2 = krealloc(p1, 201, GFP_KERNEL)
        write_u8(p2 + 200, 0x5A)
        if bug:
            write_u8(p2 + 201, 0x5A)
        kfree(p2)
    return _two(drv)


def krealloc_uaf(bug: bool) -> Callable[[Machine], None]:
    """test_kasan.c krealloc_uaf: krealloc of a freed object (NULL back, reported in
    krealloc); the twin reallocates first, frees after."""
    def drv(i: int) -> None:
        p1 = kmalloc(201, GFP_KERNEL)
        if bug:
            kfree(p1)
            p2 = krealloc(p1, 235, GFP_KERNEL)
            assert p2 is None
        else:
            p2 = krealloc(p1, 235, GFP_KERNEL)
            kfree(p2)
    return _two(drv)


def krealloc_old_pointer(bug: bool) -> Callable[[Machine], None]:
    """A driver grows its buffer with krealloc (the object moves) and keeps using the old
    pointer: the old object was freed by krealloc, a use-after-free."""
    def drv(i: int) -> None:
        buf = kmalloc(64, GFP_KERNEL)
        write_u32(buf, 7)
        new = krealloc(buf, 600, GFP_KERNEL)
        read_u32(buf if bug else new)
        kfree(new)
    return _two(drv)


def kmalloc_array_overflow(bug: bool) -> Callable[[Machine], None]:
    """A count from user space: the buggy driver computes n * size itself (wrapping to 4
    bytes on i386) and fills the elements; the fixed one asks kmalloc_array, gets NULL and
    returns -ENOMEM."""
    n, size = 0x40000001, 4

    def drv(i: int) -> None:
        if bug:
            p = kmalloc((n * size) & 0xFFFFFFFF, GFP_KERNEL)
        else:
            p = kmalloc_array(n, size, GFP_KERNEL)
            if p is None:
                return                    # -ENOMEM
        for k in range(4):                # the first elements: past the 4 bytes it got
            write_u32(p + 4 * k, k)
        kfree(p)
    return _two(drv)


def kfree_of_kvmalloc(bug: bool) -> Callable[[Machine], None]:
    """A table sized by the device: kvmalloc'ed (vmalloc when large), freed with kfree in the
    buggy driver, kvfree in the fixed one (both a kmalloc'ed and a vmalloc'ed buffer)."""
    def drv(i: int) -> None:
        small = kvmalloc(256, GFP_KERNEL)
        table = kvmalloc(KMALLOC_MAX_SIZE + 2 * PAGE_SIZE, GFP_KERNEL)
        write_u32(table, i)
        kvfree(small)
        if bug:
            kfree(table)
        else:
            kvfree(table)
    return _two(drv)


def free_pages_exact_wrong_size(bug: bool) -> Callable[[Machine], None]:
    """A ring of 5 pages from alloc_pages_exact, freed with the rounded-up size (the 8
    pages of its order): the 3 pages make_alloc_exact gave back are freed again."""
    size = 5 * PAGE_SIZE

    def drv(i: int) -> None:
        ring = alloc_pages_exact(size, GFP_KERNEL)
        memset(ring, i, size)
        free_pages_exact(ring, PAGE_SIZE << get_order(size) if bug else size)
    return _two(drv)


PCPU_HITS = DEFINE_PER_CPU(int, "slabapi_hits")


def this_cpu_ptr_preemptible(bug: bool) -> Callable[[Machine], None]:
    """Per-CPU statistics through a pointer: this_cpu_ptr() in preemptible code (the task
    may move before it writes) vs get_cpu_ptr()/put_cpu_ptr() around the update."""
    def drv(i: int) -> None:
        for _ in range(3):
            p = this_cpu_ptr(PCPU_HITS) if bug else get_cpu_ptr(PCPU_HITS)
            write_u32(p, read_u32(p) + 1)
            if not bug:
                put_cpu_ptr(PCPU_HITS)
    return _two(drv)


def get_cpu_ptr_across_sleep(bug: bool) -> Callable[[Machine], None]:
    """get_cpu_ptr() held across msleep() (sleeping with preemption off) vs the pointer
    dropped with put_cpu_ptr() before the sleep."""
    def drv(i: int) -> None:
        p = get_cpu_ptr(PCPU_HITS)
        write_u32(p, read_u32(p) + 1)
        if bug:
            msleep(1)
            put_cpu_ptr(PCPU_HITS)
        else:
            put_cpu_ptr(PCPU_HITS)
            msleep(1)
    return _two(drv)


#: name -> (scenario maker, the report kind the bug gets, its first line's start)
PAIRS: dict[str, tuple[Callable[[bool], Callable[[Machine], None]], str, str]] = {
    "krealloc_more_oob": (krealloc_more_oob, "kasan_slab_out_of_bounds", "BUG: KASAN: slab-out-of-bounds in drv"),
    "krealloc_less_oob": (krealloc_less_oob, "kasan_slab_out_of_bounds", "BUG: KASAN: slab-out-of-bounds in drv"),
    "krealloc_uaf": (krealloc_uaf, "kasan_slab_use_after_free", "BUG: KASAN: slab-use-after-free in krealloc"),
    "krealloc_old_pointer": (krealloc_old_pointer, "kasan_slab_use_after_free",
                             "BUG: KASAN: slab-use-after-free in drv"),
    "kmalloc_array_overflow": (kmalloc_array_overflow, "kasan_slab_out_of_bounds",
                               "BUG: KASAN: slab-out-of-bounds in drv"),
    "kfree_of_kvmalloc": (kfree_of_kvmalloc, "kasan_invalid_free", "BUG: KASAN: invalid-free in kfree"),
    "free_pages_exact_wrong_size": (free_pages_exact_wrong_size, "double_free", "BUG: Bad page state in process"),
    "this_cpu_ptr_preemptible": (this_cpu_ptr_preemptible, "preempt_smp_processor_id",
                                 "BUG: using smp_processor_id() in preemptible"),
    "get_cpu_ptr_across_sleep": (get_cpu_ptr_across_sleep, "scheduling_while_atomic",
                                 "BUG: scheduling while atomic"),
}


def _headline(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip(" =-"))


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_bug_is_reported_in_the_kernels_words_under_every_policy(name: str) -> None:
    make, kind, first = PAIRS[name]
    for policy in POLICIES:
        for seed in SEEDS:
            m = Machine(cpus=2, policy=policy, seed=seed, **DETECTORS)
            make(True)(m)
            got = m.reports_of(kind)
            assert got, f"{name} {policy}/{seed}: no {kind} report, got {[r.kind for r in m.reports]}"
            assert _headline(got[0].text).startswith(first), got[0].text


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_fixed_twin_gets_no_report(name: str) -> None:
    make = PAIRS[name][0]
    explore(make(False), seeds=SEEDS, policies=POLICIES, cpus=2, shrink=False, **DETECTORS)
