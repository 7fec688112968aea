"""Boot: build the memory layers of a Machine, in start_kernel() order.

1. physical memory and zones (every page reserved, as after memmap_init_zone);
2. the boot phase: bootmem, the machine's ``init`` functions, then
   free_all_bootmem() hands every unreserved page to the buddy allocator;
3. the page allocator (watermarks, per-CPU lists) and reclaim;
4. kmem_cache_init(): the slab allocator and the kmalloc caches;
5. mempools' registry, vmalloc/ioremap and the per-CPU allocator.

Each init function returns its subsystem object and boot_machine stores it in the
machine's field (``m.slab = kmem_cache_init(m)``, ...); each layer registers its /proc
files and invariant checks on the machine itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mm import bootmem, mempool, percpu, proc, slab, vmalloc
from .mm.page_alloc import PageAllocator
from .mm.physmem import PhysMem, parse_size
from .mm.vmscan import Reclaim
from .runtime.errors import KmemUsageError

if TYPE_CHECKING:
    from .machine import Machine


def boot_machine(m: Machine) -> None:
    try:
        size = parse_size(m.memory_arg)
        mem = PhysMem(size, m.nr_nodes)
    except (ValueError, TypeError) as e:
        raise KmemUsageError(f"memory={m.memory_arg!r}: {e}") from None
    m.mem = mem
    m.bootmem = bootmem.bootmem_init(m, mem)
    bootmem.boot_phase(m, m.bootmem)
    pa = PageAllocator(m, mem)
    m.mm = pa
    pa.reclaim = Reclaim(pa)
    m.meminfo_hooks = []
    m.register_proc("buddyinfo", lambda: proc.buddyinfo(pa))
    m.register_proc("zoneinfo", lambda: proc.zoneinfo(pa))
    m.register_proc("meminfo", lambda: proc.meminfo(pa, m.meminfo_hooks))
    m.register_proc("vmstat", lambda: proc.vmstat(pa))
    m.register_checker("physmem", mem.check)
    m.register_checker("page_alloc", pa.check)
    m.register_checker("reclaim", pa.reclaim.check)
    m.slab = slab.kmem_cache_init(m)
    m.mempools = mempool.mempool_machine_init(m)
    m.vmalloc = vmalloc.vmalloc_init(m)
    m.percpu = percpu.percpu_init(m)


__all__ = ["boot_machine"]
