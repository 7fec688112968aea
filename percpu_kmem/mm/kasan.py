"""KASAN-style memory checking: every access through the accessors is checked against a
shadow of simulated memory, and bad ones are reported in KASAN's words.

Models generic KASAN (mm/kasan/ of today's kernels, 6.5 and later: the era of
"slab-use-after-free" and of the separate "double-free" and "invalid-free" titles).
``Machine(kasan=True)`` turns it on for the whole life of the machine (boot included,
so boot's own objects are known to be live).

Kept:

* the shadow's states and their codes (``KASAN_PAGE_FREE 0xff``, ``KASAN_SLAB_REDZONE
  0xfc``, ``KASAN_SLAB_FREE 0xfb``, ``KASAN_VMALLOC_INVALID 0xf8``; ``00`` for a granule of
  8 bytes that is all accessible, ``01``..``07`` for one whose first N bytes are): a slab
  object is accessible up to its *requested* size (kmalloc(100) from size-128: bytes
  100..127 are red zone), a freed object is ``KASAN_SLAB_FREE``, a free page
  ``KASAN_PAGE_FREE``, a vmalloc area up to its requested size, the rest of the area and
  its guard page ``KASAN_VMALLOC_INVALID``; slab management space and objects never
  allocated are red zone; a kmem_cache_alloc object is accessible up to the size its
  cache was created with (``s->object_size``), a freed object is ``KASAN_SLAB_FREE`` all
  of it, except in a SLAB_DESTROY_BY_RCU cache (not poisoned: it may be read after free);
* the check at the time of the access (``kasan_check_range``), the bug type from the
  shadow of the first bad byte, the report of ``mm/kasan/report.c``: the ``=`` rules,
  "BUG: KASAN: <type> in <func>", "Read of size N at addr A by task comm/pid", the stack,
  "Allocated by task N:" / "Freed by task N:" with the simulated stacks of both, "The
  buggy address belongs to the object at A / which belongs to the cache C of size N",
  "The buggy address is located N bytes to the right of / allocated N-byte region [A, B)"
  (a freed object's region is its object size: ``kasan_get_alloc_size`` finds no size in
  its shadow), an access whose size wraps the address space "out-of-bounds",
  the physical page, and "Memory state around the buggy address" (five rows of 16
  shadow bytes, the caret under the first bad granule), addresses as i386's ``%px``;
* double free and invalid free checked at kfree/kmem_cache_free (``check_slab_allocation``):
  "BUG: KASAN: double-free in kfree", "Free of addr A by task comm/pid"; a double free
  under KASAN is one KASAN report (it takes the place of the always-on hardening check);
* a slab element in a mempool's reserve is freed for KASAN (``kasan_poison_element``),
  allocated again when the pool hands it out.

Simplified (docs/kasan.md says why):

* the quarantine: KASAN parks freed objects in a global FIFO (1/32 of memory) before the
  allocator may hand them out again. The model keeps the allocator's bookkeeping exactly
  as without KASAN (so a run takes the same scheduling decisions with KASAN on or off)
  and makes each CPU's magazine a FIFO instead: a freed object goes to the cold end,
  behind every free object the CPU holds, and is handed out again last. Bounded (by
  the magazine), FIFO, but no longer than what the CPU holds: an object freed into an
  empty magazine can come straight back;
* no redzone is added to a cache's objects (the geometry is 2.6's): an overflow past a
  full-size object into a live neighbour is not seen; one off the end of a slab lands in
  the next page: if that page is free (or another slab's management space), the first
  optimal_redzone(object size) bytes of it count as the red zone of the live full-size
  object that ends the slab (slab-out-of-bounds, kmalloc_node_oob_right), as the kernel's
  layout has it; if the page is someone's, the access is not seen; a red-zone byte in a slot with
  no live object is described against the nearest live object, the one the access ran
  off, as the kernel's layout (a red zone after each object) would have it;
* a bad access is reported and not performed: a bad write is dropped, a bad read gets
  the bytes that are there (zeros where nothing maps), so one bug gives one report and
  the allocator's state stays sound; reports fold by (bug type, code line), as
  ``kasan_multi_shot`` with a rate limit (the kernel's default stops after the first);
* stacks are the simulated (Python) stacks, frames as ``func (file:line)``; the page
  description is one line instead of ``dump_page``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..runtime.errors import KernelBug
from ..runtime.report import Frame, relpath, skip_frames_of
from ..runtime.task import current_task
from .context import stack_codes
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, PG_compound, PG_reserved, PG_slab
from .slab_geometry import SLAB_DESTROY_BY_RCU

if TYPE_CHECKING:
    from ..machine import Machine
    from .slab import kmem_cache_t
    from .vmalloc import vm_struct

skip_frames_of(__file__)

#: kmem_cache_t.debug bit: the cache's allocations and frees go through KASAN's hooks
#: (the slab's debug path; never one of the SLAB_* flags a cache is created with)
SLAB_KASAN: Final = 1 << 30

KASAN_GRANULE_SIZE: Final = 8
KASAN_PAGE_FREE: Final = 0xFF
KASAN_PAGE_REDZONE: Final = 0xFE
KASAN_SLAB_REDZONE: Final = 0xFC
KASAN_SLAB_FREE: Final = 0xFB
KASAN_VMALLOC_INVALID: Final = 0xF8
#: the rule start_report()/end_report() print around every report
KASAN_RULE: Final = "=" * 66
META_BYTES_PER_ROW: Final = 16
META_MEM_BYTES_PER_ROW: Final = META_BYTES_PER_ROW * KASAN_GRANULE_SIZE
META_ROWS_AROUND_ADDR: Final = 2

_BUG_TYPES: Final = {KASAN_PAGE_FREE: "use-after-free", KASAN_PAGE_REDZONE: "slab-out-of-bounds",
                     KASAN_SLAB_REDZONE: "slab-out-of-bounds", KASAN_SLAB_FREE: "slab-use-after-free",
                     KASAN_VMALLOC_INVALID: "vmalloc-out-of-bounds"}
_STACK_LIMIT: Final = 16
#: frames a track keeps before filtering (the hooks' own frames are among them)
_RAW_LIMIT: Final = 24
_HERE: Final = os.path.dirname(os.path.abspath(__file__))
#: frames a report's "in <func>" and stacks leave out: the accessors, the atomics, this module
_SKIP_FILES: Final = frozenset(os.path.join(_HERE, f) for f in ("access.py", "atomic.py", "kasan.py",
                                                                       "slab_debug.py", "kmemleak.py"))
_RUNTIME_DIR: Final = os.path.join(os.path.dirname(_HERE), "runtime") + os.sep
_INF: Final = 1 << 40
#: i386: the address space an access may not run past (an access whose end wraps is
#: "out-of-bounds" before any shadow is looked at, as kasan_check_range/get_bug_type say)
_ADDR_LIMIT: Final = 1 << 32

T = TypeVar("T")


def optimal_redzone(object_size: int) -> int:
    """mm/kasan/generic.c's optimal_redzone(): the red zone KASAN gives an object of this size."""
    for limit, rz in ((64 - 16, 16), (128 - 32, 32), (512 - 64, 64), (4096 - 128, 128),
                      ((1 << 14) - 256, 256), ((1 << 15) - 512, 512), ((1 << 16) - 1024, 1024)):
        if object_size <= limit:
            return rz
    return 2048


def _granule_up(n: int) -> int:
    return (n + KASAN_GRANULE_SIZE - 1) & -KASAN_GRANULE_SIZE


class Track:
    """kasan_track: who allocated or freed an object, and the simulated stack then."""

    __slots__ = ("pid", "frames")

    def __init__(self, pid: int, frames: tuple[tuple[Any, int], ...]) -> None:
        self.pid = pid
        self.frames = frames


_skip_cache: dict[Any, bool] = {}


def _skipped(code: Any) -> bool:
    s = _skip_cache.get(code)
    if s is None:
        f = os.path.abspath(code.co_filename)
        s = _skip_cache[code] = f in _SKIP_FILES or f.startswith(_RUNTIME_DIR)
    return s


def raw_stack(depth: int = 2) -> tuple[tuple[Any, int], ...]:
    """The simulated stack as (code, line) pairs, innermost first: kept as it is (cheap) and
    filtered and formatted only if a report prints it (``format_stack``)."""
    return tuple(stack_codes(depth, _RAW_LIMIT))


def _kept(frames: tuple[tuple[Any, int], ...]) -> list[tuple[Any, int]]:
    """The frames a report shows: the model's checking machinery left out."""
    return [fr for fr in frames if not _skipped(fr[0])][:_STACK_LIMIT]


def format_stack(frames: tuple[tuple[Any, int], ...]) -> list[str]:
    return [str(Frame(code.co_name, relpath(code.co_filename), line)) for code, line in _kept(frames)]


def _frames(frames: tuple[tuple[Any, int], ...]) -> tuple[Frame, ...]:
    return tuple(Frame(code.co_name, relpath(code.co_filename), line) for code, line in _kept(frames))


class Kasan:
    """The shadow of one machine (``m.kasan``) and its reports."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        #: live slab objects: object address -> requested size
        self.live: dict[int, int] = {}
        #: freed slab objects: object address -> the size it had
        self.freed: dict[int, int] = {}
        self.alloc_track: dict[int, Track] = {}
        self.free_track: dict[int, Track] = {}
        #: vmalloc areas: start -> requested size
        self.vm_req: dict[int, int] = {}
        #: tasks inside kasan_disable_current(): task -> depth
        self.disabled: dict[Any, int] = {}
        self.nr_reports = 0

    # -- the allocators' hooks ------------------------------------------------------------
    def track(self) -> Track:
        t = current_task()
        return Track(t.pid if t else 0, raw_stack(3))

    def slab_alloc(self, c: kmem_cache_t, objp: int, size: int) -> None:
        """kasan_slab_alloc/kasan_kmalloc: unpoison the requested size, save the alloc track."""
        self.live[objp] = size if size >= 0 else c.object_size
        self.freed.pop(objp, None)
        self.free_track.pop(objp, None)
        self.alloc_track[objp] = self.track()

    def ksize(self, objp: int, usable: int) -> bool:
        """ksize(): kasan_check_byte() of the pointer first (ksize of a freed object is a
        slab-use-after-free "in ksize", a read of size 1: ksize_uaf), then the whole object
        is unpoisoned (its caller may use all of it). False after a report."""
        if objp in self.live:
            self.live[objp] = usable
            return True
        return not self.check(objp, 1, False)

    def slab_free_check(self, c: kmem_cache_t, objp: int, func: str) -> bool:
        """check_slab_allocation at kfree/kmem_cache_free: False after a report (refused)."""
        sa = c.sa
        slab = sa.slab_of.get(sa.mem.private[(objp - PAGE_OFFSET) >> PAGE_SHIFT])
        raw = objp - c.dbghead
        off = raw - slab.s_mem if slab is not None else -1
        if slab is None or off < 0 or off % c.objsize or off // c.objsize >= c.num:
            c.errors += 1
            self.report_free(objp, func, "invalid-free")
            return False
        if objp not in self.live:
            c.errors += 1
            self.report_free(objp, func, "double-free")
            return False
        return True

    def slab_free(self, c: kmem_cache_t, objp: int, raw: int) -> int:
        """kasan_slab_free: poison the object, save the free track, and quarantine it.

        Returns the slot the allocator should put on this CPU's magazine: the free object
        the CPU has held longest, whose place ``raw`` takes (the model's quarantine)."""
        self.freed[objp] = self.live.pop(objp)
        self.free_track[objp] = self.track()
        if c.flags & SLAB_DESTROY_BY_RCU:  # may be read after free: not poisoned, no quarantine
            return raw
        t = current_task()
        cc = c.cpu[t.cpu.id]
        mag = cc.loaded or cc.previous
        if mag:
            oldest = mag[0]
            mag[0] = raw
            return oldest
        return raw

    def mempool_poison(self, element: object) -> None:
        """kasan_mempool_poison_object: a slab element going into a mempool's reserve is
        freed for KASAN (no quarantine: the pool keeps it), with a free track. It is checked
        first, as check_slab_allocation checks a kfree: a pointer into a slab that is not an
        object's start is an invalid-free "in mempool_free", an object that is not allocated
        a double-free (an element the pool handed to its free function already)."""
        if element.__class__ is not int:
            return
        if element in self.live:
            self.freed[element] = self.live.pop(element)
            self.free_track[element] = self.track()
            return
        if not PAGE_OFFSET <= element < PAGE_OFFSET + (self.m.mem.max_low_pfn << PAGE_SHIFT):
            return
        slab = self.m.slab.slab_page.get((element - PAGE_OFFSET) >> PAGE_SHIFT)
        if slab is not None:  # (elements of a pool of the caller's own, from pages, are its business)
            self.slab_free_check(slab.cache, element, "mempool_free")

    def mempool_unpoison(self, element: object) -> None:
        """kasan_mempool_unpoison_object: the element leaves the reserve, allocated again."""
        if isinstance(element, int) and element in self.freed:
            self.live[element] = self.freed.pop(element)
            self.free_track.pop(element, None)
            self.alloc_track[element] = self.track()

    def forget(self, objp: int) -> None:
        """The object's slab goes back to the page allocator: its slot no longer exists."""
        self.freed.pop(objp, None)
        self.live.pop(objp, None)
        self.alloc_track.pop(objp, None)
        self.free_track.pop(objp, None)

    def vmalloc_alloc(self, addr: int, size: int) -> None:
        self.vm_req[addr] = size

    def vmalloc_free(self, addr: int) -> None:
        self.vm_req.pop(addr, None)

    def unchecked(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` inside kasan_disable_current()/kasan_enable_current() (constructors and
        destructors touch objects that are not allocated)."""
        t = current_task()
        d = self.disabled
        d[t] = d.get(t, 0) + 1
        try:
            return fn(*args)
        finally:
            n = d[t] - 1
            if n:
                d[t] = n
            else:
                del d[t]

    # -- the shadow -----------------------------------------------------------------------
    def region(self, a: int) -> tuple[int, int]:
        """(shadow code, end): the state of byte ``a`` and the first address where it may
        change. Code 0 is accessible."""
        m = self.m
        mem = m.mem
        low_end = PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT)
        if PAGE_OFFSET <= a < low_end:
            pfn = (a - PAGE_OFFSET) >> PAGE_SHIFT
            page_end = PAGE_OFFSET + ((pfn + 1) << PAGE_SHIFT)
            flags = mem.flags[pfn]
            if flags & PG_slab:
                sa = m.slab
                head = mem.private[pfn]
                slab = sa.slab_of.get(head)
                c = sa.by_id.get(mem.owner[pfn])
                if slab is None or c is None:
                    return KASAN_SLAB_REDZONE, page_end
                if a < slab.s_mem:
                    rz = self._redzone_owner(a)
                    return KASAN_SLAB_REDZONE, slab.s_mem if rz is None else min(slab.s_mem, rz[2])
                idx = (a - slab.s_mem) // c.objsize
                if idx >= c.num:
                    return KASAN_SLAB_REDZONE, PAGE_OFFSET + ((head + (1 << c.gfporder)) << PAGE_SHIFT)
                raw = slab.s_mem + idx * c.objsize
                objp = raw + c.dbghead
                if a < objp:
                    return KASAN_SLAB_REDZONE, objp
                n = self.live.get(objp)
                if n is not None:
                    return (0, objp + n) if a < objp + n else (KASAN_SLAB_REDZONE, raw + c.objsize)
                if objp in self.freed:  # the whole object, as poison_slab_object() poisons it
                    if c.flags & SLAB_DESTROY_BY_RCU:  # not poisoned: as the free left it
                        n = self.freed[objp]
                        return (0, objp + n) if a < objp + n else (KASAN_SLAB_REDZONE, raw + c.objsize)
                    end = min(objp + _granule_up(c.object_size), raw + c.objsize)
                    if a < end:
                        return KASAN_SLAB_FREE, end
                return KASAN_SLAB_REDZONE, raw + c.objsize
            count = mem.count
            if count[pfn] > 0 or flags & PG_reserved:
                return 0, page_end
            if flags & PG_compound and count[mem.private[pfn]] > 0:
                return 0, page_end
            rz = self._redzone_owner(a)
            if rz is not None:
                return KASAN_SLAB_REDZONE, rz[2]
            return KASAN_PAGE_FREE, page_end
        vm = getattr(m, "vmalloc", None)
        if vm is not None and vm.start <= a < vm.end:
            area = self._area(a)
            if area is None:
                return KASAN_VMALLOC_INVALID, (a | (PAGE_SIZE - 1)) + 1
            if area.flags & 1:  # VM_IOREMAP: device memory, not checked
                return 0, area.end
            req = self.vm_req.get(area.addr, area.size - PAGE_SIZE)
            if a < area.addr + req:
                return 0, area.addr + req
            return KASAN_VMALLOC_INVALID, area.end
        return 0, _INF

    def _redzone_owner(self, a: int) -> tuple[int, kmem_cache_t, int] | None:
        """(object, cache, end of its red zone) when ``a``, in a free page or a slab's
        management space, lies in the red zone the kernel's KASAN puts after the live
        full-size object that ends the slab in the page before (optimal_redzone() of its
        object size): the model's slabs have no room for it (2.6's geometry), so the
        object's next bytes are the next page's. Objects that do not fill their slot
        have their red zone inside it already; an object that is not live has none here."""
        off = a & (PAGE_SIZE - 1)
        if off >= 2048:  # (the largest red zone)
            return None
        mem = self.m.mem
        pfn = (a - PAGE_OFFSET) >> PAGE_SHIFT
        if pfn == 0 or not mem.flags[pfn - 1] & PG_slab:
            return None
        sa = self.m.slab
        slab = sa.slab_of.get(mem.private[pfn - 1])
        c = sa.by_id.get(mem.owner[pfn - 1])
        if slab is None or c is None or slab.s_mem + c.num * c.objsize != a - off:
            return None
        objp = slab.s_mem + (c.num - 1) * c.objsize + c.dbghead
        n = self.live.get(objp)
        rz = optimal_redzone(c.object_size)
        if n is None or objp + n != a - off or off >= rz:
            return None
        return objp, c, a - off + rz

    def _area(self, a: int) -> vm_struct | None:
        import bisect
        vm = self.m.vmalloc
        i = bisect.bisect_right(vm._addrs, a) - 1
        if i >= 0:
            area = vm.vmlist[i]
            if area.addr <= a < area.end:
                return area
        return None

    def first_bad(self, addr: int, size: int) -> tuple[int, int] | None:
        """(first bad address, its shadow code) in [addr, addr + size), or None."""
        a, end = addr, addr + size
        while a < end:
            code, stop = self.region(a)
            if code:
                return a, code
            a = stop
        return None

    def shadow_byte(self, ga: int) -> int:
        """The shadow byte of the granule at ``ga`` (8-aligned)."""
        code, stop = self.region(ga)
        if code:
            return code
        if stop >= ga + KASAN_GRANULE_SIZE:
            return 0
        return stop - ga

    # -- the check ------------------------------------------------------------------------
    def check(self, addr: int, size: int, write: bool) -> bool:
        """kasan_check_range: True when the access is bad (reported; not to be performed)."""
        if size <= 0:
            return False
        if self.disabled and current_task() in self.disabled:
            return False
        m = self.m
        mem = m.mem
        if PAGE_OFFSET <= addr < PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT):
            pfn = (addr - PAGE_OFFSET) >> PAGE_SHIFT
            flags = mem.flags[pfn]
            if flags & PG_slab:  # the common case: inside one live object
                sa = m.slab
                slab = sa.slab_of.get(mem.private[pfn])
                c = sa.by_id.get(mem.owner[pfn])
                if slab is not None and c is not None and addr >= slab.s_mem:
                    idx = (addr - slab.s_mem) // c.objsize
                    if idx < c.num:
                        objp = slab.s_mem + idx * c.objsize + c.dbghead
                        n = self.live.get(objp)
                        if n is not None and objp <= addr and addr + size <= objp + n:
                            return False
            elif addr + size <= PAGE_OFFSET + ((pfn + 1) << PAGE_SHIFT) \
                    and (mem.count[pfn] > 0 or flags & PG_reserved):
                return False  # inside one page that someone holds
        if addr + size > _ADDR_LIMIT:  # the size wraps the address space (memmove(p, q, -2))
            self.report_access(addr, size, write, addr, 0)
            return True
        bad = self.first_bad(addr, size)
        if bad is None:
            return False
        self.report_access(addr, size, write, bad[0], bad[1])
        return True

    def bad_read(self, addr: int, n: int) -> bytes:
        """What a read KASAN reported returns: the bytes there, zeros where nothing maps,
        page by page; nothing for a read whose size wraps the address space or is larger
        than all of memory (KASAN's memmove()/memcpy() return without copying when the
        check fails: so does the model's memcpy, which then writes nothing)."""
        mem = self.m.mem
        if addr + n > _ADDR_LIMIT or n > mem.nr_pages << PAGE_SHIFT:  # (nor one larger than all memory)
            return b""
        low_end = PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT)
        if PAGE_OFFSET <= addr and addr + n <= low_end:
            return mem.read(addr - PAGE_OFFSET, n)
        out = bytearray()
        vm = getattr(self.m, "vmalloc", None)
        ram = mem.nr_pages << PAGE_SHIFT
        a, end = addr, addr + n
        while a < end:
            step = min(end, (a | (PAGE_SIZE - 1)) + 1) - a
            if PAGE_OFFSET <= a < low_end:
                out += mem.read(a - PAGE_OFFSET, step)
            else:
                pfn = vm.ptes.get(a >> PAGE_SHIFT) if vm is not None else None
                if pfn is not None and (pfn << PAGE_SHIFT) < ram:
                    out += mem.read((pfn << PAGE_SHIFT) | (a & (PAGE_SIZE - 1)), step)
                else:
                    out += bytes(step)
            a += step
        return bytes(out)

    # -- reports --------------------------------------------------------------------------
    def _site(self) -> tuple[str, int, str, tuple[tuple[Any, int], ...]]:
        frames = raw_stack(3)
        kept = _kept(frames)
        if kept:
            code, line = kept[0]
            return relpath(code.co_filename), line, code.co_name, frames
        return "<unknown>", 0, "<unknown>", frames

    def report_access(self, addr: int, size: int, write: bool, bad: int, code: int) -> None:
        bug_type = _BUG_TYPES.get(code, "out-of-bounds")
        t = current_task()
        file, line, func, frames = self._site()
        head = [KASAN_RULE, f"BUG: KASAN: {bug_type} in {func}",
                f"{'Write' if write else 'Read'} of size {size} at addr {addr:08x} by task {t.comm}/{t.pid}"]
        self._emit(bug_type, head, addr, bad, frames, f"{bug_type}:{file}:{line}",
                   {"bug_type": bug_type, "address": addr, "size": size, "write": write})

    def report_free(self, ptr: int, func: str, bug_type: str) -> None:
        """kasan_report_invalid_free: a double free or an invalid free (refused)."""
        t = current_task()
        file, line, _, frames = self._site()
        head = [KASAN_RULE, f"BUG: KASAN: {bug_type} in {func}",
                f"Free of addr {ptr:08x} by task {t.comm}/{t.pid}"]
        self._emit(bug_type, head, ptr, ptr, frames, f"{bug_type}:{file}:{line}",
                   {"bug_type": bug_type, "address": ptr})

    def _emit(self, bug_type: str, head: list[str], addr: int, bad: int,
              frames: tuple[tuple[Any, int], ...], site: str, extra: dict[str, Any]) -> None:
        m = self.m
        t = current_task()
        lines = [*head, "", f"CPU: {t.cpu.id if t.cpu else -1} PID: {t.pid} Comm: {t.comm}", "Call Trace:",
                 *format_stack(frames), ""]
        lines += self._describe(addr, bug_type, extra)
        lines += self.memory_state(bad)
        lines.append(KASAN_RULE)
        self.nr_reports += 1
        kind = "kasan_" + bug_type.replace("-", "_")
        try:  # the stack is in the text where KASAN prints it; Report.stack gets it too
            rep = m.report(kind, lines, site=site, stack=False, extra=extra)
        except KernelBug as e:  # on_bug="raise"
            if not e.report.stack:
                e.report.stack = _frames(frames)
            raise
        if not rep.stack:
            rep.stack = _frames(frames)

    def _describe(self, addr: int, bug_type: str, extra: dict[str, Any]) -> list[str]:
        """print_address_description: the object and its tracks, the vmalloc area, the page."""
        m = self.m
        mem = m.mem
        out: list[str] = []
        if PAGE_OFFSET <= addr < PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT):
            pfn = (addr - PAGE_OFFSET) >> PAGE_SHIFT
            rz = self._redzone_owner(addr) if bug_type == "slab-out-of-bounds" else None
            if rz is not None:  # past the end of the object that ends the slab before
                out += self._describe_object(addr, rz[0], rz[1], bug_type, extra)
            elif mem.flags[pfn] & PG_slab:
                sa = m.slab
                slab = sa.slab_of.get(mem.private[pfn])
                c = sa.by_id.get(mem.owner[pfn])
                if slab is not None and c is not None:
                    objp = self._nearest_obj(addr, slab.s_mem, c, bug_type)
                    out += self._describe_object(addr, objp, c, bug_type, extra)
            # a page of a multi-page slab or compound block counts on its head (the folio's
            # refcount, as today's dump_page prints it)
            head = mem.private[pfn] if mem.flags[pfn] & (PG_slab | PG_compound) else pfn
            fl = mem.flags[pfn]
            free = not fl & (PG_slab | PG_reserved) and mem.count[pfn] <= 0 \
                and not (fl & PG_compound and mem.count[mem.private[pfn]] > 0)
            state = "free" if free else f"refcount:{mem.count[head]}"
            out += ["The buggy address belongs to the physical page:",
                    f"page: {state} pfn:{pfn:#x}{' slab' if mem.flags[pfn] & PG_slab else ''}",
                    "page dumped because: kasan: bad access detected", ""]
            return out
        vm = getattr(m, "vmalloc", None)
        if vm is not None and vm.start <= addr < vm.end:
            area = self._area(addr)
            if area is not None:
                file, line, func = area.caller
                out += ["The buggy address belongs to the virtual mapping at",
                        f" [{area.addr:08x}, {area.end:08x}) created by:", f" {func} ({file}:{line})", ""]
        return out

    def _nearest_obj(self, addr: int, s_mem: int, c: kmem_cache_t, bug_type: str) -> int:
        """The object a report describes: nearest_obj(), the slot ``addr`` is in, except for a
        red-zone byte in a slot that holds no live object (the model adds no red zone to
        each object, so the byte past an object is the next slot's): then the live object
        of the slab nearest to it, the one the access ran off (kmalloc_oob_right,
        kmem_cache_oob) or ran in front of (kmalloc_oob_left), as the kernel's layout, with
        a red zone after every object, would have it."""
        idx = min(max((addr - s_mem) // c.objsize, 0), c.num - 1)
        objp = s_mem + idx * c.objsize + c.dbghead
        if objp in self.live or bug_type != "slab-out-of-bounds":
            return objp
        best, dist = objp, _INF
        live = self.live
        for j in range(idx - 1, -1, -1):  # the live object before, and how far past its end
            o = s_mem + j * c.objsize + c.dbghead
            if o in live:
                best, dist = o, addr - (o + live[o])
                break
        for j in range(idx + 1, c.num):  # the live object after, and how far before its start
            o = s_mem + j * c.objsize + c.dbghead
            if o in live:
                if o - addr < dist:
                    best = o
                break
        return best

    def _describe_object(self, addr: int, objp: int, c: kmem_cache_t, bug_type: str,
                         extra: dict[str, Any]) -> list[str]:
        out: list[str] = []
        at = self.alloc_track.get(objp)
        if at is not None:
            out += [f"Allocated by task {at.pid}:", *format_stack(at.frames), ""]
        ft = self.free_track.get(objp)
        if ft is not None:
            out += [f"Freed by task {ft.pid}:", *format_stack(ft.frames), ""]
        # kasan_get_alloc_size(): the accessible bytes of a live object; nothing for a freed
        # one (its shadow keeps no size), which falls back to the cache's object size
        n = self.live.get(objp)
        if n is None:
            n = c.object_size
        if addr < objp:
            rel, nbytes = "to the left", objp - addr
        elif addr >= objp + n:
            rel, nbytes = "to the right", addr - (objp + n)
        else:
            rel, nbytes = "inside", addr - objp
        state = "allocated " if bug_type == "slab-out-of-bounds" else \
            "freed " if bug_type == "slab-use-after-free" else ""
        extra.update({"cache": c.name, "object": objp, "alloc_size": n})
        out += [f"The buggy address belongs to the object at {objp:08x}",
                f" which belongs to the cache {c.name} of size {c.object_size}",
                f"The buggy address is located {nbytes} bytes {rel} of",
                f" {state}{n}-byte region [{objp:08x}, {objp + n:08x})", ""]
        return out

    def memory_state(self, bad: int) -> list[str]:
        """print_memory_metadata: the shadow rows around the first bad address, with the caret."""
        out = ["Memory state around the buggy address:"]
        row = (bad & ~(META_MEM_BYTES_PER_ROW - 1)) - META_ROWS_AROUND_ADDR * META_MEM_BYTES_PER_ROW
        for i in range(-META_ROWS_AROUND_ADDR, META_ROWS_AROUND_ADDR + 1):
            row &= 0xFFFFFFFF
            cells = " ".join(f"{self.shadow_byte(row + g * KASAN_GRANULE_SIZE):02x}"
                             for g in range(META_BYTES_PER_ROW))
            out.append(f"{'>' if i == 0 else ' '}{row:08x}: {cells}")
            if row <= bad < row + META_MEM_BYTES_PER_ROW:
                width = 3 + 8 + (bad - row) // KASAN_GRANULE_SIZE * 3 + 1
                out.append(" " * (width - 1) + "^")
            row += META_MEM_BYTES_PER_ROW
        return out


def kasan_init(m: Machine) -> Kasan:
    """The shadow of machine ``m`` (Machine(kasan=True) stores it as ``m.kasan`` before boot)."""
    return Kasan(m)


__all__ = ["Kasan", "Track", "kasan_init", "raw_stack", "format_stack", "SLAB_KASAN", "KASAN_GRANULE_SIZE",
           "KASAN_PAGE_FREE", "KASAN_PAGE_REDZONE", "KASAN_SLAB_REDZONE", "KASAN_SLAB_FREE",
           "KASAN_VMALLOC_INVALID", "KASAN_RULE"]
