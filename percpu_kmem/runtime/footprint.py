"""Footprints of scheduling steps: what a step touched, for partial-order reduction.

The exhaustive search (percpu_kmem/exhaustive.py) needs to know which objects each
step of a task touched between two scheduling decisions, so that two steps touching
nothing in common count as independent (their order does not matter). The places
where such events happen call :func:`touch` behind one guarded line::

    if _fp.active: _fp.touch("lock", lock.dep_key)

``active`` counts the runs being recorded in the process (0 almost always), so a hook
costs one attribute test when no exhaustive search runs. :func:`touch` finds the
recorder of the calling task's run (``engine.footprint``, set by the recording
policy), so machines that do not record are never disturbed by one that does.

Keys are stable across runs of the same scenario (never ``id()``): a spinlock is its
lockdep class key (its name, or its initialisation site), simulated memory is its
64-byte cache line, a task is its pid. Coarser keys only make more steps dependent:
sound, with less reduction.
"""

from __future__ import annotations

from typing import Any, Final

from .task import current_task

#: Runs being recorded in this process; the hooks do nothing while it is 0. Searches
#: counting it up and down from several threads at once may lose a count: run
#: exhaustive searches from one thread.
active = 0
#: The cache-line shift of memory keys (64-byte lines).
LINE_SHIFT: Final = 6


def touch(kind: str, key: Any, write: bool = True) -> None:
    """Record that the running step touched ``(kind, key)`` (read-only if not ``write``)."""
    t = current_task()
    if not t:
        return
    rec = getattr(t.engine, "footprint", None)
    if rec is not None:
        rec(kind, key, write)


def touch_mem(addr: int, size: int, write: bool) -> None:
    """Record an access of ``size`` bytes at ``addr``: every cache line it covers."""
    t = current_task()
    if not t:
        return
    rec = getattr(t.engine, "footprint", None)
    if rec is not None:
        for line in range(addr >> LINE_SHIFT, ((addr + max(size, 1) - 1) >> LINE_SHIFT) + 1):
            rec("mem", line, write)


__all__ = ["active", "LINE_SHIFT", "touch", "touch_mem"]
