"""percpu_kmem: the Linux kernel's memory-allocation interfaces on a simulated SMP machine.

    from percpu_kmem import Machine, alloc_pages, __free_pages, GFP_KERNEL, get_cpu, put_cpu
    m = Machine(cpus=4, memory="64M", policy="random", seed=7)
    m.run(task_a, task_b)

Kernel-style functions act on the machine and CPU of the calling kernel thread.
printk goes through loguru, disabled by default: ``logger.enable("percpu_kmem")``.
"""

from loguru import logger as _logger

from .mm import gfp as _gfp
from .mm.access import *  # noqa: F403
from .mm.access import ACCESS_API as _ACCESS_API
from .mm import bootmem as _bootmem, kmalloc as _kmalloc, mempool as _mempool, percpu as _percpu
from .mm import slab as _slab, vmalloc as _vmalloc
from .mm.bootmem import *  # noqa: F403
from .mm.kmalloc import *  # noqa: F403
from .mm.mempool import *  # noqa: F403
from .mm.percpu import *  # noqa: F403
from .mm.slab import *  # noqa: F403
from .mm.vmalloc import *  # noqa: F403
from .mm.gfp import *  # noqa: F403
from .mm.gfp import (GFP_ZONEMASK, __GFP_BITS_MASK, __GFP_BITS_SHIFT, GFP_ATOMIC, GFP_DMA, GFP_HIGHUSER, GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_USER,
                     __GFP_COLD, __GFP_COMP, __GFP_DMA, __GFP_FS, __GFP_HIGH, __GFP_HIGHMEM, __GFP_IO,
                     __GFP_NO_GROW, __GFP_NOFAIL, __GFP_NORETRY, __GFP_NOWARN, __GFP_REPEAT, __GFP_WAIT,
                     __GFP_ZERO)
from .mm.page_alloc import *  # noqa: F403
from .mm.page_alloc import PAGE_API as _PAGE_API
from .mm.physmem import MAX_ORDER, PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE, Page, get_order
from .runtime import *  # noqa: F403
from .runtime import __all__ as _runtime_all
from .testing import UnexpectedReport, explore, find_seed

_logger.disable("percpu_kmem")

_GFP_NAMES = [n for n in _gfp.__all__ if n.startswith(("GFP_", "__GFP_"))]
_LAYER_API = [n for mod in (_bootmem, _kmalloc, _mempool, _percpu, _slab, _vmalloc) for n in mod.__all__]
__all__ = sorted({*_runtime_all, *_PAGE_API, *_ACCESS_API, *_GFP_NAMES, *_LAYER_API,
                  "MAX_ORDER", "PAGE_OFFSET", "PAGE_SHIFT", "PAGE_SIZE", "Page", "get_order",
                  "UnexpectedReport", "explore", "find_seed"})
