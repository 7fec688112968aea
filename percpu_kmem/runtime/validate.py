"""Argument checks shared by every public function: one way to say "bad input".

A leaf module (it imports only errors.py). Each check raises KmemUsageError with
the message ``"{fn}: {name}(={value!r}) must be ..."``, naming the function, the
argument and the bad value, and returns the value when it is good. Checks run at
the top of a function, before it disables preemption or interrupts, takes a lock,
moves the task or changes any state: bad input loses nothing.

Hot paths keep a one-line guard on plain ints and call a check only when the guard
fails, e.g. ``if size.__class__ is not int or size < 0: check_int("kmalloc", "size", size, low=0)``.
A bool is never an int here (``True`` is not an order, a size or a CPU number).
"""

from __future__ import annotations

from typing import Any

from .errors import KmemUsageError


def bad(fn: str, name: str, value: Any, must: str) -> KmemUsageError:
    """The error for ``fn``'s argument ``name`` holding ``value``; ``must`` says what it must be."""
    return KmemUsageError(f"{fn}: {name}(={value!r}) must be {must}")


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def check_int(fn: str, name: str, value: Any, low: int | None = None, high: int | None = None,
              what: str = "an int") -> int:
    """``value`` is a plain int (not a bool) within [low, high]."""
    if value.__class__ is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad(fn, name, value, what + _range(low, high))
    if (low is not None and value < low) or (high is not None and value > high):
        raise bad(fn, name, value, what + _range(low, high))
    return value


def check_number(fn: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                 what: str = "a number") -> float:
    """An int or a finite float (not a bool) within [low, high]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and value not in (float("inf"), float("-inf"))
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise bad(fn, name, value, what + _range(low, high))  # type: ignore[arg-type]
    return value


#: the gfp_t bits of the model (mm/gfp.py __GFP_BITS_MASK, __GFP_BITS_SHIFT 16 as in 2.6.10);
#: a mask outside them is a misuse, not a kernel flag combination
GFP_BITS_MASK = (1 << 16) - 1


def check_flags(fn: str, name: str, value: Any, mask: int = GFP_BITS_MASK, what: str = "GFP_* flags") -> int:
    """An int bit mask (not a bool, not negative) with no bit outside ``mask``."""
    if value.__class__ is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad(fn, name, value, f"an int of {what}")
    if value < 0 or value & ~mask:
        raise bad(fn, name, value, f"an int of {what} (no bits outside {mask:#x})")
    return value


def check_str(fn: str, name: str, value: Any, *, empty: bool = True, none: bool = False) -> str:
    """A str (``none``: or None; ``empty``: may be '')."""
    if value is None and none:
        return value  # type: ignore[return-value]
    if not isinstance(value, str) or (not empty and not value):
        raise bad(fn, name, value, ("a non-empty string" if not empty else "a string")
                  + (" or None" if none else ""))
    return value


def check_callable(fn: str, name: str, value: Any, *, none: bool = False, how: str = "") -> Any:
    """A callable (``none``: or None); ``how`` shows the call it must accept."""
    if value is None and none:
        return None
    if not callable(value):
        raise bad(fn, name, value, "callable" + (f" as {how}" if how else "") + (" or None" if none else ""))
    return value


def check_type(fn: str, name: str, value: Any, cls: type | tuple[type, ...], what: str) -> Any:
    """An instance of ``cls`` (``what`` names it the kernel's way: "a spinlock_t")."""
    if not isinstance(value, cls):
        raise bad(fn, name, value, what)
    return value


def check_choice(fn: str, name: str, value: Any, choices: Any) -> Any:
    """One of ``choices`` (compared by equality, bools excluded unless listed)."""
    if isinstance(value, bool) and not any(c is value for c in choices):
        raise bad(fn, name, value, "one of " + ", ".join(map(repr, choices)))
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        raise bad(fn, name, value, "one of " + ", ".join(map(repr, choices)))
    return value


def check_machine(fn: str, name: str, obj: Any, owner: Any, machine: Any, what: str) -> None:
    """``obj`` (bound to ``owner``, a Machine or None) may be used by ``machine``."""
    if owner is not None and owner is not machine:
        raise KmemUsageError(f"{fn}: {name}(={obj!r}) is {what} of another machine ({owner!r}); "
                             f"this task runs on {machine!r}")


__all__ = ["bad", "check_int", "check_number", "check_flags", "check_str", "check_callable",
           "check_type", "check_choice", "check_machine", "GFP_BITS_MASK"]
