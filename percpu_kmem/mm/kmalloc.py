"""kmalloc/kfree: general-purpose memory from a set of size-class slab caches.

Models the 2.6.11 kmalloc of mm/slab.c and include/linux/kmalloc_sizes.h:
caches ``size-32`` .. ``size-131072`` with
32-byte cache lines (so size-96 and size-192 exist), each with a
``size-N(DMA)`` twin for ``GFP_DMA`` requests, all SLAB_HWCACHE_ALIGN. A request
goes to the first class that holds it; ``kmalloc(0)`` gets a size-32 object and
anything above 131072 bytes gets NULL (None) without a warning, as in 2.6.
``kfree`` finds the cache from the object's slab page, so it frees objects of
any cache; ``kfree(None)`` does nothing.

Both hold the slab layer's common case themselves (a magazine hit, written out
with every check, scheduling point and charge of ``kmem_cache_t.alloc``/``free``,
in the same order) and leave everything else to those; docs/slab.md, "Speed".
"""

from __future__ import annotations

from typing import Final

from ..runtime.errors import KmemUsageError
from ..runtime.preempt import HARDIRQ_MASK
from ..runtime.task import current_task
from .context import current_machine
from .gfp import GFP_BITS_MASK, GFP_DMA, GFP_WAIT, GFP_ZERO
from .layout import PAGE_OFFSET, PAGE_SHIFT
from .slab import KMALLOC_SMALL
from .slab_geometry import KMALLOC_MAX_SIZE, KMALLOC_SIZES

#: the bits no GFP mask has (every negative int has some of them too)
_NOT_GFP: Final = ~GFP_BITS_MASK
#: the flags whose requests kmalloc's fast path leaves to kmem_cache_t.alloc(): bits outside
#: the mask (a refusal), another cache (GFP_DMA), more work (__GFP_ZERO)
_NOT_FAST: Final = _NOT_GFP | GFP_DMA | GFP_ZERO
# sizes 1..256 by (size - 1) >> 5: 32, 64, 96, 128, 192, 192, 256, 256
_SMALL_INDEX: Final = (0, 1, 2, 3, 4, 4, 5, 5)


def kmalloc_index(size: int) -> int:
    """The index in KMALLOC_SIZES of the class serving ``size`` (size <= KMALLOC_MAX_SIZE)."""
    if size <= 256:
        return _SMALL_INDEX[(size - 1) >> 5] if size > 0 else 0
    return 5 + (size - 1).bit_length() - 8


def _check_args(size: object, flags: object, what: str) -> None:
    if type(size) is not int or size < 0:
        raise KmemUsageError(f"{what}: size must be an int >= 0, got {size!r}")
    if type(flags) is not int or flags & ~GFP_BITS_MASK or flags < 0:
        raise KmemUsageError(f"{what}: flags must be GFP_* bits (an int), got {flags!r}")


def kmalloc(size: int, flags: int) -> int | None:
    """Allocate ``size`` bytes; returns their kernel virtual address or None.

    ``flags``: GFP_KERNEL (may sleep; might_sleep() is called even on the fast
    path), GFP_ATOMIC (never sleeps: interrupt handlers), GFP_DMA (from the
    size-N(DMA) caches, memory below 16 MB). The memory is not zeroed unless
    ``flags`` has __GFP_ZERO (then the whole object is, as today's kernels do;
    with slab debugging only the ``size`` bytes asked for, the rest being red zone).
    """
    # (a negative int has bits outside GFP_BITS_MASK too: _NOT_GFP catches it)
    if size.__class__ is not int or flags.__class__ is not int or not 0 <= size <= KMALLOC_SMALL \
            or flags & _NOT_FAST:
        if size.__class__ is not int or flags.__class__ is not int or size < 0 or flags & _NOT_GFP:
            _check_args(size, flags, "kmalloc")
        if size > KMALLOC_MAX_SIZE:
            return None
        t = current_task()
        sa = t.machine.slab
        idx = kmalloc_index(size)
        return (sa.kmalloc_dma[idx] if flags & GFP_DMA else sa.kmalloc_normal[idx]).alloc(t, flags, size)
    t = current_task()
    m = t.machine
    sa = m.slab
    cachep = sa.kmalloc_small[size]
    c = t.cpu
    if not (c.preempt_count or c.irqs_off or t.is_idle) and m.lockdep is None:
        # kmem_cache_t.alloc() written out for its common case, as it does it: in a task
        # with interrupts on, preempt_count 0 and no lockdep, might_sleep()'s point
        # (GFP_WAIT); then, on a magazine hit of a cache without slab debugging or a
        # KASAN/kmemleak hook, with no event log or failslab on, the pop, the magazine_hit
        # charge, the interrupts pending since and local_irq_restore()'s point. (Setting
        # irqs_off around the pop would be seen by nothing.) Else alloc() goes on past the point.
        if flags & GFP_WAIT:
            t.budget -= 1  # might_sleep()'s scheduling point
            if t.budget <= 0:
                t.engine.decide(t, "might_sleep")
                c = t.cpu
        cc = cachep.cpu[c.id]
        fs = sa.failslab
        if cc.loaded and not cachep.debug and m.events is None and (fs is None or not fs.probability | t.fail_nth):
            objp = cc.loaded.pop()
            cc.allochit += 1
            cc.touched = 1
            c.clock += cachep.hit_cost
            if c.clock > t.vlimit and t.engine.deterministic:
                t.engine.reopen(t)
            if c.pending_irqs:
                m.irq.deliver_pending(c)
            t.budget -= 1  # local_irq_enable()'s scheduling point
            if t.budget <= 0:
                t.engine.decide(t, "local_irq_enable")
            return objp
        return cachep.alloc(t, flags, size, True)
    return cachep.alloc(t, flags, size)


def kzalloc(size: int, flags: int) -> int | None:
    """kmalloc() with __GFP_ZERO (2.6.14 and later; here for convenience)."""
    _check_args(size, flags, "kzalloc")
    return kmalloc(size, flags | GFP_ZERO)


def kcalloc(n: int, size: int, flags: int) -> int | None:
    """Zeroed memory for an array of ``n`` elements of ``size`` bytes; None on overflow."""
    if type(n) is not int or n < 0:
        raise KmemUsageError(f"kcalloc: n must be an int >= 0, got {n!r}")
    _check_args(size, flags, "kcalloc")
    if size and n > 0xFFFFFFFF // size:  # the 32-bit overflow check of 2.6 kcalloc
        return None
    return kzalloc(n * size, flags)


def kfree(objp: int | None) -> None:
    """Free memory from kmalloc() (or any slab object); None (NULL) does nothing.

    A pointer that is not in a slab page is reported (kfree_debugcheck's words)
    and nothing is freed. That includes alloc_percpu()'s pointer (an int that is no
    address: kfree where free_percpu was meant, which C compiles): "kfree_debugcheck:
    out of range ptr". Anything that is not an int (a bool neither) is misuse of the
    Python API: KmemUsageError. Context: any.
    """
    if not objp:
        return
    if objp.__class__ is not int:
        if not isinstance(objp, int) or isinstance(objp, bool):
            raise KmemUsageError(f"kfree: objp must be an address (int) from kmalloc, got {objp!r}")
        objp = int(objp)  # a per-CPU pointer (percpu.PercpuPtr): to C, a pointer like any other
    t = current_task()
    m = t.machine
    sa = m.slab
    slab = sa.slab_page.get((objp - PAGE_OFFSET) >> PAGE_SHIFT)  # page_cache()'s answer, and the slab
    if slab is None:
        cachep = sa.page_cache(objp, "kfree")  # reports why not
        if cachep is not None:
            cachep.free(t, objp, "kfree")
        return
    cachep = slab.cache
    # kmem_cache_t.free() written out for its common case, checked before anything is
    # touched: interrupts on, no slab debugging or KASAN/kmemleak hook, no KCSAN or event
    # log, room in the loaded magazine, and a pointer that passes the hardened free checks
    # (the start of an object of this slab, not the object this CPU freed last). Then it
    # does what free() does: the push, the magazine_hit charge, the interrupts pending
    # since, local_irq_restore()'s point. Anything else (a report among it): free().
    c = t.cpu
    cc = cachep.cpu[c.id]
    loaded = cc.loaded
    s_mem = slab.s_mem
    if s_mem <= objp < slab.end and not (objp - s_mem) % cachep.objsize and not c.irqs_off \
            and len(loaded) < cachep.batchcount and (not loaded or loaded[-1] != objp) \
            and not cachep.debug and t.hb is None and m.events is None:
        loaded.append(objp)
        cc.freehit += 1
        c.clock += cachep.hit_cost
        if c.clock > t.vlimit and t.engine.deterministic:
            t.engine.reopen(t)
        if c.pending_irqs and not c.preempt_count & HARDIRQ_MASK:
            m.irq.deliver_pending(c)
        t.budget -= 1  # local_irq_enable()'s scheduling point
        if t.budget <= 0:
            t.engine.decide(t, "local_irq_enable")
        return
    cachep.free(t, objp, "kfree")


def ksize(objp: int | None) -> int:
    """The usable size of the object at ``objp``; 0 for None.

    As 2.6.11: ``kmem_cache_size()`` of its cache, the padded object size (a
    kmalloc(20) gets 32), or without the debug words under slab debugging. The
    caller may use all of it: with slab debugging, a kmalloc object's red zone
    after the requested size is lifted (the model's reading of the ksize() contract).
    """
    if not objp:
        return 0
    if type(objp) is not int:
        raise KmemUsageError(f"ksize: objp must be an address (int), got {objp!r}")
    cachep = current_machine().slab.page_cache(objp, "ksize")
    if cachep is None:
        return 0
    if cachep.debug:
        cachep.sa.debug.kmalloc_req.pop(objp, None)
        if cachep.sa.m.kasan is not None:  # ksize() unpoisons the whole object
            cachep.sa.m.kasan.ksize(objp, cachep.usable)
    return cachep.usable


__all__ = ["kmalloc", "kzalloc", "kcalloc", "kfree", "ksize", "KMALLOC_SIZES", "KMALLOC_MAX_SIZE"]
