"""kvmalloc() and kvfree(): kmalloc first, vmalloc when physically contiguous memory is
short (mm/util.c, 4.12 and later; the model's kmalloc and vmalloc are 2.6's).

Kept, as kvmalloc_node() does it:

* flags that are not GFP_KERNEL-compatible (``(flags & GFP_KERNEL) != GFP_KERNEL``:
  GFP_ATOMIC, GFP_NOFS, GFP_NOIO) get kmalloc only: vmalloc allocates its page tables
  with GFP_KERNEL, so it cannot honour them;
* above a page, the kmalloc attempt is made with __GFP_NOWARN | __GFP_NORETRY (no
  allocation-failure splat, no retrying reclaim: the fallback is cheap); a request of a
  page or less is kmalloc only (the page allocator does not fail such orders for
  GFP_KERNEL);
* the fallback is vmalloc with the caller's flags and __GFP_HIGHMEM (``__GFP_ZERO``
  carried: kvzalloc), from ``node`` first;
* kvmalloc_array()/kvcalloc(): None (NULL) when ``n * size`` overflows size_t (32 bits);
* kvfree() frees by address: vfree() for one in the vmalloc window (is_vmalloc_addr),
  kfree() otherwise; kvfree(NULL) does nothing. Like vfree, it may sleep for a vmalloc'ed
  buffer (the model's vfree is process-context only).

Simplified: __GFP_RETRY_MAYFAIL does not exist in this era's GFP bits (__GFP_REPEAT is
left as the caller gave it); the size > INT_MAX WARN of 5.15 is left out (kmalloc's
own limit, KMALLOC_MAX_SIZE, answers NULL first and the vmalloc window is smaller).
"""

from __future__ import annotations

from typing import Final

from ..runtime.errors import KmemUsageError
from .context import current_machine
from .gfp import GFP_BITS_MASK, GFP_HIGHMEM, GFP_KERNEL, GFP_NORETRY, GFP_NOWARN, GFP_ZERO
from .kmalloc import SIZE_MAX, kfree, kmalloc
from .layout import PAGE_SIZE
from .slab import check_node
from .vmalloc import __vmalloc_node, vfree

#: the bits no GFP mask has
_NOT_GFP: Final = ~GFP_BITS_MASK


def _check(size: object, flags: object, what: str) -> None:
    if type(size) is not int or size < 0:
        raise KmemUsageError(f"{what}: size must be an int >= 0, got {size!r}")
    if type(flags) is not int or flags & _NOT_GFP:
        raise KmemUsageError(f"{what}: flags must be GFP_* bits (an int), got {flags!r}")


def _kvmalloc(size: int, flags: int, node: int) -> int | None:
    if flags & GFP_KERNEL != GFP_KERNEL:
        return kmalloc(size, flags)
    kflags = flags
    if size > PAGE_SIZE:
        kflags |= GFP_NOWARN | GFP_NORETRY
    p = kmalloc(size, kflags)
    if p is not None or size <= PAGE_SIZE:
        return p
    return __vmalloc_node(size, 1, flags | GFP_HIGHMEM, node)


def kvmalloc_node(size: int, flags: int, node: int) -> int | None:
    """kvmalloc() preferring ``node`` (NUMA_NO_NODE, -1: no preference; a hint to kmalloc,
    the vmalloc fallback's pages come from it first)."""
    _check(size, flags, "kvmalloc_node")
    check_node(node, "kvmalloc_node")
    return _kvmalloc(size, flags, node)


def kvmalloc(size: int, flags: int) -> int | None:
    """``size`` bytes from kmalloc, or from vmalloc when kmalloc cannot (see the module)."""
    _check(size, flags, "kvmalloc")
    current_machine()
    return _kvmalloc(size, flags, -1)


def kvzalloc(size: int, flags: int) -> int | None:
    """kvmalloc() with __GFP_ZERO."""
    _check(size, flags, "kvzalloc")
    current_machine()
    return _kvmalloc(size, flags | GFP_ZERO, -1)


def kvmalloc_array(n: int, size: int, flags: int) -> int | None:
    """kvmalloc() of ``n`` elements of ``size`` bytes; None on a size_t overflow."""
    if type(n) is not int or n < 0:
        raise KmemUsageError(f"kvmalloc_array: n must be an int >= 0, got {n!r}")
    _check(size, flags, "kvmalloc_array")
    current_machine()
    if n * size > SIZE_MAX:
        return None
    return _kvmalloc(n * size, flags, -1)


def kvcalloc(n: int, size: int, flags: int) -> int | None:
    """kvmalloc_array() with __GFP_ZERO."""
    if type(n) is not int or n < 0:
        raise KmemUsageError(f"kvcalloc: n must be an int >= 0, got {n!r}")
    _check(size, flags, "kvcalloc")
    current_machine()
    if n * size > SIZE_MAX:
        return None
    return _kvmalloc(n * size, flags | GFP_ZERO, -1)


def kvfree(addr: int | None) -> None:
    """Free memory from kvmalloc() and its family: vfree() or kfree() by address."""
    if addr is None or (addr.__class__ is int and addr == 0):
        return
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise KmemUsageError(f"kvfree: addr must be an address (int) from kvmalloc, or None, got {addr!r}")
    sp = current_machine().vmalloc
    if sp.start <= addr < sp.end:
        vfree(addr)
    else:
        kfree(addr)


__all__ = ["kvmalloc", "kvmalloc_node", "kvzalloc", "kvmalloc_array", "kvcalloc", "kvfree"]
