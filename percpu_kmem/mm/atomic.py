"""Atomic operations and marked accesses on simulated memory.

Models include/asm-i386/atomic.h and system.h of 2.6 (``atomic_t`` is a 32-bit signed
``int`` in memory; the ``lock``-prefixed instructions make every operation one
indivisible step) and today's ``READ_ONCE``/``WRITE_ONCE``. An ``atomic_t`` is the
address of 4 bytes of simulated memory (inside a kmalloc'ed struct, a per-CPU area, a
vmalloc'ed buffer); ``v`` below is that address, as the kernel's ``atomic_t *v``.

Kept: each operation is one scheduling point, taken before it, and then one
indivisible read-modify-write: no other CPU's access to the same memory can come
between its load and its store, under any policy (the free-running one serialises
them with a lock of the machine). Values wrap as a C int does. The ``_and_test``,
``_return``, ``add_negative``, ``cmpxchg`` and ``xchg`` forms return what the kernel's
do. ``READ_ONCE``/``WRITE_ONCE`` are single accesses of 1, 2, 4 or 8 bytes, the marked
accesses a data-race detector does not report.

Barriers (<asm/system.h>, <asm/barrier.h>, <linux/compiler.h>): ``barrier``, ``mb``,
``rmb``, ``wmb``, ``smp_mb``, ``smp_rmb``, ``smp_wmb``, ``smp_mb__before_atomic``,
``smp_mb__after_atomic``, ``smp_store_release`` and ``smp_load_acquire``. The model's
memory is sequentially consistent (no store buffers, no reordering by a compiler or a
CPU), so a barrier changes no value a program can see and is no scheduling point: it
costs nothing and changes no decision. What a barrier does in the model is order
accesses for the data-race detector (``Machine(kcsan=True)``, docs/kcsan.md), as the
Linux-kernel memory model (tools/memory-model) orders them, fence by fence:

- a write barrier (``smp_wmb``, ``wmb``, and the full ones) makes every marked store
  the CPU does after it (WRITE_ONCE, atomic_set, the bit operations, relaxed atomics) a
  release of everything before the barrier, into that address;
- a read barrier (``smp_rmb``, ``rmb``, and the full ones) makes what the marked loads
  before it (READ_ONCE, atomic_read, test_bit, relaxed atomics) read from such a
  release happen before everything after the barrier;
- ``smp_store_release`` is a store that releases what came before it,
  ``smp_load_acquire`` a load that acquires what the store it reads released;
  ``barrier()`` (a compiler barrier) orders nothing between CPUs.

So message passing with WRITE_ONCE/smp_wmb and READ_ONCE/smp_rmb (or a release/acquire
pair) is not reported, and the same code without the barriers, or with plain accesses
for the flag, is. Simplified: a load takes the release of the address's last releasing
store (the model has no reads-from of older values), and a relaxed store without a
barrier does not end an earlier release of the address.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from ..runtime.errors import NotInTaskError
from ..runtime.hb import join
from ..runtime.kernel import preempt_point
from ..runtime.task import Task, current_task
from ..runtime.validate import bad, check_int
from .access import do_read_int, do_write_int, value_arg

#: The free-running policy's serialisation of read-modify-writes (one per process: cheap,
#: uncontended under the deterministic policies, where one task runs at a time).
_RMW_GUARD: Final = threading.Lock()
_WIDTHS: Final = (1, 2, 4, 8)


def _signed32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def rmw32(fn: str, v: int, op: Callable[[int], int | None]) -> tuple[int, int]:
    """One scheduling point, then load, ``op``, store as one step: (old, new) values.
    ``op`` returning None stores nothing (a failed cmpxchg)."""
    preempt_point(fn)
    t = current_task()
    k = t.machine.kasan
    if k is not None and v.__class__ is int and k.check(v, 4, True):  # instrument_atomic_read_write
        old = _signed32(int.from_bytes(k.bad_read(v, 4), "little"))
        return old, old  # reported as KASAN reports a lock-prefixed instruction: a write; not done
    hb = t.hb
    if hb is not None and v.__class__ is int:  # KCSAN: barriers around a relaxed RMW (smp_mb__*_atomic)
        hb_store(t, v)
    budget = t.budget
    t.budget = 1 << 30  # no decision between the load and the store
    try:
        with _RMW_GUARD:
            old = _signed32(do_read_int(fn, v, 4))
            new = op(old)
            if new is not None:
                do_write_int(fn, v, new, 4)
    finally:
        t.budget = budget
    if hb is not None:
        hb_load(t, v)
    return old, _signed32(new) if new is not None else old


def _int_arg(fn: str, name: str, i: object) -> int:
    if i.__class__ is not int:
        check_int(fn, name, i)
    return i  # type: ignore[return-value]


def atomic_read(v: int) -> int:
    """The counter's value (one load)."""
    t = current_task()
    b = t.budget - 1  # preempt_point("atomic_read"), inline
    t.budget = b
    if b <= 0:
        t.engine.decide(t, "atomic_read")
    x = _signed32(do_read_int("atomic_read", v, 4))
    if t.hb is not None:  # KCSAN: what a read barrier after this load acquires
        hb_load(t, v)
    return x


def atomic_set(v: int, i: int) -> None:
    """Set the counter (one store)."""
    _int_arg("atomic_set", "i", i)
    t = current_task()
    b = t.budget - 1  # preempt_point("atomic_set"), inline
    t.budget = b
    if b <= 0:
        t.engine.decide(t, "atomic_set")
    if t.hb is not None and v.__class__ is int:  # KCSAN: a store after a write barrier releases
        hb_store(t, v)
    do_write_int("atomic_set", v, i, 4, "i")


def atomic_add(i: int, v: int) -> None:
    _int_arg("atomic_add", "i", i)
    rmw32("atomic_add", v, lambda x: x + i)


def atomic_sub(i: int, v: int) -> None:
    _int_arg("atomic_sub", "i", i)
    rmw32("atomic_sub", v, lambda x: x - i)


def atomic_inc(v: int) -> None:
    rmw32("atomic_inc", v, lambda x: x + 1)


def atomic_dec(v: int) -> None:
    rmw32("atomic_dec", v, lambda x: x - 1)


def atomic_add_return(i: int, v: int) -> int:
    _int_arg("atomic_add_return", "i", i)
    return rmw32("atomic_add_return", v, lambda x: x + i)[1]


def atomic_sub_return(i: int, v: int) -> int:
    _int_arg("atomic_sub_return", "i", i)
    return rmw32("atomic_sub_return", v, lambda x: x - i)[1]


def atomic_inc_return(v: int) -> int:
    return rmw32("atomic_inc_return", v, lambda x: x + 1)[1]


def atomic_dec_return(v: int) -> int:
    return rmw32("atomic_dec_return", v, lambda x: x - 1)[1]


def atomic_sub_and_test(i: int, v: int) -> bool:
    """Subtract; True if the result is 0."""
    _int_arg("atomic_sub_and_test", "i", i)
    return rmw32("atomic_sub_and_test", v, lambda x: x - i)[1] == 0


def atomic_dec_and_test(v: int) -> bool:
    """Decrement; True if the result is 0 (the last reference went)."""
    return rmw32("atomic_dec_and_test", v, lambda x: x - 1)[1] == 0


def atomic_inc_and_test(v: int) -> bool:
    return rmw32("atomic_inc_and_test", v, lambda x: x + 1)[1] == 0


def atomic_add_negative(i: int, v: int) -> bool:
    """Add; True if the result is negative."""
    _int_arg("atomic_add_negative", "i", i)
    return rmw32("atomic_add_negative", v, lambda x: x + i)[1] < 0


def atomic_xchg(v: int, new: int) -> int:
    """Store ``new``; return the old value."""
    _int_arg("atomic_xchg", "new", new)
    return rmw32("atomic_xchg", v, lambda x: new)[0]


def atomic_cmpxchg(v: int, old: int, new: int) -> int:
    """Store ``new`` if the value is ``old``; return the value found (== old on success)."""
    _int_arg("atomic_cmpxchg", "old", old)
    _int_arg("atomic_cmpxchg", "new", new)
    return rmw32("atomic_cmpxchg", v, lambda x: new if x == _signed32(old) else None)[0]


def cmpxchg(ptr: int, old: int, new: int) -> int:
    """cmpxchg() on a 32-bit word at ``ptr``: as atomic_cmpxchg."""
    _int_arg("cmpxchg", "old", old)
    _int_arg("cmpxchg", "new", new)
    return rmw32("cmpxchg", ptr, lambda x: new if x == _signed32(old) else None)[0]


def xchg(ptr: int, x: int) -> int:
    """xchg() of a 32-bit word at ``ptr``: store ``x``, return the old value."""
    _int_arg("xchg", "x", x)
    return rmw32("xchg", ptr, lambda _: x)[0]


def READ_ONCE(addr: int, size: int = 4) -> int:
    """One load of ``size`` bytes (1, 2, 4 or 8) at ``addr``, unsigned: a marked access."""
    if size.__class__ is not int or size not in _WIDTHS:
        raise bad("READ_ONCE", "size", size, "1, 2, 4 or 8")
    t = current_task()
    b = t.budget - 1  # preempt_point("READ_ONCE"), inline
    t.budget = b
    if b <= 0:
        t.engine.decide(t, "READ_ONCE")
    x = do_read_int("READ_ONCE", addr, size)
    if t.hb is not None:  # KCSAN: what a read barrier after this load acquires
        hb_load(t, addr)
    return x


def WRITE_ONCE(addr: int, value: int, size: int = 4) -> None:
    """One store of ``size`` bytes (1, 2, 4 or 8) at ``addr``: a marked access."""
    if size.__class__ is not int or size not in _WIDTHS:
        raise bad("WRITE_ONCE", "size", size, "1, 2, 4 or 8")
    t = current_task()
    b = t.budget - 1  # preempt_point("WRITE_ONCE"), inline
    t.budget = b
    if b <= 0:
        t.engine.decide(t, "WRITE_ONCE")
    if t.hb is not None and addr.__class__ is int:  # KCSAN: a store after a write barrier releases
        hb_store(t, addr)
    do_write_int("WRITE_ONCE", addr, value, size)


# -- barriers ----------------------------------------------------------------------------------
#: keys of the fence clocks in HappensBefore.lock_clock (dropped with the run's state):
#: (_REL, actor id) the clock of the actor's last write barrier, (_ACQ, actor id) what its
#: marked loads since read from releases
_REL: Final = "smp_wmb"
_ACQ: Final = "smp_rmb"


def hb_store(t: Task, addr: int) -> None:
    """A marked store to ``addr`` by ``t`` (KCSAN on), before it is made: after a write
    barrier, it releases the barrier's clock into the address."""
    hb = t.hb
    with hb.lock:
        a = hb.actor_of(t)
        rel = hb.lock_clock.get((_REL, a.id))
        if rel is not None:
            clk = hb.sync.get(addr)
            if clk is None:
                hb.sync[addr] = dict(rel)
            else:
                join(clk, rel)


def hb_load(t: Task, addr: int) -> None:
    """A marked load of ``addr`` by ``t`` (KCSAN on), after it is made: a read barrier
    later acquires the release the address holds."""
    hb = t.hb
    with hb.lock:
        clk = hb.sync.get(addr)
        if clk is None:
            return
        a = hb.actor_of(t)
        key = (_ACQ, a.id)
        acq = hb.lock_clock.get(key)
        if acq is None:
            hb.lock_clock[key] = dict(clk)
        else:
            join(acq, clk)


def _fence(fn: str, acquire: bool, release: bool) -> None:
    t = current_task()
    hb = t.hb  # NotInTaskError outside a task
    if hb is None:
        return
    with hb.lock:
        a = hb.actor_of(t)
        if acquire:
            acq = hb.lock_clock.pop((_ACQ, a.id), None)
            if acq is not None:
                join(a.vc, acq)
        if release:
            hb.lock_clock[(_REL, a.id)] = dict(a.vc)
            a.tick()


def barrier() -> None:
    """The compiler barrier: nothing to do in the model, and it orders nothing between CPUs."""
    if not current_task():
        raise NotInTaskError()


def mb() -> None:
    """Full barrier: orders loads and stores before it against those after it."""
    _fence("mb", True, True)


def rmb() -> None:
    """Read barrier: loads before it against loads after it."""
    _fence("rmb", True, False)


def wmb() -> None:
    """Write barrier: stores before it against stores after it."""
    _fence("wmb", False, True)


def smp_mb() -> None:
    """mb() between CPUs (the model makes no difference between the two)."""
    _fence("smp_mb", True, True)


def smp_rmb() -> None:
    """rmb() between CPUs."""
    _fence("smp_rmb", True, False)


def smp_wmb() -> None:
    """wmb() between CPUs."""
    _fence("smp_wmb", False, True)


def smp_mb__before_atomic() -> None:
    """A full barrier before a non-value-returning atomic (atomic_inc, set_bit, clear_bit...)."""
    _fence("smp_mb__before_atomic", True, True)


def smp_mb__after_atomic() -> None:
    """A full barrier after a non-value-returning atomic."""
    _fence("smp_mb__after_atomic", True, True)


def smp_load_acquire(addr: int, size: int = 4) -> int:
    """READ_ONCE() that orders every access after it after the load, and so after what the
    store it reads released (smp_store_release)."""
    if size.__class__ is not int or size not in _WIDTHS:
        raise bad("smp_load_acquire", "size", size, "1, 2, 4 or 8")
    t = current_task()
    preempt_point("smp_load_acquire")
    x = do_read_int("smp_load_acquire", addr, size)
    if t.hb is not None and addr.__class__ is int:
        t.hb.acquire_addr(t, addr)
    return x


def smp_store_release(addr: int, value: int, size: int = 4) -> None:
    """WRITE_ONCE() that orders every access before it before the store: a load-acquire
    that reads it sees them all."""
    if size.__class__ is not int or size not in _WIDTHS:
        raise bad("smp_store_release", "size", size, "1, 2, 4 or 8")
    t = current_task()
    if value.__class__ is not int:
        value_arg("smp_store_release", value)
    preempt_point("smp_store_release")
    if t.hb is not None and addr.__class__ is int:
        t.hb.release_addr(t, addr)
    do_write_int("smp_store_release", addr, value, size)


__all__ = ["atomic_read", "atomic_set", "atomic_add", "atomic_sub", "atomic_inc", "atomic_dec",
           "atomic_add_return", "atomic_sub_return", "atomic_inc_return", "atomic_dec_return",
           "atomic_sub_and_test", "atomic_dec_and_test", "atomic_inc_and_test", "atomic_add_negative",
           "atomic_xchg", "atomic_cmpxchg", "cmpxchg", "xchg", "READ_ONCE", "WRITE_ONCE",
           "rmw32", "hb_store", "hb_load", "barrier", "mb", "rmb", "wmb", "smp_mb", "smp_rmb", "smp_wmb",
           "smp_mb__before_atomic", "smp_mb__after_atomic", "smp_load_acquire", "smp_store_release"]
