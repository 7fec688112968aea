"""kmalloc(GFP_KERNEL) in a timer function.

A driver polls its device from a kernel timer (LDD3 chapter 7's jitimer) and, each
time, allocates a small status record with GFP_KERNEL. A timer function runs in
softirq context (in_atomic() is 1), where nothing may sleep: might_sleep() in the
allocator reports "BUG: sleeping function called from invalid context" with
preempt_count 100, the softirq count. The fix allocates with GFP_ATOMIC (and copes
with NULL). Found by might_sleep.
"""

from percpu_kmem.linux import (
    GFP_ATOMIC,
    GFP_KERNEL,
    del_timer_sync,
    init_waitqueue_head,
    jiffies,
    kfree,
    kmalloc,
    mod_timer,
    setup_timer,
    timer_list,
    wait_event,
    wake_up,
)
from percpu_kmem.scenarios import stress

DETECTOR = "might_sleep"
REPORTS = ("sleep_in_atomic",)

POLLS = 3


def _poller(m, gfp):
    done = init_waitqueue_head("poll_done")
    dev = {"polls": 0}
    timer = timer_list()

    def poll(data):
        status = kmalloc(32, gfp)          # softirq context: GFP_KERNEL may sleep here
        if status is not None:
            kfree(status)
        dev["polls"] += 1
        if dev["polls"] < POLLS:
            mod_timer(timer, jiffies() + 2)
        else:
            wake_up(done)

    def probe_and_wait():
        setup_timer(timer, poll, 0)
        mod_timer(timer, jiffies() + 2)
        wait_event(done, lambda: dev["polls"] >= POLLS)
        del_timer_sync(timer)

    m.run(probe_and_wait)


@stress(cpus=2)
def buggy(m):
    """The timer function allocates with GFP_KERNEL."""
    _poller(m, GFP_KERNEL)


@stress(cpus=2)
def fixed(m):
    """The timer function allocates with GFP_ATOMIC."""
    _poller(m, GFP_ATOMIC)
