"""A flag shared between an interrupt handler and a thread, with plain accesses.

The driver's stop path sets dev->stopping with a plain store, and the
interrupt handler tests it with a plain load to decide whether to touch the
hardware. Neither a lock nor READ_ONCE()/WRITE_ONCE() orders them: the
compiler may tear, fuse or hoist the accesses. KCSAN reports the pair the
first time both happen unordered: "BUG: KCSAN: data-race in ...". The fix
marks both accesses (WRITE_ONCE in the thread, READ_ONCE in the handler).
Found by KCSAN.
"""

from percpu_kmem.linux import GFP_KERNEL, READ_ONCE, WRITE_ONCE, kfree, kmalloc, raise_irq, read_u32, write_u32
from percpu_kmem.scenarios import stress

DETECTOR = "kcsan"
REPORTS = ("kcsan",)

DEV_IRQ = 7
STOPPING = 0                                     # offsetof(struct my_dev, stopping)
KICKS = 4                                        # offsetof(struct my_dev, kicks)


def _dev(m, marked):
    box = {}

    def dev_interrupt(irq, dev):
        d = box["dev"]
        stopping = READ_ONCE(d + STOPPING) if marked else read_u32(d + STOPPING)
        if not stopping:
            WRITE_ONCE(d + KICKS, READ_ONCE(d + KICKS) + 1)

    m.request_irq(DEV_IRQ, dev_interrupt, "mydev")

    def setup():
        box["dev"] = kmalloc(64, GFP_KERNEL)
        write_u32(box["dev"] + STOPPING, 0)
        write_u32(box["dev"] + KICKS, 0)

    def device():
        for _ in range(3):
            raise_irq(DEV_IRQ, 0)

    def stop():
        d = box["dev"]
        if marked:
            WRITE_ONCE(d + STOPPING, 1)
        else:
            write_u32(d + STOPPING, 1)

    m.run(setup)
    m.run(device, stop)
    m.run(lambda: kfree(box["dev"]))


@stress(cpus=2, kcsan=True)
def buggy(m):
    """Plain store in the thread, plain load in the handler."""
    _dev(m, False)


@stress(cpus=2, kcsan=True)
def fixed(m):
    """WRITE_ONCE() in the thread, READ_ONCE() in the handler."""
    _dev(m, True)
