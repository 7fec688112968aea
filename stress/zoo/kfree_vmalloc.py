"""kfree() of a vmalloc() address.

A table that is usually small is allocated with kmalloc(), but the driver
falls back to vmalloc() for large ones (the open-coded kvmalloc of older
drivers) and frees it with kfree() in every case. kfree() of an address
outside the direct map corrupts the slab allocator; the always-on check
(hardening) refuses it: "kfree_debugcheck: out of range ptr". The fix frees
with vfree() what vmalloc() gave (kvfree() today). Found by slab hardening.
"""

from percpu_kmem.linux import GFP_KERNEL, PAGE_SIZE, kfree, kmalloc, vfree, vmalloc
from percpu_kmem.scenarios import stress

DETECTOR = "hardening"
REPORTS = ("slab_invalid_free",)


def _tables(m, matching_free):
    def table_alloc(size):
        if size <= 2 * PAGE_SIZE:
            return kmalloc(size, GFP_KERNEL), False
        return vmalloc(size), True

    def table_free(addr, vmalloced):
        if matching_free and vmalloced:
            vfree(addr)
        else:
            kfree(addr)

    def resize():
        for entries in (64, 4096):               # 4096 entries of 4 bytes: 16 KiB
            addr, vmalloced = table_alloc(entries * 4)
            table_free(addr, vmalloced)

    m.run(resize, resize)


@stress(cpus=2)
def buggy(m):
    """kfree() for both kinds of table."""
    _tables(m, False)


@stress(cpus=2)
def fixed(m):
    """vfree() for the vmalloc()ed table."""
    _tables(m, True)
