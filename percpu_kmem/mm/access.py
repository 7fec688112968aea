"""Reading and writing simulated kernel memory.

Every access is a scheduling point (a real CPU can be interrupted between two
memory accesses) and is checked: touching a page that is free is reported as a
use-after-free in KASAN's words; an address nothing maps is a page fault (an
Oops), never a Python crash. Addresses are kernel virtual addresses (ints).
With ``Machine(kasan=True)`` every access is first checked against KASAN's shadow
(mm/kasan.py: slab red zones, freed objects, free pages, vmalloc beyond its request);
an access KASAN reports is not performed (a write is dropped, a read gets the bytes
that are there). Without it the check costs one ``is None`` test.

Bad pointers in simulated code (what the kernel would oops on) are Oopses here,
in today's x86 wording with i386's 8-digit addresses (kept: the three ``BUG:`` /
``#PF:`` lines of ``show_fault_oops``, the ``Oops: %04lx [#N] SMP`` line of
``__die`` with the page-fault error code, 0000 for a read and 0002 for a write of a
not-present page, and ``oops_end``'s ``---[ end trace ]---``):

* ``None`` is NULL (address 0); an address below PAGE_SIZE (a field of a NULL
  struct pointer) is "BUG: kernel NULL pointer dereference, address: 00000010";
* any other address nothing maps is "BUG: unable to handle page fault for address: ...";
* a negative int is a pointer that C arithmetic wrapped (NULL - 8 is fffffff8).

The Oops ends the task (as ``make_task_dead``: "note: ... exited with
preempt_count N" when it dies atomic) and the run goes on; in interrupt context the
kernel cannot kill anything and panics ("Fatal exception in interrupt"), and so does
the model. Simplified: no register dump and no ``*pde =`` page-table walk; the
``EIP:`` line names the Python function and line of the access. A non-int address
(a str, a float), an int of 2**32 or more, or a negative length is a misuse of the
Python API: KmemUsageError, before anything happens.

Addresses outside the lowmem direct map go through the page allocator's
``translate_hook`` (vmalloc/ioremap install it: mm/vmalloc.py), one virtual page
at a time, as the MMU walks one PTE per page: an access that spans two virtual
pages reaches two unrelated physical pages, so it is split at the page boundary.
A hook returns the physical address of the piece, or None (nothing maps it: a
page fault). A physical address beyond RAM is device memory (MMIO): the piece
goes to ``pa.iomem.io_read(paddr, width)`` / ``io_write(paddr, width, value)``
(the registered devices of mm/vmalloc.py), in the widths an i386 ``__memcpy``
uses (``rep movsl`` dwords, then a word, then a byte), or in one access of the
accessor's width (read_u32 is one 4-byte bus read, as readl is).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from ..runtime import footprint as _fp
from ..runtime.errors import KmemUsageError, Oops
from ..runtime.preempt import IRQ_MASK
from ..runtime.report import caller_site, skip_frames_of
from ..runtime.task import current_task
from .context import current_machine
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, PG_compound, PG_reserved

if TYPE_CHECKING:
    from ..machine import Machine
    from .kcsan import Kcsan
    from .physmem import PhysMem


skip_frames_of(__file__)
_IRQ_MASK: Final = IRQ_MASK

#: vmalloc/ioremap's page-table walk: (virtual address, size, write) -> physical address, or
#: None when nothing maps it (a page fault)
TranslateHook: TypeAlias = Callable[[int, int, bool], int | None]


class IoMemory(Protocol):
    """Device memory behind physical addresses beyond RAM (mm/vmalloc.py's VmallocSpace)."""

    def io_read(self, paddr: int, width: int) -> int: ...

    def io_write(self, paddr: int, width: int, value: int) -> None: ...


class MemoryMap(Protocol):
    """What the accessors reach through ``m.mm``: physical memory, the translate hook, device
    memory and the Oops counter.

    The page allocator (mm/page_alloc.py) is one; during the boot phase, before it exists,
    bootmem's early stand-in (mm/bootmem.py) is the other, so init functions can read and
    write what alloc_bootmem() gave them.
    """

    m: Machine
    mem: PhysMem
    translate_hook: TranslateHook | None
    iomem: IoMemory | None
    #: arch/x86 die_counter: the N of "Oops: 0000 [#N]", one count per machine
    die_counter: int
    #: the data-race detector (mm/kcsan.py) when the machine has kcsan=True, else None
    kcsan: Kcsan | None


def _page_is_free(mem: PhysMem, pfn: int) -> bool:
    """A page nobody holds: count 0 and not the tail of an allocated compound block."""
    count = mem.count
    if count[pfn] > 0 or mem.flags[pfn] & PG_reserved:
        return False
    if mem.flags[pfn] & PG_compound:
        return count[mem.private[pfn]] <= 0
    return True


#: i386: an ``unsigned long`` pointer; a negative int wraps as C pointer arithmetic does
ADDR_LIMIT: Final = 1 << 32
#: x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h): only W/R is ever set
#: here, every fault of the model is a supervisor access to a not-present page.
X86_PF_WRITE: Final = 1 << 1


def _addr_arg(addr: object, fn: str = "mem_read", name: str = "addr") -> int:
    """An address argument that is not a plain int: None is NULL, misuse raises.

    Called only off the fast path (``addr.__class__ is not int``) and for ints out of
    the 32-bit range, before any side effect.
    """
    if addr is None:
        return 0
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise KmemUsageError(f"{fn}: {name}(={addr!r}) must be an int (a kernel virtual address) "
                             f"or None (NULL)")
    if -ADDR_LIMIT <= addr < 0:
        return addr & (ADDR_LIMIT - 1)
    if not 0 <= addr < ADDR_LIMIT:
        raise KmemUsageError(f"{fn}: {name}(={addr:#x}) does not fit an i386 pointer (32 bits)")
    return int(addr)


def kernel_addr(fn: str, addr: object, name: str = "addr") -> int:
    """``addr`` as the kernel address an accessor would take, refused the way the accessors
    refuse it (for a kernel function that must check its pointer before it does anything)."""
    if isinstance(addr, int) and addr.__class__ is int and 0 <= addr < ADDR_LIMIT:
        return addr
    return _addr_arg(addr, fn, name)


def _len_arg(n: object, what: str, name: str = "n") -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise KmemUsageError(f"{what}: {name}(={n!r}) must be an int >= 0 (a length)")
    return n


def _fault(pa: MemoryMap, addr: int, size: int, write: bool) -> None:
    """A kernel-mode page fault nothing can fix: the Oops, then the task dies.

    ``do_page_fault`` -> ``no_context`` -> ``show_fault_oops`` + ``__die`` + ``oops_end``:
    in interrupt context that is ``panic("Fatal exception in interrupt")``; otherwise
    the task is killed (``make_task_dead``) and everything else goes on.
    """
    t = current_task()
    file, line, func = caller_site(3)
    err = X86_PF_WRITE if write else 0
    pa.die_counter += 1
    if addr < PAGE_SIZE:
        first = f"BUG: kernel NULL pointer dereference, address: {addr:08x}"
    else:
        first = f"BUG: unable to handle page fault for address: {addr:08x}"
    c = t.cpu
    count, irqs_off = c.preempt_count, c.irqs_off
    m = pa.m
    try:
        m.report("page_fault", [
            first,
            f"#PF: supervisor {'write' if write else 'read'} access in kernel mode",
            f"#PF: error_code(0x{err:04x}) - not-present page",
            f"Oops: {err:04x} [#{pa.die_counter}] SMP",
            f"EIP: {func} ({file}:{line})"], fatal=True,
            extra={"address": addr, "write": write, "null": addr < PAGE_SIZE})
    except Oops:
        m.printk("---[ end trace 0000000000000000 ]---", "WARNING")
        if count & _IRQ_MASK:
            m.panic("Fatal exception in interrupt")
        if irqs_off:
            m.printk(f"note: {t.comm}[{t.pid}] exited with irqs disabled", "INFO")
        if count:
            m.printk(f"note: {t.comm}[{t.pid}] exited with preempt_count {count}", "INFO")
        raise


def _uaf(pa: MemoryMap, addr: int, size: int, write: bool) -> None:
    t = current_task()
    file, line, func = caller_site(3)
    pa.m.report("use_after_free", [
        f"BUG: KASAN: use-after-free in {func}",
        f"{'Write' if write else 'Read'} of size {size} at addr {addr:08x} by task {t.comm}/{t.pid}",
        "The buggy address belongs to a page that is free in the page allocator"],
        site=f"{file}:{line}")


#: do_memset looks up the machine's memory size only for lengths above this (no machine is smaller)
_MEMSET_CHECK_ABOVE: Final = 1 << 20
_SLOW = -2  # _phys: the access is not inside the direct map; take the per-page path
_KASAN_BAD = -3  # _phys: KASAN reported the access; a write is dropped, a read gets Kasan.bad_read


def _phys(addr: int, size: int, write: bool) -> int:
    """Count the access as a scheduling point, check it, and translate it.

    ``addr`` is already a valid 32-bit int (``_addr_arg``). Returns the physical
    address for an access inside the lowmem direct map, else ``_SLOW``: the caller
    then goes page by page (``_pieces``).
    """
    t = current_task()
    t.budget -= 1
    if t.budget <= 0:
        t.engine.decide(t, "mem_write" if write else "mem_read")
    if _fp.active: _fp.touch_mem(addr, size, write)  # noqa: E701  (the exhaustive search's footprint)
    m = t.machine
    if m.kasan is not None and m.kasan.check(addr, size, write):
        return _KASAN_BAD  # reported (mm/kasan.py): the access is not performed
    pa = m.mm
    mem = pa.mem
    if PAGE_OFFSET <= addr and addr + size <= PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT):
        paddr = addr - PAGE_OFFSET
        _check_free(pa, paddr, addr, size, write)
        return paddr
    return _SLOW


def _check_free(pa: MemoryMap, paddr: int, addr: int, size: int, write: bool) -> None:
    mem = pa.mem
    first = paddr >> PAGE_SHIFT
    last = (paddr + max(size, 1) - 1) >> PAGE_SHIFT
    for pfn in range(first, last + 1):
        if _page_is_free(mem, pfn):
            _uaf(pa, addr, size, write)
            break


def _translate(pa: MemoryMap, addr: int, size: int, write: bool) -> int:
    """One piece inside one virtual page: its physical address, or a page fault."""
    mem = pa.mem
    if PAGE_OFFSET <= addr and addr + size <= PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT):
        paddr = addr - PAGE_OFFSET
    else:
        hook = pa.translate_hook
        p = hook(addr, size, write) if hook is not None else None
        if p is None or p < 0:
            _fault(pa, addr, size, write)  # raises Oops
            raise AssertionError("unreachable: a page fault oopses the task")
        paddr = p
    if paddr < mem.nr_pages << PAGE_SHIFT:
        _check_free(pa, paddr, addr, size, write)
    return paddr


def _pieces(pa: MemoryMap, addr: int, n: int, write: bool) -> list[tuple[int, int]]:
    """(physical address, length) of each virtual page [addr, addr + n) touches.

    Every page is translated before any byte moves, so a fault part way leaves
    memory as it was (the model's accesses are all-or-nothing).
    """
    out: list[tuple[int, int]] = []
    if n <= 0:
        return out  # nothing is touched: no fault (memset(NULL, 0, 0) is harmless)
    end = addr + n
    a = addr
    while True:
        step = min(end, (a | (PAGE_SIZE - 1)) + 1) - a
        out.append((_translate(pa, a, step, write), step))
        a += step
        if a >= end:
            return out


def _io_widths(n: int) -> list[int]:
    """The bus accesses of an i386 __memcpy of n bytes: rep movsl, then movsw, then movsb."""
    return [4] * (n >> 2) + ([2] if n & 2 else []) + ([1] if n & 1 else [])


def _io(pa: MemoryMap) -> IoMemory:
    io = pa.iomem
    if io is None:
        raise KmemUsageError("device memory accessed but no device memory exists on this machine")
    return io


def _read(addr: int, n: int, width: int = 0, fn: str = "mem_read") -> bytes:
    """Read n bytes; ``width`` > 0: one bus access of that width when it is device memory.
    ``fn`` names the kernel function in a refusal of the arguments."""
    if addr.__class__ is not int or addr < 0 or addr >= ADDR_LIMIT:
        addr = _addr_arg(addr, fn)
    if n.__class__ is not int or n < 0:
        n = _len_arg(n, fn)
    p = _phys(addr, n, False)
    pa = current_machine().mm
    mem = pa.mem
    if pa.kcsan is not None and p != _KASAN_BAD:  # KCSAN (mm/kcsan.py)
        pa.kcsan.access(addr, n, False, fn, p, None)
    if p >= 0:
        return mem.read(p, n)
    if p == _KASAN_BAD:
        return pa.m.kasan.bad_read(addr, n)  # type: ignore[union-attr]
    ram_end = mem.nr_pages << PAGE_SHIFT
    out = bytearray()
    pieces = _pieces(pa, addr, n, False)
    for paddr, ln in pieces:
        if paddr < ram_end:
            out += mem.read(paddr, ln)
            continue
        io = _io(pa)
        widths = [ln] if width == ln and len(pieces) == 1 else _io_widths(ln)
        for w in widths:
            out += (io.io_read(paddr, w) & ((1 << (8 * w)) - 1)).to_bytes(w, "little")
            paddr += w
    return bytes(out)


def _write(addr: int, data: bytes | bytearray, width: int = 0, fn: str = "mem_write") -> None:
    """Write ``data``; device memory gets bus writes (see _read)."""
    if addr.__class__ is not int or addr < 0 or addr >= ADDR_LIMIT:
        addr = _addr_arg(addr, fn)
    if data.__class__ is not bytes and not isinstance(data, (bytes, bytearray)):
        raise KmemUsageError(f"{fn}: data(={data!r}) must be bytes or a bytearray")
    n = len(data)
    p = _phys(addr, n, True)
    pa = current_machine().mm
    mem = pa.mem
    if pa.kcsan is not None and p != _KASAN_BAD:  # KCSAN (mm/kcsan.py)
        pa.kcsan.access(addr, n, True, fn, p, data)
    if p >= 0:
        mem.write(p, data)
        return
    if p == _KASAN_BAD:
        return
    ram_end = mem.nr_pages << PAGE_SHIFT
    pieces = _pieces(pa, addr, n, True)
    off = 0
    for paddr, ln in pieces:
        chunk = data[off:off + ln]
        off += ln
        if paddr < ram_end:
            mem.write(paddr, chunk)
            continue
        io = _io(pa)
        widths = [ln] if width == ln and len(pieces) == 1 else _io_widths(ln)
        k = 0
        for w in widths:
            io.io_write(paddr + k, w, int.from_bytes(chunk[k:k + w], "little"))
            k += w


def mem_read(addr: int, n: int) -> bytes:
    """Read ``n`` bytes of kernel memory at ``addr``."""
    return _read(addr, n)


def mem_write(addr: int, data: bytes | bytearray) -> None:
    """Write ``data`` to kernel memory at ``addr``."""
    _write(addr, data, 0, "mem_write")


def memset(addr: int, c: int, n: int) -> int:
    """memset(): fill ``n`` bytes with ``c``; returns ``addr``."""
    return do_memset("memset", addr, c, n)


def do_memset(fn: str, addr: int, c: int, n: int, names: tuple[str, str] = ("c", "n")) -> int:
    if addr.__class__ is not int or addr < 0 or addr >= ADDR_LIMIT:
        addr = _addr_arg(addr, fn)
    if n.__class__ is not int or n < 0:
        n = _len_arg(n, fn, names[1])
    if c.__class__ is not int and (not isinstance(c, int) or isinstance(c, bool)):
        raise KmemUsageError(f"{fn}: {names[0]}(={c!r}) must be an int (the fill byte)")
    p = _phys(addr, n, True)
    if p >= 0:
        pa = current_machine().mm
        if pa.kcsan is not None:  # KCSAN (mm/kcsan.py)
            pa.kcsan.access(addr, n, True, fn, p, bytes([c & 0xFF]) * min(n, 8))
        pa.mem.memset(p, c & 0xFF, n)
        return addr
    if p == _KASAN_BAD:
        return addr
    if n > _MEMSET_CHECK_ABOVE and n > current_machine().mem.nr_pages << PAGE_SHIFT:
        _fill_beyond_memory(addr, n)  # a size_t gone negative: the fill faults (an Oops)
    t = current_task()
    t.budget += 1  # _write counts this access again
    _write(addr, bytes([c & 0xFF]) * n)
    return addr


def _fill_beyond_memory(addr: int, n: int) -> None:
    """A fill of more bytes than the machine has (``memset(p, 0, (size_t)-2)`` without KASAN).

    No run of mapped addresses is that long (the direct map ends at ``high_memory``, and
    an unmapped gap follows it), so the kernel's ``rep stosl`` writes until it reaches an
    address nothing maps and oopses there. The model translates page by page, as a copy
    (``_pieces``) does, reporting what a copy reports (a free page on the way, then the page
    fault) before any byte is written; it never builds the fill. Were every page mapped
    (device memory ioremapped larger than RAM), it returns and the caller fills as usual.
    """
    pa = current_machine().mm
    a, end = addr, addr + n
    while a < end:
        step = min(end, (a | (PAGE_SIZE - 1)) + 1) - a
        _translate(pa, a & (ADDR_LIMIT - 1), step, True)  # (past 4 GiB the address wraps, as C's does)
        a += step


def memcpy(dst: int, src: int, n: int) -> int:
    """memcpy() between two kernel addresses; returns ``dst``."""
    return do_memcpy("memcpy", dst, src, n)


def do_memcpy(fn: str, dst: int, src: int, n: int, nname: str = "n") -> int:
    if dst.__class__ is not int or dst < 0 or dst >= ADDR_LIMIT:
        dst = _addr_arg(dst, fn, "dst")  # a bad destination is refused before the source is read
    if src.__class__ is not int or src < 0 or src >= ADDR_LIMIT:
        src = _addr_arg(src, fn, "src")
    if n.__class__ is not int or n < 0:
        n = _len_arg(n, fn, nname)
    data = _read(src, n, 0, fn)
    _write(dst, data, 0, fn)
    return dst


def do_mem_read(fn: str, addr: int, n: int) -> bytes:
    """mem_read() for a kernel function built on it: ``fn`` names it in a refusal and tells
    the data-race detector which accessor this is (this_cpu_read is a marked access)."""
    return _read(addr, n, 0, fn)


def do_mem_write(fn: str, addr: int, data: bytes | bytearray) -> None:
    """mem_write() for a kernel function built on it (see do_mem_read)."""
    _write(addr, data, 0, fn)


def _reader(size: int) -> Callable[[int], int]:
    name = f"read_u{size * 8}"

    def read(addr: int) -> int:
        return int.from_bytes(_read(addr, size, size, name), "little")
    read.__name__ = name
    read.__doc__ = f"Read a little-endian u{size * 8} at ``addr`` (device memory: one {size}-byte bus read)."
    return read


def do_read_int(fn: str, addr: int, size: int) -> int:
    """Load a little-endian int of ``size`` bytes at ``addr``; ``fn`` names the function in a
    refusal (atomic_read(v) says "atomic_read: addr(=...)")."""
    return int.from_bytes(_read(addr, size, size, fn), "little")


def do_write_int(fn: str, addr: int, value: int, size: int, vname: str = "value") -> None:
    """Store ``value`` as a little-endian int of ``size`` bytes at ``addr`` (device memory:
    one bus write of that width); ``fn`` and ``vname`` name the function and the value in
    a refusal (writel(b, addr) says "writel: b(=...)")."""
    if value.__class__ is not int:
        value_arg(fn, value, vname)
    _write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"), size, fn)


def _writer(size: int) -> Callable[[int, int], None]:
    name = f"write_u{size * 8}"

    def write(addr: int, value: int) -> None:
        do_write_int(name, addr, value, size)
    write.__name__ = name
    write.__doc__ = f"Write a little-endian u{size * 8} at ``addr`` (device memory: one {size}-byte bus write)."
    return write


def value_arg(fn: str, value: object, name: str = "value") -> None:
    """A value to store must be an int (not a bool: True is no u32); it is truncated to the width."""
    if not isinstance(value, int) or isinstance(value, bool):
        if not current_task():
            from ..runtime.errors import NotInTaskError
            raise NotInTaskError()
        raise KmemUsageError(f"{fn}: {name}(={value!r}) must be an int (truncated to the access width)")


read_u8, read_u16, read_u32, read_u64 = (_reader(s) for s in (1, 2, 4, 8))
write_u8, write_u16, write_u32, write_u64 = (_writer(s) for s in (1, 2, 4, 8))


__all__ = ["mem_read", "mem_write", "memset", "memcpy", "read_u8", "read_u16", "read_u32", "read_u64",
           "write_u8", "write_u16", "write_u32", "write_u64"]
#: The same names as a tuple: percpu_kmem/__init__.py still reads it.
ACCESS_API: Final = tuple(__all__)
