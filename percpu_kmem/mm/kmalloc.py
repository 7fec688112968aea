"""kmalloc/kfree: general-purpose memory from a set of size-class slab caches.

Models the 2.6.11 kmalloc of mm/slab.c and include/linux/kmalloc_sizes.h:
caches ``size-32`` .. ``size-131072`` with
32-byte cache lines (so size-96 and size-192 exist), each with a
``size-N(DMA)`` twin for ``GFP_DMA`` requests, all SLAB_HWCACHE_ALIGN. A request
goes to the first class that holds it; ``kmalloc(0)`` gets a size-32 object and
anything above 131072 bytes gets NULL (None) without a warning, as in 2.6.
``kfree`` finds the cache from the object's slab page, so it frees objects of
any cache; ``kfree(None)`` does nothing.

Around them, the calls of later kernels a driver writer reaches for, each built on
kmalloc/kfree and adding no scheduling point to them: the ``_node`` variants (the node
is checked, then a hint: this SLAB has no per-node lists), ``kmalloc_array`` and
``kcalloc``'s size_t overflow rule (32 bits), ``kmemdup``/``kmemdup_nul``,
``kstrdup``/``kstrndup`` (a C string in simulated memory, or a literal),
``krealloc``/``krealloc_array`` (``new_size`` 0 frees and answers NULL, the first
krealloc's rule: this kmalloc(0) is 2.6's, there is no ZERO_SIZE_PTR) and
``kfree_sensitive``/``kzfree``. docs/slab.md says what each keeps.

Both hold the slab layer's common case themselves (a magazine hit, written out
with every check, scheduling point and charge of ``kmem_cache_t.alloc``/``free``,
in the same order) and leave everything else to those; docs/slab.md, "Speed".
"""

from __future__ import annotations

from typing import Final

from ..runtime.errors import KmemUsageError
from ..runtime.preempt import HARDIRQ_MASK
from ..runtime.task import current_task
from .access import mem_write, memcpy, read_u8, write_u8
from .context import current_machine
from .gfp import GFP_BITS_MASK, GFP_DMA, GFP_WAIT, GFP_ZERO
from .layout import PAGE_OFFSET, PAGE_SHIFT
from .slab import KMALLOC_SMALL, SLAB_RED_ZONE, check_node, kmem_cache_t
from .slab_debug import KMALLOC_RED_ACTIVE
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


#: i386's address space: an address at or above it is no pointer
_ADDR_LIMIT: Final = 1 << 32
#: SIZE_MAX of i386: kmalloc_array()/kcalloc()'s check_mul_overflow() bound
SIZE_MAX: Final = 0xFFFFFFFF


def kmalloc_node(size: int, flags: int, node: int) -> int | None:
    """kmalloc() that prefers memory on ``node`` (NUMA_NO_NODE, -1: no preference).

    The node is checked (a node this machine does not have is a KmemUsageError) and is
    otherwise a hint the model does not follow: 2.6.11's SLAB has no per-node lists (the
    object comes from this CPU's magazine, as kmalloc()'s; a new slab's pages from the
    calling CPU's node). On one node, as most machines are, that is exactly the kernel.
    """
    _check_args(size, flags, "kmalloc_node")
    check_node(node, "kmalloc_node")
    return kmalloc(size, flags)


def kzalloc_node(size: int, flags: int, node: int) -> int | None:
    """kmalloc_node() with __GFP_ZERO."""
    _check_args(size, flags, "kzalloc_node")
    check_node(node, "kzalloc_node")
    return kmalloc(size, flags | GFP_ZERO)


def _check_n(n: object, what: str) -> None:
    if type(n) is not int or n < 0:
        raise KmemUsageError(f"{what}: n must be an int >= 0, got {n!r}")


def kmalloc_array(n: int, size: int, flags: int) -> int | None:
    """Memory for an array of ``n`` elements of ``size`` bytes; None (NULL) when ``n * size``
    overflows size_t (check_mul_overflow: 32 bits here, i386), without a warning."""
    _check_n(n, "kmalloc_array")
    _check_args(size, flags, "kmalloc_array")
    if n * size > SIZE_MAX:
        return None
    return kmalloc(n * size, flags)


def kcalloc_node(n: int, size: int, flags: int, node: int) -> int | None:
    """kcalloc() preferring ``node`` (see kmalloc_node: the node is checked, then a hint)."""
    _check_n(n, "kcalloc_node")
    _check_args(size, flags, "kcalloc_node")
    check_node(node, "kcalloc_node")
    if n * size > SIZE_MAX:
        return None
    return kmalloc(n * size, flags | GFP_ZERO)


def kmemdup(src: int | bytes, len: int, gfp: int) -> int | None:
    """kmalloc(len, gfp) and a copy of the ``len`` bytes at ``src`` into it; None if the
    allocation fails. The source is read through the checked accessors (KASAN sees an
    overrun of it, as the kernel's instrumented memcpy), after the allocation. ``src``
    may also be ``bytes``: a driver's constant data (a static table), which is not in
    simulated memory; ``len`` may not run past it (KmemUsageError)."""
    if isinstance(src, (bytes, bytearray)):
        _check_args(len, gfp, "kmemdup")
        if len > src.__len__():
            raise KmemUsageError(f"kmemdup: len {len} runs past the {src.__len__()} bytes of src")
        p = kmalloc(len, gfp)
        if p is not None:
            mem_write(p, bytes(src[:len]))
        return p
    if src.__class__ is not int or not 0 < src < _ADDR_LIMIT:
        raise KmemUsageError(f"kmemdup: src must be a kernel address (int) or bytes, got {src!r}")
    _check_args(len, gfp, "kmemdup")
    p = kmalloc(len, gfp)
    if p is not None:
        memcpy(p, src, len)
    return p


def kmemdup_nul(s: int | str | bytes, len: int, gfp: int) -> int | None:
    """kmalloc(len + 1) with the ``len`` bytes at ``s`` and a NUL after them (4.13):
    ``s`` need not be NUL-terminated. ``s`` is an address or a literal (str or bytes, at
    least ``len`` bytes)."""
    if isinstance(s, (str, bytes, bytearray)):
        b = _string_arg(s, "kmemdup_nul") if isinstance(s, str) else bytes(s)
        _check_args(len, gfp, "kmemdup_nul")
        assert isinstance(b, bytes)
        if len > b.__len__():
            raise KmemUsageError(f"kmemdup_nul: len {len} runs past the {b.__len__()} bytes of s")
        p = kmalloc(len + 1, gfp)
        if p is not None:
            mem_write(p, b[:len] + b"\0")
        return p
    if s.__class__ is not int or not 0 < s < _ADDR_LIMIT:
        raise KmemUsageError(f"kmemdup_nul: s must be a kernel address (int) or a literal, got {s!r}")
    _check_args(len, gfp, "kmemdup_nul")
    p = kmalloc(len + 1, gfp)
    if p is not None:
        memcpy(p, s, len)
        write_u8(p + len, 0)
    return p


def _string_arg(s: object, what: str) -> bytes | int:
    if isinstance(s, str):
        try:
            b = s.encode("latin-1")
        except UnicodeEncodeError:
            raise KmemUsageError(f"{what}: a string literal must be bytes or latin-1 text, got {s!r}") from None
        if b"\0" in b:
            raise KmemUsageError(f"{what}: a string literal may not hold a NUL, got {s!r}")
        return b
    if isinstance(s, (bytes, bytearray)):
        if b"\0" in s:
            raise KmemUsageError(f"{what}: a string literal may not hold a NUL, got {s!r}")
        return bytes(s)
    if s.__class__ is not int or not 0 < s < _ADDR_LIMIT:
        raise KmemUsageError(f"{what}: s must be a C string (the address of one, an int) or a literal "
                             f"(str or bytes), got {s!r}")
    return s


def strnlen(s: int, limit: int) -> int:
    """strnlen() of the string at ``s``, a byte at a time through the checked accessor (a
    KASAN report on it reads "in strnlen"). Under KASAN the scan stops at the first bad
    byte it reports (the kernel would go on reading until a NUL: one report either way)."""
    kasan = current_machine().kasan
    seen = kasan.nr_reports if kasan is not None else 0
    n = 0
    while n < limit:
        c = read_u8(s + n)
        if not c or (kasan is not None and kasan.nr_reports != seen):
            break
        n += 1
    return n


def _strdup(what: str, s: bytes | int, limit: int, gfp: int) -> int | None:
    if isinstance(s, bytes):
        data = s[:limit]
        p = kmalloc(len(data) + 1, gfp)
        if p is not None:
            mem_write(p, data + b"\0")
        return p
    n = strnlen(s, limit)
    p = kmalloc(n + 1, gfp)
    if p is not None:
        memcpy(p, s, n)
        write_u8(p + n, 0)
    return p


def kstrdup(s: int | str | bytes | None, gfp: int) -> int | None:
    """A kmalloc'ed copy of the C string ``s`` (its address in simulated memory, read a byte
    at a time up to its NUL through the checked accessors; or a literal, str or bytes, as a
    string constant of the driver's). ``kstrdup(NULL)`` is NULL, as the kernel's."""
    if s is None:
        return None
    b = _string_arg(s, "kstrdup")
    _check_args(0, gfp, "kstrdup")
    return _strdup("kstrdup", b, SIZE_MAX, gfp)


def kstrndup(s: int | str | bytes | None, max: int, gfp: int) -> int | None:
    """kstrdup() of at most ``max`` bytes of ``s`` (strnlen), always NUL-terminated."""
    if s is None:
        return None
    b = _string_arg(s, "kstrndup")
    if type(max) is not int or max < 0:
        raise KmemUsageError(f"kstrndup: max must be an int >= 0, got {max!r}")
    _check_args(0, gfp, "kstrndup")
    return _strdup("kstrndup", b, max, gfp)


def krealloc(p: int | None, new_size: int, flags: int) -> int | None:
    """Resize the kmalloc'ed object ``p`` to ``new_size`` bytes (mm/slab_common.c's krealloc).

    Kept: ``krealloc(NULL, n)`` is kmalloc(n); when the object's ksize() holds
    ``new_size`` the same pointer comes back (its KASAN-accessible size, and the red zone
    slab debugging keeps after a kmalloc request, move to ``new_size``: the shrunk tail
    is poisoned); else a new object of ``new_size`` gets the old one's ksize() bytes and
    the old one is kfree'd (an access to it afterwards is a use-after-free); on failure
    None and ``p`` untouched. KASAN checks ``p`` first (kasan_check_byte: krealloc of a
    freed object is a use-after-free "in krealloc", and NULL comes back). With
    __GFP_ZERO, the bytes of the object past ``new_size`` are zeroed (today's rule).
    ``new_size`` 0 frees ``p`` and returns NULL, as the first krealloc (2.6.22) did before
    ZERO_SIZE_PTR: the model's kmalloc(0) is 2.6's, a real size-32 object, so there is no
    ZERO_SIZE_PTR. A ``p`` that is no slab object is reported as kfree reports it.
    """
    if p is not None and (p.__class__ is not int or p < 0):
        if not isinstance(p, int) or isinstance(p, bool) or p < 0:
            raise KmemUsageError(f"krealloc: p must be an address (int) from kmalloc or None, got {p!r}")
        p = int(p)
    _check_args(new_size, flags, "krealloc")
    if not p:
        return kmalloc(new_size, flags)
    t = current_task()
    m = t.machine
    kasan = m.kasan
    if kasan is not None and p not in kasan.live and kasan.check(p, 1, False):
        return None  # kasan_check_byte(p) failed: reported
    if new_size == 0:
        kfree(p)
        return None
    sa = m.slab
    cachep = sa.page_cache(p, "krealloc")
    if cachep is None:
        return None  # reported
    ks = cachep.usable
    if new_size <= ks:
        _resize_in_place(cachep, p, new_size, flags)
        return p
    if new_size > KMALLOC_MAX_SIZE:
        return None
    ret = kmalloc(new_size, flags)
    if ret is not None:
        sa.mem.write(ret - PAGE_OFFSET, sa.mem.read(p - PAGE_OFFSET, ks))  # unchecked, as under kasan_disable_current()
        kfree(p)
    return ret


def krealloc_array(p: int | None, new_n: int, new_size: int, flags: int) -> int | None:
    """krealloc() to ``new_n`` elements of ``new_size`` bytes (5.10): None (NULL), ``p``
    untouched, when the product overflows size_t."""
    if p is not None and (p.__class__ is not int or p < 0):
        raise KmemUsageError(f"krealloc_array: p must be an address (int) from kmalloc or None, got {p!r}")
    _check_n(new_n, "krealloc_array")
    _check_args(new_size, flags, "krealloc_array")
    if new_n * new_size > SIZE_MAX:
        return None
    return krealloc(p, new_n * new_size, flags)


def _resize_in_place(cachep: kmem_cache_t, p: int, new_size: int, flags: int) -> None:
    """krealloc()'s object that holds ``new_size`` already: the debug layers learn the new size."""
    sa = cachep.sa
    old = -1
    if cachep.debug:
        dbg = sa.debug
        old = dbg.kmalloc_req.pop(p, -1)
        if cachep.flags & SLAB_RED_ZONE and new_size < cachep.reallen:
            if flags & GFP_ZERO and 0 <= old < new_size:
                sa.mem.write(p + old - PAGE_OFFSET, bytes(new_size - old))
            sa.mem.write(p + new_size - PAGE_OFFSET, bytes((KMALLOC_RED_ACTIVE,)) * (cachep.reallen - new_size))
            dbg.kmalloc_req[p] = new_size
            flags &= ~GFP_ZERO
        kasan = sa.m.kasan
        if kasan is not None and p in kasan.live:
            kasan.live[p] = new_size  # kasan_krealloc(): unpoison new_size, poison the rest
    if flags & GFP_ZERO and new_size < cachep.usable:
        sa.mem.write(p + new_size - PAGE_OFFSET, bytes(cachep.usable - new_size))


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
        # ksize() unpoisons the whole object; of a freed one it is 0 after the report
        if cachep.sa.m.kasan is not None and not cachep.sa.m.kasan.ksize(objp, cachep.usable):
            return 0
    return cachep.usable


def kfree_sensitive(p: int | None) -> None:
    """kfree() after zeroing the whole object (``ksize()`` bytes): for keys and passwords
    (5.10; kzfree before it). NULL does nothing. Under KASAN, of a freed object: the
    ksize() report ("use-after-free in ksize"), nothing zeroed, then kfree's double-free."""
    if p is not None and (p.__class__ is not int or p < 0):
        raise KmemUsageError(f"kfree_sensitive: p must be an address (int) from kmalloc or None, got {p!r}")
    if not p:
        return
    ks = ksize(p)
    if ks:
        current_machine().mem.write(p - PAGE_OFFSET, bytes(ks))  # memzero_explicit(), unchecked
    kfree(p)


def kzfree(p: int | None) -> None:
    """kfree_sensitive() under its name of 2.6.29 to 5.9."""
    if p is not None and (p.__class__ is not int or p < 0):
        raise KmemUsageError(f"kzfree: p must be an address (int) from kmalloc or None, got {p!r}")
    kfree_sensitive(p)


__all__ = ["kmalloc", "kzalloc", "kcalloc", "kfree", "ksize", "KMALLOC_SIZES", "KMALLOC_MAX_SIZE",
           "kmalloc_node", "kzalloc_node", "kcalloc_node", "kmalloc_array", "kmemdup", "kstrdup",
           "kstrndup", "krealloc", "SIZE_MAX", "krealloc_array", "kmemdup_nul", "kfree_sensitive", "kzfree"]
