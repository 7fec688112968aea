"""Hardening that is always on, as a modern test kernel has it: a naive double free and a
free of a pointer that is not the start of an object are reported and refused even
without slab debugging, and the cache stays consistent."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import GFP_KERNEL, kfree, kmalloc, kmem_cache_alloc, kmem_cache_create, kmem_cache_free

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_naive_double_free_is_reported_and_refused(seed: int) -> None:
    m = Machine(cpus=2, seed=seed)

    def driver() -> None:
        p = kmalloc(100, GFP_KERNEL)
        kfree(p)
        kfree(p)  # the bug
        q, r = kmalloc(100, GFP_KERNEL), kmalloc(100, GFP_KERNEL)
        assert q != r  # the object was not put back twice: two allocations, two objects
        kfree(q)
        kfree(r)

    m.run(driver)
    (rep,) = m.reports
    assert rep.kind == "slab_double_free"
    assert "BUG size-128 (Not tainted): Object already free" in rep.lines
    assert any(ln.startswith("slab: double free detected in cache 'size-128', objp ") for ln in rep.lines)
    m.check()


def test_freeing_the_middle_of_an_object_is_reported_and_refused() -> None:
    m = Machine(cpus=1)

    def driver() -> None:
        cache = kmem_cache_create("dev_ctx", 48, 0, 0)
        p = kmem_cache_alloc(cache, GFP_KERNEL)
        kmem_cache_free(cache, p + 8)  # the bug
        kfree(kmalloc(64, GFP_KERNEL) + 4)  # and again through kfree (the object leaks, as in the kernel)
        kmem_cache_free(cache, p)

    m.run(driver)
    kinds = [r.kind for r in m.reports]
    assert kinds == ["slab_invalid_free", "slab_invalid_free"]
    assert "Invalid object pointer" in m.reports[0].text and "is not the start of an object" in m.reports[0].text
    m.check()


def test_correct_frees_are_never_reported() -> None:
    m = Machine(cpus=2, seed=3)

    def driver() -> None:
        objs = [kmalloc(32 * (1 + i % 4), GFP_KERNEL) for i in range(300)]
        for p in objs:
            kfree(p)
        for _ in range(200):
            p = kmalloc(64, GFP_KERNEL)
            kfree(p)  # freed, reallocated and freed again: the same address, legitimately

    m.run(driver, driver)
    assert m.reports == []
    m.check()
