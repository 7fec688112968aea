"""The runtime: the SMP machine without memory (CPUs, tasks, scheduling policies,
contexts, interrupts, locks, reports, traces).

It knows nothing about memory; the memory layers call only its primitives. The
kernel-style functions are listed in :mod:`percpu_kmem.linux`.
"""

from .errors import (
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
from .machine import ReplayDivergedWarning, SmpMachine
from .report import Report
from .task import CPU, Task
from .trace import Decision, Trace

__all__ = [
    "SmpMachine", "Report", "Trace", "Decision", "CPU", "Task", "ReplayDivergedWarning",
    "KmemError", "KmemUsageError", "NotInTaskError", "NoMemoryLayers", "RunTimeout", "MachineUnusable",
    "KernelBug", "Oops", "Deadlock", "Livelock", "KernelPanic", "InconsistentState", "KmemInternalError",
]
