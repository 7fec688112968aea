"""disable_irq / disable_irq_nosync / enable_irq / synchronize_irq: a disabled line is not
delivered (pending until enabled), disabling nests, an unbalanced enable is the kernel's
WARN, disable_irq() waits for a running handler; the classic pair: process code and a
handler share data, with disable_irq() around the process side (correct) or nothing
(KCSAN reports the race)."""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, Machine
from percpu_kmem.linux import (
    NR_IRQS,
    disable_irq,
    disable_irq_nosync,
    enable_irq,
    kmalloc,
    msleep,
    raise_irq,
    read_u32,
    request_irq,
    synchronize_irq,
    write_u32,
)
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(60)

SEEDS = range(3)
POLICIES = ("random", "pct", "free", "virtual")
IRQ = 5


def test_a_disabled_line_is_held_back_and_delivered_at_the_matching_enable() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    hits: list[int] = []
    m.request_irq(IRQ, lambda irq, dev: hits.append(irq))

    def f() -> list[int]:
        seen = []
        disable_irq(IRQ)
        disable_irq_nosync(IRQ)      # depth 2
        raise_irq(IRQ)
        raise_irq(IRQ)               # while disabled, two interrupts are one pending (IRQS_PENDING)
        seen.append(len(hits))
        enable_irq(IRQ)              # depth 1: still disabled
        seen.append(len(hits))
        enable_irq(IRQ)              # depth 0: the pending one is delivered now
        seen.append(len(hits))
        raise_irq(IRQ)
        seen.append(len(hits))
        return seen
    assert m.run(f)[0] == [0, 0, 1, 2]
    assert m.reports == []


def test_an_unbalanced_enable_is_the_kernels_warning_and_changes_nothing() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    hits: list[int] = []
    m.request_irq(IRQ, lambda irq, dev: hits.append(irq))

    def f() -> None:
        enable_irq(IRQ)
        disable_irq(IRQ)
        raise_irq(IRQ)
    m.run(f)
    (rep,) = m.reports
    assert rep.kind == "warning"
    assert rep.lines[0].startswith(f"WARNING: CPU: 0 PID: {rep.pid} at tests/runtime/test_disable_irq.py:")
    assert rep.lines[0].endswith(" __enable_irq")
    assert rep.lines[1] == f"Unbalanced enable for IRQ {IRQ}"
    assert hits == []  # the enable did not count: the line stays disabled after one disable


def _unbalanced(m: Machine, balanced: bool) -> None:
    m.request_irq(IRQ, lambda irq, dev: None)

    def f() -> None:
        for _ in range(2):
            if balanced:
                disable_irq(IRQ)
            msleep(1)
            enable_irq(IRQ)
    m.run(f, lambda: raise_irq(IRQ, 0))


@pytest.mark.parametrize("policy", POLICIES)
def test_unbalanced_enable_is_reported_on_every_run_balanced_is_not(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed)
        _unbalanced(m, False)
        (rep,) = m.reports
        assert rep.lines[1] == f"Unbalanced enable for IRQ {IRQ}" and rep.count == 2
    explore(lambda m: _unbalanced(m, True), seeds=SEEDS, policies=(policy,), cpus=2)


def test_disable_irq_waits_for_a_handler_running_on_another_cpu() -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy="random", seed=seed)
        log: list[str] = []

        def handler(irq: int, dev: Any) -> None:
            log.append("start")
            for _ in range(20):
                read_u32(box[0])  # scheduling points: the other CPU runs meanwhile
            log.append("end")

        box: list[int] = []

        def setup() -> None:
            p = kmalloc(8, GFP_KERNEL)
            assert p is not None
            write_u32(p, 0)
            box.append(p)
        m.run(setup)
        m.request_irq(IRQ, handler)

        def device() -> None:
            raise_irq(IRQ, 1)

        def driver() -> None:
            while "start" not in log:
                msleep(1)
            disable_irq(IRQ)
            log.append("disabled")
            enable_irq(IRQ)
        m.run(driver, device)
        if "start" in log:
            assert log.index("end") < log.index("disabled"), log
        assert m.reports == []


def test_synchronize_irq_returns_at_once_with_no_handler_running() -> None:
    m = Machine(cpus=2, policy="random", seed=0)
    m.request_irq(IRQ, lambda irq, dev: None)
    m.run(lambda: synchronize_irq(IRQ))
    assert m.reports == []


@pytest.mark.parametrize(("call", "words"), [
    (lambda: disable_irq(-1), r"disable_irq: irq\(=-1\) must be an interrupt line"),
    (lambda: disable_irq_nosync(NR_IRQS), r"disable_irq_nosync: irq\(=256\) must be an interrupt line"),
    (lambda: enable_irq(None), r"enable_irq: irq\(=None\) must be"),
    (lambda: synchronize_irq(1.0), r"synchronize_irq: irq\(=1.0\) must be"),
])
def test_bad_lines_are_refused(call: Any, words: str) -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    with pytest.raises(KmemUsageError, match=words):
        m.run(call)
    assert m.irq.disabled == {}


def test_a_line_request_irq_took_beyond_nr_irqs_can_be_disabled() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    hits: list[int] = []
    m.request_irq(300, lambda irq, dev: hits.append(irq))

    def f() -> None:
        disable_irq(300)
        raise_irq(300)
        assert hits == []
        enable_irq(300)
    m.run(f)
    assert hits == [300] and m.reports == []


# -- the classic pair: a handler and process code share a counter -----------------------------------
def _shared_counter(m: Machine, protect: bool) -> int:
    box: list[int] = []

    def setup() -> None:
        p = kmalloc(16, GFP_KERNEL)
        assert p is not None
        write_u32(p, 0)
        box.append(p)

        def handler(irq: int, dev: Any) -> None:
            write_u32(p, read_u32(p) + 1)
        assert request_irq(IRQ, handler, 0, "dev", None) == 0
    m.run(setup)
    p = box[0]

    def process() -> None:
        for _ in range(3):
            if protect:
                disable_irq(IRQ)
            write_u32(p, read_u32(p) + 1)
            if protect:
                enable_irq(IRQ)

    def device() -> None:
        for _ in range(3):
            raise_irq(IRQ, 1)  # the device's interrupts go to CPU 1
    m.run(process, device)
    return int(m.run(lambda: read_u32(p))[0])


@pytest.mark.parametrize("policy", POLICIES)
def test_process_code_without_disable_irq_races_with_the_handler(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed, kcsan=True)
        _shared_counter(m, protect=False)
        reps = m.reports_of("kcsan_data_race")
        assert reps and {r.kind for r in m.reports} == {"kcsan_data_race"}
        assert any("process" in r.extra["functions"] and "handler" in r.extra["functions"] for r in reps)
        assert any(ln.endswith("by interrupt on cpu 1:") for r in reps for ln in r.lines)


@pytest.mark.parametrize("policy", POLICIES)
def test_process_code_with_disable_irq_gets_no_report_and_loses_no_update(policy: str) -> None:
    def twin(m: Machine) -> None:
        n = _shared_counter(m, protect=True)
        # three updates of its own, and one per handler run (interrupts that came while the line
        # was disabled are one pending interrupt: at least one handler run, at most three)
        assert 4 <= n <= 6
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2, kcsan=True)


@pytest.mark.parametrize("policy", POLICIES)
def test_one_lines_handler_never_runs_on_two_cpus_at_once(policy: str) -> None:
    """2.6.11's __do_IRQ: an interrupt that comes while the line's handler runs on another
    CPU marks the line pending, and that CPU runs the handler again: the handler's
    unlocked counter gets no KCSAN report, and no interrupt is lost (the model reruns it once
    for each interrupt that came meanwhile, where the kernel's IRQ_PENDING flag collapses them)."""
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed, kcsan=True)
        n = _shared_counter_two_cpus(m)
        assert not m.reports, m.reports[0].text
        assert n == 3


def _shared_counter_two_cpus(m: Machine) -> int:
    box: list[int] = []

    def setup() -> None:
        p = kmalloc(16, GFP_KERNEL)
        assert p is not None
        write_u32(p, 0)
        box.append(p)

        def handler(irq: int, dev: Any) -> None:
            write_u32(p, read_u32(p) + 1)
        request_irq(IRQ, handler, 0, "dev", None)
    m.run(setup)

    def device() -> None:
        for i in range(3):
            raise_irq(IRQ, i % 2)
    m.run(device, lambda: msleep(1))
    return int(m.run(lambda: read_u32(box[0]))[0])


def _self_disable(m: Machine, nosync: bool) -> list[int]:
    hits: list[int] = []

    def handler(irq: int, dev: Any) -> None:
        hits.append(irq)
        (disable_irq_nosync if nosync else disable_irq)(irq)  # LDD3's "disable it until the bottom half ran"

    m.request_irq(IRQ, handler)

    def f() -> None:
        raise_irq(IRQ)
        raise_irq(IRQ)  # held back: the line is disabled
        enable_irq(IRQ)  # the held-back one runs now, and disables the line again
        enable_irq(IRQ)
    m.run(f, lambda: msleep(1))
    return hits


@pytest.mark.parametrize("policy", POLICIES)
def test_disable_irq_in_the_lines_own_handler_is_reported_nosync_is_not(policy: str) -> None:
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed)
        assert _self_disable(m, nosync=False) == [IRQ, IRQ]
        (rep,) = m.reports
        assert rep.kind == "sleep_in_atomic"
        assert rep.lines[0].startswith("BUG: sleeping function called from invalid context at "
                                       "tests/runtime/test_disable_irq.py:")

    def twin(m: Machine) -> None:
        assert _self_disable(m, nosync=True) == [IRQ, IRQ]
    explore(twin, seeds=SEEDS, policies=(policy,), cpus=2)
