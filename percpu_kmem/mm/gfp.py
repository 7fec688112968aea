"""GFP flags of the 2.6 era (include/linux/gfp.h, 2.6.11 values), as plain ints.

Sleeping rule of the era: an allocation may sleep iff ``__GFP_WAIT`` is set
(GFP_KERNEL, GFP_USER, GFP_NOFS, GFP_NOIO); GFP_ATOMIC never sleeps.

Kept: every bit and composite of 2.6.11 with its value, and the kernel spellings.
Simplified: Python mangles a ``__``-prefixed name used inside a class body
(``__GFP_WAIT`` in a method becomes ``_Class__GFP_WAIT``), so each bit is defined once
under an unmangled name (``GFP_WAIT``) and the kernel spelling is an alias of it
(``__GFP_WAIT = GFP_WAIT``). Model code uses the unmangled names; driver code may use
either. The unmangled names are not kernel names (only ``GFP_DMA``, which the kernel
defines as ``__GFP_DMA``, coincides, with the same value).
"""

from __future__ import annotations

from typing import Final

# -- the bits, once, unmangled -------------------------------------------------------------
GFP_DMA: Final = 0x01
GFP_HIGHMEM: Final = 0x02
GFP_WAIT: Final = 0x10  # can wait and reschedule
GFP_HIGH: Final = 0x20  # should access emergency pools
GFP_IO: Final = 0x40  # can start physical IO
GFP_FS: Final = 0x80  # can call down to low-level FS
GFP_COLD: Final = 0x100  # cache-cold page required
GFP_NOWARN: Final = 0x200  # suppress page allocation failure warning
GFP_REPEAT: Final = 0x400  # retry the allocation; might fail
GFP_NOFAIL: Final = 0x800  # retry for ever; cannot fail
GFP_NORETRY: Final = 0x1000  # do not retry
GFP_NO_GROW: Final = 0x2000  # slab internal usage
GFP_COMP: Final = 0x4000  # add compound page metadata
GFP_ZERO: Final = 0x8000  # return zeroed page on success
GFP_BITS_SHIFT: Final = 16
GFP_BITS_MASK: Final = (1 << GFP_BITS_SHIFT) - 1
GFP_ZONEMASK: Final = 0x03

# -- the kernel's spellings ------------------------------------------------------------------
__GFP_DMA: Final = GFP_DMA
__GFP_HIGHMEM: Final = GFP_HIGHMEM
__GFP_WAIT: Final = GFP_WAIT
__GFP_HIGH: Final = GFP_HIGH
__GFP_IO: Final = GFP_IO
__GFP_FS: Final = GFP_FS
__GFP_COLD: Final = GFP_COLD
__GFP_NOWARN: Final = GFP_NOWARN
__GFP_REPEAT: Final = GFP_REPEAT
__GFP_NOFAIL: Final = GFP_NOFAIL
__GFP_NORETRY: Final = GFP_NORETRY
__GFP_NO_GROW: Final = GFP_NO_GROW
__GFP_COMP: Final = GFP_COMP
__GFP_ZERO: Final = GFP_ZERO
__GFP_BITS_SHIFT: Final = GFP_BITS_SHIFT
__GFP_BITS_MASK: Final = GFP_BITS_MASK

# -- the composites --------------------------------------------------------------------------
GFP_ATOMIC: Final = GFP_HIGH
GFP_NOIO: Final = GFP_WAIT
GFP_NOFS: Final = GFP_WAIT | GFP_IO
GFP_KERNEL: Final = GFP_WAIT | GFP_IO | GFP_FS
GFP_USER: Final = GFP_WAIT | GFP_IO | GFP_FS
GFP_HIGHUSER: Final = GFP_WAIT | GFP_IO | GFP_FS | GFP_HIGHMEM
#: 2.6.21's ``GFP_ATOMIC & ~__GFP_HIGH``: never sleeps, and leaves the emergency reserves
#: alone (0 with 2.6.11's bits; today's sets __GFP_KSWAPD_RECLAIM)
GFP_NOWAIT: Final = GFP_ATOMIC & ~GFP_HIGH

_NAMES: Final = (
    (GFP_HIGHUSER, "GFP_HIGHUSER"), (GFP_KERNEL, "GFP_KERNEL"), (GFP_NOFS, "GFP_NOFS"),
    (GFP_NOIO, "GFP_NOIO"), (GFP_DMA, "__GFP_DMA"), (GFP_HIGHMEM, "__GFP_HIGHMEM"),
    (GFP_WAIT, "__GFP_WAIT"), (GFP_HIGH, "__GFP_HIGH"), (GFP_IO, "__GFP_IO"),
    (GFP_FS, "__GFP_FS"), (GFP_COLD, "__GFP_COLD"), (GFP_NOWARN, "__GFP_NOWARN"),
    (GFP_REPEAT, "__GFP_REPEAT"), (GFP_NOFAIL, "__GFP_NOFAIL"), (GFP_NORETRY, "__GFP_NORETRY"),
    (GFP_NO_GROW, "__GFP_NO_GROW"), (GFP_COMP, "__GFP_COMP"), (GFP_ZERO, "__GFP_ZERO"),
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
    return bool(gfp & GFP_WAIT)


def check_gfp(gfp: object, fn: str = "gfp", name: str = "gfp_mask") -> int:
    """Validate a gfp mask passed from Python: an int (not a bool) within __GFP_BITS_MASK.

    ``fn`` and ``name`` are the kernel function and its argument, for the message.
    """
    if gfp.__class__ is int and 0 <= gfp <= GFP_BITS_MASK:
        return gfp
    from ..runtime.validate import check_flags
    return check_flags(fn, name, gfp, GFP_BITS_MASK, "GFP_* flags")


__all__ = [
    "GFP_DMA", "GFP_HIGHMEM", "GFP_WAIT", "GFP_HIGH", "GFP_IO", "GFP_FS", "GFP_COLD", "GFP_NOWARN",
    "GFP_REPEAT", "GFP_NOFAIL", "GFP_NORETRY", "GFP_NO_GROW", "GFP_COMP", "GFP_ZERO",
    "GFP_BITS_SHIFT", "GFP_BITS_MASK", "GFP_ZONEMASK",
    "__GFP_DMA", "__GFP_HIGHMEM", "__GFP_WAIT", "__GFP_HIGH", "__GFP_IO", "__GFP_FS", "__GFP_COLD",
    "__GFP_NOWARN", "__GFP_REPEAT", "__GFP_NOFAIL", "__GFP_NORETRY", "__GFP_NO_GROW", "__GFP_COMP",
    "__GFP_ZERO", "__GFP_BITS_SHIFT", "__GFP_BITS_MASK",
    "GFP_ATOMIC", "GFP_NOIO", "GFP_NOFS", "GFP_KERNEL", "GFP_USER", "GFP_HIGHUSER",
    "GFP_NOWAIT", "gfp_names", "c_hex", "gfp_allows_blocking", "check_gfp",
]
