"""KCSAN-style data-race detection (mm/kcsan.py, runtime/hb.py): the kernel's words, the
happens-before edges that silence correct code, the races that are found on every run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, Machine
from percpu_kmem.linux import (
    READ_ONCE,
    WRITE_ONCE,
    atomic_add_return,
    atomic_inc,
    atomic_inc_return,
    atomic_read,
    atomic_set,
    free_page,
    init_waitqueue_head,
    kfree,
    kmalloc,
    kthread_run,
    local_bh_disable,
    local_bh_enable,
    local_irq_restore,
    local_irq_save,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    open_softirq,
    preempt_point,
    raise_irq,
    raise_softirq,
    read_u32,
    request_irq,
    smp_call_function,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    wait_event,
    wake_up,
    write_u32,
)
from percpu_kmem.linux import (
    __get_free_page as get_free_page,
)
from percpu_kmem.mm.kcsan import KCSAN_RULE
from percpu_kmem.mm.percpu import DEFINE_PER_CPU, get_cpu_var, per_cpu, this_cpu_add
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.runtime.kernel import raw_smp_processor_id
from percpu_kmem.testing import UnexpectedReport, explore

pytestmark = pytest.mark.timeout(60)

SEEDS = range(4)
IRQ = 5
kcsan_counter = DEFINE_PER_CPU(int, "kcsan_test_counter")


def races(m: Machine) -> list[Any]:
    return m.reports_of("kcsan_data_race")


def shared_word(m: Machine) -> int:
    """A kmalloc'ed word, allocated and zeroed in a run of its own (before the tested one)."""
    box: list[int] = []

    def setup() -> None:
        p = kmalloc(16, GFP_KERNEL)
        assert p is not None
        write_u32(p, 0)
        box.append(p)

    m.run(setup)
    return box[0]


def run_pair(seed: int, first: Callable[[int], None], second: Callable[[int], None], *, cpus: int = 2,
             policy: str = "random") -> Machine:
    m = Machine(cpus=cpus, policy=policy, seed=seed, kcsan=True)
    p = shared_word(m)
    m.run(lambda: first(p), lambda: second(p), names=["writer", "reader"])
    return m


def writer(p: int) -> None:
    write_u32(p, 7)


def reader(p: int) -> None:
    read_u32(p)


# -- the report, in KCSAN's words --------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_plain_write_and_read_of_two_tasks_are_reported_on_every_run(seed: int) -> None:
    m = run_pair(seed, writer, reader)
    (rep,) = races(m)
    lines = rep.lines
    p = rep.extra["address"]
    assert lines[0] == KCSAN_RULE == "=" * 66
    assert lines[1] == "BUG: KCSAN: data-race in reader / writer"
    assert lines[2] == ""
    first, second = sorted(i for i, ln in enumerate(lines) if " to 0x" in ln)
    accesses = {lines[first].split(" to ")[0], lines[second].split(" to ")[0]}
    assert accesses == {"write", "read"}
    for i in (first, second):
        assert lines[i].startswith(("write to ", "read to "))
        assert f" to 0x{p:08x} of 4 bytes by task " in lines[i]
        assert lines[i].rsplit(" on cpu ", 1)[1][:-1] in ("0", "1") and lines[i].endswith(":")
        assert lines[i + 1].startswith((" writer (tests/mm/test_kcsan.py:", " reader (tests/mm/test_kcsan.py:"))
    assert lines[first + 2].startswith(" <lambda> (tests/mm/test_kcsan.py:")  # the caller: a simulated stack
    assert lines[second - 1] == ""
    # the earlier access comes first, the one that found the race second
    assert rep.extra["accesses"] == (lines[first].split(" to ")[0], lines[second].split(" to ")[0])
    assert "value changed: 0x00000000 -> 0x00000007" in lines
    i = lines.index("Reported by Kernel Concurrency Sanitizer on:")
    assert lines[i - 1] == "" and lines[i + 1].startswith("CPU: ") and " PID: " in lines[i + 1]
    assert lines[-1] == KCSAN_RULE
    assert rep.extra["functions"] == ("reader", "writer")


def test_read_write_marked_and_interrupt_wording() -> None:
    """A plain read racing with an atomic RMW is "read-write (marked)"; a handler is "by interrupt"."""
    m = run_pair(0, lambda p: atomic_inc(p), reader)
    (rep,) = races(m)
    assert set(rep.extra["accesses"]) == {"read-write (marked)", "read"}
    assert any(ln.startswith("read-write (marked) to 0x") for ln in rep.lines)
    m = run_pair(1, lambda p: WRITE_ONCE(p, 3), reader)
    (rep,) = races(m)
    assert set(rep.extra["accesses"]) == {"write (marked)", "read"}


def test_a_write_of_the_value_already_there_is_not_reported() -> None:
    """CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY: the race changed nothing."""
    m = run_pair(0, lambda p: write_u32(p, 0), reader)
    assert races(m) == []
    assert m.kcsan is not None and m.kcsan.nr_races == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_marked_accesses_never_race_with_each_other(seed: int) -> None:
    def w(p: int) -> None:
        for i in range(5):
            WRITE_ONCE(p, i + 1)
            atomic_inc(p)
            atomic_set(p, i)

    def r(p: int) -> None:
        for _ in range(5):
            READ_ONCE(p)
            atomic_read(p)
            atomic_inc(p)

    m = run_pair(seed, w, r)
    assert races(m) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_mmio_accessors_are_marked_a_plain_access_to_a_register_is_not(seed: int) -> None:
    """readl/writel of one device register from two CPUs is no data race (the kernel's MMIO
    accessors are volatile asm); a plain write_u32 through the mapping racing a readl is."""
    from percpu_kmem.linux import ioremap, readl, writel
    from percpu_kmem.mm.mmio import register_io_device

    def pair(writer: Callable[[int, int], None]) -> Machine:
        m = Machine(cpus=2, seed=seed, kcsan=True)
        register_io_device(m, 0xFE000000, 4096, name="dev")
        io = m.run(lambda: ioremap(0xFE000000, 4096))[0]

        def w() -> None:
            for i in range(4):
                writer(io + 0x10, i)

        def r() -> None:
            for _ in range(4):
                readl(io + 0x10)
        m.run(w, r)
        return m

    assert races(pair(lambda addr, v: writel(v, addr))) == []
    assert len(races(pair(write_u32))) == 1


def test_each_pair_of_sites_once_per_run() -> None:
    m = Machine(cpus=2, policy="random", seed=3, kcsan=True)
    p = shared_word(m)

    def w() -> None:
        for i in range(20):
            write_u32(p, i + 1)

    def r() -> None:
        for _ in range(20):
            read_u32(p)

    m.run(w, r)
    assert len(races(m)) == 1
    m.run(w, r)
    assert len(races(m)) == 2  # once per run


# -- happens-before: correct code reports nothing ---------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_locks_order_accesses(seed: int) -> None:
    lock = spin_lock_init("kcsan_lock")
    mtx = mutex_init("kcsan_mutex")

    def worker(p: int) -> None:
        for i in range(5):
            spin_lock(lock)
            write_u32(p, read_u32(p) + 1)
            spin_unlock(lock)
            mutex_lock(mtx)
            write_u32(p + 4, read_u32(p + 4) + i + 1)
            preempt_point()
            mutex_unlock(mtx)
            flags = spin_lock_irqsave(lock)
            write_u32(p + 8, read_u32(p + 8) + 1)
            spin_unlock_irqrestore(lock, flags)

    m = run_pair(seed, worker, worker)
    assert races(m) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_wake_ups_and_kthread_run_order_accesses(seed: int) -> None:
    wq = init_waitqueue_head("kcsan_wq")
    ready: list[bool] = []

    def producer(p: int) -> None:
        write_u32(p, 42)
        ready.append(True)
        wake_up(wq)

    def consumer(p: int) -> None:
        wait_event(wq, lambda: bool(ready))
        assert read_u32(p) == 42

    m = run_pair(seed, producer, consumer)
    assert races(m) == []

    def parent(p: int) -> None:
        write_u32(p, 1)
        kthread_run(lambda: read_u32(p), namefmt="child")

    m = run_pair(seed, parent, lambda p: None)
    assert races(m) == []

    def late_parent(p: int) -> None:
        kthread_run(lambda: read_u32(p), namefmt="child")
        write_u32(p, 1)  # after the spawn: not ordered with the child's read

    m = run_pair(seed, late_parent, lambda p: None)
    assert len(races(m)) == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_fully_ordered_atomics_publish_relaxed_ones_do_not(seed: int) -> None:
    def publish(p: int) -> None:
        write_u32(p + 4, 9)
        atomic_inc_return(p)  # fully ordered: release

    def consume(p: int) -> None:
        while atomic_add_return(0, p) == 0:  # fully ordered: acquire
            preempt_point()
        read_u32(p + 4)

    m = run_pair(seed, publish, consume)
    assert races(m) == []

    def publish_relaxed(p: int) -> None:
        write_u32(p + 4, 9)
        atomic_set(p, 1)

    def consume_relaxed(p: int) -> None:
        while atomic_read(p) == 0:
            preempt_point()
        read_u32(p + 4)

    m = run_pair(seed, publish_relaxed, consume_relaxed)
    assert len(races(m)) == 1


# -- interrupts: a handler races with what it interrupts, unless that code had irqs off ------------
def irq_machine(seed: int, irqs_off: bool, cpus: int = 1, other_cpu: bool = False) -> Machine:
    m = Machine(cpus=cpus, policy="random", seed=seed, kcsan=True)
    p = shared_word(m)
    m.run(lambda: request_irq(IRQ, lambda irq, dev: read_u32(p), 0, "kcsan-dev"))

    def task() -> None:
        # on this CPU: delivered at once, before the write below; or on the other one
        raise_irq(IRQ, 1 - raw_smp_processor_id() if other_cpu else None)
        if irqs_off:
            flags = local_irq_save()
            write_u32(p, 1)
            local_irq_restore(flags)
        else:
            write_u32(p, 1)

    m.run(task)
    return m


@pytest.mark.parametrize("seed", SEEDS)
def test_handler_races_with_the_task_it_interrupts_on_the_same_cpu(seed: int) -> None:
    m = irq_machine(seed, irqs_off=False)
    (rep,) = races(m)
    assert any(" by interrupt on cpu 0:" in ln for ln in rep.lines)
    assert any(" by task " in ln and ln.endswith(" on cpu 0:") for ln in rep.lines)
    assert rep.lines[1] == "BUG: KCSAN: data-race in <lambda> / task"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_section_with_irqs_off_is_ordered_with_the_handlers_of_its_cpu(seed: int) -> None:
    assert races(irq_machine(seed, irqs_off=True)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_irqs_off_does_not_order_a_handler_of_another_cpu(seed: int) -> None:
    m = irq_machine(seed, irqs_off=True, cpus=2, other_cpu=True)
    (rep,) = races(m)
    assert any(" by interrupt on cpu " in ln for ln in rep.lines)
    assert rep.extra["cpus"][0] != rep.extra["cpus"][1]


@pytest.mark.parametrize("seed", SEEDS)
def test_softirq_sees_what_its_top_half_wrote_and_bh_off_sections(seed: int) -> None:
    m = Machine(cpus=1, policy="random", seed=seed, kcsan=True)
    p = shared_word(m)

    def setup() -> None:
        open_softirq(3, lambda: write_u32(p + 4, read_u32(p) + 1))
        request_irq(IRQ, lambda irq, dev: (write_u32(p, 5), raise_softirq(3)), 0, "kcsan-top")

    m.run(setup)

    def task() -> None:
        raise_irq(IRQ)
        local_bh_disable()
        write_u32(p + 4, 1)  # softirqs are off here: ordered with the bottom half
        local_bh_enable()

    m.run(task)
    assert races(m) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_an_ipi_call_is_ordered_with_its_caller_both_ways(seed: int) -> None:
    m = Machine(cpus=2, policy="random", seed=seed, kcsan=True)
    p = shared_word(m)

    def task() -> None:
        write_u32(p, 3)
        smp_call_function(lambda info: write_u32(p + 4, read_u32(p) + 1), None, True)
        assert read_u32(p + 4) == 4

    m.run(task)
    assert races(m) == []


def test_explore_fails_a_racy_scenario_unless_the_race_is_expected() -> None:
    def scenario(m: Machine) -> None:
        p = shared_word(m)
        m.run(lambda: writer(p), lambda: reader(p))

    with pytest.raises(UnexpectedReport, match="BUG: KCSAN: data-race in"):
        explore(scenario, seeds=[0], policies="random", cpus=2, kcsan=True, shrink=False)
    assert explore(scenario, seeds=range(3), policies="random", cpus=2, kcsan=True,
                   expect="kcsan_data_race") == 3


# -- per-CPU data ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_per_cpu_variables_with_and_without_get_cpu(seed: int) -> None:
    def fixed() -> None:
        for _ in range(5):
            with get_cpu_var(kcsan_counter) as ref:
                v = ref.value
                preempt_point()
                ref.value = v + 1
            this_cpu_add(kcsan_counter, 1)

    m = Machine(cpus=2, policy="random", seed=seed, kcsan=True)
    m.run(fixed, fixed, fixed)
    assert races(m) == []

    def broken() -> None:
        for _ in range(5):
            ref = per_cpu(kcsan_counter, raw_smp_processor_id())
            v = ref.value
            preempt_point()
            ref.value = v + 1

    def found(m: Machine) -> bool:
        m.run(broken, broken, broken)
        return bool(races(m))

    assert any(found(Machine(cpus=2, policy="random", seed=s, kcsan=True)) for s in range(seed, seed + 8))


# -- freed memory, determinism, the existing scenarios ------------------------------------------------
def test_freed_objects_lose_their_shadow() -> None:
    m = Machine(cpus=1, kcsan=True)
    kc = m.kcsan
    assert kc is not None

    def task() -> None:
        p = kmalloc(32, GFP_KERNEL)
        assert p is not None
        write_u32(p, 1)
        vpn = p >> 12
        assert (p & 0xFFF) in kc.shadow[vpn]
        kfree(p)
        assert (p & 0xFFF) not in kc.shadow.get(vpn, {})
        page = get_free_page(GFP_KERNEL)
        assert page is not None
        write_u32(page + 8, 1)
        assert page >> 12 in kc.shadow
        free_page(page)
        assert page >> 12 not in kc.shadow

    m.run(task)


def counter_workload(m: Machine) -> list[Any]:
    lock = spin_lock_init("kcsan_det")
    p = shared_word(m)

    def worker() -> int:
        n = 0
        for _ in range(10):
            spin_lock(lock)
            write_u32(p, read_u32(p) + 1)
            spin_unlock(lock)
            n += read_u32(p) & 1  # racy: the result depends on the schedule
            p2 = kmalloc(64, GFP_KERNEL)
            kfree(p2)
        return n

    return m.run(worker, worker, worker)


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_same_seed_same_trace_and_results_with_kcsan_on_or_off(policy: str) -> None:
    off = Machine(cpus=2, policy=policy, seed=11)
    on = Machine(cpus=2, policy=policy, seed=11, kcsan=True)
    assert counter_workload(off) == counter_workload(on)
    assert str(off.trace) == str(on.trace)
    assert races(on) and not races(off)


class KcsanMachine(Machine):
    """The suite's Machine with kcsan=True: what explore() builds in the test below."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("kcsan", True)
        super().__init__(*args, **kw)


def test_existing_scenarios_report_nothing_with_kcsan_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scenarios of the suite with locks, wait queues, atomics, this_cpu ops, interrupts and
    remote frees: explore() fails a run on any report it does not expect, a data race included."""
    import percpu_kmem.testing as testing
    from tests.mm import test_atomic, test_mempool, test_percpu, test_slab, test_vmalloc

    monkeypatch.setattr(testing, "Machine", KcsanMachine)
    used: list[bool] = []

    def checked(scenario: Callable[[Machine], Any]) -> Callable[[Machine], Any]:
        def run(m: Machine) -> Any:
            used.append(m.kcsan is not None)
            return scenario(m)
        return run

    test_slab.test_remote_frees_producer_consumer()  # 40 runs through explore()
    explore(checked(test_vmalloc._concurrent_scenario), seeds=range(3), policies=("random", "pct"), cpus=3)
    explore(checked(test_mempool._stress), seeds=range(3), policies=("random", "pct"), cpus=3,
            memory=test_mempool.SMALL)
    explore(checked(lambda m: test_percpu.counter_scenario(m, this_cpu_add, {})), seeds=range(4),
            policies=("random", "pct"), cpus=2)
    assert used and all(used)
    for seed in range(3):
        m = KcsanMachine(cpus=2, policy="random", seed=seed)
        assert test_atomic._counter_run(m, atomic=True) == 200
        assert races(m) == []


def test_free_running_policy_keeps_the_clocks_consistent() -> None:
    lock = spin_lock_init("kcsan_free")
    m = Machine(cpus=2, policy="free", seed=0, kcsan=True)
    p = shared_word(m)

    def worker() -> None:
        for _ in range(30):
            spin_lock(lock)
            write_u32(p, read_u32(p) + 1)
            spin_unlock(lock)

    m.run(worker, worker, worker)
    assert races(m) == []


def test_kcsan_argument_must_be_a_bool() -> None:
    with pytest.raises(KmemUsageError, match=r"kcsan\(='yes'\) must be True or False"):
        Machine(cpus=1, kcsan="yes")  # type: ignore[arg-type]
    assert Machine(cpus=1).kcsan is None
    assert Machine(cpus=1, kcsan=True).shaping_args()["kcsan"] is True
