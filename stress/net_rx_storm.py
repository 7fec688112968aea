"""A network-receive storm: buffers allocated in interrupt context, freed on other CPUs.

A NIC's hardirq handler allocates a receive buffer with GFP_ATOMIC (it cannot sleep),
fills it and queues it on its CPU's receive queue, then raises the NET_RX softirq;
the softirq moves the CPU's queue to a shared backlog (``spin_lock`` from softirq
context, as the softirq cannot be interrupted by itself) and wakes the readers.
Reader threads, which may run on any CPU, sleep on a wait queue until there is work,
take packets off the backlog under ``spin_lock_bh`` (the softirq takes the same lock)
and ``kfree`` them: a buffer allocated on one CPU's magazine is
freed into another's, the slab allocator's cross-CPU path. The per-CPU receive queues
are touched with interrupts off (``spin_lock_irqsave``), since the hardirq handler
fills them.

The storm is bounded: the "device" threads raise a fixed number of interrupts, and
the readers stop when every packet has been consumed; a packet the allocator refused
(GFP_ATOMIC may fail) is counted as dropped, as a driver counts rx_dropped.
"""

from percpu_kmem.linux import (
    GFP_ATOMIC,
    init_waitqueue_head,
    kfree,
    kmalloc,
    memset,
    open_softirq,
    raise_irq,
    raise_softirq,
    read_u32,
    smp_processor_id,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irqrestore,
    wait_event,
    wake_up,
    write_u32,
)
from percpu_kmem.scenarios import assert_no_leaks, leak_snapshot, stress

NET_RX_SOFTIRQ = 3
NIC_IRQ = 13
PACKETS_PER_DEVICE = 10


@stress(cpus=2)
def rx_storm(m):
    """Two devices raise 10 receive interrupts each; three readers free the packets on any CPU."""
    before = leak_snapshot(m)
    rxq = [[] for _ in range(m.nr_cpus)]
    rxq_locks = [spin_lock_init(f"rxq{c}") for c in range(m.nr_cpus)]
    backlog = []
    backlog_lock = spin_lock_init("backlog")
    readers_wq = init_waitqueue_head("rx_wait")
    stats = {"dropped": 0, "consumed": 0}
    total = 2 * PACKETS_PER_DEVICE

    def nic_interrupt(irq, dev):
        cpu = smp_processor_id()
        skb = kmalloc(1536, GFP_ATOMIC)
        if skb is None:
            spin_lock(backlog_lock)  # the readers read the count under it
            stats["dropped"] += 1
            spin_unlock(backlog_lock)
            wake_up(readers_wq)
        else:
            memset(skb, 0, 64)
            write_u32(skb, 0x0800)  # the ethertype of an IPv4 frame
            flags = spin_lock_irqsave(rxq_locks[cpu])
            rxq[cpu].append(skb)
            spin_unlock_irqrestore(rxq_locks[cpu], flags)
        raise_softirq(NET_RX_SOFTIRQ)

    def net_rx_action():
        cpu = smp_processor_id()
        flags = spin_lock_irqsave(rxq_locks[cpu])
        batch = rxq[cpu][:]
        del rxq[cpu][:]
        spin_unlock_irqrestore(rxq_locks[cpu], flags)
        if batch:
            spin_lock(backlog_lock)
            backlog.extend(batch)
            spin_unlock(backlog_lock)
            wake_up(readers_wq)

    def device():
        open_softirq(NET_RX_SOFTIRQ, net_rx_action)
        for _ in range(PACKETS_PER_DEVICE):
            raise_irq(NIC_IRQ)

    def reader():
        while True:
            spin_lock_bh(backlog_lock)
            skb = backlog.pop() if backlog else None
            if skb is not None:
                stats["consumed"] += 1
            done = stats["consumed"] + stats["dropped"] >= total
            spin_unlock_bh(backlog_lock)
            if skb is not None:
                assert read_u32(skb) == 0x0800, "a received frame keeps its header"
                kfree(skb)
            elif done:
                wake_up(readers_wq)  # the other readers see it too
                return
            else:
                wait_event(readers_wq, lambda: backlog or stats["consumed"] + stats["dropped"] >= total)

    m.request_irq(NIC_IRQ, nic_interrupt, "eth0")
    m.run(device, device, reader, reader, reader)
    assert stats["consumed"] + stats["dropped"] == total
    assert not backlog and not any(rxq)
    assert_no_leaks(m, before)
