"""A block-I/O path on a mempool, under exhaustion.

The block layer allocates a ``struct bio`` for every request from a mempool
(``mempool_create_slab_pool``), with GFP_NOIO: the write-out path must make progress
even when memory is short, so when the slab refuses, mempool_alloc takes a reserved
element, and when the reserve is empty it sleeps until a completion gives one back.
Here failslab (fault injection, task-filtered to the submitters) makes the slab refuse
a third of the submitters' allocations, and four submitters keep more bios in flight
than the reserve holds, so the pool runs dry and the submitters sleep in
mempool_alloc. The "disk" completes requests from its interrupt handler: the
completion frees the bio with ``mempool_free`` in hardirq context, which refills the
reserve and wakes a sleeper.

A bio is never lost (every submitted request completes), the pool ends full, and
``mempool_destroy`` and ``kmem_cache_destroy`` find nothing outstanding.
"""

from percpu_kmem.linux import (
    GFP_NOIO,
    current,
    init_waitqueue_head,
    kmem_cache_create,
    kmem_cache_destroy,
    mempool_alloc,
    mempool_create_slab_pool,
    mempool_destroy,
    mempool_free,
    raise_irq,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
    wait_event,
    wake_up,
    write_u32,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

DISK_IRQ = 14
RESERVE = 2
SUBMITTERS = 4
REQUESTS = 6


@stress(cpus=2, fault_inject={"failslab": {"probability": 33, "times": -1, "task_filter": True,
                                           "ignore_gfp_wait": False, "verbose": 0}})
def bio_mempool_exhaustion(m):
    """Four submitters, a reserve of two bios, a third of slab allocations refused: the pool runs dry."""
    before = leak_snapshot(m)
    queue = []
    queue_lock = spin_lock_init("request_queue")
    completed = init_waitqueue_head("bio_done")
    state = {"pool": None, "cache": None, "submitted": 0, "completed": 0}

    def disk_interrupt(irq, dev):
        flags = spin_lock_irqsave(queue_lock)
        bio = queue.pop(0) if queue else None
        spin_unlock_irqrestore(queue_lock, flags)
        if bio is not None:
            mempool_free(bio, state["pool"])  # bio_endio -> bio_put: back to the pool, in hardirq
            flags = spin_lock_irqsave(queue_lock)
            state["completed"] += 1  # counted after the free: the owner destroys the pool at the last
            spin_unlock_irqrestore(queue_lock, flags)
            wake_up(completed)

    def setup():
        state["cache"] = kmem_cache_create("bio", 96, 0, 0)
        state["pool"] = mempool_create_slab_pool(RESERVE, state["cache"])
        assert state["pool"] is not None

    def submitter():
        wait_event(completed, lambda: state["pool"] is not None)
        current().make_it_fail = True  # failslab's task filter: only the submitters' allocations fail
        for i in range(REQUESTS):
            bio = mempool_alloc(state["pool"], GFP_NOIO)  # may sleep until a completion frees one
            assert bio is not None, "mempool_alloc with __GFP_WAIT never returns NULL"
            write_u32(bio, i)
            flags = spin_lock_irqsave(queue_lock)
            queue.append(bio)
            state["submitted"] += 1
            spin_unlock_irqrestore(queue_lock, flags)
            raise_irq(DISK_IRQ)  # the disk answers on this CPU ... sometimes later
        current().make_it_fail = False

    def owner():
        setup()
        wake_up(completed)
        total = SUBMITTERS * REQUESTS
        wait_event(completed, lambda: state["completed"] == total)
        mempool_destroy(state["pool"])
        kmem_cache_destroy(state["cache"])

    m.request_irq(DISK_IRQ, disk_interrupt, "sda")
    m.run(owner, *([submitter] * SUBMITTERS))
    assert state["submitted"] == state["completed"] == SUBMITTERS * REQUESTS
    assert_no_leaks(m, before)
