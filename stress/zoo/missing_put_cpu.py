"""A missing put_cpu() on an error path.

The transmit accounting helper pins the CPU with get_cpu() to update per-CPU
statistics, and returns -EINVAL for an oversized frame before reaching its
put_cpu(). Preemption stays disabled: the thread later exits (or sleeps) with
preempt_count 1. The kernel notices at exit ("note: comm[pid] exited with
preempt_count 1", do_exit) or at the next sleep ("BUG: scheduling while
atomic"). The fix releases the CPU on every return. Found by the exit-time
preempt_count check of do_exit.
"""

from percpu_kmem.linux import DEFINE_PER_CPU, c_ulong, get_cpu, per_cpu, put_cpu
from percpu_kmem.scenarios import stress

DETECTOR = "do_exit"
REPORTS = ("exit_atomic", "scheduling_while_atomic")

tx_bytes = DEFINE_PER_CPU(c_ulong, "zoo_tx_bytes")
MTU = 1500
EINVAL = 22


def _tx(m, put_on_error):
    def tx_account(length):
        cpu = get_cpu()
        if length > MTU:
            if put_on_error:
                put_cpu()
            return -EINVAL
        ref = per_cpu(tx_bytes, cpu)
        ref.value = ref.value + length
        put_cpu()
        return 0

    def xmit_batch():
        for length in (64, 1500, 9000, 512):   # one jumbo frame the device cannot take
            tx_account(length)

    m.run(xmit_batch, xmit_batch)


@stress(cpus=2)
def buggy(m):
    """The -EINVAL return skips put_cpu()."""
    _tx(m, False)


@stress(cpus=2)
def fixed(m):
    """put_cpu() on the error path too."""
    _tx(m, True)
