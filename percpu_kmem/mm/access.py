"""Reading and writing simulated kernel memory.

Every access is a scheduling point (a real CPU can be interrupted between two
memory accesses) and is checked: touching a page that is free is reported as a
use-after-free in KASAN's words; an address nothing maps is a page fault (an
Oops), never a Python crash. Addresses are kernel virtual addresses (ints).

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

from typing import TYPE_CHECKING, Any, Callable

from ..runtime.errors import KmemUsageError
from ..runtime.report import caller_site, skip_frames_of
from ..runtime.task import CURRENT
from .physmem import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, PG_compound, PG_reserved

if TYPE_CHECKING:
    from .page_alloc import PageAllocator


skip_frames_of(__file__)


def _page_is_free(mem: object, pfn: int) -> bool:
    """A page nobody holds: count 0 and not the tail of an allocated compound block."""
    count = mem.count  # type: ignore[attr-defined]
    if count[pfn] > 0 or mem.flags[pfn] & PG_reserved:  # type: ignore[attr-defined]
        return False
    if mem.flags[pfn] & PG_compound:  # type: ignore[attr-defined]
        return count[mem.private[pfn]] <= 0  # type: ignore[attr-defined, no-any-return]
    return True


def _fault(pa: PageAllocator, addr: int, size: int, write: bool) -> None:
    t = CURRENT.task
    file, line, func = caller_site(3)
    pa.m.report("page_fault", [
        f"BUG: unable to handle page fault for address: {addr:08x}",
        f"#PF: supervisor {'write' if write else 'read'} access in kernel mode",
        f"#PF: error_code(0x000{2 if write else 0}) - not-present page",
        f"Oops: 0000 [#1] SMP",
        f"EIP: {func} ({file}:{line})"], fatal=True)
    _ = t


def _uaf(pa: PageAllocator, addr: int, size: int, write: bool) -> None:
    t = CURRENT.task
    file, line, func = caller_site(3)
    pa.m.report("use_after_free", [
        f"BUG: KASAN: use-after-free in {func}",
        f"{'Write' if write else 'Read'} of size {size} at addr {addr:08x} by task {t.comm}/{t.pid}",
        "The buggy address belongs to a page that is free in the page allocator"],
        site=f"{file}:{line}")


_SLOW = -2  # _phys: the access is not inside the direct map; take the per-page path


def _phys(addr: int, size: int, write: bool) -> int:
    """Count the access as a scheduling point, check it, and translate it.

    Returns the physical address for an access inside the lowmem direct map,
    else ``_SLOW``: the caller then goes page by page (``_pieces``).
    """
    t = CURRENT.task
    t.budget -= 1
    if t.budget <= 0:
        t.machine._engine.decide(t, "mem_write" if write else "mem_read")
    pa = t.machine.mm
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise KmemUsageError(f"memory address must be an int, got {addr!r}")
    mem = pa.mem
    if PAGE_OFFSET <= addr and addr + size <= PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT):
        paddr = addr - PAGE_OFFSET
        _check_free(pa, paddr, addr, size, write)
        return paddr
    return _SLOW


def _check_free(pa: PageAllocator, paddr: int, addr: int, size: int, write: bool) -> None:
    mem = pa.mem
    first = paddr >> PAGE_SHIFT
    last = (paddr + max(size, 1) - 1) >> PAGE_SHIFT
    for pfn in range(first, last + 1):
        if _page_is_free(mem, pfn):
            _uaf(pa, addr, size, write)
            break


def _translate(pa: PageAllocator, addr: int, size: int, write: bool) -> int:
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


def _pieces(pa: PageAllocator, addr: int, n: int, write: bool) -> list[tuple[int, int]]:
    """(physical address, length) of each virtual page [addr, addr + n) touches.

    Every page is translated before any byte moves, so a fault part way leaves
    memory as it was (the model's accesses are all-or-nothing).
    """
    out = []
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


def _io(pa: PageAllocator) -> Any:
    io = getattr(pa, "iomem", None)
    if io is None:
        raise KmemUsageError("device memory accessed but no device memory exists on this machine")
    return io


def _read(addr: int, n: int, width: int = 0) -> bytes:
    """Read n bytes; ``width`` > 0: one bus access of that width when it is device memory."""
    p = _phys(addr, n, False)
    pa = CURRENT.task.machine.mm
    mem = pa.mem
    if p >= 0:
        return mem.read(p, n)  # type: ignore[no-any-return]
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


def _write(addr: int, data: bytes | bytearray, width: int = 0) -> None:
    """Write ``data``; device memory gets bus writes (see _read)."""
    n = len(data)
    p = _phys(addr, n, True)
    pa = CURRENT.task.machine.mm
    mem = pa.mem
    if p >= 0:
        mem.write(p, data)
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
    _write(addr, data)


def memset(addr: int, c: int, n: int) -> int:
    """memset(): fill ``n`` bytes with ``c``; returns ``addr``."""
    p = _phys(addr, n, True)
    if p >= 0:
        CURRENT.task.machine.mm.mem.memset(p, c & 0xFF, n)
        return addr
    t = CURRENT.task
    t.budget += 1  # _write counts this access again
    _write(addr, bytes([c & 0xFF]) * n)
    return addr


def memcpy(dst: int, src: int, n: int) -> int:
    """memcpy() between two kernel addresses; returns ``dst``."""
    data = mem_read(src, n)
    mem_write(dst, data)
    return dst


def _reader(size: int) -> Callable[[int], int]:
    def read(addr: int) -> int:
        return int.from_bytes(_read(addr, size, size), "little")
    read.__name__ = f"read_u{size * 8}"
    read.__doc__ = f"Read a little-endian u{size * 8} at ``addr`` (device memory: one {size}-byte bus read)."
    return read


def _writer(size: int) -> Callable[[int, int], None]:
    def write(addr: int, value: int) -> None:
        _write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"), size)
    write.__name__ = f"write_u{size * 8}"
    write.__doc__ = f"Write a little-endian u{size * 8} at ``addr`` (device memory: one {size}-byte bus write)."
    return write


read_u8, read_u16, read_u32, read_u64 = (_reader(s) for s in (1, 2, 4, 8))
write_u8, write_u16, write_u32, write_u64 = (_writer(s) for s in (1, 2, 4, 8))

ACCESS_API = ("mem_read", "mem_write", "memset", "memcpy", "read_u8", "read_u16", "read_u32", "read_u64",
              "write_u8", "write_u16", "write_u32", "write_u64")
_ = Any

__all__ = list(ACCESS_API)
