"""Boot: build the memory layers of a Machine and hand every page to the buddy allocator.

The order follows start_kernel(): physical memory and zones, then (at the end of
the boot phase) free_all_bootmem() hands unreserved pages to the buddy
allocator, then watermarks and per-CPU lists are set up. The layers register
their /proc files and invariant checks on the machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mm import proc
from .mm.page_alloc import PageAllocator
from .mm.physmem import PhysMem, parse_size
from .mm.vmscan import Reclaim
from .runtime.errors import KmemUsageError

if TYPE_CHECKING:
    from .runtime.machine import Machine


def boot_machine(m: Machine) -> None:
    try:
        size = parse_size(m.memory_size)
        mem = PhysMem(size, m.nr_nodes)
    except (ValueError, TypeError) as e:
        raise KmemUsageError(f"memory={m.memory_size!r}: {e}") from None
    m.mem = mem
    mem.free_all_to_buddy()
    pa = PageAllocator(m, mem)
    m.mm = pa
    pa.reclaim = Reclaim(pa)
    m.meminfo_hooks = []
    m.register_proc("buddyinfo", lambda: proc.buddyinfo(pa))
    m.register_proc("zoneinfo", lambda: proc.zoneinfo(pa))
    m.register_proc("meminfo", lambda: proc.meminfo(pa, m.meminfo_hooks))
    m.register_proc("vmstat", lambda: proc.vmstat(pa))
    m.register_proc("lock_stat", lambda: proc.lock_stat([z.lock for z in pa.zones]))
    m.register_checker("physmem", mem.check)
    m.register_checker("page_alloc", pa.check)
    m.register_checker("reclaim", pa.reclaim.check)
