"""A mempool element freed twice.

A block driver takes its per-I/O context from a mempool; on a failed
submission the error path gives the context back with mempool_free(), and
the end_io callback (run for the same bio) gives it back again. The second
free finds the element already in the pool's reserve and the pool reports
it ("BUG: KASAN: double-free in mempool_free", the mempool's own KASAN hook);
had the reserve been full, the element would have gone to kfree() and slab
hardening would report it. The fix leaves the free to end_io alone. Found by
the mempool's checks.
"""

from percpu_kmem.linux import GFP_NOIO, mempool_alloc, mempool_create_kmalloc_pool, mempool_destroy, mempool_free
from percpu_kmem.scenarios import stress

DETECTOR = "mempool"
REPORTS = ("double_free", "slab_double_free")

EIO = 5


def _io(m, free_in_error_path):
    box = {}

    def end_io(ctx, err):
        mempool_free(ctx, box["pool"])

    def submit_bio(n):
        ctx = mempool_alloc(box["pool"], GFP_NOIO)
        err = -EIO if n == 2 else 0              # the third bio fails at submission
        if err and free_in_error_path:
            mempool_free(ctx, box["pool"])
        end_io(ctx, err)                         # end_io runs for every bio, failed or not

    def setup():
        box["pool"] = mempool_create_kmalloc_pool(4, 128)

    def io_thread():
        for n in range(4):
            submit_bio(n)

    m.run(setup)
    m.run(io_thread)
    m.run(lambda: mempool_destroy(box["pool"]))


@stress(cpus=2)
def buggy(m):
    """The error path and end_io both mempool_free() the context."""
    _io(m, True)


@stress(cpus=2)
def fixed(m):
    """Only end_io frees the context."""
    _io(m, False)
