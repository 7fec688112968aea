"""One core for the threads of a deterministic run (the thread engine's baton).

Under the random, pct and virtual policies exactly one task thread of a run holds the
baton at a time: the others are parked on their locks. Every switch is then an OS
thread hand-off: one thread releases the next one's lock and blocks on its own. When
the run has more threads than the host has cores, the kernel's scheduler spreads them
and each hand-off wakes a thread on another core, often one that is busy; keeping
them all on one core makes each hand-off a plain context switch on that core, about
half the cost with four threads or more (measured: 13-17 us against 8 us a hand-off on
the project's 2-core machine; docs/benchmarks.md). No parallelism is lost: one thread
holds the baton, and the interpreter lock serialises Python code anyway.

What is kept: the run's decisions and traces (where a thread runs is no decision of the
model). The free policy is never pinned (its point is the host scheduler's interleavings),
nor the greenlet engine (one thread), nor the caller's thread.

Simplified: the core is chosen once per process, among the cores the process may use,
by process id (so the workers of ``pytest -n`` or ``--jobs`` spread over the cores).
A pool thread stays pinned between runs (moving a thread costs a migration); the free
policy's engine gives the thread it runs a task on its affinity back first.
``PERCPU_KMEM_PIN=0`` in the environment, or :func:`set_pinning(False)`, turns it off;
it is off where ``os.sched_setaffinity`` does not exist (not Linux) or is refused.
"""

from __future__ import annotations

import os
import threading

_core: frozenset[int] | None = None  # the one-core set, once chosen
#: per thread: ``saved``, the affinity a pinned thread had before (None: not pinned)
_thread_state = threading.local()
_enabled: bool | None = None  # None: not decided yet (the environment, then the host)
_pid = -1  # the process that chose: a forked child chooses again (its own pid, its own core)


def _choose() -> bool:
    global _core, _enabled, _pid
    _pid = os.getpid()
    if os.environ.get("PERCPU_KMEM_PIN", "1") == "0" or not hasattr(os, "sched_setaffinity"):
        _enabled = False
        return False
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except OSError:
        allowed = []
    _enabled = len(allowed) > 1
    if _enabled:
        _core = frozenset({allowed[os.getpid() % len(allowed)]})
    return _enabled


def _on() -> bool:
    """Is pinning on in this process? Decided at the first use, and again in a forked child."""
    if _enabled is False:
        return False
    if _enabled is None or _pid != os.getpid():
        return _choose()
    return True


def set_pinning(on: bool) -> None:
    """Pin the task threads of deterministic runs to one core (the default on Linux
    hosts with several cores) or not. For runs that start after the call; with
    ``PERCPU_KMEM_PIN=0`` in the environment, True changes nothing."""
    global _enabled
    if not isinstance(on, bool):
        from .errors import KmemUsageError
        raise KmemUsageError(f"set_pinning(on={on!r}) takes True or False")
    if on:
        _choose()
    else:
        _enabled = False


def place(one_core: bool) -> None:
    """Put the calling task thread where its engine wants it: on the run's core
    (``one_core``, the baton engine, while pinning is on), else back where it was.

    A pinned thread stays pinned until a task of another kind runs on it: pool threads
    are reused by the next run, and moving a thread costs a migration, so it is moved
    once, not at every task."""
    saved = getattr(_thread_state, "saved", None)
    if one_core and _on():
        if saved is None:
            try:
                saved = os.sched_getaffinity(0)
                os.sched_setaffinity(0, _core)  # type: ignore[arg-type]
            except OSError:
                set_pinning(False)  # refused (a container's cgroup, say): run unpinned from now on
                return
            _thread_state.saved = saved
    elif saved is not None:  # the free policy's thread, or pinning turned off: give it back
        _thread_state.saved = None
        try:
            os.sched_setaffinity(0, saved)
        except OSError:
            pass


def pinned_core() -> int | None:
    """The core deterministic runs use now, or None when they are not pinned."""
    if not _on() or _core is None:
        return None
    return next(iter(_core))


__all__ = ["set_pinning", "place", "pinned_core"]
