"""Cycle costs the primitives charge to a CPU's virtual clock: the cost model, as data.

Ratios matter more than absolute values (docs/scalability.md justifies each default from
published figures): an uncontended lock pair is about half an allocator fast path
(Bonwick 1994: 2.0 of 3.8 us; Bonwick & Adams 2001: 186 of 356 ns); pulling a cache line
from another CPU costs several times a local hit, more from another node; time under
zone->lock is dominated by the struct pages it touches (Aaron Lu 2018). 1 cycle = 1 ns of
virtual time.

Kept: one table (:class:`CostModel`, frozen) per machine, ``Machine(costs=...)`` or
``CostModel.replace(...)`` to override any entry; the module-level constants are the
defaults (:data:`DEFAULT`), for code that charges fixed costs. Shared structures remember
which CPU last wrote their cache line (a spinlock's ``last_cpu``, a :class:`SharedLine`
for list heads and counters) and charge a transfer from the same node or another node.

Simplified: a line has one last writer (no MESI shared state: a read is charged like a
write); a lock's hand-off is constant (a queued/MCS lock) plus ``handoff_per_waiter`` for
each other CPU still spinning (a ticket lock, whose release invalidates every spinner's
line: Boyd-Wickizer et al. 2012); scheduling points and ``cpu_relax()`` are charged by the
engine at the fixed :data:`POINT` and :data:`CPU_RELAX`; context switches are in the table
but not charged (the engine does not charge them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from .errors import KmemUsageError


@dataclass(frozen=True, slots=True)
class CostModel:
    """Cycle costs of the machine's primitives (1 cycle = 1 ns of virtual time)."""

    #: an order-0 page taken from or put on this CPU's pcp list, cache hot
    percpu_hit: int = 20
    #: an object popped from or pushed onto this CPU's loaded magazine, interrupts off
    magazine_hit: int = 20
    #: spin_lock + spin_unlock, uncontended, the lock's line already in this CPU's cache
    lock: int = 20
    #: a cache line last written by another CPU of the same node
    line_same_node: int = 100
    #: a cache line last written by a CPU of another node
    line_remote_node: int = 300
    #: a contended lock passing to a waiter (line transfer + spin exit), queued lock
    lock_handoff: int = 150
    #: added to a hand-off for each other CPU still spinning (0: queued lock; > 0: ticket)
    handoff_per_waiter: int = 0
    #: one buddy split or merge step (one order) inside zone->lock
    buddy_order: int = 40
    #: growing a slab by one: the pages' set-up and the slab descriptor (constructor apart)
    slab_grow: int = 400
    #: touching one struct page (a cache miss, dominant under zone->lock)
    page_struct: int = 40
    #: interrupt entry and exit
    irq_entry: int = 300
    #: a context switch (in the table; not charged by the engine)
    context_switch: int = 1500

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise KmemUsageError(f"CostModel: {f.name}(={v!r}) must be an int >= 0 (cycles)")

    def replace(self, **changes: Any) -> CostModel:
        """A copy with some costs changed; unknown names are a usage error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise KmemUsageError(f"CostModel: unknown cost(s) {', '.join(unknown)}; the costs are "
                                 f"{', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def line(self, node: int, last_node: int) -> int:
        """Cost of pulling a line last written on ``last_node`` to a CPU of ``node``."""
        return self.line_same_node if node == last_node else self.line_remote_node


_SYSTEM_RUNNING: Final = 1  # runtime/kernel.py SYSTEM_RUNNING

#: The defaults (docs/scalability.md, "The cost model").
DEFAULT: Final = CostModel()

POINT: Final = 1  # a scheduling point with nothing else charged (engine)
CPU_RELAX: Final = 40  # one turn of a busy-wait loop: the x86 PAUSE plus the re-read of the flag (engine)
LOCK: Final = DEFAULT.lock
LINE_TRANSFER: Final = DEFAULT.line_same_node
LOCK_HANDOFF: Final = DEFAULT.lock_handoff
IRQ_ENTRY: Final = DEFAULT.irq_entry
CONTEXT_SWITCH: Final = DEFAULT.context_switch
PERCPU_HIT: Final = DEFAULT.percpu_hit
PAGE_STRUCT: Final = DEFAULT.page_struct


def check_costs(value: Any) -> CostModel:
    """``Machine(costs=...)``: a CostModel, a dict of overrides, or None for the defaults."""
    if value is None:
        return DEFAULT
    if isinstance(value, CostModel):
        return value
    if isinstance(value, dict):
        return DEFAULT.replace(**value)
    raise KmemUsageError(f"Machine: costs(={value!r}) must be a CostModel, a dict of cost overrides "
                         f"(e.g. {{'lock_handoff': 300}}) or None")


class SharedLine:
    """A cache line shared between CPUs (a list head, a global counter): who wrote it last.

    ``touch(t)`` charges ``t``'s CPU a line transfer when another CPU wrote the line last
    (from its node or another one) and makes ``t``'s CPU the writer; it counts the
    transfers in ``bounces``. Call it on slow paths only (under the structure's lock).
    """

    __slots__ = ("name", "last_cpu", "bounces")

    def __init__(self, name: str) -> None:
        self.name = name
        self.last_cpu = -1
        self.bounces = 0

    def touch(self, t: Any) -> None:
        m = t.machine
        if m.system_state != _SYSTEM_RUNNING:
            return  # boot's own work leaves no owner: the first run starts as on a plain machine
        c = t.cpu
        last = self.last_cpu
        if last != c.id:
            self.last_cpu = c.id
            if last >= 0:
                self.bounces += 1
                t.charge(m.costs.line(c.node, m.cpus[last].node))

    def __repr__(self) -> str:
        return f"<line {self.name} last_cpu={self.last_cpu} bounces={self.bounces}>"


__all__ = ["CostModel", "DEFAULT", "check_costs", "SharedLine", "POINT", "LOCK", "LINE_TRANSFER", "LOCK_HANDOFF",
           "IRQ_ENTRY", "CONTEXT_SWITCH", "PERCPU_HIT", "PAGE_STRUCT", "CPU_RELAX"]
