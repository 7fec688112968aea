"""bootmem: the boot-time page allocator, and the boot phase that uses it.

Models Linux 2.6.11:

- mm/bootmem.c: a first-fit allocator over a bitmap with one bit per low-memory page
  (``bootmem_data_t``: ``node_boot_start``, ``node_low_pfn``, ``node_bootmem_map``,
  ``last_pos``/``last_offset``/``last_success``); ``init_bootmem_core`` marks every page
  reserved (``memset(map, 0xff, mapsize)``), ``reserve_bootmem_core`` rounds partial pages
  up, ``free_bootmem_core`` rounds them away (start up, end down) and BUG()s on a page
  already free, ``__alloc_bootmem_core`` scans first fit from the goal with a rescan from
  the start, packs sub-page requests into the tail of the previous allocation's last page
  and zeroes what it returns, ``__alloc_bootmem`` tries every node and panics ("Out of
  memory") when none can satisfy the request, ``free_all_bootmem_core`` hands every page
  whose bit is clear to the buddy allocator and then frees the bitmap itself;
- include/linux/bootmem.h: ``alloc_bootmem*`` macros (SMP_CACHE_BYTES or PAGE_SIZE
  alignment, goal ``__pa(MAX_DMA_ADDRESS)`` = 16 MB, or 0 for the ``_low`` forms);
- arch/i386/kernel/setup.c ``setup_memory``/``setup_bootmem_allocator`` (the bitmap is
  placed at 1 MB, the register-RAM-then-reserve order, the "NMB LOWMEM available." lines)
  and arch/i386/mm/init.c ``mem_init`` (``free_all_bootmem``, highmem pages handed over
  separately, the "Memory: ...k/...k available (...)" line);
- init/main.c ``start_kernel``: bootmem users run with preemption disabled and interrupts
  enabled, before ``mem_init()``; ``system_state`` stays SYSTEM_BOOTING.

The boot phase (:func:`boot_phase`, called by percpu_kmem/boot.py before the page
allocator exists) builds the bootmem allocator, runs the machine's ``init`` functions as
boot-CPU kernel threads (``Machine.run_boot_threads``), then hands memory over.

Simplified, on purpose (docs/bootmem.md says why):

- The bitmap is a Python ``bytearray`` with the kernel's bit layout (bit ``i`` of the
  map is bit ``i & 7`` of byte ``i >> 3``), kept off simulated memory: the pages it
  would occupy are reserved while it lives and freed with it, but their bytes are not
  written, so a machine without init functions boots to exactly the memory it had.
- No kernel image, BIOS pages or holes are modelled: nothing stays reserved unless a
  boot thread reserves or allocates it.
- Using bootmem after the hand-over is reported in the WARN_ON_ONCE form of later
  kernels and does nothing (allocations return None); 2.6.11 had discarded the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ..runtime.errors import InconsistentState, KmemUsageError
from ..runtime.kernel import BUG, panic
from ..runtime.report import caller_site, warning_line
from ..runtime.task import current_task
from ..runtime.validate import check_int
from .context import current_machine
from .layout import (
    ALIGN,
    MAX_DMA_ADDRESS_PHYS,
    PAGE_MASK,
    PAGE_OFFSET,
    PAGE_SHIFT,
    PAGE_SIZE,
    SMP_CACHE_BYTES,
    PG_reserved,
)
from .physmem import Node

if TYPE_CHECKING:
    from ..machine import Machine
    from .access import IoMemory, MemoryMap, TranslateHook
    from .kcsan import Kcsan
    from .physmem import PhysMem

# include/asm-i386/dma.h and arch/i386/kernel/setup.c
#: ``MAX_DMA_ADDRESS`` (a kernel virtual address): the end of ISA DMA memory, 16 MB.
MAX_DMA_ADDRESS: Final = PAGE_OFFSET + MAX_DMA_ADDRESS_PHYS
#: setup.c ``HIGH_MEMORY``: where i386 loads the kernel; the bitmap goes there (no image here).
HIGH_MEMORY: Final = 1 << 20
BITS_PER_LONG: Final = 32
_LONG_BYTES: Final = BITS_PER_LONG // 8

_NONZERO_BYTE: Final = re.compile(rb"[^\x00]")
_NONFULL_BYTE: Final = re.compile(rb"[^\xff]")


def bootmem_bootmap_pages(pages: int) -> int:
    """Pages the bitmap for ``pages`` pages takes (mm/bootmem.c ``bootmem_bootmap_pages``)."""
    mapsize = (pages + 7) // 8
    mapsize = (mapsize + ~PAGE_MASK) & PAGE_MASK
    return mapsize >> PAGE_SHIFT


# --------------------------------------------------------------------------------------
# The bitmap (bitops on a bytearray: x86 bit order)
# --------------------------------------------------------------------------------------


def _test_bit(bitmap: bytearray, i: int) -> int:
    return (bitmap[i >> 3] >> (i & 7)) & 1


def _find_bit(bitmap: bytearray, lo: int, hi: int, value: int) -> int:
    """First index in [lo, hi) whose bit equals ``value``, or ``hi`` (find_next_{zero_,}bit)."""
    skip = 0xFF if value == 0 else 0x00
    pattern = _NONFULL_BYTE if value == 0 else _NONZERO_BYTE
    i = lo
    while i < hi:
        if i & 7 == 0 and i + 8 <= hi:
            if bitmap[i >> 3] == skip:  # a whole byte without a match: search bytes at C speed
                m = pattern.search(bitmap, i >> 3, hi >> 3)
                if m is None:
                    i = (hi >> 3) << 3
                    continue
                i = m.start() << 3
        if ((bitmap[i >> 3] >> (i & 7)) & 1) == value:
            return i
        i += 1
    return hi


def _fill_bits(bitmap: bytearray, lo: int, hi: int, value: int) -> None:
    """Set (value 1) or clear (0) every bit in [lo, hi), whole bytes by slices."""
    i = lo
    while i < hi and i & 7:
        _put_bit(bitmap, i, value)
        i += 1
    whole_end = hi & ~7
    if i < whole_end:
        bitmap[i >> 3 : whole_end >> 3] = bytes((0xFF if value else 0,)) * ((whole_end - i) >> 3)
        i = whole_end
    while i < hi:
        _put_bit(bitmap, i, value)
        i += 1


def _put_bit(bitmap: bytearray, i: int, value: int) -> None:
    if value:
        bitmap[i >> 3] |= 1 << (i & 7)
    else:
        bitmap[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def _count_set(bitmap: bytearray, lo: int, hi: int) -> int:
    """Set bits in [lo, hi)."""
    n = 0
    i = lo
    while i < hi and i & 7:
        n += _test_bit(bitmap, i)
        i += 1
    whole_end = hi & ~7
    if i < whole_end:
        n += int.from_bytes(bitmap[i >> 3 : whole_end >> 3], "little").bit_count()
        i = whole_end
    while i < hi:
        n += _test_bit(bitmap, i)
        i += 1
    return n


# --------------------------------------------------------------------------------------
# bootmem_data_t and the allocator
# --------------------------------------------------------------------------------------


class BootmemData:
    """One node's ``bootmem_data_t``: the bitmap over [node_boot_start, node_low_pfn).

    ``last_success`` is a byte offset from ``node_boot_start`` (the kernel mixes it with
    absolute addresses in free_bootmem_core; on node 0, where node_boot_start is 0, the
    two agree, and the model keeps the kernel's arithmetic).
    """

    __slots__ = ("nid", "node_boot_start", "node_low_pfn", "node_bootmem_map", "last_offset", "last_pos",
                 "last_success", "map_pfn", "map_pages")

    def __init__(self, nid: int, mapstart: int, start: int, end: int) -> None:
        """init_bootmem_core(): every page reserved until setup frees usable RAM."""
        self.nid = nid
        mapsize = ((end - start) + 7) // 8
        mapsize = (mapsize + (_LONG_BYTES - 1)) & ~(_LONG_BYTES - 1)
        self.node_bootmem_map: bytearray | None = bytearray(b"\xff") * mapsize
        self.node_boot_start = start << PAGE_SHIFT
        self.node_low_pfn = end
        self.last_offset = 0
        self.last_pos = 0
        self.last_success = 0
        self.map_pfn = mapstart
        self.map_pages = bootmem_bootmap_pages(end - start)

    @property
    def start_pfn(self) -> int:
        return self.node_boot_start >> PAGE_SHIFT

    @property
    def eidx(self) -> int:
        """Pages the map covers."""
        return self.node_low_pfn - self.start_pfn

    def __repr__(self) -> str:
        state = "live" if self.node_bootmem_map is not None else "freed"
        return (f"<bootmem_data node {self.nid} pfn {self.start_pfn:#x}-{self.node_low_pfn:#x} "
                f"map@{self.map_pfn:#x} {state}>")


@dataclass(frozen=True)
class BootmemStatistics:
    """What the boot allocator did; ``m.bootmem.statistics()``.

    After the hand-over ``reserved_pages + handed_to_buddy == total_pages``: every page
    is either kept reserved (bootmem allocations and reservations, PG_reserved for good)
    or was given to the buddy allocator (free low pages, the bitmap's own pages, and the
    highmem pages bootmem never managed).
    """

    total_pages: int
    lowmem_pages: int  # pages the bitmaps cover
    highmem_pages: int  # handed over directly (i386: set_highmem_pages_init)
    bitmap_pages: int
    allocations: int
    bytes_allocated: int
    reserved_twice: int  # pages reserve_bootmem found reserved already ("hm, page ... reserved twice.")
    handed_over: bool
    reserved_pages: int  # 0 until the hand-over
    handed_to_buddy: int  # 0 until the hand-over
    free_all_bootmem: int  # what free_all_bootmem() returned: free low pages + bitmap pages


class _NoPageAllocatorYet(KmemUsageError, AttributeError):
    """The page allocator does not exist yet (the boot phase)."""


class _EarlyMM:
    """What the memory accessors find as ``m.mm`` while only bootmem exists.

    mem_read/mem_write and friends reach physical memory through ``m.mm.mem``; during the
    boot phase this stands in, so init functions can read and write what they allocated.
    It is a :class:`~percpu_kmem.mm.access.MemoryMap`, as the page allocator is: no
    vmalloc translation, no device memory, and its own Oops counter (an Oops in an init
    function ends the boot, so the count never needs to carry over). Anything else of the
    page allocator (alloc_pages, kmalloc) is refused clearly.
    """

    translate_hook: TranslateHook | None = None
    iomem: IoMemory | None = None
    kcsan: Kcsan | None = None  # no race detection in the boot phase

    def __init__(self, m: Machine, mem: PhysMem) -> None:
        self.m = m
        self.mem = mem
        self.die_counter = 0

    if not TYPE_CHECKING:  # a run-time refusal; to the checker the class is what it declares
        def __getattr__(self, name: str) -> NoReturn:
            raise _NoPageAllocatorYet(
                f"the page allocator does not exist during the boot phase (wanted mm.{name}): "
                "init functions may use alloc_bootmem*(), reserve_bootmem(), free_bootmem() and "
                "the memory accessors; kmalloc/alloc_pages work in Machine.run()")


class _EarlyLayer:
    """What ``m.slab``, ``m.mempools`` and ``m.percpu`` are while only bootmem exists:
    any use is refused with the same clear answer as ``m.mm``'s. (``m.vmalloc`` stays
    absent: the accessors and KASAN ask ``getattr(m, "vmalloc", None)``.)"""

    def __init__(self, layer: str) -> None:
        self.layer = layer

    if not TYPE_CHECKING:
        def __getattr__(self, name: str) -> NoReturn:
            raise _NoPageAllocatorYet(
                f"the {self.layer} layer does not exist during the boot phase (wanted "
                f"{self.layer}.{name}): init functions may use alloc_bootmem*(), reserve_bootmem(), "
                "free_bootmem() and the memory accessors; kmalloc/alloc_pages work in Machine.run()")


#: The layers booted after the boot phase, stood in for by _EarlyLayer during it.
_LATER_LAYERS = ("slab", "mempools", "percpu")


class Bootmem:
    """The boot allocator of one machine: a ``BootmemData`` per node with low memory.

    Built as i386 setup_memory()/setup_bootmem_allocator() build it: init_bootmem (all
    reserved), register the usable RAM (free_bootmem of all low memory), reserve the
    bitmap's own pages. ``free_all_bootmem()`` ends it.
    """

    def __init__(self, m: Machine, mem: PhysMem) -> None:
        self.m = m
        self.mem = mem
        self.bdata: list[BootmemData] = []
        self.allocations = 0
        self.bytes_allocated = 0
        self.reserved_twice = 0
        self.handed_over = False
        #: (start_pfn, end_pfn) runs that stayed reserved at the hand-over.
        self.reserved_ranges: list[tuple[int, int]] = []
        self.handed_to_buddy = 0
        self.freed_by_free_all = 0
        for node in mem.nodes:
            start = node.start_pfn
            end = min(node.end_pfn, mem.max_low_pfn)
            if start < end:
                self._setup_node(node.id, start, end)
        m.printk(f"{(mem.nr_pages - mem.max_low_pfn) >> (20 - PAGE_SHIFT)}MB HIGHMEM available.")
        m.printk(f"{mem.max_low_pfn >> (20 - PAGE_SHIFT)}MB LOWMEM available.")

    def _setup_node(self, nid: int, start: int, end: int) -> None:
        mappages = bootmem_bootmap_pages(end - start)
        mapstart = start + (HIGH_MEMORY >> PAGE_SHIFT) if nid == 0 else start
        if mapstart + mappages > end:
            mapstart = start
        bd = BootmemData(nid, mapstart, start, end)
        self.bdata.append(bd)
        self.free_bootmem_core(bd, start << PAGE_SHIFT, (end - start) << PAGE_SHIFT)  # register_bootmem_low_pages
        self.reserve_bootmem_core(bd, mapstart << PAGE_SHIFT, len(bd.node_bootmem_map or b""))

    # -- lookups ---------------------------------------------------------------------------
    def node_bdata(self, pgdat: Any, fn: str = "bootmem") -> BootmemData | None:
        """The bootmem_data of ``pgdat`` (a node id or a physmem Node); None: no low memory there."""
        nid = pgdat.id if isinstance(pgdat, Node) else pgdat
        if isinstance(nid, bool) or not isinstance(nid, int) or not 0 <= nid < len(self.mem.nodes):
            raise KmemUsageError(f"{fn}: pgdat(={pgdat!r}) must be a node id in 0..{len(self.mem.nodes) - 1} "
                                 "or a node of m.mem.nodes")
        for bd in self.bdata:
            if bd.nid == nid:
                return bd
        return None

    @property
    def first(self) -> BootmemData:
        """NODE_DATA(0)->bdata: reserve_bootmem/free_bootmem act on it."""
        return self.bdata[0]

    # -- reserve / free --------------------------------------------------------------------
    def reserve_bootmem_core(self, bd: BootmemData, addr: int, size: int) -> None:
        """Mark [addr, addr + size) reserved; partial pages count as wholly reserved."""
        bitmap = bd.node_bootmem_map
        assert bitmap is not None
        sidx = (addr - bd.node_boot_start) // PAGE_SIZE
        eidx = (addr + size - bd.node_boot_start + PAGE_SIZE - 1) // PAGE_SIZE
        end = (addr + size + PAGE_SIZE - 1) // PAGE_SIZE
        if not size:
            BUG("BUG_ON(!size)")
        if sidx < 0:  # model: the kernel's unsigned arithmetic would wrap
            BUG("BUG_ON(addr < bdata->node_boot_start)")
        if sidx >= eidx:
            BUG("BUG_ON(sidx >= eidx)")
        if (addr >> PAGE_SHIFT) >= bd.node_low_pfn:
            BUG("BUG_ON((addr >> PAGE_SHIFT) >= bdata->node_low_pfn)")
        if end > bd.node_low_pfn:
            BUG("BUG_ON(end > bdata->node_low_pfn)")
        already = _count_set(bitmap, sidx, eidx)
        if already:
            self.reserved_twice += already
            i = _find_bit(bitmap, sidx, eidx, 1)
            while i < eidx:  # CONFIG_DEBUG_BOOTMEM's line, once per page
                self.m.printk(f"hm, page {i * PAGE_SIZE:08x} reserved twice.")
                i = _find_bit(bitmap, i + 1, eidx, 1)
        _fill_bits(bitmap, sidx, eidx, 1)

    def free_bootmem_core(self, bd: BootmemData, addr: int, size: int) -> None:
        """Mark [addr, addr + size) free; partial pages at either end stay reserved.

        A page in the range that is free already is a BUG(), after the pages before it
        were freed, as the kernel's test_and_clear_bit loop leaves them.
        """
        bitmap = bd.node_bootmem_map
        assert bitmap is not None
        eidx = (addr + size - bd.node_boot_start) // PAGE_SIZE
        end = (addr + size) // PAGE_SIZE
        if not size:
            BUG("BUG_ON(!size)")
        if end > bd.node_low_pfn:
            BUG("BUG_ON(end > bdata->node_low_pfn)")
        if addr < bd.last_success:
            bd.last_success = addr
        start = (addr + PAGE_SIZE - 1) // PAGE_SIZE
        sidx = start - (bd.node_boot_start // PAGE_SIZE)
        if sidx < 0:  # model: the kernel's unsigned arithmetic would wrap
            BUG("BUG_ON(addr < bdata->node_boot_start)")
        if sidx >= eidx:
            return
        clear = _find_bit(bitmap, sidx, eidx, 0)
        _fill_bits(bitmap, sidx, clear, 0)
        if clear < eidx:
            BUG(f"free_bootmem: page {(bd.start_pfn + clear) << PAGE_SHIFT:#010x} is free already "
                "(!test_and_clear_bit)")

    # -- allocation -----------------------------------------------------------------------
    def alloc_bootmem_core(self, bd: BootmemData, size: int, align: int, goal: int) -> int | None:
        """First fit above ``goal``, then from the start; the physical address, or None."""
        bitmap = bd.node_bootmem_map
        assert bitmap is not None
        if not size:
            self.m.printk("__alloc_bootmem_core(): zero-sized request")
            BUG()
        if align & (align - 1):
            BUG("BUG_ON(align & (align-1))")
        eidx = bd.eidx
        offset = 0
        if align and (bd.node_boot_start & (align - 1)) != 0:
            offset = align - (bd.node_boot_start & (align - 1))
        offset >>= PAGE_SHIFT
        # We try to allocate bootmem pages above 'goal' first, then lower pages.
        if goal and goal >= bd.node_boot_start and (goal >> PAGE_SHIFT) < bd.node_low_pfn:
            preferred = goal - bd.node_boot_start
            if bd.last_success >= preferred:
                preferred = bd.last_success
        else:
            preferred = 0
        preferred = ((preferred + align - 1) & ~(align - 1)) >> PAGE_SHIFT
        preferred += offset
        areasize = (size + PAGE_SIZE - 1) // PAGE_SIZE
        incr = (align >> PAGE_SHIFT) or 1
        start = self._scan(bitmap, preferred, eidx, areasize, incr)
        if start is None and preferred > offset:
            start = self._scan(bitmap, offset, eidx, areasize, incr)  # restart_scan
        if start is None:
            return None
        return self._take(bd, bitmap, start, size, align, areasize)

    @staticmethod
    def _scan(bitmap: bytearray, preferred: int, eidx: int, areasize: int, incr: int) -> int | None:
        """The first-fit loop of __alloc_bootmem_core, step for step (fail_block included)."""
        i = preferred
        while i < eidx:
            i = ALIGN(_find_bit(bitmap, i, eidx, 0), incr)
            if i >= eidx or _test_bit(bitmap, i):
                i += incr
                continue
            hi = min(i + areasize, eidx)
            j = _find_bit(bitmap, i + 1, hi, 1)
            if j == hi and i + areasize <= eidx:
                return i
            i = ALIGN(j, incr) + incr  # fail_block, then the for loop's i += incr
        return None

    def _take(self, bd: BootmemData, bitmap: bytearray, start: int, size: int, align: int, areasize: int) -> int:
        """found: merge with the previous partial page if it adjoins, reserve, zero."""
        bd.last_success = start << PAGE_SHIFT
        if align < PAGE_SIZE and bd.last_offset and bd.last_pos + 1 == start:
            # The page after the previous allocation's end: start in its partial last page.
            offset = (bd.last_offset + align - 1) & ~(align - 1)
            paddr = bd.last_pos * PAGE_SIZE + offset + bd.node_boot_start
            remaining_size = PAGE_SIZE - offset
            if size < remaining_size:
                areasize = 0
                bd.last_offset = offset + size  # last_pos unchanged
            else:
                remaining_size = size - remaining_size
                areasize = (remaining_size + PAGE_SIZE - 1) // PAGE_SIZE
                bd.last_pos = start + areasize - 1
                bd.last_offset = remaining_size
            bd.last_offset &= ~PAGE_MASK
        else:
            bd.last_pos = start + areasize - 1
            bd.last_offset = size & ~PAGE_MASK
            paddr = start * PAGE_SIZE + bd.node_boot_start
        if _count_set(bitmap, start, start + areasize):
            BUG("bootmem: a page of the area found free was reserved (test_and_set_bit)")
        _fill_bits(bitmap, start, start + areasize, 1)
        self.mem.memset(paddr, 0, size)
        self.allocations += 1
        self.bytes_allocated += size
        return paddr

    def alloc_bootmem(self, size: int, align: int, goal: int) -> int:
        """__alloc_bootmem(): every node in turn; none can: the ALERT line and panic()."""
        for bd in self.bdata:
            paddr = self.alloc_bootmem_core(bd, size, align, goal)
            if paddr is not None:
                return paddr
        return self._out_of_memory(size)

    def alloc_bootmem_node(self, bd: BootmemData | None, size: int, align: int, goal: int) -> int:
        """__alloc_bootmem_node(): that node first, then any (__alloc_bootmem)."""
        if bd is not None:
            paddr = self.alloc_bootmem_core(bd, size, align, goal)
            if paddr is not None:
                return paddr
        return self.alloc_bootmem(size, align, goal)

    def _out_of_memory(self, size: int) -> int:
        self.m.printk(f"bootmem alloc of {size} bytes failed!", "CRITICAL")
        panic("Out of memory")
        raise AssertionError("unreachable: panic() does not return")

    # -- the hand-over ----------------------------------------------------------------------
    def free_all_bootmem(self) -> int:
        """free_all_bootmem() and the rest of mem_init(): give memory to the buddy allocator.

        Pages whose bit is clear, then each bitmap's own pages, then (i386
        set_highmem_pages_init) the highmem pages go to the buddy allocator; pages whose
        bit is set keep PG_reserved for good. Returns what free_all_bootmem returns:
        the low pages released, bitmap pages included.
        """
        mem = self.mem
        reserved: list[tuple[int, int]] = []
        low_freed = 0
        for bd in self.bdata:
            bitmap = bd.node_bootmem_map
            assert bitmap is not None
            base, eidx = bd.start_pfn, bd.eidx
            map_lo, map_hi = bd.map_pfn - base, bd.map_pfn - base + bd.map_pages
            i = 0
            while i < eidx:
                s = _find_bit(bitmap, i, eidx, 1)
                if s >= eidx:
                    break
                e = _find_bit(bitmap, s, eidx, 0)
                for a, b in ((s, min(e, map_lo)), (max(s, map_hi), e)):  # the bitmap pages go too
                    if a < b:
                        reserved.append((base + a, base + b))
                i = e
            kept = sum(b - a for a, b in reserved if bd.start_pfn <= a < bd.node_low_pfn)
            low_freed += eidx - kept
            bd.node_bootmem_map = None
        handed = mem.free_all_to_buddy(p for a, b in reserved for p in range(a, b))
        self.reserved_ranges = reserved
        self.handed_to_buddy = handed
        self.freed_by_free_all = low_freed
        self.handed_over = True
        self._check_handover()
        self._print_mem_init()
        return low_freed

    def _print_mem_init(self) -> None:
        mem = self.mem
        kb = PAGE_SIZE >> 10
        reservedpages = sum(b - a for a, b in self.reserved_ranges)
        highmem = mem.nr_pages - mem.max_low_pfn
        self.m.printk(f"Memory: {mem.nr_free_pages() * kb}k/{mem.nr_pages * kb}k available (0k kernel code, "
                      f"{reservedpages * kb}k reserved, 0k data, 0k init, {highmem * kb}k highmem)")

    # -- statistics and invariants ---------------------------------------------------------
    def statistics(self) -> BootmemStatistics:
        mem = self.mem
        return BootmemStatistics(
            total_pages=mem.nr_pages, lowmem_pages=sum(bd.eidx for bd in self.bdata),
            highmem_pages=mem.nr_pages - mem.max_low_pfn, bitmap_pages=sum(bd.map_pages for bd in self.bdata),
            allocations=self.allocations, bytes_allocated=self.bytes_allocated,
            reserved_twice=self.reserved_twice, handed_over=self.handed_over,
            reserved_pages=sum(b - a for a, b in self.reserved_ranges) if self.handed_over else 0,
            handed_to_buddy=self.handed_to_buddy, free_all_bootmem=self.freed_by_free_all)

    def _check_handover(self) -> None:
        """Right after the hand-over: PG_reserved pages are exactly the bootmem-reserved ones."""
        mem = self.mem
        kept = sum(b - a for a, b in self.reserved_ranges)
        if mem.count_flag(PG_reserved) != kept:
            raise InconsistentState(f"bootmem hand-over: {mem.count_flag(PG_reserved)} pages have PG_reserved, "
                                    f"bootmem kept {kept} reserved")
        self.check()

    def check(self) -> None:
        """Reserved bits match PG_reserved pages; the accounting adds up.

        While booting every page is still PG_reserved (nothing has been handed over) and
        every bitmap's padding and own pages are reserved. After the hand-over every page
        bootmem kept is PG_reserved, held (count >= 1) and in no free list, and
        kept + handed to buddy == total pages. (Later code may SetPageReserved pages of
        its own, so only that direction is checked once the machine runs.)
        """
        mem = self.mem
        if not self.handed_over:
            for bd in self.bdata:
                bitmap = bd.node_bootmem_map
                if bitmap is None:
                    raise InconsistentState(f"{bd!r}: bitmap freed before the hand-over")
                if mem.count_flag(PG_reserved, bd.start_pfn, bd.node_low_pfn) != bd.eidx:
                    raise InconsistentState(f"{bd!r}: a page lost PG_reserved before free_all_bootmem")
                if _count_set(bitmap, bd.eidx, len(bitmap) * 8) != len(bitmap) * 8 - bd.eidx:
                    raise InconsistentState(f"{bd!r}: padding bits past node_low_pfn are clear")
                lo = bd.map_pfn - bd.start_pfn
                if _count_set(bitmap, lo, lo + bd.map_pages) != bd.map_pages:
                    raise InconsistentState(f"{bd!r}: the bitmap's own pages are not reserved")
            return
        kept = 0
        for a, b in self.reserved_ranges:
            kept += b - a
            if mem.count_flag(PG_reserved, a, b) != b - a:
                raise InconsistentState(f"bootmem-reserved pfns {a:#x}-{b:#x}: a page lost PG_reserved")
            if min(mem.count[a:b]) < 1:  # a free page (buddy, per-CPU list) has count 0
                raise InconsistentState(f"bootmem-reserved pfns {a:#x}-{b:#x}: a page has count 0 (freed)")
        if kept + self.handed_to_buddy != mem.nr_pages:
            raise InconsistentState(f"bootmem accounting: {kept} reserved + {self.handed_to_buddy} handed to "
                                    f"buddy != {mem.nr_pages} pages")
        if any(bd.node_bootmem_map is not None for bd in self.bdata):
            raise InconsistentState("bootmem: a bitmap survived free_all_bootmem")


# --------------------------------------------------------------------------------------
# The boot phase (called by percpu_kmem/boot.py)
# --------------------------------------------------------------------------------------


def bootmem_init(m: Machine, mem: PhysMem) -> Bootmem:
    """setup_bootmem_allocator(): the boot allocator of ``m`` (boot.py stores it as ``m.bootmem``)."""
    bm = Bootmem(m, mem)
    m.register_checker("bootmem", bm.check)
    return bm


def boot_phase(m: Machine, bm: Bootmem) -> Bootmem:
    """The ``init`` functions, then mem_init()'s hand-over; returns ``bm``.

    Runs before the page allocator exists, with ``m.bootmem`` already set. The init
    functions run as boot-CPU kernel threads (``Machine.run_boot_threads``), while an
    early stand-in for ``m.mm`` lets the memory accessors reach physical memory; an error
    in one ends the boot (it propagates out of ``Machine(...)``). A machine without init
    functions reserves nothing: every page reaches the buddy allocator, as before bootmem
    existed.
    """
    if m.boot_init:
        early: MemoryMap = _EarlyMM(m, bm.mem)
        # The one place m.mm is not a PageAllocator: during the boot phase only the accessors
        # reach it, and they need no more than a MemoryMap; the rest refuses (_EarlyMM).
        m.mm = early  # type: ignore[assignment]
        for layer in _LATER_LAYERS:
            setattr(m, layer, _EarlyLayer(layer))
        try:
            m.run_boot_threads(m.boot_init)
        finally:
            if getattr(m, "__dict__", {}).get("mm") is early:
                del m.mm
            for layer in _LATER_LAYERS:
                if isinstance(getattr(m, "__dict__", {}).get(layer), _EarlyLayer):
                    delattr(m, layer)
    if not bm.handed_over:
        bm.free_all_bootmem()
    return bm


# --------------------------------------------------------------------------------------
# The kernel-style interface (acts on the machine of the calling task)
# --------------------------------------------------------------------------------------


def _after_boot(bm: Bootmem, entry: str) -> bool:
    """True (and a report) when bootmem is used after free_all_bootmem().

    The report is the WARN_ON_ONCE(slab_is_available()) of 2.6.27-4.x bootmem, once per
    entry point; the call does nothing (2.6.11 had discarded the __init code by then).
    """
    if not bm.handed_over:
        return False
    t = current_task()
    file, line, _ = caller_site(2)
    bm.m.report("bootmem_after_boot", [
        warning_line(t, file, line, entry),
        f"{entry}() after free_all_bootmem(): the boot allocator is gone (slab is available); "
        "use kmalloc() or alloc_pages()"], site=f"{file}:{line}:{entry}")
    return True


def _check_size(what: str, size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise KmemUsageError(f"{what}: size(={size!r}) must be an int >= 0 (unsigned long)")
    return size


def _check_addr(what: str, addr: Any) -> int:
    if isinstance(addr, bool) or not isinstance(addr, int) or addr < 0:
        raise KmemUsageError(f"{what}: addr(={addr!r}) must be a physical address, an int >= 0 "
                             "(bootmem takes __pa(ptr), not the pointer)")
    return addr


def _check_align(fn: str, align: Any) -> int:
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise KmemUsageError(f"{fn}: align(={align!r}) must be an int >= 1 "
                             "(the kernel passes SMP_CACHE_BYTES or PAGE_SIZE)")
    return align


def _virt(paddr: int) -> int:
    return PAGE_OFFSET + paddr


def __alloc_bootmem(size: int, align: int, goal: int) -> int | None:
    """Allocate ``size`` zeroed bytes aligned to ``align``, preferably at or above ``goal``.

    Args:
        size: bytes (0 is a BUG, after the kernel's "zero-sized request" line).
        align: a power of two; below PAGE_SIZE, small requests share pages.
        goal: a physical address to search from first; 0 searches from the start.
    Returns:
        the kernel virtual address (low memory, direct map). Never None during boot:
        failure prints "bootmem alloc of N bytes failed!" and panics ("Out of memory").
        None after the boot (reported).
    Context: the boot phase (Machine(init=[...]) functions).
    """
    bm = current_machine().bootmem
    _check_size("__alloc_bootmem", size)
    _check_align("__alloc_bootmem", align)
    _check_addr("__alloc_bootmem goal", goal)
    if _after_boot(bm, "__alloc_bootmem"):
        return None
    return _virt(bm.alloc_bootmem(size, align, goal))


def __alloc_bootmem_node(pgdat: Any, size: int, align: int, goal: int) -> int | None:
    """__alloc_bootmem() from node ``pgdat`` (a node id or ``m.mem.nodes[i]``) first."""
    bm = current_machine().bootmem
    _check_size("__alloc_bootmem_node", size)
    _check_align("__alloc_bootmem_node", align)
    _check_addr("__alloc_bootmem_node goal", goal)
    bd = bm.node_bdata(pgdat, "__alloc_bootmem_node")
    if _after_boot(bm, "__alloc_bootmem_node"):
        return None
    return _virt(bm.alloc_bootmem_node(bd, size, align, goal))


_GOAL_DMA: Final = MAX_DMA_ADDRESS - PAGE_OFFSET  # __pa(MAX_DMA_ADDRESS)


def alloc_bootmem(size: int) -> int | None:
    """``__alloc_bootmem(size, SMP_CACHE_BYTES, __pa(MAX_DMA_ADDRESS))``: above 16 MB first."""
    return _alloc("alloc_bootmem", size, SMP_CACHE_BYTES, _GOAL_DMA)


def alloc_bootmem_low(size: int) -> int | None:
    """``__alloc_bootmem(size, SMP_CACHE_BYTES, 0)``: first fit from physical 0."""
    return _alloc("alloc_bootmem_low", size, SMP_CACHE_BYTES, 0)


def alloc_bootmem_pages(size: int) -> int | None:
    """``__alloc_bootmem(size, PAGE_SIZE, __pa(MAX_DMA_ADDRESS))``: whole pages above 16 MB first."""
    return _alloc("alloc_bootmem_pages", size, PAGE_SIZE, _GOAL_DMA)


def alloc_bootmem_low_pages(size: int) -> int | None:
    """``__alloc_bootmem(size, PAGE_SIZE, 0)``: whole pages from physical 0."""
    return _alloc("alloc_bootmem_low_pages", size, PAGE_SIZE, 0)


def alloc_bootmem_node(pgdat: Any, size: int) -> int | None:
    """``__alloc_bootmem_node(pgdat, size, SMP_CACHE_BYTES, __pa(MAX_DMA_ADDRESS))``."""
    return _alloc("alloc_bootmem_node", size, SMP_CACHE_BYTES, _GOAL_DMA, pgdat)


def alloc_bootmem_pages_node(pgdat: Any, size: int) -> int | None:
    """``__alloc_bootmem_node(pgdat, size, PAGE_SIZE, __pa(MAX_DMA_ADDRESS))``."""
    return _alloc("alloc_bootmem_pages_node", size, PAGE_SIZE, _GOAL_DMA, pgdat)


def alloc_bootmem_low_pages_node(pgdat: Any, size: int) -> int | None:
    """``__alloc_bootmem_node(pgdat, size, PAGE_SIZE, 0)``."""
    return _alloc("alloc_bootmem_low_pages_node", size, PAGE_SIZE, 0, pgdat)


_NO_NODE: Final = object()


def _alloc(entry: str, size: int, align: int, goal: int, pgdat: Any = _NO_NODE) -> int | None:
    bm = current_machine().bootmem
    _check_size(entry, size)
    bd = bm.node_bdata(pgdat, entry) if pgdat is not _NO_NODE else None
    if _after_boot(bm, entry):
        return None
    if pgdat is _NO_NODE:
        return _virt(bm.alloc_bootmem(size, align, goal))
    return _virt(bm.alloc_bootmem_node(bd, size, align, goal))


def reserve_bootmem(addr: int, size: int) -> None:
    """Mark physical [addr, addr + size) reserved (partial pages wholly); node 0.

    Context: the boot phase. BUG() for size 0 or a range beyond low memory.
    """
    bm = current_machine().bootmem
    _check_addr("reserve_bootmem", addr)
    _check_size("reserve_bootmem", size)
    if _after_boot(bm, "reserve_bootmem"):
        return
    bm.reserve_bootmem_core(bm.first, addr, size)


def free_bootmem(addr: int, size: int) -> None:
    """Give physical [addr, addr + size) back; only whole pages inside the range are freed.

    Context: the boot phase. BUG() for size 0, a range beyond low memory, or a page
    in the range that is free already (a double free).
    """
    bm = current_machine().bootmem
    _check_addr("free_bootmem", addr)
    _check_size("free_bootmem", size)
    if _after_boot(bm, "free_bootmem"):
        return
    bm.free_bootmem_core(bm.first, addr, size)


def reserve_bootmem_node(pgdat: Any, physaddr: int, size: int) -> None:
    """reserve_bootmem() on node ``pgdat``."""
    bm = current_machine().bootmem
    _check_addr("reserve_bootmem_node", physaddr)
    _check_size("reserve_bootmem_node", size)
    bd = _node_or_usage(bm, pgdat, "reserve_bootmem_node")
    if _after_boot(bm, "reserve_bootmem_node"):
        return
    bm.reserve_bootmem_core(bd, physaddr, size)


def free_bootmem_node(pgdat: Any, physaddr: int, size: int) -> None:
    """free_bootmem() on node ``pgdat``."""
    bm = current_machine().bootmem
    _check_addr("free_bootmem_node", physaddr)
    _check_size("free_bootmem_node", size)
    bd = _node_or_usage(bm, pgdat, "free_bootmem_node")
    if _after_boot(bm, "free_bootmem_node"):
        return
    bm.free_bootmem_core(bd, physaddr, size)


def _node_or_usage(bm: Bootmem, pgdat: Any, what: str) -> BootmemData:
    bd = bm.node_bdata(pgdat, what)
    if bd is None:
        raise KmemUsageError(f"{what}: node {pgdat!r} has no low memory, so no bootmem")
    return bd


def free_all_bootmem() -> int:
    """Hand every free page to the buddy allocator now (what mem_init() does).

    The boot phase calls it after the last init function; an init function may call it
    earlier, after which bootmem is gone for the rest of the boot. Returns the low
    pages released (bitmap pages included); after the boot: reported, returns 0.
    """
    bm = current_machine().bootmem
    if _after_boot(bm, "free_all_bootmem"):
        return 0
    return bm.free_all_bootmem()


def __pa(addr: int) -> int:
    """The physical address of a direct-map (low memory) kernel address."""
    mem = current_machine().mem
    if addr.__class__ is not int:
        check_int("__pa", "addr", addr, what="a kernel virtual address (int)")
    try:
        return mem.virt_to_phys(addr)
    except ValueError as e:
        raise KmemUsageError(f"__pa: addr(={addr:#x}): {e}") from None


def __va(paddr: int) -> int:
    """The direct-map kernel address of a low-memory physical address."""
    mem = current_machine().mem
    if paddr.__class__ is not int:
        check_int("__va", "paddr", paddr, what="a physical address (int)")
    try:
        return mem.phys_to_virt(paddr)
    except ValueError as e:
        raise KmemUsageError(f"__va: paddr(={paddr:#x}): {e}") from None



__all__ = ["alloc_bootmem", "alloc_bootmem_low", "alloc_bootmem_pages", "alloc_bootmem_low_pages",
           "alloc_bootmem_node", "alloc_bootmem_pages_node", "alloc_bootmem_low_pages_node",
           "__alloc_bootmem", "__alloc_bootmem_node", "reserve_bootmem", "free_bootmem",
           "reserve_bootmem_node", "free_bootmem_node", "free_all_bootmem", "__pa", "__va",
           "MAX_DMA_ADDRESS"]
