"""The page allocator: zones with watermarks, per-CPU hot/cold lists, the buddy
allocator under zone->lock, and the 2.6.11 allocation path with reclaim.

Models mm/page_alloc.c of 2.6.11:
``__alloc_pages`` (fast pass at pages_low, kswapd wake-up, a pass at pages_min with
the ``__GFP_HIGH``/atomic discounts, direct reclaim, OOM, the retry rules),
``buffered_rmqueue`` (order-0 pages through the per-CPU lists, refilled and
drained in batches under ``zone->lock``), ``free_hot_cold_page``, the watermark
and lowmem_reserve set-up, and the zonelists' fallback order.

``alloc_pages``/``__free_pages`` hold the order-0 per-CPU list's common case
themselves (written out with every check, scheduling point and charge of the
full path, in the same order); docs/page-allocator.md, "Figures".

Simplified: no compound-page metadata beyond the order; ``blk_congestion_wait``
is a sleep on the reclaim wait queue that any page free wakes; the OOM killer
kills the allocating task (see docs/page-allocator.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from ..runtime.costs import SharedLine
from ..runtime.errors import InconsistentState, KmemUsageError, NotInTaskError
from ..runtime.kernel import (
    cond_resched,
    in_interrupt,
    local_irq_restore,
    local_irq_save,
    might_sleep,
    report_hung_task,
)
from ..runtime.lockdep import current_gfp_context, fs_reclaim_acquire, fs_reclaim_release
from ..runtime.locks import (
    init_waitqueue_head,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    wait_event_timeout,
    wake_up,
)
from ..runtime.preempt import HARDIRQ_MASK, HUNG_TASK_TIMEOUT_NS, HUNG_TASK_TIMEOUT_SECS, HZ, NSEC_PER_JIFFY
from ..runtime.report import caller_site
from ..runtime.task import Task, current_task
from ..runtime.validate import bad, check_callable, check_choice, check_int, check_str
from .buddy import FREE_PAGE_BAD_FLAGS, BuddyCorruption
from .context import current_machine
from .fault_inject import FaultAttr, should_fail_alloc_page
from .gfp import (
    GFP_BITS_MASK,
    GFP_COLD,
    GFP_COMP,
    GFP_DMA,
    GFP_FS,
    GFP_HIGH,
    GFP_HIGHMEM,
    GFP_NOFAIL,
    GFP_NORETRY,
    GFP_NOWARN,
    GFP_REPEAT,
    GFP_WAIT,
    GFP_ZERO,
    GFP_ZONEMASK,
    c_hex,
    check_gfp,
    gfp_names,
)
from .layout import (
    MAX_ORDER,
    PAGE_SHIFT,
    PAGE_SIZE,
    ZONE_DMA,
    ZONE_HIGHMEM,
    ZONE_NAMES,
    ZONE_NORMAL,
    PG_compound,
    PG_dirty,
    PG_locked,
    PG_lru,
    PG_private,
    PG_reserved,
    PG_slab,
    PG_vmalloc,
    PG_writeback,
    format_page_flags,
)
from .physmem import Page, PhysMem, Zone
from .vmscan import Reclaim, Shrinker
from .vmstat import (
    ALLOCSTALL,
    NR_VM_EVENTS,
    OOM_KILL,
    PCP_DRAIN,
    PCP_HIT,
    PCP_REFILL,
    PF_MEMALLOC,
    PGALLOC,
    PGALLOC_FAIL,
    PGFREE,
    SWAP_CLUSTER_MAX,
    VM_EVENT_NAMES,
)

if TYPE_CHECKING:
    from ..machine import Machine
    from .access import IoMemory, TranslateHook
    from .kcsan import Kcsan

LOWMEM_RESERVE_RATIO: Final = (256, 32)
#: pages-to-check when a page comes out of the allocator dirty (free_pages_check/prep_new_page)
_BAD_FLAGS: Final = (PG_lru | PG_private | PG_locked | PG_reserved | PG_slab | PG_dirty | PG_writeback
                     | PG_vmalloc)
#: A page with one of these still belongs to someone (free_pages_check's PAGE_FLAGS_CHECK_AT_FREE):
#: the slab allocator, a vmalloc area or vmap, the LRU. Freeing it is refused with a report.
_OWNED_FLAGS: Final = PG_slab | PG_vmalloc | PG_lru
#: the GFP bits that send an order-0 alloc_pages() past its fast path: bits outside the mask
#: (a refusal, a negative int too), the cold list, zeroing
_PCP_SLOW_FLAGS: Final = ~GFP_BITS_MASK | GFP_COLD | GFP_ZERO
#: the flags put_page() checks before it frees a block
_PUT_CHECK_FLAGS: Final = _OWNED_FLAGS | PG_private | PG_reserved
#: the page flags a freed block keeps (the others are cleared when its last reference goes)
_KEEP_AT_FREE: Final = ~(FREE_PAGE_BAD_FLAGS | PG_private | PG_compound)
_OWNER_OF: Final = ((PG_slab, "the slab allocator owns (free it with kfree/kmem_cache_free)"),
                    (PG_vmalloc, "is mapped into the vmalloc window (vfree/vunmap the area first)"),
                    (PG_lru, "is on the LRU as page cache (reclaim frees it)"))
#: the retries of a stalled allocation that take as long as the hung-task timeout (HZ/50 each)
HUNG_TASK_RETRIES: Final = HUNG_TASK_TIMEOUT_SECS * HZ // (HZ // 50)
#: a stalled allocation's wait is ended after this long (10 minutes of virtual time) even while
#: another task could still free pages (as mempool.MEMPOOL_WAIT_LIMIT_NS), or after as many retries
PAGE_ALLOC_WAIT_LIMIT_NS: Final = 600 * 1000 * NSEC_PER_JIFFY
PAGE_ALLOC_WAIT_LIMIT_RETRIES: Final = 600 * HZ // (HZ // 50)


class PerCpuPages:
    """struct per_cpu_pages: one hot or cold list of order-0 pages of one zone on one CPU.

    ``pfns[-1]`` is the list head (hottest, taken first); ``pfns[0]`` the tail
    (oldest, drained first), as list_add/list_del on the kernel's list.
    """

    __slots__ = ("count", "low", "high", "batch", "pfns")

    def __init__(self, low: int, high: int, batch: int) -> None:
        self.count = 0
        self.low = low
        self.high = high
        self.batch = batch
        self.pfns: list[int] = []


class ZoneAlloc:
    """The allocator's side of one zone: lock, watermarks, reserves, per-CPU lists."""

    def __init__(self, zone: Zone, nr_cpus: int) -> None:
        self.zone = zone
        self.buddy = zone.buddy
        self.idx = zone.idx
        self.node = zone.node
        self.name = ZONE_NAMES[zone.idx]
        self.present = zone.present_pages
        self.lock = spin_lock_init(f"zone->lock({self.node}:{self.name})")
        #: the cache line of the free-area list heads and free_pages (virtual time)
        self.free_line = SharedLine(f"zone->free_area({self.node}:{self.name})")
        #: per-zone pcp statistics: allocations served by a list, refills and drains of a list
        self.pcp_hit = self.pcp_refill = self.pcp_drain = 0
        self.pages_min = self.pages_low = self.pages_high = 0
        self.lowmem_reserve = [0, 0, 0]
        batch = zone_batchsize(self.present)
        self.batch = batch
        # pageset[cpu][0] hot, [1] cold
        self.pageset = [(PerCpuPages(2 * batch, 6 * batch, batch), PerCpuPages(0, 2 * batch, batch))
                        for _ in range(nr_cpus)]
        self.pages_scanned = 0

    def pcp_pages(self) -> int:
        return sum(p[0].count + p[1].count for p in self.pageset)

    def __repr__(self) -> str:
        return f"<zone {self.node}:{self.name} free={self.buddy.free_pages} min={self.pages_min}>"


def zone_batchsize(present: int) -> int:
    """free_area_init_core: 0.1% of the zone, at most 256 KiB worth, divided by 4, at least 1."""
    batch = present // 1024
    if batch * 4096 > 256 * 1024:
        batch = (256 * 1024) // 4096
    batch //= 4
    return max(1, batch)


def min_free_kbytes_for(lowmem_kbytes: int) -> int:
    """init_per_zone_pages_min: sqrt(lowmem_kbytes * 16), clamped to [128, 65536]."""
    return max(128, min(65536, math.isqrt(lowmem_kbytes * 16)))


class PageAllocator:
    """The page allocator of one machine (``m.mm``)."""

    def __init__(self, machine: Machine, mem: PhysMem) -> None:
        self.m = machine
        #: a pcp list step's cost (the machine's cost table, read once: the fast paths add it)
        self.hit_cost = machine.costs.percpu_hit
        self.mem = mem
        self.zones: list[ZoneAlloc] = [ZoneAlloc(z, machine.nr_cpus) for z in mem.zones]
        self._by_zid = {za.zone.id: za for za in self.zones}
        self.node_zones: list[list[ZoneAlloc | None]] = []
        for node in mem.nodes:
            row: list[ZoneAlloc | None] = [None, None, None]
            for z in node.zones:
                if z is not None:
                    row[z.idx] = self._by_zid[z.id]
            self.node_zones.append(row)
        lowmem_kb = (mem.lowmem_pages << PAGE_SHIFT) >> 10
        self.min_free_kbytes = min_free_kbytes_for(lowmem_kb)
        self.setup_per_zone_pages_min()
        self.setup_per_zone_lowmem_reserve()
        self._zonelists: dict[tuple[int, int], list[ZoneAlloc]] = {}
        #: ``zonelists_by_node[nid][gfp & GFP_ZONEMASK]``: zonelist() for every node and zone mask
        self.zonelists_by_node = [[self.zonelist(zm, nid) for zm in range(GFP_ZONEMASK + 1)]
                                  for nid in range(len(self.node_zones))]
        for c in machine.cpus:
            c.data["vm_events"] = [0] * NR_VM_EVENTS
        self.reclaim_wait = init_waitqueue_head("reclaim_wait")
        self.reclaim: Reclaim | None = None
        self.fail_next: list[int] = [0]  # fault injection: fail the next N allocations
        #: fail_page_alloc's knobs (mm/fault_inject.py): the Machine's once booted
        self.fail_page_alloc: FaultAttr | None = None
        self.total_pages = mem.nr_pages
        #: 2.6.11 mem_init's totalram_pages: what free_all_bootmem (and the highmem loop) handed
        #: the buddy allocator, the pages bootmem kept left out; meminfo's MemTotal. Every
        #: page is free when the page allocator starts, right after the hand-over.
        self.totalram_pages = mem.nr_free_pages()
        #: vmalloc/ioremap translate addresses outside the direct map: (addr, size, write) -> paddr | None
        self.translate_hook: TranslateHook | None = None
        #: device memory behind physical addresses beyond RAM (ioremap's devices: mm/vmalloc.py)
        self.iomem: IoMemory | None = None
        #: arch/x86 die_counter: the N of "Oops: 0000 [#N]", one count per machine (mm/access.py)
        self.die_counter = 0
        #: the data-race detector (mm/kcsan.py) of a Machine(kcsan=True), read by the accessors
        self.kcsan: Kcsan | None = None

    # -- set-up ---------------------------------------------------------------------------
    def setup_per_zone_pages_min(self) -> None:
        """Split min_free_kbytes across lowmem zones by size; highmem gets present/1024 in [32, 128]."""
        pages_min = self.min_free_kbytes >> (PAGE_SHIFT - 10)
        lowmem = sum(z.present for z in self.zones if z.idx != ZONE_HIGHMEM) or 1
        for z in self.zones:
            if z.idx == ZONE_HIGHMEM:
                mn = max(SWAP_CLUSTER_MAX, min(128, z.present // 1024))
            else:
                mn = pages_min * z.present // lowmem
            z.pages_min = mn
            z.pages_low = mn * 5 // 4
            z.pages_high = mn * 6 // 4

    def setup_per_zone_lowmem_reserve(self) -> None:
        """Each lower zone keeps (pages of the zones above, up to the class zone) / ratio.

        As 2.6.11 computes it, for every zone index of the node, populated or not: a zone
        that does not exist has 0 present pages, so on a machine without highmem the DMA
        zone's entry for HighMem is still Normal's pages / 256 (48 at 64M, 496 at 512M),
        which /proc/zoneinfo shows. Allocations never use that entry there: their
        class zone is the first populated zone of their zonelist.
        """
        for row in self.node_zones:
            for j in range(3):
                zj = row[j]
                present = zj.present if zj is not None else 0
                if zj is not None:
                    zj.lowmem_reserve[j] = 0
                for idx in range(j - 1, -1, -1):
                    lower = row[idx]
                    if lower is None:
                        continue
                    lower.lowmem_reserve[j] = present // LOWMEM_RESERVE_RATIO[idx]
                    present += lower.present

    def zonelist(self, gfp: int, nid: int) -> list[ZoneAlloc]:
        """build_zonelists: the zones a gfp mask may use, local node first, highest zone first."""
        key = (gfp & GFP_ZONEMASK, nid)
        zl = self._zonelists.get(key)
        if zl is None:
            types: tuple[int, ...]
            if gfp & GFP_DMA:
                types = (ZONE_DMA,)
            elif gfp & GFP_HIGHMEM:
                types = (ZONE_HIGHMEM, ZONE_NORMAL, ZONE_DMA)
            else:
                types = (ZONE_NORMAL, ZONE_DMA)
            n = len(self.node_zones)
            zl = []
            for k in range(n):
                row = self.node_zones[(nid + k) % n]
                zl.extend(row[t] for t in types if row[t] is not None)  # type: ignore[misc]
            self._zonelists[key] = zl
        return zl

    # -- watermarks -------------------------------------------------------------------------
    @staticmethod
    def watermark_ok(z: ZoneAlloc, order: int, mark: int, classzone_idx: int,
                     can_try_harder: bool, gfp_high: bool) -> bool:
        """zone_watermark_ok() of 2.6.11, to the letter."""
        buddy = z.buddy
        free = buddy.free_pages - (1 << order) + 1
        mn = mark
        if gfp_high:
            mn -= mn // 2
        if can_try_harder:
            mn -= mn // 4
        if free <= mn + z.lowmem_reserve[classzone_idx]:
            return False
        nr_free = buddy.nr_free
        for o in range(order):
            free -= nr_free[o] << o
            mn >>= 1
            if free <= mn:
                return False
        return True

    # -- the fast paths -------------------------------------------------------------------------
    def buffered_rmqueue(self, t: Task, z: ZoneAlloc, order: int, gfp: int) -> int | None:
        """Take a block from zone ``z``: order 0 through this CPU's hot or cold list."""
        pfn = None
        if order == 0:
            c = t.cpu
            irqs_were_off = c.irqs_off  # local_irq_save()
            c.irqs_off = True
            pcp = z.pageset[c.id][1 if gfp & GFP_COLD else 0]
            if pcp.count <= pcp.low:
                spin_lock(z.lock)
                buddy = z.buddy
                steps = buddy.steps
                got = buddy.rmqueue_bulk(0, pcp.batch)
                z.free_line.touch(t)
                cm = t.machine.costs
                t.charge(cm.page_struct * len(got) + cm.buddy_order * (buddy.steps - steps))
                spin_unlock(z.lock)
                c = t.cpu
                if got:
                    # the refilled pages go behind the cached ones, in the order taken
                    pcp.pfns[0:0] = got[::-1]
                    pcp.count += len(got)
                    c.data["vm_events"][PCP_REFILL] += 1
                    z.pcp_refill += 1
            elif pcp.count:
                c.data["vm_events"][PCP_HIT] += 1
                z.pcp_hit += 1
            if pcp.count:
                pfn = pcp.pfns.pop()
                pcp.count -= 1
                c.clock += self.hit_cost  # t.charge(costs.percpu_hit)
                if c.clock > t.vlimit and t.engine.deterministic:
                    t.engine.reopen(t)
            if not irqs_were_off:  # local_irq_restore()
                c.irqs_off = False
                if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
                    t.machine.irq.deliver_pending(c)
                t.budget -= 1  # local_irq_enable()'s scheduling point
                if t.budget <= 0:
                    t.engine.decide(t, "local_irq_enable")
        if pfn is None:
            flags = spin_lock_irqsave(z.lock)
            buddy = z.buddy
            steps = buddy.steps
            pfn = buddy.rmqueue(order)
            if pfn is not None:
                z.free_line.touch(t)
                cm = t.machine.costs
                t.charge(cm.page_struct * (1 + order) + cm.buddy_order * (buddy.steps - steps))
            spin_unlock_irqrestore(z.lock, flags)
        if pfn is not None:
            if order == 0:  # _prep_new_page(), written out for a single page
                mem = self.mem
                if mem.count[pfn] != 0 or mem.flags[pfn] & _BAD_FLAGS:
                    self._bad_page(t, pfn, "prep_new_page")
                    mem.flags[pfn] &= ~_BAD_FLAGS
                mem.count[pfn] = 1
                mem.order[pfn] = 0
                if gfp & GFP_ZERO:
                    mem.clear_pages(pfn, 1)
            else:
                self._prep_new_page(t, pfn, order, gfp)
            t.cpu.data["vm_events"][PGALLOC + z.idx] += 1 << order
            ev = self.m.events
            if ev is not None:
                ev.record(t, "alloc", f"alloc_pages({gfp_names(gfp)}, order {order}) = pfn {pfn:#x} [{z.name}]")
        return pfn

    def _prep_new_page(self, t: Task, pfn: int, order: int, gfp: int) -> None:
        mem = self.mem
        for p in range(pfn, pfn + (1 << order)):
            if mem.count[p] != 0 or mem.flags[p] & _BAD_FLAGS:
                self._bad_page(t, p, "prep_new_page")
                mem.flags[p] &= ~_BAD_FLAGS
            mem.count[p] = 0
        mem.count[pfn] = 1
        mem.order[pfn] = order
        if order:  # prep_compound_page: every page points at the head
            for p in range(pfn, pfn + (1 << order)):
                mem.flags[p] |= PG_compound
                mem.private[p] = pfn
        if gfp & GFP_ZERO:
            mem.clear_pages(pfn, 1 << order)

    def alloc_pages_at_boot(self, gfp: int, order: int, nid: int) -> int | None:
        """A block for boot code that runs before any task (setup_per_cpu_areas): the first
        zone of ``nid``'s zonelist for ``gfp`` that has one, prepared as prep_new_page does
        (zeroed with __GFP_ZERO); its pfn, or None. Nothing else runs yet, so the buddy is
        used directly: no zone->lock, no per-CPU lists, no watermarks, no reclaim."""
        for z in self.zonelist(gfp, nid):
            pfn = z.buddy.rmqueue(order)
            if pfn is not None:
                self._prep_new_page(None, pfn, order, gfp)  # type: ignore[arg-type]
                return pfn
        return None

    def page_is_free(self, pfn: int) -> bool:
        """``pfn`` lies in a free block of its zone's buddy allocator (invariant walks)."""
        return self._by_zid[self.mem.zone_id[pfn]].buddy.is_free(pfn)

    def _bad_page(self, t: Task, pfn: int, where: str) -> None:
        mem = self.mem
        self.m.report("bad_page", [
            f"Bad page state at {where} (in process '{t.comm}', page pfn:{pfn:#x})",
            f"flags:0x{mem.flags[pfn]:08x} mapping:00000000 mapcount:0 count:{mem.count[pfn]}",
            "Trying to fix it up, but a reboot is needed"], site=f"{where}:{pfn}")

    # -- freeing ---------------------------------------------------------------------------------
    def free_pages_check(self, t: Task, pfn: int, order: int, where: str) -> bool:
        """Refuse (with a report) a free that would corrupt the allocator; True if fine."""
        mem = self.mem
        if mem.flags[pfn] & PG_reserved:
            self._bad_page(t, pfn, where)
            return False
        if mem.count[pfn] != 0:
            return True  # still referenced: put_page_testzero decided
        return True

    def put_page(self, t: Task, pfn: int, order: int, cold: bool, where: str) -> None:
        """__free_pages: drop a reference; the last one frees the block."""
        mem = self.mem
        if not 0 <= pfn < mem.nr_pages:
            raise KmemUsageError(f"{where}: pfn {pfn:#x} is not a page of this machine")
        cnt = mem.count[pfn]
        fl = mem.flags[pfn]
        if cnt != 1 or fl & _PUT_CHECK_FLAGS or order != mem.order[pfn]:
            # not the clean last reference of the block: a report, or only a reference dropped
            if cnt <= 1 and fl & _OWNED_FLAGS:  # the last reference (or a tail page)
                self._bad_page_owned(t, pfn, order, where)
                return
            if cnt <= 0 or fl & PG_private:
                self._double_free(t, pfn, order, where)
                return
            if fl & PG_reserved:
                self._bad_page(t, pfn, where)
                return
            if order != mem.order[pfn]:
                file, line, _ = caller_site(3)
                self.m.report("bad_page_order", [
                    f"BUG: Bad page state: {where}(pfn:{pfn:#x}, order:{order}) of a block allocated "
                    f"with order {mem.order[pfn]}", f"at {file}:{line}"], site=f"{file}:{line}")
                return
            mem.count[pfn] = cnt - 1  # cnt > 1 here: the block stays
            return
        mem.count[pfn] = 0
        if self.kcsan is not None:  # freed memory starts afresh for the race detector
            self.kcsan.forget_pages(pfn, order)
        ev = self.m.events
        if ev is not None:
            ev.record(t, "free", f"{where}(pfn {pfn:#x}, order {order})")
        mem.flags[pfn] = fl & _KEEP_AT_FREE
        if order:  # destroy_compound_page
            for p in range(pfn + 1, pfn + (1 << order)):
                mem.flags[p] &= ~PG_compound
                mem.private[p] = 0
            mem.order[pfn] = 0  # (an order-0 page's is 0 already: checked above)
        mem.private[pfn] = 0
        mem.owner[pfn] = 0
        c = t.cpu
        c.data["vm_events"][PGFREE] += 1 << order
        if order == 0:
            # free_hot_cold_page(), written out: the page goes on this CPU's hot (or cold)
            # list, interrupts off; a full list first gives a batch back to the buddy. One
            # scheduling point: the local_irq_restore() at the end (local_irq_save and the
            # percpu_hit charge written out too, with their semantics)
            z = self.zones[mem.zone_id[pfn]]  # zone ids are indexes of mem.zones, and of self.zones
            irqs_were_off = c.irqs_off  # local_irq_save()
            c.irqs_off = True
            pcp = z.pageset[c.id][1 if cold else 0]
            if pcp.count < pcp.high:
                pcp.pfns.append(pfn)
                pcp.count += 1
            elif pcp.batch:
                n = pcp.batch
                batch = pcp.pfns[:n]
                del pcp.pfns[:n]
                pcp.count -= len(batch)
                spin_lock(z.lock)
                self._buddy_free_bulk(t, z, batch)
                spin_unlock(z.lock)
                c.data["vm_events"][PCP_DRAIN] += 1
                z.pcp_drain += 1
                pcp.pfns.append(pfn)
                pcp.count += 1
                c = t.cpu
            else:  # per-CPU lists off (set_pagesets): straight to the buddy under zone->lock
                spin_lock(z.lock)
                self._buddy_free_bulk(t, z, [pfn])
                spin_unlock(z.lock)
                c = t.cpu
            c.clock += self.hit_cost  # t.charge(costs.percpu_hit)
            if c.clock > t.vlimit and t.engine.deterministic:
                t.engine.reopen(t)
            if not irqs_were_off:  # local_irq_restore(): the point
                c.irqs_off = False
                if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
                    t.machine.irq.deliver_pending(c)
                t.budget -= 1
                if t.budget <= 0:
                    t.engine.decide(t, "local_irq_enable")
        else:
            self.free_pages_ok(t, pfn, order)
        if self.reclaim_wait.waiters:
            wake_up(self.reclaim_wait)

    def _bad_page_owned(self, t: Task, pfn: int, order: int, where: str) -> None:
        """free_pages_check found PAGE_FLAGS_CHECK_AT_FREE flags: reported in today's
        bad_page() words, and refused (2.6 "fixed it up" and freed the page while its
        owner still used it; here the page stays with its owner, nothing is lost)."""
        mem = self.mem
        fl = mem.flags[pfn]
        whose = next(text for bit, text in _OWNER_OF if fl & bit)
        file, line, func = caller_site(3)
        self.m.report("bad_page", [
            f"BUG: Bad page state in process {t.comm}  pfn:{pfn:05x}",
            f"page:(pfn {pfn:#x}) refcount:{mem.count[pfn]} mapcount:0 mapping:00000000 index:0x0",
            f"flags: {fl:#x}({format_page_flags(fl)})",
            "page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set",
            f"{where}(pfn:{pfn:#x}, order:{order}) of a page that {whose}: refused",
            f"at {file}:{line} in {func}"], site=f"{file}:{line}:{pfn}", extra={"pfn": pfn, "flags": fl})

    def _double_free(self, t: Task, pfn: int, order: int, where: str) -> None:
        file, line, func = caller_site(3)
        self.m.report("double_free", [
            f"BUG: Bad page state in process {t.comm}  pfn:{pfn:05x}",
            f"page:(pfn {pfn:#x}) refcount:{self.mem.count[pfn]} order:{order}",
            f"page dumped because: {where}() of a page that is already free (double free)",
            f"at {file}:{line} in {func}"], site=f"{file}:{line}:{pfn}")

    def _buddy_free_bulk(self, t: Task, z: ZoneAlloc, pfns: list[int]) -> None:
        """Free order-0 pages to the buddy (zone->lock held): struct pages and merges charged."""
        steps = z.buddy.steps
        for p in pfns:
            self._buddy_free(t, z, p, 0)
        z.free_line.touch(t)
        cm = t.machine.costs
        t.charge(cm.page_struct * len(pfns) + cm.buddy_order * (z.buddy.steps - steps))

    def _buddy_free(self, t: Task, z: ZoneAlloc, pfn: int, order: int) -> None:
        try:
            z.buddy.free(pfn, order)
        except BuddyCorruption:
            self._double_free(t, pfn, order, "__free_pages")

    def free_pages_ok(self, t: Task, pfn: int, order: int) -> None:
        z = self._by_zid[self.mem.zone_id[pfn]]
        flags = spin_lock_irqsave(z.lock)
        steps = z.buddy.steps
        self._buddy_free(t, z, pfn, order)
        z.free_line.touch(t)
        cm = t.machine.costs
        t.charge(cm.page_struct * (1 + order) + cm.buddy_order * (z.buddy.steps - steps))
        spin_unlock_irqrestore(z.lock, flags)

    def drain_cpu_pages(self, t: Task, cpu: int) -> int:
        """__drain_pages: give every page on ``cpu``'s lists back to the buddy allocator."""
        n = 0
        for z in self.zones:
            for pcp in z.pageset[cpu]:
                if pcp.count:
                    flags = spin_lock_irqsave(z.lock)
                    pfns = pcp.pfns[:]
                    pcp.pfns.clear()
                    pcp.count = 0
                    self._buddy_free_bulk(t, z, pfns)
                    spin_unlock_irqrestore(z.lock, flags)
                    n += len(pfns)
        if n:
            self.m.cpus[cpu].data["vm_events"][PCP_DRAIN] += 1
        return n

    def set_pagesets(self, t: Task, batch: int, high: int, low: int | None = None) -> None:
        """Set every CPU's hot list of every zone to ``batch``/``high`` (the zone fields a
        study tunes; ``low`` defaults to 0) and the cold list to batch/2 and 2*batch, then
        drain the lists. ``batch == 0`` turns the per-CPU lists off: every order-0
        allocation and free goes to the buddy under zone->lock (the boot pagesets' state,
        made permanent). Call from a task on a quiet machine (boot-time tuning)."""
        check_int("set_pagesets", "batch", batch, 0)
        check_int("set_pagesets", "high", high, 0 if batch == 0 else batch,
                  what="an int (at least batch)")
        if low is not None:
            check_int("set_pagesets", "low", low, 0, max(0, high - 1), what="an int (below high)")
        for z in self.zones:
            z.batch = batch
            for hot, cold in z.pageset:
                if batch == 0:
                    hot.low = cold.low = -1
                    hot.high = cold.high = hot.batch = cold.batch = 0
                else:
                    hot.low, hot.high, hot.batch = (low or 0), high, batch
                    cold.low, cold.high, cold.batch = 0, 2 * batch, max(1, batch // 2)
        flags = local_irq_save()
        for cpu in range(self.m.nr_cpus):
            self.drain_cpu_pages(t, cpu)
        local_irq_restore(flags)

    def percpu_pagelist_fraction(self, t: Task, fraction: int) -> None:
        """The 2.6.16 sysctl vm.percpu_pagelist_fraction: each zone's hot lists get
        high = present_pages / fraction and batch = max(1, high / 4), at most PAGE_SHIFT * 8
        (setup_pagelist_highmark); fraction >= 8, as the sysctl's minimum."""
        check_int("percpu_pagelist_fraction", "fraction", fraction, 8)
        for z in self.zones:
            high = z.present // fraction
            batch = max(1, min(high // 4, PAGE_SHIFT * 8))
            for hot, _cold in z.pageset:
                hot.low, hot.high, hot.batch = 0, max(high, batch), batch

    def pcp_stats(self) -> list[dict[str, int | str]]:
        """Per zone: pages on the per-CPU lists, and the lists' hits, refills and drains."""
        return [{"zone": f"{z.node}:{z.name}", "pcp_pages": z.pcp_pages(), "pcp_hit": z.pcp_hit,
                 "pcp_refill": z.pcp_refill, "pcp_drain": z.pcp_drain,
                 "lock_acquisitions": z.lock.acquisitions, "lock_contentions": z.lock.contentions,
                 "line_bounces": z.free_line.bounces} for z in self.zones if z.present]

    def drain_local_pages(self) -> int:
        t = current_task()
        flags = local_irq_save()
        n = self.drain_cpu_pages(t, t.cpu.id)
        local_irq_restore(flags)
        return n

    # -- __alloc_pages ---------------------------------------------------------------------------
    def alloc_pages(self, gfp: int, order: int, nid: int = -1, what: str = "alloc_pages",
                    t: Task | None = None, slept: bool = False) -> int | None:
        """__alloc_pages of 2.6.11: returns the pfn of a 2**order block, or None.

        ``what`` names the caller's kernel function in a refusal of its arguments; ``t`` is
        the calling task, when the caller has it at hand (else it is looked up). ``slept``:
        the caller (alloc_pages()'s fast path, without lockdep) has passed might_sleep().
        """
        if t is None:
            t = current_task()
        if gfp.__class__ is not int or not 0 <= gfp <= GFP_BITS_MASK:
            check_gfp(gfp, what)
        if order.__class__ is not int or order < 0:
            check_int(what, "order", order, 0)
        if order >= MAX_ORDER:
            return None  # alloc_pages_node(): order >= MAX_ORDER gives NULL
        if t.gfp_ctx:
            gfp = current_gfp_context(gfp)  # memalloc_nofs/noio scopes narrow the mask
        wait = gfp & GFP_WAIT
        if wait and not slept:  # might_alloc(): fs_reclaim (lockdep reports first), might_sleep()
            if t.machine.lockdep is not None:  # this call could enter reclaim
                fs_reclaim_acquire(gfp)
                fs_reclaim_release(gfp)
            c = t.cpu
            if c.preempt_count or c.irqs_off or t.is_idle:  # might_sleep(), written out
                might_sleep()  # the report (the rare case), and the point
            else:
                t.budget -= 1
                if t.budget <= 0:
                    t.engine.decide(t, "might_sleep")
        if self.fail_next[0] > 0 and not gfp & GFP_NOFAIL:
            self.fail_next[0] -= 1
            self._nopage(t, gfp, order)
            return None
        fpa = self.fail_page_alloc
        if fpa is not None and fpa.probability | t.fail_nth and should_fail_alloc_page(fpa, gfp, order):
            return None  # prepare_alloc_pages(): should_fail_alloc_page() made it fail
        if nid < 0:
            nid = t.cpu.node
        by_node = self.zonelists_by_node
        zones = by_node[nid][gfp & GFP_ZONEMASK] if nid < len(by_node) else self.zonelist(gfp, nid)
        classzone_idx = zones[0].idx
        if order == 0:  # the first pass for one page: watermark_ok(z, 0, pages_low, ...) written out
            for z in zones:
                if z.buddy.free_pages > z.pages_low + z.lowmem_reserve[classzone_idx]:
                    pfn = self.buffered_rmqueue(t, z, 0, gfp)
                    if pfn is not None:
                        return pfn
        can_try_harder = not wait
        gfp_high = bool(gfp & GFP_HIGH)
        stall_start = None
        retries = 0
        first = order != 0  # an order-0 request made its first pass above
        while True:  # restart:
            for z in zones if first else ():
                if self.watermark_ok(z, order, z.pages_low, classzone_idx, False, False):
                    pfn = self.buffered_rmqueue(t, z, order, gfp)
                    if pfn is not None:
                        return pfn
            first = True
            for z in zones:
                self.wakeup_kswapd(t, z, order)
            for z in zones:
                if self.watermark_ok(z, order, z.pages_min, classzone_idx, can_try_harder, gfp_high):
                    pfn = self.buffered_rmqueue(t, z, order, gfp)
                    if pfn is not None:
                        return pfn
            if t.flags & PF_MEMALLOC and not in_interrupt():
                for z in zones:  # reclaim itself may dip into everything
                    pfn = self.buffered_rmqueue(t, z, order, gfp)
                    if pfn is not None:
                        return pfn
                self._nopage(t, gfp, order)
                return None
            if not wait:
                self._nopage(t, gfp, order)
                return None
            while True:  # rebalance:
                cond_resched()
                t.cpu.data["vm_events"][ALLOCSTALL] += 1
                fs_reclaim_acquire(gfp)  # __perform_reclaim(): reclaim under fs_reclaim, then
                t.flags |= PF_MEMALLOC  # as reclaim itself
                try:
                    progress = self.try_to_free_pages(t, zones, gfp, order)
                finally:
                    t.flags &= ~PF_MEMALLOC
                    fs_reclaim_release(gfp)
                cond_resched()
                if progress:
                    for z in zones:
                        if self.watermark_ok(z, order, z.pages_min, classzone_idx, can_try_harder, gfp_high):
                            pfn = self.buffered_rmqueue(t, z, order, gfp)
                            if pfn is not None:
                                return pfn
                elif gfp & GFP_FS and not gfp & GFP_NORETRY:
                    for z in zones:
                        if self.watermark_ok(z, order, z.pages_high, classzone_idx, False, False):
                            pfn = self.buffered_rmqueue(t, z, order, gfp)
                            if pfn is not None:
                                return pfn
                    self.out_of_memory(t, gfp, order)
                    break  # goto restart
                do_retry = False
                if not gfp & GFP_NORETRY:
                    if order <= 3 or gfp & GFP_REPEAT:
                        do_retry = True
                    if gfp & GFP_NOFAIL:
                        do_retry = True
                if not do_retry:
                    self._nopage(t, gfp, order)
                    return None
                # Each retry sleeps 20 ms in congestion_wait: khungtaskd never fires for it, and a
                # wait that another task ends (it frees its pages after 130 s) is correct code.
                # A retry loop that can never succeed must still end: after khungtaskd's 120 s
                # (or as many retries), once no other task can free a page any more, or after
                # 10 minutes (or as many retries) whatever else runs.
                engine = t.engine
                retries += 1
                if stall_start is None:
                    stall_start = engine.now
                else:
                    stalled = engine.now - stall_start
                    if (stalled >= HUNG_TASK_TIMEOUT_NS or retries > HUNG_TASK_RETRIES) and (
                            stalled >= PAGE_ALLOC_WAIT_LIMIT_NS or retries > PAGE_ALLOC_WAIT_LIMIT_RETRIES
                            or not self._someone_may_free(t, engine)):
                        self._hung(t, gfp, order, max(stalled, HUNG_TASK_TIMEOUT_NS))
                self.congestion_wait(t, zones, order, classzone_idx)

    def congestion_wait(self, t: Task, zones: list[ZoneAlloc], order: int, classzone_idx: int) -> None:
        """blk_congestion_wait(WRITE, HZ/50): sleep on the reclaim wait queue until a page
        is freed somewhere or 20 ms of virtual time pass."""
        def freed_enough() -> bool:
            return any(self.watermark_ok(z, order, z.pages_min, classzone_idx, False, False) for z in zones)
        wait_event_timeout(self.reclaim_wait, freed_enough, HZ // 50)

    def _someone_may_free(self, me: Task, engine: Any) -> bool:
        """Can another task of the run still free a page? True while one is on a CPU or
        runnable, or sleeps with a timeout (msleep, schedule_timeout) anywhere but in
        congestion_wait (a fellow stalled allocation): it will run again, and may free.
        False when every other live task is done, stalled in the allocator too, or sleeps
        with nothing but another task to wake it (kswapd among them: its reclaim is what the
        caller's own direct reclaim already tried). As mempool's ``_someone_may_feed``."""
        stalled_q = self.reclaim_wait
        return bool(engine.others_may_run(me, lambda w: w is stalled_q))

    def _hung(self, t: Task, gfp: int, order: int, waited_ns: int) -> None:
        report_hung_task(waited_ns, f"page allocation (order:{order}, mode:{gfp:#x}({gfp_names(gfp)})) "
                                    "retries for ever and nothing can be reclaimed")

    def _nopage(self, t: Task, gfp: int, order: int) -> None:
        """The fail path: today's ``warn_alloc`` line (unless __GFP_NOWARN), then NULL.

        Kept: ``"%s: page allocation failure: order:%u, mode:%#x(%pGg), nodemask=%*pbl"``
        with a NULL nodemask, and dump_stack() (the report's call trace). Left out: the
        cpuset suffix and the Mem-Info dump (/proc/zoneinfo and buddyinfo show the same).
        2.6.11 printed ``"%s: page allocation failure. order:%d, mode:0x%x"``.
        """
        t.cpu.data["vm_events"][PGALLOC_FAIL] += 1
        if not gfp & GFP_NOWARN:
            self.m.report("page_alloc_failure", [
                f"{t.comm}: page allocation failure: order:{order}, mode:{c_hex(gfp)}({gfp_names(gfp)}), "
                "nodemask=(null)"], site=f"{order}:{gfp:#x}")
        return None

    def wakeup_kswapd(self, t: Task, z: ZoneAlloc, order: int) -> None:
        if z.buddy.free_pages > z.pages_low:
            return
        if self.reclaim is not None:
            self.reclaim.wake_kswapd(t, z.node, order)

    def try_to_free_pages(self, t: Task, zones: list[ZoneAlloc], gfp: int, order: int) -> int:
        """Direct reclaim; "progress" also counts pages that others freed meanwhile.

        2.6.11 retried the allocation only after reclaim reported progress, so a
        GFP_NOFS caller with nothing of its own to reclaim never saw pages another
        CPU freed; later kernels re-check the watermarks (should_reclaim_retry), and
        so does the model.
        """
        freed = self.reclaim.try_to_free_pages(t, zones, gfp, order) if self.reclaim is not None else 0
        if freed:
            return freed
        classzone_idx = zones[0].idx
        return int(any(self.watermark_ok(z, order, z.pages_min, classzone_idx, False, False) for z in zones))

    def out_of_memory(self, t: Task, gfp: int, order: int) -> None:
        """The OOM killer. The model kills the allocating task (documented simplification)."""
        t.cpu.data["vm_events"][OOM_KILL] += 1
        self.m.report("oom", [
            f"{t.comm} invoked oom-killer: gfp_mask={gfp:#x}({gfp_names(gfp)}), order={order}, oom_score_adj=0",
            f"Out of memory: Killed process {t.pid} ({t.comm})"], fatal=True)

    # -- views -----------------------------------------------------------------------------
    def vm_events(self) -> list[int]:
        total = [0] * NR_VM_EVENTS
        for c in self.m.cpus:
            for i, v in enumerate(c.data["vm_events"]):
                total[i] += v
        return total

    def nr_free_pages(self) -> int:
        return sum(z.buddy.free_pages + z.pcp_pages() for z in self.zones)

    def counters(self) -> dict[str, int]:
        """Every counter of the page allocator and reclaim, by name (Python-facing).

        The names /proc/vmstat prints (2.6.11's ``vmstat_text``, see mm/proc.py) and the
        model's own: ``nr_free_pages``, ``pcp_refill``, ``pcp_drain``, ``pcp_hit``,
        ``pgalloc_fail``, ``oom_kill``, ``kswapd_wake`` (per-CPU events), ``pgscan``,
        ``pgsteal``, ``pageout``, ``kswapd_runs``, ``slab_freed`` (reclaim totals) and
        ``zone_lock_acquisitions`` / ``zone_lock_contentions``.
        """
        out: dict[str, int] = {"nr_free_pages": self.nr_free_pages()}
        out.update(zip(VM_EVENT_NAMES, self.vm_events()))
        reclaim = self.reclaim
        if reclaim is not None:
            out.update(reclaim.stats)
            kinds = reclaim.counts()
        else:
            kinds = {"clean": 0, "dirty": 0, "anon": 0}
        out["nr_dirty"] = kinds["dirty"]
        out["nr_mapped"] = kinds["anon"]
        out["zone_lock_acquisitions"] = sum(z.lock.acquisitions for z in self.zones)
        out["zone_lock_contentions"] = sum(z.lock.contentions for z in self.zones)
        return out

    def check(self) -> None:
        """Every page is in exactly one place: buddy lists, a per-CPU list, or allocated."""
        mem = self.mem
        seen: dict[int, str] = {}
        for z in self.zones:
            z.buddy.check()
            for cpu, (hot, cold) in enumerate(z.pageset):
                for kind, pcp in (("hot", hot), ("cold", cold)):
                    if pcp.count != len(pcp.pfns):
                        raise InconsistentState(f"zone {z.name} cpu {cpu} {kind} list: count {pcp.count} "
                                                f"!= {len(pcp.pfns)} pages on it")
                    for p in pcp.pfns:
                        where = f"cpu {cpu} {kind} list of {z.name}"
                        if p in seen:
                            raise InconsistentState(f"pfn {p:#x} is on the {where} and the {seen[p]}")
                        if z.buddy.is_free(p):
                            raise InconsistentState(f"pfn {p:#x} is on the {where} and free in the buddy")
                        if mem.count[p] != 0:
                            raise InconsistentState(f"pfn {p:#x} on the {where} has count {mem.count[p]}")
                        if mem.zone_id[p] != z.zone.id:
                            raise InconsistentState(f"pfn {p:#x} on the {where} belongs to another zone")
                        seen[p] = where


def alloc_pages_failed_report_kinds() -> tuple[str, ...]:
    return ("page_alloc_failure",)




# ---------------------------------------------------------------------------------------------
# The kernel-style page interfaces (act on the machine of the calling task)
# ---------------------------------------------------------------------------------------------
def _page_of(page: Any, what: str, pa: PageAllocator | None = None) -> Page:
    """``page`` is a struct page (of this machine, when ``pa`` is given)."""
    if page.__class__ is not Page:
        raise bad(what, "page", page, "a struct page (from alloc_pages)")
    if pa is not None and page.mem is not pa.mem:
        raise KmemUsageError(f"{what}: page(={page!r}) is a page of another machine; this task runs on "
                             f"{pa.m!r}")
    return page


def _order_arg(order: Any, what: str) -> int:
    """An order argument of a free: an int in 0 .. MAX_ORDER-1 (no block is bigger)."""
    if order.__class__ is not int or not 0 <= order < MAX_ORDER:
        check_int(what, "order", order, 0, MAX_ORDER - 1)
    return order


def _alloc_pages_node(what: str, nid: Any, gfp_mask: Any, order: Any) -> Page | None:
    pa = current_task().machine.mm
    if gfp_mask.__class__ is not int or not 0 <= gfp_mask <= GFP_BITS_MASK:
        check_gfp(gfp_mask, what)
    if nid.__class__ is not int or not -1 <= nid < len(pa.node_zones):
        check_int(what, "nid", nid, -1, len(pa.node_zones) - 1, "a node id (-1: this CPU's node)")
    pfn = pa.alloc_pages(gfp_mask, order, nid, what)
    if pfn is None:
        return None
    return pa.mem._pages.get(pfn) or pa.mem.page(pfn)  # mem.page(pfn): the cached handle first


def alloc_pages_node(nid: int, gfp_mask: int, order: int) -> Page | None:
    """Allocate 2**order contiguous pages, preferring node ``nid`` (-1: this CPU's node).

    Returns:
        the struct page of the first page, or None (NULL) when the allocation fails
        (an order of MAX_ORDER or more always does, as in the kernel).
    Raises:
        KmemUsageError: ``nid``, ``gfp_mask`` or ``order`` is not an int in its range
            (a bool is not an int here), before anything is touched.
    Context: may sleep if ``gfp_mask`` has __GFP_WAIT (GFP_KERNEL); GFP_ATOMIC never sleeps
    and may be used in interrupt context.
    """
    return _alloc_pages_node("alloc_pages_node", nid, gfp_mask, order)


def alloc_pages(gfp_mask: int, order: int = 0) -> Page | None:
    """alloc_pages_node() on the current CPU's node."""
    t = current_task()
    m = t.machine
    pa = m.mm  # _alloc_pages_node(), written out for nid -1
    c = t.cpu
    if order.__class__ is int and not order and gfp_mask.__class__ is int and not gfp_mask & _PCP_SLOW_FLAGS \
            and not (c.preempt_count or c.irqs_off or t.is_idle or t.gfp_ctx) and m.lockdep is None:
        # PageAllocator.alloc_pages() and buffered_rmqueue() written out for one page off this
        # CPU's hot list, as they do it: in a task with interrupts on, preempt_count 0, no
        # memalloc scope and no lockdep, might_sleep()'s point (GFP_WAIT); then, if the first
        # zone of the zonelist is above pages_low, its hot list above its low mark, and no
        # event log or injected failure is on, the pcp hit, the percpu_hit charge, the
        # interrupts pending since, local_irq_restore()'s point and prep_new_page. (Setting
        # irqs_off around the list step would be seen by nothing.) Else alloc_pages() goes on.
        # (A list turned off by set_pagesets has low -1 and no pages.)
        if gfp_mask & GFP_WAIT:
            t.budget -= 1  # might_sleep()'s scheduling point
            if t.budget <= 0:
                t.engine.decide(t, "might_sleep")
                c = t.cpu
        z = pa.zonelists_by_node[c.node][gfp_mask & GFP_ZONEMASK][0]
        pcp = z.pageset[c.id][0]
        fpa = pa.fail_page_alloc
        if 0 < pcp.count > pcp.low and z.buddy.free_pages > z.pages_low + z.lowmem_reserve[z.idx] \
                and pa.fail_next[0] <= 0 and (fpa is None or not fpa.probability | t.fail_nth) and m.events is None:
            c.data["vm_events"][PCP_HIT] += 1
            z.pcp_hit += 1
            pfn = pcp.pfns.pop()
            pcp.count -= 1
            c.clock += pa.hit_cost
            if c.clock > t.vlimit and t.engine.deterministic:
                t.engine.reopen(t)
            if c.pending_irqs:
                m.irq.deliver_pending(c)
            t.budget -= 1  # local_irq_enable()'s scheduling point
            if t.budget <= 0:
                t.engine.decide(t, "local_irq_enable")
            mem = pa.mem
            if mem.count[pfn] != 0 or mem.flags[pfn] & _BAD_FLAGS:
                pa._bad_page(t, pfn, "prep_new_page")
                mem.flags[pfn] &= ~_BAD_FLAGS
            mem.count[pfn] = 1
            mem.order[pfn] = 0
            t.cpu.data["vm_events"][PGALLOC + z.idx] += 1
            return mem._pages.get(pfn) or mem.page(pfn)
        pfn = pa.alloc_pages(gfp_mask, 0, -1, "alloc_pages", t, True)
    else:
        pfn = pa.alloc_pages(gfp_mask, order, -1, "alloc_pages", t)  # checks gfp_mask, then order
    if pfn is None:
        return None
    mem = pa.mem
    return mem._pages.get(pfn) or mem.page(pfn)


def alloc_page(gfp_mask: int) -> Page | None:
    t = current_task()
    pa = t.machine.mm
    pfn = pa.alloc_pages(gfp_mask, 0, -1, "alloc_page", t)
    if pfn is None:
        return None
    mem = pa.mem
    return mem._pages.get(pfn) or mem.page(pfn)


def _get_free_pages(what: str, gfp_mask: Any, order: Any) -> int | None:
    pa = current_machine().mm
    check_gfp(gfp_mask, what)
    if gfp_mask & GFP_HIGHMEM:
        file, line, _ = caller_site(3)
        pa.m.report("bug", [f"kernel BUG at {file}:{line}!",
                            "VM_BUG_ON((gfp_mask & __GFP_HIGHMEM) != 0) in __get_free_pages"],
                    site=f"{file}:{line}")
        gfp_mask &= ~GFP_HIGHMEM
    pfn = pa.alloc_pages(gfp_mask, order, -1, what)
    return None if pfn is None else pa.mem.page_address(pfn)


def __get_free_pages(gfp_mask: int, order: int) -> int | None:
    """Allocate 2**order pages and return their kernel virtual address (None on failure).

    __GFP_HIGHMEM is a bug here (highmem pages have no address): it is reported and
    ignored.
    """
    return _get_free_pages("__get_free_pages", gfp_mask, order)


def __get_free_page(gfp_mask: int) -> int | None:
    return _get_free_pages("__get_free_page", gfp_mask, 0)


def get_zeroed_page(gfp_mask: int) -> int | None:
    """One page that reads as zeros."""
    check_gfp(gfp_mask, "get_zeroed_page")
    return _get_free_pages("get_zeroed_page", gfp_mask | GFP_ZERO, 0)


def __get_dma_pages(gfp_mask: int, order: int) -> int | None:
    """__get_free_pages(gfp_mask | GFP_DMA, order): 2**order pages below 16 MB (ZONE_DMA)."""
    check_gfp(gfp_mask, "__get_dma_pages")
    return _get_free_pages("__get_dma_pages", gfp_mask | GFP_DMA, order)


def _exact_size(size: Any, what: str) -> int:
    if size.__class__ is not int or size < 1:
        check_int(what, "size", size, 1, what="a size in bytes (an int >= 1)")
    return (size + PAGE_SIZE - 1) >> PAGE_SHIFT


def alloc_pages_exact(size: int, gfp_mask: int) -> int | None:
    """PAGE_ALIGN(size) bytes of physically contiguous pages (2.6.27 and later): the
    get_order(size) block from __get_free_pages(), split into order-0 pages
    (split_page), the pages past PAGE_ALIGN(size) freed at once (make_alloc_exact). Free
    with free_pages_exact(addr, size), the same size: each page is then a page of its own
    (free_pages(addr, order) of it is refused, the block being gone). __GFP_COMP is
    dropped, as the kernel's; __GFP_HIGHMEM is reported (no address). None when the
    order is MAX_ORDER or more, or the allocation fails.
    """
    nr = _exact_size(size, "alloc_pages_exact")
    check_gfp(gfp_mask, "alloc_pages_exact")
    order = (nr - 1).bit_length()
    if order >= MAX_ORDER:
        return None
    addr = _get_free_pages("alloc_pages_exact", gfp_mask & ~GFP_COMP, order)
    if addr is None:
        return None
    t = current_task()
    pa = t.machine.mm
    mem = pa.mem
    pfn = mem.virt_to_pfn(addr)
    if order:  # split_page(): 2**order pages with a reference each, no compound head
        for p in range(pfn, pfn + (1 << order)):
            mem.flags[p] &= ~PG_compound
            mem.private[p] = 0
            mem.count[p] = 1
        mem.order[pfn] = 0
        for p in range(pfn + nr, pfn + (1 << order)):
            pa.put_page(t, p, 0, False, "alloc_pages_exact")
    return addr


def free_pages_exact(virt: int | None, size: int) -> None:
    """Free what alloc_pages_exact(size) gave: free_page() of every page of
    [virt, virt + PAGE_ALIGN(size)). A larger size frees pages that are not the caller's
    (a page already free is a double free, reported); a smaller one leaks the rest, as in
    the kernel (nothing reports it). NULL (None, 0) does nothing."""
    nr = _exact_size(size, "free_pages_exact")
    t = current_task()
    pa = t.machine.mm
    pfn = _pfn_of_addr(pa, virt, "free_pages_exact")
    if pfn is None:
        return
    if virt & (PAGE_SIZE - 1):  # type: ignore[operator]
        pa.m.report("bad_free", [f"BUG: free_pages_exact() of unaligned address {virt:#x}"])
        return
    for p in range(pfn, min(pfn + nr, pa.mem.nr_pages)):
        pa.put_page(t, p, 0, False, "free_pages_exact")


def _pfn_of_addr(pa: PageAllocator, addr: Any, what: str) -> int | None:
    if addr is None or (addr.__class__ is int and addr == 0):
        return None
    if addr.__class__ is not int:
        check_int(what, "addr", addr, what="a kernel virtual address (int) or None")
    try:
        return pa.mem.virt_to_pfn(addr)
    except ValueError:
        file, line, _ = caller_site(3)
        pa.m.report("bad_free", [f"BUG: {what}() of address {addr:#x} that is not in the kernel's direct map",
                                 f"at {file}:{line}"], site=f"{file}:{line}")
        return None


def _free_pages(what: str, addr: Any, order: Any) -> None:
    pa = current_machine().mm
    _order_arg(order, what)
    pfn = _pfn_of_addr(pa, addr, what)
    if pfn is None:
        return
    if addr & ((1 << PAGE_SHIFT) - 1):
        pa.m.report("bad_free", [f"BUG: {what}() of unaligned address {addr:#x}"])
        return
    pa.put_page(current_task(), pfn, order, False, what)


def free_pages(addr: int | None, order: int) -> None:
    """Free 2**order pages at kernel virtual address ``addr`` (0/None is a no-op)."""
    _free_pages("free_pages", addr, order)


def free_page(addr: int | None) -> None:
    _free_pages("free_page", addr, 0)


def __free_pages(page: Page, order: int) -> None:
    """Drop a reference to a 2**order block; the last reference frees it (order 0: hot list)."""
    t = current_task()
    m = t.machine
    pa = m.mm
    mem = pa.mem
    if page.__class__ is not Page or page.mem is not mem:
        _page_of(page, "__free_pages", pa)
    if order.__class__ is not int or not 0 <= order < MAX_ORDER:
        _order_arg(order, "__free_pages")
    pfn = page.pfn
    c = t.cpu
    if not order and not c.irqs_off and pa.kcsan is None and m.events is None:
        # put_page() written out for the clean last reference of one page going on this
        # CPU's hot list, checked before anything is touched: the page's count 1, no flag
        # put_page() refuses, order 0, room on the list, interrupts on, no KCSAN or event
        # log. Then what put_page() does: the page's fields, the list step, the percpu_hit
        # charge, the interrupts pending since, local_irq_restore()'s point, the reclaim
        # waiters. (Setting irqs_off around the list step would be seen by nothing.)
        fl = mem.flags[pfn]
        pcp = pa.zones[mem.zone_id[pfn]].pageset[c.id][0]
        if mem.count[pfn] == 1 and not fl & _PUT_CHECK_FLAGS and not mem.order[pfn] and pcp.count < pcp.high:
            mem.count[pfn] = 0
            mem.flags[pfn] = fl & _KEEP_AT_FREE
            mem.private[pfn] = 0
            mem.owner[pfn] = 0
            c.data["vm_events"][PGFREE] += 1
            pcp.pfns.append(pfn)
            pcp.count += 1
            c.clock += pa.hit_cost
            if c.clock > t.vlimit and t.engine.deterministic:
                t.engine.reopen(t)
            if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
                m.irq.deliver_pending(c)
            t.budget -= 1  # local_irq_enable()'s scheduling point
            if t.budget <= 0:
                t.engine.decide(t, "local_irq_enable")
            if pa.reclaim_wait.waiters:
                wake_up(pa.reclaim_wait)
            return
    pa.put_page(t, pfn, order, False, "__free_pages")


def __free_page(page: Page) -> None:
    pa = current_machine().mm
    pa.put_page(current_task(), _page_of(page, "__free_page", pa).pfn, 0, False, "__free_page")


def free_hot_page(page: Page) -> None:
    """Free an order-0 page to this CPU's hot list (likely still in cache)."""
    pa = current_machine().mm
    pa.put_page(current_task(), _page_of(page, "free_hot_page", pa).pfn, 0, False, "free_hot_page")


def free_cold_page(page: Page) -> None:
    """Free an order-0 page to this CPU's cold list (handed out after the hot ones)."""
    pa = current_machine().mm
    pa.put_page(current_task(), _page_of(page, "free_cold_page", pa).pfn, 0, True, "free_cold_page")


def get_page(page: Page) -> None:
    """Take another reference to an allocated page."""
    pa = current_machine().mm
    p = _page_of(page, "get_page", pa)
    if pa.mem.count[p.pfn] <= 0:
        pa.m.report("bad_page", [f"BUG: get_page() on a free page (pfn {p.pfn:#x})"])
        return
    pa.mem.count[p.pfn] += 1


def put_page(page: Page) -> None:
    pa = current_machine().mm
    p = _page_of(page, "put_page", pa)
    pa.put_page(current_task(), p.pfn, p.order if p.count == 1 else 0, False, "put_page")


def page_address(page: Page) -> int | None:
    """The kernel virtual address of a page (None for highmem pages)."""
    return _page_of(page, "page_address", current_machine().mm).address


def virt_to_page(addr: int) -> Page:
    pa = current_machine().mm
    if addr.__class__ is not int:
        check_int("virt_to_page", "addr", addr, what="a kernel virtual address (int)")
    try:
        return pa.mem.virt_to_page(addr)
    except ValueError as e:
        raise KmemUsageError(f"virt_to_page: {e}") from None


def page_to_pfn(page: Page) -> int:
    return _page_of(page, "page_to_pfn", current_machine().mm).pfn


def pfn_to_page(pfn: int) -> Page:
    pa = current_machine().mm
    check_int("pfn_to_page", "pfn", pfn, 0, pa.mem.nr_pages - 1, "a page frame number of this machine")
    return pa.mem.page(pfn)


def nr_free_pages() -> int:
    """Free pages in the buddy allocator plus those cached on per-CPU lists."""
    return current_machine().mm.nr_free_pages()


def drain_local_pages() -> int:
    """Give this CPU's per-CPU pages back to the buddy allocator."""
    return current_machine().mm.drain_local_pages()


#: the kinds of page-cache page fill_page_cache() makes (what reclaim may do with them)
PAGE_CACHE_KINDS: Final = ("clean", "dirty", "anon")


def fill_page_cache(nr: int, kind: str = "clean") -> int:
    """Workload helper: allocate ``nr`` page-cache pages (clean, dirty or anon) that
    reclaim may later take back; returns how many were allocated (at most the
    machine's pages: ``nr`` above them is refused)."""
    pa = current_machine().mm
    check_int("fill_page_cache", "nr", nr, 0, pa.mem.nr_pages, "a number of pages")
    check_choice("fill_page_cache", "kind", kind, PAGE_CACHE_KINDS)
    assert pa.reclaim is not None, "reclaim exists once the machine has booted"
    return pa.reclaim.add_pages(nr, kind)


def register_shrinker(name: str, count_objects: Any, scan_objects: Any, seeks: int = 2) -> Any:
    """Register a cache that memory pressure may shrink (see vmscan.Shrinker).

    ``count_objects(gfp_mask) -> int`` and ``scan_objects(nr_to_scan, gfp_mask) -> int``
    are checked to be callables here; what they return is checked when reclaim calls them.
    """
    if not current_task():
        raise NotInTaskError()
    check_str("register_shrinker", "name", name, empty=False)
    check_callable("register_shrinker", "count_objects", count_objects, how="count_objects(gfp_mask) -> int")
    check_callable("register_shrinker", "scan_objects", scan_objects,
                   how="scan_objects(nr_to_scan, gfp_mask) -> int")
    check_int("register_shrinker", "seeks", seeks, 1, 1 << 16)
    reclaim = current_machine().mm.reclaim
    assert reclaim is not None, "reclaim exists once the machine has booted"
    s = Shrinker(name, count_objects, scan_objects, seeks)
    reclaim.register_shrinker(s)
    return s


__all__ = ["alloc_pages_node", "alloc_pages", "alloc_page", "__get_free_pages", "__get_free_page",
           "get_zeroed_page", "free_pages", "free_page", "__free_pages", "__free_page",
           "free_hot_page", "free_cold_page", "get_page", "put_page", "page_address", "virt_to_page",
           "page_to_pfn", "pfn_to_page", "nr_free_pages", "drain_local_pages", "fill_page_cache",
           "register_shrinker", "__get_dma_pages", "alloc_pages_exact", "free_pages_exact"]
#: The same names as a tuple: percpu_kmem/__init__.py still reads it.
PAGE_API: Final = tuple(__all__)
