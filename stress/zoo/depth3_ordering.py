"""A request completed and then timed out: three events in one order, three tasks.

The submitter publishes a request (state SUBMITTED) and, later, tears it
down; the completion worker completes a SUBMITTED request and frees its
data buffer; the timeout handler aborts a request that is "not idle" and
frees the buffer too. Every state change is made under the request lock, but
the timeout tests the wrong condition (state != IDLE instead of state ==
SUBMITTED): a request that was completed is aborted again. The buffer is
freed twice only when the three happen in this order: submit, then
completion, then timeout, and all of it before the submitter's teardown
(which clears the request). Slab debugging (slub_debug=F) reports the second
kfree ("Object already free") wherever the object went in between; the
always-on check sees only a free twice in a row. The fix aborts only a
SUBMITTED request. Found by slab_debug; it needs three events in one order
across three tasks.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    kfree,
    kmalloc,
    preempt_point,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)
from percpu_kmem.scenarios import stress

DETECTOR = "slab_debug"
REPORTS = ("slab_double_free",)

IDLE, SUBMITTED, DONE, ABORTED = range(4)
SETUP_STEPS = 4


def _request(m, abort_only_submitted):
    lock = spin_lock_init("req_lock")
    req = {"state": IDLE, "buf": None, "live": True}

    def work(what, steps):
        for _ in range(steps):
            preempt_point(what)

    def submitter():
        work("build_request", SETUP_STEPS)
        buf = kmalloc(512, GFP_KERNEL)
        flags = spin_lock_irqsave(lock)
        req["buf"] = buf
        req["state"] = SUBMITTED                 # A: the request is visible
        spin_unlock_irqrestore(lock, flags)
        work("wait_for_device", 1)
        flags = spin_lock_irqsave(lock)          # D: teardown
        req["live"] = False
        buf, req["buf"] = req["buf"], None
        state = req["state"]
        spin_unlock_irqrestore(lock, flags)
        if state == SUBMITTED:
            kfree(buf)                           # nobody completed it: the submitter frees it

    def completion():
        work("irq_thread", 1)
        flags = spin_lock_irqsave(lock)
        if req["live"] and req["state"] == SUBMITTED:   # B: complete it
            req["state"] = DONE
            buf = req["buf"]
            spin_unlock_irqrestore(lock, flags)
            kfree(buf)
            return
        spin_unlock_irqrestore(lock, flags)

    def timeout():
        flags = spin_lock_irqsave(lock)
        state = req["state"]
        aborts = state == SUBMITTED if abort_only_submitted else state != IDLE
        if req["live"] and aborts:                      # C: abort it
            req["state"] = ABORTED
            buf = req["buf"]
            spin_unlock_irqrestore(lock, flags)
            kfree(buf)
            return
        spin_unlock_irqrestore(lock, flags)

    m.run(submitter, completion, timeout)


@stress(cpus=3, slab_debug=True)
def buggy(m):
    """The timeout aborts any request that is not idle."""
    _request(m, False)


@stress(cpus=3, slab_debug=True)
def fixed(m):
    """The timeout aborts only a submitted request."""
    _request(m, True)
