"""Barriers, bit operations and error pointers on simulated memory.

Barriers order KCSAN's view (the model's memory is sequentially consistent): message
passing with smp_wmb/smp_rmb or a release/acquire pair gets no report, the same code
without them does. Bit operations: the atomic ones as a lock bit (no report) against
non-atomic __set_bit from two CPUs on one word (KCSAN reports it, updates are lost)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, Machine
from percpu_kmem.linux import (
    BITS_PER_LONG,
    ERR_PTR,
    IS_ERR,
    IS_ERR_OR_NULL,
    MAX_ERRNO,
    PTR_ERR,
    READ_ONCE,
    WRITE_ONCE,
    atomic_inc,
    atomic_read,
    barrier,
    change_bit,
    clear_bit,
    clear_bit_unlock,
    cpu_relax,
    kmalloc,
    mb,
    read_u32,
    rmb,
    set_bit,
    smp_load_acquire,
    smp_mb,
    smp_mb__after_atomic,
    smp_mb__before_atomic,
    smp_rmb,
    smp_store_release,
    smp_wmb,
    test_and_change_bit,
    test_and_clear_bit,
    test_and_set_bit,
    test_and_set_bit_lock,
    test_bit,
    wmb,
    write_u32,
)
from percpu_kmem.linux import __change_bit as nonatomic_change_bit
from percpu_kmem.linux import __clear_bit as nonatomic_clear_bit
from percpu_kmem.linux import __set_bit as nonatomic_set_bit
from percpu_kmem.linux import __test_and_change_bit as nonatomic_test_and_change_bit
from percpu_kmem.linux import __test_and_clear_bit as nonatomic_test_and_clear_bit
from percpu_kmem.linux import __test_and_set_bit as nonatomic_test_and_set_bit
from percpu_kmem.runtime.errors import KmemUsageError, NotInTaskError
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(60)

SEEDS = range(3)
POLICIES = ("random", "pct", "free", "virtual")


def _words(m: Machine, n: int) -> list[int]:
    """``n`` zeroed words, each in a kmalloc'ed object of its own, made in a run before."""
    box: list[int] = []

    def setup() -> None:
        for _ in range(n):
            p = kmalloc(16, GFP_KERNEL)
            assert p is not None
            write_u32(p, 0)
            write_u32(p + 4, 0)
            box.append(p)
    m.run(setup)
    return box


def races(m: Machine) -> list[Any]:
    return m.reports_of("kcsan_data_race")


# -- message passing ---------------------------------------------------------------------------------
Style = str  # "wmb/rmb", "release/acquire", "mb", "once" (marked flag, no barrier), "plain"


def _message_passing(m: Machine, style: Style) -> int:
    data, flag = _words(m, 2)
    got: list[int] = []

    def producer() -> None:
        write_u32(data, 42)  # the message: a plain store
        if style == "wmb/rmb":
            smp_wmb()
            WRITE_ONCE(flag, 1)
        elif style == "mb":
            smp_mb()
            WRITE_ONCE(flag, 1)
        elif style == "release/acquire":
            smp_store_release(flag, 1)
        elif style == "once":
            WRITE_ONCE(flag, 1)
        else:
            write_u32(flag, 1)

    def consumer() -> None:
        while True:
            if style == "release/acquire":
                ready = smp_load_acquire(flag)
            elif style == "plain":
                ready = read_u32(flag)
            else:
                ready = READ_ONCE(flag)
            if ready:
                break
            cpu_relax()
        if style == "wmb/rmb":
            smp_rmb()
        elif style == "mb":
            smp_mb()
        got.append(read_u32(data))  # a plain load of the message
    m.run(producer, consumer)
    assert got == [42]  # the model's memory is sequentially consistent: the value is always there
    return len(races(m))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("style", ["wmb/rmb", "release/acquire", "mb"])
def test_message_passing_with_barriers_is_not_reported(policy: str, style: Style) -> None:
    explore(lambda m: _message_passing(m, style), seeds=SEEDS, policies=(policy,), cpus=2, kcsan=True)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("style", ["once", "plain"])
def test_message_passing_without_barriers_is_reported(policy: str, style: Style) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed, kcsan=True)
        _message_passing(m, style)
        reps = races(m)
        assert reps and {r.kind for r in m.reports} == {"kcsan_data_race"}
        assert all(r.lines[1] == "BUG: KCSAN: data-race in consumer / producer" for r in reps)
        if style == "once":  # the flag is marked: only the message races
            (rep,) = reps
            assert set(rep.extra["accesses"]) == {"write", "read"}


def test_a_barrier_on_one_side_only_hides_nothing() -> None:
    """smp_wmb() without the reader's smp_rmb() (and the reverse) is still a race."""
    for writer_fence, reader_fence in ((smp_wmb, barrier), (barrier, smp_rmb)):
        m = Machine(cpus=2, policy="random", seed=1, kcsan=True)
        data, flag = _words(m, 2)

        def producer() -> None:
            write_u32(data, 7)
            writer_fence()
            WRITE_ONCE(flag, 1)

        def consumer() -> None:
            while not READ_ONCE(flag):
                cpu_relax()
            reader_fence()
            read_u32(data)
        m.run(producer, consumer)
        assert len(races(m)) == 1


def test_mandatory_barriers_and_atomic_barriers_order_too() -> None:
    m = Machine(cpus=2, policy="random", seed=2, kcsan=True)
    data, cnt = _words(m, 2)

    def producer() -> None:
        write_u32(data, 5)
        wmb()
        smp_mb__before_atomic()
        atomic_inc(cnt)  # a relaxed atomic, ordered by the barrier before it

    def consumer() -> None:
        while not atomic_read(cnt):
            cpu_relax()
        smp_mb__after_atomic()
        rmb()
        mb()
        read_u32(data)
    m.run(producer, consumer)
    assert races(m) == []


def test_barriers_change_no_decision_and_need_a_task() -> None:
    with pytest.raises(NotInTaskError):
        smp_mb()
    with pytest.raises(NotInTaskError):
        barrier()
    traces = []
    for fenced in (False, True):
        m = Machine(cpus=2, policy="random", seed=4)

        def f(fenced: bool = fenced) -> None:
            for _ in range(3):
                if fenced:
                    smp_mb()
                    smp_wmb()
                    smp_rmb()
                    barrier()
                cpu_relax()
        m.run(f, f)
        traces.append(str(m.trace))
    assert traces[0] == traces[1]


def test_store_release_and_load_acquire_are_one_marked_access_each() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    (w,) = _words(m, 1)

    def f() -> int:
        smp_store_release(w, 0x1234, 2)
        return smp_load_acquire(w, 4)
    assert m.run(f)[0] == 0x1234
    with pytest.raises(KmemUsageError, match=r"smp_load_acquire: size\(=3\) must be 1, 2, 4 or 8"):
        m.run(lambda: smp_load_acquire(w, 3))
    with pytest.raises(KmemUsageError, match=r"smp_store_release: value\(='x'\)"):
        m.run(lambda: smp_store_release(w, "x"))


# -- bit operations ------------------------------------------------------------------------------------
def test_bit_operations_address_the_kernels_long_words() -> None:
    assert BITS_PER_LONG == 32
    m = Machine(cpus=1, policy="random", seed=0)
    (w,) = _words(m, 1)

    def f() -> list[Any]:
        out: list[Any] = []
        set_bit(0, w)
        set_bit(33, w)                     # bit 1 of the second long
        out.append((read_u32(w), read_u32(w + 4)))
        out.append((test_bit(33, w), test_bit(1, w)))
        change_bit(31, w)
        out.append(read_u32(w))
        out.append((test_and_set_bit(0, w), test_and_set_bit(2, w)))
        out.append((test_and_clear_bit(2, w), test_and_clear_bit(2, w)))
        out.append((test_and_change_bit(3, w), test_and_change_bit(3, w)))
        clear_bit(31, w)
        clear_bit(33, w)
        out.append((read_u32(w), read_u32(w + 4)))
        nonatomic_set_bit(4, w)
        nonatomic_change_bit(5, w)
        nonatomic_clear_bit(0, w)
        out.append(read_u32(w))
        out.append((nonatomic_test_and_set_bit(4, w), nonatomic_test_and_clear_bit(4, w),
                    nonatomic_test_and_change_bit(6, w), read_u32(w)))
        out.append((test_and_set_bit_lock(7, w), test_and_set_bit_lock(7, w)))
        clear_bit_unlock(7, w)
        out.append(test_bit(7, w))
        return out
    assert m.run(f)[0] == [
        (1, 2), (True, False), 0x80000001, (True, False), (True, False), (False, True), (1, 0),
        0x30, (True, True, False, 0x60), (False, True), False]
    assert m.reports == []


@pytest.mark.parametrize(("call", "words"), [
    (lambda w: set_bit(-1, w), r"set_bit: nr\(=-1\) must be a bit number from 0 to 2147483647"),
    (lambda w: test_bit(True, w), r"test_bit: nr\(=True\) must be a bit number"),
    (lambda w: clear_bit(1, "w"), r"clear_bit: addr\(='w'\) must be the address of the bitmap"),
    (lambda w: nonatomic_set_bit(1 << 40, w), r"__set_bit: nr\(=1099511627776\) must be a bit number"),
])
def test_bit_operations_refuse_misuse_before_touching_memory(call: Callable[[int], Any], words: str) -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    (w,) = _words(m, 1)
    with pytest.raises(KmemUsageError, match=words):
        m.run(lambda: call(w))
    assert m.run(lambda: read_u32(w))[0] == 0


def _flag_bits(m: Machine, atomic: bool) -> int:
    """Two CPUs each set their own flag bits in one shared word, many times."""
    (w,) = _words(m, 1)

    def setter(base: int) -> Callable[[], None]:
        def f() -> None:
            for i in range(4):
                (set_bit if atomic else nonatomic_set_bit)(base + i, w)
        f.__name__ = f"setter{base}"
        return f
    m.run(setter(0), setter(8))
    return int(m.run(lambda: read_u32(w))[0])


@pytest.mark.parametrize("policy", POLICIES)
def test_non_atomic_set_bit_from_two_cpus_races(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed, kcsan=True)
        _flag_bits(m, atomic=False)
        reps = races(m)
        assert reps and {r.kind for r in m.reports} == {"kcsan_data_race"}
        assert all("__set_bit" not in r.extra["functions"] for r in reps)  # the caller is named


@pytest.mark.parametrize("policy", POLICIES)
def test_atomic_set_bit_from_two_cpus_is_no_race_and_loses_nothing(policy: str) -> None:
    def twin(m: Machine) -> None:
        assert _flag_bits(m, atomic=True) == 0x0F0F
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2, kcsan=True)


def test_non_atomic_set_bit_loses_updates_in_some_schedule() -> None:
    lost = [s for s in range(30) if _flag_bits(Machine(cpus=2, policy="random", seed=s), atomic=False) != 0x0F0F]
    assert lost


def _bit_lock(m: Machine, release: str) -> int:
    """test_and_set_bit(_lock) as a lock bit guarding a plain counter."""
    lockw, counter = _words(m, 2)

    def worker() -> None:
        for _ in range(3):
            if release == "unlock":
                while test_and_set_bit_lock(0, lockw):
                    cpu_relax()
            else:
                while test_and_set_bit(0, lockw):
                    cpu_relax()
            write_u32(counter, read_u32(counter) + 1)
            if release == "unlock":
                clear_bit_unlock(0, lockw)
            else:
                smp_mb__before_atomic()
                clear_bit(0, lockw)
    m.run(worker, worker)
    return int(m.run(lambda: read_u32(counter))[0])


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("release", ["unlock", "mb+clear_bit"])
def test_a_lock_bit_used_correctly_gets_no_report(policy: str, release: str) -> None:
    def twin(m: Machine) -> None:
        assert _bit_lock(m, release) == 6
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2, kcsan=True)


# -- error pointers -----------------------------------------------------------------------------------
def test_error_pointers_round_trip_in_the_top_page() -> None:
    assert MAX_ERRNO == 4095
    p = ERR_PTR(-12)
    assert p == 0xFFFFFFF4 and IS_ERR(p) and IS_ERR_OR_NULL(p) and PTR_ERR(p) == -12
    assert PTR_ERR(ERR_PTR(-MAX_ERRNO)) == -MAX_ERRNO and IS_ERR(ERR_PTR(-1))
    assert not IS_ERR(None) and IS_ERR_OR_NULL(None) and PTR_ERR(None) == 0
    assert not IS_ERR(0xC0001000) and not IS_ERR_OR_NULL(0xC0001000)
    assert not IS_ERR(0xFFFFF000) and IS_ERR(0xFFFFF001)


@pytest.mark.parametrize(("call", "words"), [
    (lambda: ERR_PTR(0), r"ERR_PTR: error\(=0\) must be a negative errno from -4095 to -1"),
    (lambda: ERR_PTR(-4096), r"ERR_PTR: error\(=-4096\)"),
    (lambda: PTR_ERR(0xC0001000), r"PTR_ERR: ptr\(=3221229568\) must be an error pointer"),
    (lambda: IS_ERR(-12), r"IS_ERR: ptr\(=-12\) must be None \(NULL\) or an int address"),
    (lambda: IS_ERR_OR_NULL(1 << 32), r"IS_ERR_OR_NULL: ptr"),
])
def test_error_pointer_misuse_is_refused(call: Callable[[], Any], words: str) -> None:
    with pytest.raises(KmemUsageError, match=words):
        call()


def test_using_an_error_pointer_as_memory_is_the_kernels_page_fault() -> None:
    m = Machine(cpus=1, policy="random", seed=0)

    def f() -> None:
        p = ERR_PTR(-12)
        read_u32(p)
    m.run(f)
    (rep,) = m.reports
    assert rep.lines[0] == "BUG: unable to handle page fault for address: fffffff4"


def test_kernel_functions_named_test_are_not_collected_by_pytest() -> None:
    """A test module that does ``from percpu_kmem.linux import *`` gets test_bit & co.: pytest
    must not take them for tests (``__test__ = False``)."""
    from percpu_kmem import linux
    named = [n for n in linux.__all__ if n.startswith("test")]
    assert named and all(getattr(getattr(linux, n), "__test__", True) is False for n in named)


def test_find_bit_searches_the_bitmap_as_lib_find_bit() -> None:
    from percpu_kmem.linux import (
        find_first_bit,
        find_first_zero_bit,
        find_next_bit,
        find_next_zero_bit,
        for_each_set_bit,
    )
    m = Machine(cpus=1, policy="random", seed=0)
    (w,) = _words(m, 1)

    def f() -> list[Any]:
        out: list[Any] = [find_first_bit(w, 64), find_first_zero_bit(w, 64)]
        for nr in (3, 31, 32, 40):
            set_bit(nr, w)
        out += [find_first_bit(w, 64), find_next_bit(w, 64, 4), find_next_bit(w, 64, 33),
                find_next_bit(w, 40, 33), list(for_each_set_bit(w, 64)), list(for_each_set_bit(w, 32))]
        for nr in range(40):
            set_bit(nr, w)
        out += [find_first_zero_bit(w, 64), find_next_zero_bit(w, 64, 41), find_first_zero_bit(w, 40)]
        return out
    assert m.run(f)[0] == [64, 0, 3, 31, 40, 40, [3, 31, 32, 40], [3, 31], 41, 41, 40]
    with pytest.raises(KmemUsageError, match=r"find_next_bit: offset\(=-1\) must be a bit number"):
        m.run(lambda: find_next_bit(w, 64, -1))


def test_a_minor_number_bitmap_handed_out_with_find_first_zero_bit_under_a_lock() -> None:
    """The classic driver idiom: a bitmap of minors, find_first_zero_bit + __set_bit under a
    spinlock: no report under any policy, every minor handed out once."""
    from percpu_kmem.linux import find_first_zero_bit, spin_lock, spin_lock_init, spin_unlock

    def scenario(m: Machine) -> None:
        (bitmap,) = _words(m, 1)
        lock = m.run(lambda: spin_lock_init("minors"))[0]
        got: list[int] = []

        def probe() -> None:
            for _ in range(3):
                spin_lock(lock)
                minor = find_first_zero_bit(bitmap, 32)
                nonatomic_set_bit(minor, bitmap)
                spin_unlock(lock)
                got.append(minor)
        m.run(probe, probe)
        assert sorted(got) == list(range(6))
    for policy in POLICIES:
        explore(scenario, seeds=SEEDS, policies=(policy,), cpus=2, kcsan=True)


def test_ptr_err_or_zero_and_err_cast() -> None:
    from percpu_kmem.linux import ERR_CAST, PTR_ERR_OR_ZERO
    assert PTR_ERR_OR_ZERO(ERR_PTR(-22)) == -22 and PTR_ERR_OR_ZERO(0xC0001000) == 0
    assert PTR_ERR_OR_ZERO(None) == 0 and ERR_CAST(ERR_PTR(-5)) == ERR_PTR(-5)


def test_bit_macros_and_bitmap_zero() -> None:
    from percpu_kmem.linux import BIT, BIT_MASK, BIT_WORD, BITS_TO_LONGS, bitmap_zero
    assert (BIT(0), BIT(31), BIT_MASK(33), BIT_WORD(33), BITS_TO_LONGS(0), BITS_TO_LONGS(33)) == (1, 1 << 31, 2, 1, 0, 2)
    with pytest.raises(KmemUsageError, match=r"BIT: nr\(=32\) must be a bit number of an unsigned long"):
        BIT(32)
    m = Machine(cpus=1, policy="random", seed=0)
    (w,) = _words(m, 1)

    def f() -> tuple[int, int]:
        for nr in (0, 20, 40, 63):
            set_bit(nr, w)
        bitmap_zero(w, 33)  # two longs
        return read_u32(w), read_u32(w + 4)
    assert m.run(f)[0] == (0, 0)
