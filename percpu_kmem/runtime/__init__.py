"""The runtime: Machine, CPUs, tasks, scheduling policies, contexts, locks, reports.

It knows nothing about memory; the memory layers call only its primitives.
"""

from .errors import (Deadlock, InconsistentState, KernelBug, KernelPanic, KmemError, KmemInternalError,
                     KmemUsageError, Livelock, MachineUnusable, NoMemoryLayers, NotInTaskError, Oops, RunTimeout)
from .kernel import *  # noqa: F403
from .kernel import __all__ as _kernel_all
from .locks import *  # noqa: F403
from .locks import __all__ as _locks_all
from .machine import ReplayDivergedWarning, SmpMachine
from .report import Report
from .smp import on_each_cpu, smp_call_function
from .task import CPU, Task
from .trace import Decision, Trace

__all__ = sorted({*_kernel_all, *_locks_all, "SmpMachine", "Report", "Trace", "Decision", "CPU", "Task",
                  "KmemError", "KmemUsageError", "NotInTaskError", "KernelBug", "Oops", "Deadlock",
                  "KernelPanic", "KmemInternalError", "InconsistentState", "Livelock", "MachineUnusable",
                  "RunTimeout", "ReplayDivergedWarning", "smp_call_function", "on_each_cpu",
                  "NoMemoryLayers"})
