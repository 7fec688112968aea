"""The greenlet engine: the baton engine with greenlets instead of OS threads.

``Machine(engine="greenlet")`` (deterministic policies only; needs the optional
``greenlet`` package, ``pip install percpu_kmem[greenlet]``). Every decision is
the baton engine's own (:class:`~.engine.BatonEngine`: the same policy calls, in
the same order, on the same state), so a seed gives the same trace, byte for
byte, and the same reports as under the default thread engine; only the way the
baton changes hands differs. Under threads a hand-off is a lock released by one
OS thread and acquired by another (two context switches through the kernel and
the GIL); here it is a greenlet switch inside one OS thread, a few hundred
nanoseconds.

What is kept: the run's tasks run one at a time on their own stacks; Ctrl-C and
the wall-clock timeout stop a run as under threads (the caller waits for the
driver thread, which runs the greenlets); a run's unwinding (draining, then
finishing) follows the same rules, the parked tasks unwinding one after the other
from the driver instead of at once.

What is simplified: all tasks of a run share one OS thread (the driver); each
greenlet has a context of its own, so ``current_task()`` answers per greenlet as it
does per thread under threads. A task stuck in a loop without a
scheduling point stops the whole run (under threads it stops only itself, and the
run is then unusable either way). The free policy has no greenlet form: its point
is real concurrency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import threadpool
from .engine import BatonEngine
from .errors import KmemUsageError
from .task import T_DONE, Task

if TYPE_CHECKING:
    from .machine import SmpMachine as Machine
    from .policies import Policy

ENGINES = ("thread", "greenlet")

#: the greenlet package's ``greenlet`` and ``getcurrent``, imported on first use (an import
#: statement inside a function costs microseconds at every call: these run at every run)
_GREENLET: tuple[Any, Any] | None = None


def _greenlet_api() -> tuple[Any, Any]:
    global _GREENLET
    if _GREENLET is None:
        from greenlet import getcurrent, greenlet
        _GREENLET = (greenlet, getcurrent)
    return _GREENLET


def greenlet_available() -> bool:
    """Is the optional ``greenlet`` package installed?"""
    try:
        import greenlet  # noqa: F401
    except ImportError:
        return False
    return True


def check_engine(engine: Any, policy: str) -> None:
    """Machine(engine=...): "thread" (default) or "greenlet" (deterministic policies, with
    the greenlet package installed). Raises KmemUsageError otherwise."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise KmemUsageError(f"Machine: engine(={engine!r}) must be one of {', '.join(ENGINES)}")
    if engine == "greenlet":
        if policy == "free":
            raise KmemUsageError("Machine: engine='greenlet' runs the deterministic policies (random, pct, "
                                 "virtual); policy 'free' runs real threads")
        if not greenlet_available():
            raise KmemUsageError("Machine: engine='greenlet' needs the greenlet package "
                                 "(pip install 'percpu_kmem[greenlet]')")


class GreenletEngine(BatonEngine):
    """The baton engine whose tasks are greenlets of one driver thread."""

    def __init__(self, machine: Machine, policy: Policy) -> None:
        super().__init__(machine, policy)
        self._next: Task | None = None  # the task the driver switches to next
        self._hub: Any = None
        self._greenlet = _greenlet_api()[0]

    # -- starting ------------------------------------------------------------
    def _launch(self, t: Task) -> None:
        """Nothing to start: ``t``'s greenlet is made when it first gets the baton."""

    def start(self, tasks: list[Task]) -> None:
        super().start(tasks)  # places, decides, and gives the baton to the first task
        threadpool.submit(self._drive)

    def _first_turn(self, t: Task) -> None:
        self._resume(t)

    def _glet(self, u: Task) -> Any:
        """``u``'s greenlet (``u.glet``), made in the driver thread when ``u`` first runs."""
        g = u.glet
        if g is None:
            g = u.glet = self._greenlet(lambda: self._task_main(u), parent=self._hub)
        return g

    # -- the baton --------------------------------------------------------------
    def _give_baton(self, u: Task) -> None:
        self._next = u  # the driver switches to it once the caller's greenlet ends

    def _pass_baton(self, t: Task, u: Task) -> None:
        g = u.glet
        if g is None:
            # a greenlet's stack begins where it is first switched to: start ``u`` from the
            # driver's shallow stack, not on top of ``t``'s (stacks started one on top of the
            # other make every later switch copy all of them: 16 us a switch at 128 tasks)
            self._next = u
            self._hub.switch()
        else:
            g.switch()

    def _release_parked(self) -> None:
        """The run finished: the driver unwinds every parked task once the runner stops."""
        for t in self.tasks:
            if t.state != T_DONE and t is not self.runner:
                t.budget = 0

    # -- the driver thread --------------------------------------------------------
    def _drive(self) -> None:
        """Run the tasks' greenlets until every one of them has ended.

        A task's greenlet comes back here when its function ended (it then gave the
        baton to the next task, ``_next``, or the run finished and the parked tasks are
        unwound one after the other), or to have a task started from here (``_next``).
        """
        self._hub = _greenlet_api()[1]()
        try:
            while True:
                u = self._next
                if u is not None:
                    self._next = None
                    self._glet(u).switch()
                    continue
                if not self.finished:
                    self._finish()  # a task ended without handing over: nothing else can run
                left = [t for t in self.tasks if not self._ended(t)]
                if not left:
                    return
                self._glet(left[0]).switch()
        finally:
            for t in self.tasks:
                t.glet = None  # a finished greenlet's frames go with it

    @staticmethod
    def _ended(t: Task) -> bool:
        g = t.glet
        return g is not None and g.dead


__all__ = ["ENGINES", "GreenletEngine", "check_engine", "greenlet_available"]
