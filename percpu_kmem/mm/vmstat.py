"""Counters and constants the page allocator and reclaim share (a leaf module).

Models the vm event counters of include/linux/vmstat.h (per CPU, summed by
/proc/vmstat), ``PF_MEMALLOC`` of include/linux/sched.h and ``SWAP_CLUSTER_MAX`` of
include/linux/swap.h. They live here, below both mm/page_alloc.py and mm/vmscan.py,
so that neither imports the other for a constant.

Kept: the kernel's names and values; one counter array per CPU (``cpu.data["vm_events"]``),
indexed by these constants.
Simplified: only the events the model produces are counted (pgalloc per zone, pgfree,
allocstall, the per-CPU list refills, drains and hits, allocation failures, OOM kills
and kswapd wake-ups); the names are today's /proc/vmstat names.
"""

from __future__ import annotations

from typing import Final

#: current->flags bit: the task is reclaiming, its allocations may use the reserves
PF_MEMALLOC: Final = 0x00000800
#: pages reclaim tries to free in one pass
SWAP_CLUSTER_MAX: Final = 32

# vm event counters (per CPU; /proc/vmstat sums them)
PGALLOC: Final = 0  # + zone idx (0..2)
PGFREE: Final = 3
ALLOCSTALL: Final = 4
PCP_REFILL: Final = 5
PCP_DRAIN: Final = 6
PGALLOC_FAIL: Final = 7
OOM_KILL: Final = 8
KSWAPD_WAKE: Final = 9
PCP_HIT: Final = 10
NR_VM_EVENTS: Final = 11
VM_EVENT_NAMES: Final = ("pgalloc_dma", "pgalloc_normal", "pgalloc_high", "pgfree", "allocstall",
                         "pcp_refill", "pcp_drain", "pgalloc_fail", "oom_kill", "kswapd_wake", "pcp_hit")

__all__ = ["PF_MEMALLOC", "SWAP_CLUSTER_MAX", "PGALLOC", "PGFREE", "ALLOCSTALL", "PCP_REFILL", "PCP_DRAIN",
           "PGALLOC_FAIL", "OOM_KILL", "KSWAPD_WAKE", "PCP_HIT", "NR_VM_EVENTS", "VM_EVENT_NAMES"]
