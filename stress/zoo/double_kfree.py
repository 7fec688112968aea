"""Double kfree() on a probe error path.

probe() allocates the device's command buffer, and when registering the
device fails its error path frees it; the release function that the core
calls afterwards frees it again because dev->cmd_buf was never cleared. The
slab allocator's always-on hardening (SLUB's naive double-free check,
CONFIG_SLAB_FREELIST_HARDENED) sees the object freed twice in a row and
reports "Object already free". The fix clears the pointer after the first
kfree (kfree(NULL) does nothing). Found by slab hardening, without slab_debug.
"""

from percpu_kmem.linux import GFP_KERNEL, kfree, kmalloc
from percpu_kmem.scenarios import stress

DETECTOR = "hardening"
REPORTS = ("slab_double_free",)

ENODEV = 19


def _probe_release(m, clear_pointer):
    dev = {"cmd_buf": None}

    def register_device():
        return -ENODEV                          # the bus refused the device

    def probe():
        dev["cmd_buf"] = kmalloc(256, GFP_KERNEL)
        err = register_device()
        if err:
            kfree(dev["cmd_buf"])
            if clear_pointer:
                dev["cmd_buf"] = None
            return err
        return 0

    def release():
        kfree(dev["cmd_buf"])
        dev["cmd_buf"] = None

    def bind():
        probe()
        release()

    m.run(bind)


@stress(cpus=2)
def buggy(m):
    """The error path frees cmd_buf and leaves the pointer for release()."""
    _probe_release(m, False)


@stress(cpus=2)
def fixed(m):
    """The error path clears cmd_buf after freeing it."""
    _probe_release(m, True)
