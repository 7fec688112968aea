"""Error pointers (<linux/err.h>): a negative errno carried in a pointer.

Kept: the model's addresses are i386 kernel virtual addresses, 32-bit unsigned ints
(NULL is None), and the top page of the address space, ``0xfffff001`` to
``0xffffffff``, is never mapped (vmalloc and the kmap area end below it): so
``ERR_PTR(-ENOMEM)`` is ``0xfffffff4``, ``IS_ERR()`` is ``ptr >= (unsigned long)-MAX_ERRNO``,
``PTR_ERR()`` gives the errno back, and a driver that uses an error pointer as memory
gets the Oops the kernel would give ("BUG: unable to handle page fault for address:
fffffff4").

Simplified: ``ERR_PTR()`` takes a negative errno, -MAX_ERRNO to -1 (``ERR_PTR(0)``,
which the kernel turns into NULL and static checkers flag, is refused), and
``PTR_ERR()`` takes an error pointer or NULL (0), not a valid pointer (whose "errno"
is garbage in C); ``PTR_ERR_OR_ZERO()`` takes any pointer.
"""

from __future__ import annotations

from typing import Any, Final

from ..runtime.validate import bad

#: include/linux/err.h
MAX_ERRNO: Final = 4095
_PTR_MAX: Final = 0xFFFFFFFF
_ERR_BASE: Final = _PTR_MAX + 1 - MAX_ERRNO  # (unsigned long)-MAX_ERRNO


def _ptr(fn: str, ptr: Any) -> int:
    """A pointer: None (NULL) or an int from 0 to 0xffffffff; NULL is 0 here."""
    if ptr is None:
        return 0
    if ptr.__class__ is not int or not 0 <= ptr <= _PTR_MAX:
        raise bad(fn, "ptr", ptr, "None (NULL) or an int address from 0 to 0xffffffff")
    return ptr


def ERR_PTR(error: int) -> int:
    """The pointer that carries ``error`` (a negative errno): ``(void *)error``."""
    if error.__class__ is not int or not -MAX_ERRNO <= error <= -1:
        raise bad("ERR_PTR", "error", error, f"a negative errno from -{MAX_ERRNO} to -1")
    return error & _PTR_MAX


def PTR_ERR(ptr: int | None) -> int:
    """The errno an error pointer carries (``(long)ptr``); 0 for NULL."""
    p = _ptr("PTR_ERR", ptr)
    if p and p < _ERR_BASE:
        raise bad("PTR_ERR", "ptr", ptr, "an error pointer (IS_ERR() true) or NULL: "
                  f"{p:#x} is a valid pointer, its PTR_ERR() is no errno")
    return p - (_PTR_MAX + 1) if p else 0


def PTR_ERR_OR_ZERO(ptr: int | None) -> int:
    """PTR_ERR() of an error pointer, 0 for any other pointer (NULL included)."""
    p = _ptr("PTR_ERR_OR_ZERO", ptr)
    return p - (_PTR_MAX + 1) if p >= _ERR_BASE else 0


def ERR_CAST(ptr: int | None) -> int | None:
    """The error pointer ``ptr``, passed on as a pointer of another type (the same value)."""
    _ptr("ERR_CAST", ptr)
    return ptr


def IS_ERR(ptr: int | None) -> bool:
    """Does ``ptr`` carry an errno (is it within the last MAX_ERRNO addresses)?"""
    return _ptr("IS_ERR", ptr) >= _ERR_BASE


def IS_ERR_OR_NULL(ptr: int | None) -> bool:
    """NULL, or IS_ERR()."""
    p = _ptr("IS_ERR_OR_NULL", ptr)
    return p == 0 or p >= _ERR_BASE


__all__ = ["MAX_ERRNO", "ERR_PTR", "PTR_ERR", "PTR_ERR_OR_ZERO", "ERR_CAST", "IS_ERR", "IS_ERR_OR_NULL"]
