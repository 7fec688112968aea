"""Misuse the kernel would corrupt silently is reported and refused: the model's invariants hold.

After each refused call ``m.check()`` passes and the next allocation works.
"""

from __future__ import annotations

import pytest

from percpu_kmem import (
    GFP_KERNEL,
    PAGE_SIZE,
    VM_ALLOC,
    VM_IOREMAP,
    VM_MAP,
    Machine,
    __free_page,
    __free_pages,
    alloc_page,
    alloc_pages,
    fill_page_cache,
    free_page,
    free_pages,
    get_page,
    iounmap,
    kfree,
    kmalloc,
    mem_read,
    mem_write,
    nr_free_pages,
    page_address,
    pfn_to_page,
    put_page,
    vfree,
    virt_to_page,
    vmalloc,
    vmalloc_to_page,
    vmap,
    vunmap,
)

pytestmark = pytest.mark.timeout(60)

PAGE_MASK = ~(PAGE_SIZE - 1)


def still_works(m: Machine) -> None:
    """The invariants hold and the machine allocates on."""
    m.check()
    assert m.run(lambda: (lambda a: (kfree(a), a is not None)[1])(kmalloc(64, GFP_KERNEL))) == [True]
    m.check()


def bad_page_report(m: Machine) -> list[str]:
    (rep,) = m.reports_of("bad_page")
    return rep.lines


# -- free_pages / __free_pages of a page someone else owns ------------------------------------------
@pytest.mark.parametrize("how", ["free_pages", "__free_pages", "put_page", "free_page"])
def test_freeing_a_slab_page_is_bad_page_state_and_refused(how: str) -> None:
    m = Machine(cpus=1, memory="16M")
    out: dict[str, object] = {}

    def body() -> None:
        obj = kmalloc(64, GFP_KERNEL)
        mem_write(obj, b"slab object")
        page = virt_to_page(obj)
        free_before = nr_free_pages()
        if how == "free_pages":
            free_pages(obj & PAGE_MASK, 0)
        elif how == "free_page":
            free_page(obj & PAGE_MASK)
        elif how == "__free_pages":
            __free_pages(page, 0)
        else:
            put_page(page)
        out["free_delta"] = nr_free_pages() - free_before
        out["data"] = mem_read(obj, 11)  # the slab still owns it: no use-after-free
        kfree(obj)

    m.run(body)
    assert out == {"free_delta": 0, "data": b"slab object"}
    lines = bad_page_report(m)
    assert lines[0].startswith("BUG: Bad page state in process body  pfn:")
    assert lines[1].startswith("page:(pfn 0x") and " refcount:1 mapcount:0 mapping:00000000" in lines[1]
    assert lines[2].startswith("flags: 0x") and lines[2].endswith("(slab)")
    assert lines[3] == "page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set"
    assert "the slab allocator owns" in lines[4] and lines[4].endswith(": refused")
    assert [r.kind for r in m.reports] == ["bad_page"]
    still_works(m)


def test_freeing_a_tail_page_of_a_multi_page_slab_is_refused() -> None:
    m = Machine(cpus=1, memory="16M")
    out: dict[str, int] = {}

    def body() -> None:
        obj = kmalloc(16384, GFP_KERNEL)  # size-16384: order-2 slabs
        tail = virt_to_page(obj + 3 * PAGE_SIZE)
        before = nr_free_pages()
        __free_page(tail)
        out["delta"] = nr_free_pages() - before
        kfree(obj)

    m.run(body)
    assert out["delta"] == 0
    assert "refcount:0" in bad_page_report(m)[1]
    still_works(m)


def test_a_reference_taken_on_a_slab_page_may_be_dropped() -> None:
    m = Machine(cpus=1, memory="16M")

    def body() -> None:
        obj = kmalloc(64, GFP_KERNEL)
        page = virt_to_page(obj)
        get_page(page)
        put_page(page)  # back to the slab's own reference: nothing is freed, nothing to report
        kfree(obj)

    m.run(body)
    assert m.reports == []
    still_works(m)


def test_freeing_a_vmalloc_page_is_refused_and_vfree_still_works() -> None:
    m = Machine(cpus=1, memory="64M")
    out: dict[str, object] = {}

    def body() -> None:
        v = vmalloc(3 * PAGE_SIZE)
        mem_write(v + PAGE_SIZE, b"vmalloc data")
        page = vmalloc_to_page(v + PAGE_SIZE)
        before = nr_free_pages()
        __free_page(page)  # the bug: the area still maps it
        out["delta"] = nr_free_pages() - before
        out["data"] = mem_read(v + PAGE_SIZE, 12)
        before = nr_free_pages()
        vfree(v)
        out["vfree_delta"] = nr_free_pages() - before

    m.run(body)
    assert out == {"delta": 0, "data": b"vmalloc data", "vfree_delta": 3}
    lines = bad_page_report(m)
    assert lines[2].endswith("(vmalloc)") and "vmalloc window" in lines[4]
    assert m.mm.mem.count_flag(1 << 21) == 0  # PG_vmalloc left no page behind
    still_works(m)


def test_freeing_a_page_while_vmapped_is_refused_until_vunmap() -> None:
    m = Machine(cpus=1, memory="16M")
    out: dict[str, int] = {}

    def body() -> None:
        pages = [alloc_page(GFP_KERNEL) for _ in range(2)]
        v = vmap(pages, 2)
        before = nr_free_pages()
        __free_page(pages[0])  # still mapped at v: refused
        out["while_mapped"] = nr_free_pages() - before
        vunmap(v)
        before = nr_free_pages()
        for p in pages:
            __free_page(p)
        out["after_vunmap"] = nr_free_pages() - before

    m.run(body)
    assert out == {"while_mapped": 0, "after_vunmap": 2}
    assert len(m.reports_of("bad_page")) == 1
    still_works(m)


def test_freeing_a_page_cache_page_is_refused() -> None:
    m = Machine(cpus=1, memory="16M")

    def body() -> None:
        fill_page_cache(4, "clean")
        pfn = next(iter(next(lru for lru in m.mm.reclaim.lru.values() if lru)))
        __free_page(pfn_to_page(pfn))

    m.run(body)
    assert "(lru" in bad_page_report(m)[2] and "on the LRU" in bad_page_report(m)[4]
    still_works(m)


# -- vunmap / iounmap of a vmalloc()'d area, vmap with illegal flags -------------------------------------
def test_vunmap_of_a_vmalloc_area_is_refused() -> None:
    m = Machine(cpus=1, memory="64M")
    out: dict[str, object] = {}

    def body() -> None:
        v = vmalloc(2 * PAGE_SIZE)
        mem_write(v, b"kept")
        vunmap(v)  # the bug: 2.6 unmapped it and leaked both pages
        out["data"] = mem_read(v, 4)  # still mapped
        before = nr_free_pages()
        vfree(v)
        out["freed"] = nr_free_pages() - before

    m.run(body)
    assert out == {"data": b"kept", "freed": 2}
    (rep,) = m.reports_of("bad_vfree")
    assert rep.lines[0].startswith("Trying to vunmap() a vmalloc() area (") and "vfree()" in rep.lines[0]
    assert rep.lines[1].startswith("WARNING: CPU: 0 PID: 1 at tests/mm/test_refused_misuse.py:")
    still_works(m)


@pytest.mark.parametrize("kind", ["vmalloc", "vmap"])
def test_iounmap_of_a_vmalloc_or_vmap_area_is_refused(kind: str) -> None:
    m = Machine(cpus=1, memory="64M")
    out: dict[str, object] = {}

    def body() -> None:
        pages = [alloc_page(GFP_KERNEL)]
        v = vmalloc(PAGE_SIZE) if kind == "vmalloc" else vmap(pages, 1)
        mem_write(v, b"area")
        iounmap(v)
        out["data"] = mem_read(v, 4)
        if kind == "vmalloc":
            vfree(v)
        else:
            vunmap(v)
        __free_page(pages[0])

    m.run(body)
    assert out["data"] == b"area"
    (rep,) = m.reports_of("bad_iounmap")
    assert rep.lines[0].startswith("iounmap: bad address ")
    assert f"is a {kind}() area, not an ioremap() mapping" in rep.lines[1]
    assert [r.kind for r in m.reports] == ["bad_iounmap"]
    still_works(m)


@pytest.mark.parametrize("flags", [VM_IOREMAP, VM_ALLOC, VM_MAP | VM_IOREMAP, 0x100])
def test_vmap_with_illegal_flags_is_refused(flags: int) -> None:
    m = Machine(cpus=1, memory="16M")
    out: dict[str, object] = {}

    def body() -> None:
        pages = [alloc_page(GFP_KERNEL) for _ in range(2)]
        out["v"] = vmap(pages, 2, flags)
        out["ok"] = vmap(pages, 2, 0)  # 0 and VM_MAP are what vmap() takes
        vunmap(out["ok"])
        for p in pages:
            __free_page(p)

    m.run(body)
    assert out["v"] is None and out["ok"] is not None
    (rep,) = m.reports_of("bad_vmap")
    assert rep.lines[0].startswith(f"vmap: illegal flags {flags:#x}: only VM_MAP (0x4) may be passed")
    assert rep.lines[1].startswith("WARNING: CPU: 0 PID: 1 at tests/mm/test_refused_misuse.py:")
    assert m.vmalloc.vmlist == []
    still_works(m)


def test_free_pages_of_a_multi_page_block_with_its_head_still_works() -> None:
    m = Machine(cpus=1, memory="16M")

    def body() -> int:
        before = nr_free_pages()
        p = alloc_pages(GFP_KERNEL, 2)
        free_pages(page_address(p), 2)
        return nr_free_pages() - before

    assert m.run(body) == [0]
    assert m.reports == []
