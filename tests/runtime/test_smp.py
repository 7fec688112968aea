"""Cross-CPU calls: smp_call_function / on_each_cpu over the IPI vector."""

from __future__ import annotations

import threading

import pytest

from percpu_kmem import Machine, local_irq_restore, local_irq_save, raw_smp_processor_id
from percpu_kmem.runtime.smp import on_each_cpu, smp_call_function
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(120)


def test_on_each_cpu_runs_once_per_cpu_in_hardirq_context() -> None:
    from percpu_kmem import in_irq
    m = Machine(cpus=4, policy="random", seed=1)
    seen: list[tuple[int, bool]] = []

    def body() -> None:
        on_each_cpu(lambda info: seen.append((raw_smp_processor_id(), in_irq())), None)

    m.run(body)
    assert sorted(c for c, _ in seen) == [0, 1, 2, 3]
    me = [c for c, irq in seen if not irq]  # the caller's own CPU runs it with irqs off, not in an IRQ
    assert len(me) == 1
    assert m.reports == []


def test_cpus_calling_each_other_at_once_do_not_deadlock() -> None:
    """A CPU spinning for its own call's completion still takes the other CPU's IPI."""
    def scenario(m: Machine) -> None:
        hits: list[int] = []
        guard = threading.Lock()

        def note(info: object) -> None:
            with guard:
                hits.append(raw_smp_processor_id())

        def caller() -> None:
            for _ in range(3):
                on_each_cpu(note, None)

        m.run(caller, caller, caller)
        assert sorted(hits) == sorted(list(range(3)) * 9)
        assert m.reports == []

    explore(scenario, seeds=range(15), policies=("random", "pct"), cpus=3)
    explore(scenario, seeds=range(2), policies=("free",), cpus=3)


def test_calling_with_interrupts_disabled_is_warned() -> None:
    m = Machine(cpus=2, policy="random", seed=0)

    def body() -> None:
        flags = local_irq_save()
        smp_call_function(lambda info: None, None, wait=False)
        local_irq_restore(flags)

    m.run(body)
    assert [r.kind for r in m.reports] == ["warning"]
    assert "smp_call_function() with interrupts disabled can deadlock" in m.reports[0].text


@pytest.mark.parametrize("seed", range(3))
def test_free_policy_waits_for_a_slow_ipi_handler_on_an_idle_cpu(seed: int) -> None:
    """An idle CPU serving the IPI is not a blocked CPU: while its handler runs (here for
    50 ms of wall time, as a loaded host may take), the caller waiting in
    smp_call_function() is not a deadlock."""
    import time

    done: list[int] = []

    def slow(info: object) -> None:
        time.sleep(0.05)
        done.append(1)

    m = Machine(cpus=2, policy="free", seed=seed)
    m.run(lambda: smp_call_function(slow, None, True))
    assert not m.reports, m.reports[0].text
    assert done == [1]


@pytest.mark.parametrize("seed", range(3))
def test_an_ipi_runs_on_every_cpu_at_once_not_serialised_as_a_device_line(seed: int) -> None:
    """The call-function IPI is a per-CPU interrupt (IRQF_PERCPU): two idle CPUs run their
    own calls at the same time. Serialised as a device line (IRQ_INPROGRESS), the second
    CPU's call was handed to the first CPU's rerun, which looks at its own queue only: the
    call was lost and the caller reported deadlocked (free policy, 4 CPUs)."""
    import time

    ran: list[int] = []

    def slow(info: object) -> None:
        time.sleep(0.02)                   # long enough for the other idle CPUs' IPIs to overlap
        ran.append(raw_smp_processor_id())

    m = Machine(cpus=4, policy="free", seed=seed)
    m.run(lambda: smp_call_function(slow, None, True))
    assert not m.reports, m.reports[0].text
    assert len(ran) == 3 and len(set(ran)) == 3
