"""Per-CPU counters, done right.

Two kinds of per-CPU counters, the way drivers keep statistics without a shared lock:

- a static one, ``DEFINE_PER_CPU``, updated with ``get_cpu_var``/``put_cpu_var``
  (preemption off between the read and the write, so the task cannot migrate or be
  preempted by another updater of the same CPU's copy) and from an interrupt handler
  with ``this_cpu_inc`` (local interrupts off for the one step), while threads also
  use ``get_cpu()``/``put_cpu()`` with ``per_cpu()``;
- a dynamic one, ``alloc_percpu(c_long)``, updated with ``this_cpu_add`` and summed
  over ``per_cpu_ptr`` at the end, then ``free_percpu``.

Four threads on two CPUs (so they migrate between updates), and a random interrupt.
The sums are exact: no update is lost (the owner reads the interrupt counters and the
list of interrupts together under the lock the handler takes, since a handler may be
running on the other CPU while it reads) (the buggy variant, ``raw_smp_processor_id()``
without ``get_cpu()``, is the built-in ``percpu-kmem run percpu-counter`` demo).
"""

from percpu_kmem.linux import (
    DEFINE_PER_CPU,
    alloc_percpu,
    c_long,
    free_irq,
    free_percpu,
    get_cpu,
    get_cpu_var,
    init_waitqueue_head,
    per_cpu,
    per_cpu_ptr,
    put_cpu,
    put_cpu_var,
    read_u32,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    this_cpu_add,
    this_cpu_inc,
    wait_event,
    wake_up,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

#: Per-CPU variables are laid out once per process, like the kernel image's .data.percpu.
packets = DEFINE_PER_CPU(c_long, "stress_packets")
irq_events = DEFINE_PER_CPU(c_long, "stress_irq_events")

TASKS = 4
ITERATIONS = 8


@stress(cpus=2)
def counters_with_get_cpu(m):
    """Static and dynamic per-CPU counters from four migrating threads and an interrupt: exact sums."""
    before = leak_snapshot(m)
    fired = []
    state = {"bytes": None, "done": 0}
    lock = spin_lock_init("done_lock")
    ready = init_waitqueue_head("ready")

    irq_stat_lock = spin_lock_init("irq_stat_lock")

    def handler(irq, dev):
        spin_lock(irq_stat_lock)  # hardirq: interrupts are off already
        this_cpu_inc(irq_events)
        fired.append(irq)
        spin_unlock(irq_stat_lock)

    m.request_irq(15, handler, "timer", rate=0.05)

    def work():
        for i in range(ITERATIONS):
            ref = get_cpu_var(packets)  # preempt_disable(): this CPU's copy stays ours
            ref.value += 1
            put_cpu_var(packets)
            cpu = get_cpu()
            per_cpu(packets, cpu).value += 1
            put_cpu()
            this_cpu_add(state["bytes"], 100 + i)
        spin_lock(lock)
        state["done"] += 1
        spin_unlock(lock)
        wake_up(ready)

    def worker():
        wait_event(ready, lambda: state["bytes"] is not None)
        work()

    def owner():
        state["bytes"] = alloc_percpu(c_long)
        assert state["bytes"] is not None
        wake_up(ready)
        work()
        wait_event(ready, lambda: state["done"] == TASKS)
        free_irq(15)
        counted = sum(per_cpu(packets, c).value for c in range(m.nr_cpus))
        assert counted == 2 * TASKS * ITERATIONS, f"lost per-CPU updates: {counted} of {2 * TASKS * ITERATIONS}"
        flags = spin_lock_irqsave(irq_stat_lock)  # a handler on the other CPU may be counting now
        irqs = sum(per_cpu(irq_events, c).value for c in range(m.nr_cpus))
        nr_fired = len(fired)
        spin_unlock_irqrestore(irq_stat_lock, flags)
        assert irqs == nr_fired, f"interrupt counter {irqs}, interrupts {nr_fired}"
        total = sum(read_u32(per_cpu_ptr(state["bytes"], c)) for c in range(m.nr_cpus))
        assert total == TASKS * sum(100 + i for i in range(ITERATIONS)), f"lost this_cpu_add()s: {total}"
        free_percpu(state["bytes"])

    m.run(owner, *([worker] * (TASKS - 1)))
    assert_no_leaks(m, before)
