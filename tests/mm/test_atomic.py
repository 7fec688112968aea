"""atomic_t and READ_ONCE/WRITE_ONCE on simulated memory: one indivisible step each."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    GFP_KERNEL,
    READ_ONCE,
    WRITE_ONCE,
    atomic_add_negative,
    atomic_add_return,
    atomic_cmpxchg,
    atomic_dec_and_test,
    atomic_inc,
    atomic_read,
    atomic_set,
    atomic_sub_and_test,
    atomic_xchg,
    cmpxchg,
    kfree,
    kmalloc,
    preempt_point,
    read_u32,
    write_u32,
    xchg,
)

pytestmark = pytest.mark.timeout(60)


def _counter_run(m: Machine, atomic: bool) -> int:
    box: list[int] = []

    def setup() -> None:
        v = kmalloc(4, GFP_KERNEL)
        atomic_set(v, 0)
        box.append(v)

    m.run(setup)

    def worker() -> None:
        v = box[0]
        for _ in range(50):
            if atomic:
                atomic_inc(v)
            else:
                x = read_u32(v)  # a plain read-modify-write: two accesses
                preempt_point()
                write_u32(v, x + 1)

    m.run(worker, worker, worker, worker)
    result: list[int] = []
    m.run(lambda: result.append(atomic_read(box[0])) or kfree(box[0]))
    return result[0]


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
def test_atomic_inc_never_loses_an_update(policy: str) -> None:
    for seed in range(6):
        m = Machine(cpus=2, policy=policy, seed=seed)
        assert _counter_run(m, atomic=True) == 200, f"seed={seed}"


def test_a_plain_read_modify_write_loses_updates_under_some_seed() -> None:
    assert any(_counter_run(Machine(cpus=2, seed=s), atomic=False) < 200 for s in range(10))


def test_the_return_and_test_forms_answer_as_the_kernels() -> None:
    m = Machine(cpus=1)

    def body() -> list[object]:
        v = kmalloc(8, GFP_KERNEL)
        atomic_set(v, 2)
        out: list[object] = [atomic_dec_and_test(v), atomic_dec_and_test(v)]  # False, True
        out.append(atomic_add_return(5, v))  # 5
        out.append(atomic_sub_and_test(5, v))  # True
        out.append(atomic_add_negative(-1, v))  # True: -1
        atomic_set(v, 0x7FFFFFFF)
        atomic_inc(v)
        out.append(atomic_read(v))  # wraps as a C int
        out.append(atomic_xchg(v, 7))  # old value
        out.append(atomic_cmpxchg(v, 7, 9))  # found 7: stored 9
        out.append(atomic_cmpxchg(v, 7, 11))  # found 9: nothing stored
        out.append(atomic_read(v))
        atomic_set(v + 4, 0)  # kmalloc'ed memory is not zeroed
        out.append(cmpxchg(v + 4, 0, 3))
        out.append(xchg(v + 4, 4))
        WRITE_ONCE(v, 0xAB, 1)
        out.append(READ_ONCE(v, 1))
        kfree(v)
        return out

    (res,) = m.run(body)
    assert res == [False, True, 5, True, True, -(2 ** 31), -(2 ** 31), 7, 9, 9, 0, 3, 0xAB]


def test_bad_arguments_are_usage_errors() -> None:
    m = Machine(cpus=1)

    def body() -> None:
        v = kmalloc(8, GFP_KERNEL)
        for call in (lambda: READ_ONCE(v, 3), lambda: WRITE_ONCE(v, 1, 16), lambda: atomic_set(v, "1"),
                     lambda: atomic_add_return(1.5, v)):
            with pytest.raises(KmemUsageError):
                call()
        kfree(v)

    m.run(body)
    m.check()


def test_a_null_atomic_is_an_oops() -> None:
    m = Machine(cpus=1)
    m.run(lambda: atomic_inc(None))  # type: ignore[arg-type]
    assert "BUG: kernel NULL pointer dereference" in m.reports[0].text
