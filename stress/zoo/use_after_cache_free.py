"""Use after kmem_cache_free(): a request read after its completion freed it.

The submit path hands a request from the driver's slab cache to the
completion interrupt, which frees it with kmem_cache_free(); the submitter
then reads req->status to return it. Without KASAN the read returns whatever
the freed object holds (or the next owner's data). KASAN (its quarantine
keeps the freed object from being handed out again at once) reports "BUG:
KASAN: slab-use-after-free" with the stacks of the allocation and the free.
The fix reads the status before completing the request. Found by KASAN.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    raise_irq,
    read_u32,
    write_u32,
)
from percpu_kmem.scenarios import stress

DETECTOR = "kasan"
REPORTS = ("kasan",)

DONE_IRQ = 12
STATUS = 8                                       # offsetof(struct my_request, status)


def _submit(m, read_before_complete):
    box = {}
    done = []

    def completion_interrupt(irq, dev):
        req = box.pop("inflight")
        write_u32(req + STATUS, 0)               # status = 0: success
        kmem_cache_free(box["cache"], req)

    m.request_irq(DONE_IRQ, completion_interrupt, "mydev")

    def submit():
        box["cache"] = kmem_cache_create("my_request", 64)
        req = kmem_cache_alloc(box["cache"], GFP_KERNEL)
        write_u32(req + STATUS, 0xFFFF)
        box["inflight"] = req
        if read_before_complete:
            status = read_u32(req + STATUS)      # nothing completes it before this
            raise_irq(DONE_IRQ)
        else:
            raise_irq(DONE_IRQ)                  # the device completes the request at once
            status = read_u32(req + STATUS)      # req is freed by now
        done.append(status)
        kmem_cache_destroy(box["cache"])

    m.run(submit)


@stress(cpus=2, kasan=True)
def buggy(m):
    """req->status read after the completion interrupt freed req."""
    _submit(m, False)


@stress(cpus=2, kasan=True)
def fixed(m):
    """req->status read before the request can complete."""
    _submit(m, True)
