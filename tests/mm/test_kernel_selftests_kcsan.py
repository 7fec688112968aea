"""The kernel's KCSAN self-tests (kernel/kcsan/kcsan_test.c, kernel/kcsan/selftest.c) and
the classic concurrency bugs KCSAN finds, each with its fixed twin, run through the model's
detector (mm/kcsan.py, runtime/hb.py) under every policy.

kcsan_test.c runs two "access kernels" on several threads until a report of the expected
shape shows on the console (report_matches(): the title with the two functions sorted, and
"<type> to 0x<addr> of <size> bytes" for both accesses, in either order). Here the kernels
are two tasks of one run; the model's detector sees every access, so a race must show on
every run of every deterministic policy (and of the free-running one, which cannot take a
preemption-off section of one CPU for an order: no kernel here takes one), and a correct
twin must stay silent under all of them.

Kept from kcsan_test.c: test_basic, test_concurrent_races, test_novalue_change,
test_novalue_change_exception, test_write_write_assume_atomic (the model follows
CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC=n, docs/kcsan.md), test_write_write_struct,
test_write_write_struct_part, test_read_atomic_write_atomic, test_read_plain_atomic_write,
test_read_plain_atomic_rmw, test_zero_size_access, test_atomic_builtins (with the model's
atomic_* in place of the compiler's __atomic builtins) and test_1bit_value_change; from
selftest.c, test_matching_access (which byte ranges conflict). Not expressible in the model
(docs/kcsan.md): test_unknown_origin (no access is uninstrumented), data_race(), the
ASSERT_EXCLUSIVE_* tests, test_jiffies_noreport (jiffies is not simulated memory),
test_seqlock_noreport (no seqlocks) and the barrier tests (no weak memory).
``long`` is the model's i386 long: 4 bytes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, Machine
from percpu_kmem.linux import (
    READ_ONCE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    atomic_add,
    atomic_add_return,
    atomic_cmpxchg,
    atomic_dec,
    atomic_dec_and_test,
    atomic_read,
    atomic_set,
    atomic_xchg,
    cmpxchg,
    cpu_relax,
    current,
    free_irq,
    get_cpu,
    init_waitqueue_head,
    kmalloc,
    kthread_run,
    local_irq_restore,
    local_irq_save,
    mem_read,
    mem_write,
    memset,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    preempt_disable,
    preempt_enable,
    preempt_point,
    put_cpu,
    raise_irq,
    read_u8,
    read_u16,
    read_u32,
    request_irq,
    schedule,
    set_current_state,
    smp_call_function,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_irqrestore,
    wait_event,
    wake_up,
    wake_up_process,
    write_u8,
    write_u16,
    write_u32,
    xchg,
)
from percpu_kmem.mm.kcsan import KCSAN_RULE
from percpu_kmem.mm.percpu import DEFINE_PER_CPU, __this_cpu_inc, per_cpu, this_cpu_inc
from percpu_kmem.runtime.kernel import raw_smp_processor_id
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(120)

POLICIES = ("random", "pct", "free", "virtual")
SEEDS = range(3)
RACE = "kcsan_data_race"
LONG = 4  # sizeof(long) on the model's i386
STRUCT = 8 * LONG  # struct { long val[8]; } test_struct
IRQ = 11
TIMEOUT = 60.0


def races(m: Machine) -> list[Any]:
    """The run's data-race reports; any other report fails the test."""
    others = [r for r in m.reports if r.kind != RACE]
    assert not others, others[0].text
    return m.reports_of(RACE)


def shared_var(m: Machine, size: int = STRUCT) -> int:
    """The test's shared variable: a zeroed kmalloc'ed block, set up in a run of its own."""
    box: list[int] = []

    def setup() -> None:
        p = kmalloc(size, GFP_KERNEL)
        assert p is not None
        memset(p, 0, size)
        box.append(p)

    m.run(setup)
    return box[0]



def pair(policy: str, seed: int, k1: Callable[[int], Any], k2: Callable[[int], Any], *,
         size: int = STRUCT, init: Callable[[int], Any] | None = None, cpus: int = 2) -> tuple[Machine, int]:
    """begin_test_checks(k1, k2): the two access kernels as two tasks of one run."""
    m = Machine(cpus=cpus, policy=policy, seed=seed, kcsan=True)
    p = shared_var(m, size)
    if init is not None:
        m.run(lambda: init(p))
    m.run(lambda: k1(p), lambda: k2(p), names=["kcsan_t1", "kcsan_t2"])
    return m, p


def runs(k1: Callable[[int], Any], k2: Callable[[int], Any], **kw: Any) -> list[tuple[str, int, Machine, int]]:
    """The pair under every policy and seed."""
    out = []
    for policy in POLICIES:
        for seed in SEEDS:
            m, p = pair(policy, seed, k1, k2, **kw)
            out.append((policy, seed, m, p))
    return out


def matches(rep: Any, a: tuple[Callable[..., Any], int, int, str], b: tuple[Callable[..., Any], int, int, str]) -> bool:
    """report_matches() of kcsan_test.c: the title, and both accesses in either order."""
    f1, f2 = a[0].__name__, b[0].__name__
    title = f"BUG: KCSAN: data-race in {min(f1, f2)} / {max(f1, f2)}"
    want = [f"{typ} to 0x{addr:08x} of {size} bytes by " for _, addr, size, typ in (a, b)]
    got = [ln for ln in rep.lines if " bytes by " in ln]
    if rep.lines[1] != title or len(got) != 2:
        return False
    return ((got[0].startswith(want[0]) and got[1].startswith(want[1]))
            or (got[0].startswith(want[1]) and got[1].startswith(want[0])))


def assert_reported_everywhere(k1: Callable[[int], Any], k2: Callable[[int], Any],
                               a: tuple[Callable[..., Any], int, str], b: tuple[Callable[..., Any], int, str],
                               *, offsets: tuple[int, int] = (0, 0), **kw: Any) -> list[Any]:
    """Every run of every policy reports the race, in the expected shape; returns the reports."""
    found = []
    for policy, seed, m, p in runs(k1, k2, **kw):
        reps = races(m)
        assert reps, f"race missed under policy={policy} seed={seed}"
        exp_a = (a[0], p + offsets[0], a[1], a[2])
        exp_b = (b[0], p + offsets[1], b[1], b[2])
        assert any(matches(r, exp_a, exp_b) for r in reps), (policy, seed, [r.text for r in reps])
        found += reps
    return found


def assert_silent_everywhere(k1: Callable[[int], Any], k2: Callable[[int], Any], **kw: Any) -> None:
    for policy, seed, m, _ in runs(k1, k2, **kw):
        assert races(m) == [], f"policy={policy} seed={seed}:\n" + "\n".join(r.text for r in races(m))


# -- the access kernels of kcsan_test.c ----------------------------------------------------------------
def kernel_read(p: int) -> None:
    read_u32(p)


def kernel_write(p: int) -> None:
    write_u32(p, read_u32(p + 4 * LONG) + 1)  # test_sink + 1: the sink is another word


def kernel_write_nochange(p: int) -> None:
    write_u32(p, 42)


def kernel_write_nochange_rcu(p: int) -> None:
    write_u32(p, 42)


def kernel_read_atomic(p: int) -> None:
    READ_ONCE(p)


def kernel_write_atomic(p: int) -> None:
    WRITE_ONCE(p, 7)


def kernel_atomic_rmw(p: int) -> None:
    atomic_add(1, p)


def kernel_write_struct(p: int) -> None:
    """kcsan_check_write(&test_struct, sizeof(test_struct)) with val[3]++ inside."""
    data = bytearray(mem_read(p, STRUCT))
    data[3 * LONG] = (data[3 * LONG] + 1) & 0xFF
    mem_write(p, bytes(data))


def kernel_write_struct_part(p: int) -> None:
    write_u32(p + 3 * LONG, 42)


def kernel_read_struct_zero_size(p: int) -> None:
    mem_read(p + 3 * LONG, 0)


def kernel_xor_1bit(p: int) -> None:
    write_u32(p, read_u32(p) ^ 0x10000)


# -- test cases -----------------------------------------------------------------------------------------
def test_basic() -> None:
    """A plain write and a plain read: reported on every run, in kcsan_test.c's shape; two
    plain reads never are."""
    reps = assert_reported_everywhere(kernel_write, kernel_read, (kernel_write, LONG, "write"),
                                      (kernel_read, LONG, "read"))
    for rep in reps:
        lines = rep.lines
        assert lines[0] == lines[-1] == KCSAN_RULE
        assert lines[1] == "BUG: KCSAN: data-race in kernel_read / kernel_write"
        accs = [ln for ln in lines if " bytes by task " in ln]
        assert all(ln.rsplit(" on cpu ", 1)[1] in ("0:", "1:") for ln in accs)
        assert "value changed: 0x00000000 -> 0x00000001" in lines
        assert lines[-3] == "Reported by Kernel Concurrency Sanitizer on:"
        assert lines[-2].startswith("CPU: ") and " PID: " in lines[-2] and " Comm: kcsan_t" in lines[-2]
    assert_silent_everywhere(kernel_read, kernel_read)


def kernel_rmw_array(p: int) -> None:
    for off in range(0, 3 * 4096, 256):  # test_array spans three pages (several shadow pages)
        write_u32(p + off, read_u32(p + off) + 1)


def test_concurrent_races() -> None:
    """Races on many addresses over three pages: reported as write/read, never read/read."""
    for policy in ("random", "free"):
        m, _ = pair(policy, 0, kernel_rmw_array, kernel_rmw_array, size=3 * 4096)
        reps = races(m)
        assert reps
        for rep in reps:
            assert rep.lines[1] == "BUG: KCSAN: data-race in kernel_rmw_array / kernel_rmw_array"
            assert "write" in rep.extra["accesses"]


def test_novalue_change() -> None:
    """CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY: a write of the value already there is not
    reported, against a read or against another such write; the race is still counted."""
    def init(p: int) -> None:
        write_u32(p, 42)

    assert_silent_everywhere(kernel_write_nochange, kernel_read, init=init)
    assert_silent_everywhere(kernel_write_nochange, kernel_write_nochange, init=init)
    m, _ = pair("random", 0, kernel_write_nochange, kernel_read, init=init)
    assert m.kcsan is not None and m.kcsan.nr_races >= 1


def test_novalue_change_exception() -> None:
    """report.c's skip_report(): RCU's functions ("rcu_", "_rcu", "_srcu") are reported even
    when the write stored the same value; no value line then (no diff to show)."""
    def init(p: int) -> None:
        write_u32(p, 42)

    reps = assert_reported_everywhere(kernel_write_nochange_rcu, kernel_read,
                                      (kernel_write_nochange_rcu, LONG, "write"), (kernel_read, LONG, "read"),
                                      init=init)
    assert not any(ln.startswith("value changed:") for rep in reps for ln in rep.lines)


def test_write_write_assume_atomic() -> None:
    """Two plain aligned word writes: the model follows CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC=n
    (as CONFIG_KCSAN_STRICT), so the race is reported."""
    assert_reported_everywhere(kernel_write, kernel_write, (kernel_write, LONG, "write"),
                               (kernel_write, LONG, "write"))


def test_write_write_of_one_value_over_another_is_a_value_change() -> None:
    """Two CPUs store 1 where 0 was: the second store changes nothing, the first did, and
    either could have landed in the other's watch window (KCSAN: value changed 0 -> 1)."""
    def set_flag(p: int) -> None:
        write_u32(p, 1)

    reps = assert_reported_everywhere(set_flag, set_flag, (set_flag, LONG, "write"), (set_flag, LONG, "write"))
    assert all("value changed: 0x00000000 -> 0x00000001" in rep.lines for rep in reps)


def test_write_write_struct() -> None:
    """Writes larger than a word are always reported (no value diff; no value line)."""
    reps = assert_reported_everywhere(kernel_write_struct, kernel_write_struct,
                                      (kernel_write_struct, STRUCT, "write"), (kernel_write_struct, STRUCT, "write"))
    assert not any(ln.startswith("value changed:") for rep in reps for ln in rep.lines)


def test_write_write_struct_part() -> None:
    """The struct write against a word write inside it (of the same value each time)."""
    def init(p: int) -> None:
        write_u32(p + 3 * LONG, 42)

    for policy, seed, m, p in runs(kernel_write_struct, kernel_write_struct_part, init=init):
        assert any(matches(r, (kernel_write_struct, p, STRUCT, "write"),
                           (kernel_write_struct_part, p + 3 * LONG, LONG, "write")) for r in races(m)), (policy, seed)


def test_read_larger_than_a_word_always_reported() -> None:
    """A plain read of more than 8 bytes racing with a write of the same value: KCSAN diffs
    no value wider than 8 bytes and assumes a change (core.c), so it is reported."""
    def read_struct(p: int) -> None:
        mem_read(p, STRUCT)

    assert_reported_everywhere(read_struct, kernel_write_nochange, (read_struct, STRUCT, "read"),
                               (kernel_write_nochange, LONG, "write"), init=kernel_write_nochange)


def test_read_atomic_write_atomic() -> None:
    assert_silent_everywhere(kernel_read_atomic, kernel_write_atomic)


def test_read_plain_atomic_write() -> None:
    assert_reported_everywhere(kernel_read, kernel_write_atomic, (kernel_read, LONG, "read"),
                               (kernel_write_atomic, LONG, "write (marked)"))


def test_read_plain_atomic_rmw() -> None:
    assert_reported_everywhere(kernel_read, kernel_atomic_rmw, (kernel_read, LONG, "read"),
                               (kernel_atomic_rmw, LONG, "read-write (marked)"))


def test_zero_size_access() -> None:
    """A zero-sized access never races; the struct writers still do."""
    def both(p: int) -> None:
        kernel_write_struct(p)
        kernel_read_struct_zero_size(p)

    for policy, seed, m, _ in runs(both, both):
        reps = races(m)
        assert reps and all(r.extra["functions"] == ("kernel_write_struct", "kernel_write_struct")
                            for r in reps), (policy, seed)


def test_atomic_builtins() -> None:
    """The atomic operations give the values the kernel's do and never race with each other."""
    def ops(p: int) -> None:
        for _ in range(3):
            atomic_set(p, 42)
            atomic_read(p)
            atomic_xchg(p, 20)
            atomic_cmpxchg(p, 20, 30)
            atomic_add_return(1, p)
            atomic_dec(p)
            cmpxchg(p, 30, 31)
            xchg(p, 5)

    assert_silent_everywhere(ops, lambda p: [atomic_read(p) for _ in range(10)])

    def values(p: int) -> None:
        atomic_set(p, 42)
        assert atomic_read(p) == 42
        assert atomic_xchg(p, 20) == 42 and atomic_read(p) == 20
        assert atomic_cmpxchg(p, 20, 30) == 20 and atomic_read(p) == 30
        assert atomic_cmpxchg(p, 20, 40) == 30 and atomic_read(p) == 30  # fails: the value was 30
        assert atomic_add_return(1, p) == 31 and atomic_add_return(-33, p) == -2

    m, _ = pair("random", 0, values, lambda p: None)
    assert races(m) == []


def test_1bit_value_change() -> None:
    reps = assert_reported_everywhere(kernel_read, kernel_xor_1bit, (kernel_read, LONG, "read"),
                                      (kernel_xor_1bit, LONG, "write"))
    assert all(any(ln in ("value changed: 0x00000000 -> 0x00010000", "value changed: 0x00010000 -> 0x00000000")
                   for ln in rep.lines) for rep in reps)


# -- selftest.c: test_matching_access ------------------------------------------------------------------
@pytest.mark.parametrize(("w", "r", "conflict"), [
    ((10, 1), (10, 1), True),
    ((10, 2), (11, 1), True),
    ((10, 1), (9, 2), True),
    ((10, 1), (11, 1), False),
    ((9, 1), (10, 1), False),
    ((8, 2), (10, 2), False),
])
def test_matching_access(w: tuple[int, int], r: tuple[int, int], conflict: bool) -> None:
    """Two accesses conflict when their byte ranges overlap, whatever their sizes."""
    wr = {1: lambda a: write_u8(a, 0xAB), 2: lambda a: write_u16(a, 0xABCD)}
    rd = {1: read_u8, 2: read_u16}
    for policy in ("random", "free"):
        m, _ = pair(policy, 1, lambda p: wr[w[1]](p + w[0]), lambda p: rd[r[1]](p + r[0]))
        assert bool(races(m)) == conflict, (policy, w, r)


def test_value_change_seen_over_the_read_bytes() -> None:
    """A byte read inside a word write sees the change of its own byte: a write that leaves
    that byte alone shows no change to it (not reported), one that changes it is reported
    with the byte's old and new value (the watcher's size: 2 digits)."""
    def set_low_byte(p: int) -> None:
        write_u32(p, 0x000000AB)

    def read_byte(off: int) -> Callable[[int], None]:
        def read_flag(p: int) -> None:
            read_u8(p + off)
        return read_flag

    assert_silent_everywhere(set_low_byte, read_byte(3))
    reps = assert_reported_everywhere(set_low_byte, read_byte(0), (set_low_byte, LONG, "write"),
                                      (read_byte(0), 1, "read"))
    assert all("value changed: 0x00 -> 0xab" in rep.lines for rep in reps)


# -- classic bugs and their fixed twins ----------------------------------------------------------------
def test_locked_counter_twins() -> None:
    """A counter under one spinlock (or mutex) is silent; with no lock, or each CPU taking
    a different lock (the wrong-lock bug), the race shows under the deterministic policies
    on every seed."""
    locks: dict[Any, tuple[Any, Any, Any]] = {}

    def lk(i: int) -> Any:
        m = current().machine
        if m not in locks:
            locks[m] = (spin_lock_init("kcsan_a"), spin_lock_init("kcsan_b"), mutex_init("kcsan_m"))
        return locks[m][i]

    def locked(i: int) -> Callable[[int], None]:
        def k(p: int) -> None:
            for _ in range(3):
                spin_lock(lk(0))
                write_u32(p, read_u32(p) + 1)
                spin_unlock(lk(0))
                mutex_lock(lk(2))
                v = read_u32(p + 4)
                preempt_point()
                write_u32(p + 4, v + 1)
                mutex_unlock(lk(2))
        return k

    assert_silent_everywhere(locked(0), locked(1))

    def wrong(i: int) -> Callable[[int], None]:
        def counter_inc(p: int) -> None:
            spin_lock(lk(i))
            write_u32(p, read_u32(p) + 1)
            spin_unlock(lk(i))
        return counter_inc

    for policy in ("random", "pct", "virtual"):
        for seed in SEEDS:
            m, _ = pair(policy, seed, wrong(0), wrong(1))
            assert races(m), (policy, seed)

    def unlocked(p: int) -> None:
        write_u32(p, read_u32(p) + 1)

    assert_reported_everywhere(unlocked, unlocked, (unlocked, LONG, "write"), (unlocked, LONG, "read"))


def test_race_found_by_explore_defaults() -> None:
    """explore()'s default campaign (policies=None) reports the race on every run."""
    def scenario(m: Machine) -> None:
        p = shared_var(m)
        m.run(lambda: kernel_write(p), lambda: kernel_read(p))

    st = explore(scenario, seeds=range(8), policies=None, cpus=2, kcsan=True, expect=RACE, stats=True)
    assert st.reports[RACE]["runs"] == st.runs == 8


def test_wait_queue_handover_twins() -> None:
    """Data written before wake_up() and read after wait_event() is handed over; a reader
    that does not wait races."""
    state: dict[Any, tuple[Any, list[int]]] = {}

    def wq() -> tuple[Any, list[int]]:
        m = current().machine
        if m not in state:
            state[m] = (init_waitqueue_head("kcsan_wq"), [])
        return state[m]

    def producer(p: int) -> None:
        q, ready = wq()
        write_u32(p, 42)
        ready.append(1)
        wake_up(q)

    def consumer(p: int) -> None:
        q, ready = wq()
        wait_event(q, lambda: bool(ready))
        assert read_u32(p) == 42

    assert_silent_everywhere(producer, consumer)
    assert_reported_everywhere(producer, kernel_read, (producer, LONG, "write"), (kernel_read, LONG, "read"))


def test_wake_up_process_and_kthread_run_handover_twins() -> None:
    """A task that sleeps in schedule() until woken sees what its waker wrote before
    wake_up_process(); a kthread sees what its parent wrote before kthread_run(), not after."""
    shared: dict[Any, tuple[list[Any], list[int]]] = {}

    def st() -> tuple[list[Any], list[int]]:
        return shared.setdefault(current().machine, ([], []))

    def sleeper(p: int) -> None:
        who, done = st()
        set_current_state(TASK_UNINTERRUPTIBLE)
        who.append(current())
        while not done:
            schedule()
            set_current_state(TASK_UNINTERRUPTIBLE)
        set_current_state(TASK_RUNNING)
        assert read_u32(p) == 9

    def waker(p: int) -> None:
        who, done = st()
        while not who:
            cpu_relax()
        write_u32(p, 9)
        done.append(1)
        wake_up_process(who[0])

    assert_silent_everywhere(sleeper, waker)

    def parent(p: int) -> None:
        write_u32(p, 1)
        kthread_run(lambda: read_u32(p), namefmt="kcsan_child")

    def late_parent(p: int) -> None:
        kthread_run(lambda: read_u32(p), namefmt="kcsan_child")
        write_u32(p, 2)

    assert_silent_everywhere(parent, lambda p: None)
    for policy, seed, m, _ in runs(late_parent, lambda p: None):
        assert races(m), (policy, seed)


percpu_counter = DEFINE_PER_CPU(int, "kcsan_selftest_counter")


def percpu_irq_scenario(policy: str, seed: int, irqs_off: bool) -> Machine:
    """A per-CPU counter updated by tasks under get_cpu() and by an interrupt handler of
    the same CPU: get_cpu() keeps other tasks out, not the handler (the classic bug);
    local_irq_save() around the update is the fix."""
    m = Machine(cpus=1, policy=policy, seed=seed, kcsan=True)

    def handler(irq: int, dev: Any) -> None:
        ref = per_cpu(percpu_counter, raw_smp_processor_id())
        ref.value = ref.value + 1

    m.run(lambda: request_irq(IRQ, handler, 0, "kcsan-percpu"))

    def task() -> None:
        for _ in range(2):
            cpu = get_cpu()
            flags = local_irq_save() if irqs_off else 0
            ref = per_cpu(percpu_counter, cpu)
            v = ref.value
            raise_irq(IRQ)  # the device interrupts here (delivered at once unless irqs are off)
            ref.value = v + 1
            if irqs_off:
                local_irq_restore(flags)
            put_cpu()

    m.run(task, task)
    return m


def test_percpu_counter_under_get_cpu_vs_interrupt_twins() -> None:
    for policy in POLICIES:
        for seed in SEEDS:
            assert races(percpu_irq_scenario(policy, seed, irqs_off=True)) == [], (policy, seed)
            reps = races(percpu_irq_scenario(policy, seed, irqs_off=False))
            assert reps and any(" by interrupt on cpu 0:" in ln for ln in reps[0].lines), (policy, seed)


def irq_lock_scenario(policy: str, seed: int, locked: bool) -> Machine:
    """Process context and an interrupt handler of another CPU share a word: under
    spin_lock_irqsave()/spin_lock() of one lock they are ordered, without it they race."""
    m = Machine(cpus=2, policy=policy, seed=seed, kcsan=True, timeout=TIMEOUT)
    p = shared_var(m)
    lock = m.run(lambda: spin_lock_init("kcsan_dev_lock"))[0]

    ran: list[int] = []

    def handler(irq: int, dev: Any) -> None:
        if locked:
            spin_lock(lock)
        write_u32(p, read_u32(p) + 1)
        if locked:
            spin_unlock(lock)
        ran.append(1)

    m.run(lambda: request_irq(IRQ, handler, 0, "kcsan-dev"))

    def task() -> None:
        raise_irq(IRQ, 1 - raw_smp_processor_id())
        for _ in range(2):
            flags = spin_lock_irqsave(lock) if locked else 0
            write_u32(p, read_u32(p) + 1)
            if locked:
                spin_unlock_irqrestore(lock, flags)
            preempt_point()
        for _ in range(1000):  # a while for the other CPU to take the interrupt (bounded: see
            if ran:            # the xfails below; the Python flag orders nothing)
                break
            cpu_relax()

    m.run(task)
    return m


def test_interrupt_handler_vs_process_context_twins() -> None:
    for policy in POLICIES:
        for seed in SEEDS:
            assert races(irq_lock_scenario(policy, seed, locked=True)) == [], (policy, seed)
            assert races(irq_lock_scenario(policy, seed, locked=False)), (policy, seed)


def test_refcount_release_twins() -> None:
    """The last user tears the object down. atomic_dec_and_test() is fully ordered, so
    every user's access happens before the teardown; atomic_dec() then atomic_read() == 0
    orders nothing (the classic broken put): the teardown races with the other's use."""
    def put(good: bool) -> Callable[[int], None]:
        def obj_put(p: int) -> None:
            read_u32(p + LONG)  # use the object
            if good:
                last = atomic_dec_and_test(p)
            else:
                atomic_dec(p)
                last = atomic_read(p) == 0
            if last:
                write_u32(p + LONG, 0xDEAD)  # tear down
        return obj_put

    def init(p: int) -> None:
        atomic_set(p, 2)

    assert_silent_everywhere(put(True), put(True), init=init)
    for policy, seed, m, _ in runs(put(False), put(False), init=init):
        assert races(m), (policy, seed)


def test_ipi_call_twins() -> None:
    """smp_call_function(wait=1) orders the remote func before the caller's next access;
    wait=0 does not."""
    def caller(wait: bool) -> Callable[[int], None]:
        def k(p: int) -> None:
            smp_call_function(lambda info: write_u32(p, 3), None, wait)
            for _ in range(20):
                cpu_relax()
            read_u32(p)
        return k

    assert_silent_everywhere(caller(True), lambda p: None)
    for policy, seed, m, _ in runs(caller(False), lambda p: None):
        assert races(m), (policy, seed)


def test_spin_trylock_orders_like_spin_lock() -> None:
    def k(p: int) -> None:
        lock = trylock_of(current().machine)
        done = 0
        while done < 3:
            if spin_trylock(lock):
                write_u32(p, read_u32(p) + 1)
                spin_unlock(lock)
                done += 1
            else:
                cpu_relax()

    assert_silent_everywhere(k, k)


_trylocks: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def trylock_of(m: Any) -> Any:
    if m not in _trylocks:
        _trylocks[m] = spin_lock_init("kcsan_trylock")
    return _trylocks[m]


this_cpu_counter = DEFINE_PER_CPU(int, "kcsan_selftest_this_cpu")


def test_this_cpu_ops_vs_interrupt_twins() -> None:
    """this_cpu_inc() is one instruction (marked): a handler's and a task's never race.
    __this_cpu_inc() is a plain read-modify-write: with preemption off it still races
    with a handler of its CPU."""
    def scenario(policy: str, seed: int, marked: bool) -> Machine:
        m = Machine(cpus=1, policy=policy, seed=seed, kcsan=True)
        inc = this_cpu_inc if marked else __this_cpu_inc
        m.run(lambda: request_irq(IRQ, lambda irq, dev: inc(this_cpu_counter), 0, "kcsan-this-cpu"))

        def task() -> None:
            for _ in range(2):
                raise_irq(IRQ)
                preempt_disable()
                inc(this_cpu_counter)
                preempt_enable()

        m.run(task)
        return m

    for policy in POLICIES:
        for seed in SEEDS:
            assert races(scenario(policy, seed, True)) == [], (policy, seed)
            assert races(scenario(policy, seed, False)), (policy, seed)


def test_policy_raised_interrupts_twins() -> None:
    """Interrupts the policy raises (irq_rate): a handler's update races with the task's
    unless the task's update runs with interrupts off (one CPU)."""
    def scenario(policy: str, seed: int, irqs_off: bool) -> Machine:
        m = Machine(cpus=1, policy=policy, seed=seed, kcsan=True, irq_rate=0.3)
        p = shared_var(m)
        m.run(lambda: request_irq(IRQ, lambda irq, dev: write_u32(p, read_u32(p) + 1), 0, "kcsan-rate"))

        def task() -> None:
            for _ in range(10):
                flags = local_irq_save() if irqs_off else 0
                write_u32(p, read_u32(p) + 1)
                if irqs_off:
                    local_irq_restore(flags)
                preempt_point()

        m.run(task)
        return m

    for policy in POLICIES:
        for seed in SEEDS:
            assert races(scenario(policy, seed, True)) == [], (policy, seed)
    for policy in ("random", "pct", "free"):  # virtual: see the xfail below
        for seed in SEEDS:
            assert races(scenario(policy, seed, False)), (policy, seed)


# -- problems outside the detector, shown here for the runtime's owner --------------------------------
def test_free_irq_orders_the_handler_before_what_follows() -> None:
    m = Machine(cpus=2, policy="random", seed=5, kcsan=True)
    p = shared_var(m)
    ran: list[int] = []

    def handler(irq: int, dev: Any) -> None:
        ran.append(1)
        read_u32(p)

    m.run(lambda: request_irq(IRQ, handler, 0, "kcsan-dev", p))

    def remove() -> None:
        raise_irq(IRQ, 1 - raw_smp_processor_id())
        for _ in range(3):
            preempt_point()
        free_irq(IRQ, p)  # synchronize_irq(): the handler has finished
        write_u32(p, 5)

    m.run(remove)
    assert ran  # the handler ran (on the other CPU) before free_irq() returned
    assert races(m) == [], races(m)[0].text


@pytest.mark.xfail(strict=True, reason="virtual: interrupts raised at random (irq_rate) never fire in a "
                   "short run (20 points at rate 0.3: random, pct and free fire about 6)")
def test_virtual_policy_fires_rate_driven_interrupts_in_a_short_run() -> None:
    def twenty_points() -> None:
        for _ in range(20):
            preempt_point()

    fired = []
    for seed in SEEDS:
        m = Machine(cpus=1, policy="virtual", seed=seed, irq_rate=0.3)
        ran: list[int] = []
        m.run(lambda: request_irq(IRQ, lambda irq, dev: ran.append(1), 0, "kcsan-rate"))
        m.run(twenty_points)
        fired.append(len(ran))
    assert all(fired), f"interrupts fired per run: {fired}"


def test_pct_serves_an_interrupt_a_task_polls_for() -> None:
    for seed in range(3):
        m = Machine(cpus=2, policy="pct", seed=seed)
        ran: list[int] = []
        m.run(lambda: request_irq(IRQ, lambda irq, dev: ran.append(1), 0, "kcsan-poll"))

        def task() -> None:
            raise_irq(IRQ, 1 - raw_smp_processor_id())
            while not ran:
                cpu_relax()

        m.run(task)
        assert ran and m.reports == [], m.reports[0].text if m.reports else "the handler never ran"


@pytest.mark.xfail(strict=True, reason="free-running policy: an interrupt raised on an idle CPU just before "
                   "the run ends is never delivered (nor in the next run); the deterministic policies deliver it")
def test_free_policy_delivers_an_interrupt_raised_on_an_idle_cpu() -> None:
    missed = []
    for seed in range(8):
        m = Machine(cpus=2, policy="free", seed=seed)
        ran: list[int] = []
        m.run(lambda: request_irq(IRQ, lambda irq, dev: ran.append(1), 0, "kcsan-idle"))

        def task() -> None:
            raise_irq(IRQ, 1 - raw_smp_processor_id())
            for _ in range(3):
                preempt_point()

        m.run(task)
        m.run(lambda: None)
        if not ran:
            missed.append(seed)
    assert missed == [], f"interrupt never delivered under seeds {missed}"


@pytest.mark.parametrize("policy", ["random", "free"])
def test_wake_up_before_schedule_orders_the_waker(policy: str) -> None:
    m = Machine(cpus=1, policy=policy, seed=0, kcsan=True)
    p = shared_var(m)
    who: list[Any] = []

    def handler(irq: int, dev: Any) -> None:
        write_u32(p, 9)
        wake_up_process(who[0])

    m.run(lambda: request_irq(IRQ, handler, 0, "kcsan-waker"))

    def waiter() -> None:
        who.append(current())
        set_current_state(TASK_UNINTERRUPTIBLE)
        raise_irq(IRQ)  # the handler runs at once and wakes this task
        schedule()  # returns at once: the wake-up came
        assert read_u32(p) == 9

    m.run(waiter)
    assert races(m) == [], races(m)[0].text
