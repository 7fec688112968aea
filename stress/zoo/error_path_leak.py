"""A leak on a probe error path, found by fault injection.

probe() allocates the device structure and then its DMA descriptor table;
when the second allocation fails it returns -ENOMEM without freeing the
first. The path only runs when an allocation fails, so it is found by
failslab (fault injection makes kmalloc fail at chosen calls) together with
kmemleak, which reports the device structure nothing points to any more:
"unreferenced object 0x... (size 192)". The fix frees what was allocated
before returning. Found by kmemleak (kmemleak="fail": each leak is a
report) with failslab.
"""

from percpu_kmem.linux import GFP_KERNEL, kfree, kmalloc
from percpu_kmem.scenarios import stress

DETECTOR = "kmemleak"
REPORTS = ("kmemleak",)

ENOMEM = 12
DEVICES = 4
FAILSLAB = {"failslab": {"probability": 25, "times": -1, "ignore_gfp_wait": False, "verbose": 0}}


def _probe_all(m, unwind):
    bound = []

    def probe():
        dev = kmalloc(192, GFP_KERNEL)
        if dev is None:
            return -ENOMEM
        desc = kmalloc(1024, GFP_KERNEL)
        if desc is None:
            if unwind:
                kfree(dev)
            return -ENOMEM
        bound.append((dev, desc))
        return 0

    def bus_scan():
        for _ in range(DEVICES):
            probe()

    def remove_all():
        for dev, desc in bound:
            kfree(desc)
            kfree(dev)
        bound.clear()

    m.run(bus_scan)
    m.run(remove_all)


@stress(cpus=2, kmemleak="fail", fault_inject=FAILSLAB)
def buggy(m):
    """-ENOMEM for the descriptor table returns without freeing dev."""
    _probe_all(m, False)


@stress(cpus=2, kmemleak="fail", fault_inject=FAILSLAB)
def fixed(m):
    """The error path frees dev before returning."""
    _probe_all(m, True)
