"""Copying between kernel memory and user space: copy_to_user, copy_from_user, clear_user.

A driver's read() and write() move data with these (LDD3 chapter 3), and they may
sleep: the user page may have to be faulted in. Called with a spinlock held, preemption
or interrupts disabled, or from an interrupt, they are the classic "BUG: sleeping
function called from invalid context", whether or not the page happens to be present,
because the check runs first (2.6.11's ``might_sleep()``, today's ``might_fault()``).

Kept (2.6.11, arch/i386/lib/usercopy.c):

* each function calls ``might_sleep()`` first, then ``BUG_ON((long) n < 0)``: a length
  of 2**31 or more (a ``size_t`` that went negative) is "kernel BUG at FILE:LINE!";
* they return the number of bytes that could NOT be copied (0 on success), and a
  driver turns a non-zero answer into ``-EFAULT``;
* a user buffer shorter than ``n`` is a user mapping that ends: the copy stops at the
  fault, so the answer is the rest; NULL (``None``) faults at once (answer ``n``);
* ``copy_from_user`` pads what it could not copy with zero bytes, so the kernel buffer
  never keeps stale data ("If some data could not be copied, this function will pad
  the copied data to the requested size using zero bytes");
* the kernel side goes through the accessors (mm/access.py): checked by KASAN and
  KCSAN, a page fault on a bad kernel pointer, one scheduling point per copy.

Simplified: user space is not simulated as an address space. A user pointer is a
Python buffer standing for the user memory at that pointer: a ``bytearray`` or a
writable ``memoryview`` (``memoryview(buf)[off:]`` is ``buf + off``) where the kernel
writes, any bytes-like object where it reads, ``None`` for NULL; the buffer's length is
where the user mapping ends. There is no ``access_ok()`` range (every non-NULL buffer
is a user address), no ``pagefault_disable()`` (so no ``__copy_to_user_inatomic``), no
``mmap_sem`` for lockdep to see, and no ``get_user``/``put_user`` (a one-value copy is
a ``copy_to_user`` of its bytes).
"""

from __future__ import annotations

from typing import Final

from ..runtime.errors import KmemUsageError, NotInTaskError
from ..runtime.kernel import might_sleep
from ..runtime.report import skip_frames_of, user_site
from ..runtime.task import current_task
from .access import do_mem_read, do_mem_write, do_memset, kernel_addr

skip_frames_of(__file__)

#: BUG_ON((long) n < 0): a length the kernel's ``long`` sees as negative (i386: 32 bits)
_LONG_MIN_AS_ULONG: Final = 1 << 31
_ULONG: Final = 1 << 32


def _length(fn: str, n: object) -> int:
    """``n`` as the C ``unsigned long`` it is (a negative int wraps), before anything runs."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise KmemUsageError(f"{fn}: n(={n!r}) must be an int (a length in bytes)")
    if not -_ULONG < n < _ULONG:
        raise KmemUsageError(f"{fn}: n(={n:#x}) does not fit an i386 unsigned long (32 bits)")
    return n % _ULONG


def _user_dst(fn: str, to: object) -> memoryview | None:
    if to is None:
        return None
    if isinstance(to, bytearray):
        return memoryview(to)
    if isinstance(to, memoryview) and not to.readonly:
        return to.cast("B") if to.format != "B" or to.ndim != 1 else to
    raise KmemUsageError(f"{fn}: to(={type(to).__name__}) must be a writable user buffer "
                         f"(a bytearray or a writable memoryview) or None (NULL)")


def _user_src(fn: str, src: object) -> memoryview | None:
    if src is None:
        return None
    try:
        view = memoryview(src)  # type: ignore[arg-type]
    except TypeError:
        raise KmemUsageError(f"{fn}: from_(={type(src).__name__}) must be a user buffer "
                             f"(bytes, a bytearray or a memoryview) or None (NULL)") from None
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _enter(fn: str, n: int) -> bool:
    """might_sleep(), then BUG_ON((long) n < 0); False when the BUG ended the copy."""
    might_sleep()
    if n >= _LONG_MIN_AS_ULONG:
        t = current_task()
        file, line, _ = user_site(2)
        t.machine.report("bug", [f"kernel BUG at {file}:{line}!",
                                 f"{fn}: n = {n:#x} is negative as a long"], fatal=True)
        return False
    return True


def copy_to_user(to: bytearray | memoryview | None, from_: int, n: int) -> int:
    """Copy ``n`` bytes of kernel memory at ``from_`` to the user buffer ``to``; returns the
    number of bytes not copied (0 on success)."""
    if current_task() is None:
        raise NotInTaskError()
    from_ = kernel_addr("copy_to_user", from_, "from_")
    n = _length("copy_to_user", n)
    dst = _user_dst("copy_to_user", to)
    if not _enter("copy_to_user", n):
        return n
    if dst is None:
        return n
    k = min(n, len(dst))
    if k:
        dst[:k] = do_mem_read("copy_to_user", from_, k)
    return n - k


def copy_from_user(to: int, from_: bytes | bytearray | memoryview | None, n: int) -> int:
    """Copy ``n`` bytes of the user buffer ``from_`` to kernel memory at ``to``; returns the
    number of bytes not copied (0 on success), which are zeroed in the kernel buffer."""
    if current_task() is None:
        raise NotInTaskError()
    to = kernel_addr("copy_from_user", to, "to")
    n = _length("copy_from_user", n)
    src = _user_src("copy_from_user", from_)
    if not _enter("copy_from_user", n):
        return n
    k = 0 if src is None else min(n, len(src))
    if k:
        do_mem_write("copy_from_user", to, bytes(src[:k]))  # type: ignore[index]
    if k < n:
        do_memset("copy_from_user", to + k, 0, n - k)  # the zero padding
    return n - k


def clear_user(to: bytearray | memoryview | None, n: int) -> int:
    """Zero ``n`` bytes of the user buffer ``to``; returns the number of bytes not cleared."""
    if current_task() is None:
        raise NotInTaskError()
    n = _length("clear_user", n)
    dst = _user_dst("clear_user", to)
    if not _enter("clear_user", n):
        return n
    if dst is None:
        return n
    k = min(n, len(dst))
    if k:
        dst[:k] = bytes(k)
    return n - k


__all__ = ["copy_to_user", "copy_from_user", "clear_user"]
