"""kmemleak-style leak reports: objects still allocated that nothing in simulated memory
points to.

Models mm/kmemleak.c (the 5.x report format, with "(age N.NNNs)" and "backtrace:"). With
``Machine(kmemleak=True)`` every slab object (kmalloc, kmem_cache_alloc) and every
vmalloc area allocated after boot is tracked with who allocated it (comm, pid, jiffies,
the simulated stack). A scan, on demand (``m.kmemleak_scan()``) and at the end of a
scenario (``m.check()``, which explore() runs after every run), colours the tracked
objects as kmemleak does:

* the roots are simulated memory that is not a tracked object: every page someone holds
  that is not a slab page (per-CPU areas, bootmem areas, pages from alloc_pages), the
  slab objects not tracked (boot's own), vmalloc areas not tracked, plus what the model
  keeps for the kernel in Python (the kmem_cache descriptors on the cache chain, each
  mempool's struct, elements array and reserve) and the objects marked
  ``kmemleak_not_leak()`` ("this is stored in a global": never reported, always scanned);
* a slab object is tracked at its cache's object size (``s->object_size``: kmalloc(100)
  is a 128-byte object of size-128), a vmalloc area at the size asked for;
* every aligned 32-bit word of a root is a possible pointer; a word that points anywhere
  inside a tracked object marks it referenced, and its own words are scanned in turn;
* the tracked objects left unmarked are the leaks: each reported once, in kmemleak's
  words ("unreferenced object 0x... (size N):", "  comm ..., pid N, jiffies N (age
  N.NNNs)", "  hex dump (first 32 bytes):", "  backtrace:"; comm "hardirq" or "softirq",
  pid 0, for what an interrupt allocated), listed by
  ``m.proc("kmemleak")`` (the debugfs file) and, with ``kmemleak="fail"``, recorded as a
  kernel report of kind "kmemleak" (explore() then fails on it unless expected).

Simplified (docs/kmemleak.md): a Python variable is not simulated memory, so a pointer a
test keeps only in Python is unreferenced (``kmemleak_not_leak`` it, or store it in
simulated memory); no minimum age (the scan at the end of a scenario sees no pointer in
flight); no scan after each ``m.run`` on its own, because a scenario's runs hand
pointers to each other through Python (a setup run allocates, the next frees); pages
from alloc_pages are scanned but not tracked (as the kernel, which tracks only slab,
vmalloc, per-CPU and memblock); ``min_count`` is always 1; backtrace frames are
the simulated stack, ``func (file:line)``. Scanning takes no scheduling point and charges no
time: a run takes the same decisions with kmemleak on or off.
"""

from __future__ import annotations

import bisect
import sys
from array import array
from typing import TYPE_CHECKING, Any, Final

from ..runtime.errors import KmemUsageError
from ..runtime.preempt import HARDIRQ_MASK, NSEC_PER_JIFFY, SOFTIRQ_OFFSET
from ..runtime.report import skip_frames_of
from ..runtime.task import current_task
from .kasan import format_stack, raw_stack
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, PG_compound, PG_reserved, PG_slab

if TYPE_CHECKING:
    from ..machine import Machine

skip_frames_of(__file__)

#: kmem_cache_t.debug bit: the cache's allocations and frees are tracked (the slab's debug path)
SLAB_KMEMLEAK: Final = 1 << 29
#: what Machine(kmemleak=...) takes
KMEMLEAK_MODES: Final = (False, True, "fail")
#: include/linux/jiffies.h: jiffies start 5 minutes before they wrap (32-bit)
INITIAL_JIFFIES: Final = (-300 * 1000) & 0xFFFFFFFF
HEX_ROW_SIZE: Final = 16
HEX_MAX_LINES: Final = 2


class LeakObject:
    """struct kmemleak_object: one tracked block."""

    __slots__ = ("ptr", "size", "kind", "pid", "comm", "ns", "frames", "not_leak", "ignore", "reported")

    def __init__(self, ptr: int, size: int, kind: str, pid: int, comm: str, ns: int,
                 frames: tuple[tuple[Any, int], ...]) -> None:
        self.ptr = ptr
        self.size = size
        self.kind = kind
        self.pid = pid
        self.comm = comm
        self.ns = ns
        self.frames = frames
        self.not_leak = False
        self.ignore = False
        self.reported = False


def _hex_line(chunk: bytes) -> str:
    """print_hex_dump(..., DUMP_PREFIX_NONE, 16, 1, ..., true): hex, then the ASCII column."""
    hexpart = " ".join(f"{b:02x}" for b in chunk)
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
    return f"    {hexpart:<{HEX_ROW_SIZE * 3 - 1}}  {text}"


class Kmemleak:
    """The tracked objects of one machine (``m.kmemleak``) and its scans."""

    def __init__(self, m: Machine, fail: bool) -> None:
        self.m = m
        self.fail = fail
        self.objects: dict[int, LeakObject] = {}
        #: the leaks the last scan found, still allocated: ptr -> report text
        self.leaks: dict[int, str] = {}
        #: virtual ns of the machine's earlier runs (each run's clock starts at 0)
        self.clock_base = 0
        self.scans = 0

    # -- hooks ----------------------------------------------------------------------------
    def _clock(self) -> int:
        """The run's virtual time: the furthest CPU clock (each run's clocks start at 0)."""
        m = self.m
        return max(m.now, *(c.clock for c in m.cpus))

    def _now(self) -> int:
        t = current_task()
        if t and t.cpu is not None:
            return self.clock_base + t.cpu.clock
        return self.clock_base + self._clock()

    def alloc(self, ptr: int, size: int, kind: str) -> None:
        """kmemleak_alloc / kmemleak_vmalloc: track a block allocated after boot."""
        t = current_task()
        pid, comm = (t.pid, t.comm) if t else (0, "swapper")
        count = t.cpu.preempt_count if t and t.cpu is not None else 0
        if count & HARDIRQ_MASK:  # create_object(): no task owns what an interrupt allocates
            pid, comm = 0, "hardirq"
        elif count & SOFTIRQ_OFFSET:
            pid, comm = 0, "softirq"
        self.objects[ptr] = LeakObject(ptr, size, kind, pid, comm, self._now(), raw_stack(3))

    def free(self, ptr: int) -> None:
        """kmemleak_free: the block is gone (freeing an untracked block is fine)."""
        if self.objects.pop(ptr, None) is not None:
            self.leaks.pop(ptr, None)

    def _find(self, ptr: int, color: str) -> LeakObject | None:
        """find_and_get_object() for paint_ptr(): kmemleak_warn()'s words for a pointer no
        tracked block starts at ("as Grey" for kmemleak_not_leak, "as Black" for ignore)."""
        o = self.objects.get(ptr)
        if o is None:
            self.m.printk(f"kmemleak: Trying to color unknown object at 0x{ptr:08x} as {color}", "WARNING")
        return o

    def not_leak(self, ptr: int) -> None:
        """kmemleak_not_leak: never report this block, and scan it always (a global holds it)."""
        o = self._find(ptr, "Grey")
        if o is not None:
            o.not_leak = True
            self.leaks.pop(ptr, None)

    def ignore(self, ptr: int) -> None:
        """kmemleak_ignore: never report this block and never scan it."""
        o = self._find(ptr, "Black")
        if o is not None:
            o.ignore = True
            self.leaks.pop(ptr, None)

    # -- the scan -------------------------------------------------------------------------
    def _read(self, addr: int, n: int) -> bytes:
        """The bytes of [addr, addr + n) of simulated memory, straight from physical memory
        (no accessor, no scheduling point); vmalloc addresses through the page tables."""
        mem = self.m.mem
        if PAGE_OFFSET <= addr and addr + n <= PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT):
            return mem.read(addr - PAGE_OFFSET, n)
        ptes = self.m.vmalloc.ptes
        ram = mem.nr_pages << PAGE_SHIFT
        out = bytearray()
        a, end = addr, addr + n
        while a < end:
            step = min(end, (a | (PAGE_SIZE - 1)) + 1) - a
            pfn = ptes.get(a >> PAGE_SHIFT)
            if pfn is None or (pfn << PAGE_SHIFT) >= ram:
                out += bytes(step)
            else:
                out += mem.read((pfn << PAGE_SHIFT) | (a & (PAGE_SIZE - 1)), step)
            a += step
        return bytes(out)

    def _live_slab_objects(self) -> list[tuple[int, int]]:
        """(object, size) of every slab object handed out and not freed."""
        out: list[tuple[int, int]] = []
        for c in self.m.slab.caches:
            cached = {o for cc in c.cpu for o in (*cc.loaded, *cc.previous)}
            cached.update(o for mag in c.depot_full for o in mag)
            for slab in (*c.slabs_full.values(), *c.slabs_partial.values()):
                free = set(slab.free)
                for i in range(c.num):
                    raw = slab.s_mem + i * c.objsize
                    if i not in free and raw not in cached:
                        out.append((raw + c.dbghead, c.reallen))
        return out

    def _held(self, pfn: int) -> bool:
        mem = self.m.mem
        if mem.count[pfn] > 0 or mem.flags[pfn] & PG_reserved:
            return True
        return bool(mem.flags[pfn] & PG_compound) and mem.count[mem.private[pfn]] > 0

    def scan(self) -> list[str]:
        """kmemleak_scan(): colour the tracked objects; report the new leaks (their texts)."""
        m = self.m
        objs = self.objects
        self.scans += 1
        now = self.clock_base + self._clock()
        found: list[LeakObject] = []
        if objs:
            found = self._unreferenced()
        old, self.leaks = self.leaks, {}
        new: list[str] = []
        for o in found:  # object_list order: the order the blocks were allocated in
            if o.reported:
                self.leaks[o.ptr] = old[o.ptr] if o.ptr in old else self._text(o, now)
                continue
            text = self._text(o, now)  # as the kernel prints it when it first reports it
            self.leaks[o.ptr] = text
            o.reported = True
            new.append(text)
            if self.fail:
                m.report("kmemleak", text.splitlines(), site=f"kmemleak:{o.ptr:#x}:{o.ns}", stack=False,
                         extra={"object": o.ptr, "size": o.size, "pid": o.pid, "comm": o.comm})
        if new:
            m.printk(f"kmemleak: {len(new)} new suspected memory leaks (see /sys/kernel/debug/kmemleak)")
        return new

    def run_starts(self) -> None:
        """A run begins with its clock at 0: the earlier runs' time goes into the base."""
        self.clock_base += self._clock()

    def _unreferenced(self) -> list[LeakObject]:
        m = self.m
        mem = m.mem
        objs = self.objects
        starts = sorted(objs)
        ends = {p: p + max(o.size, 1) for p, o in objs.items()}
        lo, hi = starts[0], max(ends.values())
        marked: set[int] = set()
        work: list[LeakObject] = []

        def ref(v: int) -> None:
            i = bisect.bisect_right(starts, v) - 1
            if i >= 0:
                p = starts[i]
                if v < ends[p] and p not in marked:
                    marked.add(p)
                    o = objs[p]
                    if not o.ignore:
                        work.append(o)

        def scan_bytes(data: bytes) -> None:
            n = len(data) & ~3
            if not n:
                return
            words = array("I")
            words.frombytes(data[:n])
            if sys.byteorder != "little":
                words.byteswap()
            for v in {w for w in words if lo <= w < hi}:
                ref(v)

        # roots: pages someone holds that are not slab pages, nor a tracked vmalloc area's
        tracked_vm: set[int] = set()
        vm = m.vmalloc
        for area in vm.vmlist:
            if area.addr in objs:
                tracked_vm.update(area.pages)
        buffers = mem._buffers  # the materialized pages: the others hold one fill byte, no pointer
        for pfn in sorted(buffers):
            if mem.flags[pfn] & PG_slab or pfn in tracked_vm or not self._held(pfn):
                continue
            scan_bytes(bytes(buffers[pfn]))
        # roots: slab objects and vmalloc areas not tracked (the kernel's own, from boot)
        for objp, size in self._live_slab_objects():
            if objp not in objs:
                scan_bytes(mem.read(objp - PAGE_OFFSET, size))
        for area in vm.vmlist:
            if area.flags & 2 and area.addr not in objs and area.complete:  # VM_ALLOC
                scan_bytes(self._read(area.addr, area.size - PAGE_SIZE))
        # roots: what the model keeps for the kernel in Python
        for c in m.slab.caches:
            if c.desc is not None:
                ref(c.desc)
        for pool in list(m.mempools.pools.values()):
            for v in (pool.struct, pool.elements_buf, *pool.elements):
                if isinstance(v, int):
                    ref(v)
        for o in objs.values():
            if o.not_leak and o.ptr not in marked:
                marked.add(o.ptr)
                work.append(o)
        while work:
            o = work.pop()
            scan_bytes(self._read(o.ptr, o.size))
        return [o for p, o in objs.items() if p not in marked and not o.ignore and not o.not_leak]

    def _text(self, o: LeakObject, now: int) -> str:
        age = max(0, now - o.ns) // 1_000_000
        jiffies = (INITIAL_JIFFIES + o.ns // NSEC_PER_JIFFY) & 0xFFFFFFFF
        n = min(o.size, HEX_ROW_SIZE * HEX_MAX_LINES)
        data = self._read(o.ptr, n)
        lines = [f"unreferenced object 0x{o.ptr:08x} (size {o.size}):",
                 f"  comm \"{o.comm}\", pid {o.pid}, jiffies {jiffies} (age {age // 1000}.{age % 1000:03d}s)",
                 f"  hex dump (first {n} bytes):"]
        lines += [_hex_line(data[i:i + HEX_ROW_SIZE]) for i in range(0, n, HEX_ROW_SIZE)]
        lines.append("  backtrace:")
        lines += ["   " + f for f in format_stack(o.frames)]
        return "\n".join(lines)

    def check(self) -> None:
        """m.check()'s walk: the end of a scenario is when kmemleak scans on its own."""
        self.scan()

    def proc(self) -> str:
        """/sys/kernel/debug/kmemleak: every leak the last scan found that is still allocated,
        in the order they were allocated (kmemleak's object_list)."""
        return "".join(t + "\n" for t in self.leaks.values())


def kmemleak_init(m: Machine, fail: bool = False) -> Kmemleak:
    """kmemleak_late_init: from the end of boot on, the slab's and vmalloc's allocations are
    tracked; boot's own objects never are. Stored as ``m.kmemleak``."""
    k = Kmemleak(m, fail)
    sa = m.slab
    sa.debug_hook_bits |= SLAB_KMEMLEAK
    for c in sa.caches:
        c.debug |= SLAB_KMEMLEAK
    m.register_proc("kmemleak", k.proc)
    m.register_checker("kmemleak", k.check)
    return k


def _ptr_arg(fn: str, ptr: object) -> int | None:
    if ptr is None:
        return None
    if ptr.__class__ is not int or not -(1 << 32) <= ptr < 1 << 32:
        raise KmemUsageError(f"{fn}: ptr(={ptr!r}) must be an address (an i386 pointer: a 32-bit int) or None")
    return ptr & 0xFFFFFFFF


def kmemleak_not_leak(ptr: int | None) -> None:
    """Mark the block at ``ptr`` as no leak: it is referenced from somewhere kmemleak cannot
    see (a global variable, here: a Python one). Never reported, always scanned.
    Without kmemleak on the machine, a no-op (the kernel's stub)."""
    p = _ptr_arg("kmemleak_not_leak", ptr)
    k = current_task().machine.kmemleak
    if k is not None and p is not None:
        k.not_leak(p)


def kmemleak_ignore(ptr: int | None) -> None:
    """Never report the block at ``ptr`` and never scan it (it holds no pointer worth
    following). Without kmemleak on the machine, a no-op."""
    p = _ptr_arg("kmemleak_ignore", ptr)
    k = current_task().machine.kmemleak
    if k is not None and p is not None:
        k.ignore(p)


__all__ = ["Kmemleak", "LeakObject", "kmemleak_init", "kmemleak_not_leak", "kmemleak_ignore", "SLAB_KMEMLEAK",
           "KMEMLEAK_MODES"]
