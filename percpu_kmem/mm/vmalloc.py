"""vmalloc/vfree, vmap/vunmap and ioremap/iounmap: the kernel's virtually contiguous areas.

Models mm/vmalloc.c and arch/i386/mm/ioremap.c of the 2.6.9-2.6.11 kernels, with
include/asm-i386/pgtable.h's address window:

* ``VMALLOC_START = (high_memory + 2*VMALLOC_OFFSET - 1) & ~(VMALLOC_OFFSET - 1)``
  (an 8 MB hole after the direct map), ``VMALLOC_END = PKMAP_BASE - 2*PAGE_SIZE``;
* ``__get_vm_area``: "We always allocate a guard page" (size += PAGE_SIZE), first
  fit over the address-sorted ``vmlist`` under ``vmlist_lock``; VM_IOREMAP areas
  aligned to ``1 << clamp(fls(size), PAGE_SHIFT, IOREMAP_MAX_ORDER)``;
* ``__vmalloc``: PAGE_ALIGN, NULL for 0 or more pages than the machine has, one
  ``alloc_page(gfp)`` per page (vmalloc: GFP_KERNEL | __GFP_HIGHMEM, so highmem
  pages are used), ``map_vm_area``; a failure part way frees what was taken;
* ``vfree``: BUG_ON(in_interrupt()), NULL is a no-op, the "Trying to vfree() ..."
  diagnostics, then every page back to the page allocator;
* ``__ioremap``: no RAM that is not PageReserved, the ISA hole 0xA0000-0xFFFFF is
  always mapped, ``iounmap`` of an unknown address says "iounmap: bad address";
* /proc/vmallocinfo and the meminfo lines VmallocTotal/Used/Chunk.

The page tables are one dict per machine, virtual page number -> physical frame
number, plugged into the memory accessors through ``m.mm.translate_hook``; device
memory is physical address space above RAM, served by devices (mm/mmio.py) registered
with :func:`~percpu_kmem.mm.mmio.register_io_device` (``m.mm.iomem``). Simplifications
are listed in docs/vmalloc.md.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..runtime.errors import InconsistentState, KmemUsageError
from ..runtime.kernel import BUG, in_interrupt, might_sleep
from ..runtime.locks import spin_lock, spin_lock_init, spin_unlock
from ..runtime.report import caller_site, relpath, warning_line
from ..runtime.task import current_task
from .context import current_machine, mm_caller_frame
from .gfp import GFP_HIGHMEM, GFP_KERNEL, GFP_NOWARN, GFP_ZERO, c_hex, check_gfp, gfp_names
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, PG_reserved, PG_vmalloc
from .mmio import IoDevice
from .physmem import Page

if TYPE_CHECKING:
    from ..machine import Machine
    from .page_alloc import PageAllocator


# -- include/asm-i386/pgtable.h, highmem.h --------------------------------------------------------
VMALLOC_OFFSET: Final = 8 * 1024 * 1024
#: PKMAP_BASE of a non-PAE HIGHMEM i386 kernel (LAST_PKMAP 1024, 4 MB PMDs): 0xff800000, as
#: every "virtual kernel memory layout" boot line prints it ("pkmap : 0xff800000 - 0xffc00000").
PKMAP_BASE: Final = 0xFF800000
#: an i386 ``unsigned long``: every virtual and physical address here stays below 2**32
ADDR_LIMIT: Final = 1 << 32

# -- include/linux/vmalloc.h (2.6) -----------------------------------------------------------
VM_IOREMAP: Final = 0x00000001  # ioremap() and friends
VM_ALLOC: Final = 0x00000002  # vmalloc()
VM_MAP: Final = 0x00000004  # vmap()ed pages
VM_USERMAP: Final = 0x00000008  # suitable for remap_vmalloc_range (vmalloc_user, 2.6.18)
IOREMAP_MAX_ORDER: Final = 7 + PAGE_SHIFT  # 128 pages

# -- pgprot values (include/asm-i386/pgtable.h): only their identity matters here -------------
_PAGE_PRESENT: Final = 0x001
_PAGE_RW: Final = 0x002
_PAGE_PWT: Final = 0x008
_PAGE_PCD: Final = 0x010
_PAGE_ACCESSED: Final = 0x020
_PAGE_DIRTY: Final = 0x040
_PAGE_GLOBAL: Final = 0x100
PAGE_KERNEL: Final = _PAGE_PRESENT | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_GLOBAL
PAGE_KERNEL_NOCACHE: Final = PAGE_KERNEL | _PAGE_PCD
PAGE_KERNEL_EXEC: Final = PAGE_KERNEL
#: the protections __vmalloc takes
_VMALLOC_PROTS: Final = frozenset({PAGE_KERNEL, PAGE_KERNEL_EXEC, PAGE_KERNEL_NOCACHE})

#: the low PCI/ISA area 2.6 __ioremap never remaps: "it's always mapped"
ISA_START: Final = 0xA0000
ISA_END: Final = 0x100000

_PAGE_MASK32: Final = (ADDR_LIMIT - 1) & ~(PAGE_SIZE - 1)


def _user_site() -> tuple[str, int, str]:
    """(file, line, function) of the first caller outside this module and the runtime:
    the driver code that called vmalloc/vfree/ioremap (what %pS of the caller shows)."""
    f = mm_caller_frame()
    if f is None:
        return ("<unknown>", 0, "<unknown>")
    return (relpath(f.f_code.co_filename), f.f_lineno, f.f_code.co_name)


def _caller_token(caller: tuple[str, int, str]) -> str:
    """The caller field of /proc/vmallocinfo as one whitespace-free token: ``func@file:line``.

    The kernel's ``%pS`` prints ``func+0x1c/0x40``, one token too (tools split the line on
    blanks); a file and line say more here. Whitespace in a path is escaped as octal,
    the way seq_escape writes a space in /proc/mounts (``\\040``).
    """
    file, ln, func = caller
    token = f"{func}@{file}:{ln}"
    if any(ch.isspace() for ch in token):
        token = "".join(f"\\{ord(ch):03o}" if ch.isspace() else ch for ch in token)
    return token


def fls(x: int) -> int:
    """fls(): the position of the most significant set bit, 1-based; 0 for 0."""
    return x.bit_length()


def _p(addr: int) -> str:
    """printk's %p of the 2.6 era on i386: eight zero-padded hex digits, no 0x."""
    return f"{addr & (ADDR_LIMIT - 1):08x}"


class vm_struct:
    """struct vm_struct: one area of the vmalloc window.

    ``size`` includes the guard page, as in the kernel (and /proc/vmallocinfo).
    ``pages`` are the pfns backing a VM_ALLOC/VM_MAP area, in virtual order.
    """

    __slots__ = ("addr", "size", "flags", "pages", "nr_pages", "phys_addr", "caller", "complete", "prot")

    def __init__(self, addr: int, size: int, flags: int, caller: tuple[str, int, str]) -> None:
        self.addr = addr
        self.size = size
        self.flags = flags
        self.pages: list[int] = []
        self.nr_pages = 0
        self.phys_addr = 0
        self.caller = caller
        self.complete = False  # map_vm_area done: every page of the area has its PTE
        self.prot = PAGE_KERNEL

    @property
    def end(self) -> int:
        return self.addr + self.size

    def __repr__(self) -> str:
        return f"<vm_struct {self.addr:#010x}-{self.end:#010x} flags={self.flags:#x} pages={self.nr_pages}>"


class VmallocSpace:
    """The vmalloc window of one machine (``m.vmalloc``): vmlist, page tables, devices."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        pa: PageAllocator = m.mm
        self.pa = pa
        mem = pa.mem
        self.high_memory = PAGE_OFFSET + (mem.max_low_pfn << PAGE_SHIFT)
        self.start = (self.high_memory + 2 * VMALLOC_OFFSET - 1) & ~(VMALLOC_OFFSET - 1)
        self.end = PKMAP_BASE - 2 * PAGE_SIZE
        self.ram_end = mem.nr_pages << PAGE_SHIFT
        self.vmlist: list[vm_struct] = []  # sorted by address
        self._addrs: list[int] = []  # the same, addresses only (bisect)
        #: how many areas at the head of vmlist lie back to back from VMALLOC_START: no gap
        #: there can take an area, so the first-fit scan starts after them (the same result
        #: as the kernel's scan from the head, without walking thousands of packed areas)
        self._packed = 0
        self.vmlist_lock = spin_lock_init("vmlist_lock")
        #: the kernel page tables of the window: virtual page number -> physical frame number
        self.ptes: dict[int, int] = {}
        self.devices: list[IoDevice] = []  # sorted by physical address
        self._dev_starts: list[int] = []
        self.nr_vmalloc_pages = 0  # pages vmalloc took from the page allocator and holds
        #: pfn -> how many areas (VM_ALLOC or VM_MAP) map it; such a page carries PG_vmalloc, so
        #: the page allocator refuses to free it while it is mapped
        self.mapped: dict[int, int] = {}

    def _mark(self, pfn: int) -> None:
        mapped = self.mapped
        n = mapped.get(pfn, 0)
        if not n:
            self.pa.mem.flags[pfn] |= PG_vmalloc
        mapped[pfn] = n + 1

    def _unmark(self, pfn: int) -> None:
        mapped = self.mapped
        n = mapped[pfn] - 1
        if n:
            mapped[pfn] = n
        else:
            del mapped[pfn]
            self.pa.mem.flags[pfn] &= ~PG_vmalloc

    # -- the page tables, as the MMU sees them ---------------------------------------------
    def translate(self, addr: int, size: int, write: bool) -> int | None:
        """The accessors' translate_hook: physical address of a piece within one page."""
        pfn = self.ptes.get(addr >> PAGE_SHIFT)
        if pfn is None:
            return None
        return (pfn << PAGE_SHIFT) | (addr & (PAGE_SIZE - 1))

    def _set_ptes(self, addr: int, pfns: list[int]) -> None:
        vpn = addr >> PAGE_SHIFT
        ptes = self.ptes
        for i, pfn in enumerate(pfns):
            ptes[vpn + i] = pfn

    def _clear_ptes(self, area: vm_struct) -> None:
        """unmap_vm_area: every PTE of the area, guard page included, is cleared."""
        vpn = area.addr >> PAGE_SHIFT
        ptes = self.ptes
        for i in range(area.size >> PAGE_SHIFT):
            ptes.pop(vpn + i, None)

    # -- devices -----------------------------------------------------------------------------
    def register_io_device(self, phys_addr: int, size: int, read_fn: Callable[[int, int], int] | None = None,
                           write_fn: Callable[[int, int, int], Any] | None = None, name: str = "") -> IoDevice:
        """Put a device's MMIO region at ``[phys_addr, phys_addr + size)`` of physical space.

        The region must lie above RAM, below 4 GB, and overlap no other device.
        Raises KmemUsageError otherwise.
        """
        for what, v in (("phys_addr", phys_addr), ("size", size)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise KmemUsageError(f"register_io_device: {what} must be an int, got {v!r}")
        if size <= 0:
            raise KmemUsageError(f"register_io_device: size(={size}) must be > 0")
        if phys_addr < self.ram_end:
            raise KmemUsageError(f"register_io_device: [{phys_addr:#x}, {phys_addr + size:#x}) overlaps RAM "
                                 f"[0, {self.ram_end:#x}): device memory lives above RAM")
        if phys_addr + size > ADDR_LIMIT:
            raise KmemUsageError(f"register_io_device: [{phys_addr:#x}, {phys_addr + size:#x}) is beyond 4 GB "
                                 "(i386 ioremap takes an unsigned long)")
        for fn, what in ((read_fn, "read_fn"), (write_fn, "write_fn")):
            if fn is not None and not callable(fn):
                raise KmemUsageError(f"register_io_device: {what} must be callable or None, got {fn!r}")
        i = bisect.bisect_right(self._dev_starts, phys_addr)
        for d in self.devices[max(0, i - 1):i + 1]:
            if d.phys_addr < phys_addr + size and phys_addr < d.end:
                raise KmemUsageError(f"register_io_device: [{phys_addr:#x}, {phys_addr + size:#x}) overlaps {d!r}")
        dev = IoDevice(phys_addr, size, read_fn, write_fn, name or f"iomem@{phys_addr:x}")
        self.devices.insert(i, dev)
        self._dev_starts.insert(i, phys_addr)
        return dev

    def unregister_io_device(self, dev: IoDevice) -> None:
        """Remove a device; refused (KmemUsageError) while an ioremap maps any of it."""
        if dev not in self.devices:
            raise KmemUsageError(f"unregister_io_device: {dev!r} is not registered")
        for a in self.vmlist:
            if a.flags & VM_IOREMAP and a.phys_addr < dev.end and dev.phys_addr < a.phys_addr + a.size - PAGE_SIZE:
                raise KmemUsageError(f"unregister_io_device: {dev!r} is still ioremapped at {a!r}")
        i = self.devices.index(dev)
        del self.devices[i]
        del self._dev_starts[i]

    def device_at(self, paddr: int) -> IoDevice | None:
        i = bisect.bisect_right(self._dev_starts, paddr) - 1
        if i >= 0 and paddr < self.devices[i].end:
            return self.devices[i]
        return None

    def _covered(self, start: int, end: int) -> bool:
        """Every byte of [start, end) belongs to some registered device."""
        a = start
        while a < end:
            d = self.device_at(a)
            if d is None:
                return False
            a = d.end
        return True

    def io_read(self, paddr: int, width: int) -> int:
        """A bus read of device memory (the accessors' ``iomem``); nothing there reads all-ones."""
        d = self.device_at(paddr)
        if d is None or paddr + width > d.end:
            return (1 << (8 * width)) - 1  # master abort: the PC bus floats high
        return d.read(paddr - d.phys_addr, width)

    def io_write(self, paddr: int, width: int, value: int) -> None:
        d = self.device_at(paddr)
        if d is None or paddr + width > d.end:
            return  # nobody claims the cycle
        d.write(paddr - d.phys_addr, width, value)

    # -- __get_vm_area / remove_vm_area ---------------------------------------------------------
    def get_vm_area(self, size: int, flags: int, caller: tuple[str, int, str], align: int = 1) -> vm_struct | None:
        """__get_vm_area(size, flags, VMALLOC_START, VMALLOC_END): first fit, guard page added.
        ``align`` (a power of two) is __vmalloc_node's; VM_IOREMAP areas get ioremap's own."""
        if flags & VM_IOREMAP:
            bit = fls(size)
            bit = IOREMAP_MAX_ORDER if bit > IOREMAP_MAX_ORDER else max(bit, PAGE_SHIFT)
            align = 1 << bit
        size += PAGE_SIZE  # We always allocate a guard page.
        start, end = self.start, self.end
        spin_lock(self.vmlist_lock)
        try:
            vmlist = self.vmlist
            k = self._packed
            prev_end = vmlist[k - 1].end if k else start
            while k < len(vmlist) and vmlist[k].addr == prev_end:
                prev_end = vmlist[k].end
                k += 1
            self._packed = k
            # The kernel's loop over the packed head ends with addr = ALIGN(its end, align).
            addr = _align(prev_end, align)
            pos = len(vmlist)
            for i in range(k, len(vmlist)):
                tmp = vmlist[i]
                if tmp.addr < addr:
                    if tmp.end >= addr:
                        addr = _align(tmp.end, align)
                    continue
                if addr + size <= tmp.addr:
                    pos = i
                    break
                addr = _align(tmp.end, align)
                if addr > end - size:
                    break
            if addr > end - size:
                area = None
            else:
                area = vm_struct(addr, size, flags, caller)
                self.vmlist.insert(pos, area)
                self._addrs.insert(pos, addr)
        finally:
            spin_unlock(self.vmlist_lock)
        if area is None:
            self.m.printk("allocation failed: out of vmalloc space - use vmalloc=<size> to increase size.",
                          "WARNING")
        return area

    def set_area_flags(self, addr: int, flags: int) -> None:
        """``__find_vm_area(addr)->flags |= flags`` under vmlist_lock (vmalloc_user)."""
        spin_lock(self.vmlist_lock)
        i = bisect.bisect_left(self._addrs, addr)
        if i < len(self._addrs) and self._addrs[i] == addr:
            self.vmlist[i].flags |= flags
        spin_unlock(self.vmlist_lock)

    def remove_vm_area(self, addr: int, refuse: int = 0) -> vm_struct | None:
        """Find the area starting at ``addr``, clear its PTEs and unlink it (under vmlist_lock).

        An area whose flags meet ``refuse`` is returned as it is, still in place (the caller
        reports the misuse); tell the two apart with ``area in self.vmlist``.
        """
        spin_lock(self.vmlist_lock)
        try:
            i = bisect.bisect_left(self._addrs, addr)
            if i == len(self._addrs) or self._addrs[i] != addr:
                return None
            area = self.vmlist[i]
            if area.flags & refuse:
                return area
            self._clear_ptes(area)
            del self.vmlist[i]
            if i < self._packed:
                self._packed = i
            del self._addrs[i]
            return area
        finally:
            spin_unlock(self.vmlist_lock)

    # -- __vmalloc / vmap / vfree -----------------------------------------------------------------
    def vmalloc(self, size: int, gfp: int, prot: int, caller: tuple[str, int, str], align: int = 1,
                node: int = -1) -> int | None:
        """__vmalloc: allocate the area, then one page at a time (from ``node`` first, -1: the
        calling CPU's), then map them all."""
        might_sleep()  # get_vm_area kmallocs the descriptor with GFP_KERNEL
        req, size = size, _page_align(size)
        if not size or (size >> PAGE_SHIFT) > self.pa.mem.nr_pages:
            return None
        area = self.get_vm_area(size, VM_ALLOC, caller, align)
        if area is None:
            return None
        area.prot = prot
        nr_pages = size >> PAGE_SHIFT
        pa = self.pa
        t = current_task()
        for _ in range(nr_pages):
            try:
                pfn = pa.alloc_pages(gfp, 0, node)
            except BaseException:
                # The task dies (OOM kill, on_bug="raise"): what it took goes back first.
                self.vunmap(area.addr, True, "vfree")
                raise
            if pfn is None:
                self._alloc_failed(t, area, gfp)
                return None
            area.pages.append(pfn)
            area.nr_pages += 1
            self.nr_vmalloc_pages += 1
            self._mark(pfn)
        self._map_vm_area(area)
        if self.m.kasan is not None or self.m.kmemleak is not None:
            self._debug_alloc(area.addr, req)
        ev = self.m.events
        if ev is not None:
            ev.record(t, "alloc", f"vmalloc({req}) = {area.addr:#x} ({nr_pages} pages)")
        return area.addr

    def _debug_alloc(self, addr: int, req: int) -> None:
        """KASAN unpoisons the ``req`` bytes asked for; kmemleak tracks the area."""
        if self.m.kasan is not None:
            self.m.kasan.vmalloc_alloc(addr, req)
        if self.m.kmemleak is not None:
            self.m.kmemleak.alloc(addr, req, "vmalloc")

    def _debug_free(self, addr: int) -> None:
        if self.m.kasan is not None:
            self.m.kasan.vmalloc_free(addr)
        if self.m.kmemleak is not None:
            self.m.kmemleak.free(addr)

    def _alloc_failed(self, t: Any, area: vm_struct, gfp: int) -> None:
        """__vmalloc's fail path: vfree what was taken, then warn_alloc (unless __GFP_NOWARN)."""
        taken = area.nr_pages * PAGE_SIZE
        self.vunmap(area.addr, True, "vfree")
        if not gfp & GFP_NOWARN:
            self.m.report("vmalloc_failure", [
                f"{t.comm}: vmalloc error: size {taken}, failed to allocate pages, "
                f"mode:{c_hex(gfp)}({gfp_names(gfp)}), nodemask=(null)"], site=f"vmalloc:{gfp:#x}")

    def _map_vm_area(self, area: vm_struct) -> None:
        """map_vm_area: install a PTE for every page (the guard page stays unmapped)."""
        spin_lock(self.vmlist_lock)  # stands in for init_mm.page_table_lock
        self._set_ptes(area.addr, area.pages)
        area.complete = True
        spin_unlock(self.vmlist_lock)

    def vmap(self, pfns: list[int], flags: int, prot: int, caller: tuple[str, int, str]) -> int | None:
        """vmap: map pages the caller owns; vunmap leaves them to the caller."""
        might_sleep()
        if not pfns:
            return None
        area = self.get_vm_area(len(pfns) << PAGE_SHIFT, flags | VM_MAP, caller)
        if area is None:
            return None
        area.prot = prot
        area.pages = list(pfns)
        area.nr_pages = len(pfns)
        for pfn in pfns:
            self._mark(pfn)
        self._map_vm_area(area)
        return area.addr

    def vunmap(self, addr: int | None, deallocate_pages: bool, what: str) -> None:
        """__vunmap: remove the area; give its pages back if it owns them."""
        if not addr:
            return
        if addr & (PAGE_SIZE - 1):
            self._bad_vfree(f"Trying to {what}() bad address ({_p(addr)})")
            return
        area = self.remove_vm_area(addr, 0 if deallocate_pages else VM_ALLOC)
        if area is None:
            self._bad_vfree(f"Trying to {what}() nonexistent vm area ({_p(addr)})")
            return
        if not deallocate_pages and area.flags & VM_ALLOC:
            # 2.6 unmapped it and leaked every page (vunmap never frees): refused here
            self._bad_vfree(f"Trying to {what}() a vmalloc() area ({_p(addr)}): its pages would be lost; "
                            "free it with vfree()")
            return
        for pfn in area.pages:
            self._unmark(pfn)
        if self.m.kasan is not None or self.m.kmemleak is not None:
            self._debug_free(addr)
        if area.flags & VM_ALLOC:
            t = current_task()
            for pfn in area.pages:
                self.pa.put_page(t, pfn, 0, False, "__free_page")
                self.nr_vmalloc_pages -= 1
        area.pages = []
        area.nr_pages = 0

    def vfree(self, addr: int | None) -> None:
        if in_interrupt():
            self._bug_on_in_interrupt("vfree")
            return
        ev = self.m.events
        if ev is not None and addr:
            ev.record(current_task(), "free", f"vfree({addr:#x})")
        self.vunmap(addr, True, "vfree")

    def _bad_vfree(self, line: str) -> None:
        t = current_task()
        file, ln, _ = _user_site()
        self.m.report("bad_vfree", [line, warning_line(t, file, ln)],
                      site=f"{file}:{ln}")

    def _bug_on_in_interrupt(self, what: str) -> None:
        """BUG_ON(in_interrupt()): reported at this line (the kernel's mm/vmalloc.c line);
        the area is left alone, so it can still be freed from process context."""
        here = caller_site(1)
        self.m.report("bug", [f"kernel BUG at {here[0]}:{here[1]}!",
                              f"BUG_ON(in_interrupt()): {what}() may not be called in interrupt context"],
                      site=f"{what}:in_interrupt")

    # -- __ioremap / iounmap ---------------------------------------------------------------------
    def ioremap(self, phys_addr: int, size: int, flags: int, caller: tuple[str, int, str]) -> int | None:
        """__ioremap of 2.6.11 i386, plus the model's rule that device space must be registered."""
        might_sleep()  # get_vm_area kmallocs with GFP_KERNEL
        last_addr = phys_addr + size - 1
        if not size or last_addr >= ADDR_LIMIT:
            return None  # "!size || last_addr < phys_addr": an unsigned long wraps
        if phys_addr >= ISA_START and last_addr < ISA_END:
            return PAGE_OFFSET + phys_addr  # Don't remap the low PCI/ISA area, it's always mapped
        mem = self.pa.mem
        if phys_addr < self.ram_end:
            first = phys_addr >> PAGE_SHIFT
            last = min(last_addr, self.ram_end - 1) >> PAGE_SHIFT
            flags_arr = mem.flags
            for pfn in range(first, last + 1):
                if not flags_arr[pfn] & PG_reserved:
                    return None  # RAM in use by the kernel: refused
        if last_addr >= self.ram_end and not self._covered(max(phys_addr, self.ram_end), last_addr + 1):
            return None  # the model's bus: nothing registered there
        offset = phys_addr & (PAGE_SIZE - 1)
        phys_addr &= ~(PAGE_SIZE - 1)
        size = _page_align(last_addr + 1) - phys_addr
        area = self.get_vm_area(size, VM_IOREMAP | (flags << 20), caller)
        if area is None:
            return None
        area.phys_addr = phys_addr
        area.prot = PAGE_KERNEL | flags
        base = phys_addr >> PAGE_SHIFT
        spin_lock(self.vmlist_lock)  # remap_area_pages under init_mm.page_table_lock
        self._set_ptes(area.addr, list(range(base, base + (size >> PAGE_SHIFT))))
        area.complete = True
        spin_unlock(self.vmlist_lock)
        return area.addr + offset

    def iounmap(self, addr: int | None) -> None:
        if addr is None or addr <= self.high_memory:
            return  # the ISA hole and the direct map were never remapped
        area = self.remove_vm_area(addr & _PAGE_MASK32, VM_ALLOC | VM_MAP)
        if area is None or not area.flags & VM_IOREMAP:
            # 2.6.11 unmapped a vmalloc()/vmap() area too, leaking its pages: refused here
            file, ln, _ = _user_site()
            lines = [f"iounmap: bad address {_p(addr)}"]
            if area is not None:
                kind = "a vmalloc()" if area.flags & VM_ALLOC else "a vmap()"
                undo = "vfree()" if area.flags & VM_ALLOC else "vunmap()"
                lines.append(f"{_p(addr)} is {kind} area, not an ioremap() mapping: undo it with {undo}")
            self.m.report("bad_iounmap", lines, site=f"{file}:{ln}")

    # -- views ---------------------------------------------------------------------------------------
    def _snapshot(self) -> list[vm_struct]:
        if not current_task():
            return list(self.vmlist)
        spin_lock(self.vmlist_lock)
        areas = list(self.vmlist)
        spin_unlock(self.vmlist_lock)
        return areas

    def vmallocinfo(self) -> str:
        """/proc/vmallocinfo: ``0x%08lx-0x%08lx %7ld`` caller pages= phys= flags, by address."""
        out = []
        mem = self.pa.mem
        numa = len(mem.nodes) > 1
        for a in self._snapshot():
            line = f"0x{a.addr:08x}-0x{a.end:08x} {a.size:7d}"
            line += f" {_caller_token(a.caller)}"
            if a.nr_pages and a.flags & VM_ALLOC:  # vmap() leaves the kernel's nr_pages at 0
                line += f" pages={a.nr_pages}"
            if a.phys_addr:
                line += f" phys=0x{a.phys_addr:08x}"
            if a.flags & VM_IOREMAP:
                line += " ioremap"
            if a.flags & VM_ALLOC:
                line += " vmalloc"
            if a.flags & VM_MAP:
                line += " vmap"
            if a.flags & VM_USERMAP:
                line += " user"
            if numa and a.flags & VM_ALLOC:
                counts: dict[int, int] = {}
                for pfn in list(a.pages):
                    nid = mem.pfn_to_zone(pfn).node
                    counts[nid] = counts.get(nid, 0) + 1
                line += "".join(f" N{nid}={n}" for nid, n in sorted(counts.items()))
            out.append(line + "\n")
        return "".join(out)

    def vmalloc_info(self) -> tuple[int, int, int]:
        """get_vmalloc_info: (total, used, largest free chunk), in bytes."""
        used = 0
        largest = 0
        prev_end = self.start
        for a in self._snapshot():
            used += a.size
            largest = max(largest, a.addr - prev_end)
            prev_end = a.end
        largest = max(largest, self.end - prev_end)
        return self.end - self.start, used, largest

    def meminfo_lines(self) -> list[tuple[str, int]]:
        total, used, chunk = self.vmalloc_info()
        return [("VmallocTotal", total >> 10), ("VmallocUsed", used >> 10), ("VmallocChunk", chunk >> 10)]

    # -- invariants -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Areas sorted and disjoint inside the window; every PTE belongs to exactly one page
        of one area; guard pages unmapped; vmalloc pages allocated and mapped once; counts match."""
        mem = self.pa.mem
        if [a.addr for a in self.vmlist] != self._addrs:
            raise InconsistentState("vmalloc: the address index does not match vmlist")
        ends = [self.start] + [a.end for a in self.vmlist[:self._packed]]
        if self._packed > len(self.vmlist) or any(a.addr != e for a, e in zip(self.vmlist, ends[:-1])):
            raise InconsistentState(f"vmalloc: the first {self._packed} areas are taken as back to back "
                                    "from VMALLOC_START, but they are not")
        prev_end = self.start
        expected: dict[int, int] = {}
        owned: dict[int, vm_struct] = {}
        nr_alloc = 0
        for a in self.vmlist:
            if a.addr & (PAGE_SIZE - 1) or a.size & (PAGE_SIZE - 1) or a.size < 2 * PAGE_SIZE:
                raise InconsistentState(f"vmalloc: {a!r} is not page aligned or has no room for a guard page")
            if a.addr < prev_end:
                raise InconsistentState(f"vmalloc: {a!r} overlaps the area before it (which ends at {prev_end:#x})")
            if a.end > self.end:
                raise InconsistentState(f"vmalloc: {a!r} goes past VMALLOC_END {self.end:#x}")
            prev_end = a.end
            npages = (a.size >> PAGE_SHIFT) - 1
            vpn = a.addr >> PAGE_SHIFT
            if a.nr_pages != len(a.pages):
                raise InconsistentState(f"vmalloc: {a!r} nr_pages {a.nr_pages} != {len(a.pages)} pages held")
            if a.flags & VM_IOREMAP:
                if a.complete:
                    base = a.phys_addr >> PAGE_SHIFT
                    for i in range(npages):
                        expected[vpn + i] = base + i
            else:
                if a.complete and a.nr_pages != npages:
                    raise InconsistentState(f"vmalloc: {a!r} maps {a.nr_pages} pages, its size says {npages}")
                for i, pfn in enumerate(a.pages):
                    if not mem.pfn_valid(pfn) or mem.count[pfn] <= 0:
                        raise InconsistentState(f"vmalloc: {a!r} page {i} (pfn {pfn:#x}) is not allocated")
                    if a.flags & VM_ALLOC:
                        nr_alloc += 1
                        if pfn in owned:
                            raise InconsistentState(f"vmalloc: pfn {pfn:#x} belongs to {a!r} and {owned[pfn]!r}")
                        owned[pfn] = a
                    if a.complete:
                        expected[vpn + i] = pfn
            if (vpn + npages) in self.ptes:
                raise InconsistentState(f"vmalloc: the guard page of {a!r} is mapped")
        maps: dict[int, int] = {}
        for a in self.vmlist:
            for pfn in a.pages:
                maps[pfn] = maps.get(pfn, 0) + 1
        if maps != self.mapped:
            bad = sorted(p for p in set(maps) | set(self.mapped) if maps.get(p) != self.mapped.get(p))
            raise InconsistentState(f"vmalloc: mapping counts disagree with the areas for pfns "
                                    f"{[hex(p) for p in bad[:4]]}")
        for pfn in maps:
            if not mem.flags[pfn] & PG_vmalloc:
                raise InconsistentState(f"vmalloc: pfn {pfn:#x} is mapped in the window but lacks PG_vmalloc")
        if mem.count_flag(PG_vmalloc) != len(maps):
            raise InconsistentState(f"vmalloc: {mem.count_flag(PG_vmalloc)} pages carry PG_vmalloc, "
                                    f"{len(maps)} are mapped in the window")
        if nr_alloc != self.nr_vmalloc_pages:
            raise InconsistentState(f"vmalloc: {nr_alloc} pages in VM_ALLOC areas, counter says "
                                    f"{self.nr_vmalloc_pages}")
        if self.ptes != expected:
            extra = sorted(set(self.ptes) - set(expected))
            missing = sorted(set(expected) - set(self.ptes))
            wrong = sorted(v for v in set(expected) & set(self.ptes) if expected[v] != self.ptes[v])
            raise InconsistentState(
                "vmalloc: page tables do not match the areas: "
                f"mapped outside any area {[hex(v << PAGE_SHIFT) for v in extra[:4]]}, "
                f"unmapped area pages {[hex(v << PAGE_SHIFT) for v in missing[:4]]}, "
                f"wrong frame {[hex(v << PAGE_SHIFT) for v in wrong[:4]]}")


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


def _page_align(size: int) -> int:
    return (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


# ---------------------------------------------------------------------------------------------
# Boot and the kernel-style interfaces (act on the machine of the calling task)
# ---------------------------------------------------------------------------------------------
def vmalloc_init(m: Machine) -> VmallocSpace:
    """Set up the vmalloc window of machine ``m`` at boot (after the page allocator); returns
    it (boot.py stores it as ``m.vmalloc``)."""
    space = VmallocSpace(m)
    m.mm.translate_hook = space.translate
    m.mm.iomem = space
    m.register_proc("vmallocinfo", space.vmallocinfo)
    m.register_checker("vmalloc", space.check)
    m.meminfo_hooks.append(space.meminfo_lines)
    return space


def _check_size(size: Any, what: str) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise KmemUsageError(f"{what}: size must be an int >= 0, got {size!r}")
    if size >= ADDR_LIMIT:
        return 0  # PAGE_ALIGN of an unsigned long this big is meaningless: the kernel says NULL
    return size


def _check_addr(addr: Any, what: str) -> int | None:
    if addr is None:
        return None
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise KmemUsageError(f"{what}() takes a kernel virtual address (int) or None, got {addr!r}")
    return addr


def __vmalloc(size: int, gfp_mask: int, prot: int) -> int | None:
    """Allocate ``size`` bytes of virtually contiguous memory, one page at a time.

    Args:
        size: bytes (rounded up to pages).
        gfp_mask: for the pages (the descriptor is always allocated GFP_KERNEL).
        prot: page protection: PAGE_KERNEL, PAGE_KERNEL_EXEC (the same bits on non-PAE
            i386, which has no NX) or PAGE_KERNEL_NOCACHE; anything else is refused.
    Returns:
        the area's address, or None for size 0, more pages than the machine has,
        no room in the vmalloc window, or a page allocation failure.
    Context: may sleep (process context only).
    """
    sp = current_machine().vmalloc
    check_gfp(gfp_mask, "__vmalloc")
    n = _check_size(size, "__vmalloc")
    if prot.__class__ is not int or prot not in _VMALLOC_PROTS:
        raise KmemUsageError(f"__vmalloc: prot(={prot!r}) must be PAGE_KERNEL ({PAGE_KERNEL:#x}), "
                             f"PAGE_KERNEL_EXEC ({PAGE_KERNEL_EXEC:#x}) or PAGE_KERNEL_NOCACHE "
                             f"({PAGE_KERNEL_NOCACHE:#x})")
    if n == 0 and size:
        might_sleep()
        return None
    return sp.vmalloc(n, gfp_mask, prot, _user_site())


def vmalloc(size: int) -> int | None:
    """__vmalloc(size, GFP_KERNEL | __GFP_HIGHMEM, PAGE_KERNEL): may use highmem pages."""
    sp = current_machine().vmalloc
    n = _check_size(size, "vmalloc")
    if n == 0 and size:
        might_sleep()
        return None
    return sp.vmalloc(n, GFP_KERNEL | GFP_HIGHMEM, PAGE_KERNEL, _user_site())


def vmalloc_32(size: int) -> int | None:
    """__vmalloc(size, GFP_KERNEL, PAGE_KERNEL): pages below 896 MB (32-bit addressable)."""
    sp = current_machine().vmalloc
    n = _check_size(size, "vmalloc_32")
    if n == 0 and size:
        might_sleep()
        return None
    return sp.vmalloc(n, GFP_KERNEL, PAGE_KERNEL, _user_site())


def __vmalloc_node(size: int, align: int, gfp_mask: int, node: int, caller: Any = None) -> int | None:
    """The form lib/test_vmalloc.c calls (5.8 and later): ``size`` bytes aligned to ``align``,
    pages taken with ``gfp_mask`` from ``node`` first (NUMA_NO_NODE, -1: the calling CPU's).

    ``align`` must be a power of two (``BUG_ON(!is_power_of_2(align))`` in alloc_vmap_area:
    reported, None); one no area of the window can meet gives None and the "out of vmalloc
    space" line, as any full window. ``caller`` is the kernel's ``__builtin_return_address``:
    accepted and unused (/proc/vmallocinfo names the Python caller).
    Context: may sleep (process context only).
    """
    m = current_machine()
    sp = m.vmalloc
    check_gfp(gfp_mask, "__vmalloc_node")
    n = _check_size(size, "__vmalloc_node")
    if not isinstance(align, int) or isinstance(align, bool) or align < 1:
        raise KmemUsageError(f"__vmalloc_node: align must be an int >= 1 (a power of two), got {align!r}")
    if not isinstance(node, int) or isinstance(node, bool) or not -1 <= node < len(m.mem.nodes):
        raise KmemUsageError(f"__vmalloc_node: node must be -1 (NUMA_NO_NODE) or a node of this machine "
                             f"(0-{len(m.mem.nodes) - 1}), got {node!r}")
    if align & (align - 1):
        BUG(f"BUG_ON(!is_power_of_2(align)): __vmalloc_node(size={size}, align={align})")
        return None
    if n == 0 and size:
        might_sleep()
        return None
    if align >= ADDR_LIMIT:  # no address of a 32-bit window is aligned so (but 0)
        might_sleep()
        m.printk("allocation failed: out of vmalloc space - use vmalloc=<size> to increase size.", "WARNING")
        return None
    return sp.vmalloc(n, gfp_mask, PAGE_KERNEL, _user_site(), align, node)


def vmalloc_node(size: int, node: int) -> int | None:
    """vmalloc() with its pages taken from ``node`` first (NUMA_NO_NODE, -1: the calling
    CPU's), falling back to the other nodes as alloc_pages_node() does. A node this
    machine does not have is a KmemUsageError. Context: may sleep."""
    m = current_machine()
    n = _check_size(size, "vmalloc_node")
    _check_node(m, node, "vmalloc_node")
    if n == 0 and size:
        might_sleep()
        return None
    return m.vmalloc.vmalloc(n, GFP_KERNEL | GFP_HIGHMEM, PAGE_KERNEL, _user_site(), 1, node)


def vzalloc_node(size: int, node: int) -> int | None:
    """vmalloc_node(), zeroed."""
    m = current_machine()
    n = _check_size(size, "vzalloc_node")
    _check_node(m, node, "vzalloc_node")
    if n == 0 and size:
        might_sleep()
        return None
    return m.vmalloc.vmalloc(n, GFP_KERNEL | GFP_HIGHMEM | GFP_ZERO, PAGE_KERNEL, _user_site(), 1, node)


def _check_node(m: Machine, node: Any, what: str) -> None:
    if not isinstance(node, int) or isinstance(node, bool) or not -1 <= node < len(m.mem.nodes):
        raise KmemUsageError(f"{what}: node must be -1 (NUMA_NO_NODE) or a node of this machine "
                             f"(0-{len(m.mem.nodes) - 1}), got {node!r}")


def is_vmalloc_addr(x: Any) -> bool:
    """True when ``x`` is an address in the vmalloc window (<linux/mm.h>; 2.6.25 and
    later): what kvfree() asks to choose between vfree() and kfree(). NULL (None) is not."""
    if x is None:
        return False
    if not isinstance(x, int) or isinstance(x, bool):
        raise KmemUsageError(f"is_vmalloc_addr() takes an address (int), got {x!r}")
    sp = current_machine().vmalloc
    return sp.start <= x < sp.end


def vzalloc(size: int) -> int | None:
    """__vmalloc(size, GFP_KERNEL | __GFP_HIGHMEM | __GFP_ZERO, PAGE_KERNEL): vmalloc, zeroed
    (2.6.37 and later; here for the code that uses it)."""
    sp = current_machine().vmalloc
    n = _check_size(size, "vzalloc")
    if n == 0 and size:
        might_sleep()
        return None
    return sp.vmalloc(n, GFP_KERNEL | GFP_HIGHMEM | GFP_ZERO, PAGE_KERNEL, _user_site())


def vmalloc_user(size: int) -> int | None:
    """Zeroed vmalloc memory that may be mapped to user space (2.6.18): ``__vmalloc(size,
    GFP_KERNEL | __GFP_HIGHMEM | __GFP_ZERO, PAGE_KERNEL)``, then VM_USERMAP set on the area
    under vmlist_lock (/proc/vmallocinfo says ``user``). The model has no user mappings, so
    nothing else tells it apart from vzalloc."""
    sp = current_machine().vmalloc
    n = _check_size(size, "vmalloc_user")
    if n == 0 and size:
        might_sleep()
        return None
    addr = sp.vmalloc(n, GFP_KERNEL | GFP_HIGHMEM | GFP_ZERO, PAGE_KERNEL, _user_site())
    if addr is not None:
        sp.set_area_flags(addr, VM_USERMAP)
    return addr


def vmalloc_exec(size: int) -> int | None:
    """__vmalloc(size, GFP_KERNEL | __GFP_HIGHMEM, PAGE_KERNEL_EXEC)."""
    sp = current_machine().vmalloc
    n = _check_size(size, "vmalloc_exec")
    if n == 0 and size:
        might_sleep()
        return None
    return sp.vmalloc(n, GFP_KERNEL | GFP_HIGHMEM, PAGE_KERNEL_EXEC, _user_site())


def vfree(addr: int | None) -> None:
    """Free an area from vmalloc: unmap it and give every page back. None is a no-op.

    Context: process context; from an interrupt it is BUG_ON(in_interrupt()):
    reported, and nothing is freed.
    """
    sp = current_machine().vmalloc
    sp.vfree(_check_addr(addr, "vfree"))


def vmap(pages: list[Page], count: int, flags: int = VM_MAP, prot: int = PAGE_KERNEL) -> int | None:
    """Map ``count`` pages the caller owns into one virtually contiguous area.

    ``flags`` is VM_MAP (or 0): VM_IOREMAP and VM_ALLOC describe areas that vmap does
    not make (ioremap's physical mapping, vfree's page ownership); 2.6 took them and
    made an area the rest of the kernel misreads, today's vmap() refuses such flags
    with a WARN_ON_ONCE. The model reports them and returns None.
    While mapped, the pages cannot be freed (a "Bad page state" report): vunmap() first.

    Returns the address, or None. Context: may sleep.
    """
    sp = current_machine().vmalloc
    if not isinstance(pages, (list, tuple)):
        raise KmemUsageError(f"vmap() takes a list of struct pages, got {pages!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0 or count > len(pages):
        raise KmemUsageError(f"vmap: count(={count!r}) must be an int within [0, len(pages)={len(pages)}]")
    for what, v in (("flags", flags), ("prot", prot)):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < ADDR_LIMIT:
            raise KmemUsageError(f"vmap: {what} must be an unsigned long (an int), got {v!r}")
    pfns = []
    for p in pages[:count]:
        if not isinstance(p, Page):
            raise KmemUsageError(f"vmap() takes struct pages (from alloc_pages), got {p!r}")
        if p.count <= 0:
            raise KmemUsageError(f"vmap() of pfn {p.pfn:#x}, a page nobody holds")
        pfns.append(p.pfn)
    if flags & ~VM_MAP:
        might_sleep()
        t = current_task()
        file, ln, _ = _user_site()
        sp.m.report("bad_vmap", [
            f"vmap: illegal flags {flags:#x}: only VM_MAP ({VM_MAP:#x}) may be passed "
            f"(VM_IOREMAP and VM_ALLOC describe areas vmap() does not make)",
            warning_line(t, file, ln)], site=f"{file}:{ln}")
        return None
    return sp.vmap(pfns, flags, prot, _user_site())


def vunmap(addr: int | None) -> None:
    """Remove a vmap() area; the pages stay the caller's. Context: not in interrupt."""
    sp = current_machine().vmalloc
    if in_interrupt():
        sp._bug_on_in_interrupt("vunmap")
        return
    sp.vunmap(_check_addr(addr, "vunmap"), False, "vunmap")


def _vmalloc_to_page(addr: int, fn: str) -> Page | None:
    sp = current_machine().vmalloc
    a = _check_addr(addr, fn)
    if a is None:
        return None
    pfn = sp.ptes.get(a >> PAGE_SHIFT)
    if pfn is None or not sp.pa.mem.pfn_valid(pfn):
        return None
    return sp.pa.mem.page(pfn)


def vmalloc_to_page(addr: int) -> Page | None:
    """The struct page behind a vmalloc address (None if nothing maps it)."""
    return _vmalloc_to_page(addr, "vmalloc_to_page")


def vmalloc_to_pfn(addr: int) -> int | None:
    """The pfn behind a vmalloc address (None if nothing maps it)."""
    p = _vmalloc_to_page(addr, "vmalloc_to_pfn")
    return None if p is None else p.pfn


def _check_phys(offset: Any, size: Any, what: str) -> None:
    for n, v in (("offset", offset), ("size", size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise KmemUsageError(f"{what}: {n} must be an int >= 0, got {v!r}")
    if offset >= ADDR_LIMIT:
        raise KmemUsageError(f"{what}: physical address {offset:#x} does not fit an i386 unsigned long")


def __ioremap(offset: int, size: int, flags: int) -> int | None:
    """Map device memory at physical ``offset`` into the vmalloc window.

    Returns the virtual address of ``offset`` (with its offset inside the page), or
    None: size 0, RAM that is not PageReserved, physical space no device claims,
    or no room. Context: may sleep.
    """
    return _ioremap("__ioremap", offset, size, flags)


def _ioremap(fn: str, offset: Any, size: Any, flags: Any) -> int | None:
    sp = current_machine().vmalloc
    _check_phys(offset, size, fn)
    if flags.__class__ is not int or flags < 0:
        from ..runtime.validate import check_int
        check_int(fn, "flags", flags, 0, what="an int of _PAGE_* bits")
    return sp.ioremap(offset, size, flags, _user_site())


def ioremap(offset: int, size: int) -> int | None:
    """__ioremap(offset, size, 0)."""
    return _ioremap("ioremap", offset, size, 0)


def ioremap_nocache(offset: int, size: int) -> int | None:
    """__ioremap(offset, size, _PAGE_PCD): uncached (the model has no caches to bypass)."""
    return _ioremap("ioremap_nocache", offset, size, _PAGE_PCD)


def iounmap(addr: int | None) -> None:
    """Remove an ioremap() mapping; an address no area starts at is "iounmap: bad address"."""
    sp = current_machine().vmalloc
    sp.iounmap(_check_addr(addr, "iounmap"))


__all__ = ["vmalloc", "vzalloc", "vmalloc_user", "vmalloc_32", "vmalloc_exec", "__vmalloc", "__vmalloc_node",
           "vmalloc_node", "vzalloc_node", "is_vmalloc_addr", "vfree", "vmap", "vunmap",
           "vmalloc_to_page", "vmalloc_to_pfn", "ioremap", "ioremap_nocache", "__ioremap", "iounmap",
           "VM_IOREMAP", "VM_ALLOC", "VM_MAP", "VM_USERMAP", "PAGE_KERNEL", "PAGE_KERNEL_NOCACHE", "PAGE_KERNEL_EXEC",
           "VMALLOC_OFFSET", "IOREMAP_MAX_ORDER"]
