"""A per-CPU statistics counter updated without get_cpu().

The driver counts received packets in a per-CPU counter and picks its copy
with smp_processor_id() from preemptible code: the task can be preempted and
migrated between reading the CPU number and writing the counter, so two CPUs'
updates land in one copy and an update is lost. CONFIG_DEBUG_PREEMPT reports
the call itself, on every run: "BUG: using smp_processor_id() in preemptible
[00000000] code". The fix brackets the update with get_cpu()/put_cpu().
Found by DEBUG_PREEMPT's smp_processor_id() check.
"""

from percpu_kmem.linux import DEFINE_PER_CPU, c_ulong, get_cpu, per_cpu, put_cpu, smp_processor_id
from percpu_kmem.scenarios import stress

DETECTOR = "debug_preempt"
REPORTS = ("preempt_smp_processor_id",)

rx_packets = DEFINE_PER_CPU(c_ulong, "zoo_rx_packets")
PACKETS = 6


def _rx(m, pinned):
    def rx_thread():
        for _ in range(PACKETS):
            cpu = get_cpu() if pinned else smp_processor_id()
            ref = per_cpu(rx_packets, cpu)
            ref.value = ref.value + 1          # read, add, write: preemptible without get_cpu
            if pinned:
                put_cpu()

    m.run(rx_thread, rx_thread, rx_thread)
    total = []
    m.run(lambda: total.append(sum(per_cpu(rx_packets, c).value for c in range(m.nr_cpus))))
    assert total[0] == 3 * PACKETS, f"rx_packets lost updates: {total[0]} of {3 * PACKETS}"


@stress(cpus=2)
def buggy(m):
    """smp_processor_id() picks the copy from preemptible code."""
    _rx(m, False)


@stress(cpus=2)
def fixed(m):
    """get_cpu() ... put_cpu() around the update."""
    _rx(m, True)
