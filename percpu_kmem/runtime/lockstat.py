"""/proc/lock_stat: CONFIG_LOCK_STAT's statistics for every spinlock class of a machine.

Kept: the kernel's layout (kernel/locking/lockdep_proc.c): the ``lock_stat version 0.4``
line, the dash rules 221 wide, the thirteen columns (class name right-aligned in 40;
con-bounces, contentions, waittime-min/max/total/avg, acq-bounces, acquisitions,
holdtime-min/max/total/avg in 14), times in microseconds with two decimals, classes
sorted by contentions, and under each contended class its contention points (up to
four) between a short dash rule and a dot rule.

Simplified: times are virtual (1 cycle = 1 ns of the CPU clocks, so they are only
meaningful under the virtual-time policy); a class is the set of locks sharing a
name (or an initialisation site, for locks created without one), which is what
lockdep calls a class; a contention point is the simulated code's function and line
instead of an instruction address; the "contending points" (where the holder was)
are not kept; there are no read locks, so no -R/-W rows. Mutexes are not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from .report import code_site, relpath

WIDTH: Final = 40 + 1 + 12 * (14 + 1)
LOCKSTAT_POINTS: Final = 4


def _time(ns: int) -> str:
    """snprint_time(): ns as microseconds with two decimals, rounded."""
    ns += 5
    return f"{ns // 1000}.{(ns % 1000) // 10:02d}"


class _Class:
    __slots__ = ("name", "con_bounces", "contentions", "wait_min", "wait_max", "wait_total", "acq_bounces",
                 "acquisitions", "hold_min", "hold_max", "hold_total", "holds", "points")

    def __init__(self, name: str) -> None:
        self.name = name
        self.con_bounces = self.contentions = self.wait_total = 0
        self.acq_bounces = self.acquisitions = self.hold_total = self.holds = 0
        self.wait_min = self.wait_max = self.hold_min = self.hold_max = -1
        self.points: dict[str, int] = {}

    def add(self, lk: Any) -> None:
        self.con_bounces += lk.con_bounces
        self.acq_bounces += lk.acq_bounces
        self.acquisitions += lk.acquisitions
        if lk.contentions:
            self.wait_min = lk.wait_min if self.wait_min < 0 else min(self.wait_min, lk.wait_min)
            self.wait_max = max(self.wait_max, lk.wait_max)
            self.contentions += lk.contentions
            self.wait_total += lk.wait_cycles
        holds = lk.acquisitions - (1 if lk.locked() else 0)
        if holds > 0:
            self.hold_min = lk.hold_min if self.hold_min < 0 else min(self.hold_min, lk.hold_min)
            self.hold_max = max(self.hold_max, lk.hold_max)
            self.hold_total += lk.hold_cycles
            self.holds += holds
        for (code, line), n in (lk.con_points or {}).items():
            site = code_site(code, line)
            self.points[site] = self.points.get(site, 0) + n


def _times(nr: int, low: int, high: int, total: int) -> str:
    avg = total // nr if nr else 0
    return f"{nr:14d}" + "".join(f" {_time(max(0, v)):>14}" for v in (low, high, total, avg))


def class_name(lock: Any) -> str:
    """A lock's class name in lock_stat: its lockdep class when lockdep has one, else its
    name, or for a lock created without one, the place it was created."""
    cls = getattr(lock, "dep_class", None)
    if cls is not None and getattr(cls, "name", None):
        return str(cls.name)
    key = lock.dep_key  # (kind, file, line, bytecode offset[, name]): runtime/lockdep.py
    if len(key) == 4:  # created without a name: its site, as lockdep prints an unnamed class
        return f"{relpath(key[1])}:{key[2]}"
    return str(lock.name)


def lock_stat(locks: Iterable[Any]) -> str:
    """The text of /proc/lock_stat for ``locks`` (a machine's spinlocks)."""
    classes: dict[str, _Class] = {}
    for lk in locks:
        if not lk.acquisitions:
            continue
        name = class_name(lk)[:38]
        c = classes.get(name)
        if c is None:
            c = classes[name] = _Class(name)
        c.add(lk)
    out = ["lock_stat version 0.4", "-" * WIDTH,
           f"{'class name':>40} {'con-bounces':>14} {'contentions':>14} {'waittime-min':>14} "
           f"{'waittime-max':>14} {'waittime-total':>14} {'waittime-avg':>14} {'acq-bounces':>14} "
           f"{'acquisitions':>14} {'holdtime-min':>14} {'holdtime-max':>14} {'holdtime-total':>14} "
           f"{'holdtime-avg':>14}",
           "-" * WIDTH, ""]
    for c in sorted(classes.values(), key=lambda c: (-c.contentions, c.name)):
        out.append(f"{c.name:>40}:{c.con_bounces:14d} " + _times(c.contentions, c.wait_min, c.wait_max, c.wait_total)
                   + f" {c.acq_bounces:14d} " + _times(c.holds, c.hold_min, c.hold_max, c.hold_total))
        if not c.contentions:
            continue
        points = sorted(c.points.items(), key=lambda kv: -kv[1])[:LOCKSTAT_POINTS]
        if points:
            n = len(c.name)
            out.append(" " * (40 - n) + "-" * n)
            for site, count in points:
                func, _, where = site.partition(" (")
                out.append(f"{c.name:>40} {count:14d} {'[<' + where.rstrip(')') + '>]':>29} {func}")
            out.append("")
            out.append("." * WIDTH)
            out.append("")
    return "\n".join(out) + "\n"


__all__ = ["WIDTH", "LOCKSTAT_POINTS", "class_name", "lock_stat"]
