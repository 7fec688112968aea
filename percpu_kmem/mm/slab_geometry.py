"""Slab geometry: the flags of kmem_cache_create and how a cache is laid out.

Models 2.6.11 mm/slab.c's layout arithmetic: ``cache_estimate`` (objects per slab and
bytes left over, on- or off-slab management), the alignment rules of
``kmem_cache_create`` (SLAB_HWCACHE_ALIGN, word alignment for red zones and the user
word), the order loop (grow the slab until at most 1/8 is wasted, within
``slab_break_gfp_order`` and what an off-slab header cache can index), colouring, and
``enable_cpucache``'s tunables from the object size. All plain ints: the results equal
the kernel's numbers (size-32 gets 113 objects per slab, size-256 15).

Kept: every flag and constant of include/linux/slab.h and mm/slab.c of 2.6.11 that the
layout uses, under the kernel's names. Simplified: i386 only (4-byte words, 32-byte
cache lines); the geometry of a given (size, align, flags) is remembered, since every
machine lays out the same size-N caches.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from .gfp import GFP_DMA, GFP_KERNEL, GFP_NO_GROW
from .layout import ALIGN, L1_CACHE_BYTES, PAGE_SIZE

# -- flags (include/linux/slab.h, 2.6.11) ---------------------------------------------------
SLAB_DEBUG_FREE: Final = 0x00000100
SLAB_DEBUG_INITIAL: Final = 0x00000200
SLAB_RED_ZONE: Final = 0x00000400
SLAB_POISON: Final = 0x00000800
SLAB_NO_REAP: Final = 0x00001000
SLAB_HWCACHE_ALIGN: Final = 0x00002000
SLAB_CACHE_DMA: Final = 0x00004000
SLAB_MUST_HWCACHE_ALIGN: Final = 0x00008000
SLAB_STORE_USER: Final = 0x00010000
SLAB_RECLAIM_ACCOUNT: Final = 0x00020000
SLAB_PANIC: Final = 0x00040000
SLAB_DESTROY_BY_RCU: Final = 0x00080000
CREATE_MASK: Final = (SLAB_DEBUG_FREE | SLAB_DEBUG_INITIAL | SLAB_RED_ZONE | SLAB_POISON | SLAB_NO_REAP
                      | SLAB_HWCACHE_ALIGN | SLAB_CACHE_DMA | SLAB_MUST_HWCACHE_ALIGN | SLAB_STORE_USER
                      | SLAB_RECLAIM_ACCOUNT | SLAB_PANIC | SLAB_DESTROY_BY_RCU)
SLAB_DEBUG_FLAGS: Final = SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
#: off-slab management (mm/slab.c CFLGS_OFF_SLAB)
CFLGS_OFF_SLAB: Final = 0x80000000

# constructor flags
SLAB_CTOR_CONSTRUCTOR: Final = 0x001
SLAB_CTOR_ATOMIC: Final = 0x002
SLAB_CTOR_VERIFY: Final = 0x004

# GFP aliases of the era
SLAB_ATOMIC: Final = 0x20
SLAB_KERNEL: Final = GFP_KERNEL
SLAB_DMA: Final = GFP_DMA
SLAB_NO_GROW: Final = GFP_NO_GROW

# -- constants (mm/slab.c, include/linux/poison.h, i386) --------------------------------------
BYTES_PER_WORD: Final = 4
#: sizeof(struct slab) on i386: list_head, colouroff, s_mem, inuse, free
SLAB_HEADER_SIZE: Final = 24
BUFCTL_SIZE: Final = 4
SLAB_LIMIT: Final = 0xFFFFFFFD
MAX_OBJ_ORDER: Final = 5
MAX_GFP_ORDER: Final = 5
BREAK_GFP_ORDER_HI: Final = 1
BREAK_GFP_ORDER_LO: Final = 0
#: the largest object a cache may hold: (1 << MAX_OBJ_ORDER) pages
MAX_OBJ_SIZE: Final = (1 << MAX_OBJ_ORDER) * PAGE_SIZE

#: include/linux/kmalloc_sizes.h with PAGE_SIZE 4096 and L1_CACHE_BYTES 32
KMALLOC_SIZES: Final = (32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
KMALLOC_MAX_SIZE: Final = KMALLOC_SIZES[-1]
#: ARCH_KMALLOC_FLAGS
ARCH_KMALLOC_FLAGS: Final = SLAB_HWCACHE_ALIGN


@lru_cache(maxsize=4096)
def cache_estimate(gfporder: int, size: int, align: int, flags: int) -> tuple[int, int]:
    """(objects per slab, bytes left over) for a slab of ``2**gfporder`` pages (pure, so
    remembered: every boot lays out the same thirty size-N caches)."""
    wastage = PAGE_SIZE << gfporder
    base = extra = 0
    if not flags & CFLGS_OFF_SLAB:
        base, extra = SLAB_HEADER_SIZE, BUFCTL_SIZE
    i = 0
    while i * size + ALIGN(base + i * extra, align) <= wastage:
        i += 1
    if i > 0:
        i -= 1
    i = min(i, SLAB_LIMIT)
    wastage -= i * size + ALIGN(base + i * extra, align)
    return i, wastage


class Geometry:
    """The layout kmem_cache_create works out for one cache (all plain ints)."""

    __slots__ = ("objsize", "reallen", "dbghead", "align", "flags", "gfporder", "num", "left_over",
                 "slab_size", "colour", "colour_off")

    def __init__(self, size: int, align: int, flags: int, *, slab_break_order: int, offslab_limit: int) -> None:
        if size & (BYTES_PER_WORD - 1):
            size = ALIGN(size, BYTES_PER_WORD)
        if flags & SLAB_HWCACHE_ALIGN:
            ralign = L1_CACHE_BYTES
            while size <= ralign // 2:
                ralign //= 2
        else:
            ralign = BYTES_PER_WORD
        if ralign < align:
            ralign = align
            if ralign > BYTES_PER_WORD:  # redzoning and user store need word alignment
                flags &= ~(SLAB_RED_ZONE | SLAB_STORE_USER)
        align = ralign
        self.reallen = size
        self.dbghead = 0
        if flags & SLAB_RED_ZONE:
            align = BYTES_PER_WORD
            self.dbghead = BYTES_PER_WORD
            size += 2 * BYTES_PER_WORD
        if flags & SLAB_STORE_USER:
            align = BYTES_PER_WORD
            size += BYTES_PER_WORD
        if size >= PAGE_SIZE >> 3:
            flags |= CFLGS_OFF_SLAB
        size = ALIGN(size, align)
        if flags & SLAB_RECLAIM_ACCOUNT and size <= PAGE_SIZE:
            order = 0
            num, left = cache_estimate(0, size, align, flags)
        else:
            order, num, left = self._choose_order(size, align, flags, slab_break_order, offslab_limit)
        slab_size = ALIGN(num * BUFCTL_SIZE + SLAB_HEADER_SIZE, align)
        if flags & CFLGS_OFF_SLAB and left >= slab_size:
            flags &= ~CFLGS_OFF_SLAB
            left -= slab_size
        if flags & CFLGS_OFF_SLAB:
            slab_size = num * BUFCTL_SIZE + SLAB_HEADER_SIZE
        colour_off = max(L1_CACHE_BYTES, align)
        self.objsize = size
        self.align = align
        self.flags = flags
        self.gfporder = order
        self.num = num
        self.left_over = left
        self.slab_size = slab_size
        self.colour_off = colour_off
        self.colour = left // colour_off

    @staticmethod
    @lru_cache(maxsize=4096)
    def _choose_order(size: int, align: int, flags: int, break_order: int,
                      offslab_limit: int) -> tuple[int, int, int]:
        """The order loop of kmem_cache_create: grow the slab until waste <= 1/8."""
        order = 0
        while True:
            num, left = cache_estimate(order, size, align, flags)
            if order >= MAX_GFP_ORDER:
                break
            if num:
                if flags & CFLGS_OFF_SLAB and num > offslab_limit:
                    order -= 1  # this many bufctls would not fit the off-slab header cache
                    num, left = cache_estimate(order, size, align, flags)
                    break
                if order >= break_order:
                    break
                if left * 8 <= PAGE_SIZE << order:
                    break
            order += 1
        return order, num, left


def enable_cpucache_tunables(objsize: int, nr_cpus: int, debug: bool) -> tuple[int, int, int]:
    """enable_cpucache(): (limit, batchcount, shared) from the object size."""
    if objsize > 131072:
        limit = 1
    elif objsize > PAGE_SIZE:
        limit = 8
    elif objsize > 1024:
        limit = 24
    elif objsize > 256:
        limit = 54
    else:
        limit = 120
    shared = 8 if objsize <= PAGE_SIZE and nr_cpus > 1 else 0
    if debug:  # "large batchcount lead to excessively long periods with disabled local interrupts"
        limit = min(limit, 32)
    return limit, (limit + 1) // 2, shared


__all__ = ["SLAB_DEBUG_FREE", "SLAB_DEBUG_INITIAL", "SLAB_RED_ZONE", "SLAB_POISON", "SLAB_NO_REAP",
           "SLAB_HWCACHE_ALIGN", "SLAB_CACHE_DMA", "SLAB_MUST_HWCACHE_ALIGN", "SLAB_STORE_USER",
           "SLAB_RECLAIM_ACCOUNT", "SLAB_PANIC", "SLAB_DESTROY_BY_RCU", "CREATE_MASK", "SLAB_DEBUG_FLAGS",
           "CFLGS_OFF_SLAB", "SLAB_CTOR_CONSTRUCTOR", "SLAB_CTOR_ATOMIC", "SLAB_CTOR_VERIFY", "SLAB_ATOMIC",
           "SLAB_KERNEL", "SLAB_DMA", "SLAB_NO_GROW", "BYTES_PER_WORD", "SLAB_HEADER_SIZE", "BUFCTL_SIZE",
           "SLAB_LIMIT", "MAX_OBJ_ORDER", "MAX_GFP_ORDER", "BREAK_GFP_ORDER_HI", "BREAK_GFP_ORDER_LO",
           "MAX_OBJ_SIZE", "KMALLOC_SIZES", "KMALLOC_MAX_SIZE", "ARCH_KMALLOC_FLAGS", "cache_estimate",
           "Geometry", "enable_cpucache_tunables"]
