"""The slab allocator: kmem_cache_* over slabs of pages, with per-CPU magazines.

Models mm/slab.c of 2.6.11 with
the per-CPU layer of Bonwick and Adams, "Magazines and Vmem" (USENIX 2001):

- a cache (``kmem_cache_t``) carves objects out of slabs of ``2**gfporder`` pages,
  sized as ``kmem_cache_create``/``cache_estimate`` size them (alignment, on- or
  off-slab management, colouring, the order loop with its 12.5 % waste rule);
- slabs sit on full, partial and free lists under the cache's ``list_lock``;
  ``cache_grow`` adds one slab and runs the constructor on every object of it
  (``SLAB_CTOR_CONSTRUCTOR``, plus ``SLAB_CTOR_ATOMIC`` when it cannot sleep),
  empty slabs are destroyed (destructor on every object) when there are more
  free objects than ``free_limit``, by ``kmem_cache_shrink`` and by the shrinker
  that memory pressure runs, unless the cache is ``SLAB_NO_REAP``;
- in front of them each CPU has a *loaded* and a *previous* magazine of
  ``batchcount`` objects, and the cache a *depot* of full and empty magazines
  under its own lock. Allocation and free on the fast path touch only this CPU's
  magazines, with local interrupts off, and take no lock at all. The tunables
  /proc/slabinfo prints map onto them: ``batchcount`` is the magazine size,
  ``limit`` (about two magazines) what a CPU may hold, ``sharedfactor`` how many
  full magazines the depot keeps (2.6's shared array held batchcount*shared
  objects; the depot holds the same number, in magazines); a study may turn the
  per-CPU layer off (``kmem_cache_tune_model`` with batchcount 0: every object
  operation under list_lock, the 1994 slab) and count STATS without debugging;
- other CPUs' magazines are only ever touched by their own CPU: draining them
  (kmem_cache_shrink, kmem_cache_destroy, tuning) is an IPI, as in the kernel;
- slab debugging (``SLAB_POISON``, ``SLAB_RED_ZONE``, ``SLAB_STORE_USER``, per
  cache or for the whole machine with ``Machine(slab_debug=True)``, as
  CONFIG_DEBUG_SLAB forces them): poison checked at allocation, redzones checked
  at free, double frees, invalid and wrong-cache frees, each reported with
  today's SLUB wording on the first line and 2.6's SLAB lines after it;
- KASAN's and kmemleak's hooks (mm/kasan.py, mm/kmemleak.py) ride the same debug
  path (``cachep.debug``), so the magazine fast path of a machine without them is
  unchanged.

Objects are kernel virtual addresses (ints) in the direct map. The slab headers
and bufctl arrays are Python objects (on-slab ones still take their room in the
slab). See docs/slab.md for what is simplified and why.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from ..runtime.costs import SharedLine
from ..runtime.errors import InconsistentState, KmemUsageError, NotInTaskError
from ..runtime.kernel import (
    in_interrupt,
    local_irq_disable,
    local_irq_enable,
    local_irq_restore,
    local_irq_save,
    might_sleep,
)
from ..runtime.lockdep import fs_reclaim_acquire, fs_reclaim_release
from ..runtime.locks import (
    mutex_init,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    spin_lock,
    spin_lock_init,
    spin_lock_irq,
    spin_unlock,
    spin_unlock_irq,
    spinlock_t,
)
from ..runtime.preempt import HARDIRQ_MASK
from ..runtime.report import caller_site
from ..runtime.smp import on_each_cpu
from ..runtime.task import Task, current_task
from ..runtime.validate import check_int
from .access import write_u32
from .context import current_machine
from .debug import POISON_END, POISON_FREE, POISON_INUSE, RED_ACTIVE, RED_INACTIVE
from .fault_inject import FaultAttr, should_failslab
from .gfp import GFP_BITS_MASK, GFP_DMA, GFP_HIGHMEM, GFP_KERNEL, GFP_NO_GROW, GFP_WAIT, GFP_ZERO, gfp_names
from .kasan import SLAB_KASAN
from .kmemleak import SLAB_KMEMLEAK
from .layout import PAGE_OFFSET, PAGE_SHIFT, PG_slab
from .slab_debug import SlabDebug, slub_bug
from .slab_geometry import (
    ARCH_KMALLOC_FLAGS,
    BREAK_GFP_ORDER_HI,
    BREAK_GFP_ORDER_LO,
    BUFCTL_SIZE,
    BYTES_PER_WORD,
    CFLGS_OFF_SLAB,
    CREATE_MASK,
    KMALLOC_SIZES,
    MAX_OBJ_SIZE,
    SLAB_ATOMIC,
    SLAB_CACHE_DMA,
    SLAB_CTOR_ATOMIC,
    SLAB_CTOR_CONSTRUCTOR,
    SLAB_CTOR_VERIFY,
    SLAB_DEBUG_FLAGS,
    SLAB_DEBUG_FREE,
    SLAB_DEBUG_INITIAL,
    SLAB_DESTROY_BY_RCU,
    SLAB_DMA,
    SLAB_HEADER_SIZE,
    SLAB_HWCACHE_ALIGN,
    SLAB_KERNEL,
    SLAB_MUST_HWCACHE_ALIGN,
    SLAB_NO_GROW,
    SLAB_NO_REAP,
    SLAB_PANIC,
    SLAB_POISON,
    SLAB_RECLAIM_ACCOUNT,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    Geometry,
    enable_cpucache_tunables,
)
from .vmscan import Shrinker

if TYPE_CHECKING:
    from ..machine import Machine
    from .page_alloc import PageAllocator

class Slab:
    """struct slab: one slab's objects; ``free`` is the bufctl chain (LIFO of indexes).

    ``cache`` and ``end`` (the address after its last object) are the model's: with them
    kfree's fast path checks a pointer with one lookup (``SlabAllocator.slab_page``)."""

    __slots__ = ("head", "s_mem", "inuse", "free", "colouroff", "state", "cache", "end")

    def __init__(self, head: int, s_mem: int, num: int, colouroff: int, cache: kmem_cache_t) -> None:
        self.head = head  # pfn of the slab's first page
        self.s_mem = s_mem
        self.inuse = 0
        self.free = list(range(num - 1, -1, -1))  # pop() hands out object 0 first
        self.colouroff = colouroff
        self.state = SLAB_FREE
        self.cache = cache
        self.end = s_mem + num * cache.objsize

    def __repr__(self) -> str:
        return f"<slab pfn={self.head:#x} s_mem={self.s_mem:#x} inuse={self.inuse}>"


#: the bits no GFP mask has (every negative int has some of them too)
_NOT_GFP: Final = ~GFP_BITS_MASK
#: the largest kmalloc size with an entry in SlabAllocator.kmalloc_small
KMALLOC_SMALL: Final = 256
#: kmalloc_normal -> kmalloc_small: the cache of each size 0..KMALLOC_SMALL (the first class
#: that holds it; size 0 gets size-32), picked in C at boot (a few microseconds)
_kmalloc_small_of: Final = operator.itemgetter(*(next(i for i, n in enumerate(KMALLOC_SIZES) if n >= max(size, 1))
                                                 for size in range(KMALLOC_SMALL + 1)))

#: include/linux/list.h (2.6.11): what list_del() leaves in an entry's next and prev
LIST_POISON1: Final = 0x00100100
LIST_POISON2: Final = 0x00200200

SLAB_FREE: Final = 0
SLAB_PARTIAL: Final = 1
SLAB_FULL: Final = 2


class CpuMagazines:
    """One CPU's layer of a cache: the loaded and the previous magazine, and cpustat.

    Only its own CPU touches it, with local interrupts off. ``previous`` is always
    either full or empty (Bonwick's invariant); ``loaded`` holds 0..batchcount.
    """

    __slots__ = ("loaded", "previous", "touched", "allochit", "allocmiss", "freehit", "freemiss")

    def __init__(self) -> None:
        self.loaded: list[int] = []
        self.previous: list[int] = []
        self.touched = 0
        self.allochit = 0
        self.allocmiss = 0
        self.freehit = 0
        self.freemiss = 0

    def avail(self) -> int:
        return len(self.loaded) + len(self.previous)


class _CacheLock:
    """A cache's spinlock (``<name>-><suffix>``), made at its first use and then an
    ordinary attribute of the cache."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.attr = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, cache: Any, owner: Any = None) -> spinlock_t:
        if cache is None:
            return self  # type: ignore[return-value]
        lock = cache.__dict__[self.attr] = spin_lock_init(f"{cache.name}->{self.suffix}")
        return lock


#: kmem_cache_t's fields that depend only on its arguments (plain ints), per argument tuple
_LAYOUTS: dict[tuple[int, ...], dict[str, int]] = {}


def _layout(size: int, align: int, flags: int, break_order: int, offslab_limit: int, nr_cpus: int,
            machine_debug: bool) -> dict[str, int]:
    """The fields kmem_cache_create works out from its arguments: the geometry, the debug
    flags, the usable size and the tunables; computed once per argument tuple (the dict
    holds only ints: each cache copies it)."""
    key = (size, align, flags, break_order, offslab_limit, nr_cpus, machine_debug)
    d = _LAYOUTS.get(key)
    if d is None:
        geo = Geometry(size, align, flags, slab_break_order=break_order, offslab_limit=offslab_limit)
        debug = geo.flags & SLAB_DEBUG_FLAGS
        limit, batchcount, shared = enable_cpucache_tunables(geo.objsize, nr_cpus, bool(debug) or machine_debug)
        d = {"flags": geo.flags, "objsize": geo.objsize, "reallen": geo.reallen, "dbghead": geo.dbghead,
             "num": geo.num, "gfporder": geo.gfporder, "gfpflags": GFP_DMA if flags & SLAB_CACHE_DMA else 0,
             "colour": geo.colour, "colour_off": geo.colour_off, "slab_size": geo.slab_size, "debug": debug,
             # what kmem_cache_size()/ksize() return: obj_reallen() of 2.6.11, i.e. the padded
             # objsize, or the size before the debug words when slab debugging is compiled in
             "usable": geo.reallen if debug or machine_debug else geo.objsize,
             "limit": limit, "batchcount": batchcount, "shared": shared,
             "free_limit": (1 + nr_cpus) * batchcount + geo.num}
        if len(_LAYOUTS) >= 4096:  # a bound for programs that make caches of ever new sizes
            _LAYOUTS.clear()
        _LAYOUTS[key] = d
    return d


class kmem_cache_t:
    """A slab cache. Make one with ``kmem_cache_create``; the fields are the kernel's.

    Boot makes some thirty caches per machine, so making one is cheap: the layout
    (a pure function of the arguments) is worked out once per process and copied in,
    and the two locks come into being at their first use (:class:`_CacheLock`), which no
    one can observe: a lock is bound to a machine, and listed in its /proc/lock_stat,
    only when a task first takes it. (No ``__getattr__`` here: a class with one loses
    CPython's specialised attribute loads, and the fast paths read a dozen fields.)
    """

    # the layout and tunables (_layout: the same for every cache made with the same arguments)
    flags: int
    objsize: int
    reallen: int
    dbghead: int
    num: int
    gfporder: int
    gfpflags: int
    colour: int
    colour_off: int
    slab_size: int
    debug: int
    usable: int
    limit: int
    batchcount: int
    shared: int
    free_limit: int
    name: str
    #: the size kmem_cache_create() was given (the kernel's s->object_size: KASAN and kmemleak use it)
    object_size: int
    #: made at first use: the two locks, the slabs (pfn -> Slab), the depot, their lines (_FirstUse)
    list_lock = _CacheLock("spinlock")
    depot_lock = _CacheLock("depot_lock")
    slabs_full: OrderedDict[int, Slab]
    slabs_partial: OrderedDict[int, Slab]
    slabs_free: OrderedDict[int, Slab]
    depot_full: list[list[int]]
    depot_empty: list[list[int]]
    lists_line: SharedLine
    depot_line: SharedLine

    def __init__(self, alloc: SlabAllocator, cid: int, name: str, size: int, align: int, flags: int,
                 ctor: Callable[..., Any] | None, dtor: Callable[..., Any] | None) -> None:
        m = alloc.m
        self.__dict__.update(_layout(size, align, flags, alloc.slab_break_gfp_order, alloc.offslab_limit,
                                     m.nr_cpus, m.slab_debug))
        if alloc.tunables is not None:  # a study's tunables for every new cache
            self.limit, self.batchcount, self.shared = alloc.tunables
            self.free_limit = (1 + m.nr_cpus) * self.batchcount + self.num
        #: the magazine step's cost (the machine's cost table, read once: the fast paths add it)
        self.hit_cost = m.costs.magazine_hit
        self.sa = alloc
        #: the machine this cache belongs to; None once destroyed (one identity test on the fast path)
        self.owner: Machine | None = m
        self.id = cid
        self.name = name
        self.object_size = size
        self.colour_next = 0
        self.ctor = ctor
        self.dtor = dtor
        self.free_objects = 0
        self.free_touched = 0
        self.cpu = [CpuMagazines() for _ in range(m.nr_cpus)]
        # globalstat (STATS)
        self.grown = 0
        self.reaped = 0
        self.errors = 0
        self.listallocs = 0
        self.num_active = 0
        self.high_mark = 0
        self.max_freeable = 0
        # the model's own counters (slow paths only): full magazines taken from and given to
        # the depot, objects allocated and freed straight under list_lock with magazines off
        self.depot_gets = 0
        self.depot_puts = 0
        self.direct_allocs = 0
        self.direct_frees = 0
        self.dead = False
        self.desc: int | None = None  # the kmem_cache object describing this cache, if allocated
        self.freed_desc: int | None = None  # that object's address once destroy freed it
        self.debug |= alloc.debug_hook_bits  # KASAN's and kmemleak's hooks ride the debug path

    def __repr__(self) -> str:
        return f"<kmem_cache {self.name} objsize={self.objsize} num={self.num} order={self.gfporder}>"

    # -- the per-CPU layer ---------------------------------------------------------------
    def alloc_miss(self, t: Task, flags: int) -> int | None:
        """The loaded magazine is empty: previous, the depot, the slabs, then grow.

        Called and returns with local interrupts off. Growing may turn them on for
        a while (a GFP_KERNEL slab grows with interrupts enabled), so the task may
        come back on another CPU: the loop re-reads its magazines each time.
        """
        self.cpu[t.cpu.id].allocmiss += 1
        if not self.batchcount:
            return self.alloc_direct(t, flags)
        while True:
            cc = self.cpu[t.cpu.id]
            if cc.loaded:
                return cc.loaded.pop()
            if cc.previous:  # full: swap
                cc.loaded, cc.previous = cc.previous, cc.loaded
                return cc.loaded.pop()
            if self.depot_full:
                spin_lock(self.depot_lock)
                if self.depot_full:
                    full = self.depot_full.pop()
                    self.depot_empty.append(cc.previous)
                    cc.previous = cc.loaded
                    cc.loaded = full
                    self.depot_gets += 1
                    self.depot_line.touch(t)
                    spin_unlock(self.depot_lock)
                    return full.pop()
                spin_unlock(self.depot_lock)
            spin_lock(self.list_lock)  # BATCHREFILL_LIMIT: an untouched CPU cache takes 16 at most
            self.take_from_slabs(t, cc.loaded, self.batchcount if cc.touched else min(self.batchcount, 16))
            spin_unlock(self.list_lock)
            if cc.loaded:
                cc.touched = 1
                return cc.loaded.pop()
            if not self.cache_grow(t, flags):
                cc = self.cpu[t.cpu.id]  # an interrupt may have freed objects meanwhile
                return cc.loaded.pop() if cc.loaded else None

    def free_miss(self, t: Task, cc: CpuMagazines, objp: int) -> None:
        """The loaded magazine is full: swap, exchange with the depot, or flush to slabs."""
        cc.freemiss += 1
        if not self.batchcount:
            self.direct_frees += 1
            self.free_block(t, [objp])
            return
        loaded, prev = cc.loaded, cc.previous
        if not prev:
            cc.loaded, cc.previous = prev, loaded
            prev.append(objp)
            return
        if self.shared:
            spin_lock(self.depot_lock)
            if len(self.depot_full) < self.shared:
                self.depot_full.append(prev)
                empty = self.depot_empty.pop() if self.depot_empty else []
                self.depot_puts += 1
                self.depot_line.touch(t)
                spin_unlock(self.depot_lock)
                cc.previous = loaded
                cc.loaded = empty
                empty.append(objp)
                return
            spin_unlock(self.depot_lock)
        self.free_block(t, prev)  # depot full (or none): the oldest magazine goes back to its slabs
        prev.clear()
        cc.loaded, cc.previous = prev, loaded
        prev.append(objp)

    def alloc_direct(self, t: Task, flags: int) -> int | None:
        """No per-CPU layer (batchcount 0, the 1994 slab): one object from the slabs under
        list_lock, growing the cache when they are empty. Interrupts off, as alloc_miss."""
        got: list[int] = []
        while True:
            spin_lock(self.list_lock)
            self.take_from_slabs(t, got, 1)
            spin_unlock(self.list_lock)
            if got:
                self.direct_allocs += 1
                return got[0]
            if not self.cache_grow(t, flags):
                return None

    # -- the slab layer (list_lock held) -------------------------------------------------
    def take_from_slabs(self, t: Task, mag: list[int], want: int) -> None:
        """Move up to ``want`` objects from partial, then free slabs, into ``mag``."""
        objsize = self.objsize
        got = 0
        while got < want:
            if self.slabs_partial:
                slab = next(iter(self.slabs_partial.values()))
            elif self.slabs_free:
                self.free_touched = 1
                slab = next(iter(self.slabs_free.values()))
            else:
                break
            s_mem, free, num = slab.s_mem, slab.free, self.num
            while free and got < want:
                mag.append(s_mem + free.pop() * objsize)
                got += 1
            slab.inuse = num - len(free)
            self._relist(slab, tail=False)
        if got:
            self.free_objects -= got
            self.listallocs += got
            self.num_active += got
            if self.num_active > self.high_mark:
                self.high_mark = self.num_active
            self.lists_line.touch(t)
            t.charge(t.machine.costs.page_struct * (1 + got // 8))

    def _relist(self, slab: Slab, tail: bool = True) -> None:
        """Put ``slab`` on the list its use count says: a refill keeps it at the head of
        the partial list (list_add), a free moves it to the tail (list_add_tail)."""
        state = SLAB_FULL if slab.inuse == self.num else SLAB_FREE if slab.inuse == 0 else SLAB_PARTIAL
        old = slab.state
        if old == state and state != SLAB_PARTIAL:
            return
        (self.slabs_free, self.slabs_partial, self.slabs_full)[old].pop(slab.head, None)
        lst = (self.slabs_free, self.slabs_partial, self.slabs_full)[state]
        lst[slab.head] = slab
        if not tail:
            lst.move_to_end(slab.head, last=False)
        slab.state = state

    def free_block(self, t: Task, objs: list[int]) -> None:
        """Give objects back to their slabs; destroy slabs beyond free_limit (after unlocking)."""
        doomed: list[Slab] = []
        sa = self.sa
        private = sa.mem.private
        slabs = sa.slab_of
        objsize = self.objsize
        spin_lock(self.list_lock)
        for objp in objs:
            slab = slabs[private[(objp - PAGE_OFFSET) >> PAGE_SHIFT]]
            slab.free.append((objp - slab.s_mem) // objsize)
            slab.inuse -= 1
            self.free_objects += 1
            if slab.inuse == 0 and self.free_objects > self.free_limit:
                self.free_objects -= self.num
                (self.slabs_free, self.slabs_partial, self.slabs_full)[slab.state].pop(slab.head, None)
                slab.state = -1
                doomed.append(slab)
            else:
                self._relist(slab)
        self.num_active -= len(objs)
        if len(self.slabs_free) > self.max_freeable:
            self.max_freeable = len(self.slabs_free)
        self.lists_line.touch(t)
        spin_unlock(self.list_lock)
        t.charge(t.machine.costs.page_struct * (1 + len(objs) // 8))
        for slab in doomed:
            self.slab_destroy(t, slab)

    # -- growing and shrinking -----------------------------------------------------------
    def cache_grow(self, t: Task, flags: int) -> int:
        """Add one slab of fresh, constructed objects; 1 on success. Interrupts off on entry and exit."""
        if flags & GFP_NO_GROW:
            return 0
        sa = self.sa
        if flags & GFP_HIGHMEM:
            self._bug(f"cache_grow(): gfp flags {flags:#x}({gfp_names(flags)}) include __GFP_HIGHMEM: "
                      "slab pages must be directly mapped")
            flags &= ~GFP_HIGHMEM
        if bool(flags & GFP_DMA) != bool(self.gfpflags & GFP_DMA):
            self._bug(f"kmem_flagcheck(): {'GFP_DMA' if flags & GFP_DMA else 'no GFP_DMA'} "
                      f"for cache `{self.name}' that is {'' if self.gfpflags else 'not '}SLAB_CACHE_DMA")
        ctor_flags = SLAB_CTOR_CONSTRUCTOR | (0 if flags & GFP_WAIT else SLAB_CTOR_ATOMIC)
        spin_lock(self.list_lock)
        offset = self.colour_next * self.colour_off
        self.colour_next += 1
        if self.colour_next >= self.colour:
            self.colour_next = 0
        spin_unlock(self.list_lock)
        if flags & GFP_WAIT:
            local_irq_enable()
        pfn = sa.pa.alloc_pages((flags & ~GFP_DMA) | self.gfpflags, self.gfporder)
        if pfn is None:
            if flags & GFP_WAIT:
                local_irq_disable()
            return 0
        slab = self._new_slab(pfn, offset)
        self._init_objs(t, slab, ctor_flags)
        if flags & GFP_WAIT:
            local_irq_disable()
        spin_lock(self.list_lock)
        self.slabs_free[slab.head] = slab
        self.free_objects += self.num
        self.grown += 1
        # the slab's set-up, charged before a point (spin_unlock) that counts in a replay
        t.charge(t.machine.costs.slab_grow)
        spin_unlock(self.list_lock)
        return 1

    def _new_slab(self, pfn: int, colouroff: int) -> Slab:
        """kmem_getpages + alloc_slabmgmt: mark the pages, place the objects."""
        sa = self.sa
        mem = sa.mem
        for p in range(pfn, pfn + (1 << self.gfporder)):
            mem.flags[p] |= PG_slab
            mem.owner[p] = self.id
            mem.private[p] = pfn
        addr = PAGE_OFFSET + (pfn << PAGE_SHIFT)
        if not self.flags & CFLGS_OFF_SLAB:
            colouroff += self.slab_size  # struct slab and the bufctls live at the start
        slab = Slab(pfn, addr + colouroff, self.num, colouroff, self)
        sa.slab_of[pfn] = slab
        slab_page = sa.slab_page
        for p in range(pfn, pfn + (1 << self.gfporder)):
            slab_page[p] = slab
        sa.nr_slab_pages += 1 << self.gfporder
        return slab

    def _init_objs(self, t: Task, slab: Slab, ctor_flags: int) -> None:
        """cache_init_objs: debug state, then the constructor on every object of the slab."""
        ctor, debug = self.ctor, self.debug
        if ctor is not None and debug & SLAB_KASAN:  # the constructor touches unallocated objects
            self.sa.m.kasan.unchecked(self._init_objs_loop, ctor, debug, slab, ctor_flags)  # type: ignore[union-attr]
        else:
            self._init_objs_loop(ctor, debug, slab, ctor_flags)
        if ctor is not None and t.hb is not None:
            # KCSAN: what the constructor wrote is the objects' initial state, not an access
            # that can race: no one else sees the slab before it is on the lists (a spinlock)
            # and its objects in a CPU's magazine (interrupts off on that CPU). The kernel's
            # KCSAN never reports a constructor against a later user: start the slab afresh
            t.hb.on_free(slab.s_mem, self.num * self.objsize)

    def _init_objs_loop(self, ctor: Callable[..., Any] | None, debug: int, slab: Slab, ctor_flags: int) -> None:
        for i in range(self.num):
            raw = slab.s_mem + i * self.objsize
            if debug:
                self.sa.debug.init_obj(self, raw)
            if ctor is not None and not self.flags & SLAB_POISON:
                ctor(raw + self.dbghead, self, ctor_flags)
                if self.flags & SLAB_RED_ZONE:
                    self.sa.debug.check_ctor_redzones(self, raw)

    def slab_destroy(self, t: Task, slab: Slab) -> None:
        """The destructor on every object, then the pages go back to the page allocator."""
        sa = self.sa
        if self.debug:
            for i in range(self.num):
                sa.debug.check_freed_at_destroy(self, slab.s_mem + i * self.objsize)
        if self.dtor is not None and not self.flags & SLAB_POISON:
            if self.debug & SLAB_KASAN:  # the destructor touches freed objects
                sa.m.kasan.unchecked(self._dtor_all, slab)  # type: ignore[union-attr]
            else:
                self._dtor_all(slab)
        mem = sa.mem
        for p in range(slab.head, slab.head + (1 << self.gfporder)):
            mem.flags[p] &= ~PG_slab
            mem.owner[p] = 0
            del sa.slab_page[p]
        del sa.slab_of[slab.head]
        sa.nr_slab_pages -= 1 << self.gfporder
        self.reaped += 1
        sa.pa.put_page(t, slab.head, self.gfporder, False, "kmem_freepages")

    def _dtor_all(self, slab: Slab) -> None:
        for i in range(self.num):
            self.dtor(slab.s_mem + i * self.objsize + self.dbghead, self, 0)  # type: ignore[misc]

    def drain_this_cpu(self, t: Task) -> int:
        """Give this CPU's magazines back to the slabs (interrupts off). Returns objects moved."""
        cc = self.cpu[t.cpu.id]
        objs = cc.loaded + cc.previous
        cc.loaded = []
        cc.previous = []
        if objs:
            self.free_block(t, objs)
        return len(objs)

    def drain_depot(self, t: Task) -> int:
        spin_lock(self.depot_lock)
        mags = self.depot_full
        self.depot_full = []
        self.depot_empty.clear()
        spin_unlock(self.depot_lock)
        objs = [o for mag in mags for o in mag]
        if objs:
            self.free_block(t, objs)
        return len(objs)

    def destroy_free_slabs(self, t: Task, max_slabs: int | None = None) -> int:
        """Destroy empty slabs (all, or up to ``max_slabs``); returns pages freed. Process
        context, interrupts on: the lists are taken with spin_lock_irq, as __cache_shrink and
        cache_reap take cachep->spinlock (an IPI's drain takes it in hardirq context)."""
        doomed: list[Slab] = []
        spin_lock_irq(self.list_lock)
        while self.slabs_free and (max_slabs is None or len(doomed) < max_slabs):
            _, slab = self.slabs_free.popitem(last=False)
            slab.state = -1
            self.free_objects -= self.num
            doomed.append(slab)
        spin_unlock_irq(self.list_lock)
        for slab in doomed:
            self.slab_destroy(t, slab)
        return len(doomed) << self.gfporder

    def drain_all(self) -> None:
        """drain_cpu_caches: every CPU empties its magazines (an IPI), then the depot."""
        t = current_task()
        on_each_cpu(_drain_ipi, self)
        flags = local_irq_save()
        self.drain_depot(t)
        local_irq_restore(flags)

    def _bug(self, msg: str) -> None:
        file, line, _ = caller_site(3)
        self.errors += 1
        self.sa.m.report("bug", [f"kernel BUG at {file}:{line}!", msg], site=f"{self.name}:{msg[:40]}")

    # -- views -----------------------------------------------------------------------------
    def counts(self) -> tuple[int, int, int, int, int]:
        """(active_objs, num_objs, active_slabs, num_slabs, sharedavail), as s_show counts them."""
        full, partial, free = len(self.slabs_full), len(self.slabs_partial), len(self.slabs_free)
        active = full * self.num + sum(s.inuse for s in self.slabs_partial.values())
        num_slabs = full + partial + free
        shared_avail = sum(len(mag) for mag in self.depot_full)
        return active, num_slabs * self.num, full + partial, num_slabs, shared_avail

    def cached_objects(self) -> int:
        """Objects sitting in magazines and the depot (allocated from the slabs' view)."""
        return sum(cc.avail() for cc in self.cpu) + sum(len(m) for m in self.depot_full)

    def alloc(self, t: Task, flags: int, size: int = -1, slept: bool = False) -> int | None:
        """__cache_alloc(): the common allocation path of kmem_cache_alloc and kmalloc, arguments
        already checked; ``size`` is the kmalloc request (-1: kmem_cache_alloc); ``slept``:
        the caller (kmalloc()'s fast path, without lockdep) has passed might_sleep().

        might_sleep, local_irq_save/restore and the magazine_hit charge are written out here,
        with their semantics and scheduling points: might_sleep()'s (a request that may
        sleep) and local_irq_enable()'s at the restore, as before they were inlined, so
        every seed's trace stays as it was.
        """
        c = t.cpu
        if flags & GFP_WAIT and not slept:
            if t.machine.lockdep is not None:  # slab_pre_alloc_hook's might_alloc(): fs_reclaim,
                fs_reclaim_acquire(flags)      # then might_sleep_if(); lockdep reports first
                fs_reclaim_release(flags)
            if c.preempt_count or c.irqs_off or t.is_idle:
                might_sleep()  # the report (the rare case), and the point
            else:  # might_sleep() with nothing to report: its scheduling point
                t.budget -= 1
                if t.budget <= 0:
                    t.engine.decide(t, "might_sleep")
            c = t.cpu
        fs = self.sa.failslab
        if fs is not None and fs.probability | t.fail_nth and should_failslab(fs, self.objsize, flags):
            return None  # slab_pre_alloc_hook(): should_failslab() made it fail
        irqs_were_off = c.irqs_off  # local_irq_save()
        c.irqs_off = True
        cc = self.cpu[c.id]
        objp: int | None
        if cc.loaded:
            objp = cc.loaded.pop()
            cc.allochit += 1
            cc.touched = 1
        else:
            objp = self.alloc_miss(t, flags)
            c = t.cpu
        c.clock += self.hit_cost  # t.charge(costs.magazine_hit)
        if c.clock > t.vlimit and t.engine.deterministic:
            t.engine.reopen(t)
        if not irqs_were_off:  # local_irq_restore(): interrupts on again, pending ones delivered
            c.irqs_off = False
            if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
                t.machine.irq.deliver_pending(c)
            t.budget -= 1  # local_irq_enable()'s scheduling point
            if t.budget <= 0:
                t.engine.decide(t, "local_irq_enable")
        if objp is not None and self.debug:
            objp = self.sa.debug.after_alloc(self, objp, flags, size)
        if flags & GFP_ZERO and objp is not None:  # as today's kernels: the object, or a debugged request
            n = size if size >= 0 and self.debug & SLAB_RED_ZONE else self.usable
            if n:
                self.sa.mem.write(objp - PAGE_OFFSET, bytes(n))
        ev = t.machine.events
        if ev is not None:
            _alloc_event(ev, t, self, flags, size, objp)
        return objp

    def free(self, t: Task, objp: int, func: str) -> None:
        """__cache_free(): the common free path of kmem_cache_free and kfree, ``objp`` already
        known to be in a slab page of this cache; ``func`` names the caller in reports.

        One scheduling point: the local_irq_restore() at the end (written out here, as
        local_irq_save and the magazine_hit charge, with their semantics).
        """
        c = t.cpu
        cc = self.cpu[c.id]
        user_ptr = objp  # what the caller freed (the event log names it, as kmalloc's line does)
        if self.debug:
            raw = self.sa.debug.before_free(self, objp, func)
            if raw is None:
                return
            objp = raw
            c = t.cpu
            cc = self.cpu[c.id]
        else:
            # the checks a modern kernel makes on every free, debugging or not (see
            # _bad_free): objp starts an object of this cache, and is not the object
            # this CPU freed last
            slab = self.sa.slab_of.get(self.sa.mem.private[(objp - PAGE_OFFSET) >> PAGE_SHIFT])
            if slab is None:
                self._bad_free(objp, func, False)
                return
            off = objp - slab.s_mem
            if off < 0 or off % self.objsize or off >= self.num * self.objsize:
                self._bad_free(objp, func, False)
                return
            if cc.loaded and cc.loaded[-1] == objp:
                self._bad_free(objp, func, True)
                return
        if t.hb is not None:  # KCSAN: a freed object starts afresh (mm/kcsan.py)
            t.hb.on_free(objp, self.objsize)
        ev = t.machine.events
        if ev is not None:
            ev.record(t, "free", f"{func}({user_ptr:#x})" if func == "kfree"
                      else f"{func}({self.name}, {user_ptr:#x})")
        irqs_were_off = c.irqs_off  # local_irq_save()
        c.irqs_off = True
        loaded = cc.loaded
        if len(loaded) < self.batchcount:
            loaded.append(objp)
            cc.freehit += 1
        else:
            self.free_miss(t, cc, objp)
            c = t.cpu
        c.clock += self.hit_cost  # t.charge(costs.magazine_hit)
        if c.clock > t.vlimit and t.engine.deterministic:
            t.engine.reopen(t)
        if not irqs_were_off:  # local_irq_restore(): the point
            c.irqs_off = False
            if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
                t.machine.irq.deliver_pending(c)
            t.budget -= 1
            if t.budget <= 0:
                t.engine.decide(t, "local_irq_enable")

    def hardened_free_ok(self, t: Task, objp: int, func: str) -> bool:
        """The fast path's hardened free checks, for a free that took the debug path only for
        kmemleak's hook: False after a report (refused)."""
        slab = self.sa.slab_of.get(self.sa.mem.private[(objp - PAGE_OFFSET) >> PAGE_SHIFT])
        off = objp - slab.s_mem if slab is not None else -1
        if off < 0 or off % self.objsize or off >= self.num * self.objsize:
            self._bad_free(objp, func, False)
            return False
        loaded = self.cpu[t.cpu.id].loaded
        if loaded and loaded[-1] == objp:
            self._bad_free(objp, func, True)
            return False
        return True

    def _bad_free(self, objp: int, func: str, double: bool) -> None:
        """The hardened free checks' reports: ``objp`` is not the start of an object of this
        cache (SLUB's "Invalid object pointer"), or is the object this CPU freed last
        (CONFIG_SLAB_FREELIST_HARDENED's naive double-free check). The free is refused, so
        the cache stays consistent."""
        self.errors += 1
        if double:
            self.sa.m.report("slab_double_free", [
                *slub_bug(self, "Object already free"),
                f"slab: double free detected in cache '{self.name}', objp {objp:08x}."],
                extra={"cache": self.name, "object": objp})
        else:
            self.sa.m.report("slab_invalid_free", [
                *slub_bug(self, f"Invalid object pointer 0x{objp:08x}"),
                f"{func}: 0x{objp:08x} is not the start of an object of cache `{self.name}'"],
                extra={"cache": self.name, "object": objp})


T = TypeVar("T")


class _FirstUse(Generic[T]):
    """A cache field that only slow paths use (the slab lists, the depot, their cache
    lines), made at its first use by ``make(cache)`` and then an ordinary attribute of the
    cache, as the locks are: boot makes some thirty caches, most of which a run never
    grows, and every object a boot makes is one more to make (or copy: boot.py's
    templates) and for the garbage collector to walk. No one can tell: the field is made
    as ``__init__`` would have made it, before anything reads it."""

    def __init__(self, attr: str, make: Callable[[kmem_cache_t], T]) -> None:
        self.attr = attr
        self.make = make

    def __get__(self, cache: Any, owner: Any = None) -> T:
        if cache is None:
            return self  # type: ignore[return-value]
        value = cache.__dict__[self.attr] = self.make(cache)
        return value


def _first_use(attr: str, make: Callable[[kmem_cache_t], T]) -> T:
    """A :class:`_FirstUse` field, typed as the value it makes."""
    return cast(T, _FirstUse(attr, make))


kmem_cache_t.slabs_full = _first_use("slabs_full", lambda c: OrderedDict())
kmem_cache_t.slabs_partial = _first_use("slabs_partial", lambda c: OrderedDict())
kmem_cache_t.slabs_free = _first_use("slabs_free", lambda c: OrderedDict())
kmem_cache_t.depot_full = _first_use("depot_full", lambda c: [])
kmem_cache_t.depot_empty = _first_use("depot_empty", lambda c: [])
kmem_cache_t.lists_line = _first_use("lists_line", lambda c: SharedLine(f"{c.name}->lists"))
kmem_cache_t.depot_line = _first_use("depot_line", lambda c: SharedLine(f"{c.name}->depot"))


def _alloc_event(ev: Any, t: Task, cachep: kmem_cache_t, flags: int, size: int, objp: int | None) -> None:
    """The event log's line for an allocation (only while ``Machine(events=True)``)."""
    got = "NULL" if objp is None else f"{objp:#x}"
    if size >= 0:
        ev.record(t, "alloc", f"kmalloc({size}, {gfp_names(flags)}) = {got} [{cachep.name}]")
    else:
        ev.record(t, "alloc", f"kmem_cache_alloc({cachep.name}, {gfp_names(flags)}) = {got}")


def _drain_ipi(cachep: kmem_cache_t) -> None:
    cachep.drain_this_cpu(current_task())


# ---------------------------------------------------------------------------------------------
# The allocator of one machine
# ---------------------------------------------------------------------------------------------
class SlabAllocator:
    """Every slab cache of one machine (``m.slab``): the cache chain, the shrinker, the checks."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.pa: PageAllocator = m.mm
        self.mem = self.pa.mem
        self.caches: list[kmem_cache_t] = []  # cache_chain, oldest first
        self.by_id: dict[int, kmem_cache_t] = {}
        self.slab_of: dict[int, Slab] = {}
        #: every page of every slab (the pages marked PG_slab) -> its slab: kfree's one lookup
        self.slab_page: dict[int, Slab] = {}
        self.nr_slab_pages = 0
        self.cache_chain_sem = mutex_init("cache_chain_sem")
        self.slab_break_gfp_order = BREAK_GFP_ORDER_HI if self.mem.nr_pages > (32 << 20) >> PAGE_SHIFT \
            else BREAK_GFP_ORDER_LO
        self.offslab_limit = (256 - SLAB_HEADER_SIZE) // BUFCTL_SIZE  # fits the largest on-slab size-N
        self._next_id = 1
        self.debug = SlabDebug(self)
        #: the kmem_cache_t.debug bits of the KASAN and kmemleak hooks this machine has
        self.debug_hook_bits = (SLAB_KASAN if m.kasan is not None else 0) | (SLAB_KMEMLEAK if m.kmemleak else 0)
        #: failslab's knobs (mm/fault_inject.py): the Machine's ``failslab`` once booted
        self.failslab: FaultAttr | None = None
        #: the size-N and size-N(DMA) kmalloc caches, smallest first (kmalloc_caches_init)
        self.kmalloc_normal: list[kmem_cache_t] = []
        self.kmalloc_dma: list[kmem_cache_t] = []
        #: kmalloc's cache for each size 0..KMALLOC_SMALL without GFP_DMA (one index, no arithmetic)
        self.kmalloc_small: tuple[kmem_cache_t, ...] = ()
        #: STATS: /proc/slabinfo prints globalstat and cpustat (CONFIG_DEBUG_SLAB sets it)
        self.stats = m.slab_debug
        #: (limit, batchcount, shared) every new cache gets instead of enable_cpucache's (a study's)
        self.tunables: tuple[int, int, int] | None = None
        self.cache_cache = self.new_cache("kmem_cache", 4 * m.nr_cpus + 128, 0, SLAB_NO_REAP | SLAB_HWCACHE_ALIGN,
                                          None, None)

    def new_cache(self, name: str, size: int, align: int, flags: int, ctor: Any, dtor: Any) -> kmem_cache_t:
        if self.m.slab_debug:  # FORCED_DEBUG: SLAB_DESTROY_BY_RCU caches get all but poisoning
            if size < 4096 or (size - 1).bit_length() == (size - 1 + 3 * BYTES_PER_WORD).bit_length():
                flags |= SLAB_RED_ZONE | SLAB_STORE_USER
            if not flags & SLAB_DESTROY_BY_RCU:
                flags |= SLAB_POISON
        c = kmem_cache_t(self, self._next_id, name, size, align, flags, ctor, dtor)
        self._next_id += 1
        self.caches.append(c)
        self.by_id[c.id] = c
        return c

    def cache_stats(self, c: kmem_cache_t) -> dict[str, int]:
        """One cache's counters by name: 2.6's STATS (globalstat, cpustat summed over the
        CPUs) and the model's own depot and direct-path counts and lock figures."""
        cpus = c.cpu
        return {"listallocs": c.listallocs, "maxobjs": c.high_mark, "grown": c.grown, "reaped": c.reaped,
                "error": c.errors, "maxfreeable": c.max_freeable, "freelimit": c.free_limit,
                "allochit": sum(cc.allochit for cc in cpus), "allocmiss": sum(cc.allocmiss for cc in cpus),
                "freehit": sum(cc.freehit for cc in cpus), "freemiss": sum(cc.freemiss for cc in cpus),
                "depot_gets": c.depot_gets, "depot_puts": c.depot_puts, "direct_allocs": c.direct_allocs,
                "direct_frees": c.direct_frees, "cached_objects": c.cached_objects(),
                "list_lock_acquisitions": c.list_lock.acquisitions,
                "list_lock_contentions": c.list_lock.contentions,
                "depot_lock_acquisitions": c.depot_lock.acquisitions,
                "depot_lock_contentions": c.depot_lock.contentions,
                "line_bounces": c.lists_line.bounces + c.depot_line.bounces}

    def find(self, name: str) -> kmem_cache_t | None:
        for c in self.caches:
            if c.name == name:
                return c
        return None

    # -- the shrinker: memory pressure reaps free slabs and drains magazines ----------------
    def shrink_count(self, gfp: int) -> int:
        """Pages that reaping could give back: free slabs, plus what the depot would free."""
        n = 0
        for c in self.caches:
            if not c.flags & SLAB_NO_REAP:
                n += len(c.slabs_free) << c.gfporder
                n += (len(c.depot_full) * c.batchcount // max(1, c.num)) << c.gfporder
        return n

    def shrink_scan(self, nr: int, gfp: int) -> int:
        """Drain this CPU's magazines and the depots, then destroy free slabs: pages freed.

        As cache_reap does for every cache but SLAB_NO_REAP ones; takes
        cache_chain_sem only if it is free, as cache_reap's down_trylock.
        """
        t = current_task()
        if not mutex_trylock(self.cache_chain_sem):
            return 0
        freed = 0
        try:
            for c in list(self.caches):
                if c.flags & SLAB_NO_REAP or c.dead:
                    continue
                flags = local_irq_save()
                c.drain_this_cpu(t)
                c.drain_depot(t)
                local_irq_restore(flags)
                freed += c.destroy_free_slabs(t)
                if freed >= nr:
                    break
        finally:
            mutex_unlock(self.cache_chain_sem)
        return freed

    # -- invariants ---------------------------------------------------------------------------
    def check(self) -> None:
        """Every object is in exactly one place; slab lists, counters and pages agree."""
        mem = self.mem
        seen_slabs: set[int] = set()
        for c in self.caches:
            objs: set[int] = set()
            free_objects = 0
            for state, lst in ((SLAB_FREE, c.slabs_free), (SLAB_PARTIAL, c.slabs_partial), (SLAB_FULL, c.slabs_full)):
                for head, slab in lst.items():
                    where = f"cache {c.name}: slab {head:#x}"
                    if head in seen_slabs or self.slab_of.get(head) is not slab:
                        raise InconsistentState(f"{where} is on two lists or not registered")
                    seen_slabs.add(head)
                    if slab.state != state or slab.inuse != c.num - len(slab.free):
                        raise InconsistentState(f"{where}: state {slab.state} on list {state}, inuse "
                                                f"{slab.inuse}, {len(slab.free)} free of {c.num}")
                    expect = SLAB_FULL if slab.inuse == c.num else SLAB_FREE if slab.inuse == 0 else SLAB_PARTIAL
                    if state != expect:
                        raise InconsistentState(f"{where} with {slab.inuse}/{c.num} in use is on the wrong list")
                    if len(set(slab.free)) != len(slab.free) or any(not 0 <= i < c.num for i in slab.free):
                        raise InconsistentState(f"{where}: bufctl chain corrupt {slab.free}")
                    for p in range(head, head + (1 << c.gfporder)):
                        if not mem.flags[p] & PG_slab or mem.owner[p] != c.id or mem.private[p] != head \
                                or mem.count[head] != 1 or self.slab_page.get(p) is not slab:
                            raise InconsistentState(f"{where}: page {p:#x} not marked as this cache's slab")
                    free_objects += len(slab.free)
                    objs.update(slab.s_mem + i * c.objsize for i in slab.free)
            if free_objects != c.free_objects:
                raise InconsistentState(f"cache {c.name}: free_objects accounting error "
                                        f"({c.free_objects} counted, {free_objects} on the slabs)")
            self._check_magazines(c, objs)
        if len(self.slab_page) != self.nr_slab_pages:
            raise InconsistentState(f"{len(self.slab_page)} pages known as slab pages, "
                                    f"{self.nr_slab_pages} in slabs")

    def _check_magazines(self, c: kmem_cache_t, free_in_slabs: set[int]) -> None:
        cached: set[int] = set()
        mags = [(f"cpu {i} {w}", mag) for i, cc in enumerate(c.cpu) for w, mag in
                (("loaded", cc.loaded), ("previous", cc.previous))]
        mags += [(f"depot magazine {i}", mag) for i, mag in enumerate(c.depot_full)]
        for where, mag in mags:
            if len(mag) > c.batchcount:
                raise InconsistentState(f"cache {c.name}: {where} holds {len(mag)} > batchcount {c.batchcount}")
            for o in mag:
                if o in cached or o in free_in_slabs:
                    raise InconsistentState(f"cache {c.name}: object {o:#x} in the {where} is also elsewhere "
                                            "(handed out twice or freed twice)")
                slab = self.slab_of.get(self.mem.private[(o - PAGE_OFFSET) >> PAGE_SHIFT])
                if slab is None or self.mem.owner[slab.head] != c.id or (o - slab.s_mem) % c.objsize:
                    raise InconsistentState(f"cache {c.name}: {where} holds {o:#x}, not an object of this cache")
                cached.add(o)
        for i, cc in enumerate(c.cpu):
            if cc.previous and len(cc.previous) != c.batchcount:
                raise InconsistentState(f"cache {c.name}: cpu {i} previous magazine is neither full nor empty")

    # -- /proc/slabinfo ------------------------------------------------------------------------
    def slabinfo(self) -> str:
        """/proc/slabinfo, version 2.1: newest cache first, the kernel's columns and widths.

        With ``Machine(slab_debug=True)`` (CONFIG_DEBUG_SLAB, hence STATS), or with
        ``stats`` set (a study turns it on: STATS without the debugging), the header
        says "(statistics)" and each row adds 2.6.11's globalstat and cpustat columns;
        cpustat sums every CPU's magazine hits and misses.
        """
        stats = self.stats
        out = ["slabinfo - version: 2.1 (statistics)" if stats else "slabinfo - version: 2.1",
               "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables "
               "<limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
               + (" : globalstat <listallocs> <maxobjs> <grown> <reaped> <error> <maxfreeable> <freelimit>"
                  " <nodeallocs> : cpustat <allochit> <allocmiss> <freehit> <freemiss>" if stats else "")]
        for c in reversed(self.caches):
            active, num_objs, active_slabs, num_slabs, shared_avail = c.counts()
            row = (f"{c.name:<17} {active:6d} {num_objs:6d} {c.objsize:6d} {c.num:4d} {1 << c.gfporder:4d}"
                   f" : tunables {c.limit:4d} {c.batchcount:4d} {c.shared:4d}"
                   f" : slabdata {active_slabs:6d} {num_slabs:6d} {shared_avail:6d}")
            if stats:
                cpus = c.cpu
                row += (f" : globalstat {c.listallocs:7d} {c.high_mark:6d} {c.grown:5d} {c.reaped:4d}"
                        f" {c.errors:4d} {c.max_freeable:4d} {c.free_limit:4d} {0:4d}"
                        f" : cpustat {sum(cc.allochit for cc in cpus):6d} {sum(cc.allocmiss for cc in cpus):6d}"
                        f" {sum(cc.freehit for cc in cpus):6d} {sum(cc.freemiss for cc in cpus):6d}")
            out.append(row)
        return "\n".join(out) + "\n"

    def slabinfo_write(self, line: str) -> None:
        """Writing "<name> <limit> <batchcount> <shared>" to /proc/slabinfo tunes a cache."""
        parts = line.split()
        if len(parts) != 4:
            raise KmemUsageError(f"slabinfo write takes '<name> <limit> <batchcount> <shared>', got {line!r}")
        name = parts[0]
        try:
            limit, batchcount, shared = (int(x) for x in parts[1:])
        except ValueError:
            raise KmemUsageError(f"slabinfo write: limit, batchcount and shared must be ints: {line!r}") from None
        if limit < 1 or not 1 <= batchcount <= limit or shared < 0:
            raise KmemUsageError(f"slabinfo write: -EINVAL (need limit >= 1, 1 <= batchcount <= limit, "
                                 f"shared >= 0): {line!r}")
        c = self.find(name)
        if c is None:
            raise KmemUsageError(f"slabinfo write: no cache named {name!r}")
        do_tune_cpucache(c, limit, batchcount, shared)

    def meminfo_lines(self) -> list[tuple[str, int]]:
        return [("Slab", self.nr_slab_pages << (PAGE_SHIFT - 10))]

    def page_cache(self, objp: int, func: str) -> kmem_cache_t | None:
        """GET_PAGE_CACHE: the cache owning the slab page of ``objp``, or None after a report
        (a pointer outside the direct map or outside any slab page)."""
        pfn = (objp - PAGE_OFFSET) >> PAGE_SHIFT
        if (objp < PAGE_OFFSET or pfn >= self.mem.max_low_pfn or not self.mem.flags[pfn] & PG_slab) \
                and self.m.kasan is not None and func != "ksize":
            self.m.kasan.report_free(objp, func, "invalid-free")  # kfree of what no slab gave
            return None
        if objp < PAGE_OFFSET or pfn >= self.mem.max_low_pfn:
            self.m.report("slab_invalid_free", [f"kfree_debugcheck: out of range ptr {objp:x}h.",
                                                f"{func}() of 0x{objp:08x}, outside the kernel's direct map"],
                          site=f"range:{objp:#x}", extra={"object": objp})
            return None
        if not self.mem.flags[pfn] & PG_slab:
            self.m.report("slab_invalid_free", [f"kfree_debugcheck: bad ptr {objp:x}h.",
                                                f"{func}() of 0x{objp:08x}: not in a slab page (never allocated "
                                                "from a slab cache, or its slab is gone)"],
                          site=f"bad:{objp:#x}", extra={"object": objp})
            return None
        return self.by_id[self.mem.owner[pfn]]


def kmalloc_caches_init(sa: SlabAllocator) -> None:
    """kmem_cache_init's loop: size-N then size-N(DMA), for every class."""
    for size in KMALLOC_SIZES:
        sa.kmalloc_normal.append(sa.new_cache(f"size-{size}", size, 0, ARCH_KMALLOC_FLAGS | SLAB_PANIC, None, None))
        sa.kmalloc_dma.append(sa.new_cache(f"size-{size}(DMA)", size, 0,
                                           ARCH_KMALLOC_FLAGS | SLAB_PANIC | SLAB_CACHE_DMA, None, None))
    sa.kmalloc_small = _kmalloc_small_of(sa.kmalloc_normal)


def kmem_cache_init(m: Machine) -> SlabAllocator:
    """Boot: the slab allocator, its cache of caches and the kmalloc caches; returns the
    allocator (boot.py stores it as ``m.slab``)."""
    sa = SlabAllocator(m)
    kmalloc_caches_init(sa)
    m.register_proc("slabinfo", sa.slabinfo)
    m.register_checker("slab", sa.check)
    m.meminfo_hooks.append(sa.meminfo_lines)
    reclaim = m.mm.reclaim
    assert reclaim is not None, "boot creates reclaim before the slab allocator"
    reclaim.register_shrinker(Shrinker("slab", sa.shrink_count, sa.shrink_scan, seeks=2))
    return sa


# ---------------------------------------------------------------------------------------------
# Kernel-style interfaces
# ---------------------------------------------------------------------------------------------
def _create_error(sa: SlabAllocator, name: Any, msg: str, flags: int) -> None:
    file, line, _ = caller_site(3)
    sa.m.report("slab_error", [msg, f"kernel BUG at {file}:{line}!"], site=f"create:{name}:{file}:{line}")
    if flags & SLAB_PANIC:
        sa.m.panic(f"kmem_cache_create(): failed to create slab `{name}'")


def kmem_cache_create(name: str, size: int, offset: int = 0, flags: int = 0,
                      ctor: Callable[[int, kmem_cache_t, int], Any] | None = None,
                      dtor: Callable[[int, kmem_cache_t, int], Any] | None = None) -> kmem_cache_t | None:
    """Create a cache of ``size``-byte objects; returns the cache, or None on error.

    ``offset`` is the alignment the objects need (the 2.6.10 ``align`` argument; 0 for
    the default). ``ctor(obj, cache, flags)`` runs on every object of a new slab with
    SLAB_CTOR_CONSTRUCTOR (| SLAB_CTOR_ATOMIC when the slab grows in a context that
    cannot sleep); ``dtor(obj, cache, 0)`` on every object of a slab being destroyed.
    Objects must be freed back in their constructed state.

    Bad arguments get the kernel's message (a report) and None; SLAB_PANIC panics.
    Context: process context; may sleep.
    """
    sa = current_machine().slab
    for what, v in (("size", size), ("offset", offset), ("flags", flags)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise KmemUsageError(f"kmem_cache_create: {what} must be an int, got {v!r}")
    if ctor is not None and not callable(ctor):
        raise KmemUsageError(f"kmem_cache_create: ctor must be callable(obj, cache, flags) or None, got {ctor!r}")
    if dtor is not None and not callable(dtor):
        raise KmemUsageError(f"kmem_cache_create: dtor must be callable(obj, cache, flags) or None, got {dtor!r}")
    if flags & ~CREATE_MASK:
        raise KmemUsageError(f"kmem_cache_create: flags {flags:#x} outside CREATE_MASK {CREATE_MASK:#x}")
    if offset < 0 or offset & (offset - 1):
        raise KmemUsageError(f"kmem_cache_create: offset (alignment) {offset} must be 0 or a power of two")
    if not isinstance(name, str) or not name or in_interrupt() or size < BYTES_PER_WORD or size > MAX_OBJ_SIZE \
            or (dtor is not None and ctor is None):
        _create_error(sa, name, f"kmem_cache_create: Early error in slab {name}", flags)
        return None
    might_sleep()
    mutex_lock(sa.cache_chain_sem)
    try:
        if sa.find(name) is not None:
            _create_error(sa, name, f"kmem_cache_create: duplicate cache {name}", flags)
            return None
        c = sa.new_cache(name, size, offset, flags, ctor, dtor)
        if c.num == 0:
            sa.caches.remove(c)
            del sa.by_id[c.id]
            _create_error(sa, name, f"kmem_cache_create: couldn't create cache {name}.", flags)
            return None
    finally:
        mutex_unlock(sa.cache_chain_sem)
    c.desc = kmem_cache_alloc(sa.cache_cache, GFP_KERNEL)
    return c


def machine_name(m: Any) -> str:
    """A machine as error messages name it: its repr and its identity (two alike differ)."""
    return f"{m!r}"[:-1] + f" at {id(m):#x}>"


def check_cache(cachep: Any, what: str) -> kmem_cache_t:
    """The slow path of every cache argument check: what is wrong, or the cache."""
    if type(cachep) is not kmem_cache_t:
        raise KmemUsageError(f"{what}() takes a cache from kmem_cache_create(), got {cachep!r}")
    if cachep.dead:
        raise KmemUsageError(f"{what}(): cache `{cachep.name}' was destroyed")
    t = current_task()
    if t and t.machine is not cachep.owner:
        raise KmemUsageError(f"{what}(): cache `{cachep.name}' belongs to machine {machine_name(cachep.owner)}, "
                             f"but the calling task runs on machine {machine_name(t.machine)}")
    return cachep


def kmem_cache_alloc(cachep: kmem_cache_t, flags: int) -> int | None:
    """An object from ``cachep`` (its kernel virtual address), or None.

    The fast path pops this CPU's loaded magazine with interrupts off and takes no
    lock. Context: may sleep if ``flags`` has __GFP_WAIT (might_sleep() is called
    even when the magazine has an object); GFP_ATOMIC never sleeps.
    """
    t = current_task()
    if type(cachep) is not kmem_cache_t or not t or cachep.owner is not t.machine:
        check_cache(cachep, "kmem_cache_alloc")
        if not t:
            raise NotInTaskError()
    if flags.__class__ is not int or flags & _NOT_GFP:  # (a negative int has such bits too)
        raise KmemUsageError(f"kmem_cache_alloc: flags must be GFP_* bits (an int), got {flags!r}")
    return cachep.alloc(t, flags)


#: include/linux/numa.h: "no node preference" (the calling CPU's node, as alloc_pages_node)
NUMA_NO_NODE: Final = -1


def check_node(node: object, what: str) -> int:
    """A node argument: NUMA_NO_NODE (-1) or a node of the calling task's machine."""
    nr = len(current_machine().mem.nodes)
    if node.__class__ is not int or not -1 <= node < nr:
        raise KmemUsageError(f"{what}: node must be NUMA_NO_NODE (-1) or a node of this machine "
                             f"(0-{nr - 1}), got {node!r}")
    return node


def kmem_cache_alloc_node(cachep: kmem_cache_t, flags: int, node: int) -> int | None:
    """kmem_cache_alloc() preferring memory on ``node`` (NUMA_NO_NODE, -1: no preference).

    The node is checked (one this machine does not have is a KmemUsageError) and is
    otherwise a hint the model does not follow: this SLAB has no per-node slab lists (the
    object comes from this CPU's magazine; a new slab's pages from the calling CPU's
    node). On a one-node machine that is the kernel's behaviour exactly.
    """
    t = current_task()
    if type(cachep) is not kmem_cache_t or not t or cachep.owner is not t.machine:
        check_cache(cachep, "kmem_cache_alloc_node")
    if flags.__class__ is not int or flags & _NOT_GFP:
        raise KmemUsageError(f"kmem_cache_alloc_node: flags must be GFP_* bits (an int), got {flags!r}")
    check_node(node, "kmem_cache_alloc_node")
    return kmem_cache_alloc(cachep, flags)


def kmem_cache_zalloc(cachep: kmem_cache_t, flags: int) -> int | None:
    """kmem_cache_alloc() with __GFP_ZERO (2.6.17 and later): the whole object zeroed,
    after the constructor (a cache with a constructor should not be zalloc'ed: the
    constructed state is lost, as in the kernel)."""
    t = current_task()
    if type(cachep) is not kmem_cache_t or not t or cachep.owner is not t.machine:
        check_cache(cachep, "kmem_cache_zalloc")
    if flags.__class__ is not int or flags & _NOT_GFP:
        raise KmemUsageError(f"kmem_cache_zalloc: flags must be GFP_* bits (an int), got {flags!r}")
    return kmem_cache_alloc(cachep, flags | GFP_ZERO)


def kmem_cache_free(cachep: kmem_cache_t, objp: int) -> None:
    """Give ``objp`` back to ``cachep``: onto this CPU's loaded magazine, no lock taken.

    A pointer outside any slab page or into another cache's slab is reported and
    refused (the page says whose it is: a cheap check the model always makes).
    With slab debugging, a pointer that is not the start of an object, a double
    free and a redzone overwrite are reported too, and all but the overwrite
    refused. Context: any; interrupts are disabled inside.
    """
    t = current_task()
    if type(cachep) is not kmem_cache_t or not t or cachep.owner is not t.machine:
        check_cache(cachep, "kmem_cache_free")
        if not t:
            raise NotInTaskError()
    if objp is None:
        return
    if type(objp) is not int:
        raise KmemUsageError(f"kmem_cache_free: objp must be an object address (int), got {objp!r}")
    owner = t.machine.slab.page_cache(objp, "kmem_cache_free")
    if owner is None:
        return
    if owner is not cachep:
        cachep.errors += 1
        t.machine.report("slab_wrong_cache", [
            f"cache_from_obj: Wrong slab cache. {cachep.name} but object is from {owner.name}",
            f"mismatch in kmem_cache_free: expected cache {owner.name}, got {cachep.name}",
            f"{objp:08x} is {owner.name}."], site=f"{cachep.name}:wrong:{objp:#x}",
            extra={"cache": cachep.name, "object": objp})
        return
    cachep.free(t, objp, "kmem_cache_free")


def kmem_cache_shrink(cachep: kmem_cache_t) -> int:
    """Drain every CPU's magazines (an IPI) and the depot, destroy every free slab.

    Returns 0 if no slab with objects in use remains, 1 otherwise (the kernel's answer).
    Context: process context.
    """
    check_cache(cachep, "kmem_cache_shrink")
    if in_interrupt():
        cachep._bug("kmem_cache_shrink() called from interrupt context")
        return 1
    t = current_task()
    cachep.drain_all()
    cachep.destroy_free_slabs(t)
    return int(bool(cachep.slabs_full or cachep.slabs_partial))


def kmem_cache_destroy(cachep: kmem_cache_t | None) -> int:
    """Destroy a cache whose objects have all been freed; 0 on success.

    A cache with objects still allocated is not destroyed: the kernel's message,
    1 returned, and the cache stays usable, losing nothing. ``None`` (NULL) does
    nothing, as since 4.3, so that an error path may destroy a cache it never made
    (2.6.11 BUG()s; mempool_destroy(), free_percpu() and vfree() take NULL here too).
    Context: process context; may sleep.
    """
    if cachep is None:
        return 0
    if type(cachep) is kmem_cache_t and cachep.dead:
        t = current_task()
        if t and t.machine is cachep.sa.m:  # the driver's second destroy: a kernel bug, reported
            kasan = t.machine.kasan
            if kasan is not None and cachep.freed_desc is not None \
                    and kasan.check(cachep.freed_desc, 1, False):  # kasan_check_byte(s): reported
                return 0
            # 2.6.11 list_del(&cachep->next) of the freed descriptor, unlinked already:
            # next->prev = prev writes through LIST_POISON1 (the page fault ends the task)
            write_u32(LIST_POISON1 + 4, LIST_POISON2)
    check_cache(cachep, "kmem_cache_destroy")
    sa = cachep.sa
    if in_interrupt():
        cachep._bug("kmem_cache_destroy() called from interrupt context")
        return 1
    might_sleep()
    t = current_task()
    mutex_lock(sa.cache_chain_sem)
    try:
        cachep.drain_all()
        cachep.destroy_free_slabs(t)
        if cachep.slabs_full or cachep.slabs_partial:
            cachep.errors += 1
            file, line, func = caller_site(2)
            sa.m.report("slab_destroy_busy", [
                f"kmem_cache_destroy {cachep.name}: Slab cache still has objects when called from "
                f"{func} ({file}:{line})",
                f"slab error in kmem_cache_destroy(): cache `{cachep.name}': Can't free all objects"],
                site=f"{cachep.name}:destroy:{file}:{line}", extra={"cache": cachep.name})
            return 1
        sa.caches.remove(cachep)
        cachep.dead = True
        cachep.owner = None
    finally:
        mutex_unlock(sa.cache_chain_sem)
    if cachep.desc is not None:
        kmem_cache_free(sa.cache_cache, cachep.desc)
        cachep.freed_desc, cachep.desc = cachep.desc, None
    return 0


def do_tune_cpucache(cachep: kmem_cache_t, limit: int, batchcount: int, shared: int) -> None:
    """Change a cache's tunables: drain every CPU and the depot, then resize the magazines
    (under spin_lock_irq, as 2.6.11's: the lock is also taken where interrupts are off,
    by an interrupt handler's allocation)."""
    cachep.drain_all()
    spin_lock_irq(cachep.depot_lock)
    cachep.limit, cachep.batchcount, cachep.shared = limit, batchcount, shared
    cachep.free_limit = (1 + cachep.sa.m.nr_cpus) * batchcount + cachep.num
    spin_unlock_irq(cachep.depot_lock)


def kmem_cache_tune(cachep: kmem_cache_t, limit: int, batchcount: int, shared: int) -> None:
    """What ``echo "name limit batchcount shared" > /proc/slabinfo`` does, for this cache.

    The arguments are ints checked as slabinfo_write checks them (its -EINVAL: limit >= 1,
    1 <= batchcount <= limit, shared >= 0), each refusal naming kmem_cache_tune and the
    argument. The cache is ``cachep`` itself, not the first cache of its name.
    """
    check_cache(cachep, "kmem_cache_tune")
    check_int("kmem_cache_tune", "limit", limit, 1)
    check_int("kmem_cache_tune", "batchcount", batchcount, 1, limit, what="an int (at most limit)")
    check_int("kmem_cache_tune", "shared", shared, 0)
    do_tune_cpucache(cachep, limit, batchcount, shared)


def kmem_cache_tune_model(cachep: kmem_cache_t, limit: int, batchcount: int, shared: int) -> None:
    """The model's tuning, for studies: as kmem_cache_tune, and also ``limit = batchcount = 0``:
    no per-CPU layer at all, every allocation and free under the cache's list_lock (the
    single-lock slab of Bonwick 1994, which 2.6's slabinfo write refuses with -EINVAL)."""
    check_cache(cachep, "kmem_cache_tune_model")
    check_int("kmem_cache_tune_model", "limit", limit, 0)
    check_int("kmem_cache_tune_model", "batchcount", batchcount, 0 if limit == 0 else 1, limit,
              what="an int (at most limit; 0 only with limit 0)")
    check_int("kmem_cache_tune_model", "shared", shared, 0)
    do_tune_cpucache(cachep, limit, batchcount, shared)


def kmem_cache_size(cachep: kmem_cache_t) -> int:
    """The usable size of the cache's objects: obj_reallen() of 2.6.11.

    Without slab debugging that is the padded object size (a 20-byte
    SLAB_HWCACHE_ALIGN cache gives 32); with it, the size before the red zone.
    With KASAN, the size the cache was created with (today's ``s->object_size``):
    KASAN checks accesses against that size, so a driver that clears
    kmem_cache_size() bytes stays within what it may touch.
    """
    cachep = check_cache(cachep, "kmem_cache_size")
    return cachep.object_size if cachep.sa.m.kasan is not None else cachep.usable


def kmem_cache_name(cachep: kmem_cache_t) -> str:
    return check_cache(cachep, "kmem_cache_name").name


def kmem_cache_drain_local() -> None:
    """Give this CPU's magazines of every cache back to the slabs (what a CPU going down does)."""
    t = current_task()
    sa = current_machine().slab
    flags = local_irq_save()
    for c in sa.caches:
        c.drain_this_cpu(t)
    local_irq_restore(flags)


__all__ = ["kmem_cache_t", "kmem_cache_create", "kmem_cache_destroy", "kmem_cache_alloc", "kmem_cache_free",
           "kmem_cache_alloc_node", "kmem_cache_zalloc", "NUMA_NO_NODE", "check_node",
           "kmem_cache_shrink", "kmem_cache_size", "kmem_cache_name", "kmem_cache_tune", "kmem_cache_drain_local",
           "kmem_cache_tune_model", "KMALLOC_SMALL",
           "SLAB_DEBUG_FREE", "SLAB_DEBUG_INITIAL", "SLAB_RED_ZONE", "SLAB_POISON", "SLAB_NO_REAP",
           "SLAB_HWCACHE_ALIGN", "SLAB_CACHE_DMA", "SLAB_MUST_HWCACHE_ALIGN", "SLAB_STORE_USER",
           "SLAB_RECLAIM_ACCOUNT", "SLAB_PANIC", "SLAB_DESTROY_BY_RCU", "SLAB_CTOR_CONSTRUCTOR",
           "SLAB_CTOR_ATOMIC", "SLAB_CTOR_VERIFY", "SLAB_ATOMIC", "SLAB_KERNEL", "SLAB_DMA", "SLAB_NO_GROW",
           "POISON_INUSE", "POISON_FREE", "POISON_END", "RED_INACTIVE", "RED_ACTIVE"]
