"""The layout of physical memory: page size, orders, zones and the page flags (a leaf module).

Models include/asm-i386/page.h (``PAGE_SHIFT``, ``PAGE_OFFSET``: the 3G/1G split),
include/linux/mmzone.h (``MAX_ORDER``, the zones and their PC limits: ZONE_DMA below
16 MB, ZONE_NORMAL up to 896 MB, ZONE_HIGHMEM above), include/linux/page-flags.h (the
``PG_*`` bits, 2.6.11 numbering), include/asm-generic/getorder.h (``get_order``),
include/linux/kernel.h (``ALIGN``) and lib/cmdline.c's ``memparse`` (``parse_size``, how
``mem=64M`` is read).

Kept: the kernel's names and values; the page-flag names today's bad-page reports print.
Simplified: ``PG_*`` are masks, not bit numbers (the model tests ``flags & PG_lru``);
``PG_anon`` and ``PG_vmalloc`` are model-only bits (see mm/physmem.py);
``get_order(0)``, undefined in the kernel, is refused.

Everything here is a constant or a pure function: mm/physmem.py (pages, zones, nodes)
and mm/buddy.py both build on it, and neither imports the other for a constant.
"""

from __future__ import annotations

import re
from typing import Final

from ..runtime.errors import KmemUsageError

# --------------------------------------------------------------------------------------
# Constants (include/asm-i386/page.h, include/linux/mmzone.h)
# --------------------------------------------------------------------------------------

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
#: Kernel ``PAGE_MASK``: clears the offset inside a page.
PAGE_MASK: Final = ~(PAGE_SIZE - 1)
#: Exclusive, as in 2.6: orders are ``0 .. MAX_ORDER-1`` (modern kernels call the largest
#: order ``MAX_PAGE_ORDER`` and count it inclusively).
MAX_ORDER: Final = 11
#: Pages in the largest buddy block (4 MiB with 4 KiB pages).
MAX_ORDER_NR_PAGES: Final = 1 << (MAX_ORDER - 1)
#: CONFIG_X86_L1_CACHE_SHIFT=5 (Pentium Pro/II/III, the book's machines): 32-byte lines, so the
#: kmalloc size classes include size-96 and size-192 (include/linux/kmalloc_sizes.h).
L1_CACHE_SHIFT: Final = 5
L1_CACHE_BYTES: Final = 1 << L1_CACHE_SHIFT
SMP_CACHE_BYTES: Final = L1_CACHE_BYTES
#: Start of the kernel's direct map of low memory (i386 3G/1G split).
PAGE_OFFSET: Final = 0xC0000000
MAX_DMA_ADDRESS_PHYS: Final = 16 << 20
LOWMEM_LIMIT_PHYS: Final = 896 << 20
MAX_DMA_PFN: Final = MAX_DMA_ADDRESS_PHYS >> PAGE_SHIFT  # 4096
MAX_LOWMEM_PFN: Final = LOWMEM_LIMIT_PHYS >> PAGE_SHIFT  # 229376
#: i386 with PAE addresses 36 bits of physical memory.
MAX_PHYS_BYTES: Final = 64 << 30
#: CONFIG_NODES_SHIFT=6; zone ids must also fit the one-byte zone id array.
MAX_NUMNODES: Final = 64

ZONE_DMA: Final = 0
ZONE_NORMAL: Final = 1
ZONE_HIGHMEM: Final = 2
MAX_NR_ZONES: Final = 3
ZONE_NAMES: Final = ("DMA", "Normal", "HighMem")
#: Physical pfn range of each zone type on a PC: [start, end); None = no upper limit.
ZONE_PFN_LIMITS: Final = ((0, MAX_DMA_PFN), (MAX_DMA_PFN, MAX_LOWMEM_PFN), (MAX_LOWMEM_PFN, None))

# --------------------------------------------------------------------------------------
# Page flags (include/linux/page-flags.h, 2.6.11 bit numbers). Masks, not bit numbers:
# ``flags & PG_slab`` is the Python spelling of ``PageSlab(page)``.
# --------------------------------------------------------------------------------------

PG_locked: Final = 1 << 0  # locked for I/O
PG_error: Final = 1 << 1
PG_referenced: Final = 1 << 2
PG_uptodate: Final = 1 << 3
PG_dirty: Final = 1 << 4
PG_lru: Final = 1 << 5  # on the active or inactive LRU list
PG_active: Final = 1 << 6
PG_slab: Final = 1 << 7  # owned by the slab allocator
PG_highmem: Final = 1 << 8  # not permanently mapped: kmap it
PG_checked: Final = 1 << 9
PG_arch_1: Final = 1 << 10
PG_reserved: Final = 1 << 11  # never freed, never swapped (boot, bootmem, kernel image)
PG_private: Final = 1 << 12  # "has something at ->private"; on a free buddy block's head: its order is valid
PG_writeback: Final = 1 << 13
PG_nosave: Final = 1 << 14
PG_compound: Final = 1 << 15  # part of a compound (__GFP_COMP) page
PG_swapcache: Final = 1 << 16
PG_mappedtodisk: Final = 1 << 17
PG_reclaim: Final = 1 << 18  # to be reclaimed asap
PG_nosave_free: Final = 1 << 19
#: Model-only: an anonymous page (2.6 encodes this as PAGE_MAPPING_ANON in page->mapping).
PG_anon: Final = 1 << 20
#: Model-only: mapped into the vmalloc window by vmalloc() or vmap() (mm/vmalloc.py); the
#: page allocator refuses to free such a page (a "Bad page state" report).
PG_vmalloc: Final = 1 << 21

PAGE_FLAG_NAMES: Final = (
    (PG_locked, "locked"),
    (PG_error, "error"),
    (PG_referenced, "referenced"),
    (PG_uptodate, "uptodate"),
    (PG_dirty, "dirty"),
    (PG_lru, "lru"),
    (PG_active, "active"),
    (PG_slab, "slab"),
    (PG_highmem, "highmem"),
    (PG_checked, "checked"),
    (PG_arch_1, "arch_1"),
    (PG_reserved, "reserved"),
    (PG_private, "private"),
    (PG_writeback, "writeback"),
    (PG_nosave, "nosave"),
    (PG_compound, "compound"),
    (PG_swapcache, "swapcache"),
    (PG_mappedtodisk, "mappedtodisk"),
    (PG_reclaim, "reclaim"),
    (PG_nosave_free, "nosave_free"),
    (PG_anon, "anon"),
    (PG_vmalloc, "vmalloc"),
)
_KNOWN_FLAGS: Final = sum(bit for bit, _ in PAGE_FLAG_NAMES)


def format_page_flags(flags: int) -> str:
    """Name the set bits the way modern ``%pGp`` does: ``"slab|reserved"``, or ``""``.

    Bad-page reports print ``flags:0x%08lx`` (2.6) and these names (today); unknown bits
    are shown as hex so that nothing set is hidden.
    """
    names = [name for bit, name in PAGE_FLAG_NAMES if flags & bit]
    if flags & ~_KNOWN_FLAGS:
        names.append(hex(flags & ~_KNOWN_FLAGS))
    return "|".join(names)


# --------------------------------------------------------------------------------------
# Sizes and orders
# --------------------------------------------------------------------------------------

_UNIT_SHIFT: Final = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_SIZE_RE: Final = re.compile(
    r"(?P<num>0[xX][0-9a-fA-F]+|[0-9]+)\s*(?:(?P<unit>[kKmMgGtTpPeE])(?:[iI]?[bB])?|[bB])?"
)


def parse_size(size: int | str) -> int:
    """Turn ``"64M"``, ``"16GiB"``, ``"4096"``, ``"0x1000"`` or an int into bytes.

    Units are binary, as the kernel's ``memparse`` (``mem=64M``) reads them: K, M, G, T,
    P, E, optionally followed by ``B`` or ``iB`` and in either case.

    Raises:
        ValueError: negative numbers, fractions, unknown units, empty strings.
        TypeError: anything that is neither an int nor a str.
    """
    if isinstance(size, bool) or not isinstance(size, (int, str)):
        raise TypeError(f"size must be an int or a string like '64M', not {size!r}")
    if isinstance(size, int):
        if size < 0:
            raise KmemUsageError(f"size(={size}) must be >= 0")
        return size
    m = _SIZE_RE.fullmatch(size.strip())
    if m is None:
        raise KmemUsageError(
            f"cannot parse size {size!r}: expected a whole number with an optional binary "
            "unit K, M, G, T, P or E (e.g. '4096', '64K', '64M', '16GiB', '0x1000')"
        )
    return int(m["num"], 0) << _UNIT_SHIFT[(m["unit"] or "").lower()]


def get_order(size: int) -> int:
    """Smallest order whose block of ``PAGE_SIZE << order`` bytes holds ``size`` bytes.

    The kernel's ``__get_order``: ``size--; size >>= PAGE_SHIFT; return fls(size)``.
    The kernel leaves size 0 undefined; here it is refused.
    """
    if size.__class__ is not int or size <= 0:
        from ..runtime.validate import check_int
        check_int("get_order", "size", size, 1, what="an int (undefined for 0)")
    return ((size - 1) >> PAGE_SHIFT).bit_length()


def ALIGN(x: int, a: int) -> int:
    """The kernel's ``ALIGN(x, a)``: ``x`` rounded up to a multiple of ``a`` (a power of two)."""
    return (x + a - 1) & ~(a - 1)


__all__ = ["PAGE_SHIFT", "PAGE_SIZE", "PAGE_MASK", "MAX_ORDER", "MAX_ORDER_NR_PAGES", "L1_CACHE_SHIFT",
           "L1_CACHE_BYTES", "SMP_CACHE_BYTES", "PAGE_OFFSET", "MAX_DMA_ADDRESS_PHYS", "LOWMEM_LIMIT_PHYS",
           "MAX_DMA_PFN", "MAX_LOWMEM_PFN", "MAX_PHYS_BYTES", "MAX_NUMNODES", "ZONE_DMA", "ZONE_NORMAL",
           "ZONE_HIGHMEM", "MAX_NR_ZONES", "ZONE_NAMES", "ZONE_PFN_LIMITS", "PG_locked", "PG_error",
           "PG_referenced", "PG_uptodate", "PG_dirty", "PG_lru", "PG_active", "PG_slab", "PG_highmem",
           "PG_checked", "PG_arch_1", "PG_reserved", "PG_private", "PG_writeback", "PG_nosave",
           "PG_compound", "PG_swapcache", "PG_mappedtodisk", "PG_reclaim", "PG_nosave_free", "PG_anon",
           "PG_vmalloc", "PAGE_FLAG_NAMES", "format_page_flags", "parse_size", "get_order", "ALIGN"]
