"""Per-CPU variables and the per-CPU allocator: layout, accessors, DEBUG_PREEMPT, races, chunks."""

from __future__ import annotations

import itertools

import pytest

from percpu_kmem import __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, Machine, nr_free_pages, preempt_count, read_u32
from percpu_kmem.mm.ctype import (
    c_char,
    c_int,
    c_long,
    c_longlong,
    c_short,
    c_struct,
    c_uchar,
    c_ulong,
    u64,
)
from percpu_kmem.mm.percpu import (
    DECLARE_PER_CPU,
    DEFINE_PER_CPU,
    PCPU_MIN_UNIT_SIZE,
    PERCPU_ENOUGH_ROOM,
    __alloc_percpu,
    __alloc_percpu_gfp,
    __get_cpu_var,
    __this_cpu_add,
    __this_cpu_inc,
    __this_cpu_read,
    alloc_percpu,
    free_percpu,
    get_cpu_var,
    per_cpu,
    per_cpu_ptr,
    put_cpu_var,
    this_cpu_add,
    this_cpu_dec,
    this_cpu_inc,
    this_cpu_ptr,
    this_cpu_read,
    this_cpu_write,
)
from percpu_kmem.mm.physmem import PAGE_SIZE, InconsistentState
from percpu_kmem.runtime.errors import KmemUsageError, NotInTaskError
from percpu_kmem.runtime.kernel import (
    local_irq_restore,
    local_irq_save,
    preempt_disable,
    preempt_enable,
    raise_irq,
    raw_smp_processor_id,
)
from percpu_kmem.runtime.locks import spin_lock, spin_lock_init, spin_unlock
from percpu_kmem.testing import explore, find_seed

pytestmark = pytest.mark.timeout(60)

# Defined at import time, before any Machine exists (the .data.percpu section).
counter = DEFINE_PER_CPU(int, "t_pcpu_counter")
stats_t = c_struct("t_stats", [("flag", c_char), ("bytes", c_longlong), ("port", c_short), ("name", c_char * 6)])
stats = DEFINE_PER_CPU(stats_t, "t_pcpu_stats")
preset = DEFINE_PER_CPU(c_int, "t_pcpu_preset", init=-42)
declared = DECLARE_PER_CPU(c_ulong, "t_pcpu_declared_later")
defined_later = DEFINE_PER_CPU(c_ulong, "t_pcpu_declared_later")
never_defined = DECLARE_PER_CPU(c_int, "t_pcpu_never_defined")
_names = itertools.count()

IRQ = 5
ITERS = 25
TASKS = 4


def in_task(m: Machine, fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` as one kernel thread and return its result."""
    return m.run(fn)[0]


def counter_sum(m: Machine, var=counter) -> int:  # type: ignore[no-untyped-def]
    return in_task(m, lambda: sum(per_cpu(var, c).value for c in range(m.nr_cpus)))


# -- the type layer ------------------------------------------------------------------------------
def test_i386_type_layout() -> None:
    assert (c_long.size, c_int.size, c_short.size, c_char.size) == (4, 4, 2, 1)
    assert (c_longlong.size, c_longlong.align, c_longlong.alignof) == (8, 4, 8)  # i386 ABI vs __alignof__
    assert stats_t.offsets == {"flag": 0, "bytes": 4, "port": 12, "name": 14}
    assert (stats_t.size, stats_t.align) == (20, 4)
    assert (c_int * 3).size == 12
    assert c_long.encode(-1) == b"\xff\xff\xff\xff" and c_ulong.decode(b"\xff\xff\xff\xff") == 0xFFFFFFFF
    assert c_uchar.decode(c_uchar.encode(257)) == 1  # stores wrap like a C conversion


def test_int_is_long_and_counter_starts_zeroed_on_every_cpu() -> None:
    assert counter.ctype is c_long
    m = Machine(cpus=4, seed=0)
    assert in_task(m, lambda: [per_cpu(counter, c).value for c in range(4)]) == [0, 0, 0, 0]
    assert in_task(m, lambda: [per_cpu(preset, c).value for c in range(4)]) == [-42] * 4


def test_copies_are_distinct_real_bytes_in_the_static_area() -> None:
    m = Machine(cpus=3, seed=0)

    def body() -> None:
        addrs = [per_cpu(counter, c).addr for c in range(3)]
        assert len(set(addrs)) == 3
        assert all(abs(a - b) >= PERCPU_ENOUGH_ROOM for a, b in itertools.combinations(addrs, 2))
        per_cpu(counter, 1).value = 0x1234
        assert read_u32(addrs[1]) == 0x1234 and read_u32(addrs[0]) == 0
        assert per_cpu_ptr(counter, 2) == addrs[2]
        s = per_cpu(stats, 2)
        s["bytes"].value = -5
        s["name"].value = b"eth0"
        s["port"].value = 80
        assert s.value == {"flag": 0, "bytes": -5, "port": 80, "name": b"eth0\0\0"}
        assert per_cpu(stats, 0).value["bytes"] == 0
        s.value = {"flag": 1}
        assert s.value == {"flag": 1, "bytes": 0, "port": 0, "name": bytes(6)}

    m.run(body)
    assert not m.reports


def test_declare_before_define_and_lazily_laid_out_after_boot() -> None:
    m = Machine(cpus=2, seed=0)
    late = DEFINE_PER_CPU(c_int, f"t_pcpu_late_{next(_names)}", init=7)  # after this machine booted
    assert declared is defined_later

    def body() -> list[int]:
        per_cpu(declared, 1).value = 3
        return [per_cpu(late, 0).value, per_cpu(late, 1).value, per_cpu(defined_later, 1).value]

    assert in_task(m, body) == [7, 7, 3]


def test_get_cpu_var_disables_preemption() -> None:
    m = Machine(cpus=2, seed=3)

    def body() -> list[int]:
        seen = []
        r = get_cpu_var(counter)
        seen.append(preempt_count())
        r.value = r.value + 1
        put_cpu_var(counter)
        seen.append(preempt_count())
        with get_cpu_var(counter) as r2:
            seen.append(preempt_count())
            r2.value += 1
        seen.append(preempt_count())
        return seen

    assert in_task(m, body) == [1, 0, 1, 0]
    assert counter_sum(m) == 2
    assert not m.reports


def test_get_cpu_var_under_preempt_disable_is_silent_but_preemptible_use_is_reported() -> None:
    m = Machine(cpus=2, seed=0)

    def worker() -> None:
        preempt_disable()
        __get_cpu_var(counter).value = 1
        __this_cpu_add(counter, 1)
        preempt_enable()
        flags = local_irq_save()
        __this_cpu_inc(counter)
        local_irq_restore(flags)
        assert not m.reports
        __get_cpu_var(counter).value = 5
        __this_cpu_read(counter)
        __this_cpu_inc(counter)

    m.run(worker)
    firsts = [r.text.splitlines()[0] for r in m.reports]
    assert firsts == ["BUG: using smp_processor_id() in preemptible [00000000] code: worker/1",
                      "BUG: using __this_cpu_read() in preemptible [00000000] code: worker/1",
                      "BUG: using __this_cpu_add() in preemptible [00000000] code: worker/1"]
    assert "caller is worker (tests/mm/test_percpu.py:" in m.reports[0].text


# -- the counter: exact with this_cpu_add, lossy with a naive read-modify-write ---------------------
def counter_scenario(m: Machine, add, where: dict) -> int:  # type: ignore[no-untyped-def]
    """TASKS tasks on fewer CPUs and an interrupt handler all add 1 to the per-CPU counter."""
    irqs: list[int] = []

    def handler(irq: int, dev_id: object) -> None:
        this_cpu_add(counter, 1)
        irqs.append(1)

    m.request_irq(IRQ, handler, "pcpu-test", None, rate=0.05)

    def worker() -> None:
        for _ in range(ITERS):
            add(counter, 1)
            where.setdefault(id(m), set()).add(raw_smp_processor_id())

    m.run(*[worker] * TASKS)
    m.free_irq(IRQ)
    where["irqs"] = where.get("irqs", 0) + len(irqs)
    return counter_sum(m) - len(irqs)


def test_this_cpu_add_counter_is_exact_under_preemption_migration_and_interrupts() -> None:
    where: dict = {"irqs": 0}

    def scenario(m: Machine) -> None:
        assert counter_scenario(m, this_cpu_add, where) == TASKS * ITERS
        assert m.reports_of("preempt_this_cpu") == []

    n = explore(scenario, seeds=range(30), policies=("random", "pct"), cpus=2)
    assert n == 60
    assert where["irqs"] > 0, "the interrupt handler never ran: the test would not test interrupts"


def test_this_cpu_add_counter_is_exact_free_running() -> None:
    def scenario(m: Machine) -> None:
        assert counter_scenario(m, this_cpu_add, {}) == TASKS * ITERS

    explore(scenario, seeds=range(3), policies=("free",), cpus=2)


def test_tasks_really_migrate_between_cpus() -> None:
    where: dict = {}
    m = Machine(cpus=2, policy="random", seed=4)
    counter_scenario(m, this_cpu_add, where)
    assert where[id(m)] == {0, 1}
    assert sum(c.nr_preemptions for c in m.cpus) > 0


def test_naive_read_modify_write_from_preemptible_code_loses_updates() -> None:
    def scenario(m: Machine) -> bool:
        return counter_scenario(m, __this_cpu_add, {}) < TASKS * ITERS

    found = find_seed(scenario, seeds=range(40), cpus=2, expect="preempt_this_cpu")
    assert found is not None, "no seed lost an update: __this_cpu_add would be atomic"
    seed, m = found
    reps = m.reports_of("preempt_this_cpu")
    assert reps and reps[0].text.splitlines()[0] == \
        f"BUG: using __this_cpu_add() in preemptible [00000000] code: worker/{reps[0].pid}"
    # The same schedule with this_cpu_add loses nothing.
    same = Machine(cpus=2, policy="random", seed=seed)
    assert counter_scenario(same, this_cpu_add, {}) == TASKS * ITERS


# -- this_cpu_* on dynamic pointers -------------------------------------------------------------
def test_this_cpu_ops_on_alloc_percpu_pointer() -> None:
    m = Machine(cpus=2, seed=2)

    def body() -> list:
        p = alloc_percpu(u64)
        preempt_disable()
        here = raw_smp_processor_id()
        this_cpu_write(p, 1 << 40)
        this_cpu_inc(p)
        this_cpu_dec(p)
        this_cpu_add(p, 2)
        v = this_cpu_read(p)
        addr = this_cpu_ptr(p)
        preempt_enable()
        vals = [read_u32(per_cpu_ptr(p, c)) | read_u32(per_cpu_ptr(p, c) + 4) << 32 for c in range(2)]
        res = [v, addr == per_cpu_ptr(p, here), vals[here], vals[1 - here]]
        free_percpu(p)
        return res

    assert in_task(m, body) == [(1 << 40) + 2, True, (1 << 40) + 2, 0]
    assert not m.reports


# -- the dynamic allocator ---------------------------------------------------------------------
def test_alloc_percpu_is_zeroed_aligned_distinct_and_reused() -> None:
    m = Machine(cpus=4, seed=0)

    def body() -> None:
        first = __alloc_percpu(4, 4)  # shift the area map so alignment is not free
        ptrs = {}
        for align in (4, 8, 16, 64, 256, 1024, PAGE_SIZE):
            p = __alloc_percpu(24, align)
            assert p is not None
            addrs = [per_cpu_ptr(p, c) for c in range(4)]
            assert all(a % align == 0 for a in addrs), (align, addrs)
            assert len({a // PAGE_SIZE for a in addrs}) == 4  # a different unit (page) per CPU
            for a in addrs:
                assert read_u32(a) == 0 and read_u32(a + 20) == 0
            ptrs[align] = p
        p = ptrs[64]
        for c in range(4):  # dirty every copy, free, allocate again: same place, zero again
            for k in range(0, 24, 4):
                from percpu_kmem import write_u32
                write_u32(per_cpu_ptr(p, c) + k, 0xDEADBEEF)
        assert read_u32(per_cpu_ptr(p, 1)) == 0xDEADBEEF and read_u32(per_cpu_ptr(p, 2) - 4) != 0xDEADBEEF
        free_percpu(p)
        again = __alloc_percpu(24, 64)
        assert again == p
        assert all(read_u32(per_cpu_ptr(again, c) + k) == 0 for c in range(4) for k in range(0, 24, 4))
        for q in [first, again, *(v for k, v in ptrs.items() if k != 64)]:
            free_percpu(q)

    m.run(body)
    assert not m.reports
    m.check()


def test_chunks_are_created_when_full_and_given_back_keeping_one_spare() -> None:
    m = Machine(cpus=4, seed=0)
    unit_pages = PCPU_MIN_UNIT_SIZE // PAGE_SIZE

    def body() -> list[int]:
        base = nr_free_pages()
        ptrs = [__alloc_percpu(PCPU_MIN_UNIT_SIZE // 2, 4) for _ in range(5)]  # 2 per chunk -> 3 chunks
        used = base - nr_free_pages()
        chunks = len(m.percpu.chunks)
        for p in ptrs:
            free_percpu(p)
        spare = base - nr_free_pages()
        again = __alloc_percpu(PCPU_MIN_UNIT_SIZE, 4)  # a whole unit: served by the spare chunk
        after = base - nr_free_pages()
        free_percpu(again)
        return [used, chunks, spare, after, len(m.percpu.chunks)]

    assert in_task(m, body) == [3 * 4 * unit_pages, 3, 4 * unit_pages, 4 * unit_pages, 1]
    m.check()


def test_meminfo_percpu_line() -> None:
    m = Machine(cpus=2, seed=0)

    def body() -> list[str]:
        before = m.percpu.meminfo()
        p = __alloc_percpu(8, 8)
        during = m.percpu.meminfo()
        free_percpu(p)
        return [before, during]

    before, during = in_task(m, body)
    assert before == [("Percpu", 2 * PERCPU_ENOUGH_ROOM // 1024)]
    assert during == [("Percpu", 2 * (PERCPU_ENOUGH_ROOM + PCPU_MIN_UNIT_SIZE) // 1024)]
    assert m.percpu.meminfo in m.meminfo_hooks


def test_illegal_size_or_align_is_warned_and_returns_null() -> None:
    m = Machine(cpus=1, seed=0)

    def body() -> list:  # one call per line: reports at one site fold into one
        return [__alloc_percpu(0, 4),
                __alloc_percpu(PCPU_MIN_UNIT_SIZE + 1, 4),
                __alloc_percpu(8, 2 * PAGE_SIZE),
                __alloc_percpu(8, 6),
                __alloc_percpu_gfp(0, 4, GFP_KERNEL | __GFP_NOWARN),
                __alloc_percpu(3, 1)]

    res = in_task(m, body)
    assert res[:5] == [None] * 5 and res[5] is not None  # 3 bytes: rounded to 4, align raised to 4
    firsts = [r.text.splitlines()[0] for r in m.reports_of("percpu_illegal_size")]
    assert firsts == ["illegal size (0) or align (4) for percpu allocation",
                      f"illegal size ({PCPU_MIN_UNIT_SIZE + 4}) or align (4) for percpu allocation",
                      f"illegal size (8) or align ({2 * PAGE_SIZE}) for percpu allocation",
                      "illegal size (8) or align (6) for percpu allocation"]
    assert m.reports_of("percpu_illegal_size")[0].text.splitlines()[1].startswith("WARNING: CPU: 0 PID: ")


def test_atomic_allocation_never_creates_a_chunk_beyond_the_first_and_uses_existing_ones_from_irq() -> None:
    """The kernel's first chunk is there from boot, so the first allocation succeeds even
    atomic (the model builds that chunk then, from GFP_ATOMIC pages); a full chunk is never
    followed by a new one for an atomic caller, only for GFP_KERNEL."""
    m = Machine(cpus=2, seed=0)
    got: list = []

    def handler(irq: int, dev_id: object) -> None:
        p = __alloc_percpu_gfp(16, 8, GFP_ATOMIC)
        got.append(p)
        free_percpu(p)

    m.request_irq(IRQ, handler, "atomic-alloc", None)

    def body() -> list:
        pages = nr_free_pages()
        first = __alloc_percpu_gfp(16, 8, GFP_ATOMIC)
        one_chunk = (len(m.percpu.chunks), pages - nr_free_pages())
        fill = [__alloc_percpu_gfp(PCPU_MIN_UNIT_SIZE // 4, 4, GFP_ATOMIC) for _ in range(4)]
        still_one = len(m.percpu.chunks)
        keep = __alloc_percpu(16, 8)  # GFP_KERNEL creates the next chunk
        raise_irq(IRQ)
        for p in [first, keep, *fill]:
            free_percpu(p)
        return [first, one_chunk, fill.count(None), still_one]

    first, one_chunk, failed, still_one = in_task(m, body)
    assert first is not None and one_chunk == (1, 2 * 8)
    assert failed == 1 and still_one == 1
    assert got and got[0] is not None
    firsts = [r.text.splitlines()[0] for r in m.reports_of("percpu_alloc_failure")]
    size = PCPU_MIN_UNIT_SIZE // 4
    assert firsts == [f"percpu: allocation failed, size={size} align=4 atomic=1, atomic alloc failed, no space left"]
    assert not m.reports_of("sleep_in_atomic")


def test_first_atomic_allocation_races_build_one_first_chunk() -> None:
    """Two CPUs allocate atomically (GFP_ATOMIC) before any chunk exists: one first
    chunk survives, the other is given back, nothing leaks."""
    def scenario(m: Machine) -> None:
        got: list = []

        def worker() -> None:
            p = __alloc_percpu_gfp(8, 4, GFP_ATOMIC)
            got.append(p)

        m.run(worker, worker)
        assert None not in got and len(m.percpu.chunks) == 1
        m.run(lambda: [free_percpu(p) for p in got])
        assert m.reports == []

    explore(scenario, seeds=range(4), policies=("random", "pct", "free"), cpus=2)


def test_gfp_kernel_allocation_in_atomic_context_is_reported() -> None:
    m = Machine(cpus=1, seed=0)
    lock = spin_lock_init("t_lock")

    def body() -> None:
        spin_lock(lock)
        p = __alloc_percpu(8, 4)
        spin_unlock(lock)
        free_percpu(p)

    m.run(body)
    rep = m.reports_of("sleep_in_atomic")
    assert rep and rep[0].text.splitlines()[0].startswith(
        "BUG: sleeping function called from invalid context at tests/mm/test_percpu.py:")


def test_chunk_creation_failure_is_reported_and_leaks_nothing() -> None:
    m = Machine(cpus=2, seed=0)

    def body() -> list:
        base = nr_free_pages()
        m.mm.fail_next[0] = 1
        p = __alloc_percpu(64, 4)
        return [p, base - nr_free_pages(), len(m.percpu.chunks)]

    assert in_task(m, body) == [None, 0, 0]
    assert m.reports_of("percpu_alloc_failure")[0].text.splitlines()[0] == \
        "percpu: allocation failed, size=64 align=4 atomic=0, failed to allocate new chunk"
    m.check()


def test_free_percpu_null_double_and_bogus() -> None:
    m = Machine(cpus=2, seed=0)

    def body() -> None:
        free_percpu(None)
        p = __alloc_percpu(32, 4)
        q = __alloc_percpu(32, 4)
        free_percpu(p)
        free_percpu(p)
        free_percpu(~(per_cpu_ptr(q, 0) + 8) & 0xFFFFFFFF)  # inside an allocation, not its start
        free_percpu(q)

    m.run(body)
    kinds = [(r.kind, r.text.splitlines()[0]) for r in m.reports]
    assert kinds[0][0] == "percpu_double_free" and kinds[0][1].endswith("which is already free (double free)")
    assert kinds[1][0] == "percpu_bad_free" and kinds[1][1].endswith("which is not an allocated per-CPU area")
    assert len(kinds) == 2
    m.check()


def test_stale_pointer_into_a_destroyed_chunk_is_a_use_after_free() -> None:
    m = Machine(cpus=2, seed=0)

    def body() -> None:
        a = __alloc_percpu(PCPU_MIN_UNIT_SIZE, 4)
        b = __alloc_percpu(PCPU_MIN_UNIT_SIZE, 4)  # second chunk
        free_percpu(a)  # chunk 1 becomes the spare
        free_percpu(b)  # chunk 2 is a second free chunk: destroyed
        read_u32(per_cpu_ptr(b, 1))

    m.run(body)
    assert len(m.percpu.chunks) == 1
    assert m.reports_of("use_after_free")[0].text.splitlines()[0].startswith("BUG: KASAN: use-after-free in")


def test_concurrent_alloc_free_keeps_areas_private() -> None:
    sizes = [(8, 4), (100, 8), (4000, 64), (PCPU_MIN_UNIT_SIZE // 2, 4096), (12, 4)]

    def scenario(m: Machine) -> None:
        bad: list = []

        def handler(irq: int, dev_id: object) -> None:
            p = __alloc_percpu_gfp(8, 8, GFP_ATOMIC | __GFP_NOWARN)
            if p is not None:
                this_cpu_write_pattern(p, 0xA5A5A5A5)
                free_percpu(p)

        def this_cpu_write_pattern(p: int, pat: int) -> None:
            from percpu_kmem import write_u32
            for c in range(m.nr_cpus):
                write_u32(per_cpu_ptr(p, c), pat)

        m.request_irq(IRQ, handler, "pcpu-alloc", None, rate=0.05)

        def worker(k: int) -> None:
            for i in range(6):
                size, align = sizes[(k + i) % len(sizes)]
                p = __alloc_percpu(size, align)
                assert p is not None
                pat = (k << 8) | i
                this_cpu_write_pattern(p, pat)
                for c in range(m.nr_cpus):
                    a = per_cpu_ptr(p, c)
                    if a % align or read_u32(a) != pat:
                        bad.append((k, i, c))
                free_percpu(p)

        m.run(*[lambda k=k: worker(k) for k in range(3)])
        assert not bad
        assert not [r for r in m.reports if r.kind != "preempt_this_cpu"], m.reports
        assert m.percpu.nr_allocs == 0

    explore(scenario, seeds=range(6), policies=("random", "pct"), cpus=2)
    explore(scenario, seeds=range(1), policies=("free",), cpus=2)


def test_checker_finds_a_corrupt_area_map_and_a_freed_unit() -> None:
    m = Machine(cpus=2, seed=0)
    in_task(m, lambda: __alloc_percpu(8, 4))
    m.check()
    chunk = m.percpu.chunks[0]
    chunk.map[0] = -12
    with pytest.raises(InconsistentState, match="percpu: chunk 1 area map"):
        m.check()
    chunk.map[0] = -8
    m.check()
    m.percpu.nr_allocs += 1
    with pytest.raises(InconsistentState, match="live allocations counted"):
        m.check()
    m.percpu.nr_allocs -= 1
    m.percpu.static_pfns[1] = m.percpu.static_pfns[0]
    with pytest.raises(InconsistentState, match="is in the static area of CPU 1 and in the static area of CPU 0"):
        m.check()


# -- Python misuse -------------------------------------------------------------------------------
def test_define_per_cpu_misuse_raises_precise_errors() -> None:
    with pytest.raises(KmemUsageError, match=r"DEFINE_PER_CPU\(\.\.\., t_bad\): type must be a C type "
                                             r"\(c_int, c_long, c_ulong, u64, c_char \* 16, c_struct\(\.\.\.\)\) "
                                             r"or int, got 5"):
        DEFINE_PER_CPU(5, "t_bad")
    with pytest.raises(KmemUsageError, match="must be a C identifier string, got 'not a name'"):
        DEFINE_PER_CPU(c_int, "not a name")
    with pytest.raises(KmemUsageError, match=r"redefinition of 'per_cpu__t_pcpu_counter'"):
        DEFINE_PER_CPU(int, "t_pcpu_counter")
    with pytest.raises(KmemUsageError, match=r"conflicting types for 'per_cpu__t_pcpu_counter' \(was long\)"):
        DECLARE_PER_CPU(c_int, "t_pcpu_counter")
    with pytest.raises(KmemUsageError, match=r"could not allocate 40000 bytes percpu data: the static per-CPU "
                                             r"area \(PERCPU_ENOUGH_ROOM = 32768 bytes per CPU\)"):
        DEFINE_PER_CPU(c_char * 40000, "t_too_big")
    with pytest.raises(KmemUsageError, match="struct s: duplicate member 'a'"):
        c_struct("s", [("a", c_int), ("a", c_int)])


def test_accessor_misuse_raises_precise_errors() -> None:
    m = Machine(cpus=2, seed=0)
    with pytest.raises(NotInTaskError):
        per_cpu(counter, 0)

    def body() -> list[str]:
        msgs = []
        for call in (lambda: per_cpu(counter, 2), lambda: per_cpu(counter, "0"), lambda: per_cpu(5, 0),
                     lambda: per_cpu(never_defined, 0), lambda: per_cpu(stats, 0)["nope"],
                     lambda: per_cpu_ptr(0x1234, 0), lambda: this_cpu_add(stats, 1),
                     lambda: setattr(per_cpu(counter, 0), "value", "x")):
            with pytest.raises(KmemUsageError) as e:
                call()
            msgs.append(str(e.value))
        return msgs

    assert in_task(m, body) == [
        "per_cpu(t_pcpu_counter, 2): cpu 2 does not exist: this machine has CPUs 0-1",
        "per_cpu(t_pcpu_counter, '0'): cpu must be an int, got '0'",
        "per_cpu() takes a per-CPU variable (from DEFINE_PER_CPU), got 5",
        "undefined reference to 'per_cpu__t_pcpu_never_defined': DECLARE_PER_CPU without a "
        "DEFINE_PER_CPU(int, t_pcpu_never_defined)",
        "struct t_stats has no member 'nope' (members: flag, bytes, port, name)",
        "per_cpu_ptr(): 0x1234 is not a per-CPU pointer (from alloc_percpu) of this machine",
        "this_cpu_add() works on integer types, not struct t_stats",
        "a long holds an int, got 'x'",
    ]
    assert m.cpus[0].irqs_off is False and m.cpus[1].irqs_off is False
    m.check()
