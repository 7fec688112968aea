"""Memory pools: a reserve of preallocated elements for allocations that must not fail.

Models mm/mempool.c (include/linux/mempool.h). The signatures are the 2.6 ones
LDD3 documents (``mempool_create(min_nr, alloc_fn, free_fn, pool_data)``, the
three-argument ``mempool_resize``, ``mempool_destroy`` that BUGs on outstanding
elements); the algorithm of ``mempool_alloc`` is the modern one (Nick Piggin's
2.6.12 rework, plus the 2.6.18 ``io_schedule_timeout(5*HZ)``):

1. try the underlying allocator without __GFP_WAIT/__GFP_IO, with __GFP_NORETRY
   and __GFP_NOWARN (a failure here is expected and silent);
2. take an element from the reserve under ``pool->lock`` (irqsave: interrupt
   handlers use the pool with GFP_ATOMIC);
3. try the underlying allocator again with the caller's full mask;
4. a caller without __GFP_WAIT gets NULL (None) now; one that may sleep waits on
   ``pool->wait`` until a ``mempool_free`` refills the reserve (or 5 s of virtual
   time pass) and starts over: it never fails.

``mempool_free`` refills the reserve while ``curr_nr < min_nr`` (re-checked under
the lock) and wakes the waiters; any other element goes back with ``free_fn``.

Model additions (see docs/mempool.md): the 2.6 GFP bits have no __GFP_NOMEMALLOC,
so that part of the modern mask cannot be expressed; a waiter that has waited 120 s
of virtual time while no other task could still return an element (every other one
ended, waits on a mempool, or sleeps with nobody left to wake it) is reported as a
hung task and ended (the kernel would loop for ever); a long wait that something can
still end is not; each machine keeps a registry of its pools with an invariant
check, and an element freed while it already sits in the reserve is reported as
a double free. Under ``Machine(slab_debug=True)`` reserve elements of the stock
pools are poisoned and re-checked, as CONFIG_DEBUG_SLAB does since 4.2.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..runtime.errors import InconsistentState, KmemInternalError, KmemUsageError
from ..runtime.kernel import BUG, WARN_ON, block, might_sleep, report_hung_task
from ..runtime.locks import (
    finish_wait,
    init_waitqueue_head,
    prepare_to_wait,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
    wake_up,
)
from ..runtime.preempt import HUNG_TASK_TIMEOUT_NS, HZ, NSEC_PER_JIFFY
from ..runtime.report import caller_site, relpath
from ..runtime.task import current_task
from .access import mem_read, mem_write
from .context import current_machine, mm_caller_frame
from .debug import POISON_END, POISON_FREE, POISON_INUSE
from .gfp import GFP_IO, GFP_KERNEL, GFP_NORETRY, GFP_NOWARN, GFP_WAIT, GFP_ZERO, check_gfp
from .kmalloc import kfree, kmalloc
from .layout import MAX_ORDER, PAGE_SHIFT
from .page_alloc import __free_pages, alloc_pages
from .physmem import Page
from .slab import check_cache, kmem_cache_alloc, kmem_cache_free, kmem_cache_t, machine_name

if TYPE_CHECKING:
    from ..machine import Machine


ENOMEM: Final = 12
#: sizeof(mempool_t) on i386 2.6.11: lock, min_nr, curr_nr, elements, pool_data, alloc, free
#: (4 bytes each) and the wait_queue_head_t (12): kmalloc'd from size-64
SIZEOF_MEMPOOL_T: Final = 40
#: sizeof(void *): the elements array is kmalloc(min_nr * 4), so more than 32768 cannot be met
SIZEOF_POINTER: Final = 4
#: io_schedule_timeout(5*HZ) in mempool_alloc ("a workaround for some DM problems in 2.6.18")
MEMPOOL_WAIT_JIFFIES: Final = 5 * HZ
#: The longest a waiter waits while other tasks still run or sleep with a timeout (10 minutes of
#: virtual time): an element held longer than that is taken as never coming back, so two tasks
#: that wait on each other in a polling loop end instead of looping for ever
MEMPOOL_WAIT_LIMIT_NS: Final = 600 * 1000 * NSEC_PER_JIFFY
#: BITS_PER_LONG / 8 on the modelled i386: bytes shown either side of a poison mismatch
_POISON_CONTEXT: Final = 4

AllocFn = Callable[[int, Any], Any]
FreeFn = Callable[[Any, Any], Any]


def _key(element: Any) -> Any:
    """A dict key for an element: the element itself when hashable (ints, struct pages)."""
    try:
        hash(element)
    except TypeError:
        return ("id", id(element))
    return element


def _describe(element: Any) -> str:
    if isinstance(element, Page):
        return f"page pfn {element.pfn:#x}"
    if isinstance(element, int):
        return f"{element:08x}"
    return repr(element)


class mempool_t:
    """struct mempool_s: the reserve, its lock and wait queue, and the element functions.

    ``elements[:curr_nr]`` is the reserve (LIFO, as ``elements[--curr_nr]``).
    The ``_out`` bookkeeping (elements handed out by mempool_alloc and not yet
    returned) is the model's, not the kernel's: it feeds the invariant check and
    the outstanding count that mempool_destroy reports. It sits under a plain
    Python lock that is no scheduling point, so it never changes an interleaving.
    """

    __slots__ = ("machine", "id", "lock", "wait", "min_nr", "curr_nr", "elements", "pool_data",
                 "alloc", "free", "site", "destroyed", "poison_size", "_reserve", "_out", "nr_out",
                 "_track", "struct", "elements_buf", "__weakref__")

    def __init__(self, machine: Machine, pool_id: int, min_nr: int, alloc_fn: AllocFn, free_fn: FreeFn,
                 pool_data: Any, site: str) -> None:
        self.machine = machine
        self.id = pool_id
        self.lock = spin_lock_init(f"mempool{pool_id}->lock")
        self.wait = init_waitqueue_head(f"mempool{pool_id}->wait")
        self.min_nr = min_nr
        self.curr_nr = 0
        self.elements: list[Any] = []
        self.pool_data = pool_data
        self.alloc = alloc_fn
        self.free = free_fn
        self.site = site
        self.destroyed = False
        #: bytes poisoned per reserve element (0: no poisoning), fixed at creation
        self.poison_size = 0
        self._reserve: set[Any] = set()
        self._out: dict[Any, int] = {}
        self.nr_out = 0
        self._track = threading.Lock()
        #: the kmalloc'd memory of the pool: the struct and the elements array (addresses);
        #: the model keeps the reserve itself in ``elements``, a Python list
        self.struct: int | None = None
        self.elements_buf: int | None = None

    def __repr__(self) -> str:
        state = " destroyed" if self.destroyed else ""
        return (f"<mempool {self.id} curr_nr={self.curr_nr} min_nr={self.min_nr} "
                f"outstanding={self.nr_out}{state} created at {self.site}>")

    # -- the model's bookkeeping (no scheduling points) ------------------------------------
    def _track_out(self, element: Any) -> None:
        k = _key(element)
        with self._track:
            self._out[k] = self._out.get(k, 0) + 1
            self.nr_out += 1
        ev = self.machine.events
        if ev is not None:  # the event log's mempool_alloc line (Machine(events=True))
            ev.record(current_task(), "alloc", f"mempool_alloc(mempool{self.id}) = {_describe(element)}")

    def _track_in(self, element: Any) -> None:
        """An element comes back. One the pool never handed out is fine: elements are
        interchangeable, the kernel does not care where a freed element came from."""
        ev = self.machine.events
        if ev is not None:  # the event log's mempool_free line (Machine(events=True))
            ev.record(current_task(), "free", f"mempool_free({_describe(element)}, mempool{self.id})")
        k = _key(element)
        with self._track:
            n = self._out.get(k, 0)
            if n:
                if n == 1:
                    del self._out[k]
                else:
                    self._out[k] = n - 1
                self.nr_out -= 1

    def in_reserve(self, element: Any) -> bool:
        return _key(element) in self._reserve


class MempoolRegistry:
    """The pools of one machine (``m.mempools``) and their invariant walk."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.pools: dict[int, mempool_t] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        machine.register_checker("mempool", self.check)

    def new_id(self) -> int:
        with self._lock:
            n = self._next_id
            self._next_id += 1
            return n

    def add(self, pool: mempool_t) -> None:
        with self._lock:
            self.pools[pool.id] = pool

    def remove(self, pool: mempool_t) -> None:
        with self._lock:
            self.pools.pop(pool.id, None)

    def check(self) -> None:
        """Every pool: curr_nr <= min_nr, the reserve holds distinct elements none of which
        is also outstanding, the outstanding counter matches, pooled pages are held."""
        for pool in list(self.pools.values()):
            name = f"mempool {pool.id} (created at {pool.site})"
            if pool.curr_nr != len(pool.elements):
                raise InconsistentState(f"{name}: curr_nr {pool.curr_nr} but {len(pool.elements)} elements")
            if not 0 <= pool.curr_nr <= pool.min_nr:
                raise InconsistentState(f"{name}: curr_nr {pool.curr_nr} outside [0, min_nr {pool.min_nr}]")
            keys = [_key(e) for e in pool.elements]
            if len(set(keys)) != len(keys):
                raise InconsistentState(f"{name}: an element is in the reserve twice")
            if set(keys) != pool._reserve:
                raise InconsistentState(f"{name}: reserve index does not match the elements")
            both = pool._reserve & pool._out.keys()
            if both:
                raise InconsistentState(f"{name}: {_describe(next(iter(both)))} is both in the reserve "
                                        "and handed out")
            if pool.nr_out != sum(pool._out.values()) or any(n != 1 for n in pool._out.values()):
                raise InconsistentState(f"{name}: outstanding counter {pool.nr_out} does not match "
                                        f"the {len(pool._out)} distinct elements handed out")
            mem = getattr(self.machine, "mem", None)
            for e in pool.elements:
                if isinstance(e, Page) and mem is not None and mem.count[e.pfn] <= 0:
                    raise InconsistentState(f"{name}: reserve {_describe(e)} is free in the page allocator")


def mempool_machine_init(m: Machine) -> MempoolRegistry:
    """The mempool registry of machine ``m``, built at boot (boot.py stores it as ``m.mempools``)."""
    return MempoolRegistry(m)


def mempools_of(m: Machine) -> list[mempool_t]:
    """The live pools of machine ``m`` (tests and invariant walks)."""
    reg = getattr(m, "mempools", None)
    return [] if reg is None else list(reg.pools.values())


# ---------------------------------------------------------------------------------------------
# add_element / remove_element and the debug poisoning
# ---------------------------------------------------------------------------------------------
def _poison_addr(pool: mempool_t, element: Any) -> int | None:
    """The address of an element's bytes (None: nothing to poison, e.g. a highmem page)."""
    if isinstance(element, Page):
        return element.address
    return element if isinstance(element, int) else None


def _poison_size_for(alloc_fn: AllocFn, pool_data: Any) -> int:
    """How many bytes of each reserve element poison_element() covers (0: none).

    As in mm/mempool.c only the stock pools are poisoned, recognised by their alloc_fn:
    pages (PAGE_SIZE << order), kmalloc (the requested size; the kernel uses ksize()),
    slab (the cache's object size; a cache with a constructor is left alone, since
    poisoning would destroy what the constructor built: modern kernels forbid that
    combination with VM_BUG_ON(mem->ctor)).
    """
    if pool_data.__class__ is int and pool_data >= 0:  # else preallocation refuses it clearly
        if alloc_fn is mempool_alloc_pages:
            return 1 << (PAGE_SHIFT + pool_data) if pool_data < MAX_ORDER else 0
        if alloc_fn is mempool_kmalloc:
            return pool_data
    if alloc_fn is mempool_alloc_slab:
        if type(pool_data) is not kmem_cache_t or pool_data.ctor is not None:
            return 0
        return pool_data.object_size
    return 0


def _poison_element(pool: mempool_t, element: Any) -> None:
    """__poison_element(): POISON_FREE bytes, the last one POISON_END."""
    addr = _poison_addr(pool, element)
    size = pool.poison_size
    if addr is None or size <= 0:
        return
    mem_write(addr, bytes([POISON_FREE]) * (size - 1) + bytes([POISON_END]))


def _check_element(pool: mempool_t, element: Any) -> None:
    """__check_element(): the poison must be intact; then the element reads POISON_INUSE."""
    addr = _poison_addr(pool, element)
    size = pool.poison_size
    if addr is None or size <= 0:
        return
    data = mem_read(addr, size)
    expected = bytes([POISON_FREE]) * (size - 1) + bytes([POISON_END])
    if data != expected:
        byte = next(i for i in range(size) if data[i] != expected[i])
        _poison_error(pool, addr, data, byte)
        return
    mem_write(addr, bytes([POISON_INUSE]) * size)


def _poison_error(pool: mempool_t, addr: int, data: bytes, byte: int) -> None:
    """poison_error(): the modern report, a few bytes either side of the first bad one."""
    size = len(data)
    start = max(byte - _POISON_CONTEXT, 0)
    end = min(byte + _POISON_CONTEXT, size)
    shown = "".join(f"{b:x} " for b in data[start:end])
    pool.machine.report("mempool_poison", [
        "BUG: mempool element poison mismatch",
        f"Mempool {pool.id:08x} size {size}",
        f" nr={pool.curr_nr} @ {addr:08x}: {'... ' if start > 0 else ''}0x{shown}{'...' if end < size else ''}"],
        site=f"mempool{pool.id}:{addr:#x}")


def _add_element(pool: mempool_t, element: Any) -> None:
    """add_element(), called under pool->lock (or before the pool is shared)."""
    if pool.curr_nr >= pool.min_nr:  # BUG_ON(pool->curr_nr >= pool->min_nr): callers check first
        raise KmemInternalError(f"add_element: mempool {pool.id} is full ({pool.curr_nr}/{pool.min_nr})")
    if pool.poison_size:
        _poison_element(pool, element)
    if pool.machine.kasan is not None:  # kasan_poison_element(): the reserve is not to be touched
        pool.machine.kasan.mempool_poison(element)
    pool.elements.append(element)
    pool._reserve.add(_key(element))
    pool.curr_nr += 1


def _remove_element(pool: mempool_t) -> Any:
    """remove_element(), called under pool->lock: the most recently added element."""
    if pool.curr_nr <= 0:  # BUG_ON(pool->curr_nr < 0)
        raise KmemInternalError(f"remove_element: mempool {pool.id} is empty")
    element = pool.elements.pop()
    pool.curr_nr -= 1
    pool._reserve.discard(_key(element))
    if pool.machine.kasan is not None:  # kasan_unpoison_element()
        pool.machine.kasan.mempool_unpoison(element)
    if pool.poison_size:
        _check_element(pool, element)
    return element


def _free_pool(pool: mempool_t) -> None:
    """free_pool(): hand every reserve element back with free_fn, then kfree the
    elements array and the pool."""
    while pool.curr_nr:
        element = _remove_element(pool)
        pool.free(element, pool.pool_data)
    buf, pool.elements_buf = pool.elements_buf, None
    kfree(buf)
    struct, pool.struct = pool.struct, None
    kfree(struct)


# ---------------------------------------------------------------------------------------------
# Python-side argument checks (KmemUsageError)
# ---------------------------------------------------------------------------------------------
def _check_min_nr(fn: str, name: str, value: Any, least: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise KmemUsageError(f"{fn}: {name} must be an int, got {value!r}")
    if value < least:
        raise KmemUsageError(f"{fn}: {name}(={value}) must be >= {least} (the number of elements kept in reserve)")
    return value


def _creator_site() -> str:
    """file:line of the code that asked for the pool (outside this module and the runtime)."""
    f = mm_caller_frame()
    if f is None:
        return "<unknown>"
    return f"{relpath(f.f_code.co_filename)}:{f.f_lineno}"


def _pool_of(pool: Any, fn: str) -> mempool_t:
    """The pool, checked: a mempool_t of the calling task's machine."""
    if not isinstance(pool, mempool_t):
        raise KmemUsageError(f"{fn}() takes a mempool_t from mempool_create(), got {pool!r}")
    m = current_machine()
    if pool.machine is not m:
        raise KmemUsageError(f"{fn}(): mempool {pool.id} (created at {pool.site}) belongs to machine "
                             f"{machine_name(pool.machine)}, but the calling task runs on machine "
                             f"{machine_name(m)}")
    return pool


def _use_after_destroy(pool: mempool_t, fn: str) -> None:
    t = current_task()
    file, line, _ = caller_site(3)
    pool.machine.report("mempool_use_after_destroy", [
        f"BUG: KASAN: use-after-free in {fn}",
        f"{fn}() of mempool {pool.id} (created at {pool.site}) after mempool_destroy(), "
        f"by task {t.comm}/{t.pid} at {file}:{line}"], site=f"{fn}:{file}:{line}")


# ---------------------------------------------------------------------------------------------
# The kernel-style interface
# ---------------------------------------------------------------------------------------------
def mempool_create(min_nr: int, alloc_fn: AllocFn, free_fn: FreeFn, pool_data: Any = None) -> mempool_t | None:
    """Create a pool that guarantees ``min_nr`` preallocated elements.

    Args:
        min_nr: the number of elements kept in reserve (an int >= 0; 0 is a pool with no
            reserve, as the kernel allows: its GFP_KERNEL callers wait for the allocator).
        alloc_fn: ``alloc_fn(gfp_mask, pool_data)`` returns a new element or None.
        free_fn: ``free_fn(element, pool_data)`` gives an element back to its allocator.
        pool_data: passed to both functions (an order, a size, a kmem_cache, ...).
    Returns:
        the pool, or None as 2.6 fails: the pool (40 bytes) or its elements array
        (``4 * min_nr`` bytes, so above 32768 elements the kmalloc fails) cannot
        be kmalloc'd, or preallocating with GFP_KERNEL failed; then every element
        already taken has been handed back with ``free_fn``, and both kfree'd.
        Should the caller end inside preallocation (an OOM kill, an exception from
        ``alloc_fn``), the same is handed back before the exception goes on.
    Raises:
        KmemUsageError: ``min_nr`` is not an int >= 0 or a function is not callable (the
            kernel's kmalloc of a negative count's array would fail: NULL).
    Context: process context; might sleep (preallocation uses GFP_KERNEL).
    """
    _check_min_nr("mempool_create", "min_nr", min_nr)
    if not callable(alloc_fn):
        raise KmemUsageError(f"mempool_create: alloc_fn must be callable as alloc_fn(gfp_mask, pool_data), "
                             f"got {alloc_fn!r}")
    if not callable(free_fn):
        raise KmemUsageError(f"mempool_create: free_fn must be callable as free_fn(element, pool_data), "
                             f"got {free_fn!r}")
    m = current_machine()
    might_sleep()  # the kmalloc(GFP_KERNEL) of the pool and its elements array
    struct = kmalloc(SIZEOF_MEMPOOL_T, GFP_KERNEL)
    if struct is None:
        return None
    try:
        buf = kmalloc(min_nr * SIZEOF_POINTER, GFP_KERNEL)
    except BaseException:
        kfree(struct)
        raise
    if buf is None:
        kfree(struct)
        return None
    reg = m.mempools
    pool = mempool_t(m, reg.new_id(), min_nr, alloc_fn, free_fn, pool_data, _creator_site())
    pool.struct, pool.elements_buf = struct, buf
    if m.slab_debug:
        pool.poison_size = _poison_size_for(alloc_fn, pool_data)
    # First pre-allocate the guaranteed number of buffers.
    try:
        while pool.curr_nr < pool.min_nr:
            element = pool.alloc(GFP_KERNEL, pool.pool_data)
            if element is None:
                _free_pool(pool)
                return None
            _add_element(pool, element)
    except BaseException:  # the caller ends here (OOM-killed, an alloc_fn that raised): leak nothing
        _free_pool(pool)
        raise
    reg.add(pool)
    return pool


def mempool_destroy(pool: mempool_t | None) -> None:
    """Free every reserve element and the pool itself.

    Every element must have come back first: elements still out are a BUG()
    (2.6: ``if (pool->curr_nr != pool->min_nr) BUG();``). The model reports it as
    ``kernel BUG at ...!``, ends the calling task with an Oops, and leaves the pool
    intact and usable, so the elements can still be freed and the pool destroyed.
    ``None`` is accepted and ignored (as later kernels do).
    Context: sleeps only if ``free_fn`` sleeps.
    """
    if pool is None:
        return
    pool = _pool_of(pool, "mempool_destroy")
    if pool.destroyed:
        _use_after_destroy(pool, "mempool_destroy")
        return
    curr_nr, min_nr, nr_out = pool.curr_nr, pool.min_nr, pool.nr_out
    if curr_nr != min_nr or nr_out:
        if not nr_out:       # a mempool_resize() grow whose allocations failed left it short
            BUG(f"mempool_destroy: curr_nr {curr_nr} != min_nr {min_nr} (the reserve is short, nothing is out)")
        elif curr_nr != min_nr:
            BUG(f"mempool_destroy: {nr_out} element(s) still outstanding, curr_nr {curr_nr} "
                f"!= min_nr {min_nr} (There were outstanding elements)")
        else:                # 2.6's curr_nr test misses these: the allocator's elements are out
            BUG(f"mempool_destroy: {nr_out} element(s) still outstanding, the reserve is full "
                f"(curr_nr {curr_nr} == min_nr {min_nr})")
        return
    pool.destroyed = True
    pool.machine.mempools.remove(pool)
    _free_pool(pool)


def _mempool_wait(pool: mempool_t, flags: int) -> None:
    """Sleep on pool->wait until a mempool_free wakes us or 5 s of virtual time pass.

    Called with pool->lock held; prepare_to_wait comes before the unlock, so a free
    between the unlock and the sleep is not lost (the task is then already woken).
    """
    prepare_to_wait(pool.wait)
    spin_unlock_irqrestore(pool.lock, flags)
    # The kernel sleeps with a 5 s timeout here too: mm/mempool.c keeps it as a workaround
    # for device-mapper problems seen in 2.6.18, in place of a plain io_schedule().
    block(pool.wait, MEMPOOL_WAIT_JIFFIES * NSEC_PER_JIFFY, "io_schedule_timeout")
    finish_wait(pool.wait)


def _someone_may_feed(pool: mempool_t, engine: Any) -> bool:
    """Can another task of the run still return an element? True while one is on a CPU or
    runnable, or sleeps with a timeout (msleep, schedule_timeout) anywhere but on a mempool's
    wait queue: it will run again, and may free. False when every other live task is done,
    waits on a mempool itself, or sleeps with nothing but another task to wake it: then
    nothing will ever come back (a leak, or pools waiting on each other) and the wait is a
    livelock the model ends. A waiter's 5 s retries are not such a sign: the kernel's
    khungtaskd never fires for them, so a long but finite wait is not reported (up to
    MEMPOOL_WAIT_LIMIT_NS)."""
    pool_waits = {id(p.wait) for p in mempools_of(pool.machine)}
    return bool(engine.others_may_run(current_task(), lambda w: id(w) in pool_waits))


def _mempool_hung(pool: mempool_t, waited_ns: int) -> None:
    report_hung_task(waited_ns, f"mempool_alloc: mempool {pool.id} (created at {pool.site}) stayed empty "
                                "and its allocator kept failing; nothing returned an element")


def mempool_alloc(pool: mempool_t, gfp_mask: int) -> Any:
    """Allocate an element: from the underlying allocator if it can, else from the reserve.

    Args:
        pool: a pool from mempool_create().
        gfp_mask: the usual allocation flags; __GFP_ZERO is not supported (warned).
    Returns:
        an element. With __GFP_WAIT (GFP_KERNEL, GFP_NOIO, ...) this never fails: the
        caller sleeps until an element comes back. Without it (GFP_ATOMIC) None is
        returned at once when the allocator fails and the reserve is empty.
    Context: may sleep if ``gfp_mask`` has __GFP_WAIT (then process context only);
    with GFP_ATOMIC callable from interrupt handlers.
    """
    pool = _pool_of(pool, "mempool_alloc")
    check_gfp(gfp_mask, "mempool_alloc")
    if pool.destroyed:
        _use_after_destroy(pool, "mempool_alloc")
        return None
    WARN_ON(gfp_mask & GFP_ZERO, "mempool_alloc: using __GFP_ZERO is not supported")
    if gfp_mask & GFP_WAIT:
        might_sleep()
    # __GFP_NOMEMALLOC ("don't allocate emergency reserves") has no 2.6 bit: see the docs.
    gfp_mask |= GFP_NORETRY  # don't loop in __alloc_pages
    gfp_mask |= GFP_NOWARN  # failures are OK
    # The first round goes without __GFP_WAIT and __GFP_IO: no reclaim before the reserve.
    gfp_temp = gfp_mask & ~(GFP_WAIT | GFP_IO)
    waited_since: int | None = None
    while True:  # repeat_alloc:
        element = pool.alloc(gfp_temp, pool.pool_data)
        if element is not None:
            pool._track_out(element)
            return element
        flags = spin_lock_irqsave(pool.lock)
        if pool.curr_nr:
            element = _remove_element(pool)
            pool._track_out(element)
            spin_unlock_irqrestore(pool.lock, flags)
            return element
        # The reserve is empty: retry at once with the full mask (reclaim allowed).
        if gfp_temp != gfp_mask:
            spin_unlock_irqrestore(pool.lock, flags)
            gfp_temp = gfp_mask
            continue
        # We must not sleep if !__GFP_WAIT.
        if not gfp_mask & GFP_WAIT:
            spin_unlock_irqrestore(pool.lock, flags)
            return None
        # Let's wait for someone else to return an element to the pool.
        engine = pool.machine.engine
        assert engine is not None, "a task that may sleep runs on its machine's engine"
        if waited_since is None:
            waited_since = engine.now
        elif engine.now - waited_since >= HUNG_TASK_TIMEOUT_NS and (
                engine.now - waited_since >= MEMPOOL_WAIT_LIMIT_NS or not _someone_may_feed(pool, engine)):
            spin_unlock_irqrestore(pool.lock, flags)
            _mempool_hung(pool, engine.now - waited_since)
        _mempool_wait(pool, flags)


def mempool_free(element: Any, pool: mempool_t) -> None:
    """Return an element: into the reserve while it is below min_nr, else to ``free_fn``.

    A None element is ignored. An element that sits in the reserve already is a
    double free: reported, and the element stays where it is. The element of a stock
    pool is checked before anything happens (an address for the kmalloc and slab pools,
    a struct page for the page pools), so a wrong one cannot reach the reserve; the
    elements of a pool with the caller's own functions are the caller's business.
    Context: any; sleeps only if ``free_fn`` sleeps.
    """
    if element is None:
        return
    pool = _pool_of(pool, "mempool_free")
    free = pool.free
    if free is mempool_kfree or free is mempool_free_slab:
        if element.__class__ is not int:
            raise KmemUsageError(f"mempool_free: element(={element!r}) must be an address (int) from "
                                 f"mempool_alloc of mempool {pool.id}")
    elif free is mempool_free_pages and element.__class__ is not Page:
        raise KmemUsageError(f"mempool_free: element(={element!r}) must be a struct page from mempool_alloc "
                             f"of mempool {pool.id}")
    if pool.destroyed:
        _use_after_destroy(pool, "mempool_free")
        pool._track_in(element)
        pool.free(element, pool.pool_data)  # nothing is lost: it goes back to its allocator
        return
    if pool.in_reserve(element):
        _double_free(pool, element)
        return
    pool._track_in(element)
    # Testing curr_nr < min_nr without the lock is enough for correctness: whoever took
    # the pool below min_nr sees it (the kernel pairs an smp_rmb here with an smp_wmb in
    # mempool_alloc); refilling as soon as possible is what keeps the reserve full.
    if pool.curr_nr < pool.min_nr:
        flags = spin_lock_irqsave(pool.lock)
        if pool.curr_nr < pool.min_nr:
            _add_element(pool, element)
            spin_unlock_irqrestore(pool.lock, flags)
            wake_up(pool.wait)
            return
        spin_unlock_irqrestore(pool.lock, flags)  # Raced: another free refilled it
    pool.free(element, pool.pool_data)


def _double_free(pool: mempool_t, element: Any) -> None:
    t = current_task()
    file, line, _func = caller_site(3)
    pool.machine.report("double_free", [
        "BUG: KASAN: double-free in mempool_free",
        f"Free of {_describe(element)} by task {t.comm}/{t.pid} at {file}:{line}",
        f"The element is already in the reserve of mempool {pool.id} (created at {pool.site})"],
        site=f"mempool{pool.id}:{file}:{line}")


def mempool_resize(pool: mempool_t, new_min_nr: int, gfp_mask: int) -> int:
    """Change the number of reserved elements (the 2.6 three-argument form).

    Shrinking hands the surplus back with ``free_fn`` at once. Growing first
    kmallocs a new elements array of ``4 * new_min_nr`` bytes with ``gfp_mask``:
    if that fails (always above 32768 elements) the pool is left as it was and
    -ENOMEM returned, as 2.6 does. Then it raises min_nr and tries to fill the
    reserve with ``alloc_fn(gfp_mask)``; if that returns NULL the reserve stays
    short and later mempool_free() calls refill it. A caller that ends while
    filling (OOM-killed, an exception from ``alloc_fn``) leaves the pool at its
    old min_nr, the elements it added handed back.
    Returns:
        0, or -ENOMEM when the new elements array cannot be allocated.
    ``new_min_nr <= 0`` is the kernel's ``BUG_ON(new_min_nr <= 0)``: reported as a kernel BUG,
    the calling task ends with an Oops and the pool is left as it was.
    Raises:
        KmemUsageError: ``new_min_nr`` is not an int.
    Context: may sleep if ``gfp_mask`` has __GFP_WAIT.
    """
    pool = _pool_of(pool, "mempool_resize")
    _check_min_nr("mempool_resize", "new_min_nr", new_min_nr, least=-(1 << 31))
    check_gfp(gfp_mask, "mempool_resize")
    if pool.destroyed:
        _use_after_destroy(pool, "mempool_resize")
        return -ENOMEM
    if new_min_nr <= 0:
        BUG(f"BUG_ON(new_min_nr <= 0): mempool_resize(mempool {pool.id}, {new_min_nr}): a pool cannot be "
            "resized to no reserve")
        return -ENOMEM
    if gfp_mask & GFP_WAIT:
        might_sleep()
    flags = spin_lock_irqsave(pool.lock)
    if new_min_nr <= pool.min_nr:
        while new_min_nr < pool.curr_nr:
            element = _remove_element(pool)
            spin_unlock_irqrestore(pool.lock, flags)
            pool.free(element, pool.pool_data)
            flags = spin_lock_irqsave(pool.lock)
        pool.min_nr = new_min_nr
        spin_unlock_irqrestore(pool.lock, flags)
        return 0
    spin_unlock_irqrestore(pool.lock, flags)
    # Grow the pool: a new elements array first (kmalloc with the caller's mask).
    new_buf = kmalloc(new_min_nr * SIZEOF_POINTER, gfp_mask)
    if new_buf is None:
        return -ENOMEM
    flags = spin_lock_irqsave(pool.lock)
    old_buf, pool.elements_buf = pool.elements_buf, new_buf
    old_min_nr = pool.min_nr
    pool.min_nr = new_min_nr
    spin_unlock_irqrestore(pool.lock, flags)
    kfree(old_buf)
    try:
        flags = spin_lock_irqsave(pool.lock)
        while pool.curr_nr < pool.min_nr:
            spin_unlock_irqrestore(pool.lock, flags)
            element = pool.alloc(gfp_mask, pool.pool_data)
            if element is None:
                return 0
            flags = spin_lock_irqsave(pool.lock)
            if pool.curr_nr < pool.min_nr:
                _add_element(pool, element)
            else:
                spin_unlock_irqrestore(pool.lock, flags)
                pool.free(element, pool.pool_data)  # Raced
                return 0
        spin_unlock_irqrestore(pool.lock, flags)
    except BaseException:  # the caller ends while filling: back to the old size, nothing kept
        _resize_rollback(pool, old_min_nr)
        raise
    return 0


def _resize_rollback(pool: mempool_t, old_min_nr: int) -> None:
    """A grow that did not finish: min_nr back, the surplus elements handed back."""
    surplus = []
    flags = spin_lock_irqsave(pool.lock)
    pool.min_nr = old_min_nr
    while pool.curr_nr > pool.min_nr:
        surplus.append(_remove_element(pool))
    spin_unlock_irqrestore(pool.lock, flags)
    for element in surplus:
        pool.free(element, pool.pool_data)


# ---------------------------------------------------------------------------------------------
# Stock element functions and the create helpers
# ---------------------------------------------------------------------------------------------
#
# The stock element functions call the kernel's allocators with their own arguments: a
# refusal of those names the stock function first, then the allocator and its argument
# ("mempool_kmalloc: kmalloc: flags must be ..."), so a caller of mempool_kmalloc sees
# both. The try costs nothing on the fast path (zero-cost exceptions).
def _refused_by(fn: str, call: str, e: KmemUsageError) -> None:
    """Name the stock element function ``fn`` in the refusal ``e`` of what it calls.

    Keeps the exception (its class and traceback); only the message gains the prefix.
    """
    e.args = (f"{fn}: {e} ({fn} calls {call})", *e.args[1:])


def _bad_pool_data(fn: str, pool_data: Any, what: str) -> KmemUsageError:
    return KmemUsageError(f"{fn}: pool_data(={pool_data!r}) must be {what}")


def mempool_alloc_pages(gfp_mask: int, pool_data: Any) -> Page | None:
    """alloc_fn of a page pool: ``alloc_pages(gfp_mask, order)``, pool_data = order."""
    if pool_data.__class__ is not int:
        raise _bad_pool_data("mempool_alloc_pages", pool_data, "the order (an int), as mempool_create_page_pool "
                                                               "passes it")
    try:
        return alloc_pages(gfp_mask, pool_data)
    except KmemUsageError as e:
        _refused_by("mempool_alloc_pages", "alloc_pages(gfp_mask, order=pool_data)", e)
        raise


def mempool_free_pages(element: Any, pool_data: Any) -> None:
    """free_fn of a page pool: ``__free_pages(page, order)``."""
    if pool_data.__class__ is not int:
        raise _bad_pool_data("mempool_free_pages", pool_data, "the order (an int), as mempool_create_page_pool "
                                                              "passes it")
    try:
        __free_pages(element, pool_data)
    except KmemUsageError as e:
        _refused_by("mempool_free_pages", "__free_pages(page=element, order=pool_data)", e)
        raise


def mempool_kmalloc(gfp_mask: int, pool_data: Any) -> int | None:
    """alloc_fn of a kmalloc pool: ``kmalloc(size, gfp_mask)``, pool_data = size."""
    if pool_data.__class__ is not int:
        raise _bad_pool_data("mempool_kmalloc", pool_data, "the size (an int), as mempool_create_kmalloc_pool "
                                                           "passes it")
    try:
        return kmalloc(pool_data, gfp_mask)
    except KmemUsageError as e:
        _refused_by("mempool_kmalloc", "kmalloc(size=pool_data, flags=gfp_mask)", e)
        raise


def mempool_kfree(element: Any, pool_data: Any) -> None:
    """free_fn of a kmalloc pool: ``kfree(element)``.

    ``pool_data`` (the size) is not used, as in the kernel's mempool_kfree: any value is
    taken, and the element is freed whatever size it was allocated with.
    """
    try:
        kfree(element)
    except KmemUsageError as e:
        _refused_by("mempool_kfree", "kfree(objp=element)", e)
        raise


def mempool_alloc_slab(gfp_mask: int, pool_data: Any) -> int | None:
    """alloc_fn of a slab pool: ``kmem_cache_alloc(cache, gfp_mask)``, pool_data = the cache."""
    try:
        return kmem_cache_alloc(pool_data, gfp_mask)
    except KmemUsageError as e:
        _refused_by("mempool_alloc_slab", "kmem_cache_alloc(cachep=pool_data, flags=gfp_mask)", e)
        raise


def mempool_free_slab(element: Any, pool_data: Any) -> None:
    """free_fn of a slab pool: ``kmem_cache_free(cache, element)``."""
    try:
        kmem_cache_free(pool_data, element)
    except KmemUsageError as e:
        _refused_by("mempool_free_slab", "kmem_cache_free(cachep=pool_data, objp=element)", e)
        raise


def mempool_create_page_pool(min_nr: int, order: int) -> mempool_t | None:
    """A pool of 2**order-page blocks (struct page elements)."""
    _check_min_nr("mempool_create_page_pool", "min_nr", min_nr)
    if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order < MAX_ORDER:
        raise KmemUsageError(f"mempool_create_page_pool: order(={order!r}) must be an int in [0, {MAX_ORDER})")
    return mempool_create(min_nr, mempool_alloc_pages, mempool_free_pages, order)


def mempool_create_kmalloc_pool(min_nr: int, size: int) -> mempool_t | None:
    """A pool of kmalloc(size) buffers (addresses)."""
    _check_min_nr("mempool_create_kmalloc_pool", "min_nr", min_nr)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise KmemUsageError(f"mempool_create_kmalloc_pool: size(={size!r}) must be an int >= 1")
    return mempool_create(min_nr, mempool_kmalloc, mempool_kfree, size)


def mempool_create_slab_pool(min_nr: int, kc: Any) -> mempool_t | None:
    """A pool of objects of slab cache ``kc`` (addresses)."""
    _check_min_nr("mempool_create_slab_pool", "min_nr", min_nr)
    if kc is None:
        raise KmemUsageError("mempool_create_slab_pool: kc must be a kmem_cache, got None")
    check_cache(kc, "mempool_create_slab_pool")  # a live cache of this machine, before any allocation
    return mempool_create(min_nr, mempool_alloc_slab, mempool_free_slab, kc)


__all__ = ["mempool_t", "mempool_create", "mempool_destroy", "mempool_alloc", "mempool_free", "mempool_resize",
           "mempool_alloc_pages", "mempool_free_pages", "mempool_kmalloc", "mempool_kfree",
           "mempool_alloc_slab", "mempool_free_slab", "mempool_create_page_pool",
           "mempool_create_kmalloc_pool", "mempool_create_slab_pool"]
