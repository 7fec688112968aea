"""Interrupts and softirqs."""

from __future__ import annotations

import pytest

from percpu_kmem import (
    KmemUsageError,
    Machine,
    in_serving_softirq,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    msleep,
    open_softirq,
    preempt_point,
    raise_irq,
    raise_softirq,
    raw_smp_processor_id,
)

pytestmark = pytest.mark.timeout(30)


def test_irq_raised_on_another_cpu_runs_there() -> None:
    ran_on = []
    m = Machine(cpus=2, seed=1)
    m.request_irq(3, lambda irq, dev: ran_on.append(raw_smp_processor_id()))

    def raiser() -> None:
        raise_irq(3, 1)
        msleep(1)

    m.run(raiser)
    assert ran_on == [1]  # the idle CPU's swapper served it


def test_irq_waits_while_interrupts_are_off() -> None:
    order = []
    m = Machine(cpus=1)
    m.request_irq(4, lambda irq, dev: order.append("irq"))

    def body() -> None:
        local_irq_disable()
        raise_irq(4)
        order.append("masked")
        preempt_point()
        local_irq_enable()
        order.append("after")

    m.run(body)
    assert order == ["masked", "irq", "after"]


def test_random_injection_respects_irqs_disabled() -> None:
    m = Machine(cpus=2, seed=3)
    violations = []
    state: dict[str, int | None] = {"off_cpu": None}  # the CPU whose interrupts body disabled
    # a handler may run on the other CPU (in whatever task runs there, e.g. kswapd): only
    # one on the CPU with interrupts off is a violation
    m.request_irq(7, lambda irq, dev: violations.append(1) if state["off_cpu"] == raw_smp_processor_id() else None,
                  rate=0.5)

    def body() -> None:
        for _ in range(50):
            local_irq_disable()
            state["off_cpu"] = raw_smp_processor_id()
            preempt_point()
            state["off_cpu"] = None
            local_irq_enable()

    m.run(body)
    assert violations == []
    assert sum(c.nr_irqs for c in m.cpus) > 0


def test_softirq_runs_on_irq_exit_and_bh_enable() -> None:
    log = []
    m = Machine(cpus=1)

    def net_rx() -> None:
        log.append(("softirq", in_serving_softirq()))

    m.open_softirq(3, net_rx)

    def hard(irq: int, dev: object) -> None:
        raise_softirq(3)
        log.append("hardirq")

    m.request_irq(11, hard)

    def body() -> None:
        raise_irq(11)
        local_bh_disable()
        raise_softirq(3)
        log.append("bh off")
        local_bh_enable()

    m.run(body)
    assert log == ["hardirq", ("softirq", True), "bh off", ("softirq", True)]


def test_irq_registration_errors() -> None:
    m = Machine(cpus=1)
    with pytest.raises(KmemUsageError, match="not callable"):
        m.request_irq(1, "nope")  # type: ignore[arg-type]
    m.request_irq(1, lambda i, d: None)
    with pytest.raises(KmemUsageError, match="already has a handler"):
        m.request_irq(1, lambda i, d: None)
    with pytest.raises(KmemUsageError, match="rate"):
        m.request_irq(2, lambda i, d: None, rate=2.0)
    with pytest.raises(KmemUsageError, match="no handler"):
        m.raise_irq(9, 0)
    _ = open_softirq
