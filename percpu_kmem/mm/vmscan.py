"""Reclaim: what memory pressure can take back, and who takes it.

Models mm/vmscan.c in outline: a per-zone LRU of page-cache pages of three
kinds, which reclaim may free under different GFP rules, plus shrinkers that
other layers (slab) register, direct reclaim (``try_to_free_pages``) and one
``kswapd`` kernel thread per node, woken when a zone drops below pages_low and
working until every zone of its node is above pages_high.

- clean file pages: dropped by any reclaim;
- dirty file pages: need ``__GFP_FS`` (writeback goes through the filesystem);
- anonymous pages: need ``__GFP_IO`` (swap-out is block IO).

So GFP_NOFS really reclaims less than GFP_KERNEL, and GFP_NOIO less again.
Simplified: one LRU list per zone (no active/inactive split, no referenced
bit), writeback and swap-out complete at once, swap space is unbounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..runtime.errors import InconsistentState, KmemUsageError
from ..runtime.kernel import local_irq_restore, local_irq_save
from ..runtime.lockdep import fs_reclaim_enter, fs_reclaim_exit
from ..runtime.locks import (
    init_waitqueue_head,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
    wait_event,
    wake_up,
)
from ..runtime.task import Task, current_task
from .gfp import GFP_FS, GFP_HIGHMEM, GFP_HIGHUSER, GFP_IO, GFP_KERNEL, check_gfp
from .layout import PG_anon, PG_dirty, PG_lru
from .vmstat import KSWAPD_WAKE, PF_MEMALLOC, SWAP_CLUSTER_MAX

# Class bodies mangle names that start with two underscores: use these aliases there.


if TYPE_CHECKING:
    from .page_alloc import PageAllocator, ZoneAlloc

PAGE_CLEAN: Final = 0
PAGE_DIRTY: Final = 1
PAGE_ANON: Final = 2
KIND_NAMES: Final = {"clean": PAGE_CLEAN, "dirty": PAGE_DIRTY, "anon": PAGE_ANON}
#: the zone suffix of the per-zone vmstat counters, by zone index (pgsteal_dma, ..._normal, ..._high)
_ZONE_STAT: Final = ("dma", "normal", "high")


@dataclass
class Shrinker:
    """A cache that gives memory back under pressure (struct shrinker)."""

    name: str
    count_objects: Callable[[int], int]
    scan_objects: Callable[[int, int], int]
    seeks: int = 2


class Reclaim:
    """Page cache LRUs, shrinkers, direct reclaim and kswapd for one machine."""

    def __init__(self, pa: PageAllocator) -> None:
        self.pa = pa
        self.mem = pa.mem
        self.lru_lock = spin_lock_init("zone->lru_lock")
        self.lru: dict[int, dict[int, int]] = {z.zone.id: {} for z in pa.zones}
        self.shrinkers: list[Shrinker] = []
        nnodes = len(pa.node_zones)
        self.kswapd_wait = [init_waitqueue_head(f"kswapd{n}") for n in range(nnodes)]
        self.kswapd_pending = [False] * nnodes
        #: reclaim counters. The kernel's own (2.6.11 vmstat_text names, printed by /proc/vmstat):
        #: pgscan_{kswapd,direct}_<zone>, pgsteal_<zone>, kswapd_steal, pageoutrun (kswapd's
        #: balance passes), pswpout, slabs_scanned. The model's own totals (not printed):
        #: pgscan, pgsteal, pageout (dirty pages written back), kswapd_runs, slab_freed.
        self.stats = {"pgscan": 0, "pgsteal": 0, "pageout": 0, "pswpout": 0, "kswapd_runs": 0,
                      "slabs_scanned": 0, "slab_freed": 0, "kswapd_steal": 0, "pageoutrun": 0}
        for zname in ("dma", "normal", "high"):
            for key in ("pgsteal_", "pgscan_kswapd_", "pgscan_direct_"):
                self.stats[key + zname] = 0
        for n in range(nnodes):
            pa.m.add_daemon(f"kswapd{n}", self._kswapd_fn(n), cpus=[c.id for c in pa.m.cpus if c.node == n])

    # -- the page cache a workload fills --------------------------------------------------
    def add_pages(self, nr: int, kind: str = "clean", gfp: int = GFP_HIGHUSER) -> int:
        """Allocate ``nr`` page-cache pages of ``kind`` (clean, dirty, anon); return how many."""
        if kind not in KIND_NAMES:
            raise KmemUsageError(f"kind(={kind!r}) must be one of {', '.join(KIND_NAMES)}")
        check_gfp(gfp)
        k = KIND_NAMES[kind]
        t = current_task()
        mem = self.mem
        got = 0
        for _ in range(nr):
            pfn = self.pa.alloc_pages(gfp, 0)
            if pfn is None:
                break
            flags = spin_lock_irqsave(self.lru_lock)
            mem.flags[pfn] |= PG_lru | (PG_dirty if k == PAGE_DIRTY else 0) | (PG_anon if k == PAGE_ANON else 0)
            self.lru[mem.zone_id[pfn]][pfn] = k
            spin_unlock_irqrestore(self.lru_lock, flags)
            got += 1
        _ = t
        return got

    def counts(self) -> dict[str, int]:
        """Pages on the LRUs by kind."""
        out = {"clean": 0, "dirty": 0, "anon": 0}
        names = {v: k for k, v in KIND_NAMES.items()}
        for lru in self.lru.values():
            for k in lru.values():
                out[names[k]] += 1
        return out

    # -- shrinkers --------------------------------------------------------------------------------
    def register_shrinker(self, shrinker: Shrinker) -> None:
        self.shrinkers.append(shrinker)

    def unregister_shrinker(self, shrinker: Shrinker) -> None:
        self.shrinkers.remove(shrinker)

    def _bad_shrinker(self, s: Shrinker, what: str, value: Any) -> None:
        """A shrinker callback returned something that is not a count: it is unregistered
        (so later reclaim, kswapd's included, goes on without it) and the caller is told."""
        if s in self.shrinkers:
            self.shrinkers.remove(s)
        raise KmemUsageError(f"register_shrinker: {what} of shrinker {s.name!r} returned {value!r}, "
                             f"not an int count; the shrinker is unregistered")

    def shrink_slab(self, gfp: int, nr_scanned: int) -> int:
        freed = 0
        for s in list(self.shrinkers):
            n = s.count_objects(gfp)
            if n.__class__ is not int:
                self._bad_shrinker(s, "count_objects", n)
            if n <= 0:
                continue
            want = max(1, min(n, nr_scanned * 4 // max(1, s.seeks)))
            self.stats["slabs_scanned"] += want
            got = s.scan_objects(want, gfp)
            if got.__class__ is not int:
                self._bad_shrinker(s, "scan_objects", got)
            freed += max(0, got)
        self.stats["slab_freed"] += freed
        return freed

    # -- reclaim ----------------------------------------------------------------------------------
    def shrink_zone(self, t: Task, z: ZoneAlloc, gfp: int, nr_to_reclaim: int, kswapd: bool = False) -> int:
        """Free up to ``nr_to_reclaim`` pages of ``z``'s LRU that ``gfp`` allows, oldest first.

        ``kswapd``: counted as kswapd's scan (pgscan_kswapd_*, kswapd_steal), else as
        direct reclaim's (pgscan_direct_*).
        """
        lru = self.lru[z.zone.id]
        if not lru:
            return 0
        may_fs = bool(gfp & GFP_FS)
        may_io = bool(gfp & GFP_IO)
        victims: list[int] = []
        flags = spin_lock_irqsave(self.lru_lock)
        scanned = 0
        for pfn, kind in list(lru.items()):
            if len(victims) >= nr_to_reclaim:
                break
            scanned += 1
            if kind == PAGE_DIRTY and not may_fs:
                continue
            if kind == PAGE_ANON and not may_io:
                continue
            del lru[pfn]
            victims.append(pfn)
            if kind == PAGE_DIRTY:
                self.stats["pageout"] += 1
            elif kind == PAGE_ANON:
                self.stats["pswpout"] += 1
        stats = self.stats
        zname = _ZONE_STAT[z.idx]
        stats["pgscan"] += scanned
        stats[("pgscan_kswapd_" if kswapd else "pgscan_direct_") + zname] += scanned
        mem = self.mem
        for pfn in victims:
            mem.flags[pfn] &= ~(PG_lru | PG_dirty | PG_anon)
        spin_unlock_irqrestore(self.lru_lock, flags)
        for pfn in victims:
            self.pa.put_page(t, pfn, 0, True, "shrink_zone")
        stats["pgsteal"] += len(victims)
        stats["pgsteal_" + zname] += len(victims)
        if kswapd:
            stats["kswapd_steal"] += len(victims)
        return len(victims)

    def try_to_free_pages(self, t: Task, zones: list[ZoneAlloc], gfp: int, order: int) -> int:
        """Direct reclaim: a cluster of pages from the allowed zones, then the shrinkers."""
        freed = 0
        target = SWAP_CLUSTER_MAX << order
        for z in zones:
            if freed >= target:
                break
            freed += self.shrink_zone(t, z, gfp, target - freed)
        freed += self.shrink_slab(gfp, max(freed, SWAP_CLUSTER_MAX))
        if freed:
            # pages freed to this CPU's cold lists: hand them back so the watermarks see them
            flags = local_irq_save()
            self.pa.drain_cpu_pages(t, t.cpu.id)
            local_irq_restore(flags)
        return freed

    # -- kswapd ---------------------------------------------------------------------------------
    def wake_kswapd(self, t: Task, nid: int, order: int) -> None:
        if not self.kswapd_pending[nid]:
            self.kswapd_pending[nid] = True
            t.cpu.data["vm_events"][KSWAPD_WAKE] += 1
            wake_up(self.kswapd_wait[nid])

    def _kswapd_fn(self, nid: int) -> Callable[[], None]:
        def kswapd() -> None:
            t = current_task()
            t.flags |= PF_MEMALLOC
            while True:
                wait_event(self.kswapd_wait[nid], lambda: self.kswapd_pending[nid])
                fs_reclaim_enter()  # kswapd reclaims under fs_reclaim (lockdep's view)
                try:
                    self.balance_pgdat(t, nid)
                finally:
                    fs_reclaim_exit()
                self.kswapd_pending[nid] = False
        kswapd.__name__ = f"kswapd{nid}"
        return kswapd

    def balance_pgdat(self, t: Task, nid: int) -> int:
        """Reclaim with GFP_KERNEL rules until every zone of the node is above pages_high."""
        self.stats["kswapd_runs"] += 1
        self.stats["pageoutrun"] += 1
        total = 0
        for z in self.pa.node_zones[nid]:
            if z is None:
                continue
            while z.buddy.free_pages + z.pcp_pages() < z.pages_high:
                gfp = GFP_KERNEL | (GFP_HIGHMEM if z.idx == 2 else 0)
                n = self.shrink_zone(t, z, gfp, SWAP_CLUSTER_MAX, kswapd=True)
                n += self.shrink_slab(gfp, SWAP_CLUSTER_MAX)
                if n:
                    flags = local_irq_save()
                    self.pa.drain_cpu_pages(t, t.cpu.id)
                    local_irq_restore(flags)
                total += n
                if not n:
                    break
        if total:
            wake_up(self.pa.reclaim_wait)
        return total

    def check(self) -> None:
        mem = self.mem
        for zid, lru in self.lru.items():
            for pfn in lru:
                if mem.count[pfn] < 1 or not mem.flags[pfn] & PG_lru:
                    raise InconsistentState(f"pfn {pfn:#x} on the LRU of zone {zid} has count "
                                            f"{mem.count[pfn]} flags {mem.flags[pfn]:#x}")


__all__ = ["PAGE_CLEAN", "PAGE_DIRTY", "PAGE_ANON", "KIND_NAMES", "Shrinker", "Reclaim"]
