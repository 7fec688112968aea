"""Reading and writing simulated kernel memory.

Every access is a scheduling point (a real CPU can be interrupted between two
memory accesses) and is checked: touching a page that is free is reported as a
use-after-free in KASAN's words; an address nothing maps is a page fault (an
Oops), never a Python crash. Addresses are kernel virtual addresses (ints).
Other layers (vmalloc, ioremap) add address ranges through ``add_mapping``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..runtime.errors import KmemUsageError
from ..runtime.report import caller_site, skip_frames_of
from ..runtime.task import CURRENT
from .physmem import PAGE_OFFSET, PAGE_SHIFT, PG_compound, PG_reserved

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


def _phys(addr: int, size: int, write: bool) -> int:
    """Translate and check one access; returns the physical address."""
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
    else:
        hook = pa.translate_hook
        paddr = hook(addr, size, write) if hook is not None else None
        if paddr is None:
            _fault(pa, addr, size, write)
            return -1
        if paddr < 0:
            return paddr  # handled (device memory)
    first = paddr >> PAGE_SHIFT
    last = (paddr + max(size, 1) - 1) >> PAGE_SHIFT
    for pfn in range(first, last + 1):
        if _page_is_free(mem, pfn):
            _uaf(pa, addr, size, write)
            break
    return paddr


def mem_read(addr: int, n: int) -> bytes:
    """Read ``n`` bytes of kernel memory at ``addr``."""
    p = _phys(addr, n, False)
    return CURRENT.task.machine.mm.mem.read(p, n)  # type: ignore[no-any-return]


def mem_write(addr: int, data: bytes | bytearray) -> None:
    """Write ``data`` to kernel memory at ``addr``."""
    p = _phys(addr, len(data), True)
    CURRENT.task.machine.mm.mem.write(p, data)


def memset(addr: int, c: int, n: int) -> int:
    """memset(): fill ``n`` bytes with ``c``; returns ``addr``."""
    p = _phys(addr, n, True)
    CURRENT.task.machine.mm.mem.memset(p, c & 0xFF, n)
    return addr


def memcpy(dst: int, src: int, n: int) -> int:
    """memcpy() between two kernel addresses; returns ``dst``."""
    data = mem_read(src, n)
    mem_write(dst, data)
    return dst


def _reader(size: int) -> Callable[[int], int]:
    def read(addr: int) -> int:
        p = _phys(addr, size, False)
        return int.from_bytes(CURRENT.task.machine.mm.mem.read(p, size), "little")
    read.__name__ = f"read_u{size * 8}"
    read.__doc__ = f"Read a little-endian u{size * 8} at ``addr``."
    return read


def _writer(size: int) -> Callable[[int, int], None]:
    def write(addr: int, value: int) -> None:
        p = _phys(addr, size, True)
        CURRENT.task.machine.mm.mem.write(p, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
    write.__name__ = f"write_u{size * 8}"
    write.__doc__ = f"Write a little-endian u{size * 8} at ``addr``."
    return write


read_u8, read_u16, read_u32, read_u64 = (_reader(s) for s in (1, 2, 4, 8))
write_u8, write_u16, write_u32, write_u64 = (_writer(s) for s in (1, 2, 4, 8))

ACCESS_API = ("mem_read", "mem_write", "memset", "memcpy", "read_u8", "read_u16", "read_u32", "read_u64",
              "write_u8", "write_u16", "write_u32", "write_u64")
_ = Any

__all__ = list(ACCESS_API)
