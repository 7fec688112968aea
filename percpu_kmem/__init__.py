"""percpu_kmem: the Linux kernel's memory-allocation interfaces on a simulated SMP machine.

    from percpu_kmem import Machine, kmalloc, kfree, GFP_KERNEL, get_cpu, put_cpu
    m = Machine(cpus=4, memory="64M", policy="random", seed=7)
    m.run(task_a, task_b)

Kernel-style functions act on the machine and CPU of the calling kernel thread.
printk goes through loguru, disabled by default: ``logger.enable("percpu_kmem")``.
"""

from loguru import logger as _logger

from .runtime import *  # noqa: F403
from .runtime import __all__ as _runtime_all

_logger.disable("percpu_kmem")

__all__ = sorted({*_runtime_all})
