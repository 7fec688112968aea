"""Slab and kmalloc: flags honoured, kernel texts and formats, misuse refused (another machine)."""

from __future__ import annotations

import re

import pytest

from percpu_kmem import (
    GFP_KERNEL,
    SLAB_DESTROY_BY_RCU,
    SLAB_HWCACHE_ALIGN,
    SLAB_POISON,
    SLAB_RED_ZONE,
    KmemUsageError,
    Machine,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_shrink,
    kmem_cache_size,
    ksize,
    kzalloc,
    mem_read,
    mem_write,
    write_u8,
)
from percpu_kmem.mm.gfp import __GFP_ZERO

pytestmark = pytest.mark.timeout(120)
RULE_TOP, RULE_BOTTOM = "=" * 77, "-" * 77


def run1(body, **kw):
    m = Machine(cpus=kw.pop("cpus", 1), **kw)
    res = m.run(body)[0]
    return m, res


# -- item 6: __GFP_ZERO ---------------------------------------------------------------------------
def test_gfp_zero_zeroes_reused_kmalloc_and_cache_objects() -> None:
    def body() -> None:
        p = kmalloc(100, GFP_KERNEL)
        mem_write(p, b"\xff" * 128)
        kfree(p)
        q = kmalloc(100, GFP_KERNEL | __GFP_ZERO)
        assert q == p  # LIFO: the dirty object comes back
        assert mem_read(q, 128) == bytes(128)  # the whole object, as ksize() promises
        mem_write(q, b"\xee" * 128)
        kfree(q)
        assert mem_read(kzalloc(100, GFP_KERNEL), 128) == bytes(128)
        c = kmem_cache_create("zeroed", 20, 0, SLAB_HWCACHE_ALIGN)
        a = kmem_cache_alloc(c, GFP_KERNEL)
        mem_write(a, b"\x77" * 32)
        kmem_cache_free(c, a)
        b = kmem_cache_alloc(c, GFP_KERNEL | __GFP_ZERO)
        assert b == a and mem_read(b, 32) == bytes(32)
        mem_write(b, b"\x77" * 32)
        kmem_cache_free(c, b)
        assert mem_read(kmem_cache_alloc(c, GFP_KERNEL), 4) == b"\x77" * 4  # no flag: not zeroed

    m, _ = run1(body)
    assert m.reports == []
    m.check()


def test_gfp_zero_under_slab_debug_zeroes_the_request_and_keeps_its_red_zone() -> None:
    def body() -> None:
        p = kmalloc(18, GFP_KERNEL | __GFP_ZERO)
        assert mem_read(p, 18) == bytes(18)
        assert mem_read(p + 18, 2) == b"\xcc\xcc"  # red zone after the request
        kfree(p)

    m, _ = run1(body, slab_debug=True)
    assert m.reports == []
    m.check()


# -- item 5: ksize / kmem_cache_size ------------------------------------------------------------------
def test_ksize_and_kmem_cache_size_are_the_padded_object_size() -> None:
    def body() -> tuple:
        c = kmem_cache_create("twenty", 20, 0, SLAB_HWCACHE_ALIGN)
        p = kmalloc(20, GFP_KERNEL)
        return kmem_cache_size(c), ksize(p), ksize(kmalloc(100, GFP_KERNEL))

    _, res = run1(body)
    assert res == (32, 32, 128)  # 2.6.11 obj_reallen() == objsize without DEBUG
    _, res = run1(body, slab_debug=True)
    assert res == (20, 32, 128)  # with DEBUG: reallen, the size before the red zone


# -- item 5: slabinfo (statistics) ------------------------------------------------------------------
def test_slabinfo_with_slab_debug_has_the_statistics_header_and_columns() -> None:
    def body() -> None:
        c = kmem_cache_create("stats", 64, 0, 0)
        objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(10)]
        for o in objs:
            kmem_cache_free(c, o)

    m, _ = run1(body, slab_debug=True)
    lines = m.proc("slabinfo").splitlines()
    assert lines[0] == "slabinfo - version: 2.1 (statistics)"
    assert lines[1] == ("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
                        " : tunables <limit> <batchcount> <sharedfactor>"
                        " : slabdata <active_slabs> <num_slabs> <sharedavail>"
                        " : globalstat <listallocs> <maxobjs> <grown> <reaped> <error> <maxfreeable> <freelimit>"
                        " <nodeallocs> : cpustat <allochit> <allocmiss> <freehit> <freemiss>")
    row = next(ln for ln in lines[2:] if ln.startswith("stats "))
    # s_show: "%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6u"
    #         " : globalstat %7lu %6lu %5lu %4lu %4lu %4lu %4lu %4lu : cpustat %6lu %6lu %6lu %6lu"
    pat = (r"stats {12}[ \d]{7}[ \d]{7}[ \d]{7}[ \d]{5}[ \d]{5} : tunables[ \d]{5}[ \d]{5}[ \d]{5}"
           r" : slabdata[ \d]{7}[ \d]{7}[ \d]{7} : globalstat[ \d]{8}[ \d]{7}[ \d]{6}[ \d]{5}[ \d]{5}[ \d]{5}"
           r"[ \d]{5}[ \d]{5} : cpustat[ \d]{7}[ \d]{7}[ \d]{7}[ \d]{7}")
    assert re.fullmatch(pat, row), row
    f = row.split()
    listallocs, maxobjs, grown = int(f[18]), int(f[19]), int(f[20])
    allochit, allocmiss, freehit, freemiss = (int(x) for x in f[28:32])
    assert listallocs >= 10 and maxobjs >= 10 and grown == 1
    assert allochit + allocmiss == 10 and freehit + freemiss == 10


def test_slabinfo_without_debug_keeps_the_plain_header() -> None:
    m, _ = run1(lambda: None)
    lines = m.proc("slabinfo").splitlines()
    assert lines[0] == "slabinfo - version: 2.1"
    assert lines[1].endswith(": slabdata <active_slabs> <num_slabs> <sharedavail>")
    assert all(len(ln.split()) == 16 for ln in lines[2:])


# -- item 5: report texts --------------------------------------------------------------------------
def test_wrong_cache_free_begins_cache_from_obj_and_slub_reports_carry_the_rules() -> None:
    def body() -> None:
        c = kmem_cache_create("mine", 64, 0, SLAB_RED_ZONE)
        other = kmalloc(64, GFP_KERNEL)
        kmem_cache_free(c, other)
        p = kmem_cache_alloc(c, GFP_KERNEL)
        kmem_cache_free(c, p)
        kmem_cache_free(c, p)  # double free

    m, _ = run1(body)
    assert [r.kind for r in m.reports] == ["slab_wrong_cache", "slab_double_free"]
    assert m.reports[0].text.splitlines()[0] == "cache_from_obj: Wrong slab cache. mine but object is from size-64"
    lines = m.reports[1].text.splitlines()
    assert lines[:4] == [RULE_TOP, "BUG mine (Not tainted): Object already free", RULE_BOTTOM, ""]
    m.check()


# -- item 6: debugging of SLAB_DESTROY_BY_RCU caches, of free objects, of kmalloc requests -----------------
def test_destroy_by_rcu_cache_gets_red_zones_and_a_bad_free_is_refused() -> None:
    def body() -> None:
        c = kmem_cache_create("rcu", 48, 0, SLAB_DESTROY_BY_RCU)
        assert c.flags & SLAB_RED_ZONE and not c.flags & SLAB_POISON  # 2.6.11: all but poisoning
        p = kmem_cache_alloc(c, GFP_KERNEL)
        kmem_cache_free(c, p + 1)
        kmem_cache_free(c, p)
        q = kmem_cache_alloc(c, GFP_KERNEL)
        assert q == p
        kmem_cache_free(c, q)
        assert kmem_cache_destroy(c) == 0

    m, _ = run1(body, slab_debug=True)
    assert [r.kind for r in m.reports] == ["slab_invalid_free"]
    assert m.reports[0].text.splitlines()[1].startswith("BUG rcu (Not tainted): Invalid object pointer 0x")
    m.check()


@pytest.mark.parametrize("how", ["shrink", "destroy"])
def test_red_zones_of_free_objects_are_checked_when_their_slab_is_destroyed(how: str) -> None:
    def body() -> None:
        c = kmem_cache_create("rz", 24, 0, SLAB_RED_ZONE)
        p = kmem_cache_alloc(c, GFP_KERNEL)
        kmem_cache_free(c, p)
        mem_write(p + 24, b"\x00\x00\x00\x00")  # after the free: the end red zone of a free object
        if how == "shrink":
            assert kmem_cache_shrink(c) == 0
        else:
            assert kmem_cache_destroy(c) == 0

    m, _ = run1(body)
    assert [r.kind for r in m.reports] == ["slab_redzone"]
    lines = m.reports[0].text.splitlines()
    assert lines[1] == "BUG rz (Not tainted): Right Redzone overwritten"
    assert "slab error in slab_destroy(): cache `rz': end of a freed object was overwritten" in lines
    m.check()


def test_kmalloc_red_zone_starts_right_after_the_requested_size() -> None:
    def body() -> None:
        p = kmalloc(18, GFP_KERNEL)
        write_u8(p + 17, 1)  # the last requested byte: fine
        kfree(p)
        p = kmalloc(18, GFP_KERNEL)
        write_u8(p + 18, 1)  # one past the request: red zone
        kfree(p)
        q = kmalloc(18, GFP_KERNEL)
        assert ksize(q) == 32  # the caller may use all of it now
        mem_write(q + 18, b"\x01" * 14)
        kfree(q)

    m, _ = run1(body, slab_debug=True)
    assert [r.kind for r in m.reports] == ["slab_redzone"]
    lines = m.reports[0].text.splitlines()
    assert lines[:4] == [RULE_TOP, "BUG size-32 (Not tainted): kmalloc Redzone overwritten", RULE_BOTTOM, ""]
    assert lines[4].endswith("@offset=18. First byte 0x1 instead of 0xcc")
    m.check()


# -- item 2: caches of another machine -------------------------------------------------------------
def test_a_cache_of_another_machine_is_refused_before_any_side_effect() -> None:
    a = Machine(cpus=1)
    b = Machine(cpus=1)
    st: dict = {}

    def make() -> None:
        st["c"] = kmem_cache_create("mach-a", 64, 0, 0)
        st["obj"] = kmem_cache_alloc(st["c"], GFP_KERNEL)

    a.run(make)

    def use() -> None:
        c = st["c"]
        for fn, call in (("kmem_cache_alloc", lambda: kmem_cache_alloc(c, GFP_KERNEL)),
                         ("kmem_cache_free", lambda: kmem_cache_free(c, st["obj"])),
                         ("kmem_cache_shrink", lambda: kmem_cache_shrink(c)),
                         ("kmem_cache_destroy", lambda: kmem_cache_destroy(c))):
            with pytest.raises(KmemUsageError) as ei:
                call()
            msg = str(ei.value)
            assert msg.startswith(f"{fn}(): cache `mach-a' belongs to machine <Machine")
            assert f"at {id(a):#x}>" in msg and f"at {id(b):#x}>" in msg
        p = kmalloc(64, GFP_KERNEL)  # the machine still works
        kfree(p)

    b.run(use)
    assert b.reports == [] and a.reports == []
    b.check()
    a.check()
    assert "mach-a" not in b.proc("slabinfo")

    def finish() -> None:
        kmem_cache_free(st["c"], st["obj"])
        assert kmem_cache_destroy(st["c"]) == 0

    a.run(finish)
    a.check()
