"""kmemleak-style leak reports (Machine(kmemleak=...)): what nothing in simulated memory
points to, in kmemleak's words; no false positive on code that frees or keeps its pointers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from percpu_kmem import KmemUsageError, Machine, UnexpectedReport
from percpu_kmem.linux import (
    DEFINE_PER_CPU,
    GFP_KERNEL,
    __get_free_page,
    alloc_percpu,
    free_page,
    free_percpu,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmemleak_ignore,
    kmemleak_not_leak,
    mempool_alloc,
    mempool_create_kmalloc_pool,
    mempool_destroy,
    mempool_free,
    per_cpu_ptr,
    this_cpu_write,
    vfree,
    vmalloc,
    write_u32,
)
from percpu_kmem.scenarios import SCENARIOS
from percpu_kmem.testing import explore


def test_a_leak_is_reported_in_kmemleaks_words() -> None:
    m = Machine(cpus=1, kmemleak=True)
    box: dict[str, int] = {}

    def leaky_probe() -> None:
        p = kmalloc(100, GFP_KERNEL)
        write_u32(p, 0x41424344)
        box["p"] = p  # only Python holds it: nothing in simulated memory does

    m.run(leaky_probe)
    assert m.proc("kmemleak") == ""  # no scan yet
    new = m.kmemleak_scan()
    p = box["p"]
    (text,) = new
    lines = text.splitlines()
    assert lines[0] == f"unreferenced object 0x{p:08x} (size 128):"  # the object: size-128's
    assert re.fullmatch(r'  comm "leaky_probe", pid \d+, jiffies \d+ \(age \d+\.\d{3}s\)', lines[1])
    assert lines[2] == "  hex dump (first 32 bytes):"
    assert lines[3].startswith("    44 43 42 41 ") and lines[3].endswith("  DCBA............")
    assert len(lines[3]) == 4 + 47 + 2 + 16
    assert lines[5] == "  backtrace:"
    assert any(ln.strip().startswith("kmalloc (") for ln in lines[6:])
    assert any(ln.strip().startswith("leaky_probe (") and "test_kmemleak.py" in ln for ln in lines[6:])
    assert m.proc("kmemleak") == text + "\n"
    assert m.reports == []  # kmemleak=True lists; it does not fail the run
    assert m.kmemleak_scan() == []  # reported once
    assert m.proc("kmemleak") == text + "\n"  # still listed while it leaks
    assert m.dmesg[-1].endswith("kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)")
    m.run(lambda: kfree(p))
    m.check()
    assert m.proc("kmemleak") == ""


def test_correct_code_shows_nothing() -> None:
    """Everything freed, pointers kept in simulated memory (a live object, per-CPU data, a page,
    a vmalloc area, a mempool) or marked kmemleak_not_leak: no report."""
    m = Machine(cpus=2, kmemleak="fail")
    counter = DEFINE_PER_CPU(int, "kml_counter")
    keep: dict[str, Any] = {}

    def driver() -> None:
        c = kmem_cache_create("kml_cache", 40)
        x = kmem_cache_alloc(c, GFP_KERNEL)
        kmem_cache_free(c, x)
        kmem_cache_destroy(c)
        kfree(kmalloc(300, GFP_KERNEL))
        vfree(vmalloc(10000))
        pool = mempool_create_kmalloc_pool(4, 64)
        mempool_free(mempool_alloc(pool, GFP_KERNEL), pool)
        keep["pool"] = pool  # kept: the pool and its reserve are the kernel's
        # a device struct stored in a global, holding a buffer, a page holding a pointer, ...
        dev = kmalloc(64, GFP_KERNEL)
        kmemleak_not_leak(dev)
        write_u32(dev + 8, kmalloc(128, GFP_KERNEL))
        page = __get_free_page(GFP_KERNEL)
        write_u32(page, kmalloc(32, GFP_KERNEL))
        v = vmalloc(5000)
        kmemleak_not_leak(v)
        write_u32(v + 4096, kmalloc(16, GFP_KERNEL))
        pc = alloc_percpu(int)
        write_u32(per_cpu_ptr(pc, 1), kmalloc(48, GFP_KERNEL))
        keep.update(page=page, pc=pc, v=v, dev=dev)
        this_cpu_write(counter, kmalloc(24, GFP_KERNEL))  # a static per-CPU variable holds it

    m.run(driver)
    m.check()
    assert m.proc("kmemleak") == "" and m.reports == []

    def teardown() -> None:
        free_page(keep["page"])
        free_percpu(keep["pc"])
        mempool_destroy(keep["pool"])

    m.run(teardown)
    m.check()  # the buffer the page held is unreferenced now (the per-CPU chunk stays scanned)
    assert [(r.kind, r.extra["size"]) for r in m.reports] == [("kmemleak", 32)]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_standard_scenarios_fixed_leak_nothing(name: str) -> None:
    sc = SCENARIOS[name]
    explore(lambda m: sc.run(m, fixed=True), seeds=range(2), policies=("random",), cpus=2, kmemleak="fail",
            expect=("lost_update",))


def test_an_object_referenced_only_by_a_leak_leaks_too_and_ignore() -> None:
    m = Machine(cpus=1, kmemleak=True)
    box: dict[str, int] = {}

    def driver() -> None:
        a = kmalloc(64, GFP_KERNEL)
        b = kmalloc(32, GFP_KERNEL)
        write_u32(a + 8, b)
        c = kmalloc(16, GFP_KERNEL)
        kmemleak_ignore(c)
        box.update(a=a, b=b)

    m.run(driver)
    m.check()
    found = m.proc("kmemleak")
    assert f"unreferenced object 0x{box['a']:08x} (size 64):" in found
    assert f"unreferenced object 0x{box['b']:08x} (size 32):" in found
    assert found.count("unreferenced object") == 2


def test_kmemleak_fail_fails_explore() -> None:
    def leaky(m: Machine) -> None:
        m.run(lambda: kmalloc(40, GFP_KERNEL) and None)

    with pytest.raises(UnexpectedReport) as e:
        explore(leaky, seeds=range(1), policies=("random",), kmemleak="fail", shrink=False)
    assert e.value.report.kind == "kmemleak"
    assert e.value.report.lines[0].startswith("unreferenced object 0x")
    explore(leaky, seeds=range(1), policies=("random",), kmemleak="fail", expect="kmemleak")
    explore(leaky, seeds=range(1), policies=("random",), kmemleak=True)  # listed only


def test_boot_objects_are_never_reported() -> None:
    m = Machine(cpus=4, memory="128M", kmemleak="fail")
    m.run(lambda: None)
    m.check()
    assert m.kmemleak_scan() == [] and m.reports == []


def test_kmemleak_usage() -> None:
    with pytest.raises(KmemUsageError, match="no kmemleak"):
        Machine(cpus=1).kmemleak_scan()
    m = Machine(cpus=1)

    def bad() -> None:
        kmemleak_not_leak(None)  # NULL: nothing, as the kernel
        kmemleak_not_leak(kmalloc(8, GFP_KERNEL))  # kmemleak off: the kernel's stub
        with pytest.raises(KmemUsageError, match="kmemleak_ignore"):
            kmemleak_ignore("0xc0000000")  # type: ignore[arg-type]

    m.run(bad)


def test_the_hardened_free_checks_still_run_with_kmemleak_on() -> None:
    """kmemleak's hook takes the slab's debug path; the always-on checks come along."""
    m = Machine(cpus=1, kmemleak=True)

    def driver() -> None:
        p = kmalloc(64, GFP_KERNEL)
        kfree(p)
        kfree(p)  # freed twice in a row
        q = kmalloc(64, GFP_KERNEL)
        kfree(q + 4)  # not the start of an object
        kfree(q)

    m.run(driver)
    assert [r.kind for r in m.reports] == ["slab_double_free", "slab_invalid_free"]
    m.check()
    assert m.proc("kmemleak") == ""


def test_what_an_interrupt_allocates_belongs_to_hardirq() -> None:
    m = Machine(cpus=1, kmemleak=True)
    from percpu_kmem.linux import GFP_ATOMIC, raise_irq

    def handler(irq: int, dev: object) -> None:
        kmalloc(24, GFP_ATOMIC)  # leaked by the handler

    m.request_irq(9, handler, "leaky_nic")

    def driver() -> None:
        raise_irq(9)
        kfree(kmalloc(8, GFP_KERNEL))

    m.run(driver)
    (text,) = m.kmemleak_scan()
    assert text.splitlines()[1].startswith('  comm "hardirq", pid 0, jiffies ')
