"""Per-CPU variables and the dynamic per-CPU allocator.

Kernel files modelled:

- include/linux/percpu.h, include/linux/percpu-defs.h: ``DEFINE_PER_CPU``,
  ``DECLARE_PER_CPU``, ``per_cpu``, ``get_cpu_var``/``put_cpu_var``, ``__get_cpu_var``,
  the ``this_cpu_*`` operations (safe against preemption and interrupts: the generic
  form is one step with local interrupts saved and disabled) and the ``__this_cpu_*``
  ones (the caller must have preemption off; CONFIG_DEBUG_PREEMPT reports
  "BUG: using __this_cpu_add() in preemptible [00000000] code: comm/pid").
- 2.6.11 setup_per_cpu_areas(): a static area of ``PERCPU_ENOUGH_ROOM`` (32768) bytes
  per CPU holding every DEFINE_PER_CPU variable (the .data.percpu section), each CPU's
  copy initialised from the section image.
- Modern mm/percpu.c: ``pcpu_alloc`` (size rounded to 4, align raised to 4, the
  "illegal size (%zu) or align (%zu) for percpu allocation" WARN, atomic allocations
  never create chunks, "allocation failed, size=%zu align=%zu atomic=%d, %s" limited
  to 10 warnings), chunks of one unit per CPU (``PCPU_MIN_UNIT_SIZE`` 32 KiB) with a
  first-fit area map (positive entries free, negative allocated, as mm/percpu.c of
  2.6.30-3.x), ``pcpu_alloc_mutex`` around the whole allocation and ``pcpu_lock``
  (irq-safe spinlock) around the index structures, memory zero-filled for every CPU,
  ``free_percpu`` callable from atomic context, one spare fully free chunk kept.
  ``per_cpu_ptr`` follows 2.6.11's "catch derefs w/o wrappers" encoding: the
  per-CPU pointer is the bitwise complement of CPU 0's address, so dereferencing it
  directly faults.

The C types the variables are declared with live in mm/ctype.py.

Simplified (docs/percpu.md): the static area comes from the page allocator at boot
(2.6 used alloc_bootmem), one order-3 block per CPU; chunks are populated completely
when they are created (no per-page population), their units are lowmem blocks from
the page allocator (no vmalloc mapping); fully free chunks beyond the spare are
destroyed by free_percpu itself, after pcpu_lock is dropped, instead of by a work item.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from ..runtime.errors import InconsistentState, KmemUsageError
from ..runtime.kernel import (
    debug_preempt_check,
    local_irq_restore,
    local_irq_save,
    preempt_disable,
    preempt_enable,
    preempt_point,
)
from ..runtime.locks import (
    mutex_init,
    mutex_lock,
    mutex_unlock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)
from ..runtime.report import caller_site, skip_frames_of, warning_line
from ..runtime.task import current_task
from ..runtime.validate import check_int
from .access import do_mem_read, do_mem_write, mem_read, mem_write, memset
from .context import current_machine
from .ctype import (
    CArray,
    CScalar,
    CStruct,
    CType,
    ctype_of,
)
from .gfp import GFP_ATOMIC, GFP_KERNEL, GFP_NORETRY, GFP_NOWARN, GFP_ZERO, check_gfp
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, get_order

if TYPE_CHECKING:
    from ..machine import Machine
    from ..runtime.task import Task

skip_frames_of(__file__)  # reports name the simulated caller, not this module

PERCPU_ENOUGH_ROOM: Final = 32768  #: static per-CPU area per CPU (2.6.11 include/linux/percpu.h)
PCPU_MIN_UNIT_SIZE: Final = 32 << 10  #: smallest unit of a dynamic chunk (PFN_ALIGN(32 << 10))
PCPU_MIN_ALLOC_SIZE: Final = 4  #: allocation granule and minimum alignment (modern pcpu_alloc)
PCPU_WARN_LIMIT: Final = 10  #: pcpu_alloc's static warn_limit
_UNIT_ORDER: Final = get_order(PCPU_MIN_UNIT_SIZE)
# Class bodies mangle names that start with two underscores: use these aliases there.
_ADDR_MASK: Final = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# The .data.percpu section: DEFINE_PER_CPU lays variables out once per process, as the linker
# does once per kernel image; each machine copies the image into every CPU's static area.
# ---------------------------------------------------------------------------------------------
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class PerCpuVar:
    """A per-CPU variable (``per_cpu__name``): a type and an offset in the static area.

    Returned by DEFINE_PER_CPU/DECLARE_PER_CPU; pass it to per_cpu(), get_cpu_var(),
    this_cpu_add() and friends. A declaration without a definition has no offset yet.
    """

    __slots__ = ("name", "ctype", "offset", "index", "init")

    def __init__(self, name: str, ctype: CType) -> None:
        self.name = name
        self.ctype = ctype
        self.offset = -1
        self.index = -1
        self.init = b""

    @property
    def defined(self) -> bool:
        return self.offset >= 0

    def __repr__(self) -> str:
        where = f"offset {self.offset:#x}" if self.defined else "declared, not defined"
        return f"<per-CPU {self.ctype.name} {self.name}: {where}>"


class _Section:
    """__per_cpu_start..__per_cpu_end: every defined variable, in definition order."""

    def __init__(self) -> None:
        self.by_name: dict[str, PerCpuVar] = {}
        self.defined: list[PerCpuVar] = []
        self.end = 0


_SECTION: Final = _Section()


def _check_name(name: Any, macro: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise KmemUsageError(f"{macro}: the name must be a C identifier string, got {name!r}")
    return name


def DEFINE_PER_CPU(type: Any, name: str, init: Any = None) -> PerCpuVar:
    """Define a per-CPU variable: one copy per CPU in each machine's static area.

    Usable at import time, before any Machine exists. Every copy starts zeroed, or as
    ``init`` (``DEFINE_PER_CPU(int, x) = init`` in C).

    Raises:
        KmemUsageError: ``type`` is not a C type or int; ``name`` is defined already
            or declared with another type; the static area (PERCPU_ENOUGH_ROOM) is full.
    """
    name = _check_name(name, "DEFINE_PER_CPU")
    ct = ctype_of(type, f"DEFINE_PER_CPU(..., {name})")
    var = _SECTION.by_name.get(name)
    if var is not None:
        if var.defined:
            raise KmemUsageError(f"DEFINE_PER_CPU({ct.name}, {name}): redefinition of 'per_cpu__{name}'")
        if var.ctype is not ct:
            raise KmemUsageError(f"DEFINE_PER_CPU({ct.name}, {name}): conflicting types for "
                                 f"'per_cpu__{name}' (declared {var.ctype.name})")
    image = bytes(ct.size) if init is None else ct.encode(init)
    off = (_SECTION.end + ct.alignof - 1) & -ct.alignof
    if off + ct.size > PERCPU_ENOUGH_ROOM:
        raise KmemUsageError(f"DEFINE_PER_CPU({ct.name}, {name}): could not allocate {ct.size} bytes percpu "
                             f"data: the static per-CPU area (PERCPU_ENOUGH_ROOM = {PERCPU_ENOUGH_ROOM} "
                             f"bytes per CPU) has {PERCPU_ENOUGH_ROOM - off} left")
    if var is None:
        var = PerCpuVar(name, ct)
        _SECTION.by_name[name] = var
    var.offset = off
    var.init = image
    var.index = len(_SECTION.defined)
    _SECTION.defined.append(var)
    _SECTION.end = off + ct.size
    return var


def DECLARE_PER_CPU(type: Any, name: str) -> PerCpuVar:
    """Declare a per-CPU variable defined elsewhere (the header's ``extern``).

    Returns the same object DEFINE_PER_CPU returns (before or after the definition);
    using it while nothing defines it raises KmemUsageError, as the link would fail.
    """
    name = _check_name(name, "DECLARE_PER_CPU")
    ct = ctype_of(type, f"DECLARE_PER_CPU(..., {name})")
    var = _SECTION.by_name.get(name)
    if var is None:
        var = PerCpuVar(name, ct)
        _SECTION.by_name[name] = var
    elif var.ctype is not ct:
        raise KmemUsageError(f"DECLARE_PER_CPU({ct.name}, {name}): conflicting types for "
                             f"'per_cpu__{name}' (was {var.ctype.name})")
    return var


# ---------------------------------------------------------------------------------------------
# References: the Python lvalue. Every .value access is a simulated memory access.
# ---------------------------------------------------------------------------------------------
class PerCpuRef:
    """An lvalue in simulated memory: ``ref.value`` reads or writes the bytes at ``ref.addr``
    (each access a scheduling point, checked like any memory access); ``ref["field"]``
    or ``ref[i]`` is the lvalue of a struct member or array element."""

    __slots__ = ("addr", "ctype")

    def __init__(self, addr: int, ctype: CType) -> None:
        self.addr = addr
        self.ctype = ctype

    @property
    def value(self) -> Any:
        ct = self.ctype
        return ct.decode(mem_read(self.addr, ct.size))

    @value.setter
    def value(self, v: Any) -> None:
        mem_write(self.addr, self.ctype.encode(v))

    def __getitem__(self, key: Any) -> PerCpuRef:
        ct = self.ctype
        if isinstance(ct, CStruct):
            if key not in ct.fields:
                raise KmemUsageError(f"{ct.name} has no member {key!r} (members: {', '.join(ct.fields)})")
            return PerCpuRef(self.addr + ct.offsets[key], ct.fields[key])
        if isinstance(ct, CArray):
            if not isinstance(key, int) or not 0 <= key < ct.length:
                raise KmemUsageError(f"index {key!r} is outside {ct.name}")
            return PerCpuRef(self.addr + key * ct.elem.size, ct.elem)
        raise KmemUsageError(f"a {ct.name} has no members or elements")

    field = __getitem__

    def __repr__(self) -> str:
        return f"<{self.ctype.name} at {self.addr:#010x}>"


class CpuVarRef(PerCpuRef):
    """What get_cpu_var() returns: also a context manager that calls put_cpu_var() on exit."""

    __slots__ = ()

    def __enter__(self) -> CpuVarRef:
        return self

    def __exit__(self, *exc: Any) -> None:
        preempt_enable()


class PercpuPtr(int):
    """A dynamic per-CPU pointer (``void __percpu *``): an int that is not an address
    (2.6.11 returns ``~pdata`` to catch derefs without per_cpu_ptr). ``ctype`` is the
    type alloc_percpu() was given (None for __alloc_percpu)."""

    ctype: CType | None = None

    def __repr__(self) -> str:
        return f"<percpu ptr {int(self):#010x}{' ' + self.ctype.name if self.ctype else ''}>"


# ---------------------------------------------------------------------------------------------
# One machine's per-CPU state
# ---------------------------------------------------------------------------------------------
class PcpuChunk:
    """struct pcpu_chunk: one unit of ``unit_size`` bytes per CPU and the area map.

    ``map`` holds block sizes in offset order: positive free, negative allocated; adjacent
    free blocks are always merged. ``contig_hint`` is at least the largest free block.
    """

    __slots__ = ("id", "pfns", "bases", "map", "free_size", "contig_hint", "nr_alloc", "dead")

    def __init__(self, cid: int, pfns: list[int], bases: list[int], unit_size: int) -> None:
        self.id = cid
        self.pfns = pfns
        self.bases = bases
        self.map: list[int] = [unit_size]
        self.free_size = unit_size
        self.contig_hint = unit_size
        self.nr_alloc = 0
        self.dead = False

    def _rehint(self) -> None:
        self.contig_hint = max((v for v in self.map if v > 0), default=0)

    def alloc_area(self, size: int, align: int) -> int:
        """pcpu_alloc_area: first fit; returns the offset or -1. A misaligned start leaves a
        free head block, a larger block a free tail (both multiples of 4 here)."""
        m = self.map
        off = 0
        for i, v in enumerate(m):
            if v <= 0:
                off -= v
                continue
            head = -off & (align - 1)
            if v < head + size:
                off += v
                continue
            tail = v - head - size
            m[i:i + 1] = [x for x in (head, -size, tail) if x]
            self.free_size -= size
            self.nr_alloc += 1
            self._rehint()
            return off + head
        return -1

    def free_area(self, freeme: int) -> str:
        """pcpu_free_area: free the block at ``freeme`` and merge; '' or what is wrong."""
        m = self.map
        off = 0
        for i, v in enumerate(m):
            if off == freeme:
                if v > 0:
                    return "free"
                m[i] = -v
                self.free_size -= v
                self.nr_alloc -= 1
                if i + 1 < len(m) and m[i + 1] > 0:  # merge with next
                    m[i] += m.pop(i + 1)
                if i > 0 and m[i - 1] > 0:  # merge with previous
                    m[i - 1] += m.pop(i)
                self._rehint()
                return ""
            if off > freeme:
                break
            off += abs(v)
        return "unknown"


class PerCpuState:
    """The per-CPU data of one machine (``m.percpu``)."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.pa = m.mm
        self.nr_cpus = m.nr_cpus
        self.unit_size = PCPU_MIN_UNIT_SIZE
        self.static_pfns: list[int] = []
        self.static_bases: list[int] = []
        self.nr_laid_out = 0
        self.chunks: list[PcpuChunk] = []
        self.by_pfn: dict[int, PcpuChunk] = {}  # unit 0's first pfn -> chunk (page->index)
        self.next_chunk_id = 0
        self.pcpu_lock = spin_lock_init("pcpu_lock")
        self.pcpu_alloc_mutex = mutex_init("pcpu_alloc_mutex")
        self.warn_limit = PCPU_WARN_LIMIT
        self.freed: set[int] = set()  # pointers freed and not handed out again (double-free reports)
        self.nr_allocs = 0  # live dynamic areas

    def unit_address(self, pfn: int) -> int:
        """The address of a per-CPU unit's first page: units are GFP_KERNEL pages, lowmem."""
        addr = self.pa.mem.page_address(pfn)
        assert addr is not None, "per-CPU units come from lowmem (GFP_KERNEL, no __GFP_HIGHMEM)"
        return addr

    # -- the static area ----------------------------------------------------------------------
    def setup_per_cpu_areas(self) -> None:
        """setup_per_cpu_areas(): a PERCPU_ENOUGH_ROOM area per CPU, then the section image."""
        for cpu in range(self.nr_cpus):
            pfn = _alloc_static_area(self.m, self.m.cpus[cpu].node)
            self.static_pfns.append(pfn)
            self.static_bases.append(self.unit_address(pfn))
        self.lay_out()

    def lay_out(self) -> None:
        """Copy the initial image of variables defined since the last call into every CPU's
        copy (memcpy(ptr, __per_cpu_start, ...)); the area itself is already zero."""
        defined = _SECTION.defined
        mem = self.pa.mem
        for var in defined[self.nr_laid_out:]:
            if any(var.init):
                for base in self.static_bases:
                    mem.write(base - PAGE_OFFSET + var.offset, var.init)
        self.nr_laid_out = len(defined)

    def static_addr(self, var: PerCpuVar, cpu: int) -> int:
        idx = var.index
        if idx < 0:
            raise KmemUsageError(f"undefined reference to 'per_cpu__{var.name}': DECLARE_PER_CPU "
                                 f"without a DEFINE_PER_CPU({var.ctype.name}, {var.name})")
        if idx >= self.nr_laid_out:
            self.lay_out()
        return self.static_bases[cpu] + var.offset

    # -- chunks ---------------------------------------------------------------------------------
    def find_area(self, size: int, align: int) -> tuple[PcpuChunk, int] | None:
        """Search the chunks, fullest first (the pcpu_slot order), for a fitting area."""
        for chunk in sorted(self.chunks, key=lambda c: c.free_size):
            if chunk.contig_hint < size:
                continue
            off = chunk.alloc_area(size, align)
            if off >= 0:
                return chunk, off
        return None

    def has_empty_chunk(self) -> bool:
        return any(c.nr_alloc == 0 for c in self.chunks)

    def create_chunk(self, t: Task, gfp: int, first: bool = False) -> PcpuChunk | None:
        """pcpu_create_chunk + populate: one unit per CPU, from that CPU's node. Runs under
        pcpu_alloc_mutex with pcpu_lock released; may sleep. ``first``: the first chunk,
        which the kernel sets up at boot; the model builds it at the first allocation,
        atomic ones included, so its pages are taken with GFP_ATOMIC (never sleeping)."""
        pfns: list[int] = []
        page_gfp = GFP_ATOMIC | GFP_NOWARN if first else GFP_KERNEL | (gfp & (GFP_NORETRY | GFP_NOWARN))
        for cpu in range(self.nr_cpus):
            pfn = self.pa.alloc_pages(page_gfp, _UNIT_ORDER, self.m.cpus[cpu].node)
            if pfn is None:
                for p in pfns:
                    self.pa.put_page(t, p, _UNIT_ORDER, False, "pcpu_create_chunk")
                return None
            pfns.append(pfn)
        bases = [self.unit_address(p) for p in pfns]
        self.next_chunk_id += 1
        return PcpuChunk(self.next_chunk_id, pfns, bases, self.unit_size)

    def link(self, chunk: PcpuChunk) -> None:
        """pcpu_chunk_relocate(chunk, -1) under pcpu_lock."""
        self.chunks.append(chunk)
        self.by_pfn[chunk.pfns[0]] = chunk

    def destroy_chunk(self, t: Task, chunk: PcpuChunk) -> None:
        """Give a chunk's units back to the page allocator (pcpu_lock not held). ``by_pfn`` keeps
        the entry, so a stale pointer still translates and its use is a use-after-free."""
        for p in chunk.pfns:
            self.pa.put_page(t, p, _UNIT_ORDER, False, "pcpu_destroy_chunk")

    def lookup(self, ptr: int) -> tuple[PcpuChunk, int] | None:
        """pcpu_chunk_addr_search: the chunk and offset a per-CPU pointer names."""
        addr0 = ~ptr & _ADDR_MASK
        if addr0 < PAGE_OFFSET:
            return None
        # Units are order-3 buddy blocks, so naturally aligned: round down to the unit.
        chunk = self.by_pfn.get(((addr0 - PAGE_OFFSET) >> PAGE_SHIFT) & -(1 << _UNIT_ORDER))
        if chunk is None:
            return None
        return chunk, addr0 - chunk.bases[0]

    # -- views and invariants -------------------------------------------------------------------
    def nr_pages(self) -> int:
        """Pages holding per-CPU data: the static areas and every chunk's units."""
        per_block = 1 << _UNIT_ORDER
        return len(self.static_pfns) * (1 << get_order(PERCPU_ENOUGH_ROOM)) + \
            sum(len(c.pfns) for c in self.chunks) * per_block

    def meminfo(self) -> list[tuple[str, int]]:
        return [("Percpu", self.nr_pages() << (PAGE_SHIFT - 10))]

    def check(self) -> None:
        """Area maps consistent, blocks disjoint, counts match, every page allocated."""
        mem = self.pa.mem
        owner: dict[int, str] = {}

        def claim(pfn: int, order: int, what: str) -> None:
            for p in range(pfn, pfn + (1 << order)):
                if p in owner:
                    raise InconsistentState(f"percpu: pfn {p:#x} is in {what} and in {owner[p]}")
                owner[p] = what
            if mem.count[pfn] <= 0 or self.pa.page_is_free(pfn):
                raise InconsistentState(f"percpu: {what} holds pfn {pfn:#x}, which is free in the page allocator")
            if mem.order[pfn] != order:
                raise InconsistentState(f"percpu: {what} holds pfn {pfn:#x} of order {mem.order[pfn]}, not {order}")

        for cpu, pfn in enumerate(self.static_pfns):
            claim(pfn, get_order(PERCPU_ENOUGH_ROOM), f"the static area of CPU {cpu}")
        total_alloc = 0
        empty = 0
        for c in self.chunks:
            if c.dead:
                raise InconsistentState(f"percpu: destroyed chunk {c.id} is still linked")
            for cpu, pfn in enumerate(c.pfns):
                claim(pfn, _UNIT_ORDER, f"chunk {c.id} unit {cpu}")
            if any(v == 0 for v in c.map) or sum(abs(v) for v in c.map) != self.unit_size:
                raise InconsistentState(f"percpu: chunk {c.id} area map {c.map} does not cover "
                                        f"{self.unit_size} bytes")
            if any(a > 0 and b > 0 for a, b in zip(c.map, c.map[1:])):
                raise InconsistentState(f"percpu: chunk {c.id} area map {c.map} has unmerged free blocks")
            free = sum(v for v in c.map if v > 0)
            nr = sum(1 for v in c.map if v < 0)
            if free != c.free_size or nr != c.nr_alloc:
                raise InconsistentState(f"percpu: chunk {c.id}: free_size {c.free_size} / nr_alloc {c.nr_alloc} "
                                        f"but the map says {free} / {nr}")
            if c.contig_hint < max((v for v in c.map if v > 0), default=0):
                raise InconsistentState(f"percpu: chunk {c.id} contig_hint {c.contig_hint} is below its "
                                        f"largest free block")
            total_alloc += nr
            empty += nr == 0
        if total_alloc != self.nr_allocs:
            raise InconsistentState(f"percpu: {self.nr_allocs} live allocations counted, "
                                    f"{total_alloc} in the area maps")
        if empty > 1:
            raise InconsistentState(f"percpu: {empty} fully free chunks; at most one spare is kept")


def _alloc_static_area(m: Machine, nid: int) -> int:
    """One CPU's static per-CPU area, zeroed; returns its first pfn.

    2.6 took it from alloc_bootmem() in setup_per_cpu_areas(). Here it comes from the page
    allocator at boot (bootmem lands separately): a PERCPU_ENOUGH_ROOM block from the first
    lowmem zone of the CPU's node that has one, the way the page allocator would hand it out.
    Boot has no task: PageAllocator.alloc_pages_at_boot takes it from the buddy directly.
    """
    pfn = m.mm.alloc_pages_at_boot(GFP_KERNEL | GFP_ZERO, get_order(PERCPU_ENOUGH_ROOM), nid)
    if pfn is not None:
        return pfn
    raise KmemUsageError(f"setup_per_cpu_areas: no {PERCPU_ENOUGH_ROOM}-byte block of lowmem for "
                         f"the static per-CPU area: memory={m.memory_arg!r} is too small")


def percpu_init(m: Machine) -> PerCpuState:
    """Boot: the static per-CPU areas, /proc/meminfo's Percpu line and the checker; returns
    the state (boot.py stores it as ``m.percpu``)."""
    st = PerCpuState(m)
    st.setup_per_cpu_areas()
    m.meminfo_hooks.append(st.meminfo)
    m.register_checker("percpu", st.check)
    return st


# ---------------------------------------------------------------------------------------------
# Kernel-style interfaces
# ---------------------------------------------------------------------------------------------
def _cpu_arg(st: PerCpuState, cpu: Any, what: str) -> int:
    if not isinstance(cpu, int) or isinstance(cpu, bool):
        raise KmemUsageError(f"{what}: cpu must be an int, got {cpu!r}")
    if not 0 <= cpu < st.nr_cpus:
        raise KmemUsageError(f"{what}: cpu {cpu} does not exist: this machine has CPUs 0-{st.nr_cpus - 1}")
    return cpu


def _var_arg(var: Any, what: str) -> PerCpuVar:
    if not isinstance(var, PerCpuVar):
        raise KmemUsageError(f"{what} takes a per-CPU variable (from DEFINE_PER_CPU), got {var!r}")
    return var


def _resolve(st: PerCpuState, target: Any, cpu: int, what: str) -> tuple[int, CType]:
    """Address and type of ``target`` (a per-CPU variable or a typed alloc_percpu pointer) on ``cpu``."""
    if isinstance(target, PerCpuVar):
        return st.static_addr(target, cpu), target.ctype
    if isinstance(target, PercpuPtr) and target.ctype is not None:
        return _ptr_addr(st, target, cpu, what), target.ctype
    raise KmemUsageError(f"{what} takes a per-CPU variable (DEFINE_PER_CPU) or a pointer from "
                         f"alloc_percpu(type), got {target!r}")


def _ptr_addr(st: PerCpuState, ptr: Any, cpu: int, what: str) -> int:
    if not isinstance(ptr, int) or isinstance(ptr, bool):
        raise KmemUsageError(f"{what} takes a per-CPU pointer (from alloc_percpu), got {ptr!r}")
    found = st.lookup(ptr)
    if found is None:
        raise KmemUsageError(f"{what}: {ptr:#x} is not a per-CPU pointer (from alloc_percpu) of this machine")
    chunk, off = found
    return chunk.bases[cpu] + off


def _scalar(ct: CType, what: str) -> CScalar:
    if not isinstance(ct, CScalar):
        raise KmemUsageError(f"{what} works on integer types, not {ct.name}")
    return ct


def per_cpu(var: PerCpuVar, cpu: int) -> PerCpuRef:
    """``per_cpu(var, cpu)``: the lvalue of CPU ``cpu``'s copy (no preemption check: naming a
    CPU explicitly is fine from anywhere; keeping it consistent is the caller's business)."""
    t = current_task()
    var = _var_arg(var, "per_cpu()")
    st = t.machine.percpu
    return PerCpuRef(st.static_addr(var, _cpu_arg(st, cpu, f"per_cpu({var.name}, {cpu!r})")), var.ctype)


def __get_cpu_var(var: PerCpuVar) -> PerCpuRef:
    """This CPU's copy. Under CONFIG_DEBUG_PREEMPT the offset comes from smp_processor_id(),
    so use from preemptible code is reported (BUG: using smp_processor_id() in preemptible)."""
    t = current_task()
    var = _var_arg(var, "__get_cpu_var()")
    debug_preempt_check("smp_processor_id", "")
    return PerCpuRef(t.machine.percpu.static_addr(var, t.cpu.id), var.ctype)


def get_cpu_var(var: PerCpuVar) -> CpuVarRef:
    """preempt_disable() and this CPU's copy; pair with put_cpu_var() (or use ``with``)."""
    t = current_task()
    var = _var_arg(var, "get_cpu_var()")
    preempt_disable()
    return CpuVarRef(t.machine.percpu.static_addr(var, t.cpu.id), var.ctype)


def put_cpu_var(var: PerCpuVar) -> None:
    """preempt_enable() after get_cpu_var()."""
    _var_arg(var, "put_cpu_var()")
    preempt_enable()


def this_cpu_ptr(ptr: Any) -> int:
    """This CPU's address of a per-CPU variable or dynamic pointer (DEBUG_PREEMPT checked)."""
    t = current_task()
    debug_preempt_check("smp_processor_id", "")
    st = t.machine.percpu
    if isinstance(ptr, PerCpuVar):
        return st.static_addr(ptr, t.cpu.id)
    return _ptr_addr(st, ptr, t.cpu.id, "this_cpu_ptr()")


def get_cpu_ptr(ptr: Any) -> int:
    """``get_cpu_ptr(ptr)``: preempt_disable(), then this CPU's address of a per-CPU variable
    or dynamic pointer (this_cpu_ptr() without its DEBUG_PREEMPT complaint); pair with
    put_cpu_ptr(). The address stays this CPU's until then: no preemption, no migration.
    The pointer is checked before preemption is disabled (a bad one changes nothing)."""
    t = current_task()
    st = t.machine.percpu
    if isinstance(ptr, PerCpuVar):
        st.static_addr(ptr, t.cpu.id)
    else:
        _ptr_addr(st, ptr, t.cpu.id, "get_cpu_ptr()")
    preempt_disable()
    c = t.cpu.id  # (preempt_disable() is no scheduling point, but read the CPU after it)
    return st.static_addr(ptr, c) if isinstance(ptr, PerCpuVar) else _ptr_addr(st, ptr, c, "get_cpu_ptr()")


def put_cpu_ptr(ptr: Any) -> None:
    """``put_cpu_ptr(ptr)``: preempt_enable() after get_cpu_ptr(); ``ptr`` is checked first."""
    t = current_task()
    if not isinstance(ptr, PerCpuVar):
        _ptr_addr(t.machine.percpu, ptr, t.cpu.id, "put_cpu_ptr()")
    preempt_enable()


def per_cpu_ptr(ptr: Any, cpu: int) -> int:
    """The kernel virtual address of CPU ``cpu``'s copy of a dynamic per-CPU area (or of a
    per-CPU variable): use it with mem_read, read_u32, ..."""
    t = current_task()
    st = t.machine.percpu
    cpu = _cpu_arg(st, cpu, f"per_cpu_ptr(..., {cpu!r})")
    if isinstance(ptr, PerCpuVar):
        return st.static_addr(ptr, cpu)
    return _ptr_addr(st, ptr, cpu, "per_cpu_ptr()")


# -- this_cpu_*: one step with local interrupts off (this_cpu_generic_to_op) -------------------
def this_cpu_read(target: Any) -> Any:
    """Read this CPU's copy; safe against preemption and interrupts."""
    t = current_task()
    flags = local_irq_save()
    try:
        addr, ct = _resolve(t.machine.percpu, target, t.cpu.id, "this_cpu_read()")
        v = ct.decode(do_mem_read("this_cpu_read", addr, ct.size))  # a marked access (KCSAN)
    finally:
        local_irq_restore(flags)
    return v


def this_cpu_write(target: Any, value: Any) -> None:
    """Write this CPU's copy; safe against preemption and interrupts."""
    t = current_task()
    flags = local_irq_save()
    try:
        addr, ct = _resolve(t.machine.percpu, target, t.cpu.id, "this_cpu_write()")
        do_mem_write("this_cpu_write", addr, ct.encode(value))  # a marked access (KCSAN)
    finally:
        local_irq_restore(flags)


def this_cpu_add(target: Any, n: int) -> None:
    """Add ``n`` to this CPU's copy in one step: nothing on this CPU (a preemption, an
    interrupt handler) can come between the read and the write."""
    _this_cpu_add("this_cpu_add", target, n)


def _this_cpu_add(fn: str, target: Any, n: Any) -> Any:
    """One step with local interrupts off; returns the new value, as the type reads it back."""
    t = current_task()
    if n.__class__ is not int:
        check_int(fn, "n", n)
    flags = local_irq_save()
    try:
        addr, ct = _resolve(t.machine.percpu, target, t.cpu.id, f"{fn}()")
        sc = _scalar(ct, f"{fn}()")  # one marked read-modify-write (KCSAN)
        new = sc.encode(sc.decode(do_mem_read(fn, addr, sc.size)) + n)
        do_mem_write(fn, addr, new)
    finally:
        local_irq_restore(flags)
    return sc.decode(new)


def this_cpu_sub(target: Any, n: int) -> None:
    if n.__class__ is not int:
        current_machine()  # outside a task, NotInTaskError comes first
        check_int("this_cpu_sub", "n", n)
    _this_cpu_add("this_cpu_sub", target, -n)


def this_cpu_inc(target: Any) -> None:
    _this_cpu_add("this_cpu_inc", target, 1)


def this_cpu_dec(target: Any) -> None:
    _this_cpu_add("this_cpu_dec", target, -1)


def this_cpu_add_return(target: Any, n: int) -> Any:
    """Add ``n`` to this CPU's copy in one step and return the new value (wrapped to the
    variable's C type, as the kernel's ``typeof(pcp)`` result is)."""
    return _this_cpu_add("this_cpu_add_return", target, n)


def this_cpu_sub_return(target: Any, n: int) -> Any:
    """this_cpu_add_return(pcp, -(typeof(pcp))(n))."""
    if n.__class__ is not int:
        current_machine()  # outside a task, NotInTaskError comes first
        check_int("this_cpu_sub_return", "n", n)
    return _this_cpu_add("this_cpu_sub_return", target, -n)


def this_cpu_inc_return(target: Any) -> Any:
    return _this_cpu_add("this_cpu_inc_return", target, 1)


def this_cpu_dec_return(target: Any) -> Any:
    return _this_cpu_add("this_cpu_dec_return", target, -1)


# -- __this_cpu_*: the caller must have preemption (or irqs) off ----------------------------------
def __this_cpu_read(target: Any) -> Any:
    """Read this CPU's copy; preemption must be off (reported under DEBUG_PREEMPT if not)."""
    t = current_task()
    debug_preempt_check("__this_cpu_", "read")
    addr, ct = _resolve(t.machine.percpu, target, t.cpu.id, "__this_cpu_read()")
    return ct.decode(mem_read(addr, ct.size))


def __this_cpu_write(target: Any, value: Any) -> None:
    """Write this CPU's copy; preemption must be off (reported under DEBUG_PREEMPT if not)."""
    t = current_task()
    debug_preempt_check("__this_cpu_", "write")
    addr, ct = _resolve(t.machine.percpu, target, t.cpu.id, "__this_cpu_write()")
    mem_write(addr, ct.encode(value))


def __this_cpu_add(target: Any, n: int) -> None:
    """Read, add, write this CPU's copy: not atomic. From preemptible code the task can be
    preempted (and migrated) or interrupted between the read and the write, losing updates;
    DEBUG_PREEMPT reports it."""
    _raw_this_cpu_add("__this_cpu_add", target, n)


def _raw_this_cpu_add(fn: str, target: Any, n: Any, op: str = "add") -> Any:
    """Read, add, write (a scheduling point between them); returns the new value. ``op`` is
    what DEBUG_PREEMPT names (``__this_cpu_add()`` or ``__this_cpu_add_return()``)."""
    t = current_task()
    if n.__class__ is not int:
        check_int(fn, "n", n)
    addr, ct = _resolve(t.machine.percpu, target, t.cpu.id, f"{fn}()")
    sc = _scalar(ct, f"{fn}()")
    debug_preempt_check("__this_cpu_", op)
    v = sc.decode(mem_read(addr, sc.size))
    preempt_point("__this_cpu_add")
    new = sc.encode(v + n)
    mem_write(addr, new)
    return sc.decode(new)


def __this_cpu_sub(target: Any, n: int) -> None:
    if n.__class__ is not int:
        current_machine()  # outside a task, NotInTaskError comes first
        check_int("__this_cpu_sub", "n", n)
    _raw_this_cpu_add("__this_cpu_sub", target, -n)  # the kernel's __this_cpu_sub is __this_cpu_add(pcp, -(val))


def __this_cpu_inc(target: Any) -> None:
    _raw_this_cpu_add("__this_cpu_inc", target, 1)


def __this_cpu_dec(target: Any) -> None:
    _raw_this_cpu_add("__this_cpu_dec", target, -1)


def __this_cpu_add_return(target: Any, n: int) -> Any:
    """__this_cpu_add, returning the new value; preemption must be off (reported as
    ``__this_cpu_add_return()`` under DEBUG_PREEMPT: the kernel's sub/inc/dec_return
    variants expand to it and report the same name)."""
    return _raw_this_cpu_add("__this_cpu_add_return", target, n, "add_return")


def __this_cpu_sub_return(target: Any, n: int) -> Any:
    if n.__class__ is not int:
        current_machine()  # outside a task, NotInTaskError comes first
        check_int("__this_cpu_sub_return", "n", n)
    return _raw_this_cpu_add("__this_cpu_sub_return", target, -n, "add_return")


def __this_cpu_inc_return(target: Any) -> Any:
    return _raw_this_cpu_add("__this_cpu_inc_return", target, 1, "add_return")


def __this_cpu_dec_return(target: Any) -> Any:
    return _raw_this_cpu_add("__this_cpu_dec_return", target, -1, "add_return")


# -- the dynamic allocator ------------------------------------------------------------------------
def pcpu_alloc(size: int, align: int, gfp: int, fn: str = "__alloc_percpu") -> PercpuPtr | None:
    """The per-CPU allocator (modern mm/percpu.c pcpu_alloc, area map of 2.6.30-3.x).

    ``fn`` names the caller's kernel function in a refusal of its arguments.
    """
    t = current_task()
    check_int(fn, "size", size, 0)
    check_int(fn, "align", align, 0)
    check_gfp(gfp, fn, "gfp")
    st: PerCpuState = t.machine.percpu
    is_atomic = (gfp & GFP_KERNEL) != GFP_KERNEL
    do_warn = not gfp & GFP_NOWARN
    if align < PCPU_MIN_ALLOC_SIZE:
        align = PCPU_MIN_ALLOC_SIZE
    size = (size + PCPU_MIN_ALLOC_SIZE - 1) & -PCPU_MIN_ALLOC_SIZE
    if not size or size > PCPU_MIN_UNIT_SIZE or align > PAGE_SIZE or align & (align - 1):
        if do_warn:
            file, line, _ = caller_site(2)
            st.m.report("percpu_illegal_size", [
                f"illegal size ({size}) or align ({align}) for percpu allocation",
                warning_line(t, file, line, "pcpu_alloc")], site=f"{file}:{line}")
        return None
    if not is_atomic:
        mutex_lock(st.pcpu_alloc_mutex)  # might_sleep() first, before any state changes
    err = ""
    flags = spin_lock_irqsave(st.pcpu_lock)
    while True:
        found = st.find_area(size, align)
        if found is not None:
            break
        searched_none = not st.chunks  # seen under pcpu_lock, with the search
        spin_unlock_irqrestore(st.pcpu_lock, flags)
        if is_atomic:
            if searched_none:  # the first chunk: in the kernel it is there from boot
                chunk = None if st.chunks else st.create_chunk(t, gfp, first=True)
                if chunk is None and st.chunks:  # another CPU built it meanwhile: search it
                    flags = spin_lock_irqsave(st.pcpu_lock)
                    continue
                if chunk is not None:
                    flags = spin_lock_irqsave(st.pcpu_lock)
                    if st.chunks:  # another CPU built it meanwhile: give ours back
                        spin_unlock_irqrestore(st.pcpu_lock, flags)
                        st.destroy_chunk(t, chunk)
                        flags = spin_lock_irqsave(st.pcpu_lock)
                    else:
                        st.link(chunk)
                    continue
            err = "atomic alloc failed, no space left"
            break
        # No space left: create a chunk, unless a free one appeared meanwhile.
        if not st.has_empty_chunk():
            chunk = st.create_chunk(t, gfp)
            if chunk is None:
                err = "failed to allocate new chunk"
                break
            flags = spin_lock_irqsave(st.pcpu_lock)
            st.link(chunk)
        else:
            flags = spin_lock_irqsave(st.pcpu_lock)
    if err:
        if not is_atomic:
            mutex_unlock(st.pcpu_alloc_mutex)
        if do_warn and st.warn_limit:
            st.warn_limit -= 1
            file, line, _ = caller_site(2)
            st.m.report("percpu_alloc_failure", [
                f"percpu: allocation failed, size={size} align={align} atomic={int(is_atomic)}, {err}"],
                site=f"{file}:{line}:{err}", stack=not is_atomic)
            if not st.warn_limit:
                st.m.printk("percpu: limit reached, disable warning", "INFO")
        return None
    assert found is not None, "the loop ends with an area found, or with err set (returned above)"
    chunk, off = found
    st.nr_allocs += 1
    ptr = PercpuPtr(~(chunk.bases[0] + off) & _ADDR_MASK)
    st.freed.discard(int(ptr))
    spin_unlock_irqrestore(st.pcpu_lock, flags)
    if not is_atomic:
        mutex_unlock(st.pcpu_alloc_mutex)
    for base in chunk.bases:  # clear the area of every CPU
        memset(base + off, 0, size)
    return ptr


def __alloc_percpu_gfp(size: int, align: int, gfp: int) -> PercpuPtr | None:
    """Allocate a zero-filled per-CPU area of ``size`` bytes aligned at ``align``.

    Returns:
        a per-CPU pointer (use per_cpu_ptr()), or None on failure.
    Context: without all of GFP_KERNEL the allocation is atomic: it never sleeps and never
    creates a chunk beyond the first (so it fails when the existing chunks are full). ``__GFP_NOWARN``
    silences the warnings.
    """
    return pcpu_alloc(size, align, gfp, "__alloc_percpu_gfp")


def __alloc_percpu(size: int, align: int) -> PercpuPtr | None:
    """``__alloc_percpu_gfp(size, align, GFP_KERNEL)``. Context: might sleep."""
    return pcpu_alloc(size, align, GFP_KERNEL)


def alloc_percpu(type: Any) -> PercpuPtr | None:
    """``alloc_percpu(type)``: ``__alloc_percpu(sizeof(type), __alignof__(type))``; the pointer
    remembers ``type``, so this_cpu_add(ptr, n) and friends work on it. Context: might sleep."""
    ct = ctype_of(type, "alloc_percpu")
    ptr = pcpu_alloc(ct.size, ct.alignof, GFP_KERNEL, "alloc_percpu")
    if ptr is not None:
        ptr.ctype = ct
    return ptr


def alloc_percpu_gfp(type: Any, gfp: int) -> PercpuPtr | None:
    ct = ctype_of(type, "alloc_percpu_gfp")
    ptr = pcpu_alloc(ct.size, ct.alignof, gfp, "alloc_percpu_gfp")
    if ptr is not None:
        ptr.ctype = ct
    return ptr


def free_percpu(ptr: Any) -> None:
    """Free a dynamic per-CPU area; None is a no-op. Context: any (also atomic)."""
    if ptr is None:
        return
    t = current_task()
    if not isinstance(ptr, int) or isinstance(ptr, bool):
        raise KmemUsageError(f"free_percpu() takes a per-CPU pointer (from alloc_percpu), got {ptr!r}")
    st: PerCpuState = t.machine.percpu
    doomed = None
    flags = spin_lock_irqsave(st.pcpu_lock)
    found = st.lookup(ptr)
    bad = "unknown"
    if found is not None and not found[0].dead:
        chunk, off = found
        bad = chunk.free_area(off)
        if not bad:
            st.nr_allocs -= 1
            st.freed.add(int(ptr))
            # More than one fully free chunk: give this one back (pcpu_balance_workfn's job).
            if chunk.nr_alloc == 0 and any(c is not chunk and c.nr_alloc == 0 for c in st.chunks):
                st.chunks.remove(chunk)
                chunk.dead = True
                doomed = chunk
    spin_unlock_irqrestore(st.pcpu_lock, flags)
    if bad:
        file, line, func = caller_site(2)
        if int(ptr) in st.freed:
            lines = [f"BUG: free_percpu() of {int(ptr):#010x}, which is already free (double free)"]
            kind = "percpu_double_free"
        else:
            lines = [f"BUG: free_percpu() of {int(ptr):#010x}, which is not an allocated per-CPU area"]
            kind = "percpu_bad_free"
        st.m.report(kind, [*lines, f"at {file}:{line} in {func}"], site=f"{file}:{line}")
        return
    if doomed is not None:
        st.destroy_chunk(t, doomed)


__all__ = [
    "DEFINE_PER_CPU", "DECLARE_PER_CPU", "per_cpu", "__get_cpu_var", "get_cpu_var", "put_cpu_var",
    "this_cpu_ptr", "get_cpu_ptr", "put_cpu_ptr", "per_cpu_ptr", "this_cpu_read", "this_cpu_write",
    "this_cpu_add", "this_cpu_sub",
    "this_cpu_inc", "this_cpu_dec", "__this_cpu_read", "__this_cpu_write", "__this_cpu_add",
    "__this_cpu_sub", "__this_cpu_inc", "__this_cpu_dec", "this_cpu_add_return", "this_cpu_sub_return",
    "this_cpu_inc_return", "this_cpu_dec_return", "__this_cpu_add_return", "__this_cpu_sub_return",
    "__this_cpu_inc_return", "__this_cpu_dec_return", "alloc_percpu", "alloc_percpu_gfp",
    "__alloc_percpu", "__alloc_percpu_gfp", "free_percpu", "PERCPU_ENOUGH_ROOM", "PCPU_MIN_UNIT_SIZE",
]
