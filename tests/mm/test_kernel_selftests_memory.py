"""The kernel's own memory-error self-tests, translated into the model, and their verdicts.

Three sources, one section each:

1. lib/test_kasan.c (the KUnit suite of 5.x, plus 6.x's kmalloc_oob_right, ksize_uaf,
   kasan_atomics, kmalloc_uaf3 and mempool cases): every case the model can express,
   named as the kernel names it, with its correct twin (the access in bounds, before the
   free; the one right free). The bug must be one KASAN report whose first lines are the
   kernel's ("BUG: KASAN: slab-out-of-bounds in kmalloc_oob_right", "Write of size 1 at
   addr ... by task ..."); the twin must report nothing. Each runs under the four
   policies, a seed each (the last with slab debugging on as well), and m.check() after.
   kmem_cache_double_destroy is xfail (what is wrong: its reason). krealloc's cases
   (krealloc_more_oob, krealloc_less_oob, krealloc_uaf) and kmalloc_double_kzfree are in
   tests/mm/test_slab_api.py. Not expressible, so not here: memchr,
   memcmp, str* and the bitops (no such accessors: the atomics stand in for the bitops,
   as both are instrument_atomic_*), globals, stack and alloca (nothing of them is in
   simulated memory), SLAB_ACCOUNT, kmem_cache_alloc_bulk.
2. mm/kmemleak-test.c: its orphans (kmalloc of 32..4096, kmem_cache_alloc, vmalloc(64)) are
   reported as "unreferenced object 0x... (size N):", what it keeps (a list from a static
   list head, a pointer in a DEFINE_PER_CPU) is not, until module exit drops the list.
3. 2.6.11's SLAB debugging (mm/slab.c with DEBUG; Machine(slab_debug=True)): writes before
   and after an object, writes after free seen at allocation and at slab destruction,
   double frees (with red zones, and without: free_block()'s test), SLAB_DEBUG_INITIAL's
   verifying constructor, each in the kernel's words; correct code under concurrency silent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from percpu_kmem import KmemUsageError, Machine, UnexpectedReport
from percpu_kmem.linux import (
    BUG,
    DEFINE_PER_CPU,
    GFP_ATOMIC,
    GFP_KERNEL,
    PAGE_OFFSET,
    PAGE_SIZE,
    READ_ONCE,
    SLAB_CTOR_VERIFY,
    SLAB_DEBUG_INITIAL,
    SLAB_DESTROY_BY_RCU,
    SLAB_HWCACHE_ALIGN,
    SLAB_POISON,
    SLAB_RED_ZONE,
    WRITE_ONCE,
    __free_pages,
    __get_free_page,
    __pa,
    __va,
    alloc_pages,
    atomic_add,
    atomic_add_negative,
    atomic_add_return,
    atomic_cmpxchg,
    atomic_dec,
    atomic_dec_and_test,
    atomic_inc,
    atomic_inc_and_test,
    atomic_read,
    atomic_set,
    atomic_sub,
    atomic_sub_and_test,
    atomic_xchg,
    cmpxchg,
    free_irq,
    free_page,
    get_cpu,
    init_waitqueue_head,
    kfree,
    kmalloc,
    kmalloc_node,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmemleak_ignore,
    kmemleak_not_leak,
    ksize,
    kzalloc,
    mem_read,
    memcpy,
    mempool_alloc,
    mempool_create,
    mempool_create_kmalloc_pool,
    mempool_create_page_pool,
    mempool_create_slab_pool,
    mempool_destroy,
    mempool_free,
    mempool_kfree,
    mempool_kmalloc,
    memset,
    msleep,
    page_address,
    per_cpu,
    printk,
    put_cpu,
    raise_irq,
    read_u8,
    read_u32,
    request_irq,
    u32,
    vfree,
    virt_to_page,
    vmalloc,
    wait_event,
    wake_up,
    write_u8,
    write_u32,
    xchg,
)
from percpu_kmem.mm.kasan import KASAN_RULE
from percpu_kmem.testing import explore

#: every single-task case runs once under each policy, with a seed of its own
POLICY_SEEDS = [("random", 0), ("pct", 1), ("free", 2), ("virtual", 3)]
#: SLUB's KMALLOC_MAX_CACHE_SIZE on x86 (two pages): the kernel's pagealloc/large cases are
#: sized from it; the 2.6 model serves all of them from its size-N caches (up to 131072)
KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE
KASAN_GRANULE_SIZE = 8


# -- 1. lib/test_kasan.c ---------------------------------------------------------------------
# Each case: case(bug, box). With bug=True it does what the kernel's test does and puts the
# address KASAN must name in box["addr"]; with bug=False it is the correct twin.

def kmalloc_oob_right(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(123, GFP_KERNEL)
    box["addr"] = ptr + (123 if bug else 122)
    write_u8(box["addr"], ord("x"))
    kfree(ptr)


def kmalloc_oob_left(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(15, GFP_KERNEL)
    box["addr"] = ptr - 1 if bug else ptr + 14
    write_u8(ptr, read_u8(box["addr"]))
    kfree(ptr)


def kmalloc_pagealloc_oob_right(bug: bool, box: dict[str, int]) -> None:
    size = KMALLOC_MAX_CACHE_SIZE + 10
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + size - (0 if bug else 1)
    write_u8(box["addr"], 0)
    kfree(ptr)


def kmalloc_pagealloc_uaf(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(KMALLOC_MAX_CACHE_SIZE + 10, GFP_KERNEL)
    box["addr"] = ptr
    if bug:
        kfree(ptr)
    write_u8(ptr, 0)
    if not bug:
        kfree(ptr)


def kmalloc_pagealloc_invalid_free(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(KMALLOC_MAX_CACHE_SIZE + 10, GFP_KERNEL)
    if bug:
        box["addr"] = ptr + 1
        kfree(ptr + 1)  # refused: the object stays allocated
    kfree(ptr)


def kmalloc_large_oob_right(bug: bool, box: dict[str, int]) -> None:
    size = KMALLOC_MAX_CACHE_SIZE - 256
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + size - (0 if bug else 1)
    write_u8(box["addr"], 0)
    kfree(ptr)


def kmalloc_oob_16(bug: bool, box: dict[str, int]) -> None:
    ptr1 = kmalloc(16 - 3 if bug else 16, GFP_KERNEL)
    ptr2 = kmalloc(16, GFP_KERNEL)
    box["addr"] = ptr1
    memcpy(ptr1, ptr2, 16)  # *ptr1 = *ptr2: a 16-byte struct copy
    kfree(ptr1)
    kfree(ptr2)


def kmalloc_uaf_16(bug: bool, box: dict[str, int]) -> None:
    ptr1 = kmalloc(16, GFP_KERNEL)
    ptr2 = kmalloc(16, GFP_KERNEL)
    box["addr"] = ptr2
    if bug:
        kfree(ptr2)
    memcpy(ptr1, ptr2, 16)
    if not bug:
        kfree(ptr2)
    kfree(ptr1)


def kmalloc_oob_memset_2(bug: bool, box: dict[str, int]) -> None:
    size = 8
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + 7 if bug else ptr
    memset(box["addr"], 0, 2 if bug else size)
    kfree(ptr)


def kmalloc_oob_memset_4(bug: bool, box: dict[str, int]) -> None:
    size = 8
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + 5 if bug else ptr
    memset(box["addr"], 0, 4 if bug else size)
    kfree(ptr)


def kmalloc_oob_memset_8(bug: bool, box: dict[str, int]) -> None:
    size = 8
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + 1 if bug else ptr
    memset(box["addr"], 0, 8 if bug else size)
    kfree(ptr)


def kmalloc_oob_memset_16(bug: bool, box: dict[str, int]) -> None:
    size = 16
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + 1 if bug else ptr
    memset(box["addr"], 0, 16 if bug else size)
    kfree(ptr)


def kmalloc_oob_in_memset(bug: bool, box: dict[str, int]) -> None:
    size = 666
    ptr = kmalloc(size, GFP_KERNEL)
    box["addr"] = ptr + 0 if bug else ptr
    memset(box["addr"], 0, size + 5 if bug else size)
    kfree(ptr)


def kmalloc_memmove_invalid_size(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(64, GFP_KERNEL)
    memset(ptr, 0, 64)
    box["addr"] = ptr + 4
    memcpy(ptr, ptr + 4, (-2 & 0xFFFFFFFF) if bug else 60)  # a size_t of -2
    kfree(ptr)


def kmalloc_memmove_invalid_size_6x(bug: bool, box: dict[str, int]) -> None:
    """6.x's kmalloc_memmove_invalid_size: memmove(ptr, ptr + 4, 64) reads 4 bytes past."""
    ptr = kmalloc(64, GFP_KERNEL)
    memset(ptr, 0, 64)
    box["addr"] = ptr + 4
    memcpy(ptr, ptr + 4, 64 if bug else 60)
    kfree(ptr)


def kmalloc_uaf3(bug: bool, box: dict[str, int]) -> None:
    ptr1 = kmalloc(100, GFP_KERNEL)
    if bug:
        kfree(ptr1)
    ptr2 = kmalloc(100, GFP_KERNEL)
    kfree(ptr2)
    box["addr"] = ptr1 + 8
    read_u8(ptr1 + 8)
    if not bug:
        kfree(ptr1)


def kmalloc_uaf(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(10, GFP_KERNEL)
    box["addr"] = ptr + 8
    if bug:
        kfree(ptr)
    write_u8(ptr + 8, ord("x"))
    if not bug:
        kfree(ptr)


def kmalloc_uaf_memset(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(33, GFP_KERNEL)
    box["addr"] = ptr
    if bug:
        kfree(ptr)
    memset(ptr, 0, 33)
    if not bug:
        kfree(ptr)


def kmalloc_uaf2(bug: bool, box: dict[str, int]) -> None:
    ptr1 = kmalloc(43, GFP_KERNEL)
    if bug:
        kfree(ptr1)
    ptr2 = kmalloc(43, GFP_KERNEL)
    box["addr"] = ptr1 + 40
    write_u8(ptr1 + 40, ord("x"))
    assert ptr1 != ptr2  # the quarantine: ptr1 is not handed out again at once
    if not bug:
        kfree(ptr1)
    kfree(ptr2)


def kmem_cache_oob(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["addr"] = p + (200 if bug else 199)
    write_u8(p, read_u8(box["addr"]))
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def kmem_cache_oob_unaligned(bug: bool, box: dict[str, int]) -> None:
    """kmem_cache_oob with mempool_slab_oob_right's size, 123: the object is 123 bytes for
    KASAN (s->object_size), though the slab rounds it to a word."""
    c = kmem_cache_create("test_cache", 123, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["addr"] = p + (123 if bug else 122)
    write_u8(p, read_u8(box["addr"]))
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def ksize_unpoisons_memory(bug: bool, box: dict[str, int]) -> None:
    ptr = kmalloc(123, GFP_KERNEL)
    real_size = ksize(ptr)
    write_u8(ptr + 123, ord("x"))  # this access does not trigger an error
    box["addr"] = ptr + real_size - (0 if bug else 1)
    write_u8(box["addr"], ord("y"))  # this one does
    kfree(ptr)


def kmem_cache_double_free(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["addr"] = p
    kmem_cache_free(c, p)
    if bug:
        kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def kmem_cache_invalid_free(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, SLAB_DESTROY_BY_RCU, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    if bug:
        box["addr"] = p + 1
        kmem_cache_free(c, p + 1)  # the object does not get freed
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def kasan_bitops_generic(bug: bool, box: dict[str, int]) -> None:
    """set_bit(BITS_PER_LONG + 7, bits) on a one-long kzalloc: an atomic RMW of the word after
    it (atomic_inc stands in: both are instrument_atomic_read_write of a long)."""
    bits = kzalloc(4 if bug else 8, GFP_KERNEL)
    box["addr"] = bits + 4
    atomic_inc(bits + 4)
    kfree(bits)


def kasan_bitops_uaf(bug: bool, box: dict[str, int]) -> None:
    """test_and_set_bit on a freed long (atomic_xchg stands in)."""
    bits = kzalloc(4, GFP_KERNEL)
    box["addr"] = bits
    if bug:
        kfree(bits)
    atomic_xchg(bits, 1)
    if not bug:
        kfree(bits)


def kmalloc_double_kzfree(bug: bool, box: dict[str, int]) -> None:
    """kzfree() twice: the model has no kzfree; memset + kfree is what it does."""
    ptr = kmalloc(16, GFP_KERNEL)
    box["addr"] = ptr
    memset(ptr, 0, 16)
    kfree(ptr)
    if bug:
        kfree(ptr)


def vmalloc_oob(bug: bool, box: dict[str, int]) -> None:
    v_ptr = vmalloc(3000)
    box["addr"] = v_ptr + (3100 if bug else 2999)
    read_u8(box["addr"])
    vfree(v_ptr)


def pagealloc_uaf(bug: bool, box: dict[str, int]) -> None:
    order = 4
    pages = alloc_pages(GFP_KERNEL, order)
    ptr = page_address(pages)
    box["addr"] = ptr
    if bug:
        __free_pages(pages, order)
    read_u8(ptr)
    if not bug:
        __free_pages(pages, order)


def mempool_oob_right_helper(make: Callable[[], Any], size: int, bug: bool, box: dict[str, int]) -> None:
    pool, cleanup = make()
    elem = mempool_alloc(pool, GFP_KERNEL)
    box["addr"] = elem + size - (0 if bug else 1)
    read_u8(box["addr"])
    mempool_free(elem, pool)
    mempool_destroy(pool)
    cleanup()


def mempool_kmalloc_oob_right(bug: bool, box: dict[str, int]) -> None:
    size = 128 - KASAN_GRANULE_SIZE - 5
    mempool_oob_right_helper(lambda: (mempool_create_kmalloc_pool(4, size), lambda: None), size, bug, box)


def mempool_kmalloc_large_oob_right(bug: bool, box: dict[str, int]) -> None:
    size = KMALLOC_MAX_CACHE_SIZE + 1
    mempool_oob_right_helper(lambda: (mempool_create_kmalloc_pool(4, size), lambda: None), size, bug, box)


def mempool_slab_oob_right(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 123, 0, 0, None, None)
    mempool_oob_right_helper(lambda: (mempool_create_slab_pool(4, c), lambda: kmem_cache_destroy(c)), 123, bug, box)


def mempool_kmalloc_uaf(bug: bool, box: dict[str, int]) -> None:
    pool = mempool_create_kmalloc_pool(1, 128)
    elem = mempool_alloc(pool, GFP_KERNEL)
    box["addr"] = elem
    if bug:
        mempool_free(elem, pool)  # the pool is full: kfree()d
    read_u8(elem)
    if not bug:
        mempool_free(elem, pool)
    mempool_destroy(pool)


def mempool_kmalloc_uaf_reserve(bug: bool, box: dict[str, int]) -> None:
    """mempool_kmalloc_uaf as 6.8 writes it (mempool_alloc_preallocated): the element comes
    from the reserve and goes back there, poisoned (kasan_mempool_poison_object)."""
    fail = [False]

    def alloc(gfp: int, data: Any) -> Any:
        return None if fail[0] else mempool_kmalloc(gfp, data)

    pool = mempool_create(4, alloc, mempool_kfree, 128)
    fail[0] = True
    elem = mempool_alloc(pool, GFP_ATOMIC)  # from the reserve
    box["addr"] = elem
    if bug:
        mempool_free(elem, pool)  # back into the reserve
    read_u8(elem)
    if not bug:
        mempool_free(elem, pool)
    mempool_destroy(pool)


def mempool_slab_uaf(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 123, 0, 0, None, None)
    pool = mempool_create_slab_pool(1, c)
    elem = mempool_alloc(pool, GFP_KERNEL)
    box["addr"] = elem
    if bug:
        mempool_free(elem, pool)
    read_u8(elem)
    if not bug:
        mempool_free(elem, pool)
    mempool_destroy(pool)
    kmem_cache_destroy(c)


def mempool_page_alloc_uaf(bug: bool, box: dict[str, int]) -> None:
    pool = mempool_create_page_pool(1, 0)
    page = mempool_alloc(pool, GFP_KERNEL)
    ptr = page_address(page)
    box["addr"] = ptr
    if bug:
        mempool_free(page, pool)  # the pool is full: __free_pages()d
    read_u8(ptr)
    if not bug:
        mempool_free(page, pool)
    mempool_destroy(pool)


def mempool_kmalloc_double_free(bug: bool, box: dict[str, int]) -> None:
    pool = mempool_create_kmalloc_pool(1, 128)
    elem = mempool_alloc(pool, GFP_KERNEL)
    box["addr"] = elem
    mempool_free(elem, pool)
    if bug:
        mempool_free(elem, pool)
    mempool_destroy(pool)


def mempool_kmalloc_invalid_free(bug: bool, box: dict[str, int]) -> None:
    pool = mempool_create_kmalloc_pool(1, 128)
    elem = mempool_alloc(pool, GFP_KERNEL)
    if bug:
        box["addr"] = elem + 1
        mempool_free(elem + 1, pool)
    mempool_free(elem, pool)
    mempool_destroy(pool)


@dataclass(frozen=True)
class KasanCase:
    case: Callable[[bool, dict[str, int]], None]
    bug_type: str
    #: "Read" / "Write" of ``size`` bytes, or "Free" (then ``func`` is the freeing function)
    access: str
    size: int = 1
    func: str = ""


KASAN_CASES = [
    KasanCase(kmalloc_oob_right, "slab-out-of-bounds", "Write"),
    KasanCase(kmalloc_oob_left, "slab-out-of-bounds", "Read"),
    KasanCase(kmalloc_pagealloc_oob_right, "slab-out-of-bounds", "Write"),
    # 2.6's kmalloc serves KMALLOC_MAX_CACHE_SIZE + 10 from size-16384: a slab object
    KasanCase(kmalloc_pagealloc_uaf, "slab-use-after-free", "Write"),
    KasanCase(kmalloc_pagealloc_invalid_free, "invalid-free", "Free", func="kfree"),
    KasanCase(kmalloc_large_oob_right, "slab-out-of-bounds", "Write"),
    KasanCase(kmalloc_oob_16, "slab-out-of-bounds", "Write", 16),
    KasanCase(kmalloc_uaf_16, "slab-use-after-free", "Read", 16),
    KasanCase(kmalloc_oob_memset_2, "slab-out-of-bounds", "Write", 2),
    KasanCase(kmalloc_oob_memset_4, "slab-out-of-bounds", "Write", 4),
    KasanCase(kmalloc_oob_memset_8, "slab-out-of-bounds", "Write", 8),
    KasanCase(kmalloc_oob_memset_16, "slab-out-of-bounds", "Write", 16),
    KasanCase(kmalloc_oob_in_memset, "slab-out-of-bounds", "Write", 666 + 5),
    # the size wraps the address space: "out-of-bounds" whatever the shadow says
    KasanCase(kmalloc_memmove_invalid_size, "out-of-bounds", "Read", -2 & 0xFFFFFFFF),
    KasanCase(kmalloc_memmove_invalid_size_6x, "slab-out-of-bounds", "Read", 64),
    KasanCase(kmalloc_uaf, "slab-use-after-free", "Write"),
    KasanCase(kmalloc_uaf_memset, "slab-use-after-free", "Write", 33),
    KasanCase(kmalloc_uaf2, "slab-use-after-free", "Write"),
    KasanCase(kmalloc_uaf3, "slab-use-after-free", "Read"),
    KasanCase(kmem_cache_oob, "slab-out-of-bounds", "Read"),
    KasanCase(kmem_cache_oob_unaligned, "slab-out-of-bounds", "Read"),
    KasanCase(ksize_unpoisons_memory, "slab-out-of-bounds", "Write"),
    KasanCase(kmem_cache_double_free, "double-free", "Free", func="kmem_cache_free"),
    KasanCase(kmem_cache_invalid_free, "invalid-free", "Free", func="kmem_cache_free"),
    KasanCase(kasan_bitops_generic, "slab-out-of-bounds", "Write", 4),
    KasanCase(kasan_bitops_uaf, "slab-use-after-free", "Write", 4),
    KasanCase(kmalloc_double_kzfree, "double-free", "Free", func="kfree"),
    KasanCase(vmalloc_oob, "vmalloc-out-of-bounds", "Read"),
    KasanCase(pagealloc_uaf, "use-after-free", "Read"),
    # the access is in 6.8's helper, as in the kernel: "... in mempool_oob_right_helper"
    KasanCase(mempool_kmalloc_oob_right, "slab-out-of-bounds", "Read", func="mempool_oob_right_helper"),
    KasanCase(mempool_kmalloc_large_oob_right, "slab-out-of-bounds", "Read", func="mempool_oob_right_helper"),
    KasanCase(mempool_slab_oob_right, "slab-out-of-bounds", "Read", func="mempool_oob_right_helper"),
    KasanCase(mempool_kmalloc_uaf, "slab-use-after-free", "Read"),
    KasanCase(mempool_kmalloc_uaf_reserve, "slab-use-after-free", "Read"),
    KasanCase(mempool_slab_uaf, "slab-use-after-free", "Read"),
    KasanCase(mempool_page_alloc_uaf, "use-after-free", "Read"),
    # the pool is full, so the second mempool_free() is mempool_kfree()'s kfree()
    KasanCase(mempool_kmalloc_double_free, "double-free", "Free", func="kfree"),
    KasanCase(mempool_kmalloc_invalid_free, "invalid-free", "Free", func="kfree"),
]


def _run_case(case: Callable[[bool, dict[str, int]], None], bug: bool, policy: str, seed: int,
              **kw: Any) -> tuple[Machine, dict[str, int]]:
    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed, **kw)
    box: dict[str, int] = {}
    m.run(partial(case, bug, box), names=[case.__name__])
    m.check()
    return m, box


#: the KASAN cases' runs: the four policies, the last one with slab debugging on as well
#: (KASAN's hooks and 2.6.11's poison and red zones at once: still one report, KASAN's)
KASAN_RUNS = [(policy, seed, policy == "virtual") for policy, seed in POLICY_SEEDS]


@pytest.mark.parametrize("policy,seed,slab_debug", KASAN_RUNS)
@pytest.mark.parametrize("kc", KASAN_CASES, ids=[kc.case.__name__ for kc in KASAN_CASES])
def test_test_kasan_case(kc: KasanCase, policy: str, seed: int, slab_debug: bool) -> None:
    """The bug is one report in KASAN's words; its correct twin, none."""
    m, box = _run_case(kc.case, True, policy, seed, slab_debug=slab_debug)
    (rep,) = m.reports
    assert rep.kind == "kasan_" + kc.bug_type.replace("-", "_")
    assert rep.lines[0] == rep.lines[-1] == KASAN_RULE
    assert rep.lines[1] == f"BUG: KASAN: {kc.bug_type} in {kc.func or kc.case.__name__}"
    comm = kc.case.__name__[:15]  # TASK_COMM_LEN
    what = "Free of" if kc.access == "Free" else f"{kc.access} of size {kc.size} at"
    assert rep.lines[2] == f"{what} addr {box['addr']:08x} by task {comm}/{rep.pid}"
    assert "Memory state around the buggy address:" in rep.lines
    m, _ = _run_case(kc.case, False, policy, seed, slab_debug=slab_debug)
    assert m.reports == []


def kfree_via_page() -> None:
    ptr = kmalloc(8, GFP_KERNEL)
    page = virt_to_page(ptr)
    kfree(page_address(page) + (ptr & (PAGE_SIZE - 1)))


def kfree_via_phys() -> None:
    ptr = kmalloc(8, GFP_KERNEL)
    kfree(__va(__pa(ptr)))


def memcg_accounted_kmem_cache() -> None:
    """Several allocations with a delay (SLAB_ACCOUNT is not modelled: flags 0)."""
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    for _ in range(5):
        p = kmem_cache_alloc(c, GFP_KERNEL)
        kmem_cache_free(c, p)
        msleep(100)
    kmem_cache_destroy(c)


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
@pytest.mark.parametrize("case", [kfree_via_page, kfree_via_phys, memcg_accounted_kmem_cache])
def test_test_kasan_cases_that_must_pass_report_nothing(case: Callable[[], None], policy: str, seed: int) -> None:
    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(case)
    m.check()
    assert m.reports == []


def test_the_object_a_report_describes_is_the_one_the_access_ran_off() -> None:
    """describe_object_addr: kmem_cache_oob's p[200] is "0 bytes to the right of allocated
    200-byte region [p, p+200)", of the cache's object size (s->object_size, 123 for a
    123-byte cache); a freed object's region is its object size (kasan_get_alloc_size()
    finds no size in a freed object's shadow), and all of it is freed (fb)."""
    m, box = _run_case(kmem_cache_oob, True, "random", 0)
    p = box["addr"] - 200
    lines = m.reports[0].lines
    i = lines.index(f"The buggy address belongs to the object at {p:08x}")
    assert lines[i + 1:i + 4] == [" which belongs to the cache test_cache of size 200",
                                  "The buggy address is located 0 bytes to the right of",
                                  f" allocated 200-byte region [{p:08x}, {p + 200:08x})"]
    m, box = _run_case(kmalloc_oob_left, True, "random", 0)
    p = box["addr"] + 1
    lines = m.reports[0].lines
    i = lines.index(f"The buggy address belongs to the object at {p:08x}")
    assert lines[i + 2:i + 4] == ["The buggy address is located 1 bytes to the left of",
                                  f" allocated 15-byte region [{p:08x}, {p + 15:08x})"]
    m, box = _run_case(kmem_cache_oob_unaligned, True, "random", 0)
    p = box["addr"] - 123
    assert " which belongs to the cache test_cache of size 123" in m.reports[0].lines
    assert f" allocated 123-byte region [{p:08x}, {p + 123:08x})" in m.reports[0].lines
    box2: dict[str, int] = {}

    def uaf_in_the_slack() -> None:
        ptr = kmalloc(100, GFP_KERNEL)
        kfree(ptr)
        box2["p"] = ptr
        read_u8(ptr + 104)  # past the request, inside the freed object

    m = Machine(cpus=1, kasan=True)
    m.run(uaf_in_the_slack)
    (rep,) = m.reports
    assert rep.kind == "kasan_slab_use_after_free"
    p = box2["p"]
    assert "The buggy address is located 104 bytes inside of" in rep.lines
    assert f" freed 128-byte region [{p:08x}, {p + 128:08x})" in rep.lines


def test_the_memmove_of_an_invalid_size_is_reported_and_not_performed() -> None:
    """kmalloc_memmove_invalid_size: one report, and the copy is not done (KASAN's memmove()
    returns without copying); it used to build a 4 GiB buffer (a hang)."""
    m, box = _run_case(kmalloc_memmove_invalid_size, True, "random", 0)
    rep = m.reports[0]
    assert "The buggy address is located 4 bytes inside of" in rep.lines
    assert " 64-byte region" in "\n".join(rep.lines)  # no region state for "out-of-bounds"

    def larger_than_memory() -> None:  # no wrap, but more than all of memory: not copied either
        ptr = kmalloc(64, GFP_KERNEL)
        memcpy(ptr, ptr + 4, 0x30000000)
        kfree(ptr)

    m = Machine(cpus=1, kasan=True)
    m.run(larger_than_memory)
    assert [r.lines[2].split(" at ")[0] for r in m.reports] == ["Read of size 805306368"]


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
def test_a_slab_destroy_by_rcu_object_may_be_read_after_free(policy: str, seed: int) -> None:
    """KASAN leaves a SLAB_DESTROY_BY_RCU (SLAB_TYPESAFE_BY_RCU) object unpoisoned at free
    ("RCU slabs could be legally used after free within the RCU period"): a lockless reader
    that finds a freed object and rechecks it is correct code. It used to be reported as a
    slab-use-after-free. A read past the object is still out of bounds."""
    box: dict[str, int] = {}

    def rcu_reader() -> None:
        c = kmem_cache_create("rcu_cache", 60, 0, SLAB_DESTROY_BY_RCU, None, None)
        p = kmem_cache_alloc(c, GFP_KERNEL)
        write_u32(p, 1)
        kmem_cache_free(c, p)
        assert read_u32(p) == 1  # freed, and still a rcu_cache object
        box["addr"] = p + 60
        read_u8(p + 60)
        kmem_cache_destroy(c)

    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(rcu_reader)
    m.check()
    assert [r.kind for r in m.reports] == ["kasan_slab_out_of_bounds"]
    assert m.reports[0].lines[2].startswith(f"Read of size 1 at addr {box['addr']:08x} ")


def _reserve_pool(min_nr: int) -> tuple[Any, list[bool]]:
    """A kmalloc pool of 128-byte elements whose allocator can be made to fail, so that
    mempool_alloc() takes from the reserve (6.8's mempool_alloc_preallocated)."""
    fail = [False]

    def alloc(gfp: int, data: Any) -> Any:
        return None if fail[0] else mempool_kmalloc(gfp, data)

    return mempool_create(min_nr, alloc, mempool_kfree, 128), fail


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
def test_mempool_kmalloc_invalid_free_into_the_reserve(policy: str, seed: int) -> None:
    """6.8's mempool_kmalloc_invalid_free: elem + 1 given back while the pool is below
    min_nr goes to the reserve, and kasan_mempool_poison_object() reports it at once:
    "invalid-free in mempool_free" (it used to be seen only when the pool was destroyed)."""
    box: dict[str, int] = {}

    def mempool_kmalloc_invalid_free(bug: bool) -> None:
        pool, fail = _reserve_pool(4)
        fail[0] = True
        extra = mempool_alloc(pool, GFP_ATOMIC)
        elem = mempool_alloc(pool, GFP_ATOMIC)
        box["addr"] = elem + 1
        if bug:
            mempool_free(elem + 1, pool)
        mempool_free(elem, pool)
        mempool_free(extra, pool)
        if not bug:
            mempool_destroy(pool)

    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(partial(mempool_kmalloc_invalid_free, True), names=["mempool_kmalloc"])
    rep = m.reports[0]
    assert rep.kind == "kasan_invalid_free"
    assert rep.lines[1:3] == ["BUG: KASAN: invalid-free in mempool_free",
                              f"Free of addr {box['addr']:08x} by task mempool_kmalloc/{rep.pid}"]
    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(partial(mempool_kmalloc_invalid_free, False), names=["mempool_kmalloc"])
    m.check()
    assert m.reports == []


def test_mempool_element_freed_twice_once_to_the_allocator_once_to_the_reserve() -> None:
    """The pool is full at the first mempool_free (kfree'd), below min_nr at the second
    (the reserve): KASAN's check of the element going into the reserve finds it freed."""
    box: dict[str, int] = {}

    def double_free() -> None:
        pool, fail = _reserve_pool(2)
        elem = mempool_alloc(pool, GFP_KERNEL)  # from kmalloc: the pool stays full
        box["addr"] = elem
        mempool_free(elem, pool)  # full: kfree()d
        fail[0] = True
        mempool_alloc(pool, GFP_ATOMIC)  # the pool below min_nr now
        mempool_free(elem, pool)

    m = Machine(cpus=1, kasan=True)
    m.run(double_free)
    rep = m.reports[0]
    assert rep.kind == "kasan_double_free"
    assert rep.lines[1:3] == ["BUG: KASAN: double-free in mempool_free",
                              f"Free of addr {box['addr']:08x} by task double_free/{rep.pid}"]


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
def test_kmalloc_oob_right_of_6x(policy: str, seed: int) -> None:
    """6.x's kmalloc_oob_right: three accesses past a 115-byte request, the unaligned one,
    the one in the next granule, and one past the 128-byte object; each a report naming
    the object the access ran off, N bytes to its right."""
    box: dict[str, int] = {}

    def kmalloc_oob_right() -> None:
        size = 128 - KASAN_GRANULE_SIZE - 5
        ptr = kmalloc(size, GFP_KERNEL)
        box["ptr"] = ptr
        write_u8(ptr + size, ord("x"))
        write_u8(ptr + size + 5, ord("y"))
        write_u8(ptr, read_u8(ptr + size + KASAN_GRANULE_SIZE + 5))
        kfree(ptr)

    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(kmalloc_oob_right)
    m.check()
    p = box["ptr"]
    assert [r.lines[2].split(" by task")[0] for r in m.reports] == [
        f"Write of size 1 at addr {p + 115:08x}", f"Write of size 1 at addr {p + 120:08x}",
        f"Read of size 1 at addr {p + 128:08x}"]
    for rep, right in zip(m.reports, (0, 5, 13)):
        i = rep.lines.index(f"The buggy address belongs to the object at {p:08x}")
        assert rep.lines[i + 2:i + 4] == [f"The buggy address is located {right} bytes to the right of",
                                          f" allocated 115-byte region [{p:08x}, {p + 115:08x})"]


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
def test_ksize_uaf(policy: str, seed: int) -> None:
    """ksize() of a freed object is a slab-use-after-free "in ksize" (kasan_check_byte), then
    each read of it is one more; before the free, ksize and the reads are fine."""
    box: dict[str, int] = {}

    def ksize_uaf(bug: bool) -> None:
        size = 128 - KASAN_GRANULE_SIZE
        ptr = kmalloc(size, GFP_KERNEL)
        box["ptr"] = ptr
        if bug:
            kfree(ptr)
        ksize(ptr)
        read_u8(ptr)
        read_u8(ptr + size)
        if not bug:
            kfree(ptr)

    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(partial(ksize_uaf, True), names=["ksize_uaf"])
    m.check()
    p = box["ptr"]
    assert [r.lines[1:3] for r in m.reports] == [
        ["BUG: KASAN: slab-use-after-free in ksize", f"Read of size 1 at addr {p:08x} by task ksize_uaf/{m.reports[0].pid}"],
        ["BUG: KASAN: slab-use-after-free in ksize_uaf", f"Read of size 1 at addr {p:08x} by task ksize_uaf/{m.reports[0].pid}"],
        ["BUG: KASAN: slab-use-after-free in ksize_uaf",
         f"Read of size 1 at addr {p + 120:08x} by task ksize_uaf/{m.reports[0].pid}"]]
    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(partial(ksize_uaf, False), names=["ksize_uaf"])
    m.check()
    assert m.reports == []


def kasan_atomics_helper(unsafe: int, safe: int) -> None:
    """6.x's kasan_atomics: every atomic operation on the word past a 48-byte object."""
    atomic_read(unsafe)
    atomic_set(unsafe, 42)
    atomic_add(42, unsafe)
    atomic_sub(42, unsafe)
    atomic_inc(unsafe)
    atomic_dec(unsafe)
    atomic_add_return(42, unsafe)
    atomic_sub_and_test(42, unsafe)
    atomic_dec_and_test(unsafe)
    atomic_inc_and_test(unsafe)
    atomic_add_negative(42, unsafe)
    atomic_xchg(unsafe, 42)
    atomic_cmpxchg(unsafe, 21, 42)
    cmpxchg(unsafe, 21, 42)
    xchg(unsafe, 42)
    READ_ONCE(unsafe)
    WRITE_ONCE(unsafe, 42)
    atomic_inc(safe)


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
def test_kasan_atomics(policy: str, seed: int) -> None:
    box: dict[str, int] = {}

    def kasan_atomics(bug: bool) -> None:
        a1 = kmalloc(48 if bug else 52, GFP_KERNEL)
        a2 = kzalloc(4, GFP_KERNEL)
        box["addr"] = a1 + 48
        kasan_atomics_helper(a1 + 48, a2)
        kfree(a1)
        kfree(a2)

    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(partial(kasan_atomics, True), names=["kasan_atomics"])
    m.check()
    assert {r.kind for r in m.reports} == {"kasan_slab_out_of_bounds"}
    assert {r.lines[1] for r in m.reports} == {"BUG: KASAN: slab-out-of-bounds in kasan_atomics_helper"}
    ops = [r.lines[2].split(" at addr ")[0] for r in m.reports]
    assert ops == ["Read of size 4", *["Write of size 4"] * 14, "Read of size 4", "Write of size 4"]
    assert {r.extra["address"] for r in m.reports} == {box["addr"]}
    m = Machine(cpus=2, kasan=True, policy=policy, seed=seed)
    m.run(partial(kasan_atomics, False), names=["kasan_atomics"])
    m.check()
    assert m.reports == []


def test_kmem_cache_double_destroy() -> None:
    """6.x's kmem_cache_double_destroy: the second destroy uses the freed kmem_cache
    descriptor, a slab-use-after-free in kmem_cache_destroy (a kernel report, not a Python
    exception: the driver's bug, not a misuse of the model's API)."""
    def kmem_cache_double_destroy() -> None:
        c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
        kmem_cache_destroy(c)
        kmem_cache_destroy(c)

    m = Machine(cpus=1, kasan=True)
    m.run(kmem_cache_double_destroy)
    assert [r.lines[1] for r in m.reports] == ["BUG: KASAN: slab-use-after-free in kmem_cache_destroy"]


def test_memset_of_an_invalid_size_is_a_kasan_report() -> None:
    """memset(ptr, 0, (size_t)-2): KASAN's memset() checks the range first, reports it
    out-of-bounds (the size wraps) and returns without writing, as memmove() does."""
    def kmalloc_memset_invalid_size() -> None:
        ptr = kmalloc(64, GFP_KERNEL)
        memset(ptr, 0, -2 & 0xFFFFFFFF)
        kfree(ptr)

    m = Machine(cpus=1, kasan=True)
    m.run(kmalloc_memset_invalid_size)
    assert [r.lines[1] for r in m.reports] == ["BUG: KASAN: out-of-bounds in kmalloc_memset_invalid_size"]


def test_kmem_cache_double_destroy_without_kasan_oopses_in_list_del() -> None:
    """2.6.11's second destroy: list_del(&cachep->next) of the freed descriptor, whose next is
    LIST_POISON1 from the first: next->prev = prev faults at 0x00100104 (a write), the task
    ends with an Oops, the machine goes on. A non-cache stays a Python misuse error."""
    def kmem_cache_double_destroy() -> None:
        c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
        kmem_cache_destroy(c)
        kmem_cache_destroy(c)

    m = Machine(cpus=1)
    assert m.run(kmem_cache_double_destroy) == [None]
    assert [r.kind for r in m.reports] == ["page_fault"]
    assert m.reports[0].lines[:2] == ["BUG: unable to handle page fault for address: 00100104",
                                      "#PF: supervisor write access in kernel mode"]
    assert m.reports[0].lines[4].startswith("EIP: kmem_cache_destroy (")
    m.check()
    with pytest.raises(KmemUsageError, match=r"kmem_cache_destroy\(\) takes a cache"):
        m.run(lambda: kmem_cache_destroy(object()))  # type: ignore[arg-type]


@pytest.mark.parametrize("kasan", [True, False])
def test_a_fill_larger_than_memory_writes_nothing(kasan: bool) -> None:
    """memset(ptr, 0x5a, (size_t)-2): with KASAN the report and a return; without it the page
    fault where the direct map ends (write access, an Oops); never a Python error, and not a
    byte of the object is filled either way."""
    box: dict[str, int] = {}

    def fill() -> None:
        ptr = box["p"] = kmalloc(64, GFP_KERNEL)
        memset(ptr, 0x11, 64)
        memset(ptr, 0x5A, -2 & 0xFFFFFFFF)
        box["after"] = read_u8(ptr + 63)

    m = Machine(cpus=1, kasan=kasan)
    m.run(fill)
    if kasan:
        assert [r.kind for r in m.reports] == ["kasan_out_of_bounds"] and box["after"] == 0x11
    else:
        assert m.reports[-1].kind == "page_fault" and "after" not in box
        high_memory = 0xC0000000 + (m.mem.max_low_pfn << 12)     # where the direct map ends
        assert m.reports[-1].lines[:2] == [f"BUG: unable to handle page fault for address: {high_memory:08x}",
                                           "#PF: supervisor write access in kernel mode"]
    assert m.run(lambda: (mem_read(box["p"], 64), kfree(box["p"]))[0]) == [b"\x11" * 64]
    m.check()


def test_kmalloc_node_oob_right() -> None:
    """test_kasan.c: ptr = kmalloc_node(4096, GFP_KERNEL, 0); ptr[0] = ptr[4096]. The byte past
    the object that fills its slab is in the next page: it counts as the object's red zone."""
    box: dict[str, int] = {}

    def kmalloc_node_oob_right() -> None:
        ptr = kmalloc_node(4096, GFP_KERNEL, 0)
        box["addr"] = ptr + 4096
        write_u8(ptr, read_u8(ptr + 4096))
        kfree(ptr)

    m = Machine(cpus=1, kasan=True)
    m.run(kmalloc_node_oob_right)
    assert [r.kind for r in m.reports] == ["kasan_slab_out_of_bounds"]
    text = m.reports[0].text
    assert f"Read of size 1 at addr {box['addr']:08x}" in text, text
    assert "The buggy address is located 0 bytes to the right of\n allocated 4096-byte region" in text, text


def _uaf_across_tasks(m: Machine, bug: bool) -> None:
    """A producer hands an object to a consumer through shared memory and frees it; the
    buggy one frees before the consumer is done (an ordering the wait queue forces), the
    fixed one waits for it. The verdict must not depend on the schedule."""
    box: dict[str, int] = {}
    m.run(lambda: box.update(shared=__get_free_page(GFP_KERNEL)))  # the driver's global: a page both see
    shared = box["shared"]
    wq = init_waitqueue_head()
    state = {"published": False, "consumed": False}

    def producer() -> None:
        p = kmalloc(64, GFP_KERNEL)
        write_u32(p, 0x1234)
        write_u32(shared, p)
        if bug:
            kfree(p)
        state["published"] = True
        wake_up(wq)
        if not bug:
            wait_event(wq, lambda: state["consumed"])
            kfree(p)

    def consumer() -> None:
        wait_event(wq, lambda: state["published"])
        read_u32(read_u32(shared))
        state["consumed"] = True
        wake_up(wq)

    m.run(producer, consumer)
    kinds = [r.kind for r in m.reports]
    assert kinds == (["kasan_slab_use_after_free"] if bug else []), kinds
    m.run(lambda: free_page(shared))


@pytest.mark.parametrize("bug", [True, False])
def test_a_use_after_free_across_tasks_under_every_policy(bug: bool) -> None:
    explore(partial(_uaf_across_tasks, bug=bug), seeds=range(3), policies=("random", "pct", "free", "virtual"),
            kasan=True, cpus=2, expect="kasan_slab_use_after_free" if bug else ())


# -- 2. mm/kmemleak-test.c -------------------------------------------------------------------
kmemleak_test_pointer = DEFINE_PER_CPU(u32, "kmemleak_test_pointer")
#: sizeof(struct test_node) on i386: long header[25], struct list_head list, long footer[25]
TEST_NODE_SIZE = 25 * 4 + 8 + 25 * 4
LIST_OFFSET = 25 * 4
LIST_POISON1, LIST_POISON2 = 0x00100100, 0x00200200
LEAK_HEAD = re.compile(r"^unreferenced object 0x([0-9a-f]{8}) \(size (\d+)\):$")
LEAK_COMM = re.compile(r'^  comm "[^"]+", pid \d+, jiffies \d+ \(age \d+\.\d{3}s\)$')


def _kmemleak_test_module(m: Machine, nr_cpus: int, *, module_exit: str) -> dict[str, Any]:
    """kmemleak_test_init, then the scan; kmemleak_test_exit (module_exit="leak": the
    list elements are unlinked without being freed, as the kernel's test does; "free": the
    correct exit, everything freed), then the scan again."""
    box: dict[str, Any] = {}

    def kmemleak_test_init() -> None:
        data = __get_free_page(GFP_KERNEL)  # the module's .data: static LIST_HEAD(test_list)
        write_u32(data, data)
        write_u32(data + 4, data)
        files_cachep = kmem_cache_create("files_cache", 192, 0, SLAB_HWCACHE_ALIGN, None, None)
        orphans = [kmalloc(n, GFP_KERNEL) for n in (32, 32, 1024, 1024, 2048, 2048, 4096, 4096)]
        orphans += [kmem_cache_alloc(files_cachep, GFP_KERNEL) for _ in range(2)]
        orphans += [vmalloc(64) for _ in range(5)]
        elems = []
        for _ in range(10):  # list_add_tail(&elem->list, &test_list)
            elem = kzalloc(TEST_NODE_SIZE, GFP_KERNEL)
            node, prev = elem + LIST_OFFSET, read_u32(data + 4)
            write_u32(node, data)
            write_u32(node + 4, prev)
            write_u32(prev, node)
            write_u32(data + 4, node)
            elems.append(elem)
        kept = []
        for cpu in range(nr_cpus):
            per_cpu(kmemleak_test_pointer, cpu).value = p = kmalloc(129, GFP_KERNEL)
            kept.append(p)
        box.update(data=data, cache=files_cachep, orphans=orphans, elems=elems, kept=kept)

    def kmemleak_test_exit() -> None:
        data = box["data"]
        node = read_u32(data)
        while node != data:  # list_for_each_entry_safe ... list_del(&elem->list)
            nxt = read_u32(node)
            write_u32(node, LIST_POISON1)
            write_u32(node + 4, LIST_POISON2)
            node = nxt
        write_u32(data, data)
        write_u32(data + 4, data)
        if module_exit == "free":
            for p in box["elems"]:
                kfree(p)
            for p in box["orphans"][:8]:
                kfree(p)
            for p in box["orphans"][8:10]:
                kmem_cache_free(box["cache"], p)
            for p in box["orphans"][10:]:
                vfree(p)
            for cpu in range(nr_cpus):
                kfree(per_cpu(kmemleak_test_pointer, cpu).value)
                per_cpu(kmemleak_test_pointer, cpu).value = 0
            kmem_cache_destroy(box["cache"])
        free_page(data)

    m.run(kmemleak_test_init)
    box["after_init"] = m.kmemleak_scan()
    m.run(kmemleak_test_exit)
    box["after_exit"] = m.kmemleak_scan()
    return box


def _leaks(texts: list[str]) -> dict[int, int]:
    out = {}
    for t in texts:
        lines = t.splitlines()
        head = LEAK_HEAD.match(lines[0])
        assert head, lines[0]
        assert LEAK_COMM.match(lines[1]), lines[1]
        n = min(int(head.group(2)), 32)
        assert lines[2] == f"  hex dump (first {n} bytes):"
        assert "  backtrace:" in lines
        out[int(head.group(1), 16)] = int(head.group(2))
    return out


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
def test_kmemleak_test_module(policy: str, seed: int) -> None:
    m = Machine(cpus=2, kmemleak=True, policy=policy, seed=seed)
    box = _kmemleak_test_module(m, 2, module_exit="leak")
    # init: the orphans leak; the list (from the static head) and the per-CPU pointers do not
    leaks = _leaks(box["after_init"])
    orphans = box["orphans"]
    assert list(leaks) == orphans  # in the order they were allocated (kmemleak's object_list)
    assert list(leaks.values()) == [32, 32, 1024, 1024, 2048, 2048, 4096, 4096, 192, 192, 64, 64, 64, 64, 64]
    # exit: the list elements, unlinked and not freed, are orphans now; each leak reported once
    leaks = _leaks(box["after_exit"])
    assert sorted(leaks) == sorted(box["elems"])
    assert set(leaks.values()) == {256}  # kzalloc(208) is a size-256 object
    assert not set(box["kept"]) & set(m.kmemleak.leaks)
    assert list(_leaks(m.proc("kmemleak").split("\n" + "unreferenced")[0:1])) == orphans[:1]
    assert m.proc("kmemleak").count("unreferenced object") == 25


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS[:2])
def test_kmemleak_test_module_with_a_correct_exit_leaks_nothing(policy: str, seed: int) -> None:
    m = Machine(cpus=2, kmemleak="fail", policy=policy, seed=seed)
    box = _kmemleak_test_module(m, 2, module_exit="free")
    assert box["after_exit"] == []
    assert [r.kind for r in m.reports] == ["kmemleak"] * 15  # the init's orphans, reported once
    m.check()


def _percpu_pointers(m: Machine, bug: bool) -> None:
    """Each CPU keeps its buffer in a per-CPU variable, set by three tasks on two CPUs at
    once; the buggy one overwrites the pointer another task left there, orphaning its
    buffer (three tasks, two CPUs: it happens in every run), the fixed one frees it."""
    def worker() -> None:
        p = kmalloc(129, GFP_KERNEL)
        cpu = get_cpu()
        old = per_cpu(kmemleak_test_pointer, cpu).value
        per_cpu(kmemleak_test_pointer, cpu).value = p
        put_cpu()
        if old and not bug:
            kfree(old)

    def module_exit() -> None:  # frees what the per-CPU variable holds
        for cpu in range(2):
            kfree(per_cpu(kmemleak_test_pointer, cpu).value)
            per_cpu(kmemleak_test_pointer, cpu).value = 0

    m.run(worker, worker, worker)
    m.run(module_exit)


def test_per_cpu_pointers_from_concurrent_tasks() -> None:
    policies = ("random", "pct", "free")
    assert explore(partial(_percpu_pointers, bug=False), seeds=range(3), policies=policies, kmemleak="fail",
                   cpus=2) == 9
    with pytest.raises(UnexpectedReport, match="kmemleak"):
        explore(partial(_percpu_pointers, bug=True), seeds=range(3), policies=policies, kmemleak="fail", cpus=2,
                shrink=False)


# -- 3. 2.6.11 SLAB debugging (mm/slab.c, DEBUG; Machine(slab_debug=True)) -------------------
def cache_write_past_the_end(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["obj"] = p
    write_u8(p + (200 if bug else 199), 0)  # into red zone 2
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def cache_write_before_the_start(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["obj"] = p
    write_u8(p - 1 if bug else p, 0)  # into red zone 1
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def kmalloc_write_after_free(bug: bool, box: dict[str, int]) -> None:
    p = kmalloc(100, GFP_KERNEL)
    box["obj"] = p
    if bug:
        kfree(p)
    write_u32(p + 8, 0x12345678)
    if not bug:
        kfree(p)
    q = kmalloc(100, GFP_KERNEL)  # the same object again (the magazine is LIFO): poison checked
    assert q == p
    kfree(q)


def cache_write_after_free_seen_at_destroy(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["obj"] = p
    if not bug:
        write_u32(p + 8, 0x12345678)
    kmem_cache_free(c, p)
    if bug:
        write_u32(p + 8, 0x12345678)
    kmem_cache_destroy(c)  # slab_destroy() checks every object's poison


def cache_double_free(bug: bool, box: dict[str, int]) -> None:
    c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    box["obj"] = p
    kmem_cache_free(c, p)
    if bug:
        kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def large_kmalloc_double_free(bug: bool, box: dict[str, int]) -> None:
    """size-8192 is poisoned but has no red zones under slab_debug (2.6.11 red-zones only
    objects below 4096 bytes or whose debug words fit the power of two): the double free is
    the always-on hardened check's, as without debugging."""
    p = kmalloc(8192, GFP_KERNEL)
    box["obj"] = p
    kfree(p)
    if bug:
        kfree(p)
    q = kmalloc(8192, GFP_KERNEL)
    r = kmalloc(8192, GFP_KERNEL)
    assert q != r  # p was not put on the magazine twice
    kfree(q)
    kfree(r)


def large_kmalloc_double_free_later(bug: bool, box: dict[str, int]) -> None:
    """The same with another free in between: not the naive case the hardened check sees;
    2.6.11's free_block() under DEBUG finds the object free already."""
    p = kmalloc(8192, GFP_KERNEL)
    q = kmalloc(8192, GFP_KERNEL)
    box["obj"] = p
    kfree(p)
    kfree(q)
    if bug:
        kfree(p)
    a, b, c = (kmalloc(8192, GFP_KERNEL) for _ in range(3))
    assert len({a, b, c}) == 3  # p was not put on the magazine twice
    kfree(a)
    kfree(b)
    kfree(c)


def large_kmalloc_write_after_free(bug: bool, box: dict[str, int]) -> None:
    p = kmalloc(8192, GFP_KERNEL)
    box["obj"] = p
    if bug:
        kfree(p)
    write_u8(p + 5000, 1)
    if not bug:
        kfree(p)
    q = kmalloc(8192, GFP_KERNEL)
    kfree(q)


@dataclass(frozen=True)
class SlabCase:
    case: Callable[[bool, dict[str, int]], None]
    kind: str
    bug_line: str
    #: lines of 2.6.11's own report the text must hold ({obj}: the object, %p as i386 prints it)
    words: tuple[str, ...]


SLAB_CASES = [
    SlabCase(cache_write_past_the_end, "slab_redzone", "BUG test_cache (Not tainted): Right Redzone overwritten",
             ("slab error in cache_free_debugcheck(): cache `test_cache': double free, or memory outside object "
              "was overwritten", "{obj}: redzone 1: 0x170fc2a5, redzone 2: 0x170fc200.")),
    SlabCase(cache_write_before_the_start, "slab_redzone", "BUG test_cache (Not tainted): Left Redzone overwritten",
             ("slab error in cache_free_debugcheck(): cache `test_cache': double free, or memory outside object "
              "was overwritten", "{obj}: redzone 1: 0xfc2a5, redzone 2: 0x170fc2a5.")),
    SlabCase(kmalloc_write_after_free, "slab_poison", "BUG size-128 (Not tainted): Poison overwritten",
             ("Slab corruption: start={obj}, len=128", "000: 6b 6b 6b 6b 6b 6b 6b 6b 78 56 34 12 6b 6b 6b 6b")),
    SlabCase(cache_write_after_free_seen_at_destroy, "slab_poison", "BUG test_cache (Not tainted): Poison overwritten",
             ("Slab corruption: start={obj}, len=200", "Redzone: 0x5a2cf071/0x5a2cf071.",
              "detected at slab destruction (a write to the object after it was freed)")),
    SlabCase(cache_double_free, "slab_double_free", "BUG test_cache (Not tainted): Object already free",
             ("slab error in cache_free_debugcheck(): cache `test_cache': double free, or memory outside object "
              "was overwritten", "{obj}: redzone 1: 0x5a2cf071, redzone 2: 0x5a2cf071.")),
    SlabCase(large_kmalloc_double_free, "slab_double_free", "BUG size-8192 (Not tainted): Object already free",
             ("slab: double free detected in cache 'size-8192', objp {obj}.",)),
    SlabCase(large_kmalloc_double_free_later, "slab_double_free", "BUG size-8192 (Not tainted): Object already free",
             ("slab: double free detected in cache 'size-8192', objp {obj}.",)),
    SlabCase(large_kmalloc_write_after_free, "slab_poison", "BUG size-8192 (Not tainted): Poison overwritten",
             ("Slab corruption: start={obj}, len=8192",)),
]


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS)
@pytest.mark.parametrize("sc", SLAB_CASES, ids=[sc.case.__name__ for sc in SLAB_CASES])
def test_slab_debug_case(sc: SlabCase, policy: str, seed: int) -> None:
    """The bug is one report in the kernel's words (and refused: m.check() passes); its
    correct twin, none."""
    m = Machine(cpus=2, slab_debug=True, policy=policy, seed=seed)
    box: dict[str, int] = {}
    m.run(partial(sc.case, True, box), names=[sc.case.__name__])
    m.check()
    (rep,) = m.reports
    assert rep.kind == sc.kind
    assert rep.lines[:4] == ["=" * 77, sc.bug_line, "-" * 77, ""]
    for w in sc.words:
        assert w.format(obj=f"{box['obj']:08x}") in rep.lines, (w, rep.text)
    m = Machine(cpus=2, slab_debug=True, policy=policy, seed=seed)
    m.run(partial(sc.case, False, {}), names=[sc.case.__name__])
    m.check()
    assert m.reports == []


def _debugged_traffic(m: Machine) -> None:
    """Correct code using every byte it asked for, from two tasks and an interrupt at once,
    a constructed cache among it: slab debugging must find nothing."""
    def ctor(objp: int, cachep: Any, flags: int) -> None:
        write_u32(objp, 0xC0FFEE)

    box: dict[str, Any] = {}
    m.run(lambda: box.update(c=kmem_cache_create("ctor_cache", 52, 0, SLAB_HWCACHE_ALIGN, ctor, None)))
    c = box["c"]

    def task() -> None:
        for size in (1, 31, 32, 100, 128, 200, 4096, 5000, 8192):
            p = kmalloc(size, GFP_KERNEL)
            memset(p, 0x11, size)
            o = kmem_cache_alloc(c, GFP_KERNEL)
            assert read_u32(o) == 0xC0FFEE
            kmem_cache_free(c, o)
            kfree(p)

    def irq(irqno: int, dev: Any) -> None:
        p = kmalloc(64, GFP_ATOMIC)
        if p is not None:
            memset(p, 0x22, 64)
            kfree(p)

    def irq_source() -> None:
        request_irq(5, irq, 0, "selftest", None)
        for _ in range(3):
            raise_irq(5)
            msleep(1)
        free_irq(5, None)

    m.run(task, task, irq_source)
    m.run(lambda: kmem_cache_destroy(c))


def test_correct_traffic_with_slab_debugging_reports_nothing() -> None:
    explore(_debugged_traffic, seeds=range(3), policies=("random", "pct", "free"), slab_debug=True, cpus=2)


def _debug_initial(bug: bool, box: dict[str, Any]) -> None:
    """A cache created with SLAB_DEBUG_INITIAL: 2.6.11's free calls the constructor with
    SLAB_CTOR_VERIFY, and this one checks the object is back in its constructed state (a
    driver that frees it with its state changed has a bug its constructor names)."""
    def ctor(objp: int, cachep: Any, flags: int) -> None:
        if flags & SLAB_CTOR_VERIFY:
            box["verified"] = box.get("verified", 0) + 1
            if read_u32(objp) != 0xC0FFEE:
                printk(f"<3>ctor_cache: object {objp:08x} freed in a bad state")
                BUG()
            return
        write_u32(objp, 0xC0FFEE)

    c = kmem_cache_create("ctor_cache", 64, 0, SLAB_DEBUG_INITIAL, ctor, None)
    p = kmem_cache_alloc(c, GFP_KERNEL)
    write_u32(p, 1)  # in use
    if not bug:
        write_u32(p, 0xC0FFEE)  # back to the constructed state before the free
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS[:3])
def test_slab_debug_initial_calls_the_constructor_to_verify_at_free(policy: str, seed: int) -> None:
    m = Machine(cpus=2, slab_debug=True, policy=policy, seed=seed)
    box: dict[str, Any] = {}
    m.run(partial(_debug_initial, True, box))
    assert box["verified"] == 1
    assert [r.kind for r in m.reports] == ["bug"]
    m = Machine(cpus=2, slab_debug=True, policy=policy, seed=seed)
    box = {}
    m.run(partial(_debug_initial, False, box))
    assert box["verified"] == 1 and m.reports == []
    m = Machine(cpus=2, policy=policy, seed=seed)  # without DEBUG the flag does nothing (2.6.11)
    box = {}
    m.run(partial(_debug_initial, True, box))
    assert "verified" not in box and m.reports == []


def test_slab_corruption_dumps_the_bad_lines_and_the_neighbours_as_check_poison_obj() -> None:
    """2.6.11's check_poison_obj: "Slab corruption: start=%p, len=%d", print_objinfo (red
    zones, last user), each 16-byte line holding a bad byte ("%03x:" " %02x"...) and no
    other, then "Prev obj:" / "Next obj:" with their red zones, last user and two lines."""
    box: dict[str, Any] = {}

    def corrupt() -> None:
        c = kmem_cache_create("test_cache", 200, 0, 0, None, None)
        a, b, d = (kmem_cache_alloc(c, GFP_KERNEL) for _ in range(3))
        kmem_cache_free(c, b)
        write_u8(b + 8, 0x41)  # row 000
        write_u8(b + 100, 0x42)  # row 060: the rows between are intact
        box.update(c=c, objs=sorted((a, b, d)), b=b)
        kmem_cache_free(c, a)
        kmem_cache_free(c, d)
        kmem_cache_destroy(c)  # slab_destroy checks the poison of every object

    m = Machine(cpus=1, slab_debug=True)
    m.run(corrupt)
    (rep,) = m.reports
    lines, b, objsize = rep.lines, box["b"], box["c"].objsize
    i = lines.index(f"Slab corruption: start={b:08x}, len=200")
    assert lines[i + 1] == "Redzone: 0x5a2cf071/0x5a2cf071."
    assert lines[i + 2].startswith("Last user: [<")
    assert lines[i + 3] == "000: 6b 6b 6b 6b 6b 6b 6b 6b 41 6b 6b 6b 6b 6b 6b 6b"
    assert lines[i + 4] == "060: 6b 6b 6b 6b 42 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b"
    assert lines[i + 5] == f"Prev obj: start={b - objsize:08x}, len=200"
    assert lines[i + 6:i + 8] == ["Redzone: 0x5a2cf071/0x5a2cf071.", lines[i + 7]] and lines[i + 7].startswith("Last")
    assert lines[i + 8].startswith("000: 6b 6b") and lines[i + 9].startswith("010: 6b 6b")
    assert lines[i + 10] == f"Next obj: start={b + objsize:08x}, len=200"
    assert box["objs"] == [b - objsize, b, b + objsize]


def test_the_page_line_of_a_multi_page_slab_counts_on_its_head() -> None:
    """The buggy address in the last page of a 32-page slab (size-131072): the page line
    gives the head's refcount (the folio's, as dump_page prints it), not the tail's 0."""
    box: dict[str, int] = {}

    def kmalloc_large_oob_right() -> None:
        ptr = kmalloc(131072 - 256, GFP_KERNEL)
        box["addr"] = ptr + 131072 - 256
        write_u8(box["addr"], 0)
        kfree(ptr)

    m = Machine(cpus=1, kasan=True)
    m.run(kmalloc_large_oob_right)
    (rep,) = m.reports
    pfn = (box["addr"] - 0xC0000000) >> 12
    assert f"page: refcount:1 pfn:{pfn:#x} slab" in rep.lines


def test_kmemleak_annotation_of_an_unknown_object_warns_in_kmemleaks_words() -> None:
    """kmemleak_not_leak()/kmemleak_ignore() of a pointer no tracked block starts at:
    kmemleak_warn("Trying to color unknown object at 0x%08lx as %s") of paint_ptr()."""
    box: dict[str, int] = {}

    def annotate() -> None:
        p = kmalloc(64, GFP_KERNEL)
        box["p"] = p
        kmemleak_not_leak(p + 8)
        kmemleak_ignore(p + 8)
        kfree(p)

    m = Machine(cpus=1, kmemleak=True)
    m.run(annotate)
    m.check()
    want = [f"kmemleak: Trying to color unknown object at 0x{box['p'] + 8:08x} as {c}" for c in ("Grey", "Black")]
    assert [ln for ln in m.dmesg if "unknown object" in ln and not ln.endswith(tuple(want))] == []
    assert sum(ln.endswith(w) for ln in m.dmesg for w in want) == 2
    assert m.reports == []


@pytest.mark.parametrize("policy,seed", [("random", 0), ("virtual", 3)])
def test_the_vmalloc_churn_stress_scenario_is_clean_under_kasan(policy: str, seed: int) -> None:
    from percpu_kmem.scenarios import load_scenarios
    (sc,) = load_scenarios(Path(__file__).parents[2] / "stress" / "vmalloc_churn.py")
    m = sc.make_machine(policy=policy, seed=seed, kasan=True)
    sc.run(m)
    m.check()
    assert m.reports == []


# mm/slub_kunit.c (5.14 and later), the same checks on caches created with the debug flags;
# validate_slab_cache() has no counterpart: the free, or the destroy, checks instead.
def test_clobber_zone(bug: bool) -> None:
    s = kmem_cache_create("TestSlub_RZ_alloc", 64, 0, SLAB_RED_ZONE, None, None)
    p = kmem_cache_alloc(s, GFP_KERNEL)
    write_u8(p + (64 if bug else 63), 0x12)
    kmem_cache_free(s, p)
    kmem_cache_destroy(s)


def test_first_word(bug: bool) -> None:
    s = kmem_cache_create("TestSlub_1th_word_free", 64, 0, SLAB_POISON, None, None)
    p = kmem_cache_alloc(s, GFP_KERNEL)
    if not bug:
        write_u8(p, 0x78)
    kmem_cache_free(s, p)
    if bug:
        write_u8(p, 0x78)
    kmem_cache_destroy(s)


def test_clobber_50th_byte(bug: bool) -> None:
    s = kmem_cache_create("TestSlub_50th_word_free", 64, 0, SLAB_POISON, None, None)
    p = kmem_cache_alloc(s, GFP_KERNEL)
    if not bug:
        write_u8(p + 50, 0x9A)
    kmem_cache_free(s, p)
    if bug:
        write_u8(p + 50, 0x9A)
    kmem_cache_destroy(s)


def test_clobber_redzone_free(bug: bool) -> None:
    s = kmem_cache_create("TestSlub_RZ_free", 64, 0, SLAB_RED_ZONE, None, None)
    p = kmem_cache_alloc(s, GFP_KERNEL)
    if not bug:
        write_u8(p + 63, 0xAB)
    kmem_cache_free(s, p)
    if bug:
        write_u8(p + 64, 0xAB)
    kmem_cache_destroy(s)


def test_kmalloc_redzone_access(bug: bool) -> None:
    p = kmalloc(18 if bug else 20, GFP_KERNEL)
    write_u8(p + 18, 0xAB)
    write_u8(p + 19, 0xAB)
    kfree(p)


SLUB_KUNIT = [
    (test_clobber_zone, "slab_redzone", "BUG TestSlub_RZ_alloc (Not tainted): Right Redzone overwritten"),
    (test_first_word, "slab_poison", "BUG TestSlub_1th_word_free (Not tainted): Poison overwritten"),
    (test_clobber_50th_byte, "slab_poison", "BUG TestSlub_50th_word_free (Not tainted): Poison overwritten"),
    (test_clobber_redzone_free, "slab_redzone", "BUG TestSlub_RZ_free (Not tainted): Right Redzone overwritten"),
    (test_kmalloc_redzone_access, "slab_redzone", "BUG size-32 (Not tainted): kmalloc Redzone overwritten"),
]
for _case, _, _ in SLUB_KUNIT:  # the kernel's names, not pytest's tests
    _case.__test__ = False  # type: ignore[attr-defined]


@pytest.mark.parametrize("policy,seed", POLICY_SEEDS[:2])
@pytest.mark.parametrize("case,kind,bug_line", SLUB_KUNIT, ids=[c[0].__name__ for c in SLUB_KUNIT])
def test_slub_kunit_case(case: Callable[[bool], None], kind: str, bug_line: str, policy: str, seed: int) -> None:
    slab_debug = case is test_kmalloc_redzone_access  # its cache is a kmalloc cache: debugged machine-wide
    m = Machine(cpus=2, slab_debug=slab_debug, policy=policy, seed=seed)
    m.run(partial(case, True), names=[case.__name__])
    m.check()
    assert [(r.kind, r.lines[1]) for r in m.reports] == [(kind, bug_line)]
    m = Machine(cpus=2, slab_debug=slab_debug, policy=policy, seed=seed)
    m.run(partial(case, False), names=[case.__name__])
    m.check()
    assert m.reports == []


def _random_program(m: Machine, seed: int) -> list[tuple[Any, ...]]:
    """Random kmalloc/kmem_cache traffic with reads and memsets around the objects, freed
    ones included. The oracle: an access is correct if every byte of it lies in the
    accessible part of a live object (or of a freed SLAB_DESTROY_BY_RCU object whose slab
    is still its cache's); KASAN must report exactly the others. (An access landing in
    another live object is correct for the oracle too: the generic mode cannot tell, nor
    can the model.) Returns the disagreements."""
    import random

    from percpu_kmem.mm.layout import PG_slab
    rng = random.Random(seed)
    problems: list[tuple[Any, ...]] = []

    def body() -> None:
        caches = [kmem_cache_create(f"c{i}", rng.choice([20, 60, 123, 200, 333]), 0,
                                    rng.choice([0, SLAB_HWCACHE_ALIGN, SLAB_DESTROY_BY_RCU]), None, None)
                  for i in range(3)]
        live: dict[int, tuple[int, Any]] = {}
        rcu_freed: dict[int, tuple[int, Any]] = {}
        freed: list[int] = []
        mem = m.mem
        for step in range(200):
            op = rng.random()
            if op < 0.3 or not live:
                if rng.random() < 0.5:
                    n = rng.choice([1, 7, 8, 15, 16, 31, 32, 33, 100, 128, 250, 256, 1000, 4000])
                    p = kmalloc(n, GFP_KERNEL)
                    live[p] = (n, None)
                else:
                    c = rng.choice(caches)
                    p = kmem_cache_alloc(c, GFP_KERNEL)
                    live[p] = (c.object_size, c)
                rcu_freed.pop(p, None)
            elif op < 0.5:
                p = rng.choice(list(live))
                n, c = live.pop(p)
                if c is None:
                    kfree(p)
                else:
                    kmem_cache_free(c, p)
                    if c.flags & SLAB_DESTROY_BY_RCU:
                        rcu_freed[p] = (n, c)
                freed.append(p)
            else:
                base = rng.choice(freed) if freed and rng.random() < 0.3 else rng.choice(list(live))
                n = live[base][0] if base in live else 8
                a, size = base + rng.randint(-12, n + 12), rng.choice([1, 2, 4, 8, 16, 33])
                if any(not mem.flags[(x - PAGE_OFFSET) >> 12] & PG_slab for x in (a, a + size - 1)):
                    continue  # off the slab: pages have their own rules

                def accessible(x: int) -> bool:
                    if any(q <= x < q + ln for q, (ln, _) in live.items()):
                        return True
                    return any(q <= x < q + ln and mem.owner[(q - PAGE_OFFSET) >> 12] == c.id
                               and mem.flags[(q - PAGE_OFFSET) >> 12] & PG_slab for q, (ln, c) in rcu_freed.items())

                ok = all(accessible(x) for x in range(a, a + size))
                before = m.kasan.nr_reports  # type: ignore[union-attr]
                if rng.random() < 0.5:
                    mem_read(a, size)
                else:
                    memset(a, 0x5C, size)
                if (m.kasan.nr_reports != before) == ok:  # type: ignore[union-attr]
                    problems.append((step, hex(a), size, "reported" if ok else "missed"))
        for p, (_n, c) in list(live.items()):
            if c is None:
                kfree(p)
            else:
                kmem_cache_free(c, p)
        for c in caches:
            kmem_cache_destroy(c)

    m.run(body)
    return problems


@pytest.mark.parametrize("seed", range(6))
def test_random_traffic_kasan_reports_exactly_the_bad_accesses(seed: int) -> None:
    policy = ("random", "pct", "free", "virtual")[seed % 4]
    m = Machine(cpus=2, kasan=True, slab_debug=bool(seed % 2), policy=policy, seed=seed)
    assert _random_program(m, seed) == []
    m.check()


@pytest.mark.parametrize("seed", range(4))
def test_random_pointer_graphs_kmemleak_reports_exactly_the_unreachable(seed: int) -> None:
    """Forty kmalloc and vmalloc blocks pointing at each other (anywhere inside: aliases),
    six of them from a page standing for a driver's globals, some pointers cleared again:
    the scan reports exactly the blocks no chain from the page reaches."""
    import random
    rng = random.Random(seed)
    sizes: dict[int, int] = {}  # block -> the size kmemleak tracks
    edges: dict[tuple[int, int], int] = {}
    roots: list[int] = []

    def body() -> None:
        root = __get_free_page(GFP_KERNEL)
        for _ in range(40):
            if rng.random() < 0.7:
                n = rng.choice([16, 32, 64, 100, 256])
                sizes[kzalloc(n, GFP_KERNEL)] = next(s for s in (32, 64, 128, 256) if n <= s)
            else:  # (zeroed: no stale word may point anywhere)
                n = rng.choice([64, 5000])
                v = vmalloc(n)
                memset(v, 0, n)
                sizes[v] = n
        blocks = list(sizes)
        for p in blocks:
            for slot in range(2):
                t = rng.choice(blocks)
                target = t + rng.randrange(sizes[t]) if rng.random() < 0.5 else 0
                write_u32(p + 4 * slot, target)
                if target:
                    edges[(p, slot)] = target
        for r in range(6):
            roots.append(rng.choice(blocks))
            write_u32(root + 4 * r, roots[-1])
        for _ in range(10):
            p, slot = rng.choice(blocks), rng.randrange(2)
            write_u32(p + 4 * slot, 0)
            edges.pop((p, slot), None)

    m = Machine(cpus=2, kmemleak=True, policy=("random", "pct", "free", "virtual")[seed], seed=seed)
    m.run(body)
    leaks = {int(LEAK_HEAD.match(t.splitlines()[0]).group(1), 16) for t in m.kmemleak_scan()}  # type: ignore[union-attr]

    def block_of(a: int) -> int:
        return next(p for p, n in sizes.items() if p <= a < p + n)

    reached: set[int] = set()
    work = list(roots)
    while work:
        p = work.pop()
        if p not in reached:
            reached.add(p)
            work += [block_of(edges[(p, s)]) for s in range(2) if (p, s) in edges]
    assert leaks == set(sizes) - reached
