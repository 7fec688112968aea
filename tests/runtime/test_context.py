"""Context API: preempt_count, irqs, get_cpu, DEBUG_PREEMPT, might_sleep."""

from __future__ import annotations

import pytest

from percpu_kmem import (
    Machine,
    NotInTaskError,
    current,
    get_cpu,
    in_atomic,
    in_interrupt,
    in_irq,
    in_softirq,
    in_task,
    irqs_disabled,
    kthread_bind,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    local_irq_restore,
    local_irq_save,
    might_sleep,
    preempt_count,
    preempt_disable,
    preempt_enable,
    preemptible,
    put_cpu,
    raw_smp_processor_id,
    smp_processor_id,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)
from percpu_kmem.runtime.preempt import HARDIRQ_OFFSET, SOFTIRQ_DISABLE_OFFSET

pytestmark = pytest.mark.timeout(30)
POLICIES = ("random", "pct", "virtual", "free")


def test_kernel_functions_outside_a_task_raise_a_clear_error() -> None:
    with pytest.raises(NotInTaskError, match="call them from a function passed to Machine.run"):
        smp_processor_id()
    with pytest.raises(NotInTaskError):
        preempt_disable()


def test_preempt_count_layout_follows_preempt_h() -> None:
    seen = {}

    def body() -> None:
        seen["start"] = (preempt_count(), in_atomic(), preemptible(), in_task())
        preempt_disable()
        preempt_disable()
        seen["nested"] = preempt_count()
        preempt_enable()
        preempt_enable()
        local_bh_disable()
        seen["bh"] = (preempt_count(), in_softirq(), in_interrupt(), in_irq())
        local_bh_enable()
        flags = local_irq_save()
        seen["irqsave"] = (irqs_disabled(), preemptible(), flags)
        local_irq_restore(flags)
        local_irq_disable()
        local_irq_enable()
        seen["end"] = (preempt_count(), irqs_disabled())

    Machine(cpus=1).run(body)
    assert seen["start"] == (0, False, True, True)
    assert seen["nested"] == 2
    assert seen["bh"] == (SOFTIRQ_DISABLE_OFFSET, True, True, False)
    assert seen["irqsave"] == (True, False, 0x200)
    assert seen["end"] == (0, False)


def test_get_cpu_disables_preemption_and_returns_this_cpu() -> None:
    out = []

    def body() -> None:
        cpu = get_cpu()
        out.append((cpu, raw_smp_processor_id(), preempt_count()))
        put_cpu()
        out.append(preempt_count())

    m = Machine(cpus=2, seed=3)
    m.run(body)
    assert out[0][0] == out[0][1] and out[0][2] == 1 and out[1] == 0
    assert not m.reports


@pytest.mark.parametrize("policy", POLICIES)
def test_smp_processor_id_in_preemptible_code_is_reported(policy: str) -> None:
    m = Machine(cpus=2, policy=policy, seed=2)

    def body() -> None:
        smp_processor_id()

    m.run(body)
    (rep,) = m.reports
    assert rep.kind == "preempt_smp_processor_id"
    first, caller = rep.lines[:2]
    assert first == f"BUG: using smp_processor_id() in preemptible [00000000] code: body/{rep.pid}"
    assert caller.startswith("caller is body (")


def test_smp_processor_id_is_fine_with_preemption_off_or_pinned() -> None:
    m = Machine(cpus=2, seed=2)

    def body() -> None:
        preempt_disable()
        smp_processor_id()
        preempt_enable()
        local_irq_disable()
        smp_processor_id()
        local_irq_enable()

    def pinned() -> None:
        kthread_bind(current(), raw_smp_processor_id())
        smp_processor_id()

    m.run(body, pinned)
    assert m.reports == []


@pytest.mark.parametrize("policy", POLICIES)
def test_sleep_in_atomic_is_reported_under_every_policy(policy: str) -> None:
    m = Machine(cpus=4, policy=policy, seed=7)
    lock = spin_lock_init("my_lock")

    def worker() -> None:
        spin_lock(lock)
        might_sleep()  # the bug
        spin_unlock(lock)
        might_sleep()  # fine: outside the lock

    m.run(worker, worker)
    (rep,) = m.reports
    assert rep.kind == "sleep_in_atomic"
    assert m.might_sleep_suppressed == 1  # the other worker's: rate-limited, as the kernel does
    lines = rep.lines
    assert lines[0].startswith("BUG: sleeping function called from invalid context at tests/runtime/test_context.py:")
    assert lines[1] == f"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {rep.pid}, name: worker"
    assert lines[2] == "preempt_count: 1, expected: 0"
    assert "Call Trace:" in lines and any(ln.startswith(" worker (") for ln in lines)
    assert rep.preempt_count == 1 and rep.cpu in range(4)


def test_might_sleep_with_irqs_off_is_reported() -> None:
    m = Machine(cpus=1)

    def body() -> None:
        flags = local_irq_save()
        might_sleep()
        local_irq_restore(flags)

    m.run(body)
    assert m.reports[0].lines[1].startswith("in_atomic(): 0, irqs_disabled(): 1,")


def test_preempt_enable_underflow_is_reported_and_count_stays_sane() -> None:
    m = Machine(cpus=1)

    def body() -> int:
        preempt_enable()
        return preempt_count()

    assert m.run(body) == [0]
    assert m.reports[0].kind == "preempt_count_underflow"
    assert "DEBUG_LOCKS_WARN_ON(val > preempt_count())" in m.reports[0].text


def test_hardirq_offset_is_visible_in_a_handler() -> None:
    seen = []
    m = Machine(cpus=1)
    m.request_irq(9, lambda irq, dev: seen.append((preempt_count(), in_irq(), in_interrupt(), irqs_disabled(), dev)),
                  dev_id="eth0")

    def body() -> None:
        from percpu_kmem import raise_irq
        raise_irq(9)

    m.run(body)
    assert seen == [(HARDIRQ_OFFSET, True, True, True, "eth0")]


def test_current_names_the_task() -> None:
    m = Machine(cpus=1)

    def my_thread() -> tuple[int, str]:
        return current().pid, current().comm

    ((pid, comm),) = m.run(my_thread)
    assert comm == "my_thread" and pid >= 1


def test_kmalloc_gfp_kernel_under_a_spinlock_on_a_cold_cache_is_one_report_at_the_callers_line() -> None:
    from percpu_kmem import GFP_KERNEL, kfree, kmalloc
    m = Machine(cpus=1, seed=2)
    lock = spin_lock_init("driver_lock")

    def driver() -> None:
        spin_lock(lock)
        p = kmalloc(3000, GFP_KERNEL)  # the bug; the cache is cold, so it also grows: one report
        spin_unlock(lock)
        kfree(p)

    m.run(driver)
    (rep,) = m.reports
    import inspect
    line = inspect.getsource(driver).splitlines().index(
        "        p = kmalloc(3000, GFP_KERNEL)  # the bug; the cache is cold, so it also grows: one report")
    expected = driver.__code__.co_firstlineno + line
    where = f"tests/runtime/test_context.py:{expected}"
    assert rep.lines[0] == f"BUG: sleeping function called from invalid context at {where}"
    assert m.might_sleep_suppressed >= 1  # the allocator's own might_sleep calls on the way


def test_might_sleep_reports_again_after_a_second_of_virtual_time() -> None:
    from percpu_kmem import charge
    m = Machine(cpus=1, seed=2, boot=False)

    def driver() -> None:
        for _ in range(3):
            preempt_disable()
            might_sleep()
            preempt_enable()
            charge(600_000_000)  # 0.6 s of virtual time

    m.run(driver)
    # at 0, 0.6 s (suppressed) and 1.2 s: once per HZ, as __might_resched's prev_jiffy does
    assert len(m.reports_of("sleep_in_atomic")) == 2 and m.might_sleep_suppressed == 1
