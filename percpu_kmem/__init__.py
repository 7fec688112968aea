"""percpu_kmem: the Linux kernel's memory-allocation interfaces on a simulated SMP machine.

    from percpu_kmem import Machine
    from percpu_kmem.linux import alloc_pages, __free_pages, GFP_KERNEL, get_cpu, put_cpu
    m = Machine(cpus=4, memory="64M", policy="random", seed=7)
    m.run(task_a, task_b)

This module lists the Python-facing names (``__all__``): the machine, reports and
traces, the errors, the testing helpers. The kernel API that simulated code calls
lives in :mod:`percpu_kmem.linux`, in sections like the kernel's headers; its names
also resolve here (``from percpu_kmem import kmalloc`` works), for code written
that way. Kernel-style functions act on the machine and CPU of the calling kernel
thread. printk goes through loguru, disabled by default:
``logger.enable("percpu_kmem")``.
"""

from loguru import logger as _logger

from .linux import *  # noqa: F403 - the kernel names resolve here too
from .machine import Machine
from .runtime.errors import (
                             Deadlock,
                             InconsistentState,
                             KernelBug,
                             KernelPanic,
                             KmemError,
                             KmemInternalError,
                             KmemUsageError,
                             Livelock,
                             MachineUnusable,
                             NoMemoryLayers,
                             NotInTaskError,
                             Oops,
                             RunTimeout,
)
from .runtime.machine import ReplayDivergedWarning, SmpMachine
from .runtime.report import Report
from .runtime.task import CPU, Task
from .runtime.trace import Decision, Trace
from .testing import UnexpectedReport, explore, find_seed

_logger.disable("percpu_kmem")

__all__ = [
    # machines and what a run leaves
    "Machine", "SmpMachine", "Report", "Trace", "Decision", "CPU", "Task", "ReplayDivergedWarning",
    # errors: one root, KmemError
    "KmemError", "KmemUsageError", "NotInTaskError", "NoMemoryLayers", "RunTimeout", "MachineUnusable",
    "KernelBug", "Oops", "Deadlock", "Livelock", "KernelPanic", "InconsistentState", "KmemInternalError",
    # testing helpers
    "explore", "find_seed", "UnexpectedReport",
]
