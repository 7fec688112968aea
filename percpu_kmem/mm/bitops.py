"""Bit operations on simulated memory (<asm/bitops.h>, include/asm-i386/bitops.h of 2.6).

``addr`` is the address of an array of ``unsigned long`` in simulated memory (a
kmalloc'ed bitmap, a flags word inside a struct), ``nr`` the bit number, as the
kernel's ``(nr, addr)``: bit ``nr`` lives in the long at ``addr + 4 * (nr / 32)``
(i386: BITS_PER_LONG is 32), at ``1 << (nr % 32)`` in it.

Kept: the atomic forms (``set_bit``, ``clear_bit``, ``change_bit``,
``test_and_set_bit``, ``test_and_clear_bit``, ``test_and_change_bit``) are one
scheduling point, then one indivisible read-modify-write of that long (the
``lock``-prefixed instructions), as mm/atomic.py's atomics; ``test_bit`` is one load.
For the data-race detector (``Machine(kcsan=True)``) they are marked accesses, as
KCSAN's instrumented bitops are: ``set_bit``/``clear_bit``/``change_bit`` are relaxed
(they order nothing: Documentation/atomic_bitops.txt), the value-returning
``test_and_*`` forms are fully ordered, ``test_and_set_bit_lock`` and
``clear_bit_unlock`` are the acquire and the release of a bit lock. The non-atomic
forms (``__set_bit``, ``__clear_bit``, ``__change_bit``, ``__test_and_set_bit``,
``__test_and_clear_bit``, ``__test_and_change_bit``) are a plain load and a plain
store with a scheduling point between them: two CPUs updating bits of one long with
them lose updates, and KCSAN reports the race.

``find_first_bit``, ``find_first_zero_bit``, ``find_next_bit``, ``find_next_zero_bit``
(lib/find_bit.c: the bit found, or ``size`` when there is none) read the longs with
plain loads, and ``for_each_set_bit(addr, size)`` is a Python iterator over the set bits.

Simplified: ``nr`` is taken from 0 to 2**31 - 1 (a negative bit number is misuse); no
``__ffs``/``ffz`` family; of the ``bitmap_*`` helpers only ``bitmap_zero`` (with the
``BIT``, ``BIT_MASK``, ``BIT_WORD`` and ``BITS_TO_LONGS`` macros). Inside a class body, give the ``__`` forms a name
of your own at module level (docs/interfaces.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from ..runtime.errors import NotInTaskError
from ..runtime.kernel import preempt_point
from ..runtime.report import skip_frames_of
from ..runtime.task import current_task
from ..runtime.validate import check_int
from .access import do_memset, do_read_int, do_write_int
from .atomic import hb_load, rmw32

skip_frames_of(__file__)  # reports name the code that called the bit operation

#: i386: bits per ``unsigned long``, and its size in bytes
BITS_PER_LONG: Final = 32
_LONG_BYTES: Final = 4
_NR_MAX: Final = (1 << 31) - 1


def _word(fn: str, nr: Any, addr: Any) -> tuple[int, int]:
    """(address of the long holding bit ``nr``, the bit's mask in it); arguments checked."""
    if nr.__class__ is not int or not 0 <= nr <= _NR_MAX:
        if not current_task():
            raise NotInTaskError()
        check_int(fn, "nr", nr, 0, _NR_MAX, "a bit number")
    if addr.__class__ is not int:
        check_int(fn, "addr", addr, 0, what="the address of the bitmap")
    return addr + _LONG_BYTES * (nr >> 5), 1 << (nr & 31)


# -- atomic ---------------------------------------------------------------------------------------
def set_bit(nr: int, addr: int) -> None:
    """Atomically set bit ``nr`` (relaxed: orders nothing; smp_mb__before_atomic() to order)."""
    w, mask = _word("set_bit", nr, addr)
    rmw32("set_bit", w, lambda x: x | mask)


def clear_bit(nr: int, addr: int) -> None:
    """Atomically clear bit ``nr`` (relaxed: not a lock release; see clear_bit_unlock())."""
    w, mask = _word("clear_bit", nr, addr)
    rmw32("clear_bit", w, lambda x: x & ~mask)


def change_bit(nr: int, addr: int) -> None:
    """Atomically flip bit ``nr`` (relaxed)."""
    w, mask = _word("change_bit", nr, addr)
    rmw32("change_bit", w, lambda x: x ^ mask)


def test_and_set_bit(nr: int, addr: int) -> bool:
    """Atomically set bit ``nr``; True if it was set already (fully ordered)."""
    w, mask = _word("test_and_set_bit", nr, addr)
    return bool(rmw32("test_and_set_bit", w, lambda x: x | mask)[0] & mask)


def test_and_clear_bit(nr: int, addr: int) -> bool:
    """Atomically clear bit ``nr``; True if it was set (fully ordered)."""
    w, mask = _word("test_and_clear_bit", nr, addr)
    return bool(rmw32("test_and_clear_bit", w, lambda x: x & ~mask)[0] & mask)


def test_and_change_bit(nr: int, addr: int) -> bool:
    """Atomically flip bit ``nr``; True if it was set (fully ordered)."""
    w, mask = _word("test_and_change_bit", nr, addr)
    return bool(rmw32("test_and_change_bit", w, lambda x: x ^ mask)[0] & mask)


def test_and_set_bit_lock(nr: int, addr: int) -> bool:
    """test_and_set_bit() for a bit lock: False means the lock is taken (acquire)."""
    w, mask = _word("test_and_set_bit_lock", nr, addr)
    return bool(rmw32("test_and_set_bit_lock", w, lambda x: x | mask)[0] & mask)


def clear_bit_unlock(nr: int, addr: int) -> None:
    """clear_bit() that releases a bit lock: what came before it happens before the next
    test_and_set_bit_lock() (or test_and_set_bit()) that takes the bit."""
    w, mask = _word("clear_bit_unlock", nr, addr)
    t = current_task()
    if t.hb is not None:  # KCSAN: a release into the word, as smp_store_release()
        t.hb.release_addr(t, w)
    rmw32("clear_bit_unlock", w, lambda x: x & ~mask)


def test_bit(nr: int, addr: int) -> bool:
    """Is bit ``nr`` set (one marked load)."""
    w, mask = _word("test_bit", nr, addr)
    t = current_task()
    preempt_point("test_bit")
    x = do_read_int("test_bit", w, _LONG_BYTES)
    if t.hb is not None:  # KCSAN: what a read barrier after this load acquires
        hb_load(t, w)
    return bool(x & mask)


# -- non-atomic -----------------------------------------------------------------------------------
def _plain(fn: str, nr: int, addr: int, op: Any) -> int:
    """A plain load, a scheduling point, a plain store: the old long."""
    w, mask = _word(fn, nr, addr)
    preempt_point(fn)
    old = do_read_int(fn, w, _LONG_BYTES)
    preempt_point(fn)
    do_write_int(fn, w, op(old, mask), _LONG_BYTES)
    return old & mask


def __set_bit(nr: int, addr: int) -> None:
    """Set bit ``nr``, not atomically: a plain read-modify-write of its long."""
    _plain("__set_bit", nr, addr, lambda x, m: x | m)


def __clear_bit(nr: int, addr: int) -> None:
    """Clear bit ``nr``, not atomically."""
    _plain("__clear_bit", nr, addr, lambda x, m: x & ~m)


def __change_bit(nr: int, addr: int) -> None:
    """Flip bit ``nr``, not atomically."""
    _plain("__change_bit", nr, addr, lambda x, m: x ^ m)


def __test_and_set_bit(nr: int, addr: int) -> bool:
    """Set bit ``nr``, not atomically; True if it was set."""
    return bool(_plain("__test_and_set_bit", nr, addr, lambda x, m: x | m))


def __test_and_clear_bit(nr: int, addr: int) -> bool:
    """Clear bit ``nr``, not atomically; True if it was set."""
    return bool(_plain("__test_and_clear_bit", nr, addr, lambda x, m: x & ~m))


def __test_and_change_bit(nr: int, addr: int) -> bool:
    """Flip bit ``nr``, not atomically; True if it was set."""
    return bool(_plain("__test_and_change_bit", nr, addr, lambda x, m: x ^ m))


# -- bit macros and bitmaps (<linux/bits.h>, <linux/bitmap.h>) -----------------------------------------
def _bit_number(fn: str, nr: Any) -> int:
    if nr.__class__ is not int or not 0 <= nr <= _NR_MAX:
        check_int(fn, "nr", nr, 0, _NR_MAX, "a bit number")
    return nr


def BIT(nr: int) -> int:
    """``1UL << nr`` (``nr`` from 0 to 31: an i386 unsigned long)."""
    if nr.__class__ is not int or not 0 <= nr < BITS_PER_LONG:
        check_int("BIT", "nr", nr, 0, BITS_PER_LONG - 1, "a bit number of an unsigned long")
    return 1 << nr


def BIT_MASK(nr: int) -> int:
    """The mask of bit ``nr`` in its long: ``1UL << (nr % BITS_PER_LONG)``."""
    return 1 << (_bit_number("BIT_MASK", nr) & 31)


def BIT_WORD(nr: int) -> int:
    """The index of the long that holds bit ``nr``: ``nr / BITS_PER_LONG``."""
    return _bit_number("BIT_WORD", nr) >> 5


def BITS_TO_LONGS(nr: int) -> int:
    """How many longs a bitmap of ``nr`` bits takes (rounded up)."""
    return (_bit_number("BITS_TO_LONGS", nr) + BITS_PER_LONG - 1) // BITS_PER_LONG


def bitmap_zero(dst: int, nbits: int) -> None:
    """Clear the bitmap of ``nbits`` bits at ``dst``: a plain memset of its longs."""
    if nbits.__class__ is not int or not 0 <= nbits <= _NR_MAX:
        if not current_task():
            raise NotInTaskError()
        check_int("bitmap_zero", "nbits", nbits, 0, _NR_MAX, "a number of bits")
    if dst.__class__ is not int and dst is not None:  # None: NULL, the Oops of a NULL memset
        check_int("bitmap_zero", "dst", dst, 0, what="the address of the bitmap")
    do_memset("bitmap_zero", dst, 0, _LONG_BYTES * ((nbits + 31) >> 5))


# -- searching a bitmap ---------------------------------------------------------------------------
def _find(fn: str, addr: Any, size: Any, offset: Any, want_set: bool) -> int:
    """lib/find_bit.c: the first bit from ``offset`` that is set (``want_set``) or clear, in
    a bitmap of ``size`` bits; ``size`` if there is none. Plain loads of the longs (the
    kernel's find_*_bit are plain C), one per long looked at."""
    if addr.__class__ is not int:
        if not current_task():
            raise NotInTaskError()
        check_int(fn, "addr", addr, 0, what="the address of the bitmap")
    if size.__class__ is not int or not 0 <= size <= _NR_MAX:
        check_int(fn, "size", size, 0, _NR_MAX, "a number of bits")
    if offset.__class__ is not int or offset < 0:
        check_int(fn, "offset", offset, 0, what="a bit number")
    nr = offset
    while nr < size:
        word = do_read_int(fn, addr + _LONG_BYTES * (nr >> 5), _LONG_BYTES)
        if not want_set:
            word = ~word & 0xFFFFFFFF
        word >>= nr & 31
        if word:
            found = nr + ((word & -word).bit_length() - 1)
            return found if found < size else size
        nr = (nr | 31) + 1
    return size


def find_first_bit(addr: int, size: int) -> int:
    """The first set bit of the bitmap of ``size`` bits at ``addr``; ``size`` if none."""
    return _find("find_first_bit", addr, size, 0, True)


def find_first_zero_bit(addr: int, size: int) -> int:
    """The first clear bit (a free minor number, say); ``size`` if none."""
    return _find("find_first_zero_bit", addr, size, 0, False)


def find_next_bit(addr: int, size: int, offset: int) -> int:
    """The first set bit at ``offset`` or after; ``size`` if none."""
    return _find("find_next_bit", addr, size, offset, True)


def find_next_zero_bit(addr: int, size: int, offset: int) -> int:
    """The first clear bit at ``offset`` or after; ``size`` if none."""
    return _find("find_next_zero_bit", addr, size, offset, False)


def for_each_set_bit(addr: int, size: int) -> Iterator[int]:
    """``for bit in for_each_set_bit(addr, size):`` the set bits, lowest first, found one by
    one with find_next_bit() as the kernel's macro does (the first when it is called)."""
    return _set_bits(addr, size, _find("for_each_set_bit", addr, size, 0, True))


def _set_bits(addr: int, size: int, bit: int) -> Iterator[int]:
    while bit < size:
        yield bit
        bit = find_next_bit(addr, size, bit + 1)


# pytest collects functions named test_* that a test module imports (``from percpu_kmem.linux
# import *``): these are kernel functions, not tests
for _fn in (test_and_set_bit, test_and_clear_bit, test_and_change_bit, test_and_set_bit_lock, test_bit):
    _fn.__test__ = False  # type: ignore[attr-defined]
del _fn

__all__ = ["BIT", "BIT_MASK", "BIT_WORD", "BITS_TO_LONGS", "bitmap_zero",
           "find_first_bit", "find_first_zero_bit", "find_next_bit", "find_next_zero_bit", "for_each_set_bit",
           "BITS_PER_LONG", "set_bit", "clear_bit", "change_bit", "test_and_set_bit", "test_and_clear_bit",
           "test_and_change_bit", "test_and_set_bit_lock", "clear_bit_unlock", "test_bit", "__set_bit",
           "__clear_bit", "__change_bit", "__test_and_set_bit", "__test_and_clear_bit", "__test_and_change_bit"]
