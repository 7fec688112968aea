"""kmem_cache_destroy() with objects still allocated, on module exit.

The driver keeps its in-flight requests, allocated from its own slab cache,
on a pending list. Module exit walks the list to free them, but its loop
stops one entry short (an off-by-one on the count), and then destroys the
cache: the slab allocator cannot free the slab that still holds an object
and says so, "kmem_cache_destroy my_req: Slab cache still has objects" and
"slab error in kmem_cache_destroy(): cache `my_req': Can't free all objects"
(the cache is left behind, and its name is taken when the module is loaded
again). The fix frees every entry. Found by the slab allocator's own check,
always on.
"""

from percpu_kmem.linux import GFP_KERNEL, kmem_cache_alloc, kmem_cache_create, kmem_cache_destroy, kmem_cache_free
from percpu_kmem.scenarios import stress

DETECTOR = "slab"
REPORTS = ("slab_destroy_busy",)

REQUESTS = 3


def _module(m, free_all):
    box = {}
    pending = []

    def my_init():
        box["cache"] = kmem_cache_create("my_req", 96)

    def submit():
        for _ in range(REQUESTS):
            pending.append(kmem_cache_alloc(box["cache"], GFP_KERNEL))

    def my_exit():
        n = len(pending) if free_all else len(pending) - 1
        for req in pending[:n]:
            kmem_cache_free(box["cache"], req)
        del pending[:n]
        kmem_cache_destroy(box["cache"])

    def cleanup():                             # what the buggy exit left behind
        for req in pending:
            kmem_cache_free(box["cache"], req)
        kmem_cache_destroy(box["cache"])

    m.run(my_init)
    m.run(submit, submit)
    m.run(my_exit)
    if pending:
        m.run(cleanup)


@stress(cpus=2)
def buggy(m):
    """Module exit frees all but the last pending request, then destroys the cache."""
    _module(m, False)


@stress(cpus=2)
def fixed(m):
    """Module exit frees every pending request, then destroys the cache."""
    _module(m, True)
