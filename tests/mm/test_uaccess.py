"""copy_to_user, copy_from_user and clear_user (mm/uaccess.py): what they copy, what they
answer, and when they are reported."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import KmemUsageError, Machine, NotInTaskError
from percpu_kmem.linux import (
    GFP_ATOMIC,
    GFP_KERNEL,
    clear_user,
    copy_from_user,
    copy_to_user,
    kfree,
    kmalloc,
    local_irq_restore,
    local_irq_save,
    mem_read,
    mem_write,
    memset,
    raise_irq,
    request_irq,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)

pytestmark = pytest.mark.timeout(60)


def _one(fn: Any, **kw: Any) -> Machine:
    m = Machine(cpus=1, seed=0, **kw)
    m.run(fn)
    return m


def test_copy_to_user_copies_and_answers_zero() -> None:
    user = bytearray(8)
    out: list[int] = []

    def body() -> None:
        p = kmalloc(8, GFP_KERNEL)
        mem_write(p, b"abcdefgh")
        out.append(copy_to_user(user, p, 8))
        out.append(copy_to_user(memoryview(user)[6:], p, 2))   # buf + 6
        kfree(p)

    m = _one(body)
    assert out == [0, 0] and user == b"abcdefab" and not m.reports


def test_a_short_or_null_user_buffer_answers_the_bytes_not_copied() -> None:
    out: list[int] = []
    user = bytearray(3)

    def body() -> None:
        p = kmalloc(8, GFP_KERNEL)
        mem_write(p, b"abcdefgh")
        out.append(copy_to_user(user, p, 8))     # the user mapping ends after 3 bytes
        out.append(copy_to_user(None, p, 8))     # NULL: nothing copied
        out.append(copy_to_user(user, p, 0))
        kfree(p)

    m = _one(body)
    assert out == [5, 8, 0] and user == b"abc" and not m.reports


def test_copy_from_user_pads_what_it_could_not_copy_with_zeros() -> None:
    seen: list[Any] = []

    def body() -> None:
        p = kmalloc(8, GFP_KERNEL)
        memset(p, 0xEE, 8)
        seen.append(copy_from_user(p, b"xyz", 8))      # 3 copied, 5 zeroed
        seen.append(mem_read(p, 8))
        memset(p, 0xEE, 8)
        seen.append(copy_from_user(p, None, 4))        # NULL user pointer: all 4 zeroed
        seen.append(mem_read(p, 8))
        seen.append(copy_from_user(p, bytearray(b"12345678"), 8))
        seen.append(mem_read(p, 8))
        kfree(p)

    m = _one(body)
    assert seen == [5, b"xyz\0\0\0\0\0", 4, b"\0\0\0\0" + b"\xee" * 4, 0, b"12345678"]
    assert not m.reports


def test_clear_user_zeroes_the_user_buffer() -> None:
    user = bytearray(b"abcdef")
    out: list[int] = []
    m = _one(lambda: out.extend([clear_user(memoryview(user)[1:], 3), clear_user(user, 10)]))
    assert out == [0, 4] and user == bytes(6) and not m.reports


@pytest.mark.parametrize("policy", ["random", "pct", "free", "virtual"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_copy_to_user_under_a_spinlock_is_sleeping_in_atomic(policy: str, seed: int) -> None:
    lock = spin_lock_init("dev_lock")
    user = bytearray(4)

    def read() -> None:
        p = kmalloc(4, GFP_KERNEL)
        spin_lock(lock)
        copy_to_user(user, p, 4)
        spin_unlock(lock)
        kfree(p)

    m = Machine(cpus=2, policy=policy, seed=seed)
    m.run(read, read)
    kinds = [r.kind for r in m.reports]
    assert kinds and set(kinds) == {"sleep_in_atomic"}
    assert m.reports[0].text.startswith(
        "BUG: sleeping function called from invalid context at tests/mm/test_uaccess.py:")
    m.check()


@pytest.mark.parametrize("fn", ["copy_to_user", "copy_from_user", "clear_user"])
def test_every_copy_may_sleep_so_irqs_off_and_interrupts_are_reported(fn: str) -> None:
    user = bytearray(4)

    def copy(p: int) -> None:
        if fn == "copy_to_user":
            copy_to_user(user, p, 4)
        elif fn == "copy_from_user":
            copy_from_user(p, b"abcd", 4)
        else:
            clear_user(user, 4)

    def body() -> None:
        p = kmalloc(4, GFP_KERNEL)
        flags = local_irq_save()
        copy(p)
        local_irq_restore(flags)
        kfree(p)

    m = _one(body)
    assert [r.kind for r in m.reports] == ["sleep_in_atomic"]
    assert "irqs_disabled(): 1" in m.reports[0].text

    def handler(irq: int, dev: Any) -> None:
        p = kmalloc(4, GFP_ATOMIC)
        copy(p)
        kfree(p)

    def in_irq() -> None:
        irq = request_irq(5, handler, 0, "dev")
        assert irq == 0
        raise_irq(5)

    m = _one(in_irq)
    assert "sleep_in_atomic" in [r.kind for r in m.reports]


def test_a_length_that_is_negative_as_a_long_is_a_kernel_bug() -> None:
    user = bytearray(4)
    m = Machine(cpus=1, seed=0)
    m.run(lambda: copy_to_user(user, kmalloc(4, GFP_KERNEL), -1))
    assert [r.kind for r in m.reports] == ["bug"]
    assert m.reports[0].text.startswith("kernel BUG at ")
    assert user == bytes(4)


@pytest.mark.parametrize("call, message", [
    (lambda p: copy_to_user(b"read-only", p, 4), "copy_to_user: to(=bytes) must be a writable user buffer"),
    (lambda p: copy_to_user(bytearray(4), "p", 4), "copy_to_user: from_(='p') must be an int"),
    (lambda p: copy_from_user(p, 42, 4), "copy_from_user: from_(=int) must be a user buffer"),
    (lambda p: copy_from_user(p, b"ab", 1.5), "copy_from_user: n(=1.5) must be an int"),
    (lambda p: clear_user(bytearray(2), 1 << 40), "clear_user: n(=0x10000000000) does not fit"),
])
def test_python_misuse_is_refused_before_anything_happens(call: Any, message: str) -> None:
    errors: list[str] = []

    def body() -> None:
        p = kmalloc(4, GFP_KERNEL)
        lock = spin_lock_init("l")
        spin_lock(lock)                      # a misuse is refused before might_sleep() reports
        try:
            call(p)
        except KmemUsageError as e:
            errors.append(str(e))
        spin_unlock(lock)
        kfree(p)

    m = _one(body)
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert not m.reports


def test_outside_a_task_is_refused() -> None:
    with pytest.raises(NotInTaskError):
        copy_to_user(bytearray(1), 0, 1)
