"""preempt_count layout and flags, as in include/linux/preempt.h (modern layout).

The model keeps one preempt_count per simulated CPU (modern x86 keeps it per CPU
too); a task that sleeps carries its count with it, as 2.6's thread_info did, so
that "scheduling while atomic" leaves the CPU consistent for the next task.
"""

from __future__ import annotations

from typing import Final

PREEMPT_BITS: Final = 8
SOFTIRQ_BITS: Final = 8
HARDIRQ_BITS: Final = 4
NMI_BITS: Final = 4

PREEMPT_MASK: Final = 0x000000FF
SOFTIRQ_MASK: Final = 0x0000FF00
HARDIRQ_MASK: Final = 0x000F0000
NMI_MASK: Final = 0x00F00000

PREEMPT_OFFSET: Final = 1
SOFTIRQ_OFFSET: Final = 0x100
SOFTIRQ_DISABLE_OFFSET: Final = 2 * SOFTIRQ_OFFSET
HARDIRQ_OFFSET: Final = 0x10000
NMI_OFFSET: Final = 0x100000

IRQ_MASK: Final = NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK

#: EFLAGS.IF: what local_irq_save() returns when interrupts were enabled.
X86_EFLAGS_IF: Final = 0x200

#: Jiffies per second (2.6 i386 default).
HZ: Final = 1000
NSEC_PER_JIFFY: Final = 1_000_000_000 // HZ

#: khungtaskd's default hung_task_timeout_secs, and the same in virtual ns.
HUNG_TASK_TIMEOUT_SECS: Final = 120
HUNG_TASK_TIMEOUT_NS: Final = HUNG_TASK_TIMEOUT_SECS * 1000 * NSEC_PER_JIFFY


__all__ = ["PREEMPT_BITS", "SOFTIRQ_BITS", "HARDIRQ_BITS", "NMI_BITS", "PREEMPT_MASK", "SOFTIRQ_MASK",
           "HARDIRQ_MASK", "NMI_MASK", "PREEMPT_OFFSET", "SOFTIRQ_OFFSET", "SOFTIRQ_DISABLE_OFFSET",
           "HARDIRQ_OFFSET", "NMI_OFFSET", "IRQ_MASK", "X86_EFLAGS_IF", "HZ", "NSEC_PER_JIFFY",
           "HUNG_TASK_TIMEOUT_SECS", "HUNG_TASK_TIMEOUT_NS"]
