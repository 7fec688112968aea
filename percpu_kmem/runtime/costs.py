"""Cycle costs the primitives charge to a CPU's virtual clock.

Ratios matter more than absolute values (the published allocator figures docs/ cite): an
uncontended lock pair is about half an allocator fast path; pulling a cache
line from another CPU costs several times a local hit; time under zone->lock is
dominated by the struct pages it touches. 1 cycle = 1 ns of virtual time.
"""

from __future__ import annotations

from typing import Final

POINT: Final = 1  # a scheduling point with nothing else charged
LOCK: Final = 20  # uncontended spin_lock + spin_unlock, line already local
LINE_TRANSFER: Final = 100  # a cache line last written by another CPU
LOCK_HANDOFF: Final = 150  # a contended lock passing to a waiter (line transfer + spin exit)
IRQ_ENTRY: Final = 300  # interrupt entry and exit
CONTEXT_SWITCH: Final = 1500
PERCPU_HIT: Final = 5  # a per-CPU list operation, cache hot
PAGE_STRUCT: Final = 40  # touching one struct page in the buddy (cache miss dominated)
CPU_RELAX: Final = 40  # one turn of a busy-wait loop: the x86 PAUSE plus the re-read of the flag


__all__ = ["POINT", "LOCK", "LINE_TRANSFER", "LOCK_HANDOFF", "IRQ_ENTRY", "CONTEXT_SWITCH", "PERCPU_HIT",
           "PAGE_STRUCT", "CPU_RELAX"]
