"""mempool: the reserve, the modern mempool_alloc algorithm, 2.6 create/destroy/resize, concurrency."""

from __future__ import annotations

import random
from typing import Any

import pytest

from percpu_kmem import (
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOIO,
    KmemUsageError,
    Machine,
    NotInTaskError,
    __free_page,
    alloc_page,
    current,
    in_irq,
    jiffies,
    mem_read,
    mem_write,
    mempool_alloc,
    mempool_create,
    mempool_create_kmalloc_pool,
    mempool_create_page_pool,
    mempool_create_slab_pool,
    mempool_destroy,
    mempool_free,
    mempool_resize,
    msleep,
    nr_free_pages,
    page_address,
    raise_irq,
    raw_smp_processor_id,
    request_irq,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    waitqueue_active,
)
from percpu_kmem.mm.gfp import __GFP_FS, __GFP_HIGH, __GFP_NORETRY, __GFP_NOWARN, __GFP_WAIT, __GFP_ZERO
from percpu_kmem.mm.mempool import (
    MEMPOOL_WAIT_JIFFIES,
    POISON_END,
    POISON_FREE,
    POISON_INUSE,
    mempool_alloc_pages,
    mempool_free_pages,
    mempools_of,
)
from percpu_kmem.mm.physmem import InconsistentState
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(120)
SMALL = "8M"  # 2048 pages, all in ZONE_DMA


class Switchable:
    """An alloc_fn/free_fn pair over plain objects whose allocator fails on command."""

    def __init__(self) -> None:
        self.fail = False
        self.allocs: list[int] = []  # the gfp mask of every alloc_fn call
        self.freed: list[Any] = []
        self.made = 0

    def alloc(self, gfp: int, pool_data: Any) -> Any:
        self.allocs.append(gfp)
        if self.fail:
            return None
        self.made += 1
        return ("elem", self.made)

    def free(self, element: Any, pool_data: Any) -> None:
        self.freed.append(element)


def pages_free() -> int:
    """Free pages plus slab pages: what a pool gives back once destroyed. Its own struct and
    elements array are kmalloc'd and may leave a slab behind (tests/mm/test_mempool_limits.py
    checks that they are freed)."""
    return nr_free_pages() + current().machine.slab.nr_slab_pages


def grab_all() -> list:
    """Every page GFP_ATOMIC can still get (down into the atomic reserve)."""
    got = []
    while (p := alloc_page(GFP_ATOMIC | __GFP_NOWARN)) is not None:
        got.append(p)
    return got


# -- the algorithm --------------------------------------------------------------------------------
def test_allocator_first_then_reserve_with_the_modern_masks() -> None:
    m = Machine(cpus=1)
    sw = Switchable()
    out: dict = {}

    def body() -> None:
        pool = mempool_create(3, sw.alloc, sw.free, None)
        assert pool is not None and pool.curr_nr == 3
        assert sw.allocs == [GFP_KERNEL] * 3  # preallocation with GFP_KERNEL
        sw.allocs.clear()
        e = mempool_alloc(pool, GFP_KERNEL)  # the allocator works: the reserve is not touched
        assert e == ("elem", 4) and pool.curr_nr == 3
        assert sw.allocs == [__GFP_FS | __GFP_NORETRY | __GFP_NOWARN]  # no __GFP_WAIT, no __GFP_IO
        sw.allocs.clear()
        sw.fail = True
        got = [mempool_alloc(pool, GFP_KERNEL) for _ in range(3)]
        assert got == [("elem", 3), ("elem", 2), ("elem", 1)]  # LIFO: elements[--curr_nr]
        assert pool.curr_nr == 0
        # each call: one try without reclaim, then the reserve answered
        assert sw.allocs == [__GFP_FS | __GFP_NORETRY | __GFP_NOWARN] * 3
        sw.allocs.clear()
        assert mempool_alloc(pool, GFP_ATOMIC) is None  # empty reserve, no waiting
        assert sw.allocs == [__GFP_HIGH | __GFP_NORETRY | __GFP_NOWARN]  # one try: nothing to strip
        sw.allocs.clear()
        out["atomic_jiffies"] = jiffies()
        # frees refill the reserve up to min_nr before anything goes back to the allocator
        for i, x in enumerate([e, *got]):
            mempool_free(x, pool)
            assert pool.curr_nr == min(i + 1, 3)
            assert sw.freed == ([] if i < 3 else [got[-1]])
        mempool_free(None, pool)  # NULL is ignored
        assert pool.nr_out == 0
        mempool_destroy(pool)
        assert len(sw.freed) == 4 and sorted(sw.freed) == sorted([e, *got])

    m.run(body)
    assert out["atomic_jiffies"] == 0
    assert m.reports == []
    m.check()


def test_second_try_uses_the_full_mask_before_the_caller_sleeps() -> None:
    m = Machine(cpus=1)
    sw = Switchable()
    seen: list[int] = []

    def alloc(gfp: int, data: Any) -> Any:
        seen.append(gfp)
        return sw.alloc(gfp, data) if gfp & __GFP_WAIT else None  # only reclaim helps

    def body() -> None:
        pool = mempool_create(1, alloc, sw.free, None)
        seen.clear()
        first = mempool_alloc(pool, GFP_KERNEL)  # reserve
        assert pool.curr_nr == 0 and seen == [__GFP_FS | __GFP_NORETRY | __GFP_NOWARN]
        seen.clear()
        e = mempool_alloc(pool, GFP_NOIO)  # empty reserve: retry at once with __GFP_WAIT
        assert e is not None and seen == [__GFP_NORETRY | __GFP_NOWARN, GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN]
        mempool_free(first, pool)
        mempool_free(e, pool)
        mempool_destroy(pool)

    m.run(body)
    assert m.now == 0 and m.reports == []
    m.check()


def test_gfp_kernel_sleeps_until_a_free_on_another_cpu() -> None:
    m = Machine(cpus=2, policy="random", seed=1)
    sw = Switchable()
    shared: dict = {}
    log: list = []

    def waiter() -> None:
        pool = mempool_create(2, sw.alloc, sw.free, None)
        shared["pool"] = pool
        sw.fail = True
        shared["held"] = [mempool_alloc(pool, GFP_KERNEL), mempool_alloc(pool, GFP_KERNEL)]
        start = jiffies()
        log.append(("waiter sleeps", raw_smp_processor_id()))
        e = mempool_alloc(pool, GFP_KERNEL)
        log.append(("waiter got", e, jiffies() - start))

    def freer() -> None:
        while "held" not in shared:
            msleep(1)
        msleep(10)
        assert waitqueue_active(shared["pool"].wait)  # the waiter is on pool->wait
        log.append(("freer frees", raw_smp_processor_id()))
        mempool_free(shared["held"][0], shared["pool"])

    m.run(waiter, freer)
    (s, cpu_w), (f, cpu_f), (g, elem, waited) = log
    assert (s, f, g) == ("waiter sleeps", "freer frees", "waiter got")
    assert cpu_w != cpu_f
    assert elem == shared["held"][0]  # the freed element went through the reserve to the waiter
    assert 10 <= waited < MEMPOOL_WAIT_JIFFIES  # woken by the free, not by the 5 s timeout
    assert next(t for t in m.engine.tasks if t.comm == "waiter").nvcsw >= 1  # it really slept
    assert m.reports == []
    m.check()


def test_waiter_retries_the_allocator_after_five_seconds_without_a_free() -> None:
    m = Machine(cpus=2, seed=2)
    sw = Switchable()
    out: dict = {}

    def waiter() -> None:
        pool = mempool_create(1, sw.alloc, sw.free, None)
        sw.fail = True
        out["first"] = mempool_alloc(pool, GFP_KERNEL)
        start = jiffies()
        out["second"] = mempool_alloc(pool, GFP_KERNEL)
        out["waited"] = jiffies() - start
        for e in (out["first"], out["second"]):
            mempool_free(e, pool)
        mempool_destroy(pool)

    def repairer() -> None:
        msleep(1000)
        sw.fail = False  # the allocator recovers, but nobody wakes pool->wait

    m.run(waiter, repairer)
    assert out["second"] is not None
    assert out["waited"] == MEMPOOL_WAIT_JIFFIES  # io_schedule_timeout(5*HZ) on the virtual clock
    m.check()


def test_page_pool_sleeps_when_memory_is_exhausted_and_wakes_on_free() -> None:
    m = Machine(cpus=2, memory=SMALL, seed=4)
    shared: dict = {}
    log: list = []

    def waiter() -> None:
        free0 = pages_free()
        pool = mempool_create_page_pool(2, 0)
        shared["pool"] = pool
        hog = grab_all()
        held = [mempool_alloc(pool, GFP_KERNEL), mempool_alloc(pool, GFP_KERNEL)]
        assert pool.curr_nr == 0  # both came from the reserve: the allocator had nothing
        shared["held"] = held
        start = jiffies()
        e = mempool_alloc(pool, GFP_KERNEL)
        log.append(("got", e, jiffies() - start))
        for p in hog:
            __free_page(p)
        for p in [e, held[1]]:
            mempool_free(p, pool)
        mempool_destroy(pool)
        log.append(pages_free() == free0)

    def freer() -> None:
        while "held" not in shared:
            msleep(1)
        msleep(20)
        log.append("free")
        mempool_free(shared["held"][0], shared["pool"])

    m.run(waiter, freer)
    assert log[0] == "free" and log[1][0] == "got"
    assert log[1][1] is shared["held"][0] and 20 <= log[1][2] < MEMPOOL_WAIT_JIFFIES
    assert log[2] is True  # no page leaked once the pool is destroyed
    assert m.reports_of("page_alloc_failure") == []  # mempool's tries are __GFP_NOWARN
    m.check()


def test_gfp_atomic_gets_none_at_once_in_a_task_and_in_an_interrupt() -> None:
    m = Machine(cpus=2, memory=SMALL, seed=1)
    got: list = []

    def handler(irq: int, pool: Any) -> None:
        e = mempool_alloc(pool, GFP_ATOMIC)
        got.append((in_irq(), e))
        mempool_free(e, pool)

    def body() -> None:
        pool = mempool_create_page_pool(1, 0)
        request_irq(9, handler, 0, "mempool-test", pool)
        m.mm.fail_next[0] = 1  # the allocator fails once: the reserve answers in the handler
        raise_irq(9)
        assert got == [(True, pool.elements[0])] and pool.curr_nr == 1
        m.mm.fail_next[0] = 10**6  # from now on the page allocator fails
        held = mempool_alloc(pool, GFP_KERNEL)  # the reserve's only element
        raise_irq(9)
        assert got[-1] == (True, None)
        assert mempool_alloc(pool, GFP_ATOMIC) is None
        m.mm.fail_next[0] = 0
        mempool_free(held, pool)
        mempool_destroy(pool)

    m.run(body)
    assert m.now == 0  # nobody slept, no timeout ran
    assert not any(t.nvcsw for t in m.engine.tasks if t.comm == "body")
    assert m.reports == []  # neither "scheduling while atomic" nor allocation-failure noise
    m.check()


def test_gfp_kernel_in_spin_lock_is_reported_gfp_atomic_is_not() -> None:
    m = Machine(cpus=1)
    sw = Switchable()

    def body() -> None:
        pool = mempool_create(1, sw.alloc, sw.free, None)
        lock = spin_lock_init("driver_lock")
        spin_lock(lock)
        a = mempool_alloc(pool, GFP_ATOMIC)
        b = mempool_alloc(pool, GFP_KERNEL)  # the bug: might sleep under a spinlock
        spin_unlock(lock)
        mempool_free(a, pool)
        mempool_free(b, pool)
        mempool_destroy(pool)

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "sleep_in_atomic"
    assert rep.lines[0].startswith("BUG: sleeping function called from invalid context at tests/mm/test_mempool.py:")  # the caller of mempool_alloc
    assert rep.lines[1].startswith("in_atomic(): 1, irqs_disabled(): 0")
    m.check()


def test_a_waiter_nothing_feeds_is_reported_as_hung_and_ended() -> None:
    m = Machine(cpus=1)
    sw = Switchable()
    after: list = []

    def body() -> None:
        pool = mempool_create(1, sw.alloc, sw.free, None)
        sw.fail = True
        mempool_alloc(pool, GFP_KERNEL)
        mempool_alloc(pool, GFP_KERNEL)  # nobody will ever free
        after.append("unreachable")

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "hung_task"
    assert rep.lines[0] == "INFO: task body:1 blocked for more than 120 seconds."
    assert after == [] and m.now >= 120 * 10**9
    m.check()


# -- create, destroy, resize ---------------------------------------------------------------------
def test_create_failure_hands_back_what_it_took() -> None:
    m = Machine(cpus=1, memory=SMALL)
    calls: list = []

    def flaky_pages(gfp: int, order: Any) -> Any:
        calls.append(gfp)
        return None if len(calls) == 4 else mempool_alloc_pages(gfp, order)

    freed: list = []

    def free_pages_fn(page: Any, order: Any) -> None:
        freed.append(page)
        mempool_free_pages(page, order)

    def body() -> None:
        free0 = pages_free()
        assert mempool_create(6, flaky_pages, free_pages_fn, 1) is None
        assert calls == [GFP_KERNEL] * 4 and len(freed) == 3
        assert pages_free() == free0

    m.run(body)
    assert mempools_of(m) == []
    assert m.reports == []
    m.check()


def test_destroy_with_outstanding_elements_is_a_bug_and_loses_nothing() -> None:
    m = Machine(cpus=1, memory=SMALL)
    st: dict = {}

    def body() -> None:
        st["free0"] = pages_free()
        pool = mempool_create_page_pool(2, 0)
        st["pool"] = pool
        m.mm.fail_next[0] = 1
        st["elem"] = mempool_alloc(pool, GFP_KERNEL)  # from the reserve
        mempool_destroy(pool)  # BUG(): There were outstanding elements
        st["after"] = True

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "bug"
    assert rep.lines[0].startswith("kernel BUG at percpu_kmem/mm/mempool.py:") and rep.lines[0].endswith("!")
    assert rep.lines[1] == ("mempool_destroy: 1 element(s) still outstanding, curr_nr 1 != min_nr 2 "
                            "(There were outstanding elements)")
    assert "after" not in st  # BUG() oopsed the task
    pool = st["pool"]
    assert mempools_of(m) == [pool] and pool.curr_nr == 1 and pool.nr_out == 1  # intact
    m.check()

    def cleanup() -> None:
        e = mempool_alloc(pool, GFP_KERNEL)  # still usable: the allocator answers
        mempool_free(e, pool)  # refills the reserve
        mempool_free(st["elem"], pool)  # the pool is full again: back to the allocator
        mempool_destroy(pool)
        st["leak"] = st["free0"] - pages_free()

    m.run(cleanup)
    assert st["leak"] == 0 and mempools_of(m) == [] and len(m.reports) == 1
    m.check()


def test_destroy_reports_elements_out_from_the_allocator_too() -> None:
    m = Machine(cpus=1)
    sw = Switchable()
    st: dict = {}

    def body() -> None:
        pool = st["pool"] = mempool_create(1, sw.alloc, sw.free, None)
        st["e"] = mempool_alloc(pool, GFP_KERNEL)  # the allocator's: curr_nr stays min_nr
        mempool_destroy(pool)

    m.run(body)
    assert [r.kind for r in m.reports] == ["bug"] and m.reports[0].lines[1] == (
        "mempool_destroy: 1 element(s) still outstanding, the reserve is full (curr_nr 1 == min_nr 1)")

    def cleanup() -> None:
        mempool_free(st["e"], st["pool"])
        mempool_destroy(st["pool"])
        mempool_destroy(None)

    m.run(cleanup)
    assert sorted(sw.freed) == [("elem", 1), ("elem", 2)] and len(m.reports) == 1
    m.check()


def test_destroy_of_a_reserve_left_short_by_a_resize_says_nothing_is_out() -> None:
    """2.6's curr_nr != min_nr test trips on a reserve a failed grow left short: the BUG line
    gives the counts and does not claim elements are out."""
    m = Machine(cpus=1)
    sw = Switchable()
    st: dict = {}

    def body() -> None:
        pool = st["pool"] = mempool_create(1, sw.alloc, sw.free, None)
        sw.fail = True
        assert mempool_resize(pool, 3, GFP_KERNEL) == 0      # min_nr 3, the reserve stays at 1
        mempool_destroy(pool)

    m.run(body)
    assert [r.lines[1] for r in m.reports] == [
        "mempool_destroy: curr_nr 1 != min_nr 3 (the reserve is short, nothing is out)"]
    m.run(lambda: (mempool_resize(st["pool"], 1, GFP_KERNEL), mempool_destroy(st["pool"])))
    assert len(m.reports) == 1 and sw.freed == [("elem", 1)]
    m.check()


def test_resize_up_and_down() -> None:
    m = Machine(cpus=1, memory=SMALL)
    sw = Switchable()

    def body() -> None:
        free0 = pages_free()
        pool = mempool_create_page_pool(2, 1)
        assert free0 - pages_free() == 4
        assert mempool_resize(pool, 5, GFP_KERNEL) == 0
        assert (pool.min_nr, pool.curr_nr) == (5, 5) and free0 - pages_free() == 10
        assert mempool_resize(pool, 1, GFP_KERNEL) == 0
        assert (pool.min_nr, pool.curr_nr) == (1, 1) and free0 - pages_free() == 2
        mempool_destroy(pool)
        assert pages_free() == free0

        # growing while the allocator fails: min_nr rises, frees refill the reserve later
        p2 = mempool_create(1, sw.alloc, sw.free, None)
        sw.fail = True
        assert mempool_resize(p2, 3, GFP_KERNEL) == 0
        assert (p2.min_nr, p2.curr_nr) == (3, 1)
        sw.fail = False
        extra = [mempool_alloc(p2, GFP_KERNEL) for _ in range(3)]
        for e in extra:
            mempool_free(e, p2)
        assert p2.curr_nr == 3 and sw.freed == [extra[2]]
        mempool_destroy(p2)

    m.run(body)
    assert m.reports == []
    m.check()


def test_double_free_into_the_reserve_is_reported_and_loses_nothing() -> None:
    m = Machine(cpus=1)
    sw = Switchable()

    def body() -> None:
        pool = mempool_create(2, sw.alloc, sw.free, None)
        sw.fail = True
        e = mempool_alloc(pool, GFP_KERNEL)
        mempool_free(e, pool)
        mempool_free(e, pool)  # the bug
        assert pool.curr_nr == 2
        mempool_destroy(pool)

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "double_free" and rep.lines[0] == "BUG: KASAN: double-free in mempool_free"
    assert sorted(sw.freed) == [("elem", 1), ("elem", 2)]
    m.check()


def test_gfp_zero_is_warned() -> None:
    m = Machine(cpus=1)
    sw = Switchable()

    def body() -> None:
        pool = mempool_create(1, sw.alloc, sw.free, None)
        mempool_free(mempool_alloc(pool, GFP_KERNEL | __GFP_ZERO), pool)
        mempool_destroy(pool)

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "warning" and rep.lines[0].startswith("WARNING: CPU: 0 PID: 1 at percpu_kmem/mm/mempool.py:")
    assert rep.lines[1] == "mempool_alloc: using __GFP_ZERO is not supported"


def test_checker_names_a_corrupted_pool() -> None:
    m = Machine(cpus=1)
    sw = Switchable()
    st: dict = {}
    m.run(lambda: st.setdefault("pool", mempool_create(2, sw.alloc, sw.free, None)))
    m.check()
    st["pool"].elements.append(st["pool"].elements[0])  # a model bug: an element twice
    st["pool"].curr_nr += 1
    with pytest.raises(InconsistentState, match="curr_nr 3 outside"):
        m.check()


def test_python_misuse_raises_precise_errors() -> None:
    m = Machine(cpus=1)
    sw = Switchable()
    errors: list[str] = []

    def expect(fn: Any, *args: Any) -> None:
        with pytest.raises(KmemUsageError) as ei:
            fn(*args)
        errors.append(str(ei.value))

    def body() -> None:
        expect(mempool_create, -1, sw.alloc, sw.free, None)
        expect(mempool_create, 2.0, sw.alloc, sw.free, None)
        expect(mempool_create, True, sw.alloc, sw.free, None)
        expect(mempool_create, 2, "kmalloc", sw.free, None)
        expect(mempool_create, 2, sw.alloc, None, None)
        pool = mempool_create(1, sw.alloc, sw.free, None)
        expect(mempool_resize, pool, 0.5, GFP_KERNEL)
        expect(mempool_alloc, "pool", GFP_KERNEL)
        expect(mempool_alloc, pool, "GFP_KERNEL")
        expect(mempool_create_page_pool, 1, 11)
        expect(mempool_create_kmalloc_pool, 1, 0)
        mempool_destroy(pool)

    m.run(body)
    assert errors == [
        "mempool_create: min_nr(=-1) must be >= 0 (the number of elements kept in reserve)",
        "mempool_create: min_nr must be an int, got 2.0",
        "mempool_create: min_nr must be an int, got True",
        "mempool_create: alloc_fn must be callable as alloc_fn(gfp_mask, pool_data), got 'kmalloc'",
        "mempool_create: free_fn must be callable as free_fn(element, pool_data), got None",
        "mempool_resize: new_min_nr must be an int, got 0.5",
        "mempool_alloc() takes a mempool_t from mempool_create(), got 'pool'",
        "mempool_alloc: gfp_mask(='GFP_KERNEL') must be an int of GFP_* flags",
        "mempool_create_page_pool: order(=11) must be an int in [0, 11)",
        "mempool_create_kmalloc_pool: size(=0) must be an int >= 1",
    ]
    with pytest.raises(NotInTaskError):
        mempool_create(1, sw.alloc, sw.free, None)
    m.check()


# -- debug poisoning (slab_debug) ------------------------------------------------------------------
def test_reserve_pages_are_poisoned_and_checked_under_slab_debug() -> None:
    m = Machine(cpus=1, memory=SMALL, slab_debug=True)
    seen: dict = {}

    def body() -> None:
        pool = mempool_create_page_pool(2, 0)
        a0, a1 = (page_address(p) for p in pool.elements)
        seen["poison"] = mem_read(a0, 4096)
        mem_write(a1 + 5, b"\x00")  # someone scribbles on a pooled element
        m.mm.fail_next[0] = 2
        e1 = mempool_alloc(pool, GFP_KERNEL)  # elements[1]: the scribbled one
        e0 = mempool_alloc(pool, GFP_KERNEL)  # elements[0]: intact, handed out as POISON_INUSE
        seen["inuse"] = mem_read(page_address(e0), 4096)
        mempool_free(e0, pool)
        mempool_free(e1, pool)
        mempool_destroy(pool)

    m.run(body)
    assert seen["poison"] == bytes([POISON_FREE]) * 4095 + bytes([POISON_END])
    assert seen["inuse"] == bytes([POISON_INUSE]) * 4096
    (rep,) = m.reports
    assert rep.kind == "mempool_poison"
    assert rep.lines[:3] == ["BUG: mempool element poison mismatch", "Mempool 00000001 size 4096",
                             rep.lines[2]]
    assert rep.lines[2].endswith(": ... 0x6b 6b 6b 6b 0 6b 6b 6b ...") and rep.lines[2].startswith(" nr=1 @ ")
    m.check()


# -- concurrency ---------------------------------------------------------------------------------
def _stress(m: Machine, workers: int = 4, rounds: int = 16) -> dict:
    """Workers allocate and free with GFP_KERNEL/GFP_NOIO over an allocator that fails at
    random, an interrupt handler takes GFP_ATOMIC elements; nothing is lost or double-counted."""
    rng = random.Random(m.seed)
    st: dict = {"live": set(), "atomic": [0, 0], "to_allocator": 0}

    def flaky(gfp: int, order: Any) -> Any:
        if "pool" in st and rng.random() < 0.85:  # preallocation always succeeds
            return None
        return mempool_alloc_pages(gfp, order)

    def free_back(page: Any, order: Any) -> None:
        st["to_allocator"] += 1
        mempool_free_pages(page, order)

    def take(e: Any) -> None:
        assert e is not None
        assert e not in st["live"], f"{e!r} handed out twice"
        st["live"].add(e)

    def give(e: Any, pool: Any) -> None:
        st["live"].remove(e)
        mempool_free(e, pool)

    def handler(irq: int, pool: Any) -> None:
        e = mempool_alloc(pool, GFP_ATOMIC)
        st["atomic"][e is None] += 1
        if e is not None:
            take(e)
            give(e, pool)

    def setup() -> None:
        st["free0"] = pages_free()
        st["pool"] = mempool_create(3, flaky, free_back, 0)
        assert st["pool"] is not None

    def worker(seed: int) -> None:
        pool = st["pool"]
        wrng = random.Random(seed)
        held: list = []
        for _ in range(rounds):
            if len(held) < 3 and wrng.random() < 0.6:
                e = mempool_alloc(pool, GFP_KERNEL if wrng.random() < 0.7 else GFP_NOIO)
                take(e)
                held.append(e)
            elif held:
                give(held.pop(wrng.randrange(len(held))), pool)
        for e in held:
            give(e, pool)

    m.run(setup)
    m.request_irq(7, handler, "mempool-atomic", st["pool"], rate=0.1)
    m.run(*[lambda s=s: worker(s) for s in range(workers)], names=[f"worker{s}" for s in range(workers)])
    st["sleeps"] = sum(t.nvcsw for t in m.engine.tasks if t.comm.startswith("worker"))
    pool = st["pool"]
    assert st["live"] == set() and pool.nr_out == 0
    assert pool.curr_nr == pool.min_nr  # every free refilled the reserve first
    m.check()
    m.free_irq(7)

    def teardown() -> None:
        mempool_destroy(pool)
        st["leak"] = st["free0"] - pages_free()

    m.run(teardown)
    assert st["leak"] == 0  # no page leaked once the pool is destroyed
    assert mempools_of(m) == []
    assert [r for r in m.reports if r.kind != "deadlock"] == []
    return st


def test_concurrent_alloc_free_over_many_schedules() -> None:
    runs: list[dict] = []
    n = explore(lambda m: runs.append(_stress(m)), seeds=range(50), policies=("random", "pct"), cpus=3,
                memory=SMALL)
    assert n == 100
    # the interesting paths were taken: sleeping on pool->wait, GFP_ATOMIC both ways
    assert sum(r["sleeps"] > 0 for r in runs) >= 10
    assert sum(r["atomic"][1] for r in runs) >= 5 and sum(r["atomic"][0] for r in runs) >= 50
    assert all(r["to_allocator"] > 0 for r in runs)


def test_concurrent_alloc_free_free_running() -> None:
    explore(_stress, seeds=[0], policies=("free",), cpus=3, memory=SMALL)


def test_checker_catches_an_element_counted_twice() -> None:
    """The invariant walk bites: an element both in the reserve and counted out is named."""
    m = Machine(cpus=2, memory=SMALL, seed=0)
    sw = Switchable()
    st: dict = {}

    def body() -> None:
        pool = st["pool"] = mempool_create(2, sw.alloc, sw.free, None)
        sw.fail = True
        e = mempool_alloc(pool, GFP_KERNEL)  # from the reserve
        pool._track_out(e)  # a model bug: the element counted out twice
        mempool_free(e, pool)

    m.run(body)
    with pytest.raises(InconsistentState, match="both in the reserve and handed out"):
        m.check()


# -- kmalloc and slab pools (need the slab layer: percpu_kmem/mm/slab.py, kmalloc.py) -------------
def test_kmalloc_pool_round_trip_and_reserve() -> None:
    from percpu_kmem.mm.kmalloc import kfree, kmalloc, ksize  # type: ignore[attr-defined]
    m = Machine(cpus=1, memory=SMALL)
    out: dict = {}

    def body() -> None:
        free0 = pages_free()
        pool = mempool_create_kmalloc_pool(3, 200)
        assert pool is not None and pool.curr_nr == 3
        assert all(isinstance(a, int) and ksize(a) >= 200 for a in pool.elements)
        a = mempool_alloc(pool, GFP_KERNEL)  # kmalloc answers
        assert pool.curr_nr == 3
        mem_write(a, b"x" * 200)
        hog = grab_all()  # no page left for the size-256 cache to grow
        objs = []
        while (o := kmalloc(200, GFP_ATOMIC | __GFP_NOWARN)) is not None:
            objs.append(o)
        reserve = list(pool.elements)
        held = [mempool_alloc(pool, GFP_ATOMIC) for _ in range(3)]
        assert held == reserve[::-1] and pool.curr_nr == 0  # the reserve, LIFO
        out["empty"] = mempool_alloc(pool, GFP_ATOMIC)
        for o in objs:
            kfree(o)
        for p in hog:
            __free_page(p)
        for x in [a, *held]:
            mempool_free(x, pool)
        assert pool.curr_nr == 3 and pool.nr_out == 0
        mempool_destroy(pool)
        out["leak"] = free0 - pages_free()

    m.run(body)
    assert out["empty"] is None
    assert [r.kind for r in m.reports if r.kind != "page_alloc_failure"] == []
    m.check()


def test_slab_pool_round_trip() -> None:
    from percpu_kmem.mm.slab import kmem_cache_create, kmem_cache_destroy  # type: ignore[attr-defined]
    m = Machine(cpus=2, memory=SMALL)

    def body() -> None:
        cache = kmem_cache_create("mempool_test", 96, 0, 0, None, None)
        pool = mempool_create_slab_pool(2, cache)
        assert pool is not None and pool.curr_nr == 2
        got = [mempool_alloc(pool, GFP_KERNEL) for _ in range(4)]
        assert len(set(got)) == 4
        for g in got:
            mempool_free(g, pool)
        mempool_destroy(pool)
        kmem_cache_destroy(cache)

    m.run(body)
    assert m.reports == []
    m.check()


def test_kmalloc_and_slab_pool_poisoning_under_slab_debug() -> None:
    from percpu_kmem.mm.slab import kmem_cache_create, kmem_cache_destroy  # type: ignore[attr-defined]
    m = Machine(cpus=1, memory=SMALL, slab_debug=True)
    seen: dict = {}

    def body() -> None:
        kpool = mempool_create_kmalloc_pool(1, 64)
        seen["kmalloc"] = mem_read(kpool.elements[0], 64)
        cache = kmem_cache_create("mempool_poison", 40, 0, 0, None, None)
        spool = mempool_create_slab_pool(1, cache)
        seen["slab"] = mem_read(spool.elements[0], 40)
        mem_write(spool.elements[0] + 39, b"\x00")  # the POISON_END byte
        e = mempool_alloc(spool, GFP_KERNEL)  # the cache answers: the reserve is untouched
        assert spool.curr_nr == 1
        mempool_free(e, spool)
        mempool_destroy(spool)  # takes the element out of the reserve: checked there
        kmem_cache_destroy(cache)
        mempool_destroy(kpool)

    m.run(body)
    assert seen["kmalloc"] == bytes([POISON_FREE]) * 63 + bytes([POISON_END])
    assert seen["slab"] == bytes([POISON_FREE]) * 39 + bytes([POISON_END])
    assert [r.kind for r in m.reports] == ["mempool_poison"]
    assert m.reports[0].lines[1] == "Mempool 00000002 size 40"
    assert m.reports[0].lines[2].endswith(": ... 0x6b 6b 6b 6b 0 ")
    m.check()
