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

Simplified: memory ordering is sequentially consistent (the model has no store
buffers), so ``smp_mb()`` and friends would be no-ops and are not offered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from ..runtime.kernel import preempt_point
from ..runtime.task import current_task
from ..runtime.validate import bad, check_int
from .access import do_read_int, do_write_int

#: The free-running policy's serialisation of read-modify-writes (one per process: cheap,
#: uncontended under the deterministic policies, where one task runs at a time).
_RMW_GUARD: Final = threading.Lock()
_WIDTHS: Final = (1, 2, 4, 8)


def _signed32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _rmw(fn: str, v: int, op: Callable[[int], int | None]) -> tuple[int, int]:
    """One scheduling point, then load, ``op``, store as one step: (old, new) values.
    ``op`` returning None stores nothing (a failed cmpxchg)."""
    preempt_point(fn)
    t = current_task()
    k = t.machine.kasan
    if k is not None and v.__class__ is int and k.check(v, 4, True):  # instrument_atomic_read_write
        old = _signed32(int.from_bytes(k.bad_read(v, 4), "little"))
        return old, old  # reported as KASAN reports a lock-prefixed instruction: a write; not done
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
    return old, _signed32(new) if new is not None else old


def _int_arg(fn: str, name: str, i: object) -> int:
    if i.__class__ is not int:
        check_int(fn, name, i)
    return i  # type: ignore[return-value]


def atomic_read(v: int) -> int:
    """The counter's value (one load)."""
    preempt_point("atomic_read")
    return _signed32(do_read_int("atomic_read", v, 4))


def atomic_set(v: int, i: int) -> None:
    """Set the counter (one store)."""
    _int_arg("atomic_set", "i", i)
    preempt_point("atomic_set")
    do_write_int("atomic_set", v, i, 4, "i")


def atomic_add(i: int, v: int) -> None:
    _int_arg("atomic_add", "i", i)
    _rmw("atomic_add", v, lambda x: x + i)


def atomic_sub(i: int, v: int) -> None:
    _int_arg("atomic_sub", "i", i)
    _rmw("atomic_sub", v, lambda x: x - i)


def atomic_inc(v: int) -> None:
    _rmw("atomic_inc", v, lambda x: x + 1)


def atomic_dec(v: int) -> None:
    _rmw("atomic_dec", v, lambda x: x - 1)


def atomic_add_return(i: int, v: int) -> int:
    _int_arg("atomic_add_return", "i", i)
    return _rmw("atomic_add_return", v, lambda x: x + i)[1]


def atomic_sub_return(i: int, v: int) -> int:
    _int_arg("atomic_sub_return", "i", i)
    return _rmw("atomic_sub_return", v, lambda x: x - i)[1]


def atomic_inc_return(v: int) -> int:
    return _rmw("atomic_inc_return", v, lambda x: x + 1)[1]


def atomic_dec_return(v: int) -> int:
    return _rmw("atomic_dec_return", v, lambda x: x - 1)[1]


def atomic_sub_and_test(i: int, v: int) -> bool:
    """Subtract; True if the result is 0."""
    _int_arg("atomic_sub_and_test", "i", i)
    return _rmw("atomic_sub_and_test", v, lambda x: x - i)[1] == 0


def atomic_dec_and_test(v: int) -> bool:
    """Decrement; True if the result is 0 (the last reference went)."""
    return _rmw("atomic_dec_and_test", v, lambda x: x - 1)[1] == 0


def atomic_inc_and_test(v: int) -> bool:
    return _rmw("atomic_inc_and_test", v, lambda x: x + 1)[1] == 0


def atomic_add_negative(i: int, v: int) -> bool:
    """Add; True if the result is negative."""
    _int_arg("atomic_add_negative", "i", i)
    return _rmw("atomic_add_negative", v, lambda x: x + i)[1] < 0


def atomic_xchg(v: int, new: int) -> int:
    """Store ``new``; return the old value."""
    _int_arg("atomic_xchg", "new", new)
    return _rmw("atomic_xchg", v, lambda x: new)[0]


def atomic_cmpxchg(v: int, old: int, new: int) -> int:
    """Store ``new`` if the value is ``old``; return the value found (== old on success)."""
    _int_arg("atomic_cmpxchg", "old", old)
    _int_arg("atomic_cmpxchg", "new", new)
    return _rmw("atomic_cmpxchg", v, lambda x: new if x == _signed32(old) else None)[0]


def cmpxchg(ptr: int, old: int, new: int) -> int:
    """cmpxchg() on a 32-bit word at ``ptr``: as atomic_cmpxchg."""
    _int_arg("cmpxchg", "old", old)
    _int_arg("cmpxchg", "new", new)
    return _rmw("cmpxchg", ptr, lambda x: new if x == _signed32(old) else None)[0]


def xchg(ptr: int, x: int) -> int:
    """xchg() of a 32-bit word at ``ptr``: store ``x``, return the old value."""
    _int_arg("xchg", "x", x)
    return _rmw("xchg", ptr, lambda _: x)[0]


def READ_ONCE(addr: int, size: int = 4) -> int:
    """One load of ``size`` bytes (1, 2, 4 or 8) at ``addr``, unsigned: a marked access."""
    if size.__class__ is not int or size not in _WIDTHS:
        raise bad("READ_ONCE", "size", size, "1, 2, 4 or 8")
    preempt_point("READ_ONCE")
    return do_read_int("READ_ONCE", addr, size)


def WRITE_ONCE(addr: int, value: int, size: int = 4) -> None:
    """One store of ``size`` bytes (1, 2, 4 or 8) at ``addr``: a marked access."""
    if size.__class__ is not int or size not in _WIDTHS:
        raise bad("WRITE_ONCE", "size", size, "1, 2, 4 or 8")
    preempt_point("WRITE_ONCE")
    do_write_int("WRITE_ONCE", addr, value, size)


__all__ = ["atomic_read", "atomic_set", "atomic_add", "atomic_sub", "atomic_inc", "atomic_dec",
           "atomic_add_return", "atomic_sub_return", "atomic_inc_return", "atomic_dec_return",
           "atomic_sub_and_test", "atomic_dec_and_test", "atomic_inc_and_test", "atomic_add_negative",
           "atomic_xchg", "atomic_cmpxchg", "cmpxchg", "xchg", "READ_ONCE", "WRITE_ONCE"]
