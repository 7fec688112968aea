"""Data-race detection in the manner of KCSAN (CONFIG_KCSAN, kernel/kcsan/).

``Machine(kcsan=True)`` gives the machine a :class:`Kcsan`: every access through the
memory accessors (mm/access.py: mem_read/mem_write, read_u*/write_u*, memset, memcpy,
and so per-CPU variables, whose ``per_cpu(...).value``, ``get_cpu_var()`` and
``__this_cpu_*`` go through them; mm/atomic.py; mm/mmio.py) is checked against a
shadow of simulated memory, one cell per byte, holding the last write and the reads
since it, each stamped with its actor and that actor's clock (runtime/hb.py keeps the
happens-before order: locks, wake-ups and wait conditions, kthread_run,
raise_irq/raise_softirq, IPI calls, fully ordered atomics, the sections of one CPU
that run with preemption, bottom halves or interrupts off; docs/kcsan.md).

Two accesses to the same byte race when they come from different actors (tasks, or
a task and an interrupt handler, even on the same CPU), at least one writes, at least
one is plain, and neither happens before the other. The race is reported in KCSAN's
words::

    ==================================================================
    BUG: KCSAN: data-race in reader / writer

    write to 0xc1a2b010 of 4 bytes by task 2 on cpu 1:
     writer (tests/x.py:12)

    read to 0xc1a2b010 of 4 bytes by interrupt on cpu 0:
     reader (tests/x.py:20)

    value changed: 0x00000000 -> 0x00000001

    Reported by Kernel Concurrency Sanitizer on:
    CPU: 0 PID: 3 Comm: worker
    ==================================================================

Kept from the kernel (kernel/kcsan/report.c): the title with the two functions sorted
as strings (``sym_strcmp``), the earlier ("other") access first and the one that
found the race second, the access types "read", "write", "read-write" and their
"(marked)" forms, "by task N" or "by interrupt" (``in_task()``), the value line
(``value changed: 0x%0*llx -> 0x%0*llx``, width 2 * size, only for accesses of up to
8 bytes) and CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY's filter (the default): a race in
which no watcher could have seen a value change is not reported (a read against a write
that stored what was there; two writes when neither changed the value), except when a
plain access of the pair is wider than 8 bytes or is in one of RCU's functions
(``skip_report()``: "rcu_", "_rcu", "_srcu"). CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC is
taken as n (CONFIG_KCSAN_STRICT's choice): plain aligned word writes race like any plain
access. Marked accesses
(atomic_*, cmpxchg, xchg, READ_ONCE/WRITE_ONCE, smp_load_acquire/smp_store_release, the
atomic bit operations of mm/bitops.py, this_cpu_* and the MMIO accessors,
which on x86 are single instructions or volatile asm KCSAN does not instrument) are
never reported against each other; a plain access racing with a marked one is.

Stronger than KCSAN: races are found with vector clocks (FastTrack/DJIT+), not soft
watchpoints, so a race is reported on every run in which both accesses happen, whether
or not they overlapped in time; KCSAN's sampling (``kcsan.skip_watch``, the
``udelay_task``/``udelay_interrupt`` stalls) is not modelled, and neither is "race at
unknown origin" (every access is seen). Fully ordered atomics (the value-returning
ones: ``_return``, ``_and_test``, ``add_negative``, ``xchg``, a ``cmpxchg`` that
stores, the ``test_and_*_bit`` operations) order what comes before and after them on
that address, as acquire plus release (the barriers and smp_store_release/
smp_load_acquire add their edges from mm/atomic.py); ``atomic_read``/``atomic_set``/``atomic_add``/``_inc``/``_dec``,
READ_ONCE/WRITE_ONCE and this_cpu_* are relaxed (they order nothing).

Simplified: each pair of sites (file:line of the two accesses) is reported once per
run; the state is dropped between runs (a run happens after the whole of the last
one). Freed memory starts afresh: a page given back to the page allocator and a slab
object given back to its cache lose their shadow (lowmem only: highmem and vmalloc
mappings rely on the allocators' own locks for the order). Stacks are the model's
simulated stacks (``function (file:line)``, no ``+0x../0x..`` offsets); the footer
has the machine's usual "CPU: PID: Comm:" line and no "Hardware name:". The earlier
access is printed first (KCSAN prints the one that hit the watchpoint first, so a
reported read/write race shows its write first there). Accesses
outside the direct map (vmalloc, ioremap) print no value line. KCSAN's
``ASSERT_EXCLUSIVE_*``, ``data_race()`` and weak-memory modelling are not offered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from ..runtime.hb import A_TASK, HappensBefore, RawStack, frames_of, join, raw_stack
from ..runtime.report import Frame
from ..runtime.task import current_task
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from ..machine import Machine
    from ..runtime.task import Task

KCSAN_RULE: Final = "=" * 66
#: how many frames of a simulated stack an access keeps
STACK_DEPTH: Final = 16

# access types (include/linux/kcsan-checks.h)
KCSAN_ACCESS_WRITE: Final = 1 << 0
KCSAN_ACCESS_COMPOUND: Final = 1 << 1
KCSAN_ACCESS_ATOMIC: Final = 1 << 2

#: marked accessors: fn -> (compound read-modify-write, fully ordered)
_RELAXED_RMW: Final = ("atomic_add", "atomic_sub", "atomic_inc", "atomic_dec", "this_cpu_add", "this_cpu_sub",
                       "this_cpu_inc", "this_cpu_dec", "set_bit", "clear_bit", "change_bit", "clear_bit_unlock")
_ORDERED_RMW: Final = ("atomic_add_return", "atomic_sub_return", "atomic_inc_return", "atomic_dec_return",
                       "atomic_sub_and_test", "atomic_dec_and_test", "atomic_inc_and_test",
                       "atomic_add_negative", "atomic_xchg", "atomic_cmpxchg", "cmpxchg", "xchg",
                       "test_and_set_bit", "test_and_clear_bit", "test_and_change_bit", "test_and_set_bit_lock")
_MARKED_ONE: Final = ("atomic_read", "atomic_set", "READ_ONCE", "WRITE_ONCE", "this_cpu_read", "this_cpu_write",
                      "smp_load_acquire", "smp_store_release", "test_bit",
                      "readb", "readw", "readl", "__raw_readb", "__raw_readw", "__raw_readl",
                      "writeb", "writew", "writel", "__raw_writeb", "__raw_writew", "__raw_writel",
                      "memcpy_fromio", "memcpy_toio", "memset_io")
MARKED: Final[dict[str, tuple[bool, bool]]] = {
    **{fn: (False, False) for fn in _MARKED_ONE},
    **{fn: (True, False) for fn in _RELAXED_RMW},
    **{fn: (True, True) for fn in _ORDERED_RMW},
}

#: frames of these files are the model's accessors, not the code that made the access
_SKIP: Final = frozenset(os.path.join(os.path.dirname(os.path.abspath(__file__)), f)
                         for f in ("kcsan.py", "atomic.py", "mmio.py", "bitops.py"))


class Access:
    """One access as the shadow keeps it: who (actor id and its clock), what, where from."""

    __slots__ = ("aid", "clk", "addr", "size", "type", "pid", "cpu", "stack", "old", "new")

    def __init__(self, aid: int, clk: int, addr: int, size: int, type: int, pid: int, cpu: int,
                 stack: RawStack, old: int | None, new: int | None) -> None:
        self.aid = aid
        self.clk = clk
        self.addr = addr
        self.size = size
        self.type = type
        self.pid = pid  # -1: interrupt context
        self.cpu = cpu
        self.stack = stack
        self.old = old
        self.new = new

    @property
    def marked(self) -> bool:
        return bool(self.type & KCSAN_ACCESS_ATOMIC)

    @property
    def write(self) -> bool:
        return bool(self.type & KCSAN_ACCESS_WRITE)

    def frames(self) -> tuple[Frame, ...]:
        return frames_of(self.stack)

    def site(self) -> str:
        if not self.stack:
            return "<unknown>"
        code, line = self.stack[0]
        return f"{code.co_filename}:{line}"

    def function(self) -> str:
        return self.stack[0][0].co_name if self.stack else "<unknown>"


def access_type(type: int) -> str:
    """get_access_type(): the words of report.c for an access type."""
    if type & KCSAN_ACCESS_COMPOUND:
        word = "read-write"
    elif type & KCSAN_ACCESS_WRITE:
        word = "write"
    else:
        word = "read"
    return word + " (marked)" if type & KCSAN_ACCESS_ATOMIC else word


#: report.c's skip_report(): a watcher whose function has one of these in its name is
#: reported even when the write stored the value already there (at the RCU maintainers' request)
_ALWAYS_REPORT: Final = ("rcu_", "_rcu", "_srcu")


def _value_change(other: Access, cur: Access) -> tuple[int, int, int] | None:
    """The value change a watcher could have seen, as (size, old, new); None if none was
    (the writes stored what was there) or cannot be known (a write of more than 8 bytes, or
    outside the direct map).

    KCSAN sees a change when the watcher re-reads its word after its delay: the change
    made by the other access, whichever of the two set the watchpoint. For a read and a
    write it is the write's, over the read's bytes when the read lies inside the write (a
    byte read of a word write sees that byte change, or nothing). For two writes, the
    earlier (``other``: old -> new) and the later (``cur``) are concurrent, so either could
    have come inside the other's window: a change is seen if the later one changed what the
    earlier one left, if the earlier one changed the value, or if the later one's value
    differs from the one before both."""
    if not (cur.write and other.write):
        w, r = (cur, other) if cur.write else (other, cur)
        if w.old is None or w.new is None:
            return None
        size, old, new = w.size, w.old, w.new
        off = r.addr - w.addr
        if 0 <= off and off + r.size <= w.size and r.size < w.size:
            mask = (1 << (8 * r.size)) - 1
            size, old, new = r.size, (old >> (8 * off)) & mask, (new >> (8 * off)) & mask
        return (size, old, new) if old != new else None
    if cur.old is not None and cur.new is not None and cur.old != cur.new:
        return cur.size, cur.old, cur.new
    if other.old is not None and other.new is not None:
        if other.old != other.new:
            return other.size, other.old, other.new
        if cur.new is not None and cur.addr == other.addr and cur.size == other.size and cur.new != other.old:
            return other.size, other.old, cur.new
    return None


def _unknown_change(acc: Access) -> bool:
    return acc.write and (acc.old is None or acc.new is None)


def _filtered(other: Access, cur: Access) -> bool:
    """CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY (report.c, skip_report(); core.c): a race is
    not reported when no value change could be seen, unless a plain access of the pair (a
    possible watcher) is larger than 8 bytes (KCSAN diffs no such value and assumes a
    change) or its function is one of RCU's ("rcu_", "_rcu", "_srcu" in the name)."""
    if _unknown_change(other) or _unknown_change(cur) or _value_change(other, cur) is not None:
        return False
    for acc in (other, cur):
        if not acc.marked and (acc.size > 8 or any(s in acc.function() for s in _ALWAYS_REPORT)):
            return False
    return True


def _thread_desc(pid: int) -> str:
    return f"task {pid}" if pid != -1 else "interrupt"


class Kcsan:
    """The data-race detector of one machine (``m.kcsan``): the shadow and the reports."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.hb = HappensBefore(m.nr_cpus)
        self.hb.on_free = self.forget
        #: virtual page number -> {offset in the page: (last write, reads since)}; the reads
        #: are None, one Access, or {actor id: Access}
        self.shadow: dict[int, dict[int, tuple[Any, Any]]] = {}
        #: pairs of sites reported in this run
        self.seen: set[tuple[str, str]] = set()
        #: races found over the machine's life, reported or not (filtered, repeated)
        self.nr_races = 0

    def reset(self) -> None:
        """A new run: nothing of the last one can race with it."""
        with self.hb.lock:
            self.hb.reset()
            self.shadow.clear()
            self.seen.clear()

    # -- the accessors' hook ---------------------------------------------------------------------
    def access(self, addr: int, n: int, write: bool, fn: str, p: int, data: Any) -> None:
        """An access of ``n`` bytes at ``addr`` by the calling task (``fn``: the accessor,
        which says whether it is marked; ``p``: the physical address in the direct map, or
        negative; ``data``: what a write stores, to show the value it changed)."""
        if n <= 0 or (p < 0 and addr < PAGE_OFFSET):
            return  # nothing, or a page fault (NULL and user addresses map nothing)
        t = current_task()
        hb = self.hb
        info = MARKED.get(fn)
        typ = KCSAN_ACCESS_WRITE if write else 0
        if info is not None:
            typ |= KCSAN_ACCESS_ATOMIC
            if info[0]:
                typ |= KCSAN_ACCESS_COMPOUND | KCSAN_ACCESS_WRITE
        old = new = None
        if write and n <= 8 and p >= 0 and data is not None and len(data) == n:
            old = int.from_bytes(self.m.mem.read(p, n), "little")
            new = int.from_bytes(data, "little")
        stack = raw_stack(3, STACK_DEPTH, _SKIP)
        found: list[tuple[Access, Access]] = []
        with hb.lock:
            a = hb.actor_of(t)
            ordered = info is not None and info[1] and write
            if ordered:
                clk = hb.sync.get(addr)
                if clk is not None:
                    join(a.vc, clk)
            cur = Access(a.id, a.vc[a.id], addr, n, typ, t.pid if a.kind == A_TASK else -1, t.cpu.id, stack,
                         old, new)
            self._check(cur, a.vc, write, found)
            if ordered:
                hb.sync[addr] = dict(a.vc)
                a.tick()
        if found:
            self._report(found)

    def _check(self, cur: Access, vc: dict[int, int], write: bool, found: list[tuple[Access, Access]]) -> None:
        """Check ``cur`` against the shadow of its bytes and record it (hb.lock held).

        A cell is an immutable (last write, reads since) pair, shared by every byte whose
        history is the same: bytes written by one access share one cell, and a byte
        whose old cell is the previous byte's gets the previous byte's new cell."""
        shadow = self.shadow
        aid = cur.aid
        marked = cur.type & KCSAN_ACCESS_ATOMIC
        checked: set[int] = set()
        fresh: tuple[Any, Any] = (cur, None) if write else (None, cur)
        new: tuple[Any, Any]
        last_old: Any = None
        last_new: Any = None
        addr = cur.addr
        end = addr + cur.size
        while addr < end:
            vpn = addr >> PAGE_SHIFT
            page = shadow.get(vpn)
            if page is None:
                page = shadow[vpn] = {}
            stop = min(end, (vpn + 1) << PAGE_SHIFT)
            base = addr & (PAGE_SIZE - 1)
            for off in range(base, base + stop - addr):
                cell = page.get(off)
                if cell is None:
                    page[off] = fresh
                    continue
                if cell is last_old:
                    page[off] = last_new
                    continue
                w, r = cell
                if w is not None and id(w) not in checked:
                    checked.add(id(w))
                    if w.aid != aid and w.clk > vc.get(w.aid, 0) and not (marked and w.type & KCSAN_ACCESS_ATOMIC):
                        found.append((w, cur))
                if write:
                    if r is not None:
                        for prev in (r.values() if r.__class__ is dict else (r,)):
                            if id(prev) in checked:
                                continue
                            checked.add(id(prev))
                            if (prev.aid != aid and prev.clk > vc.get(prev.aid, 0)
                                    and not (marked and prev.type & KCSAN_ACCESS_ATOMIC)):
                                found.append((prev, cur))
                    new = fresh
                elif r is None or (r.__class__ is not dict and (r.aid == aid or r.clk <= vc.get(r.aid, 0))):
                    new = (w, cur)
                elif r.__class__ is dict:
                    reads = dict(r)
                    reads[aid] = cur
                    new = (w, reads)
                else:
                    new = (w, {r.aid: r, aid: cur})
                page[off] = new
                last_old, last_new = cell, new
            addr = stop

    def forget(self, addr: int, size: int) -> None:
        """Memory given back to its allocator: its shadow starts afresh."""
        with self.hb.lock:
            shadow = self.shadow
            end = addr + size
            while addr < end:
                vpn = addr >> PAGE_SHIFT
                stop = min(end, (vpn + 1) << PAGE_SHIFT)
                page = shadow.get(vpn)
                if page is not None:
                    if stop - addr == PAGE_SIZE:
                        del shadow[vpn]
                    else:
                        base = addr & (PAGE_SIZE - 1)
                        if len(page) < stop - addr:
                            for off in [o for o in page if base <= o < base + stop - addr]:
                                del page[off]
                        else:
                            for off in range(base, base + stop - addr):
                                page.pop(off, None)
                addr = stop

    def forget_pages(self, pfn: int, order: int) -> None:
        """A block of lowmem pages went back to the page allocator."""
        if pfn < self.m.mem.max_low_pfn:
            self.forget(PAGE_OFFSET + (pfn << PAGE_SHIFT), PAGE_SIZE << order)

    # -- reports ---------------------------------------------------------------------------------------
    def _report(self, found: list[tuple[Access, Access]]) -> None:
        """Report the first race of ``found`` that is new in this run and changed a value."""
        for other, cur in found:
            self.nr_races += 1
            if _filtered(other, cur):
                continue  # CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY
            a, b = other.site(), cur.site()
            key = (a, b) if a <= b else (b, a)
            with self.hb.lock:
                if key in self.seen:
                    continue
                self.seen.add(key)
            self.m.report("kcsan_data_race", self.lines(other, cur), stack=False,
                          extra={"address": cur.addr, "functions": tuple(sorted((other.function(), cur.function()))),
                                 "accesses": (access_type(other.type), access_type(cur.type)),
                                 "pids": (other.pid, cur.pid), "cpus": (other.cpu, cur.cpu)})
            return

    def lines(self, other: Access, cur: Access) -> list[str]:
        """The report's lines: print_report() of kernel/kcsan/report.c."""
        f1, f2 = other.function(), cur.function()
        lines = [KCSAN_RULE, f"BUG: KCSAN: data-race in {min(f1, f2)} / {max(f1, f2)}", ""]
        for acc in (other, cur):
            lines.append(f"{access_type(acc.type)} to 0x{acc.addr:08x} of {acc.size} bytes by "
                         f"{_thread_desc(acc.pid)} on cpu {acc.cpu}:")
            lines += [str(fr) for fr in acc.frames()]
            lines.append("")
        change = _value_change(other, cur)
        if change is not None:
            width = 2 * change[0]
            lines += [f"value changed: 0x{change[1]:0{width}x} -> 0x{change[2]:0{width}x}", ""]
        t: Task = current_task()
        lines += ["Reported by Kernel Concurrency Sanitizer on:",
                  f"CPU: {t.cpu.id} PID: {t.pid} Comm: {t.comm}", KCSAN_RULE]
        return lines


__all__ = ["Kcsan", "Access", "MARKED", "access_type", "KCSAN_ACCESS_WRITE", "KCSAN_ACCESS_COMPOUND",
           "KCSAN_ACCESS_ATOMIC", "KCSAN_RULE"]
