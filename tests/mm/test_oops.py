"""Bad pointers in simulated code: NULL and wild addresses oops the task, the run goes on."""

from __future__ import annotations

import pytest

from percpu_kmem import (
    GFP_KERNEL,
    InconsistentState,
    KernelPanic,
    KmemUsageError,
    Machine,
    __get_free_page,
    free_page,
    kmalloc,
    mem_read,
    mem_write,
    memcpy,
    memset,
    nr_free_pages,
    raise_irq,
    read_u8,
    read_u32,
    spin_lock_init,
    spin_lock_irqsave,
    write_u32,
)

pytestmark = pytest.mark.timeout(60)

SEEDS = (1, 2, 3)


def fault_lines(m: Machine) -> list[list[str]]:
    return [r.lines for r in m.reports_of("page_fault")]


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
@pytest.mark.parametrize("seed", SEEDS)
def test_memset_null_after_unchecked_failed_allocation_oopses_only_that_task(policy: str, seed: int) -> None:
    m = Machine(cpus=2, memory="16M", policy=policy, seed=seed)
    done: list[str] = []

    def careless() -> None:
        buf = kmalloc(1 << 20, GFP_KERNEL)  # more than size-131072: NULL, and nobody checks
        memset(buf, 0, 64)
        done.append("careless went on")  # never reached: the task was killed

    def bystander() -> int:
        total = 0
        for _ in range(20):
            a = __get_free_page(GFP_KERNEL)
            write_u32(a, 7)
            total += read_u32(a)
            free_page(a)
        done.append("bystander")
        return total

    results = m.run(careless, bystander)
    assert results == [None, 140]
    assert done == ["bystander"]
    (lines,) = fault_lines(m)
    assert lines[:4] == [
        "BUG: kernel NULL pointer dereference, address: 00000000",
        "#PF: supervisor write access in kernel mode",
        "#PF: error_code(0x0002) - not-present page",
        "Oops: 0002 [#1] SMP",
    ]
    assert lines[4].startswith("EIP: careless (tests/mm/test_oops.py:")
    assert any(ln.startswith("CPU: ") and ln.endswith("Comm: careless") for ln in lines)
    assert "---[ end trace 0000000000000000 ]---" in " ".join(m.dmesg)
    m.check()
    again = m.run(lambda: __get_free_page(GFP_KERNEL) is not None)  # the machine works on
    assert again == [True]


def test_field_of_a_null_struct_is_a_null_dereference_read() -> None:
    m = Machine(cpus=1, memory="16M")
    m.run(lambda: read_u32(0x10))  # p->field with p == NULL, field at offset 16
    (lines,) = fault_lines(m)
    assert lines[:4] == [
        "BUG: kernel NULL pointer dereference, address: 00000010",
        "#PF: supervisor read access in kernel mode",
        "#PF: error_code(0x0000) - not-present page",
        "Oops: 0000 [#1] SMP",
    ]
    assert m.reports_of("page_fault")[0].extra["null"] is True
    m.check()


def test_last_byte_of_the_null_page_and_beyond() -> None:
    m = Machine(cpus=1, memory="16M")
    m.run(lambda: read_u8(0xFFF), lambda: read_u8(0x1000), lambda: mem_write(0x1000, b"x"))
    firsts = sorted(ls[0] for ls in fault_lines(m))
    assert firsts == ["BUG: kernel NULL pointer dereference, address: 00000fff",
                      "BUG: unable to handle page fault for address: 00001000",
                      "BUG: unable to handle page fault for address: 00001000"]
    (write,) = [ls for ls in fault_lines(m) if "write" in ls[1]]
    assert write[2] == "#PF: error_code(0x0002) - not-present page"
    assert write[3].startswith("Oops: 0002 [#")


def test_oops_counter_counts_every_oops_of_the_machine() -> None:
    m = Machine(cpus=1, memory="16M", policy="virtual")
    m.run(lambda: read_u8(None))
    m.run(lambda: mem_write(None, b"abc"), lambda: read_u8(0x20))
    counters = [ls[3] for ls in fault_lines(m)]
    assert counters[0] == "Oops: 0000 [#1] SMP"
    assert sorted(c.split()[2] for c in counters[1:]) == ["[#2]", "[#3]"]


def test_wrapped_pointer_arithmetic_faults_at_the_top_of_the_address_space() -> None:
    m = Machine(cpus=1, memory="16M")
    m.run(lambda: read_u32(0 - 8))  # container_of(NULL, ...) style: NULL minus an offset
    (lines,) = fault_lines(m)
    assert lines[0] == "BUG: unable to handle page fault for address: fffffff8"


def test_memcpy_from_null_and_to_null() -> None:
    m = Machine(cpus=1, memory="16M")
    keep: dict[str, bytes] = {}

    def from_null() -> None:
        a = __get_free_page(GFP_KERNEL)
        mem_write(a, b"intact")
        keep["a"] = a
        memcpy(a, None, 6)

    def to_null() -> None:
        memcpy(None, keep["a"], 6)

    m.run(from_null)
    m.run(to_null)
    assert [ls[1] for ls in fault_lines(m)] == ["#PF: supervisor read access in kernel mode",
                                       "#PF: supervisor write access in kernel mode"]
    assert m.run(lambda: mem_read(keep["a"], 6)) == [b"intact"]


def test_zero_length_access_to_null_touches_nothing() -> None:
    m = Machine(cpus=1, memory="16M")
    assert m.run(lambda: (memset(None, 0, 0), mem_read(None, 0), mem_write(None, b""))) == [(0, b"", None)]
    assert m.reports == []


@pytest.mark.parametrize("seed", SEEDS)
def test_oops_in_an_interrupt_handler_panics(seed: int) -> None:
    m = Machine(cpus=2, memory="16M", seed=seed)

    def handler(irq: int, dev: object) -> None:
        read_u32(None)

    m.request_irq(9, handler)
    with pytest.raises(KernelPanic, match="Fatal exception in interrupt"):
        m.run(lambda: raise_irq(9))
    assert fault_lines(m)[0][0] == "BUG: kernel NULL pointer dereference, address: 00000000"
    assert m.dmesg[-1].endswith("Kernel panic - not syncing: Fatal exception in interrupt")


@pytest.mark.parametrize("seed", SEEDS)
def test_task_dying_atomic_is_noted_and_other_tasks_run(seed: int) -> None:
    m = Machine(cpus=1, memory="16M", seed=seed)

    def victim() -> None:
        spin_lock_irqsave(spin_lock_init("victim_lock"))
        read_u8(None)

    def other() -> int:
        return nr_free_pages()

    res = m.run(victim, other)
    assert res[0] is None and res[1] > 0
    text = "\n".join(m.dmesg)
    assert "note: victim[1] exited with irqs disabled" in text
    assert "note: victim[1] exited with preempt_count 1" in text
    # the lock died with its holder, as in the kernel: check() names it
    with pytest.raises(InconsistentState, match="victim_lock held by victim/1"):
        m.check()


@pytest.mark.parametrize("bad, match", [
    ("0xc0000000", r"(addr|dst)\(='0xc0000000'\) must be an int"),
    (3.0, r"(addr|dst)\(=3.0\) must be an int"),
    (True, r"(addr|dst)\(=True\) must be an int"),
    (1 << 32, "does not fit an i386 pointer"),
    (-(1 << 32) - 1, "does not fit an i386 pointer"),
])
def test_a_non_pointer_address_is_python_misuse(bad: object, match: str) -> None:
    m = Machine(cpus=1, memory="16M")
    for fn in (lambda: read_u8(bad), lambda: mem_write(bad, b"x"), lambda: memset(bad, 0, 4),
               lambda: memcpy(bad, 0xC0000000, 4)):
        with pytest.raises(KmemUsageError, match=match):
            m.run(fn)
    assert m.reports == []
    m.check()


def test_a_bad_length_or_fill_byte_is_python_misuse() -> None:
    m = Machine(cpus=1, memory="16M")
    with pytest.raises(KmemUsageError, match=r"mem_read: n\(=-1\) must be an int >= 0"):
        m.run(lambda: mem_read(0xC0000000, -1))
    with pytest.raises(KmemUsageError, match=r"memset: n\(=2.0\) must be an int >= 0"):
        m.run(lambda: memset(0xC0000000, 0, 2.0))
    with pytest.raises(KmemUsageError, match=r"memset: c\(='x'\) must be an int \(the fill byte\)"):
        m.run(lambda: memset(0xC0000000, "x", 2))
    assert m.reports == []
