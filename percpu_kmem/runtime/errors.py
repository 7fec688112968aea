"""The exception tree: one root, structured fields, kernel-shaped text.

Two kinds of failure exist. A *kernel bug* is something simulated kernel code did
wrong (sleeping in atomic context, a double free); it becomes a Report and, when
the machine's ``on_bug`` setting says so, a :class:`KernelBug` raised in the task.
A *usage error* is a misuse of the Python API (a bad argument to ``Machine``,
calling ``kmalloc`` outside a task); it raises :class:`KmemUsageError` at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import Report


class KmemError(Exception):
    """Root of every exception percpu_kmem raises."""


class KmemUsageError(KmemError, ValueError):
    """The Python API was misused; the message says how."""


class NotInTaskError(KmemUsageError):
    """A kernel-style function was called from outside a simulated kernel thread."""

    def __init__(self) -> None:
        super().__init__(
            "kernel functions act on the CPU of the calling kernel thread: call them from "
            "a function passed to Machine.run() (or from an interrupt handler), not from "
            "plain Python code"
        )


class NoMemoryLayers(KmemUsageError, AttributeError):
    """A memory function on a machine built with ``boot=False`` (it has only the runtime).

    Also an AttributeError, so ``getattr(m, "slab", None)`` still answers None.
    """

    def __init__(self, layer: str) -> None:
        super().__init__(f"this machine was built with boot=False: it has no memory layers "
                         f"(no m.{layer}); build it with Machine(..., boot=True) to allocate memory")


class RunTimeout(KmemUsageError):
    """A run outlived the machine's wall-clock ``timeout``.

    A usage-level error: the model did not break, the run simply took longer than
    allowed (raise ``Machine(timeout=...)``, or look for a loop in simulated code that
    never reaches a scheduling point).
    """


class MachineUnusable(KmemUsageError):
    """The machine refuses further runs: an earlier run left it in a state it cannot use.

    Raised by ``Machine.run`` when a failed run could not unwind cleanly (a task died
    holding a lock of the model itself, or a task thread could not be stopped). The
    message says what was left behind; build a new Machine.
    """


class InconsistentState(KmemError):
    """``Machine.check()`` found a structure in a state the model's invariants forbid
    (a lock still held by a task that no longer exists, a CPU left busy, ...)."""


class KernelBug(KmemError):
    """A kernel-style report raised in the task that caused it (on_bug="raise").

    Carries the structured :class:`Report`; ``str()`` is the kernel's text.
    """

    def __init__(self, report: Report) -> None:
        super().__init__(report.text)
        self.report = report


class Oops(KernelBug):
    """The task cannot go on (a CPU would hang or the kernel would oops).

    Raised in the task even when on_bug="record": the task ends, the report stays
    in ``Machine.reports`` and the rest of the run continues, as after a real oops.
    """


class Deadlock(KernelBug):
    """Every task is blocked and nothing is left to wake one (on_bug="raise")."""


class Livelock(KernelBug):
    """Every live task busy-waits (or spins, or sleeps) and none makes progress (on_bug="raise")."""


class KernelPanic(KmemError):
    """The machine panicked (on_bug="panic", or a panic() in simulated code)."""

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(f"Kernel panic - not syncing: {message}")
        self.report = report


class TaskAbort(BaseException):
    """Ends a task cooperatively when its run is aborted.

    A BaseException so that ``except Exception`` in simulated code cannot swallow it:
    Python threads cannot be killed, so every primitive checks the abort flag and
    raises this to unwind the task.
    """


class KmemInternalError(KmemError):
    """An invariant of the model itself broke: this is a percpu_kmem bug, please report it."""


__all__ = ["KmemError", "KmemUsageError", "NotInTaskError", "NoMemoryLayers", "RunTimeout", "MachineUnusable",
           "InconsistentState", "KernelBug", "Oops", "Deadlock", "Livelock", "KernelPanic", "TaskAbort",
           "KmemInternalError"]
