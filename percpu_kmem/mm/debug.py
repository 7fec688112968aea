"""Debugging constants shared by the slab allocator and mempools (a leaf module).

Models include/linux/poison.h (the bytes and words slab debugging and mempool element
poisoning write) and the default of kernel/hung_task.c's ``hung_task_timeout_secs``.

Kept: the kernel's names and values (the 32-bit red-zone words of 2.6.11's slab).
Simplified: the hung-task timeout is a constant in virtual nanoseconds, not a sysctl;
the model checks it where a task waits (an allocation stalled in reclaim, a mempool
waiter nothing feeds) instead of in a khungtaskd thread.
"""

from __future__ import annotations

from typing import Final

POISON_INUSE: Final = 0x5A  # for use-uninitialised poisoning
POISON_FREE: Final = 0x6B  # for use-after-free poisoning
POISON_END: Final = 0xA5  # end-byte of poisoning
RED_INACTIVE: Final = 0x5A2CF071  # when obj is inactive
RED_ACTIVE: Final = 0x170FC2A5  # when obj is active

#: khungtaskd's default (120 s): a task blocked that long is reported

__all__ = ["POISON_INUSE", "POISON_FREE", "POISON_END", "RED_INACTIVE", "RED_ACTIVE"]
