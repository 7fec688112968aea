"""mempool: reserves that cannot be met fail as 2.6 does, nothing leaks, pools of another machine refused."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import (
    GFP_KERNEL,
    KmemUsageError,
    Machine,
    kmalloc,
    kmem_cache_create,
    mempool_alloc,
    mempool_create,
    mempool_create_page_pool,
    mempool_create_slab_pool,
    mempool_destroy,
    mempool_free,
    mempool_resize,
    nr_free_pages,
)
from percpu_kmem.mm.mempool import ENOMEM, mempools_of
from percpu_kmem.runtime.errors import Oops

pytestmark = pytest.mark.timeout(120)


class Counting:
    """alloc_fn/free_fn over plain objects, counting what is out; raises on command."""

    def __init__(self) -> None:
        self.out = 0
        self.calls = 0
        self.raise_at: int | None = None

    def alloc(self, gfp: int, pool_data: Any) -> Any:
        self.calls += 1
        if self.calls == self.raise_at:
            raise RuntimeError("alloc_fn blew up")
        self.out += 1
        return object()

    def free(self, element: Any, pool_data: Any) -> None:
        self.out -= 1


def test_create_with_an_elements_array_above_128k_returns_null_and_takes_nothing() -> None:
    m = Machine(cpus=1)
    cnt = Counting()

    def body() -> None:
        assert mempool_create(32769, cnt.alloc, cnt.free, None) is None  # kmalloc(131076) fails
        assert cnt.calls == 0
        pool = mempool_create(32768, cnt.alloc, cnt.free, None)  # kmalloc(131072) is the largest
        assert pool is not None and pool.curr_nr == 32768
        mempool_destroy(pool)
        assert cnt.out == 0

    m.run(body)
    assert m.reports == [] and mempools_of(m) == []
    m.check()


def test_pool_struct_and_array_are_kmalloced_and_freed() -> None:
    m = Machine(cpus=1)
    cnt = Counting()

    def body() -> None:
        pool = mempool_create(4, cnt.alloc, cnt.free, None)
        struct, buf = pool.struct, pool.elements_buf
        assert m.slab.find("size-64") is not None
        mempool_destroy(pool)
        assert kmalloc(16, GFP_KERNEL) == buf  # LIFO magazines: the freed array comes back first
        assert kmalloc(40, GFP_KERNEL) == struct

    m.run(body)
    m.check()


def test_resize_beyond_what_the_array_can_hold_is_enomem_and_changes_nothing() -> None:
    m = Machine(cpus=1)
    cnt = Counting()

    def body() -> None:
        pool = mempool_create(3, cnt.alloc, cnt.free, None)
        assert mempool_resize(pool, 40000, GFP_KERNEL) == -ENOMEM
        assert (pool.min_nr, pool.curr_nr, cnt.out, cnt.calls) == (3, 3, 3, 3)
        assert mempool_resize(pool, 5, GFP_KERNEL) == 0 and (pool.min_nr, pool.curr_nr) == (5, 5)
        mempool_destroy(pool)
        assert cnt.out == 0

    m.run(body)
    assert m.reports == []
    m.check()


def test_an_alloc_fn_that_raises_during_preallocation_or_a_grow_leaks_nothing() -> None:
    m = Machine(cpus=1)
    cnt = Counting()
    st: dict = {}

    def create() -> None:
        cnt.raise_at = 4
        mempool_create(6, cnt.alloc, cnt.free, None)

    with pytest.raises(RuntimeError, match="alloc_fn blew up"):
        m.run(create)
    assert cnt.out == 0 and mempools_of(m) == []

    def grow() -> None:
        cnt.calls, cnt.raise_at = 0, 3
        pool = st["pool"] = mempool_create(2, cnt.alloc, cnt.free, None)
        mempool_resize(pool, 6, GFP_KERNEL)

    with pytest.raises(RuntimeError):
        m.run(grow)
    pool = st["pool"]
    assert (pool.min_nr, pool.curr_nr, cnt.out) == (2, 2, 2)  # back to the old size
    m.check()
    m.run(lambda: mempool_destroy(pool))
    assert cnt.out == 0
    m.check()


def test_a_caller_oom_killed_during_preallocation_leaves_no_page_behind() -> None:
    m = Machine(cpus=1, memory="16M")
    st: dict = {}
    m.run(lambda: st.setdefault("free0", nr_free_pages()))

    def greedy() -> None:
        mempool_create_page_pool(8192, 0)  # 32 MB of reserve on a 16 MB machine

    try:
        m.run(greedy)
    except Oops:
        pass
    assert [r.kind for r in m.reports if r.kind == "oom"] == ["oom"]
    m.run(lambda: st.setdefault("free1", nr_free_pages()))
    # everything but the slab pages of the pool's own kmalloc'd struct and array came back
    assert st["free0"] - st["free1"] <= 2 + m.slab.nr_slab_pages
    assert st["free0"] - st["free1"] < 16
    assert mempools_of(m) == []
    m.check()


def test_a_pool_of_another_machine_is_refused_before_any_side_effect() -> None:
    a = Machine(cpus=1)
    b = Machine(cpus=1)
    cnt = Counting()
    st: dict = {}

    def make() -> None:
        st["pool"] = mempool_create(2, cnt.alloc, cnt.free, None)
        st["elem"] = mempool_alloc(st["pool"], GFP_KERNEL)
        st["cache"] = kmem_cache_create("a-cache", 32, 0, 0)

    a.run(make)
    pool = st["pool"]

    def use() -> None:
        for fn, call in (("mempool_alloc", lambda: mempool_alloc(pool, GFP_KERNEL)),
                         ("mempool_free", lambda: mempool_free(st["elem"], pool)),
                         ("mempool_resize", lambda: mempool_resize(pool, 4, GFP_KERNEL)),
                         ("mempool_destroy", lambda: mempool_destroy(pool))):
            with pytest.raises(KmemUsageError) as ei:
                call()
            assert str(ei.value).startswith(f"{fn}(): mempool {pool.id} (created at ")
            assert f"at {id(a):#x}>" in str(ei.value) and f"at {id(b):#x}>" in str(ei.value)
        with pytest.raises(KmemUsageError, match="mempool_create_slab_pool\\(\\): cache `a-cache' belongs to"):
            mempool_create_slab_pool(2, st["cache"])
        assert mempools_of(b) == []

    calls0 = cnt.calls
    b.run(use)
    assert cnt.calls == calls0 and (pool.curr_nr, pool.min_nr, pool.nr_out) == (2, 2, 1)
    assert a.reports == [] and b.reports == []
    a.check()
    b.check()

    def finish() -> None:
        mempool_free(st["elem"], pool)
        mempool_destroy(pool)

    a.run(finish)
    assert cnt.out == 0
    a.check()
