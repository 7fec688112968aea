"""Overflow of a kmalloc() buffer by its terminating NUL.

The driver copies a device name into a buffer of kmalloc(strlen(name)):
one byte short for the '\\0' strcpy() writes. With slab debugging
(slub_debug=Z, SLAB_RED_ZONE) the byte past the object lands in its red zone
and the free reports "Redzone overwritten" (KASAN would report the write
itself). The fix is kmalloc(strlen(name) + 1). Found by slab_debug red zones.
"""

from percpu_kmem.linux import GFP_KERNEL, kfree, kmalloc, mem_write
from percpu_kmem.scenarios import stress

DETECTOR = "slab_debug"
REPORTS = ("slab_redzone",)

NAME = b"eth-zoo-port0"                           # 13 characters


def _set_name(m, room_for_nul):
    def set_name():
        buf = kmalloc(len(NAME) + (1 if room_for_nul else 0), GFP_KERNEL)
        mem_write(buf, NAME + b"\0")             # strcpy(buf, name)
        kfree(buf)

    m.run(set_name, set_name)


@stress(cpus=2, slab_debug=True)
def buggy(m):
    """kmalloc(strlen(name)) then strcpy()."""
    _set_name(m, False)


@stress(cpus=2, slab_debug=True)
def fixed(m):
    """kmalloc(strlen(name) + 1) then strcpy()."""
    _set_name(m, True)
