"""The slab allocator: geometry, constructors, magazines, slabinfo, debugging, concurrency."""

from __future__ import annotations

import threading

import pytest

from percpu_kmem import (
    __GFP_NOWARN,
    GFP_ATOMIC,
    GFP_DMA,
    GFP_KERNEL,
    SLAB_CTOR_ATOMIC,
    SLAB_CTOR_CONSTRUCTOR,
    SLAB_HWCACHE_ALIGN,
    SLAB_NO_REAP,
    SLAB_PANIC,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    KernelPanic,
    KmemUsageError,
    Machine,
    __get_free_page,
    alloc_page,
    current,
    free_page,
    init_waitqueue_head,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_shrink,
    kmem_cache_tune,
    ksize,
    mem_read,
    mem_write,
    nr_free_pages,
    preempt_point,
    raise_irq,
    raw_smp_processor_id,
    read_u32,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    wait_event,
    wake_up,
    write_u8,
    write_u32,
)
from percpu_kmem.mm.slab_geometry import BYTES_PER_WORD, Geometry, cache_estimate, enable_cpucache_tunables
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(120)


def run1(body, **kw):
    """Run ``body`` as one kernel thread on a fresh machine; return (machine, result)."""
    m = Machine(cpus=kw.pop("cpus", 1), **kw)
    res = m.run(body)[0]
    return m, res


def slabinfo_row(m: Machine, name: str) -> list[int]:
    for line in m.proc("slabinfo").splitlines()[2:]:
        if line.split()[0] == name:
            f = line.split()
            return [int(f[i]) for i in (1, 2, 3, 4, 5, 8, 9, 10, 13, 14, 15)]
    raise AssertionError(f"no {name} in slabinfo")


# -- geometry ----------------------------------------------------------------------------------
def test_cache_estimate_follows_the_on_slab_formula() -> None:
    # i*size + ALIGN(24 + 4*i, align) <= 4096: 113 objects of 32 bytes, 96 bytes left... as 2.6
    assert cache_estimate(0, 32, 32, 0) == (113, 0)
    assert cache_estimate(0, 64, 32, 0)[0] == 59
    assert cache_estimate(0, 4096, 4, 0x80000000) == (1, 0)  # off-slab: no header in the slab


@pytest.mark.parametrize("size,num,order", [(32, 113, 0), (64, 59, 0), (96, 40, 0), (128, 30, 0), (256, 15, 0),
                                            (512, 8, 0), (2048, 2, 0), (4096, 1, 0), (8192, 1, 1),
                                            (131072, 1, 5)])
def test_kmalloc_cache_geometry(size: int, num: int, order: int) -> None:
    m = Machine(cpus=2, memory="64M")
    row = slabinfo_row(m, f"size-{size}")
    assert row[2:5] == [size, num, 1 << order]


def test_tunables_follow_enable_cpucache() -> None:
    assert enable_cpucache_tunables(32, 4, False) == (120, 60, 8)
    assert enable_cpucache_tunables(300, 4, False) == (54, 27, 8)
    assert enable_cpucache_tunables(2000, 4, False) == (24, 12, 8)
    assert enable_cpucache_tunables(8192, 4, False) == (8, 4, 0)
    assert enable_cpucache_tunables(200000, 4, False) == (1, 1, 0)
    assert enable_cpucache_tunables(32, 1, False) == (120, 60, 0)  # UP: no shared array
    assert enable_cpucache_tunables(32, 4, True) == (32, 16, 8)  # DEBUG caps the limit


def test_debug_layout_adds_redzones_and_user_word() -> None:
    g = Geometry(100, 0, SLAB_RED_ZONE | SLAB_STORE_USER, slab_break_order=1, offslab_limit=58)
    assert (g.reallen, g.objsize) == (100, 100 + 3 * BYTES_PER_WORD)
    assert g.num * g.objsize <= 4096


# -- create / destroy ---------------------------------------------------------------------------
def test_constructor_runs_on_every_object_of_a_new_slab_and_dtor_on_destroy() -> None:
    calls: list[tuple[str, int, int]] = []

    def ctor(obj: int, cache: object, flags: int) -> None:
        calls.append(("ctor", obj, flags))
        write_u32(obj, 0xC0FFEE)

    def dtor(obj: int, cache: object, flags: int) -> None:
        calls.append(("dtor", obj, flags))

    def body() -> None:
        c = kmem_cache_create("ctor_cache", 256, 0, SLAB_HWCACHE_ALIGN, ctor, dtor)
        a = kmem_cache_alloc(c, GFP_KERNEL)
        assert read_u32(a) == 0xC0FFEE  # handed out in the constructed state
        n = c.num
        assert [k for k, _, _ in calls] == ["ctor"] * n
        assert all(f == SLAB_CTOR_CONSTRUCTOR for _, _, f in calls)
        b = kmem_cache_alloc(c, GFP_ATOMIC)
        assert len(calls) == n  # no new slab: no constructor call
        kmem_cache_free(c, a)
        kmem_cache_free(c, b)
        assert kmem_cache_destroy(c) == 0
        dt = [(o, f) for k, o, f in calls if k == "dtor"]
        assert len(dt) == n and all(f == 0 for _, f in dt)
        assert sorted(o for o, _ in dt) == sorted(o for k, o, _ in calls if k == "ctor")

    m, _ = run1(body)
    assert m.reports == []
    m.check()


def test_slab_grown_from_atomic_context_tells_the_constructor() -> None:
    flags_seen: list[int] = []

    def body() -> None:
        c = kmem_cache_create("atomic_ctor", 64, 0, 0, lambda o, cp, f: flags_seen.append(f), None)
        kmem_cache_alloc(c, GFP_ATOMIC)

    run1(body)
    assert flags_seen and all(f == SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC for f in flags_seen)


@pytest.mark.parametrize("args,text", [
    (("", 64), "kmem_cache_create: Early error in slab "),
    (("zero", 0), "kmem_cache_create: Early error in slab zero"),
    (("huge", 131072 * 2), "kmem_cache_create: Early error in slab huge"),
    (("dtor_only", 64, 0, 0, None, lambda o, c, f: None), "kmem_cache_create: Early error in slab dtor_only"),
    (("size-64", 64), "kmem_cache_create: duplicate cache size-64"),
])
def test_bad_create_arguments_get_the_kernels_answer(args: tuple, text: str) -> None:
    m, res = run1(lambda: kmem_cache_create(*args))
    assert res is None
    assert [r.kind for r in m.reports] == ["slab_error"]
    assert m.reports[0].text.splitlines()[0] == text
    m.check()


def test_python_misuse_raises_precise_errors() -> None:
    m = Machine(cpus=1)
    with pytest.raises(KmemUsageError, match="ctor must be callable"):
        m.run(lambda: kmem_cache_create("x", 64, 0, 0, "not callable", None))
    with pytest.raises(KmemUsageError, match="size must be an int"):
        m.run(lambda: kmem_cache_create("x", "64"))
    with pytest.raises(KmemUsageError, match="takes a cache from kmem_cache_create"):
        m.run(lambda: kmem_cache_alloc("size-64", GFP_KERNEL))
    with pytest.raises(KmemUsageError, match="flags must be GFP_"):
        m.run(lambda: kmalloc(64, "GFP_KERNEL"))
    with pytest.raises(KmemUsageError, match="size must be an int >= 0"):
        m.run(lambda: kmalloc(-1, GFP_KERNEL))
    with pytest.raises(KmemUsageError, match="call them from"):
        kmalloc(64, GFP_KERNEL)


def test_slab_panic_panics() -> None:
    m = Machine(cpus=1)
    with pytest.raises(KernelPanic, match="kmem_cache_create\\(\\): failed to create slab `size-32'"):
        m.run(lambda: kmem_cache_create("size-32", 32, 0, SLAB_PANIC))


def test_destroy_with_live_objects_is_refused_and_loses_nothing() -> None:
    def body() -> None:
        kmem_cache_destroy(kmem_cache_create("warm", 100, 0, 0))  # cache_cache keeps its (NO_REAP) slab
        free0 = nr_free_pages()
        c = kmem_cache_create("busy", 100, 0, 0)
        objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(50)]
        assert kmem_cache_destroy(c) == 1
        more = kmem_cache_alloc(c, GFP_KERNEL)  # still usable
        for o in objs + [more]:
            kmem_cache_free(c, o)
        assert kmem_cache_destroy(c) == 0
        assert nr_free_pages() == free0
        with pytest.raises(KmemUsageError, match="was destroyed"):
            kmem_cache_alloc(c, GFP_KERNEL)

    m, _ = run1(body)
    assert [r.kind for r in m.reports] == ["slab_destroy_busy"]
    text = m.reports[0].text.splitlines()
    assert text[0].startswith("kmem_cache_destroy busy: Slab cache still has objects when called from body")
    assert text[1] == "slab error in kmem_cache_destroy(): cache `busy': Can't free all objects"
    m.check()


def test_an_error_path_may_destroy_a_cache_it_never_made() -> None:
    """kmem_cache_destroy(NULL) does nothing (4.3 and later), like mempool_destroy(NULL):
    the unwinding of a failed module init, in the kernel's usual shape, reports nothing."""
    def init() -> int:
        a = kmem_cache_create("drv_a", 64, 0, 0)
        b = None  # its kmem_cache_create() failed
        kmem_cache_destroy(b)
        assert kmem_cache_destroy(None) == 0
        return kmem_cache_destroy(a)

    m, rc = run1(init)
    assert rc == 0 and not m.reports
    m.check()


# -- kmalloc --------------------------------------------------------------------------------------
def test_kmalloc_size_classes_dma_twins_and_limits() -> None:
    def body() -> None:
        for size, cls in ((0, 32), (1, 32), (33, 64), (65, 96), (100, 128), (129, 192), (193, 256), (300, 512),
                          (4096, 4096), (4097, 8192), (131072, 131072)):
            p = kmalloc(size, GFP_KERNEL)
            assert ksize(p) == cls, size
            kfree(p)
        assert kmalloc(131073, GFP_KERNEL) is None  # 2.6: NULL above the largest class
        d = kmalloc(100, GFP_KERNEL | GFP_DMA)
        assert d - 0xC0000000 < 16 << 20  # from ZONE_DMA
        kfree(d)
        kfree(None)
        kfree(0)

    m, _ = run1(body, memory="64M")
    assert m.reports == []
    row = slabinfo_row(m, "size-128(DMA)")
    assert row[0] == m.slab.find("size-128(DMA)").cached_objects() == 16  # BATCHREFILL_LIMIT, all cached
    assert row[1] == 30
    m.check()


def test_gfp_kernel_calls_might_sleep_even_on_the_fast_path() -> None:
    lock = spin_lock_init("l")

    def body() -> None:
        kfree(kmalloc(64, GFP_KERNEL))  # the magazine now has objects
        spin_lock(lock)
        p = kmalloc(64, GFP_ATOMIC)  # fine
        q = kmalloc(64, GFP_KERNEL)  # a bug even though no page is needed
        spin_unlock(lock)
        kfree(p)
        kfree(q)

    m, _ = run1(body)
    assert [r.kind for r in m.reports] == ["sleep_in_atomic"]
    assert "slab.py" in m.reports[0].text.splitlines()[0]


def test_fast_path_takes_no_shared_lock() -> None:
    def body() -> tuple[int, int]:
        c = kmem_cache_create("fast", 64, 0, 0)
        warm = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(10)]
        for o in warm:
            kmem_cache_free(c, o)
        kfree(kmalloc(100, GFP_ATOMIC))
        m = current().machine
        locks = [c.list_lock, c.depot_lock, *[z.lock for z in m.mm.zones]]
        before = [lk.acquisitions for lk in locks]
        for _ in range(1000):
            kmem_cache_free(c, kmem_cache_alloc(c, GFP_KERNEL))
            kfree(kmalloc(100, GFP_ATOMIC))
        return before, [lk.acquisitions for lk in locks]

    m, (before, after) = run1(body)
    assert before == after
    cc = m.slab.find("fast").cpu[0]
    assert cc.allochit >= 1000 and cc.freehit >= 1000


# -- slabinfo ------------------------------------------------------------------------------------
def test_slabinfo_columns_match_the_objects_and_slabs_created() -> None:
    def body() -> list[int]:
        c = kmem_cache_create("counted", 200, 0, SLAB_HWCACHE_ALIGN)
        objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(130)]
        for o in objs[:70]:
            kmem_cache_free(c, o)
        return objs

    m, objs = run1(body, cpus=2)
    c = m.slab.find("counted")
    # what the test can compute: slabs from distinct slab pages, objects from the slabs' use counts
    slabs = {(o - 0xC0000000) >> 12 for o in objs}
    num = c.num
    assert len(slabs) == -(-130 // num) == len(c.slabs_full) + len(c.slabs_partial) + len(c.slabs_free)
    cached = c.cached_objects()
    assert cached >= 70  # the freed objects (and what refills brought) sit in magazines, not in the slabs
    active, num_objs, objsize, objperslab, pages, limit, batch, shared, aslabs, nslabs, savail = \
        slabinfo_row(m, "counted")
    assert active == 60 + cached  # 2.6 counts magazine-cached objects as active
    assert num_objs == nslabs * num and nslabs == len(slabs)
    assert (objsize, objperslab, pages) == (224, num, 1)  # 200 rounded to a 32-byte line
    assert (limit, batch, shared) == (120, 60, 8)
    assert aslabs == nslabs and savail == 0
    header = m.proc("slabinfo").splitlines()
    assert header[0] == "slabinfo - version: 2.1"
    assert header[1].startswith("# name            <active_objs> <num_objs> <objsize>")
    assert header[2].startswith("counted ")  # newest cache first


def test_shrink_gives_back_every_free_slab_from_every_cpu() -> None:
    m = Machine(cpus=4, policy="random", seed=5)
    c_box: list = []

    def creator() -> None:
        c_box.append(kmem_cache_create("shrinkme", 500, 0, 0))

    m.run(creator)
    free0 = m.mm.nr_free_pages()

    def user() -> None:
        objs = [kmem_cache_alloc(c_box[0], GFP_KERNEL) for _ in range(40)]
        for o in objs:
            kmem_cache_free(c_box[0], o)

    m.run(user, user, user, user)
    assert m.mm.nr_free_pages() < free0  # slabs are held by magazines and free lists
    res = m.run(lambda: kmem_cache_shrink(c_box[0]))
    assert res == [0]
    assert m.mm.nr_free_pages() == free0
    assert c_box[0].cached_objects() == 0
    m.check()


def test_slabinfo_write_tunes_the_magazines() -> None:
    def body() -> None:
        c = kmem_cache_create("tuned", 64, 0, 0)
        kmem_cache_free(c, kmem_cache_alloc(c, GFP_KERNEL))
        kmem_cache_tune(c, 16, 8, 2)
        objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(40)]
        for o in objs:
            kmem_cache_free(c, o)

    m, _ = run1(body, cpus=2)
    row = slabinfo_row(m, "tuned")
    assert row[5:8] == [16, 8, 2]
    assert row[10] <= 16  # the depot holds at most shared full magazines of batchcount
    with pytest.raises(KmemUsageError, match="-EINVAL"):
        m.slab.slabinfo_write("tuned 4 8 0")
    m.check()


# -- debugging -------------------------------------------------------------------------------------
def test_use_after_free_write_is_caught_by_poison_at_allocation() -> None:
    def body() -> None:
        c = kmem_cache_create("poisoned", 64, 0, SLAB_POISON | SLAB_RED_ZONE | SLAB_STORE_USER)
        a = kmem_cache_alloc(c, GFP_KERNEL)
        assert mem_read(a, 4) == b"\x5a" * 4  # POISON_INUSE
        kmem_cache_free(c, a)
        assert mem_read(a, 63) == b"\x6b" * 63 and mem_read(a + 63, 1) == b"\xa5"
        write_u8(a + 10, 0x41)  # use after free
        b = kmem_cache_alloc(c, GFP_KERNEL)  # LIFO: the same object comes back
        assert b == a

    m, _ = run1(body)
    assert [r.kind for r in m.reports] == ["slab_poison"]
    lines = m.reports[0].text.splitlines()
    assert lines[:4] == ["=" * 77, "BUG poisoned (Not tainted): Poison overwritten", "-" * 77, ""]
    assert "@offset=10. First byte 0x41 instead of 0x6b" in lines[4]
    assert any(ln.startswith("Slab corruption: start=") for ln in lines)
    assert any(ln.startswith("Last user: [<") and "body" in ln for ln in lines)


def test_overflow_into_the_redzone_is_reported_at_free() -> None:
    def body() -> None:
        p = kmalloc(60, GFP_KERNEL)  # size-64
        mem_write(p + 64, b"\x00\x00\x00\x00")  # one word past the object
        kfree(p)

    m, _ = run1(body, slab_debug=True)
    assert [r.kind for r in m.reports] == ["slab_redzone"]
    assert m.reports[0].text.splitlines()[1] == "BUG size-64 (Not tainted): Right Redzone overwritten"
    assert "double free, or memory outside object was overwritten" in m.reports[0].text
    m.check()


def test_double_free_is_reported_refused_and_the_cache_stays_consistent() -> None:
    def body() -> None:
        p = kmalloc(100, GFP_KERNEL)
        q = kmalloc(100, GFP_KERNEL)
        kfree(p)
        kfree(p)
        r = kmalloc(100, GFP_KERNEL)
        s = kmalloc(100, GFP_KERNEL)
        assert len({q, r, s}) == 3  # p was not handed out twice
        kfree(q)
        kfree(r)
        kfree(s)

    m, _ = run1(body, slab_debug=True)
    assert [r.kind for r in m.reports] == ["slab_double_free"]
    lines = m.reports[0].text.splitlines()
    assert lines[1] == "BUG size-128 (Not tainted): Object already free"
    assert lines[5] == ("slab error in cache_free_debugcheck(): cache `size-128': double free, or memory outside "
                        "object was overwritten")
    assert m.reports[0].extra["cache"] == "size-128"
    m.check()


def test_invalid_and_foreign_frees_are_reported_and_refused() -> None:
    def body() -> None:
        c = kmem_cache_create("mine", 64, 0, SLAB_RED_ZONE)
        obj = kmem_cache_alloc(c, GFP_KERNEL)
        other = kmalloc(64, GFP_KERNEL)
        kmem_cache_free(c, other)  # an object of another cache
        kmem_cache_free(c, obj + 4)  # not the start of an object
        page = __get_free_page(GFP_KERNEL)
        kfree(page)  # never returned by kmalloc
        kfree(0x1000)  # not even in the direct map
        kmem_cache_free(c, obj)
        kfree(other)
        free_page(page)

    m, _ = run1(body)
    kinds = [r.kind for r in m.reports]
    assert kinds == ["slab_wrong_cache", "slab_invalid_free", "slab_invalid_free", "slab_invalid_free"]
    texts = [r.text.splitlines()[0] for r in m.reports]
    assert texts[0] == "cache_from_obj: Wrong slab cache. mine but object is from size-64"
    assert texts[1] == "=" * 77
    assert m.reports[1].text.splitlines()[1].startswith("BUG mine (Not tainted): Invalid object pointer 0x")
    assert texts[2].startswith("kfree_debugcheck: bad ptr c")
    assert texts[3] == "kfree_debugcheck: out of range ptr 1000h."
    m.check()


def test_without_debug_the_fast_path_does_not_look_at_the_bytes() -> None:
    def body() -> None:
        p = kmalloc(60, GFP_KERNEL)
        mem_write(p + 64, b"\x00" * 4)  # overflow: nobody checks
        kfree(p)

    m, _ = run1(body)
    assert m.reports == []


# -- reclaim ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags,gives_back", [(0, True), (SLAB_NO_REAP, False)])
def test_memory_pressure_reaps_free_slabs_unless_no_reap(flags: int, gives_back: bool) -> None:
    def body() -> tuple[int, int]:
        c = kmem_cache_create("reapable", 2000, 0, flags)
        objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(600)]
        for o in objs:
            kmem_cache_free(c, o)
        def slab_pages() -> int:
            return (len(c.slabs_full) + len(c.slabs_partial) + len(c.slabs_free)) << c.gfporder
        held = slab_pages()
        pages = []
        while True:  # exhaust memory: direct reclaim runs the slab shrinker
            p = alloc_page(GFP_KERNEL | __GFP_NOWARN | 0x1000)  # __GFP_NORETRY
            if p is None:
                break
            pages.append(p)
        after = slab_pages()
        from percpu_kmem import __free_page
        for p in pages:
            __free_page(p)
        return held, after

    m, (held, after) = run1(body, memory="8M")
    # free_block already destroyed the slabs beyond free_limit; the rest wait for reaping
    assert held >= m.slab.find("reapable").free_limit // 2
    if gives_back:
        assert after == 0
    else:
        assert after == held
    m.check()


# -- interrupts and concurrency ----------------------------------------------------------------------
def test_atomic_allocation_from_an_irq_in_the_middle_of_a_refill() -> None:
    """An interrupt on the same CPU while the task grows a slab (irqs on in cache_grow)."""
    got: list[int] = []
    box: list = []

    def handler(irq: int, dev: object) -> None:
        got.append(kmem_cache_alloc(box[0], GFP_ATOMIC))

    def ctor(obj: int, cache: object, flags: int) -> None:
        if len(got) < 3 and not flags & SLAB_CTOR_ATOMIC:
            raise_irq(7)  # delivered at once: this CPU has interrupts on while growing

    def body() -> list[int]:
        box.append(kmem_cache_create("irqcache", 128, 0, 0, ctor, None))
        mine = [kmem_cache_alloc(box[0], GFP_KERNEL) for _ in range(200)]
        return mine

    m = Machine(cpus=1)
    m.request_irq(7, handler, "dev")
    mine = m.run(body)[0]
    assert len(got) == 3 and None not in got
    assert len(set(mine) | set(got)) == 203  # nobody got an object twice
    m.check()


def _stress(m: Machine, *, tasks: int = 3, rounds: int = 25, debug_cache: bool = False) -> None:
    """Tasks allocate and free from a cache and kmalloc; an IRQ allocates GFP_ATOMIC."""
    live: set[int] = set()
    guard = threading.Lock()
    box: list = []
    irq_held: list[int] = []
    errors: list[str] = []

    def take(o: int | None) -> None:
        if o is None:
            errors.append("allocation failed")
            return
        with guard:
            if o in live:
                errors.append(f"object {o:#x} handed out twice")
            live.add(o)

    def give(o: int) -> None:
        with guard:
            live.discard(o)

    def handler(irq: int, dev: object) -> None:
        if irq_held:
            o = irq_held.pop()
            give(o)
            kmem_cache_free(box[0], o)
        else:
            o = kmem_cache_alloc(box[0], GFP_ATOMIC)
            take(o)
            if o is not None:
                irq_held.append(o)

    def setup() -> None:
        box.append(kmem_cache_create("stress", 96, 0, SLAB_RED_ZONE | SLAB_POISON if debug_cache else 0))

    m.run(setup)
    m.request_irq(5, handler, "stress", rate=0.05)

    def worker() -> None:
        mine: list[int] = []
        for i in range(rounds):
            for _ in range(1 + i % 7):
                o = kmem_cache_alloc(box[0], GFP_KERNEL)
                take(o)
                mine.append(o)
                k = kmalloc(40 + 8 * (i % 5), GFP_KERNEL)
                take(k)
                write_u32(k, raw_smp_processor_id())
                mine.append(k)
            preempt_point("stress")
            while len(mine) > 6:
                o = mine.pop(0)
                give(o)
                kfree(o)  # works for both caches; often freed on another CPU than it came from
        for o in mine:
            give(o)
            kfree(o)

    m.run(*([worker] * tasks))
    assert not errors, errors[:3]
    assert m.reports == [], m.reports[0].text
    c = box[0]
    active, num_objs, *_ = c.counts()
    assert active == len(irq_held) + c.cached_objects()  # nothing lost: slabinfo is exact
    assert sum(len(s.free) for s in c.slabs_partial.values()) + len(c.slabs_free) * c.num == c.free_objects


@pytest.mark.parametrize("policy", ["random", "pct"])
def test_concurrent_alloc_free_with_interrupts_under_50_seeds(policy: str) -> None:
    explore(_stress, seeds=range(50), policies=(policy,), cpus=3)


def test_concurrent_alloc_free_free_running() -> None:
    explore(lambda m: _stress(m, tasks=4, rounds=40), seeds=range(3), policies=("free",), cpus=4)


def test_concurrent_with_debugging_on() -> None:
    explore(lambda m: _stress(m, debug_cache=True), seeds=range(10), policies=("random",), cpus=2,
            slab_debug=True)


def test_remote_frees_producer_consumer() -> None:
    """Objects allocated on one CPU are freed on another: nothing leaks or corrupts."""
    remote = [0]

    def scenario(m: Machine) -> None:
        queue: list[tuple[int, int]] = []
        done: list[bool] = []
        box: list = []
        wq = init_waitqueue_head("queue")
        m.run(lambda: box.append(kmem_cache_create("remote", 64, 0, 0)))

        def producer() -> None:
            for i in range(300):
                o = kmem_cache_alloc(box[0], GFP_KERNEL)
                write_u32(o, i)
                queue.append((o, raw_smp_processor_id()))
                wake_up(wq)
            done.append(True)
            wake_up(wq)

        def consumer() -> list[int]:
            seen = []
            while True:
                wait_event(wq, lambda: bool(queue or done))
                if not queue:
                    return seen
                o, cpu = queue.pop(0)
                seen.append(read_u32(o))
                remote[0] += cpu != raw_smp_processor_id()
                kmem_cache_free(box[0], o)

        res = m.run(producer, consumer)
        assert res[1] == list(range(300))
        c = box[0]
        assert c.counts()[0] == c.cached_objects()  # every object is back
        assert m.run(lambda: kmem_cache_destroy(box[0])) == [0]

    explore(scenario, seeds=range(20), policies=("random", "pct"), cpus=2)
    assert remote[0] > 1000  # most frees really were remote


def test_a_run_with_slab_traffic_replays_exactly() -> None:
    def work() -> None:
        objs = [kmalloc(64 + 32 * (i % 4), GFP_KERNEL) for i in range(60)]
        for o in objs[::2]:
            kfree(o)

    m1 = Machine(cpus=2, policy="random", seed=11)
    m1.run(work, work, work)
    m2 = Machine(cpus=2, policy="random", seed=99, replay=m1.trace)
    m2.run(work, work, work)
    assert m2.diverged is None
    assert m2.proc("slabinfo") == m1.proc("slabinfo")


@pytest.mark.parametrize("name,kind", [("free-race", "slab_double_free"), ("irq-kmalloc", "sleep_in_atomic")])
def test_slab_scenarios_find_their_bug_and_the_fixed_version_does_not(name: str, kind: str) -> None:
    from percpu_kmem.scenarios import explore_scenario
    buggy = explore_scenario(name, seeds=range(20), cpus=2, policy="random")
    assert buggy["buggy_seeds"] and set(buggy["report_kinds"]) == {kind}
    assert buggy["first"]["replay"].startswith("percpu_kmem: seed=")
    fixed = explore_scenario(name, seeds=range(20), cpus=2, policy="random", fixed=True)
    assert fixed["buggy_seeds"] == []
