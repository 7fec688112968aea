"""MMIO: simulated devices' register windows and the accessors drivers use on them.

A device is a region of physical address space above RAM (an ``IoDevice``); a driver
maps it with ioremap() (mm/vmalloc.py keeps the registry and the mappings) and talks to
it with readb/readw/readl and writeb/writew/writel, the ``__raw_`` forms,
memcpy_fromio/memcpy_toio and memset_io, as include/asm-i386/io.h gives them.

Kept: on i386 an MMIO access is a plain load or store through the mapping, so the
accessors are the memory accessors (mm/access.py) with the kernel's argument order
(value first for the writes); every bus access reaches the device's ``read_fn`` /
``write_fn`` with its offset and width (1, 2 or 4 bytes); a device without them acts
as device RAM (a frame buffer), zero until written. Simplified: no write combining,
posting, barriers or I/O ports (inb/outb).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..runtime.errors import KmemUsageError
from .access import do_memcpy, do_memset, do_read_int, do_write_int
from .layout import PAGE_SHIFT, PAGE_SIZE


class IoDevice:
    """A simulated device's MMIO region of physical address space.

    ``read_fn(offset, width) -> int`` and ``write_fn(offset, width, value)`` see every
    bus access (width 1, 2 or 4; offset from the region's start). Left as None, the
    region behaves as device RAM (a frame buffer), zero at first.
    """

    def __init__(self, phys_addr: int, size: int, read_fn: Callable[[int, int], int] | None,
                 write_fn: Callable[[int, int, int], Any] | None, name: str) -> None:
        self.phys_addr = phys_addr
        self.size = size
        self.read_fn = read_fn
        self.write_fn = write_fn
        self.name = name
        #: device RAM, page by page as it is written (a 1 GB BAR costs nothing until used)
        self.backing: dict[int, bytearray] | None = {} if read_fn is None or write_fn is None else None
        self.reads = 0
        self.writes = 0

    @property
    def end(self) -> int:
        return self.phys_addr + self.size

    def read(self, off: int, width: int) -> int:
        self.reads += 1
        if self.read_fn is not None:
            return int(self.read_fn(off, width)) & ((1 << (8 * width)) - 1)
        return int.from_bytes(self.peek(off, width), "little")

    def write(self, off: int, width: int, value: int) -> None:
        self.writes += 1
        if self.write_fn is not None:
            self.write_fn(off, width, value)
            return
        self.poke(off, value.to_bytes(width, "little"))

    def peek(self, off: int, n: int) -> bytes:
        """The device RAM's bytes (no bus access counted); unwritten bytes read 0."""
        assert self.backing is not None, "peek() of a device with its own read_fn"
        out = bytearray()
        for i in range(off, off + n):
            page = self.backing.get(i >> PAGE_SHIFT)
            out.append(page[i & (PAGE_SIZE - 1)] if page is not None else 0)
        return bytes(out)

    def poke(self, off: int, data: bytes) -> None:
        assert self.backing is not None, "poke() of a device with its own write_fn"
        for k, byte in enumerate(data):
            i = off + k
            page = self.backing.get(i >> PAGE_SHIFT)
            if page is None:
                page = self.backing[i >> PAGE_SHIFT] = bytearray(PAGE_SIZE)
            page[i & (PAGE_SIZE - 1)] = byte

    def __repr__(self) -> str:
        return f"<IoDevice {self.name} {self.phys_addr:#010x}-{self.end:#010x}>"


def _space_of(m: Any, fn: str) -> Any:
    """The vmalloc window of machine ``m``, which keeps its devices."""
    space = getattr(m, "vmalloc", None)
    if space is None or not hasattr(space, "register_io_device"):
        raise KmemUsageError(f"{fn}: {m!r} is not a booted Machine")
    return space


def register_io_device(m: Any, phys_addr: int, size: int, read_fn: Callable[[int, int], int] | None = None,
                       write_fn: Callable[[int, int, int], Any] | None = None, name: str = "") -> IoDevice:
    """Plain-Python API: give machine ``m`` a device with an MMIO region (the vmalloc window keeps the registry).

    ``read_fn(offset, width) -> int`` and ``write_fn(offset, width, value)`` are called for
    every bus access a driver makes through an ioremap() mapping (readl, writel,
    memcpy_fromio, ...). Either may be None: the region then acts as device RAM.
    """
    return _space_of(m, "register_io_device").register_io_device(phys_addr, size, read_fn, write_fn, name)


def unregister_io_device(m: Any, dev: IoDevice) -> None:
    _space_of(m, "unregister_io_device").unregister_io_device(dev)


# -- include/asm-i386/io.h: on i386, MMIO is plain memory access through the mapping ----------
def _mmio_reader(name: str, size: int) -> Callable[[int], int]:
    """readb/readw/readl and the __raw_ forms: one bus read of ``size`` bytes at ``addr``.

    Functions of their own (not read_u8/16/32) so that the access carries its name: a
    refusal names it ("readl: addr(=...)"), and KCSAN sees a marked access, as it sees the
    MMIO writes (the kernel's accessors are volatile asm, which KCSAN does not treat as a
    plain access): a driver's readl racing a writel of the same register is not a data race.
    """

    def read(addr: int) -> int:
        return do_read_int(name, addr, size)
    read.__name__ = read.__qualname__ = name
    read.__doc__ = f"{name}(addr): one {size}-byte bus read."
    return read


readb, readw, readl = _mmio_reader("readb", 1), _mmio_reader("readw", 2), _mmio_reader("readl", 4)
__raw_readb, __raw_readw, __raw_readl = (_mmio_reader("__raw_readb", 1), _mmio_reader("__raw_readw", 2),
                                         _mmio_reader("__raw_readl", 4))


def _mmio_writer(name: str, size: int) -> Callable[[int, int], None]:
    """writeb/writew/writel and the __raw_ forms: (value, addr), the kernel's order; a
    refusal names the function itself ("writel: addr(=...)")."""

    def write(b: int, addr: int) -> None:
        do_write_int(name, addr, b, size, "b")
    write.__name__ = write.__qualname__ = name
    write.__doc__ = f"{name}(value, addr): one {size}-byte bus write (the kernel's argument order, value first)."
    return write


writeb, writew, writel = _mmio_writer("writeb", 1), _mmio_writer("writew", 2), _mmio_writer("writel", 4)
__raw_writeb, __raw_writew, __raw_writel = (_mmio_writer("__raw_writeb", 1), _mmio_writer("__raw_writew", 2),
                                            _mmio_writer("__raw_writel", 4))


def memcpy_fromio(dst: int, src: int, count: int) -> None:
    """__memcpy(dst, src, count) from device memory: dword accesses, then a word, then a byte."""
    do_memcpy("memcpy_fromio", dst, src, count, "count")


def memcpy_toio(dst: int, src: int, count: int) -> None:
    """__memcpy(dst, src, count) to device memory."""
    do_memcpy("memcpy_toio", dst, src, count, "count")


def memset_io(addr: int, val: int, count: int) -> None:
    """memset() on device memory."""
    do_memset("memset_io", addr, val, count, ("val", "count"))


__all__ = ["IoDevice", "register_io_device", "unregister_io_device",
           "readb", "readw", "readl", "writeb", "writew", "writel",
           "__raw_readb", "__raw_readw", "__raw_readl", "__raw_writeb", "__raw_writew", "__raw_writel",
           "memcpy_fromio", "memcpy_toio", "memset_io"]
