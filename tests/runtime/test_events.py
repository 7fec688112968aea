"""The event log (Machine(events=True)) and dmesg's timestamps and printk callers."""

from __future__ import annotations

import json
import re

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    GFP_ATOMIC,
    GFP_KERNEL,
    __free_pages,
    alloc_pages,
    cpu_relax,
    current,
    init_waitqueue_head,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_free,
    mempool_alloc,
    mempool_create_kmalloc_pool,
    mempool_destroy,
    mempool_free,
    msleep,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    open_softirq,
    preempt_point,
    printk,
    raise_irq,
    raise_softirq,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    udelay,
    vfree,
    vmalloc,
    wait_event,
    wake_up,
)
from percpu_kmem.runtime.events import EVENT_KINDS

pytestmark = pytest.mark.timeout(60)

HERE = "tests/runtime/test_events.py"
STAMP = re.compile(r"^\[ *(\d+)\.(\d{6})\]\[ *([TC]\d+)\] ")


def _scenario(m: Machine) -> tuple:
    """Two workers and a waiter over every hooked primitive; an interrupt line with a rate."""
    lock = spin_lock_init("dev_lock")
    mtx = mutex_init("dev_mutex")
    wq = init_waitqueue_head("dev_wq")
    state = {"ready": 0}

    def handler(irq: int, dev: object) -> None:
        p = kmalloc(32, GFP_ATOMIC)
        printk("irq handled")
        kfree(p)
        raise_softirq(3)

    def bh() -> None:
        kfree(kmalloc(16, GFP_ATOMIC))

    m.request_irq(7, handler, "eth0", rate=0.05)

    def worker() -> None:
        me = current()
        cache = kmem_cache_create(f"foo_cache{me.pid}", 48)
        pool = mempool_create_kmalloc_pool(2, 128)
        for _ in range(3):
            flags = spin_lock_irqsave(lock)
            p = kmalloc(64, GFP_ATOMIC)
            spin_unlock_irqrestore(lock, flags)
            mutex_lock(mtx)
            o = kmem_cache_alloc(cache, GFP_KERNEL)
            mutex_unlock(mtx)
            kmem_cache_free(cache, o)
            kfree(p)
            e = mempool_alloc(pool, GFP_KERNEL)
            mempool_free(e, pool)
            pg = alloc_pages(GFP_KERNEL, 1)
            __free_pages(pg, 1)
        v = vmalloc(3 * 4096)
        vfree(v)
        mempool_destroy(pool)
        spin_lock(lock)
        state["ready"] += 1
        spin_unlock(lock)
        wake_up(wq)

    def waiter() -> None:
        open_softirq(3, bh)
        raise_irq(7)
        wait_event(wq, lambda: state["ready"] == 2)
        msleep(2)
        printk("waiter done")

    return worker, worker, waiter


def _run(policy: str, seed: int, events: bool, **kw: object) -> Machine:
    m = Machine(cpus=2, policy=policy, seed=seed, events=events, **kw)
    m.run(*_scenario(m))
    return m


@pytest.mark.parametrize("engine", ["thread", "greenlet"])
@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_events_change_nothing_of_the_run(policy: str, engine: str) -> None:
    if engine == "greenlet":
        pytest.importorskip("greenlet")
    for seed in range(4):
        off, on = _run(policy, seed, False, engine=engine), _run(policy, seed, True, engine=engine)
        assert str(on.trace) == str(off.trace)
        assert [r.text for r in on.reports] == [r.text for r in off.reports]
        assert on.dmesg == off.dmesg
        assert off.events is None and len(on.events) > 50


def test_every_kind_of_event_is_logged_with_cpu_task_and_the_simulated_line() -> None:
    m = _run("random", 5, True)
    evs = list(m.events)
    kinds = {e.kind for e in evs}
    assert kinds == set(EVENT_KINDS) - {"report"}
    whats = [e.what for e in evs]
    assert "spin_lock_irqsave(dev_lock)" in whats and "spin_unlock_irqrestore(dev_lock)" in whats
    assert "mutex_lock(dev_mutex)" in whats and "mutex_unlock(dev_mutex)" in whats
    assert any(re.fullmatch(r"kmalloc\(64, GFP_ATOMIC\) = 0x[0-9a-f]+ \[size-64\]", w) for w in whats)
    assert any(re.fullmatch(r"kmem_cache_alloc\(foo_cache1, GFP_KERNEL\) = 0x[0-9a-f]+", w) for w in whats)
    assert any(w.startswith("kmem_cache_free(foo_cache2, 0x") for w in whats)
    assert any(w.startswith("alloc_pages(GFP_KERNEL, order 1) = pfn ") for w in whats)
    assert any(w.startswith("__free_pages(pfn ") and w.endswith("order 1)") for w in whats)
    assert any(w.startswith("vmalloc(12288) = 0x") and w.endswith("(3 pages)") for w in whats)
    assert any(w.startswith("vfree(0x") for w in whats)
    assert any(w.startswith("mempool_alloc(mempool") for w in whats)
    assert "irq 7: eth0" in whats and "softirq 3: bh" in whats
    assert any(w.startswith("wait_event: sleeps on wait queue dev_wq") for w in whats)
    assert any(w.startswith("schedule_timeout: sleeps on a timer") for w in whats)
    assert any(e.kind == "wake" and e.what == "wake_up(dev_wq) wakes waiter/3" for e in evs)
    # a kmalloc's address is the one its kfree gives back
    for e in evs:
        if e.what.startswith("kmalloc(64"):
            addr = e.what.split(" = ")[1].split()[0]
            assert any(f.what == f"kfree({addr})" for f in evs if f.kind == "free")
    for e in evs:
        if e.kind == "sched":
            assert e.site == ""
            continue
        assert e.cpu in (0, 1) and e.task == f"{e.task.split('/')[0]}/{e.pid}"
        # the simulated code's line: the scenario's, or (kswapd) the model's own code, never the pool's
        assert e.site.startswith((HERE + ":", "percpu_kmem/mm/")), e
    irq = next(e for e in evs if e.kind == "irq")
    assert irq.ctx[1] == "h" and irq.ctx[0] == "d"
    # the decisions are the trace's, each in its place (in step order)
    sched = [e.ref for e in evs if e.kind == "sched"]
    assert sched == list(m.trace.decisions)
    steps = [e.step for e in evs]
    assert steps == sorted(steps)


def test_who_woke_whom_through_a_mutex() -> None:
    held = []

    def holder() -> None:
        mutex_lock(mtx)
        held.append(1)
        msleep(1)  # the other task finds it held and sleeps
        mutex_unlock(mtx)

    def taker() -> None:
        while not held:
            cpu_relax()
        mutex_lock(mtx)
        mutex_unlock(mtx)

    for seed in range(3):
        held.clear()
        mtx = mutex_init("m")
        m = Machine(cpus=2, seed=seed, events=True, boot=False)
        m.run(holder, taker)
        whats = [e.what for e in m.events]
        i = whats.index("mutex_lock: sleeps on mutex m held by holder/1")
        j = whats.index("mutex_unlock(m) wakes taker/2")
        assert i < j < whats.index("mutex_lock(m)", j) and m.events.merged()[j].task == "holder/1"


def test_a_replay_with_events_shows_the_same_run() -> None:
    m = _run("pct", 2, False)
    r = Machine(cpus=2, policy="pct", seed=2, events=True, replay=m.trace)
    r.run(*_scenario(r))
    assert r.diverged is None and str(r.trace) == str(m.trace)
    again = Machine(cpus=2, policy="pct", seed=2, events=True, replay=m.trace)
    again.run(*_scenario(again))
    assert again.event_log().lines() == r.event_log().lines()


def test_filters_by_task_cpu_kind_and_last() -> None:
    m = _run("random", 1, True)
    mine = m.event_log(task="waiter/3")
    assert mine.events and all(e.pid == 3 or (e.kind == "sched" and e.ref.arg == 3) for e in mine)
    assert list(m.event_log(task=3)) == list(mine)
    by_comm = m.event_log(task="worker")
    assert {e.task for e in by_comm} == {"worker/1", "worker/2"}
    assert all(e.cpu == 1 for e in m.event_log(cpu=1))
    locks = m.event_log(kind=("lock", "unlock"))
    assert locks.events and {e.kind for e in locks} == {"lock", "unlock"}
    dev = m.event_log(match="dev_lock")
    assert dev.events and all("dev_lock" in e.what for e in dev)
    assert {e.what for e in m.event_log(match="dev_lock", kind="lock")} == {"spin_lock_irqsave(dev_lock)",
                                                                            "spin_lock(dev_lock)"}
    mine_only = m.event_log(kind=("lock", "unlock"), model=False)
    assert {e.what.split("(")[1] for e in mine_only} == {"dev_lock)", "dev_mutex)"}
    assert len(mine_only) < len(locks)
    tail = m.event_log(kind="alloc", last=3)
    assert len(tail) == 3 and list(tail) == list(m.event_log(kind="alloc"))[-3:]
    assert len(str(tail).splitlines()) == 3
    rows = json.loads(json.dumps(tail.as_dicts()))
    assert [r["what"] for r in rows] == [e.what for e in tail] and set(rows[0]) == {
        "step", "cpu", "pid", "task", "kind", "what", "site", "ctx"}
    for bad in ({"kind": "locks"}, {"cpu": 2}, {"last": 0}, {"task": 1.5}, {"before": "x"}, {"match": ""}, {"model": 0}):
        with pytest.raises(KmemUsageError):
            m.event_log(**bad)


def test_the_events_leading_to_a_report() -> None:
    def driver() -> None:
        spin_lock(lock)
        p = kmalloc(64, GFP_KERNEL)  # sleep in atomic
        spin_unlock(lock)
        kfree(p)

    for seed in range(3):
        lock = spin_lock_init("dev_lock")
        m = Machine(cpus=2, seed=seed, events=True)
        m.run(driver, driver)
        rep = m.reports_of("sleep_in_atomic")[0]
        lead = m.event_log(before=rep, last=3)
        assert len(lead) == 3
        assert lead[-1].kind == "report" and lead[-1].ref is rep
        assert lead[-1].what.startswith("BUG: sleeping function called from invalid context")
        assert lead[-1].step == rep.step and lead[-1].task == rep.task
        mine = m.event_log(before=rep, task=rep.task, kind=("lock", "report"), last=2)
        assert [e.what for e in mine][0] == "spin_lock(dev_lock)"
        assert all(e.step <= rep.step for e in m.event_log(before=rep.step))
        line = str(lead).splitlines()[-1]
        assert re.match(rf" *{rep.step}  CPU{rep.cpu} +{re.escape(rep.task)} +\.\.1  BUG: sleeping", line)
        assert line.endswith(f"{HERE}:{driver.__code__.co_firstlineno + 2}")


def test_event_log_needs_events_on() -> None:
    m = Machine(cpus=1)
    m.run(lambda: None)
    with pytest.raises(KmemUsageError, match="events=True"):
        m.event_log()
    on = Machine(cpus=1, events=True)
    with pytest.raises(KmemUsageError, match="no run yet"):
        on.event_log()
    with pytest.raises(KmemUsageError, match="events"):
        Machine(cpus=1, events=1)


def test_free_running_runs_log_events_too() -> None:
    m = _run("free", 0, True)
    assert {"lock", "alloc", "free"} <= {e.kind for e in m.events}
    assert all(e.step == 0 for e in m.events)


# -- dmesg --------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_dmesg_stamps_advance_with_virtual_time_and_replay_the_same(policy: str) -> None:
    """Stamps advance with the work done under every policy and replay exactly under random
    and pct (the virtual policy's replays are not checked here: see docs/runtime.md)."""
    def talker() -> None:
        for i in range(5):
            for _ in range(1500):  # every policy charges its points: 1.5 us of virtual time
                preempt_point()
            printk(f"line {i}")

    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed)
        m.run(talker, talker)
        lines = [ln for ln in m.dmesg if "line " in ln]
        assert len(lines) == 10
        stamps = []
        for ln in lines:
            g = STAMP.match(ln)
            assert g, ln
            stamps.append(int(g[1]) * 1_000_000 + int(g[2]))
        assert stamps == sorted(stamps) and stamps[-1] > stamps[0] > 0
        if policy != "virtual":
            r = Machine(cpus=2, policy=policy, seed=seed, replay=m.trace)
            r.run(talker, talker)
            assert r.diverged is None and r.dmesg == m.dmesg
    # the timer clock counts: a sleep of 1.5 s of virtual time shows in the stamps
    m = Machine(cpus=1, policy=policy)
    m.run(lambda: (msleep(1500), printk("later")))
    assert STAMP.match(m.dmesg[-1])[1] == "1"  # type: ignore[index]


def test_printk_caller_is_the_task_or_the_cpu_in_interrupt_context() -> None:
    def handler(irq: int, dev: object) -> None:
        printk("in irq")

    def task() -> None:
        printk("in task")
        raise_irq(9)

    m = Machine(cpus=2, seed=1)
    m.request_irq(9, handler, "dev")
    m.run(task)
    text = "\n".join(m.dmesg)
    assert re.search(r"^\[ *\d+\.\d{6}\]\[    T1\] in task$", text, re.M)
    assert re.search(r"^\[ *\d+\.\d{6}\]\[    C\d\] in irq$", text, re.M)
    # a report's lines keep their text, each behind the same stamp and caller
    lock = spin_lock_init("l")

    def bad() -> None:
        spin_lock(lock)
        kmalloc(8, GFP_KERNEL)
        spin_unlock(lock)

    m = Machine(cpus=1)
    m.run(bad)
    rep = m.reports[0]
    tail = m.dmesg[-len(rep.lines):]
    assert [STAMP.sub("", ln) for ln in tail] == rep.lines
    assert len({STAMP.match(ln)[0] for ln in tail}) == 1  # type: ignore[index]


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_a_run_that_waited_for_a_timer_replays(policy: str) -> None:
    """The trace's clock advances (T) are the engine's own: a replay (with events, as
    ``percpu-kmem replay --events`` runs it) follows the run past them."""
    def sleeper() -> None:
        msleep(2)

    def churn() -> None:
        for _ in range(30):
            kfree(kmalloc(64, GFP_KERNEL))

    for seed in range(2):
        m = Machine(cpus=2, policy=policy, seed=seed)
        m.run(sleeper, churn)
        assert any(d.action == "T" for d in m.trace)
        r = Machine(cpus=2, policy=policy, seed=seed, replay=m.trace, events=True)
        r.run(sleeper, churn)
        assert r.diverged is None and str(r.trace) == str(m.trace)
        assert any(e.what.startswith("-> clock advances to 2000000 ns") for e in r.events)


def test_the_documented_example_reads_as_docs_runtime_md_says() -> None:
    """docs/runtime.md's example: a handler taking the lock process context holds with
    interrupts on. The events before the report: the lock taken with irqs on (``..1``),
    the interrupt decision, the handler (``dh1``), the report from hardirq context."""
    def run(seed: int) -> Machine:
        dev_lock = spin_lock_init("dev_lock")
        ring: list[int | None] = []

        def rx_irq(irq: int, dev: object) -> None:
            buf = kmalloc(256, GFP_ATOMIC)
            spin_lock(dev_lock)
            ring.append(buf)
            spin_unlock(dev_lock)

        def reader() -> None:
            for _ in range(20):
                spin_lock(dev_lock)
                buf = ring.pop() if ring else None
                spin_unlock(dev_lock)
                udelay(2)
                kfree(buf)

        m = Machine(cpus=2, seed=seed, events=True)
        m.request_irq(11, rx_irq, "foo", rate=0.05)
        m.run(reader, reader)
        return m

    for seed in (5, 1):
        m = run(seed)
        rep = m.reports_of("spinlock_cpu_recursion")[0] if m.reports_of("spinlock_cpu_recursion") else \
            m.reports_of("spinlock_recursion")[0]
        lead = [e for e in m.event_log(before=rep, model=False, task=rep.task) if e.kind != "alloc"]
        assert [e.kind for e in lead[-4:]] == ["lock", "sched", "irq", "report"]
        assert lead[-4].what == "spin_lock(dev_lock)" and lead[-4].ctx == "..1"
        assert lead[-3].what.startswith("-> interrupt 11") and lead[-2].what == "irq 11: foo"
        assert lead[-2].ctx == "dh1" and lead[-1].ctx[:2] == "dh" and lead[-1].cpu == rep.cpu
        stamped = [ln for ln in m.dmesg if "spinlock recursion" in ln][0]
        assert re.match(rf"\[    0\.0000\d\d\]\[    C{rep.cpu}\] BUG: spinlock recursion", stamped)
