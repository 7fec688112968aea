"""GFP flags of the 2.6 era (include/linux/gfp.h, 2.6.11 values), as plain ints.

Sleeping rule of the era: an allocation may sleep iff ``__GFP_WAIT`` is set
(GFP_KERNEL, GFP_USER, GFP_NOFS, GFP_NOIO); GFP_ATOMIC never sleeps.
"""

from __future__ import annotations

from typing import Final

__GFP_DMA: Final = 0x01
__GFP_HIGHMEM: Final = 0x02
__GFP_WAIT: Final = 0x10  # can wait and reschedule
__GFP_HIGH: Final = 0x20  # should access emergency pools
__GFP_IO: Final = 0x40  # can start physical IO
__GFP_FS: Final = 0x80  # can call down to low-level FS
__GFP_COLD: Final = 0x100  # cache-cold page required
__GFP_NOWARN: Final = 0x200  # suppress page allocation failure warning
__GFP_REPEAT: Final = 0x400  # retry the allocation; might fail
__GFP_NOFAIL: Final = 0x800  # retry for ever; cannot fail
__GFP_NORETRY: Final = 0x1000  # do not retry
__GFP_NO_GROW: Final = 0x2000  # slab internal usage
__GFP_COMP: Final = 0x4000  # add compound page metadata
__GFP_ZERO: Final = 0x8000  # return zeroed page on success
__GFP_BITS_SHIFT: Final = 16
__GFP_BITS_MASK: Final = (1 << __GFP_BITS_SHIFT) - 1
GFP_ZONEMASK: Final = 0x03

GFP_ATOMIC: Final = __GFP_HIGH
GFP_NOIO: Final = __GFP_WAIT
GFP_NOFS: Final = __GFP_WAIT | __GFP_IO
GFP_KERNEL: Final = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_USER: Final = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_HIGHUSER: Final = __GFP_WAIT | __GFP_IO | __GFP_FS | __GFP_HIGHMEM
GFP_DMA: Final = __GFP_DMA

_NAMES: Final = (
    (GFP_HIGHUSER, "GFP_HIGHUSER"), (GFP_KERNEL, "GFP_KERNEL"), (GFP_NOFS, "GFP_NOFS"),
    (GFP_NOIO, "GFP_NOIO"), (__GFP_DMA, "__GFP_DMA"), (__GFP_HIGHMEM, "__GFP_HIGHMEM"),
    (__GFP_WAIT, "__GFP_WAIT"), (__GFP_HIGH, "__GFP_HIGH"), (__GFP_IO, "__GFP_IO"),
    (__GFP_FS, "__GFP_FS"), (__GFP_COLD, "__GFP_COLD"), (__GFP_NOWARN, "__GFP_NOWARN"),
    (__GFP_REPEAT, "__GFP_REPEAT"), (__GFP_NOFAIL, "__GFP_NOFAIL"), (__GFP_NORETRY, "__GFP_NORETRY"),
    (__GFP_NO_GROW, "__GFP_NO_GROW"), (__GFP_COMP, "__GFP_COMP"), (__GFP_ZERO, "__GFP_ZERO"),
)


def gfp_names(gfp: int) -> str:
    """The flags as a ``|``-joined list, composites first (like %pGg)."""
    if gfp == GFP_ATOMIC:
        return "GFP_ATOMIC"
    out = []
    rest = gfp
    for bits, name in _NAMES:
        if bits and rest & bits == bits:
            out.append(name)
            rest &= ~bits
    if rest:
        out.append(f"{rest:#x}")
    return "|".join(out) or "0"


def c_hex(value: int) -> str:
    """printf's ``%#x``: ``0x20``, but ``0`` for zero (C adds no prefix to 0)."""
    return f"{value:#x}" if value else "0"


def gfp_allows_blocking(gfp: int) -> bool:
    return bool(gfp & __GFP_WAIT)


def check_gfp(gfp: object, fn: str = "gfp", name: str = "gfp_mask") -> int:
    """Validate a gfp mask passed from Python: an int (not a bool) within __GFP_BITS_MASK.

    ``fn`` and ``name`` are the kernel function and its argument, for the message.
    """
    if gfp.__class__ is int and 0 <= gfp <= __GFP_BITS_MASK:  # type: ignore[operator]
        return gfp  # type: ignore[return-value]
    from ..runtime.validate import check_flags
    return check_flags(fn, name, gfp, __GFP_BITS_MASK, "GFP_* flags")
