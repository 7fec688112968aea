"""del_timer() instead of del_timer_sync() before freeing the device.

On removal a driver stops its watchdog timer with del_timer() and frees the device
structure the timer function uses. del_timer() only takes a pending timer off the
list; it does not wait for a timer function already running on another CPU, which
then touches the freed structure: KASAN's "slab-use-after-free". The fix is
del_timer_sync() (timer_delete_sync() today), which also waits for the running
function. Found by KASAN when the removal races with the timer.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    del_timer,
    del_timer_sync,
    jiffies,
    kfree,
    kzalloc,
    mod_timer,
    msleep,
    read_u32,
    setup_timer,
    timer_list,
    write_u32,
)
from percpu_kmem.scenarios import stress

DETECTOR = "kasan"
REPORTS = ("kasan",)


def _watchdog(m, sync):
    dev = {}
    timer = timer_list()

    def watchdog(data):
        p = dev["p"]
        write_u32(p, read_u32(p) + 1)     # dev->ticks++
        write_u32(p + 4, read_u32(p))     # dev->last = dev->ticks
        mod_timer(timer, jiffies() + 1)

    def probe():
        dev["p"] = kzalloc(16, GFP_KERNEL)
        setup_timer(timer, watchdog, 0)
        mod_timer(timer, jiffies() + 1)

    def remove():
        msleep(3)
        (del_timer_sync if sync else del_timer)(timer)
        kfree(dev["p"])

    m.run(probe)
    m.run(remove, lambda: msleep(5))


@stress(cpus=2, kasan=True)
def buggy(m):
    """del_timer(), then kfree() of what the timer function uses."""
    _watchdog(m, False)


@stress(cpus=2, kasan=True)
def fixed(m):
    """del_timer_sync(), then kfree()."""
    _watchdog(m, True)
