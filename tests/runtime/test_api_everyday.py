"""The small everyday kernel API around allocation: jiffies arithmetic and delays, the
WARN/BUG family, CPU masks, smp_call_function_single, the interruptible sleeps.

Each classic misuse has a bug scenario and its fixed twin, run under several policies
and seeds: the bug is reported (or misbehaves as in the kernel) on every run, the twin
gets no report at all."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, Machine
from percpu_kmem.linux import (
    BUG_ON,
    HZ,
    MAX_JIFFY_OFFSET,
    NR_CPUS,
    READ_ONCE,
    WARN,
    WARN_ON,
    WARN_ON_ONCE,
    WARN_ONCE,
    WRITE_ONCE,
    cpu_online,
    cpu_possible,
    current,
    for_each_online_cpu,
    for_each_possible_cpu,
    init_waitqueue_head,
    jiffies,
    jiffies_to_msecs,
    jiffies_to_usecs,
    kmalloc,
    ktime_get_ns,
    local_irq_disable,
    local_irq_enable,
    msecs_to_jiffies,
    msleep,
    msleep_interruptible,
    mutex_init,
    mutex_lock_interruptible,
    mutex_unlock,
    num_online_cpus,
    num_possible_cpus,
    read_u32,
    schedule_timeout_interruptible,
    smp_call_function_single,
    smp_processor_id,
    ssleep,
    time_after,
    time_after_eq,
    time_before,
    time_before_eq,
    time_in_range,
    usecs_to_jiffies,
    wait_event_interruptible_timeout,
    wake_up,
    wake_up_process,
    write_u32,
)
from percpu_kmem.runtime.errors import KmemUsageError, NotInTaskError
from percpu_kmem.runtime.machine import MAX_CPUS
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(60)

SEEDS = range(3)
POLICIES = ("random", "pct", "free", "virtual")
ULONG = 1 << 32


# -- jiffies arithmetic --------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "after"), [
    (5, 3, True), (3, 5, False), (4, 4, False),
    (2, ULONG - 3, True),           # 2 comes 5 jiffies after 0xfffffffd: across the wrap
    (ULONG - 3, 2, False),
    (ULONG + 2, ULONG - 3, True),   # jiffies() + HZ past the wrap, as C's unsigned long takes it
    (-1, 3, False), (0x80000001, 0, False), (0x7FFFFFFF, 0, True),
])
def test_time_after_is_the_kernels_signed_difference_of_32_bit_values(a: int, b: int, after: bool) -> None:
    assert time_after(a, b) is after
    assert time_before(b, a) is after
    assert time_after_eq(a, b) is (after or (a - b) % ULONG == 0)
    assert time_before_eq(b, a) is time_after_eq(a, b)


def test_time_in_range_and_equal_times() -> None:
    assert time_after_eq(7, 7) and time_before_eq(7, 7) and not time_before(7, 7)
    assert time_in_range(ULONG - 1, ULONG - 5, 3)
    assert time_in_range(1, ULONG - 5, 3)
    assert not time_in_range(4, ULONG - 5, 3)
    assert time_in_range(3, 3, 3)


def test_conversions_round_as_the_kernels_at_hz_1000() -> None:
    assert HZ == 1000
    assert msecs_to_jiffies(0) == 0 and msecs_to_jiffies(250) == 250
    assert usecs_to_jiffies(1) == 1 and usecs_to_jiffies(1000) == 1 and usecs_to_jiffies(1001) == 2
    assert usecs_to_jiffies(0) == 0
    assert MAX_JIFFY_OFFSET == 0x3FFFFFFE
    assert msecs_to_jiffies(0x80000000) == MAX_JIFFY_OFFSET  # (int)m < 0: an infinite timeout
    assert usecs_to_jiffies(0xFFFFFFFF) == MAX_JIFFY_OFFSET
    assert jiffies_to_msecs(1234) == 1234
    assert jiffies_to_usecs(5) == 5000
    assert jiffies_to_usecs(0xFFFFFFFF) == (1000 * 0xFFFFFFFF) & 0xFFFFFFFF  # unsigned int result


@pytest.mark.parametrize(("call", "words"), [
    (lambda: time_after(1.5, 2), "time_after: a(=1.5) must be an int jiffies value"),
    (lambda: time_before(1, True), "time_before: b(=True) must be an int jiffies value"),
    (lambda: time_in_range(1, 2, "3"), "time_in_range: c(='3') must be an int jiffies value"),
    (lambda: msecs_to_jiffies(-1), "msecs_to_jiffies: m(=-1) must be an unsigned int from 0 to 4294967295"),
    (lambda: usecs_to_jiffies(1 << 32), "usecs_to_jiffies: u(=4294967296) must be an unsigned int"),
    (lambda: jiffies_to_msecs(-5), "jiffies_to_msecs: j(=-5) must be an unsigned long"),
])
def test_jiffies_arithmetic_refuses_misuse(call: Any, words: str) -> None:
    with pytest.raises(KmemUsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()


def _advance_to(target: int) -> None:
    """Let virtual time pass (sleeping interruptibly: khungtaskd does not mind) until it is
    ``target`` jiffies since the clock started (not wrapped: ktime_get_ns() does not wrap)."""
    while (now := ktime_get_ns() // 1_000_000) < target:
        schedule_timeout_interruptible(min(target - now, MAX_JIFFY_OFFSET))


NEAR_WRAP = ULONG - 40  # jiffies 40 ms before it wraps to 0; the device answers 20 ms after the wrap
ETIMEDOUT = 110


def _wrap_scenario(m: Machine, wrap_safe: bool) -> list[Any]:
    """LDD3's busy-wait with a timeout, 40 jiffies before jiffies wraps: the device answers
    after 60 ms, the driver gives it 100 ms. ``jiffies() + 100`` wraps as C's unsigned long
    does; the plain ``<`` then says the time is up at once."""
    box: list[int] = []

    def setup() -> None:
        p = kmalloc(4, GFP_KERNEL)
        assert p is not None
        write_u32(p, 0)
        box.append(p)
    m.run(setup)
    reg = box[0]
    out: list[Any] = []

    def driver() -> None:
        _advance_to(NEAR_WRAP)
        timeout = (jiffies() + 100) & 0xFFFFFFFF
        while not READ_ONCE(reg):
            if (time_after(jiffies(), timeout) if wrap_safe else not jiffies() < timeout):
                out.append(-ETIMEDOUT)
                break
            msleep(1)
        else:
            out.append(0)
        out.append(jiffies())

    def device() -> None:
        _advance_to(NEAR_WRAP + 60)
        WRITE_ONCE(reg, 1)

    m.run(driver, device)
    return out


@pytest.mark.parametrize("policy", POLICIES)
def test_a_timeout_with_a_plain_compare_breaks_at_the_jiffies_wrap_time_after_does_not(policy: str) -> None:
    for seed in SEEDS:
        status, now = _wrap_scenario(Machine(cpus=2, policy=policy, seed=seed), wrap_safe=False)
        assert status == -ETIMEDOUT and now == NEAR_WRAP  # the bug: timed out at once
        status, now = _wrap_scenario(Machine(cpus=2, policy=policy, seed=seed), wrap_safe=True)
        assert status == 0 and now < 100  # the twin waited across the wrap, and jiffies did wrap

    def twin(m: Machine) -> None:
        assert _wrap_scenario(m, wrap_safe=True)[0] == 0
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2)


def test_jiffies_is_a_32_bit_unsigned_long() -> None:
    m = Machine(cpus=1, policy="random", seed=0)

    def f() -> tuple[int, int]:
        _advance_to(ULONG - 1)
        before = jiffies()
        msleep(3)
        return before, jiffies()
    assert m.run(f)[0] == (ULONG - 1, 2)


def test_a_sleep_at_the_start_of_a_later_run_lets_time_pass() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    m.run(lambda: _advance_to(10_000))
    m.run(lambda: msleep(3))
    assert m.run(jiffies)[0] == 10_003


def test_ssleep_and_msleep_interruptible_sleep_virtual_time() -> None:
    m = Machine(cpus=2, policy="random", seed=1)
    out: list[int] = []

    def sleeper() -> None:
        j0 = jiffies()
        ssleep(2)
        out.append(jiffies() - j0)
        j0 = jiffies()
        out.append(msleep_interruptible(30))
        out.append(jiffies() - j0)

    m.run(sleeper, lambda: msleep(1))
    assert out[0] == 2000 and out[1] == 0 and out[2] == 30


def test_msleep_interruptible_is_not_ended_by_a_wake_up_without_a_signal() -> None:
    m = Machine(cpus=2, policy="random", seed=2)
    out: list[int] = []
    box: list[Any] = []

    def sleeper() -> None:
        box.append(current())
        j0 = jiffies()
        out.append(msleep_interruptible(50))
        out.append(jiffies() - j0)

    def waker() -> None:
        while not box:
            msleep(1)
        msleep(5)
        wake_up_process(box[0])
    m.run(sleeper, waker)
    assert out == [0, 50]


def test_wait_event_interruptible_timeout_and_mutex_lock_interruptible() -> None:
    m = Machine(cpus=2, policy="random", seed=3)
    out: list[Any] = []
    flag: list[int] = []

    def waiter() -> None:
        wq = init_waitqueue_head("wq")
        out.append(wait_event_interruptible_timeout(wq, lambda: False, 25))  # times out: 0
        flag.append(0)
        wq2.append(wq)
        out.append(wait_event_interruptible_timeout(wq, lambda: bool(flag[1:]), 1000))
        out.append(wait_event_interruptible_timeout(wq, lambda: True, 7))  # true at once: the timeout
        mtx = mutex_init("mi")
        out.append(mutex_lock_interruptible(mtx))
        mutex_unlock(mtx)

    wq2: list[Any] = []

    def waker() -> None:
        while not wq2:
            msleep(1)
        msleep(10)
        flag.append(1)
        wake_up(wq2[0])
    m.run(waiter, waker)
    assert out[0] == 0 and 1 <= out[1] < 1000 and out[2] == 7 and out[3] == 0
    assert m.reports == []


def test_time_functions_take_a_task_only_where_they_need_one() -> None:
    assert time_after(2, 1)  # pure arithmetic, as the kernel's macros
    with pytest.raises(NotInTaskError):
        jiffies()
    with pytest.raises(NotInTaskError):
        ssleep(1)


# -- WARN / BUG ------------------------------------------------------------------------------------
def _warn_scenario(m: Machine, cond: bool) -> list[bool]:
    got: list[bool] = []

    def worker() -> None:
        for _ in range(3):
            got.append(WARN_ON_ONCE(cond))
    m.run(worker, worker)
    return got


@pytest.mark.parametrize("policy", POLICIES)
def test_warn_on_once_warns_once_per_call_site_and_returns_the_condition(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed)
        assert _warn_scenario(m, True) == [True] * 6
        (rep,) = m.reports
        assert rep.kind == "warning" and rep.count == 1
        assert rep.lines[0].startswith(f"WARNING: CPU: {rep.cpu} PID: {rep.pid} at tests/runtime/test_api_everyday.py:")
        _warn_scenario(m, True)  # the call site's __warned flag lives as long as the machine
        assert m.reports == [rep] and rep.count == 1

    def twin(m: Machine) -> None:
        assert _warn_scenario(m, False) == [False] * 6
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2)


def test_warn_on_at_one_site_folds_its_repeats_warn_on_once_does_not_repeat() -> None:
    m = Machine(cpus=1, policy="random", seed=0)

    def f() -> None:
        for _ in range(3):
            WARN_ON(1)
        for _ in range(3):
            WARN_ON_ONCE(1)
    m.run(f)
    assert [r.count for r in m.reports] == [3, 1]


def test_warn_formats_its_message_printk_style_and_warn_once_once() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    out: list[bool] = []

    def f() -> None:
        out.append(WARN(True, "bad length %d for %s (%lu)\n", 7, "eth0", 3))
        out.append(WARN(False, "never %d", 1))
        for _ in range(2):
            out.append(WARN_ONCE(1, "once only: %x", 255))
        out.append(WARN_ONCE(0, "not this one"))
    m.run(f)
    assert out == [True, False, True, True, False]
    first, once = m.reports
    assert first.lines[1] == "bad length 7 for eth0 (3)"
    assert once.lines[1] == "once only: ff" and once.count == 1


def test_warn_with_a_format_that_does_not_fit_is_refused_before_any_report() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    with pytest.raises(KmemUsageError, match=r"WARN: fmt\(='%d %d'\) does not fit its arguments \(1,\)"):
        m.run(lambda: WARN(True, "%d %d", 1))
    assert m.reports == []
    with pytest.raises(KmemUsageError, match=r"WARN_ONCE: fmt\(=None\) must be"):
        m.run(lambda: WARN_ONCE(True, None))  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", POLICIES)
def test_bug_on_oopses_when_its_condition_holds_only(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed)
        after: list[int] = []

        def buggy() -> None:
            BUG_ON(1 + 1 == 2)
            after.append(1)  # never: the task died in the Oops
        m.run(buggy, lambda: None)
        (rep,) = m.reports
        assert rep.kind == "bug" and rep.lines[0].startswith("kernel BUG at tests/runtime/test_api_everyday.py:")
        assert rep.lines[0].endswith("!") and after == []

    def twin(m: Machine) -> None:
        assert m.run(lambda: BUG_ON(0), lambda: BUG_ON(None)) == [None, None]
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2)


# -- CPU masks -------------------------------------------------------------------------------------
def test_cpu_masks_name_the_machines_cpus() -> None:
    assert NR_CPUS == MAX_CPUS
    m = Machine(cpus=3, policy="random", seed=0)

    def f() -> Any:
        return (num_online_cpus(), num_possible_cpus(), list(for_each_online_cpu()),
                list(for_each_possible_cpu()), cpu_online(2), cpu_online(3), cpu_possible(2),
                cpu_possible(NR_CPUS - 1))
    assert m.run(f)[0] == (3, 3, [0, 1, 2], [0, 1, 2], True, False, True, False)
    with pytest.raises(KmemUsageError, match=r"cpu_online: cpu\(=256\) must be a CPU number from 0 to 255"):
        m.run(lambda: cpu_online(NR_CPUS))


def test_a_per_cpu_sum_over_for_each_possible_cpu() -> None:
    from percpu_kmem.linux import DEFINE_PER_CPU, per_cpu
    counter = DEFINE_PER_CPU(int, "everyday_counter")
    m = Machine(cpus=4, policy="random", seed=5)

    def bump() -> None:
        from percpu_kmem.linux import this_cpu_inc
        for _ in range(5):
            this_cpu_inc(counter)

    def total() -> int:
        return sum(per_cpu(counter, cpu).value for cpu in for_each_possible_cpu())
    m.run(bump, bump, bump)
    assert m.run(total)[0] == 15


# -- smp_call_function_single ----------------------------------------------------------------------
def test_smp_call_function_single_runs_there_in_hardirq_or_here_with_irqs_off() -> None:
    from percpu_kmem.linux import in_irq, irqs_disabled
    m = Machine(cpus=3, policy="random", seed=4)
    seen: list[Any] = []

    def f() -> Any:
        me = current().cpu.id
        other = (me + 1) % 3
        r1 = smp_call_function_single(other, lambda info: seen.append((info, smp_processor_id(), in_irq())), "x")
        r2 = smp_call_function_single(me, lambda info: seen.append((info, smp_processor_id(), irqs_disabled())), "y")
        r3 = smp_call_function_single(3, lambda info: seen.append("never"), None)
        return me, other, r1, r2, r3
    me, other, r1, r2, r3 = m.run(f)[0]
    assert (r1, r2, r3) == (0, 0, -6)
    assert seen == [("x", other, True), ("y", me, True)]
    assert m.reports == []


def _ipi_scenario(m: Machine, irqs_off: bool) -> None:
    def caller() -> None:
        if irqs_off:
            local_irq_disable()
        smp_call_function_single(1, lambda info: None, None, False)
        if irqs_off:
            local_irq_enable()
    m.run(caller, lambda: None)


@pytest.mark.parametrize("policy", ("random", "pct", "free"))
def test_smp_call_function_single_with_irqs_disabled_warns(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed)
        _ipi_scenario(m, True)
        (rep,) = m.reports_of("warning")
        assert rep.lines[1] == "smp_call_function_single() with interrupts disabled can deadlock"
    explore(lambda m: _ipi_scenario(m, False), seeds=SEEDS, policies=(policy,), cpus=2)


@pytest.mark.parametrize(("call", "words"), [
    (lambda: smp_call_function_single(-1, lambda i: None), r"smp_call_function_single: cpu\(=-1\) must be a CPU"),
    (lambda: smp_call_function_single(0, None), r"smp_call_function_single: func"),
    (lambda: smp_call_function_single(0, lambda i: None, None, "yes"), r"smp_call_function_single: wait"),
])
def test_smp_call_function_single_refuses_misuse_before_anything(call: Any, words: str) -> None:
    m = Machine(cpus=2, policy="random", seed=0)
    with pytest.raises(KmemUsageError, match=words):
        m.run(call)
    m.run(lambda: smp_call_function_single(1, lambda i: None))
    m.check()


def test_smp_call_function_single_that_waits_sees_what_func_did_without_a_race() -> None:
    for policy in POLICIES:
        def scenario(m: Machine) -> None:
            box: list[int] = []

            def setup() -> None:
                p = kmalloc(8, GFP_KERNEL)
                assert p is not None
                write_u32(p, 0)
                box.append(p)
            m.run(setup)
            p = box[0]

            def caller() -> None:
                other = 1 - current().cpu.id
                assert smp_call_function_single(other, lambda info: write_u32(p, 9), None, True) == 0
                assert read_u32(p) == 9  # plain: ordered by the wait
            m.run(caller, lambda: msleep(1))
        explore(scenario, seeds=SEEDS, policies=(policy,), cpus=2, kcsan=True)


def test_the_once_flag_belongs_to_the_machine() -> None:
    def f() -> None:
        WARN_ON_ONCE(True)
    for _ in range(2):
        m = Machine(cpus=1, policy="random", seed=0)
        m.run(f)
        m.run(f)
        assert len(m.reports) == 1 and m.reports[0].count == 1


def test_usleep_range_jiffies_64_and_the_time_is_helpers() -> None:
    from percpu_kmem.linux import (
        cpu_present,
        for_each_present_cpu,
        get_jiffies_64,
        num_present_cpus,
        time_is_after_jiffies,
        time_is_before_jiffies,
        usleep_range,
    )
    m = Machine(cpus=2, policy="random", seed=1)

    def f() -> Any:
        t0 = ktime_get_ns()
        usleep_range(1500, 2000)
        slept = ktime_get_ns() - t0
        _advance_to(ULONG + 5)
        j = jiffies()
        return (slept, j, get_jiffies_64(), time_is_before_jiffies(j - 1), time_is_after_jiffies(j + 5),
                time_is_before_jiffies(j + 5), num_present_cpus(), list(for_each_present_cpu()), cpu_present(2))
    assert m.run(f)[0] == (1_500_000, 5, ULONG + 5, True, True, False, 2, [0, 1], False)
    with pytest.raises(KmemUsageError, match=r"usleep_range: max\(=10\) must be an int \(microseconds, at least min\)"):
        m.run(lambda: usleep_range(20, 10))
