"""The buddy allocator of one zone: ``struct free_area`` and its split/merge rules.

Models Linux 2.6.11 mm/page_alloc.c (``__rmqueue``, ``expand``, ``__free_pages_bulk``,
``rmqueue_bulk``, ``free_pages_bulk``, ``frag_show`` for /proc/buddyinfo) and
include/linux/mmzone.h (``struct free_area { free_list; nr_free; }``, ``MAX_ORDER``).

Semantics kept from the kernel:

- allocation takes the *head* of the first non-empty list at or above the wanted order
  (LIFO: the block freed or split most recently is reused first, it is cache-hot);
- ``expand()`` keeps the lower half of a split block and puts every upper half at the
  head of the list one order down;
- freeing merges with ``buddy = pfn ^ (1 << order)`` while the buddy is a free block of
  the same order inside the zone, up to ``MAX_ORDER - 1``, and puts the merged block at
  the head of its list;
- a free block's head page has ``PG_private`` set and its order recorded (the kernel's
  ``set_page_order``), so struct page state tells which pages are buddy heads.

Simplified or added:

- A free list is a dict used as an insertion-ordered set of head pfns: inserting is
  ``list_add`` (the newest entry is the head), ``popitem()`` takes the head and ``del``
  unlinks one block in O(1), which is what coalescing needs.
- ``page_is_buddy()`` is answered by membership in ``free_lists[order]``, the lists being
  the truth; ``PG_private`` and the order are mirrored on the head page, and
  :meth:`BuddyZone.check` verifies the mirror.
- Block alignment is on absolute pfns (the kernel's ``page_idx`` is relative to a
  ``MAX_ORDER``-aligned ``zone_mem_map``, which comes to the same). Zones need not be
  ``MAX_ORDER`` aligned: a buddy outside the zone is never merged (``bad_range``).
- Double frees are detected (the kernel would corrupt its lists or BUG): a map of the
  pages inside free blocks makes "does this block overlap a free one?" a C-speed scan,
  done before anything changes. :class:`BuddyCorruption` reports it.
- The page checks of ``free_pages_check``/``bad_page`` (count, mapping, flags) belong
  to the page allocator, which calls in here only with clean pages; reference counts
  are left to it.
- No locking: the caller holds ``zone->lock``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..runtime.errors import InconsistentState, KmemUsageError
from .layout import (
    MAX_ORDER,
    MAX_ORDER_NR_PAGES,
    PG_active,
    PG_compound,
    PG_locked,
    PG_lru,
    PG_private,
    PG_reserved,
    PG_slab,
    PG_swapcache,
    PG_writeback,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from percpu_kmem.mm.physmem import PhysMem, Zone

_ONES: Final = memoryview(b"\x01" * MAX_ORDER_NR_PAGES)
_ZEROS: Final = memoryview(bytes(MAX_ORDER_NR_PAGES))
#: Flags no page inside a free block may carry (cf. 2.6.11 ``free_pages_check``).
FREE_PAGE_BAD_FLAGS: Final = (
    PG_locked | PG_lru | PG_active | PG_slab | PG_reserved | PG_writeback | PG_compound | PG_swapcache
)


class BuddyCorruption(InconsistentState):
    """A block was freed while (part of) it is already free: a double free.

    Carries ``zone`` (the :class:`~percpu_kmem.mm.physmem.Zone`), ``pfn`` and ``order``
    of the rejected free, and ``free_pfn``/``free_order`` of the free block it overlaps.
    The free lists are unchanged when this is raised; the page allocator turns it into
    a "Bad page state" report.
    """

    def __init__(self, zone: Zone, pfn: int, order: int, free_pfn: int, free_order: int) -> None:
        super().__init__(
            f"freeing pfn {pfn:#x} order {order} in zone {zone.name} of node {zone.node}: "
            f"it overlaps the free block pfn {free_pfn:#x} order {free_order} (double free?)"
        )
        self.zone = zone
        self.pfn = pfn
        self.order = order
        self.free_pfn = free_pfn
        self.free_order = free_order


def check_order(order: int) -> None:
    """Refuse orders outside ``0 .. MAX_ORDER-1``, naming the value."""
    if type(order) is not int:
        raise TypeError(f"order must be an int, not {order!r}")
    if order >= MAX_ORDER:
        raise KmemUsageError(f"order(={order}) must be < MAX_ORDER(={MAX_ORDER})")
    if order < 0:
        raise KmemUsageError(f"order(={order}) must be >= 0")


class BuddyZone:
    """The free areas of one zone (``zone->free_area[MAX_ORDER]`` and ``free_pages``).

    Attributes:
        free_lists: ``free_lists[order]`` maps each free block's head pfn to None, in
            list order: the last key is the list head.
        nr_free: ``nr_free[order]``, blocks on each list.
        free_pages: pages in all lists: 2.6's ``zone->free_pages``, which does not
            count pages sitting on per-CPU lists either.

    Context: no locking inside; the caller holds ``zone->lock``.
    """

    def __init__(self, mem: PhysMem, zone: Zone) -> None:
        self.mem = mem
        self.zone = zone
        #: split and merge steps (one per order) so far: the page allocator charges them
        self.steps = 0
        self.start_pfn = zone.start_pfn
        self.end_pfn = zone.end_pfn
        self.free_lists: list[dict[int, None]] = [{} for _ in range(MAX_ORDER)]
        self.nr_free: list[int] = [0] * MAX_ORDER
        self.free_pages = 0
        # 1 for every page inside a free block, indexed by pfn - start_pfn.
        self._free_map = bytearray(zone.end_pfn - zone.start_pfn)

    # ---- allocation ---------------------------------------------------------------

    def rmqueue(self, order: int) -> int | None:
        """Take a block of ``2**order`` pages: ``__rmqueue``. Returns its pfn, or None.

        The head block of the first non-empty list at ``order`` or above is taken and
        split by :meth:`_expand`. ``PG_private`` and the order are cleared on the block
        handed out; its reference count is the caller's business.
        """
        check_order(order)
        free_lists = self.free_lists
        for current in range(order, MAX_ORDER):
            area = free_lists[current]
            if not area:
                continue
            pfn, _ = area.popitem()
            self.nr_free[current] -= 1
            self.mem.flags[pfn] &= ~PG_private
            self.mem.order[pfn] = 0
            self._expand(pfn, order, current)
            size = 1 << order
            off = pfn - self.start_pfn
            self._free_map[off : off + size] = _ZEROS[:size]
            self.free_pages -= size
            return pfn
        return None

    def _expand(self, pfn: int, low: int, high: int) -> None:
        """Split the block at ``pfn`` from order ``high`` down to ``low``: ``expand()``.

        Each round halves the block and puts the upper half at the head of the list one
        order down; the lower half goes on being split and is what the caller gets.
        """
        flags = self.mem.flags
        orders = self.mem.order
        size = 1 << high
        self.steps += high - low
        while high > low:
            high -= 1
            size >>= 1
            upper = pfn + size
            self.free_lists[high][upper] = None
            self.nr_free[high] += 1
            flags[upper] |= PG_private
            orders[upper] = high

    def rmqueue_bulk(self, order: int, count: int) -> list[int]:
        """Take up to ``count`` blocks (``rmqueue_bulk``), stopping when the zone runs dry.

        The pfns come in the order taken; the pcp code appends them at the tail of its
        list, as the kernel's ``list_add_tail`` does.
        """
        check_order(order)
        if count < 0:
            raise KmemUsageError(f"count(={count}) must be >= 0")
        taken: list[int] = []
        for _ in range(count):
            pfn = self.rmqueue(order)
            if pfn is None:
                break
            taken.append(pfn)
        return taken

    # ---- freeing ------------------------------------------------------------------

    def free(self, pfn: int, order: int) -> None:
        """Give back the block of ``2**order`` pages at ``pfn``: ``__free_pages_bulk``.

        Merges with free buddies of equal order inside the zone, up to MAX_ORDER-1,
        and puts the result at the head of its list.

        Raises:
            ValueError: bad order, a pfn not aligned to the order, or a block not
                wholly inside this zone.
            BuddyCorruption: the block overlaps a free block (double free); nothing
                has changed.
        """
        check_order(order)
        size = 1 << order
        if type(pfn) is not int:
            raise TypeError(f"pfn must be an int, not {pfn!r}")
        if pfn & (size - 1):
            raise KmemUsageError(f"pfn {pfn!r} is not aligned to order {order} (a multiple of {size} pages)")
        start = self.start_pfn
        if pfn < start or pfn + size > self.end_pfn:
            raise KmemUsageError(
                f"block pfn {pfn:#x} order {order} is not inside zone {self.zone.name} of node "
                f"{self.zone.node} (pfn {start:#x}-{self.end_pfn:#x})"
            )
        off = pfn - start
        free_map = self._free_map
        hit = free_map.find(1, off, off + size)
        if hit != -1:
            found = self.find_free_block(start + hit)
            if found is None:
                raise self._bad(f"pfn {start + hit:#x} is marked free but lies in no free block")
            raise BuddyCorruption(self.zone, pfn, order, found[0], found[1])
        free_map[off : off + size] = _ONES[:size]
        self.free_pages += size

        flags = self.mem.flags
        orders = self.mem.order
        free_lists = self.free_lists
        first = order
        while order < MAX_ORDER - 1:
            buddy = pfn ^ (1 << order)
            area = free_lists[order]
            if buddy not in area:  # not free at this order, or outside the zone
                break
            del area[buddy]
            self.nr_free[order] -= 1
            flags[buddy] &= ~PG_private
            orders[buddy] = 0
            pfn &= buddy
            order += 1
        flags[pfn] |= PG_private
        orders[pfn] = order
        free_lists[order][pfn] = None
        self.nr_free[order] += 1
        self.steps += order - first

    def free_bulk(self, pfns: Iterable[int], order: int) -> int:
        """Free each block in turn (``free_pages_bulk``); returns how many were freed.

        If one raises :class:`BuddyCorruption`, the blocks before it stay freed and the
        rest are not touched, as the kernel frees them one by one.
        """
        n = 0
        for pfn in pfns:
            self.free(pfn, order)
            n += 1
        return n

    # ---- queries ------------------------------------------------------------------

    def is_free(self, pfn: int) -> bool:
        """Whether ``pfn`` lies inside some free block of this zone."""
        return self.start_pfn <= pfn < self.end_pfn and self._free_map[pfn - self.start_pfn] == 1

    def find_free_block(self, pfn: int) -> tuple[int, int] | None:
        """``(head_pfn, order)`` of the free block containing ``pfn``, or None."""
        for order in range(MAX_ORDER):
            head = pfn & ~((1 << order) - 1)
            if head in self.free_lists[order]:
                return head, order
        return None

    def largest_free_order(self) -> int:
        """Highest order with a free block, or -1 when the zone has no free page."""
        for order in range(MAX_ORDER - 1, -1, -1):
            if self.nr_free[order]:
                return order
        return -1

    def iter_free_blocks(self) -> Iterator[tuple[int, int]]:
        """Every free block as ``(pfn, order)``, order by order, each list head first."""
        for order, area in enumerate(self.free_lists):
            for pfn in reversed(area):
                yield pfn, order

    def buddyinfo_line(self, node_id: int | None = None) -> str:
        """This zone's line of /proc/buddyinfo, in the kernel's exact format.

        ``"Node %d, zone %8s "`` then ``"%6lu "`` per order 0..10, then a newline.
        """
        nid = self.zone.node if node_id is None else node_id
        counts = "".join("%6d " % n for n in self.nr_free)
        return "Node %d, zone %8s %s\n" % (nid, self.zone.name, counts)

    def __repr__(self) -> str:
        return f"<BuddyZone {self.zone.name} node {self.zone.node}: {self.free_pages} free pages>"

    # ---- invariants -----------------------------------------------------------------

    def check(self) -> None:
        """Walk the free lists and the page state behind them.

        Every block is naturally aligned, inside the zone, marked as a buddy head with
        its order, disjoint from the others and not left unmerged with a free buddy;
        counters match the lists; the pages inside free blocks are unreferenced and
        carry no flag a free page may not have.

        Raises:
            InconsistentState: naming the first problem found.
        """
        blocks = self._check_lists()
        self._check_disjoint(blocks)
        self._check_free_map(blocks)
        self._check_page_state(blocks)

    def _bad(self, what: str) -> InconsistentState:
        return InconsistentState(f"buddy zone {self.zone.name} of node {self.zone.node}: {what}")

    def _check_lists(self) -> list[tuple[int, int]]:
        flags = self.mem.flags
        orders = self.mem.order
        start, end = self.start_pfn, self.end_pfn
        blocks: list[tuple[int, int]] = []
        total = 0
        for order, area in enumerate(self.free_lists):
            if len(area) != self.nr_free[order]:
                raise self._bad(f"nr_free[{order}] is {self.nr_free[order]} but its list holds {len(area)} blocks")
            size = 1 << order
            for pfn in area:
                where = f"free block pfn {pfn:#x} order {order}"
                if pfn & (size - 1):
                    raise self._bad(f"{where} is not naturally aligned")
                if pfn < start or pfn + size > end:
                    raise self._bad(f"{where} is outside the zone (pfn {start:#x}-{end:#x})")
                if not flags[pfn] & PG_private:
                    raise self._bad(f"{where}: head page lacks PG_private")
                if orders[pfn] != order:
                    raise self._bad(f"{where}: head page records order {orders[pfn]}")
                if order < MAX_ORDER - 1 and (pfn ^ size) in area:
                    raise self._bad(f"{where} and its buddy pfn {pfn ^ size:#x} are both free but unmerged")
                blocks.append((pfn, size))
            total += size * len(area)
        if total != self.free_pages:
            raise self._bad(f"free_pages is {self.free_pages} but the lists hold {total} pages")
        blocks.sort()
        return blocks

    def _check_disjoint(self, blocks: list[tuple[int, int]]) -> None:
        prev_pfn, prev_end = -1, self.start_pfn
        for pfn, size in blocks:
            if pfn < prev_end:
                raise self._bad(f"free blocks at pfn {prev_pfn:#x} and {pfn:#x} overlap")
            prev_pfn, prev_end = pfn, pfn + size

    def _check_free_map(self, blocks: list[tuple[int, int]]) -> None:
        free_map = self._free_map
        if free_map.count(1) != self.free_pages or free_map.count(0) != len(free_map) - self.free_pages:
            raise self._bad("the map of pages inside free blocks disagrees with free_pages")
        for pfn, size in blocks:
            off = pfn - self.start_pfn
            if free_map.find(0, off, off + size) != -1:
                raise self._bad(f"the free-page map misses part of free block pfn {pfn:#x}")

    def _check_page_state(self, blocks: list[tuple[int, int]]) -> None:
        mem = self.mem
        counts = memoryview(mem.count).cast("B")
        width = mem.count.itemsize
        for pfn, size in blocks:
            end = pfn + size
            if counts[pfn * width : end * width].tobytes().strip(b"\0"):
                raise self._bad(f"a page of free block pfn {pfn:#x} has a non-zero reference count")
            if mem.any_flags(FREE_PAGE_BAD_FLAGS, pfn, end):
                raise self._bad(f"a page of free block pfn {pfn:#x} has a flag a free page cannot have")
            if mem.count_flag(PG_private, pfn, end) != 1:
                raise self._bad(f"free block pfn {pfn:#x}: PG_private is set on a page other than the head")


__all__ = ["FREE_PAGE_BAD_FLAGS", "BuddyCorruption", "check_order", "BuddyZone"]
