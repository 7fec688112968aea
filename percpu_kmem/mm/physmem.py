"""Physical memory of one simulated machine: pages, struct page state, nodes, zones.

Models Linux 2.6.10/2.6.11 on i386 (a 3G/1G split, HIGHMEM, discontigmem NUMA). The
layout constants (page size, orders, zone limits, the ``PG_*`` bits, ``get_order``) live
in mm/layout.py and are importable from here too; this module holds the state:

- include/linux/mmzone.h: ``struct zone``, ``pg_data_t`` (a :class:`Node`), ``MAX_ORDER``,
  ``ZONE_DMA`` / ``ZONE_NORMAL`` / ``ZONE_HIGHMEM`` and the PC layout ("ZONE_DMA < 16 MB
  ISA DMA capable memory, ZONE_NORMAL 16-896 MB direct mapped by the kernel,
  ZONE_HIGHMEM > 896 MB only page cache and user processes");
- include/linux/mm.h, include/linux/page-flags.h: ``struct page`` and the ``PG_*`` bits;
- mm/page_alloc.c ``memmap_init_zone``: every page starts reserved with a count of 1,
  and mm/bootmem.c ``free_all_bootmem``: every page nobody reserved is then handed to
  the buddy allocator (:meth:`PhysMem.free_all_to_buddy`);
- include/asm-i386/page.h ``PAGE_OFFSET``, ``__pa``/``__va``; include/asm-generic/getorder.h
  ``get_order``.

Simplified, on purpose:

- No holes: every pfn in ``0 .. nr_pages-1`` exists, so ``pfn_valid`` is a range check and a
  zone's present pages equal its spanned pages.
- ``struct page`` is a set of parallel arrays indexed by pfn (:attr:`PhysMem.flags`,
  ``order``, ``count``, ``zone_id``, ``owner``, ``private``), so a 16 GiB machine costs a few
  dozen bytes per page and no Python object per page. :class:`Page` objects are handles
  made on demand.
- ``count`` holds the reference count itself (2.6 stores ``_count`` as count - 1).
- The buddy order of a free block lives in ``order`` (2.6 keeps it in ``page->private``);
  ``owner`` stands in for the pointer-valued fields upper layers need (``page->lru`` links
  to the slab cache, ``page->mapping``) and holds a small id, 0 meaning none.
- Pages mapped into the vmalloc window (a vmalloc() area's pages, vmap()ed pages) carry the
  model-only bit :data:`PG_vmalloc`, so that freeing one while it is mapped is refused
  (2.6 keeps no such mark and would free it silently).
- Anonymous pages are marked with the model-only bit :data:`PG_anon`; 2.6 sets the
  ``PAGE_MAPPING_ANON`` bit in ``page->mapping`` instead.
- The bytes of memory exist only once written (see :meth:`PhysMem.write`); a page never
  written reads as one repeated fill byte, by default ``0xCC`` so that code that forgets to
  zero memory shows it.
- No locking: these are plain data structures. The page allocator takes ``zone->lock``
  around every call into a zone's buddy allocator.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import TypeAlias

from ..runtime.errors import InconsistentState, KmemUsageError
from .buddy import BuddyZone

# Every layout name, also importable from here (its home before mm/layout.py existed).
from .layout import (  # noqa: F401
    ALIGN,
    L1_CACHE_BYTES,
    L1_CACHE_SHIFT,
    LOWMEM_LIMIT_PHYS,
    MAX_DMA_ADDRESS_PHYS,
    MAX_DMA_PFN,
    MAX_LOWMEM_PFN,
    MAX_NR_ZONES,
    MAX_NUMNODES,
    MAX_ORDER,
    MAX_ORDER_NR_PAGES,
    MAX_PHYS_BYTES,
    PAGE_FLAG_NAMES,
    PAGE_MASK,
    PAGE_OFFSET,
    PAGE_SHIFT,
    PAGE_SIZE,
    SMP_CACHE_BYTES,
    ZONE_DMA,
    ZONE_HIGHMEM,
    ZONE_NAMES,
    ZONE_NORMAL,
    ZONE_PFN_LIMITS,
    PG_active,
    PG_anon,
    PG_arch_1,
    PG_checked,
    PG_compound,
    PG_dirty,
    PG_error,
    PG_highmem,
    PG_locked,
    PG_lru,
    PG_mappedtodisk,
    PG_nosave,
    PG_nosave_free,
    PG_private,
    PG_reclaim,
    PG_referenced,
    PG_reserved,
    PG_slab,
    PG_swapcache,
    PG_uptodate,
    PG_vmalloc,
    PG_writeback,
    format_page_flags,
    get_order,
    parse_size,
)


class BadPhysAddress(KmemUsageError):
    """A byte access fell outside physical memory; carries ``paddr``, ``size``, ``limit``.

    A KmemUsageError (so also a ValueError): the caller passed an address the machine does
    not have."""

    def __init__(self, paddr: int, size: int, limit: int) -> None:
        super().__init__(
            f"physical access of {size} bytes at {paddr:#x} is outside memory [0, {limit:#x})"
        )
        self.paddr = paddr
        self.size = size
        self.limit = limit


def _largest_block_order(pfn: int, end: int) -> int:
    """Order of the largest naturally aligned block starting at ``pfn`` that ends by ``end``."""
    order = MAX_ORDER - 1 if pfn == 0 else min(MAX_ORDER - 1, (pfn & -pfn).bit_length() - 1)
    while pfn + (1 << order) > end:
        order -= 1
    return order


@lru_cache(maxsize=256)
def _page_of(byte: int) -> bytes:
    """An immutable page full of ``byte``: the content of every unmaterialized page."""
    return bytes((byte,)) * PAGE_SIZE


@lru_cache(maxsize=256)
def _bytes_without(mask: int) -> bytes:
    """Every byte value sharing no bit with ``mask``: deleting them keeps the matches."""
    return bytes(b for b in range(256) if not b & mask)


# --------------------------------------------------------------------------------------
# struct page handles, zones, nodes
# --------------------------------------------------------------------------------------


class Page:
    """A handle on one ``struct page``: the pfn plus views onto :class:`PhysMem`'s arrays.

    Handles are made by :meth:`PhysMem.page` and cached, so one pfn always gives the same
    object (``mem.page(5) is mem.page(5)``), like a ``struct page *`` into ``mem_map``.
    Equality and hashing go by (memory, pfn) all the same, so handles work as dict keys.
    The state lives in the arrays, never in the handle: hot paths may use the arrays
    directly and handles stay in sync.
    """

    __slots__ = ("mem", "pfn")

    def __init__(self, mem: PhysMem, pfn: int) -> None:
        self.mem = mem
        self.pfn = pfn

    @property
    def flags(self) -> int:
        return self.mem.flags[self.pfn]

    @flags.setter
    def flags(self, value: int) -> None:
        self.mem.flags[self.pfn] = value

    @property
    def order(self) -> int:
        """Buddy order of a free block's head, or compound order of a compound head."""
        return self.mem.order[self.pfn]

    @order.setter
    def order(self, value: int) -> None:
        self.mem.order[self.pfn] = value

    @property
    def count(self) -> int:
        """The reference count (``page_count(page)``); 0 while free."""
        return self.mem.count[self.pfn]

    @count.setter
    def count(self, value: int) -> None:
        self.mem.count[self.pfn] = value

    @property
    def owner(self) -> int:
        """Id of the owner of an allocated page (slab cache, mapping), 0 for none."""
        return self.mem.owner[self.pfn]

    @owner.setter
    def owner(self, value: int) -> None:
        self.mem.owner[self.pfn] = value

    @property
    def private(self) -> int:
        """``page->private`` for upper layers (compound head pfn, swap entry, ...)."""
        return self.mem.private[self.pfn]

    @private.setter
    def private(self, value: int) -> None:
        self.mem.private[self.pfn] = value

    @property
    def zone(self) -> Zone:
        return self.mem.zones[self.mem.zone_id[self.pfn]]

    @property
    def node(self) -> int:
        """Node id (``page_to_nid``)."""
        return self.mem.zones[self.mem.zone_id[self.pfn]].node

    @property
    def highmem(self) -> bool:
        """``PageHighMem``: not in the kernel's direct map, ``page_address`` is None."""
        return bool(self.mem.flags[self.pfn] & PG_highmem)

    @property
    def paddr(self) -> int:
        """Physical address of the first byte (``page_to_phys``)."""
        return self.pfn << PAGE_SHIFT

    @property
    def address(self) -> int | None:
        """Kernel virtual address (``page_address``), None for a highmem page."""
        return self.mem.page_address(self.pfn)

    def __repr__(self) -> str:
        return f"<page pfn={self.pfn:#x} zone={self.zone.name} count={self.count}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Page):
            return NotImplemented
        return self.pfn == other.pfn and self.mem is other.mem

    def __hash__(self) -> int:
        return hash((id(self.mem), self.pfn))


class Zone:
    """One ``struct zone``: a contiguous pfn range of one zone type on one node.

    ``buddy`` is its :class:`~percpu_kmem.mm.buddy.BuddyZone`. Zones keep a ``__dict__``
    on purpose: the page allocator attaches its own per-zone state (lock, watermarks,
    per-CPU page lists) to them, as ``struct zone`` holds all of that in the kernel.
    """

    buddy: BuddyZone

    def __init__(self, mem: PhysMem, node: int, idx: int, zid: int, start_pfn: int, end_pfn: int) -> None:
        self.mem = mem
        self.node = node
        self.idx = idx
        self.name = ZONE_NAMES[idx]
        self.id = zid
        self.start_pfn = start_pfn
        self.end_pfn = end_pfn
        self.spanned_pages = end_pfn - start_pfn
        self.present_pages = end_pfn - start_pfn

    @property
    def is_highmem(self) -> bool:
        return self.idx == ZONE_HIGHMEM

    def contains(self, pfn: int) -> bool:
        return self.start_pfn <= pfn < self.end_pfn

    def __repr__(self) -> str:
        return (
            f"<zone Node {self.node} {self.name} pfn {self.start_pfn:#x}-{self.end_pfn:#x} "
            f"({self.present_pages} pages)>"
        )


class Node:
    """One ``pg_data_t``: a node's pfn range and its zones, indexed by zone type."""

    def __init__(self, nid: int, start_pfn: int, end_pfn: int) -> None:
        self.id = nid
        self.start_pfn = start_pfn
        self.end_pfn = end_pfn
        self.present_pages = end_pfn - start_pfn
        #: ``zones[ZONE_DMA]`` etc.; None where the node has no memory of that type.
        self.zones: list[Zone | None] = [None] * MAX_NR_ZONES

    def populated_zones(self) -> Iterator[Zone]:
        return (z for z in self.zones if z is not None)

    def __repr__(self) -> str:
        return f"<node {self.id} pfn {self.start_pfn:#x}-{self.end_pfn:#x}>"


ReservedPfns: TypeAlias = Callable[[int], bool] | Iterable[int] | None


# --------------------------------------------------------------------------------------
# PhysMem
# --------------------------------------------------------------------------------------


class PhysMem:
    """The whole physical memory of one machine: struct page state, nodes, zones, bytes.

    Args:
        total_bytes: memory size, an int or a string such as ``"64M"`` (see
            :func:`parse_size`); rounded down to whole pages.
        nr_nodes: NUMA nodes. Memory is split evenly, in 4 MiB (``MAX_ORDER``) blocks
            when every node gets at least one; the last node takes the remainder.
        uninit_byte: what never-written memory reads as. Not 0, so that a missing
            ``memset``/``__GFP_ZERO`` is visible.

    After construction every page is reserved with a count of 1, as after
    ``memmap_init_zone``; :meth:`free_all_to_buddy` releases them, as ``free_all_bootmem``.
    """

    def __init__(self, total_bytes: int | str, nr_nodes: int = 1, *, uninit_byte: int = 0xCC) -> None:
        total = parse_size(total_bytes)
        if isinstance(nr_nodes, bool) or not isinstance(nr_nodes, int):
            raise TypeError(f"nr_nodes must be an int, not {nr_nodes!r}")
        if not 1 <= nr_nodes <= MAX_NUMNODES:
            raise KmemUsageError(f"nr_nodes(={nr_nodes}) must be in 1..{MAX_NUMNODES}")
        if isinstance(uninit_byte, bool) or not isinstance(uninit_byte, int) or not 0 <= uninit_byte <= 255:
            raise KmemUsageError(f"uninit_byte(={uninit_byte!r}) must be an int in 0..255")
        if total > MAX_PHYS_BYTES:
            raise KmemUsageError(
                f"total_bytes(={total:#x}) exceeds {MAX_PHYS_BYTES >> 30} GiB, the i386 PAE limit"
            )
        nr_pages = total >> PAGE_SHIFT
        if nr_pages < nr_nodes:
            raise KmemUsageError(
                f"total_bytes(={total}) gives {nr_pages} pages: need at least one page per node "
                f"(nr_nodes={nr_nodes})"
            )
        self.nr_pages: int = nr_pages
        self.total_bytes: int = nr_pages << PAGE_SHIFT
        self.max_low_pfn: int = min(nr_pages, MAX_LOWMEM_PFN)
        self.lowmem_pages: int = self.max_low_pfn
        self.highmem_pages: int = nr_pages - self.max_low_pfn
        self.uninit_byte: int = uninit_byte

        # struct page, one array per field, indexed by pfn. Boot state: reserved, count 1.
        self.flags: array[int] = array("I", [PG_reserved]) * nr_pages
        self.order: bytearray = bytearray(nr_pages)
        self.count: array[int] = array("i", [1]) * nr_pages
        self.zone_id: bytearray = bytearray(nr_pages)
        # owner and private are 32 bits wide, as an i386 unsigned long: they hold ids,
        # pfns or kernel virtual addresses.
        self.owner: array[int] = array("I", [0]) * nr_pages
        self.private: array[int] = array("I", [0]) * nr_pages

        self.nodes: list[Node] = []
        self.zones: list[Zone] = []
        self._build_nodes(nr_nodes)

        # The bytes: a materialized buffer per written page, else one fill byte per page.
        self._fill = bytearray((uninit_byte,)) * nr_pages
        self._buffers: dict[int, bytearray] = {}
        self._pages: dict[int, Page] = {}
        self._boot_freed = False

    # ---- layout -----------------------------------------------------------------

    def _build_nodes(self, nr_nodes: int) -> None:
        """Split the pfns among nodes, then give each node the zones its range meets."""
        per_node = self.nr_pages // nr_nodes
        if per_node >= MAX_ORDER_NR_PAGES:
            per_node -= per_node % MAX_ORDER_NR_PAGES
        for nid in range(nr_nodes):
            start = nid * per_node
            end = self.nr_pages if nid == nr_nodes - 1 else start + per_node
            node = Node(nid, start, end)
            self.nodes.append(node)
            for idx, (lo, hi) in enumerate(ZONE_PFN_LIMITS):
                zstart = max(start, lo)
                zend = end if hi is None else min(end, hi)
                if zstart < zend:
                    self._add_zone(node, idx, zstart, zend)

    def _add_zone(self, node: Node, idx: int, start: int, end: int) -> None:

        zone = Zone(self, node.id, idx, len(self.zones), start, end)
        self.zones.append(zone)
        node.zones[idx] = zone
        n = end - start
        self.zone_id[start:end] = bytes((zone.id,)) * n
        if idx == ZONE_HIGHMEM:
            self.flags[start:end] = array("I", [PG_reserved | PG_highmem]) * n
        zone.buddy = BuddyZone(self, zone)

    def pfn_valid(self, pfn: int) -> bool:
        return type(pfn) is int and 0 <= pfn < self.nr_pages

    def pfn_to_zone(self, pfn: int) -> Zone:
        """The zone holding ``pfn`` (``page_zone``); ValueError for an invalid pfn."""
        if not self.pfn_valid(pfn):
            raise KmemUsageError(self._bad_pfn(pfn))
        return self.zones[self.zone_id[pfn]]

    def _bad_pfn(self, pfn: object) -> str:
        return f"pfn {pfn!r} is not valid: this machine has pfns 0..{self.nr_pages - 1:#x}"

    # ---- struct page handles --------------------------------------------------------

    def page(self, pfn: int) -> Page:
        """The handle of ``pfn``'s struct page, the same object on every call."""
        p = self._pages.get(pfn)
        if p is None:
            if not self.pfn_valid(pfn):
                raise KmemUsageError(self._bad_pfn(pfn))
            p = self._pages[pfn] = Page(self, pfn)
        return p

    pfn_to_page = page

    # ---- addresses (kernel virtual addresses are plain ints) -------------------------

    def page_address(self, pfn: int) -> int | None:
        """Kernel virtual address of a lowmem page; None for highmem (needs ``kmap``)."""
        if not self.pfn_valid(pfn):
            raise KmemUsageError(self._bad_pfn(pfn))
        if pfn >= self.max_low_pfn:
            return None
        return PAGE_OFFSET + (pfn << PAGE_SHIFT)

    def virt_to_phys(self, addr: int) -> int:
        """``__pa``: only defined for the direct map of low memory."""
        if not PAGE_OFFSET <= addr < PAGE_OFFSET + (self.max_low_pfn << PAGE_SHIFT):
            raise KmemUsageError(
                f"address {addr:#x} is outside the lowmem direct map "
                f"[{PAGE_OFFSET:#x}, {PAGE_OFFSET + (self.max_low_pfn << PAGE_SHIFT):#x})"
            )
        return addr - PAGE_OFFSET

    def phys_to_virt(self, paddr: int) -> int:
        """``__va``: only defined for low memory."""
        if not 0 <= paddr < self.max_low_pfn << PAGE_SHIFT:
            raise KmemUsageError(
                f"physical address {paddr:#x} is not low memory "
                f"[0, {self.max_low_pfn << PAGE_SHIFT:#x}): it has no direct-map address"
            )
        return paddr + PAGE_OFFSET

    def virt_to_pfn(self, addr: int) -> int:
        return self.virt_to_phys(addr) >> PAGE_SHIFT

    def virt_to_page(self, addr: int) -> Page:
        return self.page(self.virt_to_phys(addr) >> PAGE_SHIFT)

    # ---- bytes --------------------------------------------------------------------

    def _check_range(self, paddr: int, n: int) -> None:
        if n < 0 or paddr < 0 or paddr + n > self.total_bytes:
            raise BadPhysAddress(paddr, n, self.total_bytes)

    def _materialize(self, pfn: int) -> bytearray:
        buf = self._buffers.get(pfn)
        if buf is None:
            buf = self._buffers[pfn] = bytearray(_page_of(self._fill[pfn]))
        return buf

    def _drop_buffers(self, start: int, end: int) -> None:
        """Forget the materialized bytes of pfns [start, end), whichever way is cheaper."""
        buffers = self._buffers
        if end - start <= len(buffers):
            for pfn in range(start, end):
                buffers.pop(pfn, None)
        else:
            for pfn in [p for p in buffers if start <= p < end]:
                del buffers[pfn]

    def read(self, paddr: int, n: int) -> bytes:
        """Read ``n`` bytes at physical address ``paddr`` (may cross pages)."""
        self._check_range(paddr, n)
        parts: list[bytes] = []
        while n:
            pfn = paddr >> PAGE_SHIFT
            off = paddr & (PAGE_SIZE - 1)
            k = min(n, PAGE_SIZE - off)
            buf = self._buffers.get(pfn)
            if buf is None:
                chunk = _page_of(self._fill[pfn])[:k]
            else:
                chunk = bytes(memoryview(buf)[off : off + k])
            if k == n and not parts:
                return chunk
            parts.append(chunk)
            paddr += k
            n -= k
        return b"".join(parts)

    def write(self, paddr: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at physical address ``paddr`` (may cross pages)."""
        src = memoryview(data).cast("B")
        n = len(src)
        self._check_range(paddr, n)
        pos = 0
        while pos < n:
            pfn = paddr >> PAGE_SHIFT
            off = paddr & (PAGE_SIZE - 1)
            k = min(n - pos, PAGE_SIZE - off)
            if k == PAGE_SIZE:
                self._buffers[pfn] = bytearray(src[pos : pos + k])
            else:
                self._materialize(pfn)[off : off + k] = src[pos : pos + k]
            pos += k
            paddr += k

    def memset(self, paddr: int, byte: int, n: int) -> None:
        """Fill ``n`` bytes with ``byte``. Whole pages become fill bytes again: no copies."""
        if not 0 <= byte <= 255:
            raise KmemUsageError(f"byte(={byte}) must be in 0..255")
        self._check_range(paddr, n)
        end = paddr + n
        first_full = (paddr + PAGE_SIZE - 1) >> PAGE_SHIFT
        last_full = end >> PAGE_SHIFT
        if first_full >= last_full:
            self._memset_partial(paddr, byte, n)
            return
        self._memset_partial(paddr, byte, (first_full << PAGE_SHIFT) - paddr)
        self._fill[first_full:last_full] = bytes((byte,)) * (last_full - first_full)
        self._drop_buffers(first_full, last_full)
        self._memset_partial(last_full << PAGE_SHIFT, byte, end - (last_full << PAGE_SHIFT))

    def _memset_partial(self, paddr: int, byte: int, n: int) -> None:
        """memset without the whole-page shortcut (the parts of pages at either end)."""
        while n:
            pfn = paddr >> PAGE_SHIFT
            off = paddr & (PAGE_SIZE - 1)
            k = min(n, PAGE_SIZE - off)
            self._materialize(pfn)[off : off + k] = _page_of(byte)[:k]
            paddr += k
            n -= k

    def copy(self, dst: int, src: int, n: int) -> None:
        """``memmove`` between physical addresses; overlapping ranges are fine.

        Page-aligned whole pages are copied by reference to their fill byte when the
        source was never written, so copying untouched memory materializes nothing.
        """
        self._check_range(src, n)
        self._check_range(dst, n)
        if (src | dst | n) & (PAGE_SIZE - 1):
            self.write(dst, self.read(src, n))
            return
        npages = n >> PAGE_SHIFT
        s0, d0 = src >> PAGE_SHIFT, dst >> PAGE_SHIFT
        order = range(npages - 1, -1, -1) if d0 > s0 else range(npages)
        for i in order:
            self._copy_page(d0 + i, s0 + i)

    def _copy_page(self, dst_pfn: int, src_pfn: int) -> None:
        buf = self._buffers.get(src_pfn)
        if buf is None:
            self._buffers.pop(dst_pfn, None)
            self._fill[dst_pfn] = self._fill[src_pfn]
        elif dst_pfn != src_pfn:
            self._buffers[dst_pfn] = bytearray(buf)

    def _read_int(self, paddr: int, size: int) -> int:
        pfn = paddr >> PAGE_SHIFT
        off = paddr & (PAGE_SIZE - 1)
        buf = self._buffers.get(pfn)
        if buf is not None and off + size <= PAGE_SIZE and 0 <= paddr and paddr + size <= self.total_bytes:
            return int.from_bytes(buf[off : off + size], "little")
        return int.from_bytes(self.read(paddr, size), "little")

    def _write_int(self, paddr: int, value: int, size: int) -> None:
        bits = size * 8
        if not -(1 << (bits - 1)) <= value < (1 << bits):
            raise KmemUsageError(f"value(={value}) does not fit in {bits} bits")
        self.write(paddr, (value & ((1 << bits) - 1)).to_bytes(size, "little"))

    def read_u8(self, paddr: int) -> int:
        return self._read_int(paddr, 1)

    def read_u16(self, paddr: int) -> int:
        return self._read_int(paddr, 2)

    def read_u32(self, paddr: int) -> int:
        return self._read_int(paddr, 4)

    def read_u64(self, paddr: int) -> int:
        return self._read_int(paddr, 8)

    def write_u8(self, paddr: int, value: int) -> None:
        self._write_int(paddr, value, 1)

    def write_u16(self, paddr: int, value: int) -> None:
        self._write_int(paddr, value, 2)

    def write_u32(self, paddr: int, value: int) -> None:
        self._write_int(paddr, value, 4)

    def write_u64(self, paddr: int, value: int) -> None:
        self._write_int(paddr, value, 8)

    def clear_pages(self, pfn: int, n: int = 1) -> None:
        """Zero ``n`` whole pages from ``pfn`` (``clear_page``) without touching bytes."""
        if n < 0 or not self.pfn_valid(pfn) or pfn + n > self.nr_pages:
            raise KmemUsageError(f"clear_pages(pfn={pfn!r}, n={n}): outside pfns 0..{self.nr_pages - 1:#x}")
        self.memset(pfn << PAGE_SHIFT, 0, n << PAGE_SHIFT)

    def zero_page(self, pfn: int) -> None:
        self.clear_pages(pfn, 1)

    def page_fill(self, pfn: int) -> int | None:
        """The byte a never-materialized page is full of, or None once it holds real bytes.

        ``page_fill(pfn) == 0`` means known zero; ``== mem.uninit_byte`` usually means
        never written since boot.
        """
        if not self.pfn_valid(pfn):
            raise KmemUsageError(self._bad_pfn(pfn))
        return None if pfn in self._buffers else self._fill[pfn]

    @property
    def materialized_pages(self) -> int:
        """How many pages hold real bytes (what the simulation costs in host memory)."""
        return len(self._buffers)

    # ---- boot: hand memory to the buddy allocator -----------------------------------

    def free_all_to_buddy(self, reserved: ReservedPfns = None) -> int:
        """Release every unreserved page into its zone's buddy lists; return the count.

        The end of boot, as ``free_all_bootmem``: pages not in ``reserved`` lose
        ``PG_reserved``, get a count of 0 and go to the buddy allocator in the largest
        naturally aligned blocks that fit inside their zone. Reserved pages keep
        ``PG_reserved`` and a count of 1.

        Args:
            reserved: pfns that stay reserved: a set or other iterable of pfns (fast:
                sorted once), or a predicate ``pfn -> bool`` (called once per pfn, so
                about a second for a 16 GiB machine), or None.

        Raises:
            RuntimeError: called a second time (every page would be freed twice).
        """
        if self._boot_freed:
            raise RuntimeError("free_all_to_buddy() already ran on this PhysMem; it frees boot memory once")
        freed = 0
        if reserved is None:
            for zone in self.zones:
                freed += self._free_boot_run(zone, zone.start_pfn, zone.end_pfn)
        elif callable(reserved):
            for zone in self.zones:
                for start, end in _runs_outside(zone.start_pfn, zone.end_pfn, reserved):
                    freed += self._free_boot_run(zone, start, end)
        else:
            held = sorted(set(reserved))
            for pfn in held:
                if not self.pfn_valid(pfn):
                    raise KmemUsageError(f"reserved {self._bad_pfn(pfn)}")
            for zone in self.zones:
                lo = bisect_left(held, zone.start_pfn)
                hi = bisect_left(held, zone.end_pfn)
                start = zone.start_pfn
                for pfn in held[lo:hi]:
                    if start < pfn:
                        freed += self._free_boot_run(zone, start, pfn)
                    start = pfn + 1
                if start < zone.end_pfn:
                    freed += self._free_boot_run(zone, start, zone.end_pfn)
        self._boot_freed = True
        return freed

    def _free_boot_run(self, zone: Zone, start: int, end: int) -> int:
        """Clear PG_reserved and the count of [start, end), then free it in aligned blocks."""
        n = end - start
        base_flags = PG_highmem if zone.idx == ZONE_HIGHMEM else 0
        self.flags[start:end] = array("I", [base_flags]) * n
        self.count[start:end] = array("i", [0]) * n
        buddy = zone.buddy
        pfn = start
        while pfn < end:
            order = _largest_block_order(pfn, end)
            buddy.free(pfn, order)
            pfn += 1 << order
        return n

    # ---- views --------------------------------------------------------------------

    def nr_free_pages(self) -> int:
        """Pages in all buddy free lists (pages on per-CPU lists are not counted here)."""
        return sum(z.buddy.free_pages for z in self.zones)

    def buddyinfo(self) -> str:
        """The text of /proc/buddyinfo: one line per populated zone, node by node."""
        return "".join(z.buddy.buddyinfo_line(z.node) for z in self.zones)

    def count_flag(self, flag: int, start: int = 0, end: int | None = None) -> int:
        """How many pages in pfns [start, end) have the single-bit ``flag`` set.

        Runs at C speed (a strided byte copy and a ``bytes.translate``), so invariant
        walks of a 16 GiB machine stay cheap.
        """
        if flag <= 0 or flag & (flag - 1):
            raise KmemUsageError(f"flag(={flag:#x}) must be a single bit")
        end = self.nr_pages if end is None else end
        lane = (flag.bit_length() - 1) >> 3
        return len(self._flag_lane(lane, start, end).translate(None, _bytes_without(flag >> (8 * lane))))

    def any_flags(self, mask: int, start: int, end: int) -> bool:
        """Whether any page in pfns [start, end) has any bit of ``mask`` set (C speed)."""
        for lane in range(self.flags.itemsize):
            lane_mask = (mask >> (8 * lane)) & 0xFF
            if lane_mask and self._flag_lane(lane, start, end).translate(None, _bytes_without(lane_mask)):
                return True
        return False

    def _flag_lane(self, lane: int, start: int, end: int) -> bytes:
        """Byte ``lane`` (0 = least significant) of the flags of pfns [start, end)."""
        if not 0 <= start <= end <= self.nr_pages:
            raise KmemUsageError(f"pfn range [{start:#x}, {end:#x}) is outside 0..{self.nr_pages:#x}")
        size = self.flags.itemsize
        if sys.byteorder == "big":
            lane = size - 1 - lane
        # a contiguous copy then a strided bytes slice: both C loops (a strided memoryview
        # copy is several times slower)
        return memoryview(self.flags).cast("B")[start * size : end * size].tobytes()[lane::size]

    def __repr__(self) -> str:
        return (
            f"<PhysMem {self.total_bytes >> 20} MiB, {len(self.nodes)} node(s), "
            f"zones {', '.join(f'{z.node}:{z.name}' for z in self.zones)}>"
        )

    # ---- invariants -----------------------------------------------------------------

    def check(self) -> None:
        """Walk nodes, zones, the struct page arrays and every buddy zone.

        Raises:
            InconsistentState: naming the first inconsistency found.
        """
        self._check_arrays()
        self._check_nodes()
        self._check_zones()
        for zone in self.zones:
            zone.buddy.check()

    def _check_arrays(self) -> None:
        n = self.nr_pages
        for name in ("flags", "order", "count", "zone_id", "owner", "private", "_fill"):
            if len(getattr(self, name)) != n:
                raise InconsistentState(f"struct page array {name} has {len(getattr(self, name))} entries, not {n}")
        for pfn, buf in self._buffers.items():
            if not self.pfn_valid(pfn) or len(buf) != PAGE_SIZE:
                raise InconsistentState(f"materialized page buffer for pfn {pfn!r} is invalid")

    def _check_nodes(self) -> None:
        expect = 0
        for nid, node in enumerate(self.nodes):
            if node.id != nid:
                raise InconsistentState(f"nodes[{nid}] has id {node.id}")
            if node.start_pfn != expect or node.end_pfn <= node.start_pfn:
                raise InconsistentState(
                    f"node {nid} spans pfn {node.start_pfn:#x}-{node.end_pfn:#x}: nodes must "
                    f"partition the pfns, this one should start at {expect:#x}"
                )
            expect = node.end_pfn
            covered = node.start_pfn
            for idx, zone in enumerate(node.zones):
                if zone is None:
                    continue
                if zone.node != nid or zone.idx != idx or self.zones[zone.id] is not zone:
                    raise InconsistentState(f"node {nid} zones[{idx}] is {zone!r}: wrong node, type or id")
                if zone.start_pfn != covered:
                    raise InconsistentState(f"{zone!r} should start at pfn {covered:#x}: zones must tile node {nid}")
                covered = zone.end_pfn
            if covered != node.end_pfn:
                raise InconsistentState(f"zones of node {nid} end at pfn {covered:#x}, the node at {node.end_pfn:#x}")
        if expect != self.nr_pages:
            raise InconsistentState(f"nodes cover pfns up to {expect:#x}, memory has {self.nr_pages:#x}")

    def _check_zones(self) -> None:
        expect = 0
        for zid, zone in enumerate(self.zones):
            if zone.id != zid or zone.start_pfn != expect:
                raise InconsistentState(f"zones[{zid}] is {zone!r}: ids and ranges must follow pfn order")
            expect = zone.end_pfn
            lo, hi = ZONE_PFN_LIMITS[zone.idx]
            if zone.start_pfn < lo or (hi is not None and zone.end_pfn > hi):
                raise InconsistentState(f"{zone!r} lies outside the {zone.name} range")
            n = zone.end_pfn - zone.start_pfn
            if zone.present_pages != n or zone.spanned_pages != n:
                raise InconsistentState(f"{zone!r}: present/spanned pages do not match its range")
            if self.zone_id[zone.start_pfn : zone.end_pfn] != bytes((zid,)) * n:
                raise InconsistentState(f"zone_id array disagrees with {zone!r} (a page claims another zone)")
            highmem = self.count_flag(PG_highmem, zone.start_pfn, zone.end_pfn)
            want = n if zone.idx == ZONE_HIGHMEM else 0
            if highmem != want:
                raise InconsistentState(f"{zone!r}: {highmem} pages have PG_highmem, expected {want}")
        if expect != self.nr_pages:
            raise InconsistentState(f"zones cover pfns up to {expect:#x}, memory has {self.nr_pages:#x}")


def _runs_outside(start: int, end: int, is_reserved: Callable[[int], bool]) -> Iterator[tuple[int, int]]:
    """Maximal runs [a, b) within [start, end) of pfns for which ``is_reserved`` is false."""
    run = None
    for pfn in range(start, end):
        if is_reserved(pfn):
            if run is not None:
                yield run, pfn
                run = None
        elif run is None:
            run = pfn
    if run is not None:
        yield run, end


__all__ = ["BadPhysAddress", "Page", "Zone", "Node", "ReservedPfns", "PhysMem"]
