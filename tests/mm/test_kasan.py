"""KASAN-style checking (Machine(kasan=True)): the shadow, the reports in KASAN's words
(mm/kasan/report.c of 6.5+), the model's quarantine, and no effect on correct runs."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    GFP_KERNEL,
    PAGE_SIZE,
    __free_page,
    alloc_page,
    atomic_inc,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    ksize,
    mem_read,
    memset,
    page_address,
    read_u8,
    read_u32,
    vfree,
    vmalloc,
    write_u32,
)
from percpu_kmem.mm.kasan import KASAN_RULE


def _kasan(m: Machine) -> list[Any]:
    return [r for r in m.reports if r.kind.startswith("kasan_")]


def test_slab_out_of_bounds_in_kasans_words() -> None:
    m = Machine(cpus=1, kasan=True)
    box: dict[str, int] = {}

    def driver() -> None:
        p = kmalloc(100, GFP_KERNEL)
        box["p"] = p
        write_u32(p + 100, 1)  # bytes 100..127 of size-128 are red zone
        kfree(p)

    m.run(driver)
    (rep,) = m.reports
    p = box["p"]
    assert rep.kind == "kasan_slab_out_of_bounds"
    lines = rep.lines
    assert lines[0] == KASAN_RULE == "=" * 66 and lines[-1] == KASAN_RULE
    assert lines[1] == "BUG: KASAN: slab-out-of-bounds in driver"
    assert lines[2] == f"Write of size 4 at addr {p + 100:08x} by task driver/{rep.pid}"
    assert lines[4].startswith(f"CPU: 0 PID: {rep.pid} Comm: driver") and lines[5] == "Call Trace:"
    assert lines[6].startswith(" driver (")
    at = lines.index(f"Allocated by task {rep.pid}:")
    assert any(ln.startswith(" kmalloc (") for ln in lines[at:at + 5])
    assert "Freed by task" not in rep.text  # a live object has no free track
    i = lines.index(f"The buggy address belongs to the object at {p:08x}")
    assert lines[i + 1:i + 4] == [" which belongs to the cache size-128 of size 128",
                                  "The buggy address is located 0 bytes to the right of",
                                  f" allocated 100-byte region [{p:08x}, {p + 100:08x})"]
    s = lines.index("Memory state around the buggy address:")
    rows = lines[s + 1:s + 7]
    bad_row = next(r for r in rows if r.startswith(">"))
    assert bad_row.startswith(f">{(p + 100) & ~127:08x}: ")
    cells = bad_row.split(": ")[1].split()
    g = ((p + 100) & 127) // 8
    assert cells[g] == "04" and cells[g + 1] == "fc"  # 4 bytes of the granule, then red zone
    caret = rows[rows.index(bad_row) + 1]
    assert caret.strip() == "^" and caret.index("^") == len(bad_row.split(": ")[0]) + 2 + 3 * g
    assert rep.extra["bug_type"] == "slab-out-of-bounds" and rep.extra["cache"] == "size-128"
    m.check()


def test_use_after_free_with_both_stacks_and_the_quarantine() -> None:
    m = Machine(cpus=1, kasan=True)
    box: dict[str, Any] = {}

    def driver() -> None:
        p = kmalloc(100, GFP_KERNEL)
        kfree(p)
        q = kmalloc(100, GFP_KERNEL)  # the quarantine: not p again at once
        box.update(p=p, q=q, v=read_u32(p + 8))
        kfree(q)

    m.run(driver)
    p = box["p"]
    assert box["q"] != p
    (rep,) = m.reports
    assert rep.kind == "kasan_slab_use_after_free"
    assert rep.lines[1] == "BUG: KASAN: slab-use-after-free in driver"
    assert rep.lines[2] == f"Read of size 4 at addr {p + 8:08x} by task driver/{rep.pid}"
    text = rep.text
    assert f"Allocated by task {rep.pid}:" in text and f"Freed by task {rep.pid}:" in text
    freed = rep.lines.index(f"Freed by task {rep.pid}:")
    assert any(ln.startswith(" kfree (") for ln in rep.lines[freed:freed + 5])
    # a freed object keeps no size in its shadow: kasan_get_alloc_size() falls back to the object size
    assert "The buggy address is located 8 bytes inside of\n freed 128-byte region" in text
    assert "fb fb" in text
    m.check()


def test_double_free_is_one_kasan_report_and_refused() -> None:
    m = Machine(cpus=1, kasan=True)

    def driver() -> None:
        p = kmalloc(64, GFP_KERNEL)
        kfree(p)
        kfree(p)
        q = kmalloc(64, GFP_KERNEL)
        r = kmalloc(64, GFP_KERNEL)
        assert q != r  # the refused free did not put p on the magazine twice
        kfree(q)
        kfree(r)

    m.run(driver)
    (rep,) = m.reports  # KASAN's words, not the hardening's "Object already free" as well
    assert rep.kind == "kasan_double_free"
    assert rep.lines[1] == "BUG: KASAN: double-free in kfree"
    assert rep.lines[2].startswith("Free of addr ") and rep.lines[2].endswith(f"by task driver/{rep.pid}")
    assert "Freed by task" in rep.text
    m.check()


def test_invalid_frees() -> None:
    m = Machine(cpus=1, kasan=True)
    box: dict[str, int] = {}

    def driver() -> None:
        p = kmalloc(64, GFP_KERNEL)
        kfree(p + 8)  # not the start of an object
        v = vmalloc(100)
        box["v"] = v
        kfree(v)  # no slab gave this
        vfree(v)
        kfree(p)

    m.run(driver)
    assert [r.kind for r in m.reports] == ["kasan_invalid_free", "kasan_invalid_free"]
    assert m.reports[0].lines[1] == "BUG: KASAN: invalid-free in kfree"
    assert m.reports[1].lines[2].startswith(f"Free of addr {box['v']:08x} by task driver/")
    m.check()


def test_kmem_cache_use_after_free_names_the_cache_and_its_size() -> None:
    m = Machine(cpus=2, kasan=True)

    def driver() -> None:
        c = kmem_cache_create("my_dev", 40)
        x = kmem_cache_alloc(c, GFP_KERNEL)
        kmem_cache_free(c, x)
        read_u8(x + 39)
        kmem_cache_destroy(c)

    m.run(driver)
    (rep,) = m.reports
    assert rep.kind == "kasan_slab_use_after_free"
    assert " which belongs to the cache my_dev of size 40" in rep.lines
    assert "The buggy address is located 39 bytes inside of" in rep.lines


def test_vmalloc_out_of_bounds_and_the_guard_page() -> None:
    m = Machine(cpus=1, kasan=True)
    box: dict[str, Any] = {}

    def driver() -> None:
        v = vmalloc(100)
        box["v"] = v
        box["a"] = read_u8(v + 99)  # fine
        read_u8(v + 100)  # past the request, inside the page
        box["b"] = mem_read(v + PAGE_SIZE, 4)  # the guard page: reported, not an Oops
        vfree(v)

    m.run(driver)
    v = box["v"]
    kinds = [r.kind for r in m.reports]
    assert kinds == ["kasan_vmalloc_out_of_bounds"] * 2  # one per bad line, and no Oops
    rep = m.reports[0]
    assert rep.lines[1] == "BUG: KASAN: vmalloc-out-of-bounds in driver"
    assert "The buggy address belongs to the virtual mapping at" in rep.lines
    assert f" [{v:08x}, {v + 2 * PAGE_SIZE:08x}) created by:" in rep.lines
    assert box["b"] == bytes(4)


def test_page_use_after_free() -> None:
    m = Machine(cpus=1, kasan=True)

    def driver() -> None:
        page = alloc_page(GFP_KERNEL)
        addr = page_address(page)
        __free_page(page)
        read_u32(addr)

    m.run(driver)
    (rep,) = m.reports
    assert rep.kind == "kasan_use_after_free"
    assert rep.lines[1] == "BUG: KASAN: use-after-free in driver"
    assert ">" in rep.text and "ff ff ff ff" in rep.text


def test_atomic_on_freed_object_is_one_report() -> None:
    m = Machine(cpus=1, kasan=True)

    def driver() -> None:
        p = kmalloc(32, GFP_KERNEL)
        kfree(p)
        atomic_inc(p)

    m.run(driver)
    (rep,) = m.reports
    assert rep.kind == "kasan_slab_use_after_free" and rep.lines[1] == "BUG: KASAN: slab-use-after-free in driver"
    assert rep.lines[2].startswith("Write of size 4 at addr ")  # a read-modify-write is checked as a write
    assert rep.count == 1


def test_bad_write_is_not_performed() -> None:
    """With slab debugging as well, the freed object's poison stays intact: KASAN's report is
    the only one, and the allocator's next hand-out finds nothing overwritten."""
    m = Machine(cpus=1, kasan=True, slab_debug=True)

    def driver() -> None:
        ps = [kmalloc(200, GFP_KERNEL) for _ in range(4)]
        for p in ps:
            kfree(p)
        memset(ps[0], 0, 16)  # use after free
        for _ in range(40):
            kfree(kmalloc(200, GFP_KERNEL))

    m.run(driver)
    assert [r.kind for r in m.reports] == ["kasan_slab_use_after_free"]
    m.check()


def test_constructor_destructor_and_ksize_are_not_reported() -> None:
    m = Machine(cpus=1, kasan=True)

    def ctor(obj: int, cache: Any, flags: int) -> None:
        write_u32(obj, 0x1234)

    def dtor(obj: int, cache: Any, flags: int) -> None:
        read_u32(obj)

    def driver() -> None:
        c = kmem_cache_create("ctor_cache", 64, 0, 0, ctor, dtor)
        x = kmem_cache_alloc(c, GFP_KERNEL)
        assert read_u32(x) == 0x1234
        kmem_cache_free(c, x)
        kmem_cache_destroy(c)
        p = kmalloc(20, GFP_KERNEL)
        n = ksize(p)  # 32: the caller may use all of it
        write_u32(p + n - 4, 1)
        kfree(p)

    m.run(driver)
    assert m.reports == []
    m.check()


def _workload(m: Machine) -> list[Any]:
    """Three tasks: kmalloc/kfree of several sizes, a slab cache, atomics, a lock, vmalloc."""
    from percpu_kmem.linux import spin_lock, spin_lock_init, spin_unlock
    lock = spin_lock_init("wl")
    counter = [0]

    def make(k: int) -> Any:
        def worker() -> int:
            total = 0
            c = kmem_cache_create("wl_cache", 48) if k == 0 else None
            for i in range(30):
                p = kmalloc(24 + 8 * (i % 5), GFP_KERNEL)
                write_u32(p, i)
                write_u32(p + 4, k)
                atomic_inc(p + 4)
                spin_lock(lock)
                counter[0] += read_u32(p)
                spin_unlock(lock)
                total += read_u32(p + 4)
                kfree(p)
                if c is not None:
                    x = kmem_cache_alloc(c, GFP_KERNEL)
                    kmem_cache_free(c, x)
            v = vmalloc(5000)
            write_u32(v + 4096, 7)
            total += read_u32(v + 4096)
            vfree(v)
            if c is not None:
                kmem_cache_destroy(c)
            return total
        return worker

    res = m.run(make(0), make(1), make(2))
    return [res, counter[0]]


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
@pytest.mark.parametrize("seed", [1, 2])
def test_kasan_and_kmemleak_leave_correct_runs_as_they_were(policy: str, seed: int) -> None:
    """Same workload, same seed: the same trace, results, virtual time and reports (none)
    with KASAN and kmemleak on as off."""
    out = []
    for kw in ({}, {"kasan": True}, {"kmemleak": "fail"}):
        m = Machine(cpus=2, policy=policy, seed=seed, **kw)
        res = _workload(m)
        m.check()
        out.append((res, str(m.trace), m.now, [r.kind for r in m.reports]))
    assert out[0] == out[1] == out[2]
    assert out[0][3] == []


def test_machine_arguments() -> None:
    with pytest.raises(KmemUsageError, match="kasan"):
        Machine(kasan="yes")  # type: ignore[arg-type]
    with pytest.raises(KmemUsageError, match="kmemleak"):
        Machine(kmemleak="always")
    with pytest.raises(KmemUsageError, match="boot=True"):
        Machine(boot=False, kasan=True)
    m = Machine(cpus=1, kasan=True, kmemleak=True)
    m.run(lambda: kfree(kmalloc(8, GFP_KERNEL)))
    hint = m.replay_hint()
    assert "kasan=True" in hint and "kmemleak=True" in hint
    assert Machine(cpus=1).kasan is None


@pytest.mark.parametrize("slab_debug", [False, True])
def test_an_element_in_a_mempools_reserve_is_freed_for_kasan(slab_debug: bool) -> None:
    from percpu_kmem.linux import mempool_alloc, mempool_create, mempool_destroy, mempool_free
    m = Machine(cpus=1, kasan=True, slab_debug=slab_debug)
    state = {"fail": False}
    box: dict[str, int] = {}

    def alloc(gfp: int, data: Any) -> Any:
        return None if state["fail"] else kmalloc(64, gfp)

    def free(e: Any, data: Any) -> None:
        kfree(e)

    def driver() -> None:
        pool = mempool_create(2, alloc, free)
        state["fail"] = True
        e = mempool_alloc(pool, GFP_KERNEL)  # from the reserve
        write_u32(e, 5)
        mempool_free(e, pool)  # back into the reserve
        box["e"] = e
        read_u32(e)  # a use after mempool_free
        e2 = mempool_alloc(pool, GFP_KERNEL)  # the same element, allocated again: fine
        write_u32(e2, 1)
        mempool_free(e2, pool)
        mempool_destroy(pool)

    m.run(driver)
    (rep,) = m.reports
    assert rep.kind == "kasan_slab_use_after_free"
    assert rep.lines[2] == f"Read of size 4 at addr {box['e']:08x} by task driver/{rep.pid}"
    freed = rep.lines.index(f"Freed by task {rep.pid}:")
    assert any(ln.startswith(" mempool_free (") for ln in rep.lines[freed:freed + 6])
    m.check()


def test_the_hooks_ride_the_slab_debug_gate() -> None:
    """Off, no cache takes the debug path (the magazine fast path is untouched); on, every
    cache does, boot's and new ones alike, without changing any cache's tunables."""
    from percpu_kmem.mm.kasan import SLAB_KASAN
    from percpu_kmem.mm.kmemleak import SLAB_KMEMLEAK
    off, on = Machine(cpus=2), Machine(cpus=2, kasan=True, kmemleak=True)
    assert all(c.debug == 0 for c in off.slab.caches)
    assert all(c.debug == SLAB_KASAN | SLAB_KMEMLEAK for c in on.slab.caches)
    assert [(c.limit, c.batchcount, c.usable) for c in off.slab.caches] == \
        [(c.limit, c.batchcount, c.usable) for c in on.slab.caches]
    on.run(lambda: kmem_cache_destroy(kmem_cache_create("late", 24)))
    assert on.reports == []


def test_on_bug_raise_stops_the_task_at_the_bad_access_with_its_stack() -> None:
    from percpu_kmem import KernelBug
    m = Machine(cpus=1, kasan=True, on_bug="raise")
    seen: list[str] = []

    def driver() -> None:
        p = kmalloc(16, GFP_KERNEL)
        kfree(p)
        read_u32(p)
        seen.append("went on")  # not reached

    with pytest.raises(KernelBug) as e:
        m.run(driver)
    assert e.value.report.kind == "kasan_slab_use_after_free" and seen == []
    assert e.value.report.stack and e.value.report.stack[0].function == "driver"
    m.check()


def test_kmem_cache_size_bytes_may_be_cleared_under_kasan() -> None:
    """A driver that clears kmem_cache_size() bytes of a 123-byte cache's object: under KASAN
    that is the size the cache was created with (KASAN's bound), so nothing is reported;
    without KASAN it stays 2.6.11's padded obj_reallen()."""
    from percpu_kmem.linux import (
        kmem_cache_alloc,
        kmem_cache_create,
        kmem_cache_destroy,
        kmem_cache_free,
        kmem_cache_size,
        memset,
    )

    def clear() -> int:
        c = kmem_cache_create("odd_123", 123, 0, 0)
        obj = kmem_cache_alloc(c, GFP_KERNEL)
        n = kmem_cache_size(c)
        memset(obj, 0, n)
        kmem_cache_free(c, obj)
        kmem_cache_destroy(c)
        return n

    for kasan, size in ((True, 123), (False, 124)):
        m = Machine(cpus=1, kasan=kasan)
        assert m.run(clear) == [size] and not m.reports, [r.text for r in m.reports]
